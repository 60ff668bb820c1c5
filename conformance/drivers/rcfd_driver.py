"""The Python FD's driver: conformance/PROTOCOL.md over rcfd.FD.

    python -m conformance.drivers.rcfd_driver [--plant NAME] [--without TAG]...

Reads requests from stdin, one JSON object per line, and answers on stdout;
conformance.drivers.rcfd_threads does the calls. --plant swaps rcfd.FD for a
subclass from conformance.drivers.plants that breaks one rule, so that the
runner can be seen to fail (tests/test_conformance.py); --without leaves a
capability tag out of the hello reply, as a port lacking it would, so that
the runner skips the traces that need it.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any, TextIO

import rcfd
from conformance.drivers.plants import PLANTS
from conformance.drivers.rcfd_threads import RcfdThreads
from conformance.protocol import PROTOCOL, TAGS, encode, event
from conformance.replay import Report


class Driver:
    def __init__(
        self, out: TextIO, fd_class: type[rcfd.FD], name: str, capabilities: list[str]
    ) -> None:
        self.out = out
        self.capabilities = capabilities
        self.lock = threading.Lock()  # one whole line at a time, from any thread
        self.fd_class = fd_class
        self.name = name
        self.fd: RcfdThreads | None = None

    def write(self, message: dict[str, Any]) -> None:
        line = encode(message)
        with self.lock:
            self.out.write(line)
            self.out.flush()

    def sink(self, report: Report) -> None:
        self.write(event(report))

    def handle(self, request: dict[str, Any]) -> bool:
        """Answer one request; False once the runner said quit."""
        op = request.get("op")
        if op == "call":
            assert self.fd is not None, "a call before begin"
            self.fd.send(
                int(request["id"]), int(request["thread"]), request["call"], request["arg"]
            )
            return True
        if op == "hello":
            self.write(
                {
                    "reply": "hello",
                    "protocol": PROTOCOL,
                    "driver": self.name,
                    "capabilities": self.capabilities,
                }
            )
        elif op == "begin":
            self.end()
            self.fd = RcfdThreads(int(request["threads"]), self.sink, self.fd_class)
            self.write({"reply": "begin"})
        elif op == "observe":
            assert self.fd is not None, "observe before begin"
            self.write({"reply": "observe", "after": self.fd.observe()})
        elif op == "end":
            self.write({"reply": "end", "problems": self.end()})
        elif op == "quit":
            self.end()
            self.write({"reply": "quit"})
            return False
        else:
            self.write({"reply": str(op), "error": f"unknown op {op!r}"})
        return True

    def end(self) -> list[str]:
        fd, self.fd = self.fd, None
        return [] if fd is None else fd.shutdown()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plant", choices=sorted(PLANTS), help="plant this bug in the FD")
    parser.add_argument("--without", choices=TAGS, action="append", default=[])
    args = parser.parse_args(argv)
    fd_class = PLANTS[args.plant] if args.plant else rcfd.FD
    name = f"rcfd (Python), planted: {args.plant}" if args.plant else "rcfd (Python)"
    capabilities = [tag for tag in TAGS if tag not in args.without]
    driver = Driver(sys.stdout, fd_class, name, capabilities)
    for line in sys.stdin:
        if line.strip() and not driver.handle(json.loads(line)):
            break
    driver.end()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
