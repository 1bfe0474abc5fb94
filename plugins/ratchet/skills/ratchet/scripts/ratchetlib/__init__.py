"""ratchet's CLI core: one module per job. `ratchet.py` parses flags and prints;
everything it does goes through the workflows below. Data flows one way:
workflows use the edges, the edges use the rules, never the reverse.

Inputs and rules (pure where possible)
  config       validate the init flags into a frozen Config (config.json)
  paths        pathspec matching: editable / protected / outside
  sources      tracker report sources (json, jsonl, csv, hf, wandb, tensorboard, lightning)
  metrics      read the number from a captured report, line by line
  constraints  hard and soft limits (--constraint, --warn)
  pareto       several primary metrics: better on one, worse on none
  stats        paired effects, the sequential test, noise, verified gain
  change       effects as people read them: the change of the metric itself
  decision     keep/revert of a mean of trials; stop conditions

Side effects at the edges
  runner       run one command in its own session; kill its whole tree
  keeper       the trial's parent and subreaper; outlives a killed ratchet; freeze_kill
  leftovers    what a killed command left: end what is provably its, list the rest
  capture      move stale reports aside, read the fresh one after a trial
  clip         keep head and tail of huge captured output
  heartbeat    progress of long trials; term: colour only for people
  gitops       every git call            store   .ratchet/ files (FORMATS.md), the lock
  harness      SHA-256 pins of the protected files; tamper detection and restore
  gitguard     git's own configuration (config, attributes, exclude, hooks) pinned like the harness
  carry        what a run writes outside its diff, undone before the other side runs
               (startup: Python's startup hooks outside the repository); the user's untracked files
  guard        the regression gate       holdout  the evaluation the agent never sees
  artifacts    best checkpoints into .ratchet/best/   unclean  survivors block trials
  faults       injected faults for tests (RATCHET_FAULT)

Workflows
  engine       init, baseline, iterate/step, run-trial/score/decide, stop, recover
  learning     hints, ideas, escalation, bandit, program.md, folded into each decision
               (pure parts: hints, ideas, escalation, bandit, program)
  headless     `loop`: agent, prompt, budget, parallel
  chain        follow-up runs (lineage)
  reporting    `report` and the status trend (report: Markdown/HTML/SVG, pure)
  ship         `diff` and `finalize`        doctor   preflight before init
  detect       probe a project for a likely init    demo   the built-in example
  views        the short texts the agent reads every iteration
"""
