"""SVG building blocks for the report's charts: the plot frame with round
ticks, markers, legend swatches and the shared style.

Pure string building; every piece of user text goes through `esc`. The
margins are fixed in pixels (`PLOT_MARGINS`) so a browser test can find the
plot in a screenshot.
"""

import html as _html
import math

PLOT_MARGINS = (84, 52, 28, 56)            # left, top, right, bottom inside a chart
COLORS = {"baseline": "#243b6b", "kept": "#12a07a", "reverted": "#f28e2b",
          "failed": "#d62839", "skipped": "#8a94a6", "trial": "#a9b3c4",
          "best": "#3b6fe0", "grid": "#e6e9ef", "axis": "#5b6475", "ink": "#1f2430"}


def esc(text):
    return _html.escape(str(text), quote=True)


def _nice_step(span, target):
    """The round step (1, 2, 2.5 or 5 times a power of ten) whose tick count
    over `span` is closest to `target`."""
    mag = 10 ** math.floor(math.log10(span / target))
    steps = [m * mag for m in (1, 2, 2.5, 5, 10)]
    return min(steps, key=lambda step: abs(span / step - target))


def axis(lo, hi, target=6, integer=False):
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


def tick_label(value, step, span):
    """Round numbers with just enough decimals; exponent form when huge or tiny."""
    if span >= 1e7 or step < 1e-4:
        digits = max(1, math.floor(math.log10(span or 1)) - math.floor(math.log10(step)) + 1)
        return f"{value:.{min(digits, 12)}g}"
    decimals = next(d for d in range(13) if abs(round(step, d) - step) <= step * 1e-6 or d == 12)
    return f"{value:.{decimals}f}"


class Frame:
    """A chart's plot box and the linear maps from data to pixels."""

    INSET = 14   # pixels between the plot's frame and the outermost x value

    def __init__(self, size, xs, ys, lane=0, x_integer=False):
        """`ys` may be empty (nothing scored): the y axis is then unlabelled."""
        self.w, self.h = size
        ml, mt, mr, mb = PLOT_MARGINS
        self.left, self.top = ml, mt
        self.right, self.bottom = self.w - mr, self.h - mb
        self.data_bottom = self.bottom - lane
        self.x0, self.x1, self.xticks, self.xstep = axis(min(xs), max(xs), 10, x_integer)
        self.y0, self.y1, self.yticks, self.ystep = axis(min(ys), max(ys), 6) if ys else (0.0, 1.0, [], 1.0)

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
            py = coord(self.y(t))
            out.append(f'<line x1="{self.left}" x2="{self.right}" y1="{py}" y2="{py}" stroke="{c["grid"]}"/>')
            out.append(f'<text x="{self.left - 8}" y="{py}" text-anchor="end" dominant-baseline="middle" '
                       f'class="tick">{esc(tick_label(t, self.ystep, yspan))}</text>')
        xspan = max(abs(self.x0), abs(self.x1))
        for t in self.xticks:
            px = coord(self.x(t))
            out.append(f'<line x1="{px}" x2="{px}" y1="{self.bottom}" y2="{self.bottom + 5}" stroke="{c["axis"]}"/>')
            out.append(f'<text x="{px}" y="{self.bottom + 18}" text-anchor="middle" class="tick">'
                       f'{esc(tick_label(t, self.xstep, xspan))}</text>')
        out.append(f'<line x1="{self.left}" x2="{self.right}" y1="{self.bottom}" y2="{self.bottom}" stroke="{c["axis"]}"/>')
        out.append(f'<line x1="{self.left}" x2="{self.left}" y1="{self.top}" y2="{self.bottom}" stroke="{c["axis"]}"/>')
        mid_x, mid_y = (self.left + self.right) / 2, (self.top + self.data_bottom) / 2
        out.append(f'<text x="{coord(mid_x)}" y="{self.h - 12}" text-anchor="middle" class="label">{esc(xlabel)}</text>')
        out.append(f'<text transform="translate(18 {coord(mid_y)}) rotate(-90)" text-anchor="middle" '
                   f'class="label">{esc(ylabel)}</text>')
        return out


def coord(v):
    """A pixel coordinate with one decimal: enough for the eye, short to store."""
    return f"{v:.1f}".rstrip("0").rstrip(".")


def legend_row(items, right_note, width):
    """One row of legend swatches at the chart's top, the direction on the right."""
    out, x = [], PLOT_MARGINS[0]
    y = 22
    for swatch, label in items:
        out.append(swatch(x + 7, y))
        out.append(f'<text x="{x + 22}" y="{y}" dominant-baseline="middle" class="legend">{esc(label)}</text>')
        x += 36 + 7 * len(label)
    out.append(f'<text x="{width - PLOT_MARGINS[2]}" y="{y}" text-anchor="end" dominant-baseline="middle" '
               f'class="note">{esc(right_note)}</text>')
    return out


def marker(kind, x, y, title="", scale=1.0):
    """One marker for an iteration's average (or a lane entry), centred on
    (x, y); `scale` shrinks it when iterations crowd the axis."""
    tip = f"<title>{esc(title)}</title>" if title else ""
    x, y = float(x), float(y)
    if kind == "baseline":
        side = 11 * scale
        return (f'<rect class="mb" x="{coord(x - side / 2)}" y="{coord(y - side / 2)}" width="{coord(side)}" '
                f'height="{coord(side)}">{tip}</rect>')
    if kind == "failed":
        a = coord(4.5 * scale)
        b = coord(9 * scale)
        return f'<path class="mf" d="M{coord(x)} {coord(y)}m-{a}-{a}l{b} {b}m0-{b}l-{b} {b}">{tip}</path>'
    radius = {"kept": 5.5, "reverted": 4.5, "skipped": 3}[kind] * scale
    return f'<circle class="m{kind[0]}" cx="{coord(x)}" cy="{coord(y)}" r="{coord(radius)}">{tip}</circle>'


SWATCH = {
    "baseline": lambda x, y: marker("baseline", x, y),
    "kept": lambda x, y: marker("kept", x, y),
    "reverted": lambda x, y: marker("reverted", x, y),
    "failed": lambda x, y: marker("failed", x, y),
    "skipped": lambda x, y: marker("skipped", x, y),
    "trial": lambda x, y: f'<path class="tr" d="M{x - 5} {y}h0M{x} {y}h0M{x + 5} {y}h0"/>',
    "best": lambda x, y: f'<path class="bl" d="M{x - 9} {y + 4}H{x}V{y - 4}H{x + 9}"/>',
    "interval": lambda x, y: f'<path class="wk" d="M{x} {y - 7}V{y + 7}M{x - 3} {y - 7}h6M{x - 3} {y + 7}h6"/>',
}

SVG_STYLE = (
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


def empty_svg(svg_id, size, message):
    w, h = size
    return (f'<svg id="{svg_id}" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" role="img">{SVG_STYLE}'
            f'<rect x="0.5" y="0.5" width="{w - 1}" height="{h - 1}" fill="#fbfcfe" stroke="{COLORS["grid"]}"/>'
            f'<text x="{w / 2}" y="{h / 2}" text-anchor="middle" class="label">{esc(message)}</text></svg>')
