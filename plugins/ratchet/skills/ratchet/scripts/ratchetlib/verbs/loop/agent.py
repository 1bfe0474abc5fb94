"""The headless loop's contract with an agent CLI: how it is started and what
it reports back. Pure functions; the loop driver (headless.py) runs them.

Start: the command is a shell command; `{prompt_file}` in it is replaced by
the (quoted) path of the iteration prompt, otherwise the prompt is its stdin.
Its environment carries RATCHET_PROMPT_FILE, RATCHET_ITERATION and
RATCHET_REPO (and RATCHET_SLOT with --parallel).

Report: the agent cannot write under `.ratchet/` (it is protected), so it
ends its final message with two lines

    HYPOTHESIS: why the change should improve the metric
    DESCRIPTION: what was changed

read from its stdout. When stdout is Claude Code's `--output-format json`
(one JSON object) or `stream-json` (its last `"type": "result"` line), the
final message is that object's `result`, and `total_cost_usd` and `usage`
give the call's cost and tokens; `is_error: true` marks a failed call. Any
other agent CLI that prints such an object as its last stdout line is read
the same way; one that prints plain text is read for the two lines only.
"""

from __future__ import annotations

import json
import math
import re
import shlex

from ...core import record
from ...core.text import clip

PLACEHOLDER = "{prompt_file}"
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
_LINE = re.compile(r"^[\s>*_#`-]*(HYPOTHESIS|DESCRIPTION)[*_`]*\s*:[\s*_`]*(.*?)[\s*_`]*$", re.I | re.M)
_CLIP = 300


class Report(record.Record):
    """What one agent call said about itself."""

    hypothesis: str
    description: str
    reported: bool                 # a HYPOTHESIS line was found
    cost_usd: float | None = None
    tokens: int | None = None
    usage: dict | None = None
    is_error: bool = False
    error: str | None = None    # Claude's error text when is_error


def command(template: str, prompt_file: str) -> tuple:
    """(shell command, whether the prompt goes on stdin)."""
    if PLACEHOLDER in template:
        return template.replace(PLACEHOLDER, shlex.quote(prompt_file)), False
    return template, True


def _result_object(stdout: str) -> dict | None:
    """Claude's result object: the whole output, or the last JSON line of type result."""
    text = stdout.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
            if isinstance(obj, dict):
                return obj
        except ValueError:
            pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and (obj.get("type") == "result" or "total_cost_usd" in obj):
            return obj
    return None


def _finite(x) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def usage_tokens(usage) -> int | None:
    """Every token the call processed: input, output, cache writes and cache reads."""
    if not isinstance(usage, dict):
        return None
    vals = [_finite(usage.get(k)) for k in TOKEN_FIELDS]
    vals = [v for v in vals if v is not None]
    return int(sum(vals)) if vals else None


def parse_report(stdout: str) -> Report:
    """Read an agent's stdout (see the module docstring)."""
    obj = _result_object(stdout)
    text, cost, usage, is_error, error = stdout, None, None, False, None
    if obj is not None:
        text = obj.get("result") if isinstance(obj.get("result"), str) else ""
        cost = _finite(obj.get("total_cost_usd"))
        raw = obj.get("usage")
        if isinstance(raw, dict):
            usage = {k: int(raw[k]) for k in TOKEN_FIELDS if _finite(raw.get(k)) is not None}
        is_error = bool(obj.get("is_error")) or str(obj.get("subtype") or "success") != "success"
        if is_error:
            error = clip(text or obj.get("subtype") or "the agent reported an error", 200)
    found = {}
    for m in _LINE.finditer(text or ""):
        if m.group(2).strip():
            found[m.group(1).upper()] = m.group(2).strip()
    hyp = found.get("HYPOTHESIS")
    if hyp is None:
        lines = [l.strip() for l in (text or "").splitlines() if l.strip()]
        hyp = ("(no HYPOTHESIS line) " + lines[-1]) if lines else "(the agent reported no hypothesis)"
    return Report(clip(hyp, _CLIP), clip(found.get("DESCRIPTION", ""), _CLIP), "HYPOTHESIS" in found, cost,
                  usage_tokens(usage), usage or None, is_error, error)
