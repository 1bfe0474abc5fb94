"""`loop`: one fresh agent per iteration (headless), N at once (parallel), its calls and prompt."""
