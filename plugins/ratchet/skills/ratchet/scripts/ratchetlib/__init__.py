"""ratchet's CLI core, one folder per layer. Read top to bottom: a module
imports only from its own folder or the folders above it (tests/test_layers.py
checks it, imports inside functions included, and that there is no cycle).

  core/      the rules, pure: config (+ steering, flag_paths, sourcespec), state (the typed RunState,
             the pure apply_record and the only transitions; with memory and escalation, its folds),
             decision, headline (the one honest gain figure), the paired statistics (effects,
             student_t, robust, noise, sprt, gain, power), constraints, pareto, change, paths,
             errors, faults, text, term, sha256, seal_format (a sealed file's bytes); record (the frozen
             value classes, without dataclasses)
  io/        the edges: store* (the one writer of .ratchet/: store, store_files, store_lock,
             store_seal, store_best; store_rename, every write-aside-and-rename),
             workspace (the open run), gitops (+ githistory, gitpatch, gitroot, gitfilters),
             swapfiles (a paired side's files written back),
             runner + keeper + critical + procs + leftovers (a trial's processes), executor (local, slurm,
             ray), seal, harness pins, what a trial may not carry over (carry + treescan, fresh, startup,
             gitguard), artifacts, unclean, lineage, clip
  measure/   a command becomes a number: trial (the one place), capture, metrics, sources
             (+ reading, trackers, tfevents), heartbeat, guard, holdout
  learn/     what the record teaches the next proposal: hints, ideas, bandit, critic, program,
             learning (the glue)
  keep/      the keep decision: candidate, strategy (mean | paired behind one measure), judge
             (pure), integrity (harness, seal, git config, carry, the guard gate), finish (the
             crash-order contract and the one decision tail), recover, recheck (verify)
  present/   what people and the agent read, rendered from what it is handed: views, figures,
             markdown, page, chart, svg, trend
  verbs/     the verbs: session (init .. stop), loop/ (headless, parallel + remote, calls, agent, prompt),
             chain, ship, doctor, detect, report, show, tail, demo
  cli/       the parser table (flags), COMMANDS (main, each verb loaded only when called), the
             handlers that print

`ratchet.py` only checks the Python version and calls cli.main.
"""
