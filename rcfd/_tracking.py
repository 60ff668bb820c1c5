"""track_lifetimes(): leak tracking without passing a registry to every FD.

    with rcfd.track_lifetimes() as registry:
        run_code_that_opens_fds()
    assert registry.fd_stats().report() == ""

Inside the block, every FD initialized without a registry of its own reports
to `registry`: FD.init() reads the ContextVar `rcfd._registry.current_registry`,
which the block sets. So the scope follows contextvars rules: asyncio tasks
created in the block and `asyncio.to_thread` calls made in it inherit it.

Threads. On Python 3.11-3.13 a `threading.Thread` starts with an empty
context, so a ContextVar alone would miss every FD opened by a thread the
code under test starts. This module therefore captures rcfd's registry (and
only it: no other ContextVar changes value) when `Thread.start()` is called
in a scope, and sets it in the new thread before `run()`. That is what Python
3.14 does for the whole context with `sys.flags.thread_inherit_context`:
the value is the one current at `start()`, and the thread keeps it for its
life (a thread started in the block that outlives it still reports to that
registry, as an asyncio task created in the block would).

Cost: the hook is installed once, on the first `track_lifetimes()` entry, by
wrapping `threading.Thread.start` (never removed: another library may have
wrapped it after us, and unwrapping would drop its wrapper). A thread started
outside any scope pays one ContextVar lookup; code that never calls
track_lifetimes() is not touched at all.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator

from rcfd._registry import LifetimeRegistry, current_registry

_hook_lock = threading.Lock()  # guards _hook_installed and the one patch
_hook_installed = False


@contextlib.contextmanager
def track_lifetimes(registry: LifetimeRegistry | None = None) -> Iterator[LifetimeRegistry]:
    """Track every FD initialized in the block, on this thread and on the
    threads started from it, in `registry` (a new LifetimeRegistry if None).

    An FD given a registry explicitly (`registry=`, `track_lifetime`) keeps
    it. Scopes nest: the innermost one receives the FDs initialized in it.
    """
    if registry is None:
        registry = LifetimeRegistry()
    elif not isinstance(registry, LifetimeRegistry):
        raise TypeError(
            "track_lifetimes: registry must be a LifetimeRegistry or None, "
            f"not {type(registry).__name__}"
        )
    _install_thread_hook()
    token = current_registry.set(registry)
    try:
        yield registry
    finally:
        current_registry.reset(token)


def _install_thread_hook() -> None:
    global _hook_installed
    with _hook_lock:
        if _hook_installed:
            return
        original_start = threading.Thread.start

        @functools.wraps(original_start)
        def start(self: threading.Thread) -> None:
            registry = current_registry.get()
            if registry is None:
                original_start(self)
                return
            restore = _inherit(self, registry)
            try:
                original_start(self)
            except BaseException:
                restore()  # not started (started twice, or no resources): undo
                raise

        # setattr with a name, not `Thread.start = start`: mypy --strict rightly
        # refuses assignment to a method, and this is the one place we mean it.
        name = "start"
        setattr(threading.Thread, name, start)
        _hook_installed = True


def _inherit(thread: threading.Thread, registry: LifetimeRegistry) -> Callable[[], None]:
    """Make `thread` run with `registry` current; return the undo.

    An instance attribute shadows run() only until the thread begins, then is
    removed (or the thread's own instance attribute put back), so overrides
    of run() and code that inspects `thread.run` behave as without rcfd.
    """
    own = vars(thread).get("run")  # a run set on the instance, if any
    run = thread.run

    def restore() -> None:
        if own is None:
            vars(thread).pop("run", None)
        else:
            thread.__dict__["run"] = own

    def run_tracked() -> None:
        restore()  # also breaks the thread -> run_tracked -> thread cycle
        current_registry.set(registry)  # the new thread's own, empty context
        run()

    thread.__dict__["run"] = run_tracked
    return restore
