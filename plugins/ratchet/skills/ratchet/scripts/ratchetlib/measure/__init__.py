"""A command becomes a number: capture, metric readers (stdout, report files, TensorBoard),
heartbeats, and the guard and holdout commands that are measured the same way."""
