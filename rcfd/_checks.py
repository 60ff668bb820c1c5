"""Argument checks, made before any state is read (guarantee 10): the same bad
argument gives the same error in every state, and changes nothing. Each
message names the call the user made."""

from __future__ import annotations

import math
import threading

from rcfd._registry import LifetimeRegistry


def check_init(call: str, rawfd: object, close_func: object, on_closing: object) -> None:
    if isinstance(rawfd, bool) or not isinstance(rawfd, int):
        raise TypeError(f"{call}: rawfd must be an int, not {type(rawfd).__name__}")
    if rawfd < 0:
        raise ValueError(f"{call}: rawfd must be >= 0, got {rawfd}")
    if not callable(close_func):  # (check_callable, inline: every FD() makes this check)
        check_callable(call, "close_func", close_func)
    if on_closing is not None:
        check_callable(call, "on_closing", on_closing)


def check_registry(call: str, registry: object) -> None:
    if not isinstance(registry, LifetimeRegistry):
        raise TypeError(
            f"{call}: registry must be a LifetimeRegistry, not {type(registry).__name__}"
        )


def check_callable(call: str, name: str, value: object) -> None:
    if not callable(value):
        raise TypeError(f"{call}: {name} must be callable, not {type(value).__name__}")


def check_timeout(call: str, timeout: object) -> None:
    """A timeout is None or a number of seconds >= 0 (an int of any size)."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{call}: timeout must be a number or None, not {type(timeout).__name__}")
    if timeout < 0 or (isinstance(timeout, float) and math.isnan(timeout)):
        # (An int too long to print would fail its own message.)
        shown = timeout if isinstance(timeout, float) or timeout > -(10**20) else "-10**20 or less"
        raise ValueError(f"{call}: timeout must be >= 0, got {shown}")


def deadline(timeout: float | None) -> float | None:
    """A checked timeout for the clock: None (no deadline) for None and for
    anything the clock cannot hold (above threading.TIMEOUT_MAX: inf, 10**400)."""
    return None if timeout is None or timeout >= threading.TIMEOUT_MAX else timeout
