"""The run report as one self-contained HTML page: inline CSS and SVG, no
script, no external asset; every piece of user text escaped.

Pure: renders what it is handed (see figures.py for the inputs); writing
the file safely is verbs/report.py's job. The layout is fixed in pixels
(`CHART_OFFSET`, chart.CHART_SIZE, svg.PLOT_MARGINS) so a browser test can
find the chart in a screenshot.
"""

from ..core.text import clip
from .chart import CHART_ID, CHART_SIZE, metric_chart, scatter
from .figures import (FAILED, better_word, effect_summary, fmt, holdout_text, pairs_of, pareto_rows,
                      progress_bits, run_summary, scatter_metrics, verified_gain)
from .svg import COLORS, esc

GENERATOR = "ratchet report"                # <meta name="generator">: tells our own page from a user's file
PAGE_PAD = 24
HEADER_HEIGHT = 150
CHART_OFFSET = (PAGE_PAD, HEADER_HEIGHT)   # page pixel of the chart's top-left
TABLE_ROWS = 500                           # history rows in the HTML before eliding
TEXT_CAP = 280                             # characters of a hypothesis in the table


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
    return f'<span class="badge" style="background:{color}">{esc(decision or "?")}</span>'


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
        out.append(f'<tr><td class="n">{esc(r.get("iter"))}</td><td>{_badge(r.get("decision"))}</td>'
                   f'<td class="n">{esc(fmt(r.get("avg")))}</td><td class="n">{esc(effect_summary(r, direction))}</td>'
                   f'<td>{esc(clip(r.get("hypothesis") or r.get("description") or "", TEXT_CAP))}</td>'
                   f'<td class="muted">{esc(clip(r.get("reason") or "", TEXT_CAP))}</td></tr>')
    out.append("</tbody></table>")
    if left_out:
        out.append(f'<p class="muted">{left_out:,} of {len(records):,} rows left out here (every keep and '
                   'the most recent are shown); <code>ratchet.py history</code> lists them all.</p>')
    return "".join(out)


def _card(label, value, small=""):
    extra = f"<small>{esc(small)}</small>" if small else ""
    return f'<div class="card"><b>{esc(label)}</b><span>{esc(value)}</span>{extra}</div>'


def _verified_card(verified, direction="max", current=True):
    """The headline card: the re-measured gain of HEAD, or "not yet"."""
    value = verified_gain(verified, direction)
    if value is None or not current:
        return _card("verified gain", "not yet", "HEAD not re-measured: ratchet.py verify")
    pairs, it = pairs_of(verified), verified.get("iter")
    what = (f"{pairs} pairs, " if pairs is not None else "") + "HEAD" + (f" at iter {it}" if it is not None else "")
    return _card("verified gain", value, what + " vs the start")


def _header(s, config, state, heading):
    """The fixed-height top: title, run line and the summary cards."""
    sub = " · ".join([better_word(s["direction"])] + progress_bits(config, state))
    cmd = f' · <code>{esc(clip(config["run_command"], 100))}</code>' if config.get("run_command") else ""
    counts = s["counts"]
    best_small = f"iter {s['best_iter']}, its own decision's mean" if s["best_iter"] else ""
    cards = [_card("start", fmt(s["start"])), _verified_card(s["verified"], s["direction"], s["verified_current"]),
             _card("best measured", fmt(s["best"]), best_small),
             _card("kept", str(counts["keep"]), f"of {sum(counts.values())}"),
             _card("reverted", str(sum(n for k, n in counts.items() if k not in ("keep",) + FAILED))),
             _card("crashed", str(counts["crash"] + counts["timeout"]))]
    return (f'<header><h1>{esc(heading)}</h1><p class="sub">{esc(sub)}{cmd}</p>'
            f'<div class="cards">{"".join(cards)}</div></header>')


def _wins_list(wins, direction):
    if not wins:
        return '<p class="muted">no iteration was kept.</p>'
    items = "".join(f'<li><b>iter {esc(r.get("iter"))}</b>: {esc(effect_summary(r, direction))} → '
                    f'{esc(fmt(r.get("avg")))} — '
                    f'{esc(clip(r.get("hypothesis") or r.get("description") or "", TEXT_CAP))}</li>'
                    for r in wins)
    return f'<ul class="wins">{items}</ul>'


def _pareto_table(config, records, pareto):
    cols, rows = pareto_rows(config, records, pareto)
    heads = "".join(f"<th class=\"n\">{esc(n)}{' (' + esc(d) + ')' if d else ''}</th>" for n, d in cols)
    trs = "".join(f'<tr><td class="n">{esc(it)}</td>'
                  + "".join(f'<td class="n">{esc(fmt(x))}</td>' for x in vals)
                  + f"<td>{esc(clip(hyp or '', TEXT_CAP))}</td></tr>" for it, vals, hyp in rows)
    return (f'<table><thead><tr><th class="n">iter</th>{heads}<th>hypothesis</th>'
            f"</tr></thead><tbody>{trs}</tbody></table>")


def html(config, state, records, *, verified=None, pareto=None, holdout=None, title=None):
    """One self-contained HTML page (inline CSS and SVG, no script, no external
    asset): summary cards, the metric over iterations, the two-metric scatter
    when there are several metrics, top wins, Pareto frontier, holdout and the
    history table. Every piece of user text is escaped."""
    s = run_summary(config, state, records, verified=verified)
    heading = title or f"ratchet report · {s['metric']}"
    body = [_header(s, config, state, heading), metric_chart(config, records)]
    names = scatter_metrics(config, records, pareto)
    if names:
        body += [f"<h2>{esc(names[0])} against {esc(names[1])}</h2>", scatter(config, records, pareto, names)]
    body += ["<h2>Top wins</h2>", _wins_list(s["top_wins"], s["direction"])]
    if pareto:
        body += ["<h2>Pareto frontier</h2>", _pareto_table(config, records, pareto)]
    if isinstance(holdout, dict):
        body.append(f"<h2>Holdout</h2><p>{esc(holdout_text(holdout, quote=''))}</p>")
    body += ["<h2>History</h2>", _history_table(records, s["direction"])]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"generator\" content=\"{GENERATOR}\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{esc(heading)}</title>"
            f"<style>{_page_css()}</style></head><body><div class=\"page\">"
            + "".join(body) + "</div></body></html>\n")
