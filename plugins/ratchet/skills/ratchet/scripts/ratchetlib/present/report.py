"""The run report: a Markdown summary, one self-contained HTML page with inline
SVG charts, and the sparkline `status` prints.

Every function here is pure: the caller loads config.json, state.json and the
records of results.jsonl (FORMATS.md) and passes them in as dicts, so a report
renders the same anywhere and is tested without a repository. Records are read
defensively (a missing or null figure is shown as "–", never a crash), because
a report is most wanted exactly when a run went wrong.

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
- a record's `interval` is drawn as a whisker. With a paired `estimate` it is
  a relative improvement like the estimate (0.02 = 2% better, see FORMATS.md),
  mapped back to metric units through the record's `incumbent`. Without
  `estimate` it is taken as already in metric units.

The HTML layout is fixed in pixels (`CHART_OFFSET`, `CHART_SIZE`,
`PLOT_MARGINS`) so a browser test can find the chart in a screenshot.
"""

import html as _html
import math

from ..core import change
from ..learn import hints

GENERATOR = "ratchet report"                # <meta name="generator">: tells our own page from a user's file
CHART_ID = "metric-chart"
SCATTER_ID = "pareto-chart"
CHART_SIZE = (1100, 440)
SCATTER_SIZE = (720, 440)
PAGE_PAD = 24
HEADER_HEIGHT = 150
CHART_OFFSET = (PAGE_PAD, HEADER_HEIGHT)   # page pixel of the chart's top-left
PLOT_MARGINS = (84, 52, 28, 56)            # left, top, right, bottom inside a chart
LANE = 22                                  # strip under the plot for runs with no score
TOP_WINS = 5
TABLE_ROWS = 500                           # history rows in the HTML before eliding
TITLE_LIMIT = 2000                         # records above which points lose tooltips
TEXT_CAP = 280                             # characters of a hypothesis in the table

COLORS = {"baseline": "#243b6b", "kept": "#12a07a", "reverted": "#f28e2b",
          "failed": "#d62839", "skipped": "#8a94a6", "trial": "#a9b3c4",
          "best": "#3b6fe0", "grid": "#e6e9ef", "axis": "#5b6475", "ink": "#1f2430"}
_FAILED = ("crash", "timeout")
_DECISIONS = ("keep", "revert", "crash", "timeout", "invalid", "no-change")
_SPARK = "▁▂▃▄▅▆▇█"
_SPARK_ASCII = "_.-:=+*#"


# ---------------------------------------------------------------- numbers ---

def _num(value):
    """A finite float, or None: records carry null (or junk) for missing figures."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _interval(value):
    """`[lo, hi]` as two finite floats in order, or None."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    lo, hi = _num(value[0]), _num(value[1])
    if lo is None or hi is None:
        return None
    return (lo, hi) if lo <= hi else (hi, lo)


def fmt(value, digits=6):
    """A metric value for people: `digits` significant digits, no exponent
    for everyday magnitudes, '–' for a missing value."""
    v = _num(value)
    if v is None:
        return "–"
    a = abs(v)
    if a == 0:
        return "0"
    if 1e-4 <= a < 1e10:
        digits = max(0, digits - 1 - math.floor(math.log10(a)))
        text = f"{v:.{digits}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{v:.{digits}g}"


def _signed(value):
    v = _num(value)
    if v is None:
        return "–"
    return ("+" if v > 0 else "") + fmt(v, 4)


def _pct(value, signed=True):
    """A percentage with one decimal (two significant digits when tiny)."""
    v = _num(value)
    return "–" if v is None else change.pct_number(v, signed)


def _clip(text, limit):
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


# ---------------------------------------------------------------- summary ---

def _direction(config):
    return "min" if config.get("direction") == "min" else "max"


def _better_word(direction):
    return "lower is better" if direction == "min" else "higher is better"


def _is_better(a, b, direction):
    return a < b if direction == "min" else a > b


def _iter(record):
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
    best, best_iter = _num(state.get("best")), state.get("best_iter")
    if best is not None:
        return best, best_iter
    for r in records:
        avg = _num(r.get("avg"))
        if r.get("kept") and avg is not None and (best is None or _is_better(avg, best, direction)):
            best, best_iter = avg, _iter(r)
    return best, best_iter


def _log_scale(record):
    """Whether the record's paired `estimate`/`interval` are log-ratios (the
    default of stats.py) rather than differences in metric units."""
    return record.get("log_scale") is not False


def _effect_interval_text(record, direction):
    """'[-5.0%, -1.2%]': the interval of a record with a paired estimate, as
    changes of the metric itself (change.py), else ''."""
    iv = _interval(record.get("interval"))
    if iv is None or _num(record.get("estimate")) is None:
        return ""
    scale = _log_scale(record)
    return change.bracket(*(change.metric_change(x, direction, scale) for x in iv))


def _effect_text(record, direction):
    """'+12.3 (10.1% better)', with the recorded interval when there is one;
    the percentage is the metric's own change (a 137x cut reads '99.3%
    better, 137x lower'), its sign in the interval."""
    delta = _num(record.get("delta"))
    chg = change.record_change(record, direction)
    parts = [_signed(delta)] if delta is not None else []
    if chg is not None:
        better = (chg >= 0) == (direction != "min")
        rel = f"{_pct(abs(chg) * 100, signed=False)} {'better' if better or chg == 0 else 'worse'}"
        rel += f", {change.factor(chg)}" if change.factor(chg) else ""
        interval = _effect_interval_text(record, direction)
        parts.append(f"({rel}, {interval})" if interval else f"({rel})")
    return " ".join(parts) or "–"


def summary(config, state, records, *, verified=None, top=TOP_WINS):
    """The report's figures as plain data (also what `status --json` may
    show): start, best, verified gain, decision counts, top wins."""
    direction = _direction(config)
    start = _num(state.get("baseline"))
    if start is None:
        start = next((_num(r.get("avg")) for r in records if r.get("decision") == "baseline"), None)
    best, best_iter = _best(state, records, direction)
    change = None
    if start is not None and best is not None and start != 0:
        change = (best - start) / abs(start) * 100
    keeps = [r for r in records if r.get("decision") == "keep"]

    def rank(record):
        gain = hints.improvement(record, direction)
        return (gain is None, -(gain or 0.0))
    wins = sorted(keeps, key=rank)[:top]
    return {"metric": config.get("metric_name") or "metric", "direction": direction,
            "start": start, "best": best, "best_iter": best_iter, "change_pct": change,
            "verified": verified if verified is not None else state.get("verified"),
            "counts": _counts(records), "top_wins": wins}


def _gain_text(gain):
    """'+3.1% [+1.2%, +5.0%]' from a dict with `gain_pct` and maybe
    `interval` (percent), or None when it carries no gain."""
    if not isinstance(gain, dict) or _num(gain.get("gain_pct")) is None:
        return None
    text = _pct(gain["gain_pct"])
    iv = _interval(gain.get("interval"))
    return text + (f" [{_pct(iv[0])}, {_pct(iv[1])}]" if iv else "")


def _pairs(verified):
    pairs = verified.get("pairs") if isinstance(verified, dict) else None
    return pairs if isinstance(pairs, int) and not isinstance(pairs, bool) else None


def _verified_gain(verified, direction="max"):
    """The verified gain as the metric's own change (change.py), or None."""
    if not isinstance(verified, dict) or _num(verified.get("gain_pct")) is None:
        return None
    pct, iv = change.verified_change(verified, direction)
    if pct is None:
        return None
    return change.percent(pct / 100) + (f" {change.bracket(iv[0] / 100, iv[1] / 100)}" if iv else "")


def _verified_text(verified, direction="max"):
    text = _verified_gain(verified, direction)
    if text is None:
        return "not verified yet (run `ratchet.py verify`)"
    pairs = _pairs(verified)
    return text + (f" over {pairs} pairs" if pairs is not None else "")


def effect_text(record, direction):
    """Public: '+5 (5.0% better)' for a record (finalize's commit messages)."""
    return _effect_text(record, direction)


def verified_text(verified, direction="max"):
    """Public: the verified gain as the report states it."""
    return _verified_text(verified, direction)


def gain_text(gain):
    """Public: '+3.1% [+1.2%, +5.0%]', or None when `gain` carries none."""
    return _gain_text(gain)


def _counts_text(counts):
    total = sum(counts.values())
    body = " · ".join(f"{k} {v}" for k, v in counts.items())
    return f"{total} iterations: {body}"


def _progress_text(config, state):
    bits = []
    if config.get("run_id"):
        bits.append(f"run {config['run_id']}")
    it, cap = state.get("iteration"), config.get("iterations")
    if isinstance(it, int) and it >= 0:
        bits.append(f"iteration {it}" + (f" of {cap}" if isinstance(cap, int) else ""))
    bits.append(f"stopped: {state['stop']}" if state.get("stop") else "running")
    return bits


# ------------------------------------------------------- several metrics ---

def _metric_directions(config):
    """{name: 'max'|'min'} of the declared metrics, primary first. Accepts a
    `metrics` list of {"name", "direction"} or "NAME:dir", or a dict."""
    out = {}
    if config.get("metric_name"):
        out[config["metric_name"]] = _direction(config)
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


def _metric_value(record, name, primary):
    metrics = record.get("metrics")
    if isinstance(metrics, dict) and name in metrics:
        return _num(metrics[name])
    return _num(record.get("avg")) if name == primary else None


def _metric_names(config, records, pareto):
    """Every metric the run knows of, declared ones first."""
    names = list(_metric_directions(config))
    for source in (pareto or [], records):
        for r in source:
            m = r.get("metrics") if isinstance(r, dict) else None
            if isinstance(m, dict):
                names += [str(k) for k in m if str(k) not in names]
    return names


def _scatter_metrics(config, records, pareto):
    """The two metrics to plot against each other, or None: the primary and
    the first other one that some record or frontier entry actually has."""
    primary = config.get("metric_name")
    names = _metric_names(config, records, pareto)
    rows = list(records) + list(pareto or [])
    have = [n for n in names if any(_metric_value(r, n, primary) is not None for r in rows)]
    return (have[0], have[1]) if len(have) >= 2 else None


# --------------------------------------------------------------- markdown ---

def _md(text, limit=160):
    """One table-safe line: whitespace collapsed, pipes escaped."""
    return _clip(text, limit).replace("|", "\\|")


def _holdout_text(holdout, quote="`"):
    name = f" {quote}{_md(holdout['name'], 60)}{quote}" if holdout.get("name") else ""
    text = f"holdout{name}: start {fmt(holdout.get('start'))} → best {fmt(holdout.get('best'))}"
    gain = _gain_text(holdout)
    if gain is not None:
        text += f" ({gain})"
    if holdout.get("held") is not None:
        text += ": the gain held" if holdout["held"] else ": the gain did NOT hold"
    elif holdout.get("note"):
        text += f": {_clip(holdout['note'], 200)}"
    return text


def _pareto_rows(config, records, pareto):
    """(metric names with directions, rows of [iter, values..., hypothesis])."""
    primary = config.get("metric_name")
    dirs = _metric_directions(config)
    names = [n for n in _metric_names(config, records, pareto)
             if any(_metric_value(p, n, primary) is not None for p in pareto)]
    by_iter = {_iter(r): r for r in records}
    rows = []
    for p in pareto:
        rec = by_iter.get(_iter(p), {})
        vals = [_metric_value(p, n, primary) if isinstance(p.get("metrics"), dict)
                else _metric_value(rec, n, primary) for n in names]
        rows.append((p.get("iter"), vals, p.get("hypothesis") or rec.get("hypothesis")))
    return [(n, dirs.get(n)) for n in names], rows


def markdown(config, state, records, *, verified=None, pareto=None, holdout=None):
    """The run summary on stdout: start, best, verified gain, outcomes, top
    wins with hypotheses and effects, Pareto frontier and holdout when given."""
    s = summary(config, state, records, verified=verified)
    out = [f"# ratchet report: {s['metric']} ({_better_word(s['direction'])})", ""]
    head = " · ".join(_progress_text(config, state))
    if config.get("run_command"):
        head += f" · `{_clip(config['run_command'], 120)}`"
    out += [head, ""]
    best = fmt(s["best"])
    if s["best_iter"] is not None:
        best += f" at iter {s['best_iter']}"
    if s["change_pct"] is not None:
        best += f" ({_pct(s['change_pct'])} vs start)"
    out += [f"- start (baseline): {fmt(s['start'])}", f"- best: {best}",
            f"- verified gain: {_verified_text(s['verified'], s['direction'])}",
            f"- outcomes, {_counts_text(s['counts'])}", ""]
    out += ["## Top wins", ""]
    if s["top_wins"]:
        out += ["| iter | effect | avg | hypothesis |", "| ---: | --- | ---: | --- |"]
        for r in s["top_wins"]:
            out.append(f"| {r.get('iter')} | {_effect_text(r, s['direction'])} | {fmt(r.get('avg'))} "
                       f"| {_md(r.get('hypothesis') or r.get('description') or '')} |")
    else:
        out.append("no iteration was kept.")
    if pareto:
        cols, rows = _pareto_rows(config, records, pareto)
        heads = [f"{_md(n, 40)} ({d})" if d else _md(n, 40) for n, d in cols]
        out += ["", f"## Pareto frontier ({len(rows)} point{'' if len(rows) == 1 else 's'})", "",
                "| iter | " + " | ".join(heads) + " | hypothesis |",
                "| ---: | " + " | ".join("---:" for _ in heads) + " | --- |"]
        for it, vals, hyp in rows:
            out.append(f"| {it} | " + " | ".join(fmt(v) for v in vals) + f" | {_md(hyp or '')} |")
    if isinstance(holdout, dict):
        out += ["", "## Holdout", "", _holdout_text(holdout)]
    return "\n".join(out) + "\n"


# -------------------------------------------------------------- sparkline ---

def sparkline(values, width=20, ascii=False):
    """The last `width` scores as one line of block characters (ASCII levels
    `_.-:=+*#` when `ascii`); a missing or non-finite score is `×` (`x`).
    Equal scores sit mid-height; an empty list gives ''."""
    levels, miss = (_SPARK_ASCII, "x") if ascii else (_SPARK, "×")
    vals = [_num(v) for v in list(values)[-width:]] if width > 0 else []
    finite = [v for v in vals if v is not None]
    if not finite:
        return miss * len(vals)
    lo, hi = min(finite), max(finite)
    top = len(levels) - 1
    out = []
    for v in vals:
        if v is None:
            out.append(miss)
        elif hi == lo:
            out.append(levels[top // 2])
        else:
            out.append(levels[round((v - lo) / (hi - lo) * top)])
    return "".join(out)


# ------------------------------------------------------------- svg pieces ---

def _e(text):
    return _html.escape(str(text), quote=True)


def _nice_step(span, target):
    """The round step (1, 2, 2.5 or 5 times a power of ten) whose tick count
    over `span` is closest to `target`."""
    mag = 10 ** math.floor(math.log10(span / target))
    steps = [m * mag for m in (1, 2, 2.5, 5, 10)]
    return min(steps, key=lambda step: abs(span / step - target))


def _axis(lo, hi, target=6, integer=False):
    """(domain_lo, domain_hi, ticks, step): the data's range with a little air
    and the round-number ticks inside it (see `_nice_step`); a zero range is
    widened so a flat line still reads (an iteration axis only to the right)."""
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo and integer:
        hi = lo + 1            # one iteration: no negative iteration numbers
    elif hi == lo:
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    elif not integer:
        air = (hi - lo) * 0.07
        lo, hi = lo - air, hi + air
    step = _nice_step(hi - lo, target)
    if integer:
        step = max(1, round(step))
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    ticks = [0.0 if i == 0 else i * step for i in range(first, last + 1)]
    return lo, hi, ticks, step


def _tick_label(value, step, span):
    """Round numbers with just enough decimals; exponent form when huge or tiny."""
    if span >= 1e7 or step < 1e-4:
        digits = max(1, math.floor(math.log10(span or 1)) - math.floor(math.log10(step)) + 1)
        return f"{value:.{min(digits, 12)}g}"
    decimals = next(d for d in range(13) if abs(round(step, d) - step) <= step * 1e-6 or d == 12)
    return f"{value:.{decimals}f}"


class _Frame:
    """A chart's plot box and the linear maps from data to pixels."""

    INSET = 14   # pixels between the plot's frame and the outermost x value

    def __init__(self, size, xs, ys, lane=0, x_integer=False):
        """`ys` may be empty (nothing scored): the y axis is then unlabelled."""
        self.w, self.h = size
        ml, mt, mr, mb = PLOT_MARGINS
        self.left, self.top = ml, mt
        self.right, self.bottom = self.w - mr, self.h - mb
        self.data_bottom = self.bottom - lane
        self.x0, self.x1, self.xticks, self.xstep = _axis(min(xs), max(xs), 10, x_integer)
        self.y0, self.y1, self.yticks, self.ystep = _axis(min(ys), max(ys), 6) if ys else (0.0, 1.0, [], 1.0)

    def x(self, v):
        inner = self.right - self.left - 2 * self.INSET
        return self.left + self.INSET + (v - self.x0) / (self.x1 - self.x0) * inner

    def y(self, v):
        return self.data_bottom - (v - self.y0) / (self.y1 - self.y0) * (self.data_bottom - self.top)

    def axes(self, xlabel, ylabel):
        """Grid, ticks, tick labels and axis titles."""
        c = COLORS
        out = [f'<rect x="{self.left}" y="{self.top}" width="{self.right - self.left}" '
               f'height="{self.bottom - self.top}" fill="#fbfcfe" stroke="{c["grid"]}"/>']
        yspan = max(abs(self.y0), abs(self.y1))
        for t in self.yticks:
            py = _r(self.y(t))
            out.append(f'<line x1="{self.left}" x2="{self.right}" y1="{py}" y2="{py}" stroke="{c["grid"]}"/>')
            out.append(f'<text x="{self.left - 8}" y="{py}" text-anchor="end" dominant-baseline="middle" '
                       f'class="tick">{_e(_tick_label(t, self.ystep, yspan))}</text>')
        xspan = max(abs(self.x0), abs(self.x1))
        for t in self.xticks:
            px = _r(self.x(t))
            out.append(f'<line x1="{px}" x2="{px}" y1="{self.bottom}" y2="{self.bottom + 5}" stroke="{c["axis"]}"/>')
            out.append(f'<text x="{px}" y="{self.bottom + 18}" text-anchor="middle" class="tick">'
                       f'{_e(_tick_label(t, self.xstep, xspan))}</text>')
        out.append(f'<line x1="{self.left}" x2="{self.right}" y1="{self.bottom}" y2="{self.bottom}" stroke="{c["axis"]}"/>')
        out.append(f'<line x1="{self.left}" x2="{self.left}" y1="{self.top}" y2="{self.bottom}" stroke="{c["axis"]}"/>')
        mid_x, mid_y = (self.left + self.right) / 2, (self.top + self.data_bottom) / 2
        out.append(f'<text x="{_r(mid_x)}" y="{self.h - 12}" text-anchor="middle" class="label">{_e(xlabel)}</text>')
        out.append(f'<text transform="translate(18 {_r(mid_y)}) rotate(-90)" text-anchor="middle" '
                   f'class="label">{_e(ylabel)}</text>')
        return out


def _r(v):
    """A pixel coordinate with one decimal: enough for the eye, short to store."""
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _legend(items, right_note, width):
    """One row of legend swatches at the chart's top, the direction on the right."""
    out, x = [], PLOT_MARGINS[0]
    y = 22
    for swatch, label in items:
        out.append(swatch(x + 7, y))
        out.append(f'<text x="{x + 22}" y="{y}" dominant-baseline="middle" class="legend">{_e(label)}</text>')
        x += 36 + 7 * len(label)
    out.append(f'<text x="{width - PLOT_MARGINS[2]}" y="{y}" text-anchor="end" dominant-baseline="middle" '
               f'class="note">{_e(right_note)}</text>')
    return out


def _mark(kind, x, y, title="", scale=1.0):
    """One marker for an iteration's average (or a lane entry), centred on
    (x, y); `scale` shrinks it when iterations crowd the axis."""
    tip = f"<title>{_e(title)}</title>" if title else ""
    x, y = float(x), float(y)
    if kind == "baseline":
        side = 11 * scale
        return (f'<rect class="mb" x="{_r(x - side / 2)}" y="{_r(y - side / 2)}" width="{_r(side)}" '
                f'height="{_r(side)}">{tip}</rect>')
    if kind == "failed":
        a = _r(4.5 * scale)
        b = _r(9 * scale)
        return f'<path class="mf" d="M{_r(x)} {_r(y)}m-{a}-{a}l{b} {b}m0-{b}l-{b} {b}">{tip}</path>'
    radius = {"kept": 5.5, "reverted": 4.5, "skipped": 3}[kind] * scale
    return f'<circle class="m{kind[0]}" cx="{_r(x)}" cy="{_r(y)}" r="{_r(radius)}">{tip}</circle>'


_SWATCH = {
    "baseline": lambda x, y: _mark("baseline", x, y),
    "kept": lambda x, y: _mark("kept", x, y),
    "reverted": lambda x, y: _mark("reverted", x, y),
    "failed": lambda x, y: _mark("failed", x, y),
    "skipped": lambda x, y: _mark("skipped", x, y),
    "trial": lambda x, y: f'<path class="tr" d="M{x - 5} {y}h0M{x} {y}h0M{x + 5} {y}h0"/>',
    "best": lambda x, y: f'<path class="bl" d="M{x - 9} {y + 4}H{x}V{y - 4}H{x + 9}"/>',
    "interval": lambda x, y: f'<path class="wk" d="M{x} {y - 7}V{y + 7}M{x - 3} {y - 7}h6M{x - 3} {y + 7}h6"/>',
}

_SVG_STYLE = (
    "<style>"
    f".tick{{font:12px system-ui,sans-serif;fill:{COLORS['axis']}}}"
    f".label{{font:600 13px system-ui,sans-serif;fill:{COLORS['ink']}}}"
    f".legend{{font:12px system-ui,sans-serif;fill:{COLORS['ink']}}}"
    f".note{{font:600 12px system-ui,sans-serif;fill:{COLORS['axis']}}}"
    f".mb{{fill:{COLORS['baseline']};stroke:#fff;stroke-width:1.5}}"
    f".mk{{fill:{COLORS['kept']};stroke:#fff;stroke-width:1.5}}"
    f".mr{{fill:{COLORS['reverted']};stroke:#fff;stroke-width:1.2}}"
    f".ms{{fill:{COLORS['skipped']}}}"
    f".mf{{fill:none;stroke:{COLORS['failed']};stroke-width:2.6;stroke-linecap:round}}"
    f".tr{{fill:none;stroke:{COLORS['trial']};stroke-width:5;stroke-linecap:round}}"
    f".bl{{fill:none;stroke:{COLORS['best']};stroke-width:2.2;stroke-linejoin:round}}"
    f".wk{{fill:none;stroke:{COLORS['axis']};stroke-width:1.3;opacity:.8}}"
    f".pf{{fill:none;stroke:{COLORS['best']};stroke-width:2.5}}"
    f".pl{{fill:none;stroke:{COLORS['best']};stroke-width:1.5;stroke-dasharray:5 4}}"
    f".it{{font:11px system-ui,sans-serif;fill:{COLORS['best']}}}"
    ".dense .mb,.dense .mk,.dense .mr{stroke:none}.dense .mf{stroke-width:1.6}"
    "</style>")


def _empty_svg(svg_id, size, message):
    w, h = size
    return (f'<svg id="{svg_id}" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" role="img">{_SVG_STYLE}'
            f'<rect x="0.5" y="0.5" width="{w - 1}" height="{h - 1}" fill="#fbfcfe" stroke="{COLORS["grid"]}"/>'
            f'<text x="{w / 2}" y="{h / 2}" text-anchor="middle" class="label">{_e(message)}</text></svg>')


# ------------------------------------------------------------ metric chart ---

def _kind(record):
    """How the chart draws a record: by decision, and whether it has a score."""
    d = record.get("decision")
    if d == "baseline":
        return "baseline"
    if d == "keep":
        return "kept"
    if d in _FAILED:
        return "failed"
    return "reverted" if _num(record.get("avg")) is not None else "skipped"


def _whisker(record, direction):
    """The record's interval in metric units, or None (see module docstring):
    a paired effect interval is mapped back through the incumbent."""
    iv = _interval(record.get("interval"))
    if iv is None:
        return None
    if _num(record.get("estimate")) is None:
        return iv
    inc = _num(record.get("incumbent"))
    if inc is None or (_log_scale(record) and (inc <= 0 or min(iv) <= -1)):
        return None
    if _log_scale(record):  # a ratio: better by r is inc*(1+r) up, inc/(1+r) down
        ends = sorted(inc / (1 + r) if direction == "min" else inc * (1 + r) for r in iv)
    else:
        sign = -1 if direction == "min" else 1
        ends = sorted(inc + sign * r * abs(inc) for r in iv)
    return ends[0], ends[1]


def _point_title(record):
    avg = _num(record.get("avg"))
    head = f"iter {record.get('iter')} · {record.get('decision')}"
    head += f" · {fmt(avg)}" if avg is not None else ""
    text = record.get("hypothesis") or record.get("reason") or ""
    return head + (f" — {_clip(text, 120)}" if text else "")


def _finite_plot(v):
    """Values beyond ±1e300 would overflow the scale; they stay in the table."""
    return v is not None and abs(v) <= 1e300


def _chart_rows(records, direction):
    """(iter, kind, avg, trial scores, whisker, record) per record with an
    iteration number, in order; avg is None when the record has no score."""
    rows = []
    for r in records:
        it = _iter(r)
        if it is None:
            continue
        scores = r.get("trial_scores")
        trials = [v for v in (_num(s) for s in scores) if _finite_plot(v)] if isinstance(scores, list) else []
        whisker = _whisker(r, direction)
        whisker = whisker if whisker and all(_finite_plot(v) for v in whisker) else None
        rows.append((it, _kind(r), _num(r.get("avg")), trials, whisker, r))
    rows.sort(key=lambda row: row[0])
    return rows


def _best_steps(rows, direction):
    """[(iter, best so far)] at each kept iteration that improved on the best."""
    steps, best = [], None
    for it, kind, avg, _, _, _ in rows:
        if kind in ("baseline", "kept") and _finite_plot(avg) and (best is None or _is_better(avg, best, direction)):
            best = avg
            steps.append((it, avg))
    return steps


class _Dedup:
    """Drops marks that land on a pixel already marked with the same kind, so a
    10,000-iteration run stays a small file and looks exactly the same."""

    def __init__(self):
        self.seen = set()

    def fresh(self, kind, *pixels):
        key = (kind,) + tuple(round(p) for p in pixels)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def _plot_marks(f, rows, scale):
    """Whiskers, trial dots and one marker per iteration (lane when no score)."""
    seen, titles = _Dedup(), len(rows) <= TITLE_LIMIT
    whiskers, dots = [], []
    marks = {"skipped": [], "reverted": [], "failed": [], "kept": [], "baseline": []}
    lane_y = f.bottom - LANE / 2
    for it, kind, avg, trials, whisker, rec in rows:
        x = f.x(it)
        if whisker and seen.fresh("w", x, f.y(whisker[0]), f.y(whisker[1])):
            lo, hi = f.y(whisker[0]), f.y(whisker[1])
            whiskers.append(f"M{_r(x)} {_r(lo)}V{_r(hi)}M{_r(x - 3)} {_r(lo)}h6M{_r(x - 3)} {_r(hi)}h6")
        for v in trials:
            if seen.fresh("t", x, f.y(v)):
                dots.append(f"M{_r(x)} {_r(f.y(v))}h0")
        if avg is not None and not _finite_plot(avg):
            continue   # off the scale: the table has it
        y = f.y(avg) if avg is not None else lane_y
        if seen.fresh(kind, x, y):
            marks[kind].append(_mark(kind, x, y, _point_title(rec) if titles else "", scale))
    out = [f'<path class="wk" d="{"".join(whiskers)}"/>'] if whiskers else []
    out += [f'<path class="tr" d="{"".join(dots)}"/>'] if dots else []
    return out, [m for kind in marks for m in marks[kind]], bool(whiskers), bool(dots)


def _metric_chart(config, records):
    """The metric over iterations: trials, averages by outcome, best so far."""
    direction = _direction(config)
    rows = _chart_rows(records, direction)
    if not rows:
        return _empty_svg(CHART_ID, CHART_SIZE, "no iterations recorded yet")
    name = config.get("metric_name") or "metric"
    ys = [v for row in rows for v in [row[2], *row[3], *(row[4] or ())] if _finite_plot(v)]
    lane = LANE if any(row[2] is None for row in rows) else 0
    f = _Frame(CHART_SIZE, [row[0] for row in rows], ys, lane, x_integer=True)
    out = f.axes("iteration", f"{name} ({_better_word(direction)})")
    if lane:
        out.append(f'<line x1="{f.left}" x2="{f.right}" y1="{f.data_bottom}" y2="{f.data_bottom}" '
                   f'stroke="{COLORS["grid"]}" stroke-dasharray="3 3"/>')
        out.append(f'<text x="{f.left - 8}" y="{_r(f.bottom - LANE / 2)}" text-anchor="end" '
                   f'dominant-baseline="middle" class="tick">no score</text>')
    if not ys:
        out.append(f'<text x="{_r((f.left + f.right) / 2)}" y="{_r((f.top + f.data_bottom) / 2)}" '
                   'text-anchor="middle" class="label">no scores yet: every iteration failed</text>')
    per_iter = (f.x(f.x1) - f.x(f.x0)) / (f.x1 - f.x0)
    scale = min(1.0, max(0.45, per_iter / 12))
    under, marks, has_whiskers, has_dots = _plot_marks(f, rows, scale)
    out += under
    steps = _best_steps(rows, direction)
    if steps:
        path = f"M{_r(f.x(steps[0][0]))} {_r(f.y(steps[0][1]))}"
        for it, v in steps[1:]:
            path += f"H{_r(f.x(it))}V{_r(f.y(v))}"
        out.append(f'<path class="bl" d="{path}H{_r(f.x(rows[-1][0]))}"/>')
    out.append(f'<g class="{"dense" if scale < 1 else "marks"}">{"".join(marks)}</g>')
    present = {row[1] for row in rows}
    legend = [(k, label) for k, label in (
        ("baseline", "baseline"), ("kept", "kept"), ("reverted", "reverted"),
        ("failed", "crash / timeout"), ("skipped", "invalid / no change"),
    ) if k in present]
    legend += [(k, label) for k, label, shown in (
        ("trial", "each trial", has_dots), ("best", "best so far", steps and rows[-1][0] > steps[0][0]),
        ("interval", "interval", has_whiskers)) if shown]
    arrow = "↓" if direction == "min" else "↑"
    out += _legend([(_SWATCH[k], label) for k, label in legend],
                   f"{arrow} {_better_word(direction)}", f.w)
    w, h = CHART_SIZE
    return (f'<svg id="{CHART_ID}" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" role="img" aria-label="{_e(name)} over iterations">'
            + _SVG_STYLE + "".join(out) + "</svg>")


# ---------------------------------------------------------- pareto scatter ---

def _better_corner(f, xdir, ydir):
    """'↖ better' in the plot corner both directions point to, when known."""
    if xdir not in ("max", "min") or ydir not in ("max", "min"):
        return ""
    right, top = xdir == "max", ydir == "max"
    arrow = {(False, True): "↖", (True, True): "↗", (False, False): "↙", (True, False): "↘"}[right, top]
    x = f.right - 10 if right else f.left + 10
    y = f.top + 18 if top else f.bottom - 12
    anchor = "end" if right else "start"
    return f'<text x="{x}" y="{y}" text-anchor="{anchor}" class="note">{arrow} better</text>'


def _scatter(config, records, pareto, names):
    primary = config.get("metric_name")
    dirs = _metric_directions(config)
    xname, yname = names
    pts = []
    for r in records:
        x, y = _metric_value(r, xname, primary), _metric_value(r, yname, primary)
        if _finite_plot(x) and _finite_plot(y):
            pts.append((x, y, _kind(r), r))
    front = []
    for p in pareto or []:
        x, y = _metric_value(p, xname, primary), _metric_value(p, yname, primary)
        if _finite_plot(x) and _finite_plot(y):
            front.append((x, y, p.get("iter")))
    every = pts + [(x, y, None, None) for x, y, _ in front]
    if not every:
        return ""
    f = _Frame(SCATTER_SIZE, [p[0] for p in every], [p[1] for p in every])

    def label(n):
        return f"{n} ({_better_word(dirs[n])})" if dirs.get(n) else n
    out = f.axes(label(xname), label(yname))
    seen = _Dedup()
    titles = len(pts) <= TITLE_LIMIT
    for x, y, kind, rec in sorted(pts, key=lambda p: p[2] in ("kept", "baseline")):
        kind = kind if kind != "skipped" else "reverted"
        if seen.fresh(kind, f.x(x), f.y(y)):
            title = f"{_point_title(rec)} · {xname} {fmt(x)} · {yname} {fmt(y)}" if titles else ""
            out.append(_mark(kind, f.x(x), f.y(y), title))
    if front:
        front.sort()
        out.append('<path class="pl" d="M' + "L".join(f"{_r(f.x(x))} {_r(f.y(y))}" for x, y, _ in front) + '"/>')
        for x, y, it in front:
            out.append(f'<circle class="pf" cx="{_r(f.x(x))}" cy="{_r(f.y(y))}" r="9"/>')
            if it is not None and len(front) <= 60:
                out.append(f'<text x="{_r(f.x(x) + 11)}" y="{_r(f.y(y) - 9)}" class="it">#{_e(it)}</text>')
    corner = _better_corner(f, dirs.get(xname), dirs.get(yname))
    if corner:
        out.append(corner)
    present = {p[2] for p in pts}
    legend = [(_SWATCH[k], lab) for k, lab in (("baseline", "baseline"), ("kept", "kept"),
                                                ("reverted", "not kept")) if k in present]
    if front:
        legend.append((lambda x, y: f'<circle class="pf" cx="{x}" cy="{y}" r="6"/>', "Pareto frontier"))
    out += _legend(legend, "", f.w)
    w, h = SCATTER_SIZE
    return (f'<svg id="{SCATTER_ID}" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" role="img" aria-label="{_e(xname)} against {_e(yname)}">'
            + _SVG_STYLE + "".join(out) + "</svg>")


# -------------------------------------------------------------------- html ---

def _page_css():
    ink, axis = COLORS["ink"], COLORS["axis"]
    return (
        "*{box-sizing:border-box}"
        f"body{{margin:0;background:#fff;color:{ink};font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif}}"
        f".page{{padding:0 {PAGE_PAD}px 40px;min-width:{CHART_SIZE[0] + 2 * PAGE_PAD}px}}"
        f"header{{height:{HEADER_HEIGHT}px;overflow:hidden;padding-top:18px}}"
        "h1{margin:0;font-size:22px;line-height:30px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}"
        f".sub{{margin:2px 0 12px;color:{axis};white-space:nowrap;overflow:hidden;text-overflow:ellipsis;height:20px}}"
        ".sub code{font-size:13px}"
        ".cards{display:flex;gap:10px;height:62px}"
        ".card{flex:0 1 auto;white-space:nowrap;overflow:hidden;border:1px solid #e3e7ee;border-radius:8px;"
        "padding:7px 14px;min-width:104px;background:#fafbfd}"
        f".card b{{display:block;font-size:11px;letter-spacing:.04em;text-transform:uppercase;color:{axis};font-weight:600}}"
        ".card span{font-size:19px;font-weight:650;white-space:nowrap}"
        ".card small{font-size:12px;color:#5b6475;margin-left:6px}"
        f"svg{{display:block}}#{CHART_ID}{{width:{CHART_SIZE[0]}px;height:{CHART_SIZE[1]}px}}"
        "h2{font-size:17px;margin:28px 0 8px}"
        "table{border-collapse:collapse;font-size:13px;width:100%;max-width:1100px}"
        "th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #edf0f4;vertical-align:top}"
        f"th{{color:{axis};font-weight:600;background:#f6f8fb}}.n{{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}}"
        "table.history{table-layout:fixed}table.history td{overflow:hidden;text-overflow:ellipsis}"
        "table.history th:nth-child(1){width:56px}table.history th:nth-child(2){width:104px}"
        "table.history th:nth-child(3){width:100px}table.history th:nth-child(4){width:200px}"
        "table.history th:nth-child(6){width:280px}"
        ".badge{display:inline-block;padding:1px 7px;border-radius:9px;color:#fff;font-size:12px;font-weight:600}"
        f".muted{{color:{axis}}}ul.wins{{margin:0;padding-left:20px}}ul.wins li{{margin:3px 0}}"
    )


def _badge(decision):
    color = COLORS[{"baseline": "baseline", "keep": "kept", "crash": "failed", "timeout": "failed",
                    "revert": "reverted"}.get(decision, "skipped")]
    return f'<span class="badge" style="background:{color}">{_e(decision or "?")}</span>'


def _table_records(records):
    """All records when few; else the baseline, every keep and the most recent,
    TABLE_ROWS in all, with the number left out (`history` has them all)."""
    if len(records) <= TABLE_ROWS:
        return list(records), 0
    kept = [i for i, r in enumerate(records) if r.get("kept")][-(TABLE_ROWS // 2):]
    chosen = set(kept)
    for i in range(len(records) - 1, -1, -1):
        if len(chosen) >= TABLE_ROWS:
            break
        chosen.add(i)
    return [records[i] for i in sorted(chosen)], len(records) - len(chosen)


def _history_table(records, direction):
    shown, left_out = _table_records(records)
    out = ['<table class="history"><thead><tr><th class="n">iter</th><th>decision</th><th class="n">avg</th>'
           '<th class="n">delta</th><th>hypothesis</th><th>reason</th></tr></thead><tbody>']
    for r in shown:
        out.append(f'<tr><td class="n">{_e(r.get("iter"))}</td><td>{_badge(r.get("decision"))}</td>'
                   f'<td class="n">{_e(fmt(r.get("avg")))}</td><td class="n">{_e(_effect_text(r, direction))}</td>'
                   f'<td>{_e(_clip(r.get("hypothesis") or r.get("description") or "", TEXT_CAP))}</td>'
                   f'<td class="muted">{_e(_clip(r.get("reason") or "", TEXT_CAP))}</td></tr>')
    out.append("</tbody></table>")
    if left_out:
        out.append(f'<p class="muted">{left_out:,} of {len(records):,} rows left out here (every keep and '
                   'the most recent are shown); <code>ratchet.py history</code> lists them all.</p>')
    return "".join(out)


def _card(label, value, small=""):
    extra = f"<small>{_e(small)}</small>" if small else ""
    return f'<div class="card"><b>{_e(label)}</b><span>{_e(value)}</span>{extra}</div>'


def _verified_card(verified, direction="max"):
    value = _verified_gain(verified, direction)
    if value is None:
        return _card("verified gain", "not yet", "run ratchet.py verify")
    pairs = _pairs(verified)
    return _card("verified gain", value, f"{pairs} pairs" if pairs is not None else "")


def _header(s, config, state, heading):
    """The fixed-height top: title, run line and the summary cards."""
    sub = " · ".join([_better_word(s["direction"])] + _progress_text(config, state))
    cmd = f' · <code>{_e(_clip(config["run_command"], 100))}</code>' if config.get("run_command") else ""
    counts = s["counts"]
    best_small = f"{_pct(s['change_pct'])} · iter {s['best_iter']}" if s["change_pct"] is not None else ""
    cards = [_card("start", fmt(s["start"])), _card("best", fmt(s["best"]), best_small),
             _verified_card(s["verified"], s["direction"]),
             _card("kept", str(counts["keep"]), f"of {sum(counts.values())}"),
             _card("reverted", str(sum(n for k, n in counts.items() if k not in ("keep",) + _FAILED))),
             _card("crashed", str(counts["crash"] + counts["timeout"]))]
    return (f'<header><h1>{_e(heading)}</h1><p class="sub">{_e(sub)}{cmd}</p>'
            f'<div class="cards">{"".join(cards)}</div></header>')


def _wins_list(wins, direction):
    if not wins:
        return '<p class="muted">no iteration was kept.</p>'
    items = "".join(f'<li><b>iter {_e(r.get("iter"))}</b>: {_e(_effect_text(r, direction))} → '
                    f'{_e(fmt(r.get("avg")))} — '
                    f'{_e(_clip(r.get("hypothesis") or r.get("description") or "", TEXT_CAP))}</li>'
                    for r in wins)
    return f'<ul class="wins">{items}</ul>'


def _pareto_table(config, records, pareto):
    cols, rows = _pareto_rows(config, records, pareto)
    heads = "".join(f"<th class=\"n\">{_e(n)}{' (' + _e(d) + ')' if d else ''}</th>" for n, d in cols)
    trs = "".join(f'<tr><td class="n">{_e(it)}</td>'
                  + "".join(f'<td class="n">{_e(fmt(x))}</td>' for x in vals)
                  + f"<td>{_e(_clip(hyp or '', TEXT_CAP))}</td></tr>" for it, vals, hyp in rows)
    return (f'<table><thead><tr><th class="n">iter</th>{heads}<th>hypothesis</th>'
            f"</tr></thead><tbody>{trs}</tbody></table>")


def html(config, state, records, *, verified=None, pareto=None, holdout=None, title=None):
    """One self-contained HTML page (inline CSS and SVG, no script, no external
    asset): summary cards, the metric over iterations, the two-metric scatter
    when there are several metrics, top wins, Pareto frontier, holdout and the
    history table. Every piece of user text is escaped."""
    s = summary(config, state, records, verified=verified)
    heading = title or f"ratchet report · {s['metric']}"
    body = [_header(s, config, state, heading), _metric_chart(config, records)]
    names = _scatter_metrics(config, records, pareto)
    if names:
        body += [f"<h2>{_e(names[0])} against {_e(names[1])}</h2>", _scatter(config, records, pareto, names)]
    body += ["<h2>Top wins</h2>", _wins_list(s["top_wins"], s["direction"])]
    if pareto:
        body += ["<h2>Pareto frontier</h2>", _pareto_table(config, records, pareto)]
    if isinstance(holdout, dict):
        body.append(f"<h2>Holdout</h2><p>{_e(_holdout_text(holdout, quote=''))}</p>")
    body += ["<h2>History</h2>", _history_table(records, s["direction"])]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"generator\" content=\"{GENERATOR}\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{_e(heading)}</title>"
            f"<style>{_page_css()}</style></head><body><div class=\"page\">"
            + "".join(body) + "</div></body></html>\n")
