"""Conformance for ports: replay specs/traces/*.json through any FD.

  conformance.PROTOCOL.md      the JSON-lines protocol a port's driver speaks
  conformance.replay           one trace step against a port, bounded waits only
  conformance.runner           replays every trace through a driver program and
                               reports per trace and per guarantee
  conformance.driver_process   a driver program seen through the protocol
  conformance.drivers          the Python FD's driver (and planted bugs)

It sits beside specs/ rather than in it: specs/ holds what a port must do
(text and data), this folder holds a program that checks it. It reads the
traces and nothing of model/ or rcfd/, so that a port can run it unchanged.
"""
