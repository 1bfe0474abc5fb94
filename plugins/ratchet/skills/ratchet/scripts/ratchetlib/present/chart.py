"""The report's two charts as inline SVG: the metric over iterations
(trials, averages by outcome, whiskers, best so far, a lane for runs with no
score) and, for a run with several metrics, two metrics against each other
with the Pareto frontier.

Pure. A record's `interval` is drawn as a whisker. With a paired `estimate`
it is a relative improvement like the estimate (0.02 = 2% better, see
FORMATS.md), mapped back to metric units through the record's `incumbent`.
Without `estimate` it is taken as already in metric units. Marks that land
on an already marked pixel are dropped (`Dedup`), so a 10,000-iteration run
stays a small file.
"""

from ..core.text import clip, finite
from .figures import (FAILED, better_word, config_direction, fmt, interval_of, is_better, iter_of, log_scale_of,
                      metric_directions, metric_value)
from .svg import COLORS, Frame, SVG_STYLE, SWATCH, coord, empty_svg, esc, legend_row, marker

CHART_ID = "metric-chart"
SCATTER_ID = "pareto-chart"
CHART_SIZE = (1100, 440)
SCATTER_SIZE = (720, 440)
LANE = 22                                  # strip under the plot for runs with no score
TITLE_LIMIT = 2000                         # records above which points lose tooltips


def _kind(record):
    """How the chart draws a record: by decision, and whether it has a score."""
    d = record.get("decision")
    if d == "baseline":
        return "baseline"
    if d == "keep":
        return "kept"
    if d in FAILED:
        return "failed"
    return "reverted" if finite(record.get("avg")) is not None else "skipped"


def _whisker(record, direction):
    """The record's interval in metric units, or None (see module docstring):
    a paired effect interval is mapped back through the incumbent."""
    iv = interval_of(record.get("interval"))
    if iv is None:
        return None
    if finite(record.get("estimate")) is None:
        return iv
    inc = finite(record.get("incumbent"))
    if inc is None or (log_scale_of(record) and (inc <= 0 or min(iv) <= -1)):
        return None
    if log_scale_of(record):  # a ratio: better by r is inc*(1+r) up, inc/(1+r) down
        ends = sorted(inc / (1 + r) if direction == "min" else inc * (1 + r) for r in iv)
    else:
        sign = -1 if direction == "min" else 1
        ends = sorted(inc + sign * r * abs(inc) for r in iv)
    return ends[0], ends[1]


def _point_title(record):
    avg = finite(record.get("avg"))
    head = f"iter {record.get('iter')} · {record.get('decision')}"
    head += f" · {fmt(avg)}" if avg is not None else ""
    text = record.get("hypothesis") or record.get("reason") or ""
    return head + (f" — {clip(text, 120)}" if text else "")


def _finite_plot(v):
    """Values beyond ±1e300 would overflow the scale; they stay in the table."""
    return v is not None and abs(v) <= 1e300


def _chart_rows(records, direction):
    """(iter, kind, avg, trial scores, whisker, record) per record with an
    iteration number, in order; avg is None when the record has no score."""
    rows = []
    for r in records:
        it = iter_of(r)
        if it is None:
            continue
        scores = r.get("trial_scores")
        trials = [v for v in (finite(s) for s in scores) if _finite_plot(v)] if isinstance(scores, list) else []
        whisker = _whisker(r, direction)
        whisker = whisker if whisker and all(_finite_plot(v) for v in whisker) else None
        rows.append((it, _kind(r), finite(r.get("avg")), trials, whisker, r))
    rows.sort(key=lambda row: row[0])
    return rows


def _best_steps(rows, direction):
    """[(iter, best so far)] at each kept iteration that improved on the best."""
    steps, best = [], None
    for it, kind, avg, _, _, _ in rows:
        if kind in ("baseline", "kept") and _finite_plot(avg) and (best is None or is_better(avg, best, direction)):
            best = avg
            steps.append((it, avg))
    return steps


class Dedup:
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
    seen, titles = Dedup(), len(rows) <= TITLE_LIMIT
    whiskers, dots = [], []
    marks = {"skipped": [], "reverted": [], "failed": [], "kept": [], "baseline": []}
    lane_y = f.bottom - LANE / 2
    for it, kind, avg, trials, whisker, rec in rows:
        x = f.x(it)
        if whisker and seen.fresh("w", x, f.y(whisker[0]), f.y(whisker[1])):
            lo, hi = f.y(whisker[0]), f.y(whisker[1])
            whiskers.append(f"M{coord(x)} {coord(lo)}V{coord(hi)}M{coord(x - 3)} {coord(lo)}h6M{coord(x - 3)} {coord(hi)}h6")
        for v in trials:
            if seen.fresh("t", x, f.y(v)):
                dots.append(f"M{coord(x)} {coord(f.y(v))}h0")
        if avg is not None and not _finite_plot(avg):
            continue   # off the scale: the table has it
        y = f.y(avg) if avg is not None else lane_y
        if seen.fresh(kind, x, y):
            marks[kind].append(marker(kind, x, y, _point_title(rec) if titles else "", scale))
    out = [f'<path class="wk" d="{"".join(whiskers)}"/>'] if whiskers else []
    out += [f'<path class="tr" d="{"".join(dots)}"/>'] if dots else []
    return out, [m for kind in marks for m in marks[kind]], bool(whiskers), bool(dots)


def metric_chart(config, records):
    """The metric over iterations: trials, averages by outcome, best so far."""
    direction = config_direction(config)
    rows = _chart_rows(records, direction)
    if not rows:
        return empty_svg(CHART_ID, CHART_SIZE, "no iterations recorded yet")
    name = config.get("metric_name") or "metric"
    ys = [v for row in rows for v in [row[2], *row[3], *(row[4] or ())] if _finite_plot(v)]
    lane = LANE if any(row[2] is None for row in rows) else 0
    f = Frame(CHART_SIZE, [row[0] for row in rows], ys, lane, x_integer=True)
    out = f.axes("iteration", f"{name} ({better_word(direction)})")
    if lane:
        out.append(f'<line x1="{f.left}" x2="{f.right}" y1="{f.data_bottom}" y2="{f.data_bottom}" '
                   f'stroke="{COLORS["grid"]}" stroke-dasharray="3 3"/>')
        out.append(f'<text x="{f.left - 8}" y="{coord(f.bottom - LANE / 2)}" text-anchor="end" '
                   f'dominant-baseline="middle" class="tick">no score</text>')
    if not ys:
        out.append(f'<text x="{coord((f.left + f.right) / 2)}" y="{coord((f.top + f.data_bottom) / 2)}" '
                   'text-anchor="middle" class="label">no scores yet: every iteration failed</text>')
    per_iter = (f.x(f.x1) - f.x(f.x0)) / (f.x1 - f.x0)
    scale = min(1.0, max(0.45, per_iter / 12))
    under, marks, has_whiskers, has_dots = _plot_marks(f, rows, scale)
    out += under
    steps = _best_steps(rows, direction)
    if steps:
        path = f"M{coord(f.x(steps[0][0]))} {coord(f.y(steps[0][1]))}"
        for it, v in steps[1:]:
            path += f"H{coord(f.x(it))}V{coord(f.y(v))}"
        out.append(f'<path class="bl" d="{path}H{coord(f.x(rows[-1][0]))}"/>')
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
    out += legend_row([(SWATCH[k], label) for k, label in legend],
                   f"{arrow} {better_word(direction)}", f.w)
    w, h = CHART_SIZE
    return (f'<svg id="{CHART_ID}" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" role="img" aria-label="{esc(name)} over iterations">'
            + SVG_STYLE + "".join(out) + "</svg>")


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


def scatter(config, records, pareto, names):
    primary = config.get("metric_name")
    dirs = metric_directions(config)
    xname, yname = names
    pts = []
    for r in records:
        x, y = metric_value(r, xname, primary), metric_value(r, yname, primary)
        if _finite_plot(x) and _finite_plot(y):
            pts.append((x, y, _kind(r), r))
    front = []
    for p in pareto or []:
        x, y = metric_value(p, xname, primary), metric_value(p, yname, primary)
        if _finite_plot(x) and _finite_plot(y):
            front.append((x, y, p.get("iter")))
    every = pts + [(x, y, None, None) for x, y, _ in front]
    if not every:
        return ""
    f = Frame(SCATTER_SIZE, [p[0] for p in every], [p[1] for p in every])

    def label(n):
        return f"{n} ({better_word(dirs[n])})" if dirs.get(n) else n
    out = f.axes(label(xname), label(yname))
    seen = Dedup()
    titles = len(pts) <= TITLE_LIMIT
    for x, y, kind, rec in sorted(pts, key=lambda p: p[2] in ("kept", "baseline")):
        kind = kind if kind != "skipped" else "reverted"
        if seen.fresh(kind, f.x(x), f.y(y)):
            title = f"{_point_title(rec)} · {xname} {fmt(x)} · {yname} {fmt(y)}" if titles else ""
            out.append(marker(kind, f.x(x), f.y(y), title))
    if front:
        front.sort()
        out.append('<path class="pl" d="M' + "L".join(f"{coord(f.x(x))} {coord(f.y(y))}" for x, y, _ in front) + '"/>')
        for x, y, it in front:
            out.append(f'<circle class="pf" cx="{coord(f.x(x))}" cy="{coord(f.y(y))}" r="9"/>')
            if it is not None and len(front) <= 60:
                out.append(f'<text x="{coord(f.x(x) + 11)}" y="{coord(f.y(y) - 9)}" class="it">#{esc(it)}</text>')
    corner = _better_corner(f, dirs.get(xname), dirs.get(yname))
    if corner:
        out.append(corner)
    present = {p[2] for p in pts}
    legend = [(SWATCH[k], lab) for k, lab in (("baseline", "baseline"), ("kept", "kept"),
                                                ("reverted", "not kept")) if k in present]
    if front:
        legend.append((lambda x, y: f'<circle class="pf" cx="{x}" cy="{y}" r="6"/>', "Pareto frontier"))
    out += legend_row(legend, "", f.w)
    w, h = SCATTER_SIZE
    return (f'<svg id="{SCATTER_ID}" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" role="img" aria-label="{esc(xname)} against {esc(yname)}">'
            + SVG_STYLE + "".join(out) + "</svg>")
