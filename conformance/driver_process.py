"""A driver program, seen through the protocol as a conformance.replay.Port.

One reader thread splits the driver's stdout into replies (to the request
the runner is waiting on) and events (reports, consumed by settle). A line
that is not JSON, a reply that does not come within the wait, or the driver
exiting is a DriverError: the runner fails the trace in progress and starts
the driver again for the next one.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import threading
from collections import deque
from typing import Any

from conformance.protocol import encode, report
from conformance.replay import Report

REPLY_S = 10.0  # a request other than a call is answered within this (begin, end)


class DriverError(Exception):
    """The driver broke the protocol, stopped answering, or exited."""


class DriverProcess:
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.replies: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self.events: queue.SimpleQueue[Report | None] = queue.SimpleQueue()
        self.stderr: deque[str] = deque(maxlen=40)  # the driver's last words, for messages
        self.broken: str | None = None
        assert self.proc.stderr is not None
        threading.Thread(target=self._read, name="driver-stdout", daemon=True).start()
        threading.Thread(
            target=self.stderr.extend, args=(self.proc.stderr,), name="driver-stderr", daemon=True
        ).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                message = json.loads(line)
                if "event" in message:
                    self.events.put(report(message))
                elif "reply" in message:
                    self.replies.put(message)
                else:
                    raise ValueError("neither a reply nor an event")
            except (ValueError, KeyError, TypeError) as exc:
                self.broken = f"driver wrote {line.strip()!r}: {exc}"
                break
        self.broken = self.broken or "driver closed its stdout (exited?)"
        self.replies.put(None)
        self.events.put(None)

    # -- requests ----------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        if self.broken:
            raise DriverError(self.broken)
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(encode(message))
            self.proc.stdin.flush()
        except OSError as exc:
            raise DriverError(f"cannot write to the driver: {exc}") from None

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        self.send({"op": op, **fields})
        try:
            reply = self.replies.get(timeout=REPLY_S)
        except queue.Empty:
            raise DriverError(f"no reply to {op} within {REPLY_S}s") from None
        if reply is None:
            raise DriverError(self.broken or "driver exited")
        if reply.get("reply") != op or "error" in reply:
            raise DriverError(f"to {op}, the driver replied {reply}")
        return reply

    # -- the Port ----------------------------------------------------------

    def next_report(self, timeout: float) -> Report | None:
        try:
            got = self.events.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        if got is None:
            self.events.put(None)  # stays broken for every later wait
            raise DriverError(self.broken or "driver exited")
        return got

    def observe(self) -> dict[str, object]:
        after = self.request("observe")["after"]
        if not isinstance(after, dict):
            raise DriverError(f"observe replied {after!r}, not an object")
        return after

    def drain(self) -> list[Report]:
        """Take every event already received (after `end`: the trace's last
        reports, written before its reply, so none can come later)."""
        taken: list[Report] = []
        with contextlib.suppress(queue.Empty):
            while (got := self.events.get_nowait()) is not None:
                taken.append(got)
            self.events.put(None)  # the end stays for every later wait
        return taken

    def kill(self) -> None:
        """Kill the driver at once, without asking it to end the trace (after a
        failed step, when its teardown would wait out what that step left
        blocked); a later stop() finds it gone."""
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:  # not after kill(): no request to a dead driver
            with contextlib.suppress(DriverError):
                self.request("quit")
        try:
            self.proc.wait(REPLY_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        # A write to a driver that had died (killed after -x) leaves its bytes
        # in the pipe's buffer; closed here, not flushed at exit into a
        # BrokenPipeError printed after the report.
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
