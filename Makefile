# rcfd: `make verify` runs every check and reports; `make test` runs the tests;
# `make quick` is the inner loop (the tests without the slow explorations).
# Each creates a virtualenv in .venv/<python version>/ with the pinned dev
# dependencies on first use.
#
# Supported Pythons: 3.11 to 3.15 (`tools/find-python --supported`). PY picks
# the interpreter: `make test PY=3.12` (a version, a command such as
# python3.12, or a path). The default is the newest supported one that can be
# had. tools/find-python looks on PATH, in pyenv (even for versions it has not
# selected) and in get-python's cache (~/.cache/debian-pythons/X.Y); for 3.14
# and 3.15 it runs get-python, which unpacks Debian's build there (about 5 s,
# once). get-python is $GET_PYTHON, else ../shared/pythons/get-python beside
# the checkout, else /work/shared/pythons/get-python; GET_PYTHON=off never
# runs it. Where get-python is absent, 3.14 and 3.15 must be installed some
# other way (PATH or pyenv): `make test PY=3.15` then stops with a message
# naming what is missing, and the default PY falls back to the newest found.

PY ?= newest
SUPPORTED := $(shell tools/find-python --supported)
PYTHON := $(shell tools/find-python $(PY))
ifeq ($(PYTHON),)
$(error no usable Python for PY=$(PY); see the message above)
endif
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV := .venv/$(PYVER)
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

# The interleaving exploration: the same DFS that `make verify` runs as its own
# check (tools/explore.py). Its result does not depend on the interpreter (.ci/run
# says why), so test-compat leaves tests/interleavings out, and quick leaves the
# exploration out (the checker's own tests beside it are fast and stay).
EXPLORATION := tests/interleavings/test_interleavings.py::test_every_schedule_keeps_the_guarantees
# The slow tests the inner loop skips: the exploration, the stateful model
# comparison (Hypothesis) and the soak. `make test` and `make verify` run them.
QUICK_SKIP := --deselect $(EXPLORATION) --ignore=tests/test_model_vs_fd.py \
	--ignore=tests/reliability/test_soak.py

.PHONY: test quick test-compat test-all verify verify-nogil explore-long lint typecheck \
	bench mutants mutants-nogil explain mutmut clean

# setuptools' note that an editable install is one (not a warning) is silenced;
# anything else it or pip says is printed.
$(STAMP): pyproject.toml
	@echo "== creating $(VENV) with $(PYTHON)"
	@rm -rf $(VENV) && $(PYTHON) -m venv $(VENV)
	@$(VPY) -m pip install -q --upgrade pip
	@PYTHONWARNINGS="ignore:Editable installation" $(VPY) -m pip install -q -e '.[dev]'
	@touch $@

# The whole test suite (about 5 min on 3.13; 2 cores).
test: $(STAMP)
	$(VPY) -m pytest -q $(PYTEST_ARGS)

# The inner loop: ruff, then the tests without the slow ones, stopping at the first
# failure (well under a minute). Not a substitute for `make verify` before a commit.
quick: $(STAMP)
	$(VPY) -m ruff check --quiet .
	$(VPY) -m pytest -q -x -p no:cacheprovider $(QUICK_SKIP) $(PYTEST_ARGS)

# The tests whose result can depend on the interpreter: all but tests/interleavings.
# CI runs it on every supported Python except the newest, where `make verify` runs all.
test-compat: $(STAMP)
	$(VPY) -m pytest -q --ignore=tests/interleavings $(PYTEST_ARGS)

# Every check, then a report. A verify that passes records each check's time in
# .venv/verify-times/ for `make mutants` (tools/verify.py says when it counts).
verify: $(STAMP)
	$(VPY) tools/verify.py

# ---- RCFD_NOGIL (issue 13): verify and the catalog on rcfd's no-GIL code path ----
# RCFD_NOGIL=1 forces that path (rcfd/_nogil.py: the borrow takes the FD's lock)
# on a GIL interpreter. The checks of `make verify` that run rcfd (ruff, mypy and
# CrossHair read the source: `make verify` runs them), and the catalog, against
# that path; CI runs both (.ci/run).
verify-nogil: $(STAMP)
	RCFD_NOGIL=1 $(VPY) tools/verify.py

mutants-nogil: $(STAMP)
	RCFD_NOGIL=1 $(VPY) tools/mutation.py $(MUTANTS)

# Interleavings (issue 3): every schedule with <= 2 preemptions, and 2000 random and
# 2000 PCT schedules, per scenario. Slow (a 2-thread scenario is 16k-35k schedules,
# 1-3 min; a 3-thread one far more): verify runs the bound 1. EXPLORE_ARGS narrows it,
# e.g. EXPLORE_ARGS="--scenario two_closers/2".
explore-long: $(STAMP)
	$(VPY) tools/explore.py --preemptions 2 --random 2000 --pct 2000 $(EXPLORE_ARGS)

lint: $(STAMP)
	$(VPY) -m ruff check .

typecheck: $(STAMP)
	$(VPY) -m mypy rcfd model tests tools examples bench

# Benchmarks (issue 6): one table, also in bench/results.json. Not part of test or verify.
bench: $(STAMP)
	$(VPY) -m bench

# Mutation testing (issue 4): every catalog mutant in mutants/ must be killed by the
# checks of `make verify`; a table, non-zero if one survives. MUTANTS="a b" runs only those.
# The checks run cheapest first, by the times the last passing `make verify` on the
# same tree recorded; without such a record it first runs them all on the unmodified
# code (about 6 min). A mutant of code this path never runs is listed as n/a.
mutants: $(STAMP)
	$(VPY) tools/mutation.py $(MUTANTS)

# One mutant's counterexample as a timeline: make explain MUTANT=close-does-not-wait
explain: $(STAMP)
	$(VPY) tools/explain.py $(MUTANT) $(EXPLAIN_ARGS)

# Automatic mutation testing of rcfd/ with mutmut, in mutants/.work/ (slow: not in verify).
mutmut: $(STAMP)
	$(VPY) tools/mutmut_run.py $(MUTMUT_ARGS)

# Every supported Python found: the whole suite on the newest, test-compat on the
# others (what CI runs, minus lint, types and contracts). A version that cannot be
# had is named and skipped; `make test PY=X.Y` runs the whole suite on one.
test-all:
	@set -e; newest=$$(tools/find-python newest); missing=""; \
	for v in $(SUPPORTED); do \
	    if ! p=$$(tools/find-python $$v); then missing="$$missing $$v"; \
	    elif [ "$$p" = "$$newest" ]; then $(MAKE) --no-print-directory test PY=$$v; \
	    else $(MAKE) --no-print-directory test-compat PY=$$v; fi; \
	done; \
	if [ -n "$$missing" ]; then echo "== not tested (not found, see above):$$missing"; fi

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache .hypothesis build *.egg-info
