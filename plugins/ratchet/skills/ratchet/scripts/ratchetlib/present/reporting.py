"""`ratchet.py report` and the `status` trend line: a run on disk turned into
report.py's inputs, and the HTML file written safely.

report.py is pure; this module is its edge. It reads config.json, state.json,
every record of results.jsonl (the report is the one view that wants the
whole history; `status` reads only a tail), `state["pareto"]`,
`state["verified"]` when a `verify` step wrote one, and `.ratchet/holdout.json`.

The holdout is shown only once the run has stopped, as in `status`: an agent
that asks for a report mid-run must not see the evaluation it is kept from
tuning against.

The HTML file is written atomically (temp file in the same folder, fsync,
rename). It never replaces a file that is not an earlier ratchet report
(recognised by report.GENERATOR in its head), and while a run is active it
is not written inside the work tree outside `.ratchet/` unless git ignores
the path: an untracked file there would become part of the next candidate.
"""

import os
from typing import Optional

from ..io import gitops
from . import report
from ..core import term
from ..core.errors import UsageError
from ..measure.holdout import load as load_holdout
from ..io.store import atomic_write

DEFAULT_HTML = os.path.join(".ratchet", "report.html")
TREND_WIDTH = 10   # status reads only this tail of results.jsonl (test_learning holds it to <= 10)


def holdout_for_report(run) -> Optional[dict]:
    """holdout.json in report.py's shape, or None (no holdout, or hidden
    because the run is still going)."""
    if not run.config.holdout_command or not run.state.get("stop"):
        return None
    doc = load_holdout(run.store.root)
    if not doc:
        return {"name": run.config.holdout_command, "note": "not run yet; run `ratchet.py holdout`"}
    start, best = doc.get("start") or {}, doc.get("best") or {}
    out = {"name": doc.get("command") or run.config.holdout_command, "start": start.get("avg"),
           "best": best.get("avg"), "gain_pct": doc.get("gain_pct"), "held": doc.get("held")}
    if doc.get("held") is None:
        out["note"] = doc.get("summary") or ""
    return out


def inputs(run) -> dict:
    """Everything report.markdown/html take, read from the run's files."""
    return {"config": run.config.to_dict(), "state": dict(run.state), "records": run.store.records(),
            "verified": run.state.get("verified"), "pareto": run.state.get("pareto"),
            "holdout": holdout_for_report(run)}


def markdown(data: dict) -> str:
    return report.markdown(data["config"], data["state"], data["records"], verified=data["verified"],
                           pareto=data["pareto"], holdout=data["holdout"])


def html(data: dict) -> str:
    return report.html(data["config"], data["state"], data["records"], verified=data["verified"],
                       pareto=data["pareto"], holdout=data["holdout"])


def resolve_html_path(run, cwd: str, given: Optional[str]) -> str:
    """The absolute path to write: `given` relative to `cwd`, or the default
    `.ratchet/report.html`; UsageError when writing there could harm."""
    path = os.path.abspath(os.path.join(cwd, given)) if given else os.path.join(run.repo, DEFAULT_HTML)
    if os.path.isdir(path):
        raise UsageError(f"--html {given} is a folder; give a file name such as {os.path.join(given, 'report.html')}")
    if not os.path.isdir(os.path.dirname(path)):
        raise UsageError(f"--html {given}: the folder {os.path.dirname(path)} does not exist")
    if os.path.lexists(path) and not _is_our_report(path):
        raise UsageError(f"--html {given}: {path} exists and is not a ratchet report; pick another file name")
    if not run.state.get("stop") and _inside_tree_unignored(run.repo, path):
        raise UsageError(f"--html {given} is inside the repository while the run is active, so it would become part "
                         f"of the next candidate; use `--html` alone (writes {DEFAULT_HTML}) or a path outside "
                         f"the repository")
    return path


def _is_our_report(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return f'<meta name="generator" content="{report.GENERATOR}">'.encode() in head


def _inside_tree_unignored(repo: str, path: str) -> bool:
    real, root = os.path.realpath(path), os.path.realpath(repo)
    if os.path.commonpath([real, root]) != root:
        return False
    rel = os.path.relpath(real, root).replace(os.sep, "/")
    if rel == ".ratchet" or rel.startswith(".ratchet/"):
        return False
    return not gitops.is_ignored(repo, rel)


def write_html(path: str, page: str) -> int:
    """Write the page atomically, made printable (term.printable: an agent's
    control characters and bidi overrides shown as escapes); return its size
    in bytes."""
    data = term.printable(page).encode("utf-8")
    atomic_write(path, data)
    return len(data)


def trend(records: list, stream=None) -> str:
    """`status`'s one-line sparkline of the last scores, or '' before any:
    `trend: ▁▃▅×█ last 5 scores, 98 to 118 (× no score)`."""
    if not records:
        return ""
    values = [r.get("avg") for r in records][-TREND_WIDTH:]
    ascii_only = not term.can_encode(report.sparkline([1, 2]) + "×→", stream)
    spark = report.sparkline(values, width=TREND_WIDTH, ascii=ascii_only)
    finite = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    span = f", {report.fmt(min(finite))} to {report.fmt(max(finite))}" if finite else ""
    miss = "x" if ascii_only else "×"
    missing = f" ({miss} no score)" if len(finite) < len(values) else ""
    return f"trend: {spark}  last {len(values)} scores{span}{missing}"
