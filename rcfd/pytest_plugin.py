"""pytest plugin: fail a test that leaves an rcfd.FD unclosed.

Installed with rcfd (entry point `pytest11`, name `rcfd`); disable it with
`-p no:rcfd`. Nothing is checked unless a test asks for it:

- the `fd_leaks` fixture: tracks every FD initialized from the fixture's
  setup to its teardown (in the test, in function-scoped fixtures set up after
  it, and in threads started meanwhile; see rcfd.track_lifetimes) and yields
  the LifetimeRegistry;
- the marker `@pytest.mark.fd_leaks` (on a test, class, or module via
  `pytestmark`) applies that fixture; `@pytest.mark.fd_leaks(False)` opts a
  test out;
- the ini option `rcfd_fd_leaks = true` applies it to every test.

The check runs at the fixture's teardown, after the teardown of fixtures set
up later, so a fixture that closes its FD in its own teardown is no leak. A
leak is therefore reported by pytest as an error at teardown of the test,
with FDStats.report() (each leaked descriptor and the stack that opened it)
as the message.
"""

from __future__ import annotations

import dataclasses
import gc
import re
from collections.abc import Iterator

import pytest

from rcfd._registry import ANOTHER_FD, FDStats, LifetimeRegistry, split_stacks
from rcfd._tracking import track_lifetimes

_INI = "rcfd_fd_leaks"
_MARK = "fd_leaks"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        _INI,
        "rcfd: fail every test that leaves an rcfd.FD unclosed (as the fd_leaks fixture does)",
        type="bool",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARK}(enabled=True): rcfd: fail the test if an rcfd.FD initialized during it "
        "is left unclosed; fd_leaks(False) opts out of the rcfd_fd_leaks ini option",
    )


@pytest.fixture
def fd_leaks() -> Iterator[LifetimeRegistry]:
    """Fail the test if an rcfd.FD initialized during it was not closed.

    Yields the LifetimeRegistry that receives those FDs, for tests that want
    to assert on its counts themselves.
    """
    with track_lifetimes() as registry:
        yield registry
    report = registry.fd_stats().report()
    if report:
        # An FD kept alive only by a reference cycle is still a leak; collect
        # it so that the report says so, and so its descriptor is closed now
        # rather than in some later test. Only on failure: gc is not free.
        gc.collect()
        report = _without_pytest_frames(registry.fd_stats()).report()
        pytest.fail(report, pytrace=False)


@pytest.fixture(autouse=True)
def _rcfd_fd_leaks_auto(request: pytest.FixtureRequest) -> None:
    """Applies fd_leaks to the tests the marker or the ini option selects.

    Autouse, so it is set up before the test's other function-scoped
    fixtures, and the FDs they open are tracked too.
    """
    if _enabled(request):
        request.getfixturevalue("fd_leaks")


def _enabled(request: pytest.FixtureRequest) -> bool:
    marker = request.node.get_closest_marker(_MARK)
    if marker is None:
        return bool(request.config.getini(_INI))
    enabled = marker.kwargs.get("enabled", marker.args[0] if marker.args else True)
    if not isinstance(enabled, bool):
        raise TypeError(
            f"@pytest.mark.{_MARK}(enabled): enabled must be a bool, not {type(enabled).__name__}"
        )
    return enabled


# One entry of a formatted stack: its `  File "...", line N, in f` line and the
# indented source lines after it.
_ENTRY = re.compile(r'^  File "[^\n]*\n(?:    [^\n]*\n)*', re.MULTILINE)
_PYTEST_FILE = re.compile(r'^  File "[^"]*[/\\](?:_pytest|pluggy)[/\\]')


def _without_pytest_frames(stats: FDStats) -> FDStats:
    """The stats with every init stack cut to the frames after pytest's last
    (the test, its fixtures, and what they call): the frames above are the
    same for every test and would hide the lines that opened the FD."""

    def trim(stack: str) -> str:
        entries = [m.group(0) for m in _ENTRY.finditer(stack)]
        last = max((i for i, e in enumerate(entries) if _PYTEST_FILE.match(e)), default=-1)
        return "".join(entries[last + 1 :]) or stack

    return dataclasses.replace(
        stats,
        in_flight_stacks={
            fd: ANOTHER_FD.join(map(trim, split_stacks(s)))  # each FD's stack on its own
            for fd, s in stats.in_flight_stacks.items()
        },
        finalized_stacks=tuple((fd, trim(s)) for fd, s in stats.finalized_stacks),
    )
