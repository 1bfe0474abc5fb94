"""What the headless loop's agents have spent, and whether a budget is used up.

Pure functions over plain dicts, so the state can be replayed by recovery
and every rule is unit-testable. A record's `agent` field (FORMATS.md) holds
one agent call's usage; a parallel round's record also holds its other
proposals in `alternatives`, each with its own `agent`. `fold` adds all of
them to the run's running totals (state.json `agent`), which is what the cost
and token budgets are checked against: O(1), whatever the history length.
"""

from __future__ import annotations

import math


def empty() -> dict:
    return {"calls": 0, "seconds": 0.0, "cost_usd": 0.0, "tokens": 0}


def _num(x) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def calls(rec: dict) -> list:
    """Every agent call a record accounts for (its own and its alternatives')."""
    found = [rec.get("agent")] + [a.get("agent") for a in rec.get("alternatives") or [] if isinstance(a, dict)]
    return [a for a in found if isinstance(a, dict)]


def fold(totals: dict | None, rec: dict) -> dict | None:
    """The totals after `rec`; None while no record ever carried an agent."""
    spent = calls(rec)
    if not spent:
        return totals
    out = {**empty(), **(totals or {})}
    for a in spent:
        out["calls"] += 1
        out["seconds"] = round(out["seconds"] + (_num(a.get("seconds")) or 0.0), 3)
        out["cost_usd"] = round(out["cost_usd"] + (_num(a.get("cost_usd")) or 0.0), 6)
        out["tokens"] += int(_num(a.get("tokens")) or 0)
    return out


def exhausted(totals: dict | None, max_cost_usd: float | None, max_tokens: int | None) -> str | None:
    """The agent budget that is used up, as a short reason, else None."""
    t = {**empty(), **(totals or {})}
    if max_cost_usd is not None and t["cost_usd"] >= max_cost_usd:
        return f"agent cost budget reached (${t['cost_usd']:.4f} of ${max_cost_usd:g})"
    if max_tokens is not None and t["tokens"] >= max_tokens:
        return f"agent token budget reached ({t['tokens']} of {max_tokens} tokens)"
    return None


def tokens_text(n) -> str:
    n = int(n or 0)
    return f"{n / 1e6:.2f}M" if n >= 10 ** 6 else (f"{n / 1e3:.1f}k" if n >= 10 ** 3 else str(n))


def duration(seconds) -> str:
    s = int(round(_num(seconds) or 0))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


def call_text(agent: dict) -> str:
    """One agent call in a few words: `agent 12s $0.0123 4.5k tokens`."""
    parts = [f"agent {duration(agent.get('seconds'))}"]
    if _num(agent.get("cost_usd")) is not None:
        parts.append(f"${agent['cost_usd']:.4f}")
    if _num(agent.get("tokens")) is not None:
        parts.append(f"{tokens_text(agent['tokens'])} tokens")
    return " ".join(parts)


def status_line(totals: dict | None, loop: dict | None) -> str | None:
    """The `status` line for a headless run: spent so far and the loop's state."""
    if not totals and not loop:
        return None
    t = {**empty(), **(totals or {})}
    line = (f"agent: {t['calls']} call(s) · ${t['cost_usd']:.4f} · {tokens_text(t['tokens'])} tokens"
            f" · {duration(t['seconds'])}")
    if loop:
        limits = [f"${loop['max_agent_cost_usd']:g}" if loop.get("max_agent_cost_usd") is not None else None,
                  f"{tokens_text(loop['max_agent_tokens'])} tokens" if loop.get("max_agent_tokens") is not None else None,
                  f"{duration(loop['max_wall_seconds'])} wall" if loop.get("max_wall_seconds") is not None else None]
        limits = [x for x in limits if x]
        state = loop.get("status") or "?"
        if loop.get("reason") and state != "running":
            state += f" ({loop['reason']})"
        line += f" · loop {state}" + (f" · budget {', '.join(limits)}" if limits else "")
    return line

