"""Text and pages for people and for the agent, rendered from what they are handed."""
