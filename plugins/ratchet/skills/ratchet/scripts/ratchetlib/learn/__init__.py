"""What the agent learns from the record: hints, ideas, escalation, the bandit, program.md."""
