"""The independent model of the FD lifecycle: specs/rcfd.md written a second time.

It imports nothing from rcfd, so that rcfd can be judged against it.

  model.vocabulary  the words: commands and their arguments, results, Call,
                    Callback, TableEvent, Observation, Step
  model.lifecycle   the abstract FD shared by logical threads: state, per-thread
                    stacks (borrows, blocked calls, paused callbacks), borrows
                    held by generators, closers, callback counts, registry
  model.guarantees  guarantees 1-10 of specs/rcfd.md as checks on that state
  model.machine     the Hypothesis RuleBasedStateMachine over it (one rule per
                    call, split where a call blocks or a callback pauses);
                    tests/test_model_vs_fd.py runs the same rules on a real rcfd.FD
  model.timeline    a run printed as a table: thread, call, what returned, FD after
  model.scenarios   the programs behind the conformance traces
  model.traces      specs/traces/*.json for ports (`python -m model.traces`)
  model.spec_table  specs/rcfd.md's transition table as data, row ids, specs/transitions.json
"""
