"""The pytest plugin (rcfd/pytest_plugin.py), run in throwaway pytest sessions.

pytester runs each inner session in this process (runpytest_inprocess is
fast) but with its own config, so the plugin is loaded through its pytest11
entry point exactly as in a user's project.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

LEAKY = """
import os
import rcfd

kept = []

def test_leaks(fd_leaks):
    r, w = os.pipe()
    os.close(w)
    kept.append(rcfd.FD(r))  # opened, never closed: a leak
"""

CLEAN = """
import os
import rcfd

def test_closes(fd_leaks):
    r, w = os.pipe()
    os.close(w)
    with rcfd.FD(r) as fd:
        fd.do(os.fstat)
    stats = fd_leaks.fd_stats()
    assert (stats.initialized, stats.closed) == (1, 1)
"""


def test_plugin_is_registered_through_its_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(CLEAN)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    # And it can be turned off by its entry-point name, like any plugin.
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:rcfd")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'fd_leaks' not found*"])


def test_fixture_fails_a_leaking_test_with_the_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_leaky=LEAKY)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaks*",
            "rcfd: 1 file descriptor(s) leaked: initialized=1 closed=0 close_failed=0 "
            "detached=0 finalized=0 in_flight=1",
            "fd * is still open; initialized at:",
            '  File "*test_leaky.py", line 9, in test_leaks',
            "    kept.append(rcfd.FD(r))  # opened, never closed: a leak",
            "*short test summary info*",
        ]
    )
    # The init stack starts at the test: pytest's own frames are cut.
    output = result.stdout.str()
    assert "/pluggy/" not in output
    assert "/_pytest/" not in output


MARKED = """
import os
import threading

import re
from pathlib import Path

import pytest
import rcfd

kept = []

pytestmark = pytest.mark.fd_leaks

def test_leaks_in_a_thread():
    t = threading.Thread(target=lambda: kept.append(rcfd.FD(os.eventfd(0))))
    t.start()
    t.join(10)

@pytest.mark.fd_leaks(False)
def test_opted_out():
    kept.append(rcfd.FD(os.eventfd(0)))

@pytest.fixture
def owned_fd():
    fd = rcfd.FD(os.eventfd(0))
    yield fd
    fd.close()  # in the fixture's teardown, before the check: no leak

def test_fixture_closes_it(owned_fd):
    owned_fd.do(os.fstat)
"""


def test_marker_applies_the_check_and_can_opt_out(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_marked=MARKED)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "ERROR test_marked.py::test_leaks_in_a_thread - Failed: rcfd: 1 file*",
        ]
    )
    # The leak's stack is the thread's: it starts where the thread ran the lambda.
    result.stdout.fnmatch_lines(["*test_marked.py*in <lambda>*"])


UNMARKED = """
import os
import rcfd

kept = []

def test_leaks():
    kept.append(rcfd.FD(os.eventfd(0)))
"""


def test_off_by_default_and_on_for_every_test_with_the_ini_option(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_unmarked=UNMARKED)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    pytester.makeini("[pytest]\nrcfd_fd_leaks = true\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*rcfd: 1 file descriptor(s) leaked*"])


PRECEDENCE = """
import os
import pytest
import rcfd

kept = []

@pytest.mark.fd_leaks(False)
def test_opted_out_by_argument():
    kept.append(rcfd.FD(os.eventfd(0)))

@pytest.mark.fd_leaks(enabled=False)
def test_opted_out_by_keyword():
    kept.append(rcfd.FD(os.eventfd(0)))

@pytest.mark.fd_leaks(enabled=True)
def test_opted_in_by_keyword():
    kept.append(rcfd.FD(os.eventfd(0)))
"""


@pytest.mark.parametrize("ini", [False, True], ids=["no-ini", "ini-on"])
def test_the_marker_wins_over_the_ini_option_in_both_spellings(
    pytester: pytest.Pytester, ini: bool
) -> None:
    """A test's own marker decides, whatever the ini option says: fd_leaks(False)
    and fd_leaks(enabled=False) opt out, fd_leaks(enabled=True) opts in."""
    pytester.makepyfile(test_precedence=PRECEDENCE)
    if ini:
        pytester.makeini("[pytest]\nrcfd_fd_leaks = true\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["ERROR test_precedence.py::test_opted_in_by_keyword - *"])


DROPPED = """
import gc
import os
import rcfd

def test_drops_it_in_a_cycle(fd_leaks):
    gc.disable()  # the cycle survives the test; the check's collection finds it
    try:
        cycle = [rcfd.FD(os.eventfd(0))]
        cycle.append(cycle)
        del cycle
    finally:
        gc.enable()
"""


def test_an_fd_left_to_the_garbage_collector_is_a_leak(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_dropped=DROPPED)
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "ignore::ResourceWarning")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*finalized=1*",
            "fd * was never closed (the garbage collector closed it); initialized at:",
            "*cycle = ?rcfd.FD(os.eventfd(0))?",
        ]
    )


def test_bad_marker_argument_is_an_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.fd_leaks("yes")
        def test_x():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*enabled must be a bool, not str*"])


def _normalize(text: str) -> str:
    text = re.sub(r'File "[^"]*/(test_\w+\.py)"', r'File "\1"', text)
    text = re.sub(r"\bfd \d+ ", "fd N ", text)
    return re.sub(r"in \d+\.\d+s", "in Ts", text)


def test_the_readme_shows_what_the_plugin_prints(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The README's pytest example, run, prints the output the README shows
    # (paths, descriptor numbers and timings aside). Under CI=... pytest
    # prints the short summary untruncated, which is not what a user sees.
    for variable in ("CI", "BUILD_NUMBER"):
        monkeypatch.delenv(variable, raising=False)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    found = re.search(
        r"```python\n(?P<test>[^`]*def test_counter\(fd_leaks[^`]*)```\n.*?```\n(?P<out>.*?)```",
        readme,
        flags=re.DOTALL,
    )
    assert found, "README.md lost its fd_leaks example"
    assert "ERROR at teardown of test_counter" in found["out"]
    pytester.makepyfile(test_leak=found["test"])
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "-W", "ignore::ResourceWarning")
    result.assert_outcomes(passed=1, errors=1)
    assert _normalize(found["out"]) in _normalize(result.stdout.str() + "\n")


TWICE = """
import os
import rcfd

kept = []

def keep(rawfd):
    kept.append(rcfd.FD(rawfd, lambda n: None))

def test_wraps_one_number_twice(fd_leaks):
    rawfd = os.eventfd(0)
    keep(rawfd)  # the first wrapper
    keep(rawfd)  # the second wrapper
"""


def test_two_leaks_on_one_number_are_both_reported_trimmed(pytester: pytest.Pytester) -> None:
    """Each FD's init stack is reported and cut below pytest's frames on its
    own (joined first and cut once, the first FD's frames would be lost)."""
    pytester.makepyfile(test_twice=TWICE)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "rcfd: 2 file descriptor(s) leaked: initialized=2 closed=0 close_failed=0 "
            "detached=0 finalized=0 in_flight=2",
            "fd * is still open; initialized at:",
            '  File "*test_twice.py", line 11, in test_wraps_one_number_twice',
            "    keep(rawfd)  # the first wrapper",
            "*",
            "fd * is still open; initialized at:",
            '  File "*test_twice.py", line 12, in test_wraps_one_number_twice',
            "    keep(rawfd)  # the second wrapper",
        ]
    )
    assert "/_pytest/" not in result.stdout.str()
