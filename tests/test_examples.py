"""Each example runs as the README says, `python3 examples/NAME.py` from a
checkout where rcfd is not installed, and reports success.

Every example checks its own claim and exits non-zero if it does not hold
(counts that disagree, a reader that never woke, a leaked descriptor), so
running it is a test, not a smoke run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name: str) -> str:
    # -S: no site-packages, so not the rcfd installed in this venv; no PYTHONPATH
    # either. The example must find the checkout's rcfd by itself, as it does for
    # a user who has installed nothing.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-S", "-X", "dev", str(EXAMPLES / f"{name}.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=EXAMPLES.parent,
        env=env,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    # -X dev shows ResourceWarning and RuntimeWarning: an unclosed FD would print one.
    assert "Warning" not in proc.stderr, proc.stderr
    return proc.stdout


def test_every_example_is_tested() -> None:
    tested = {"bpf_array_map", "eventfd_wakeup", "socket_shutdown", "asyncio_aclose"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


def test_bpf_array_map() -> None:
    out = run("bpf_array_map")
    if "bpf(2) is not available here" in out:
        pytest.skip(out.strip())
    assert "ok: the map was closed once" in out
    assert "after close: <rcfd.FD CLOSED" in out


def test_eventfd_wakeup() -> None:
    out = run("eventfd_wakeup")
    assert "consumed 1000 of 1000 items" in out
    assert "ok: the consumer was woken by on_closing" in out


def test_socket_shutdown() -> None:
    out = run("socket_shutdown")
    assert "reader got b'hello world'" in out
    assert "ok: the blocked reader saw end-of-file" in out


def test_asyncio_aclose() -> None:
    out = run("asyncio_aclose")
    assert out.count("closed, stopping") == 3
    assert "ok: no descriptor leaked" in out
