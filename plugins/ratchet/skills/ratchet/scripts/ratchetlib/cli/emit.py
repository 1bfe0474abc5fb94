"""How a verb prints: `--json` gets the data as given, anything else the
human text made printable (term.printable), so a trial's or the agent's
text can never drive the terminal. Shared by every handler module."""

import json

from ..core import term


def emit(args, human: str, data, painted: bool = False) -> None:
    """Print `data` as JSON (text intact, as the agent or benchmark gave it)
    or `human`, made printable (term.printable: control characters and bidi
    overrides shown as visible escapes). A `painted` text carries ratchet's
    own colour and was made printable piece by piece by its view."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=1))
    else:
        print(human if painted else term.printable(human))


def verdict_json(run, rec, notes):
    """What iterate, decide, baseline and run-trial print under --json."""
    return {"record": rec, "recovered": notes, "next": "stop" if run.state.stop else "continue",
            "stop": run.state.stop}

