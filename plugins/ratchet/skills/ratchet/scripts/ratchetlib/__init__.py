"""ratchet's CLI core, one folder per layer. Read top to bottom: a module
imports only from its own folder or the folders above it
(tests/test_layers.py checks it).

  core/      the rules, pure: config (+ steering, flag_paths), decision, the statistics (effects,
             noise, sprt, gain, robust, student_t), pareto, constraints, paths, errors, text
  io/        the edges: store (the one writer of .ratchet/), gitops (+ githistory, gitpatch), runner,
             seal, harness pins, what a trial may not carry over (carry, fresh, startup, gitguard),
             artifacts, unclean
  measure/   a command becomes a number: capture, metrics, sources (+ tfevents), guard, holdout
  learn/     what the record teaches the next proposal: hints, ideas, escalation, bandit, program
  keep/      the keep decision: candidate, paired measurement, judge, the one decision tail, recovery
  present/   what people and the agent read: views, report
  verbs/     the verbs (session, chain, ship, doctor(_*), detect(_*), demo; loop/ the headless loop)
  cli/       the command line, outermost: flags (the parser table), one handler per verb, main

`ratchet.py` checks the Python version and calls cli.main; nothing imports cli/.
"""
