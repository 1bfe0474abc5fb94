"""The report's figures, read from the run's dicts: start, best, verified
gain, decision counts, top wins, effects, the metrics of a multi-metric run.

Pure: the caller passes config.json, state.json and the records of
results.jsonl (FORMATS.md) as dicts. Records are read defensively (a
missing or null figure is shown as "–", never a crash), because a report is
most wanted exactly when a run went wrong. markdown.py and page.py render
these figures; ship.py and finalize's commit messages reuse `effect_summary`.

Optional inputs, all shaped by later verbs:
- `verified`: `{"gain_pct": 3.1, "interval": [1.2, 5.0], "pairs": 8}` from
  `verify` (percent, positive = better; shown as its `change_pct`, the
  metric's own change, see change.py); falls back to `state["verified"]`.
  Without it the report says the gain is not verified: it never sums per-keep
  deltas, which overstate the gain.
- `pareto`: `[{"iter": 7, "metrics": {"latency": 12.0, "throughput": 310.0}}]`,
  the frontier of kept results when the run has several metrics.
- `holdout`: `{"name": "eval.py", "start": 0.81, "best": 0.84,
  "gain_pct": 3.7, "interval": [..], "held": true, "note": "why held is
  unknown"}` (every key optional).
"""

from ..core import change, headline
from ..core.text import MISSING_DOC, clip, finite, num, pct
from ..core.memory import improvement

TOP_WINS = 5
FAILED = ("crash", "timeout")
_DECISIONS = ("keep", "revert", "crash", "timeout", "invalid", "no-change")


# ---------------------------------------------------------------- numbers ---

def interval_of(value):
    """`[lo, hi]` as two finite floats in order, or None."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    lo, hi = finite(value[0]), finite(value[1])
    if lo is None or hi is None:
        return None
    return (lo, hi) if lo <= hi else (hi, lo)


def fmt(value, digits=6):
    """A metric value in the report: core/text.num with the report's `–` for a missing one."""
    return num(value, missing=MISSING_DOC, digits=digits)


def signed(value):
    v = finite(value)
    if v is None:
        return "–"
    return ("+" if v > 0 else "") + fmt(v, 4)


def pct_text(value, signed=True):
    """A percentage with one decimal (two significant digits when tiny)."""
    v = finite(value)
    return "–" if v is None else pct(v, signed)


# ---------------------------------------------------------------- summary ---

def config_direction(config):
    return "min" if config.get("direction") == "min" else "max"


def better_word(direction):
    return "lower is better" if direction == "min" else "higher is better"


def is_better(a, b, direction):
    return a < b if direction == "min" else a > b


def iter_of(record):
    it = record.get("iter")
    return it if isinstance(it, int) and not isinstance(it, bool) else None


def _counts(records):
    """Decisions after the baseline, the six of FORMATS.md first (zeros
    included), then any later kinds (`constraint`, `guard-failed`) seen."""
    counts = dict.fromkeys(_DECISIONS, 0)
    for r in records:
        d = r.get("decision")
        if isinstance(d, str) and d != "baseline":
            counts[d] = counts.get(d, 0) + 1
    return counts


def _best(state, records, direction):
    """(best value, its iteration): state's pointer when it has one, else the
    best average among kept records."""
    best, best_iter = finite(state.get("best")), state.get("best_iter")
    if best is not None:
        return best, best_iter
    for r in records:
        avg = finite(r.get("avg"))
        if r.get("kept") and avg is not None and (best is None or is_better(avg, best, direction)):
            best, best_iter = avg, iter_of(r)
    return best, best_iter


def log_scale_of(record):
    """Whether the record's paired `estimate`/`interval` are log-ratios (the
    default of core/sprt.py) rather than differences in metric units."""
    return record.get("log_scale") is not False


def _effect_interval_text(record, direction):
    """'[-5.0%, -1.2%]': the interval of a record with a paired estimate, as
    changes of the metric itself (change.py), else ''."""
    iv = interval_of(record.get("interval"))
    if iv is None or finite(record.get("estimate")) is None:
        return ""
    scale = log_scale_of(record)
    return change.bracket(*(change.metric_change(x, direction, scale) for x in iv))


def effect_summary(record, direction):
    """'+12.3 (10.1% better)', with the recorded interval when there is one;
    the percentage is the metric's own change (a 137x cut reads '99.3%
    better, 137x lower'), its sign in the interval. The raw difference of
    means is left out when its sign contradicts the paired estimate."""
    delta = finite(record.get("delta"))
    chg = change.record_change(record, direction)
    if delta is not None and chg is not None and delta * chg < 0:
        delta = None  # the means disagree with the paired estimate that decided: one figure, the test's
    parts = [signed(delta)] if delta is not None else []
    if chg is not None:
        better = (chg >= 0) == (direction != "min")
        rel = f"{pct_text(abs(chg) * 100, signed=False)} {'better' if better or chg == 0 else 'worse'}"
        rel += f", {change.factor(chg)}" if change.factor(chg) else ""
        interval = _effect_interval_text(record, direction)
        parts.append(f"({rel}, {interval})" if interval else f"({rel})")
    return " ".join(parts) or "–"


def run_summary(config, state, records, *, verified=None, top=TOP_WINS):
    """The report's figures as plain data (also what `status --json` may
    show): start, best, verified gain, decision counts, top wins."""
    direction = config_direction(config)
    start = finite(state.get("baseline"))
    if start is None:
        start = next((finite(r.get("avg")) for r in records if r.get("decision") == "baseline"), None)
    best, best_iter = _best(state, records, direction)
    change = None
    if start is not None and best is not None and start != 0:
        change = (best - start) / abs(start) * 100
    keeps = [r for r in records if r.get("decision") == "keep"]

    def rank(record):
        gain = improvement(record, direction)
        return (gain is None, -(gain or 0.0))
    wins = sorted(keeps, key=rank)[:top]
    verified = verified if verified is not None else state.get("verified")
    return {"metric": config.get("metric_name") or "metric", "direction": direction,
            "start": start, "best": best, "best_iter": best_iter, "change_pct": change,
            "verified": verified, "verified_current": headline.current(verified, state.get("incumbent_sha")) is not None,
            "head_iter": state.get("incumbent_iter"), "counts": _counts(records), "top_wins": wins}


def gain_text(gain):
    """'+3.1% [+1.2%, +5.0%]' from a dict with `gain_pct` and maybe
    `interval` (percent), or None when it carries no gain."""
    if not isinstance(gain, dict) or finite(gain.get("gain_pct")) is None:
        return None
    text = pct_text(gain["gain_pct"])
    iv = interval_of(gain.get("interval"))
    return text + (f" [{pct_text(iv[0])}, {pct_text(iv[1])}]" if iv else "")


def pairs_of(verified):
    pairs = verified.get("pairs") if isinstance(verified, dict) else None
    return pairs if isinstance(pairs, int) and not isinstance(pairs, bool) else None


def verified_gain(verified, direction="max"):
    """The verified gain as the metric's own change (change.py), or None."""
    if not isinstance(verified, dict) or finite(verified.get("gain_pct")) is None:
        return None
    pct, iv = change.verified_change(verified, direction)
    if pct is None:
        return None
    return change.percent(pct / 100) + (f" {change.bracket(iv[0] / 100, iv[1] / 100)}" if iv else "")


def verified_text(verified, direction="max", current=True, head_iter=None):
    """'+3.1% [+1.2%, +5.0%] over 8 pairs (HEAD at iter 7 vs the start)', or
    why there is none: never re-measured, or re-measured for an earlier best
    (`current` False; `head_iter` the iteration HEAD was kept at)."""
    text = verified_gain(verified, direction)
    head = f"HEAD (iter {head_iter})" if head_iter is not None else "HEAD"
    if text is None:
        return f"not yet re-measured for {head} (run `ratchet.py verify`)"
    pairs = pairs_of(verified)
    it = verified.get("iter")
    text += (f" over {pairs} pairs" if pairs is not None else "") + (
        f" (HEAD at iter {it} vs the start)" if it is not None else " (HEAD vs the start)")
    if not current:
        return f"not yet re-measured for {head}; the last re-measure, of an earlier best: {text}"
    return text


def headline_text(summary):
    """The report's gain line from `run_summary`: verified_text, or why there is nothing to re-measure."""
    if not summary["counts"].get("keep") and summary["verified"] is None:
        return "nothing was kept, so there is nothing to re-measure"
    return verified_text(summary["verified"], summary["direction"], summary["verified_current"], summary["head_iter"])


def best_text(summary):
    """'118 at iter 7 (measured in its own decision, not re-measured)': the
    best's own mean, labelled; no percentage, which would read as the gain."""
    text = fmt(summary["best"])
    if summary["best_iter"] is not None:
        text += f" at iter {summary['best_iter']}"
    return text + (f" ({headline.NAIVE_LABEL})" if summary["best_iter"] else "")



def counts_text(counts):
    total = sum(counts.values())
    body = " · ".join(f"{k} {v}" for k, v in counts.items())
    return f"{total} iterations: {body}"


def progress_bits(config, state):
    bits = []
    if config.get("run_id"):
        bits.append(f"run {config['run_id']}")
    it, cap = state.get("iteration"), config.get("iterations")
    if isinstance(it, int) and it >= 0:
        bits.append(f"iteration {it}" + (f" of {cap}" if isinstance(cap, int) else ""))
    bits.append(f"stopped: {state['stop']}" if state.get("stop") else "running")
    return bits


# ------------------------------------------------------- several metrics ---

def metric_directions(config):
    """{name: 'max'|'min'} of the declared metrics, primary first. Accepts a
    `metrics` list of {"name", "direction"} or "NAME:dir", or a dict."""
    out = {}
    if config.get("metric_name"):
        out[config["metric_name"]] = config_direction(config)
    declared = config.get("metrics")
    items = declared.items() if isinstance(declared, dict) else []
    if isinstance(declared, (list, tuple)):
        items = []
        for m in declared:
            if isinstance(m, dict) and m.get("name"):
                items.append((m["name"], m.get("direction")))
            elif isinstance(m, str):
                name, sep, d = m.rpartition(":")
                items.append((name, d) if sep else (m, None))
    for name, d in items:
        out[str(name)] = d if d in ("max", "min") else out.get(str(name))
    return out


def metric_value(record, name, primary):
    metrics = record.get("metrics")
    if isinstance(metrics, dict) and name in metrics:
        return finite(metrics[name])
    return finite(record.get("avg")) if name == primary else None


def metric_names(config, records, pareto):
    """Every metric the run knows of, declared ones first."""
    names = list(metric_directions(config))
    for source in (pareto or [], records):
        for r in source:
            m = r.get("metrics") if isinstance(r, dict) else None
            if isinstance(m, dict):
                names += [str(k) for k in m if str(k) not in names]
    return names


def scatter_metrics(config, records, pareto):
    """The two metrics to plot against each other, or None: the primary and
    the first other one that some record or frontier entry actually has."""
    primary = config.get("metric_name")
    names = metric_names(config, records, pareto)
    rows = list(records) + list(pareto or [])
    have = [n for n in names if any(metric_value(r, n, primary) is not None for r in rows)]
    return (have[0], have[1]) if len(have) >= 2 else None


def md_cell(text, limit=160):
    """One table-safe line: whitespace collapsed, pipes escaped."""
    return clip(text, limit).replace("|", "\\|")


def holdout_text(holdout, quote="`"):
    name = f" {quote}{md_cell(holdout['name'], 60)}{quote}" if holdout.get("name") else ""
    text = f"holdout{name}: start {fmt(holdout.get('start'))} → best {fmt(holdout.get('best'))}"
    gain = gain_text(holdout)
    if gain is not None:
        text += f" ({gain})"
    if holdout.get("held") is not None:
        text += ": the gain held" if holdout["held"] else ": the gain did NOT hold"
    elif holdout.get("note"):
        text += f": {clip(holdout['note'], 200)}"
    return text


def pareto_rows(config, records, pareto):
    """(metric names with directions, rows of [iter, values..., hypothesis])."""
    primary = config.get("metric_name")
    dirs = metric_directions(config)
    names = [n for n in metric_names(config, records, pareto)
             if any(metric_value(p, n, primary) is not None for p in pareto)]
    by_iter = {iter_of(r): r for r in records}
    rows = []
    for p in pareto:
        rec = by_iter.get(iter_of(p), {})
        vals = [metric_value(p, n, primary) if isinstance(p.get("metrics"), dict)
                else metric_value(rec, n, primary) for n in names]
        rows.append((p.get("iter"), vals, p.get("hypothesis") or rec.get("hypothesis")))
    return [(n, dirs.get(n)) for n in names], rows
