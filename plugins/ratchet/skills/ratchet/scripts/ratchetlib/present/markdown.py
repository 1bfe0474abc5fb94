"""The run report as Markdown: what `ratchet.py report` prints on stdout.

Pure: renders the figures of figures.py from the dicts it is handed
(config, state, records, and the optional verified / pareto / holdout,
see figures.py); user text is clipped to one line and its pipes escaped so
a hypothesis cannot break a table.
"""

from ..core.text import clip
from .figures import (best_text, better_word, counts_text, effect_summary, fmt, holdout_text, md_cell, pareto_rows,
                      headline_text, progress_bits, run_summary)


def markdown(config, state, records, *, verified=None, pareto=None, holdout=None):
    """The run summary on stdout: start, best, verified gain, outcomes, top
    wins with hypotheses and effects, Pareto frontier and holdout when given."""
    s = run_summary(config, state, records, verified=verified)
    out = [f"# ratchet report: {s['metric']} ({better_word(s['direction'])})", ""]
    head = " · ".join(progress_bits(config, state))
    if config.get("run_command"):
        head += f" · `{clip(config['run_command'], 120)}`"
    out += [head, ""]
    out += [f"- start (baseline): {fmt(s['start'])}",
            f"- verified gain: {headline_text(s)}",
            f"- best: {best_text(s)}",
            f"- outcomes, {counts_text(s['counts'])}", ""]
    out += ["## Top wins", ""]
    if s["top_wins"]:
        out += ["| iter | effect | avg | hypothesis |", "| ---: | --- | ---: | --- |"]
        for r in s["top_wins"]:
            out.append(f"| {r.get('iter')} | {effect_summary(r, s['direction'])} | {fmt(r.get('avg'))} "
                       f"| {md_cell(r.get('hypothesis') or r.get('description') or '')} |")
    else:
        out.append("no iteration was kept.")
    if pareto:
        cols, rows = pareto_rows(config, records, pareto)
        heads = [f"{md_cell(n, 40)} ({d})" if d else md_cell(n, 40) for n, d in cols]
        out += ["", f"## Pareto frontier ({len(rows)} point{'' if len(rows) == 1 else 's'})", "",
                "| iter | " + " | ".join(heads) + " | hypothesis |",
                "| ---: | " + " | ".join("---:" for _ in heads) + " | --- |"]
        for it, vals, hyp in rows:
            out.append(f"| {it} | " + " | ".join(fmt(v) for v in vals) + f" | {md_cell(hyp or '')} |")
    if isinstance(holdout, dict):
        out += ["", "## Holdout", "", holdout_text(holdout)]
    return "\n".join(out) + "\n"
