# rcfd: `make verify` runs every check and reports; `make test` runs the tests.
# Both create a virtualenv in .venv/<python version>/ with the pinned dev
# dependencies on first use. PY picks the interpreter: `make test PY=3.12`
# (a version, a command such as python3.12, or a path; pyenv installs are
# found even when they are not on PATH). The default is the newest of
# 3.13, 3.12 and 3.11 found, which the interleaving checks need (3.12+).

PY ?= newest
PYTHON := $(shell tools/find-python $(PY))
ifeq ($(PYTHON),)
$(error no usable Python for PY=$(PY); see the message above)
endif
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV := .venv/$(PYVER)
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: test verify explore-long test-all lint typecheck bench mutants explain mutmut clean

$(STAMP): pyproject.toml
	@echo "== creating $(VENV) with $(PYTHON)"
	@rm -rf $(VENV) && $(PYTHON) -m venv $(VENV)
	@$(VPY) -m pip install -q --upgrade pip
	@$(VPY) -m pip install -q -e '.[dev]'
	@touch $@

test: $(STAMP)
	$(VPY) -m pytest -q $(PYTEST_ARGS)

verify: $(STAMP)
	$(VPY) tools/verify.py

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
mutants: $(STAMP)
	$(VPY) tools/mutation.py $(MUTANTS)

# One mutant's counterexample as a timeline: make explain MUTANT=close-does-not-wait
explain: $(STAMP)
	$(VPY) tools/explain.py $(MUTANT) $(EXPLAIN_ARGS)

# Automatic mutation testing of rcfd/ with mutmut, in mutants/.work/ (slow: not in verify).
mutmut: $(STAMP)
	$(VPY) tools/mutmut_run.py $(MUTMUT_ARGS)

# The tests on every supported interpreter found here; a missing one is named, not fatal.
test-all:
	@set -e; for v in 3.11 3.12 3.13; do \
	    if tools/find-python $$v >/dev/null; then $(MAKE) --no-print-directory test PY=$$v; \
	    else echo "== Python $$v not found: skipped (install it, e.g. with pyenv, to test it)"; fi; \
	done

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache .hypothesis build *.egg-info
