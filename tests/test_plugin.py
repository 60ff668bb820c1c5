"""The pytest plugin (rcfd/pytest_plugin.py), run in throwaway pytest sessions.

pytester runs each inner session in this process (runpytest_inprocess is
fast) but with its own config, so the plugin is loaded through its pytest11
entry point exactly as in a user's project.
"""

from __future__ import annotations

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
