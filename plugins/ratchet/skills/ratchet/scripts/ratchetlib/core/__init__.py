"""Rules: pure where possible, no process, no git, no .ratchet/ file. Config, the decision and
its statistics, constraints, Pareto, paths, errors, the text helpers. Imports nothing above it."""
