"""The JSON-lines protocol between the runner and a driver (PROTOCOL.md).

One JSON object per line, UTF-8, on the driver's stdin (requests from the
runner) and stdout (replies and events from the driver). A request with an
"op" other than "call" gets exactly one reply, {"reply": <op>, ...}; a call
gets none: what it does comes as events, {"event": ...}, at any time and
from any of the driver's threads (each line written whole).
"""

from __future__ import annotations

import json
from typing import Any

from conformance.replay import Report

PROTOCOL = "rcfd-conformance/1"

# The capability tags a trace may need (specs/traces.md, "Capability tags"):
# a driver lists those its FD supports in its hello reply, and the runner
# skips a trace whose tags are not all there.
TAGS = (
    "needs-finalizer",
    "needs-cycle-finalizer",
    "needs-thread-identity",
    "needs-async-exceptions",
    "needs-borrow-object",
)


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":")) + "\n"


def event(report: Report) -> dict[str, Any]:
    """A report as the event line a driver writes."""
    if report.kind == "returned":
        return {"event": "returned", "id": report.call_id, "result": report.result}
    if report.kind == "entered":
        return {"event": "entered", "id": report.call_id, "result": report.result}
    if report.kind == "paused":
        return {"event": "paused", "thread": report.thread, "callback": report.result}
    return {"event": "anomaly", "what": report.result}


def report(message: dict[str, Any]) -> Report:
    """An event line as the runner's Report; ValueError if it is none."""
    kind = message.get("event")
    if kind == "returned":
        return Report("returned", int(message["id"]), result=str(message["result"]))
    if kind == "entered":
        return Report("entered", int(message["id"]), result=str(message.get("result", "ok")))
    if kind == "paused":
        return Report("paused", thread=int(message["thread"]), result=str(message["callback"]))
    if kind == "anomaly":
        return Report("anomaly", result=str(message["what"]))
    raise ValueError(f"not an event: {message}")
