"""ratchet's CLI core, one folder per layer. Read top to bottom: a module
imports only from its own folder or the folders above it
(tests/test_layers.py checks it).

  core/      the rules, pure: config, decision, stats, pareto, constraints, paths, errors, text
  io/        the edges: store (the one writer of .ratchet/), gitops, runner, seal, harness pins,
             what a trial may not carry over (carry, fresh, startup, gitguard), artifacts, unclean
  measure/   a command becomes a number: capture, metrics, sources (+ tfevents), guard, holdout
  learn/     what the record teaches the next proposal: hints, ideas, escalation, bandit, program
  keep/      the keep decision: candidate, paired measurement, judge, the one decision tail, recovery
  present/   what people and the agent read, rendered from what it is handed: views, figures, markdown, page, chart, svg, trend
  verbs/     the verbs (session, chain, ship, doctor, detect, demo, report, show, tail; loop/ the headless loop)

`ratchet.py` parses flags and prints; everything it does goes through verbs/.
"""
