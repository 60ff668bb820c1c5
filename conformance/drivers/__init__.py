"""Drivers: programs that speak conformance/PROTOCOL.md for one FD implementation.

rcfd_driver    the Python FD (rcfd), optionally with a planted bug (plants)
rcfd_threads   rcfd.FD driven by logical threads; also used in-process by tests/
plants         FD subclasses that each break one rule, to see the runner fail
"""
