"""The keep decision: what changed, measured side by side, judged, committed or reverted, recovered."""
