"""`ratchet.py report`: a run on disk gathered into the report's inputs,
rendered by present/ (markdown, page), and the HTML file written safely.

present/ is pure; this module is its edge. It reads config.json, state.json,
every record of results.jsonl (the report is the one view that wants the
whole history; `status` reads only a tail), `state.pareto`,
`state.verified` when a `verify` step wrote one, and `.ratchet/holdout.json`.

The holdout is shown only once the run has stopped, as in `status`: an agent
that asks for a report mid-run must not see the evaluation it is kept from
tuning against.

The HTML file is written atomically (temp file in the same folder, fsync,
rename). It never replaces a file that is not an earlier ratchet report
(recognised by page.GENERATOR in its head), and while a run is active it
is not written inside the work tree outside `.ratchet/` unless git ignores
the path: an untracked file there would become part of the next candidate.
"""

from __future__ import annotations

import os

from ..core import term
from ..core.errors import UsageError
from ..io import gitops
from ..io.store import atomic_write
from ..measure.holdout import load as load_holdout
from ..present import figures, markdown, page

DEFAULT_HTML = os.path.join(".ratchet", "report.html")
_WIN_KEYS = ("iter", "hypothesis", "description", "avg", "delta", "incumbent", "sha")


def holdout_for_report(run) -> dict | None:
    """holdout.json in the shape figures.py reads, or None (no holdout, or hidden
    because the run is still going)."""
    if not run.config.holdout_command or not run.state.stop:
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
    """Everything markdown.markdown / page.html take (as keywords), read from the run's files."""
    return {"config": run.config.to_dict(), "state": run.state.to_json(), "records": run.store.records(),
            "verified": run.state.verified, "pareto": run.state.pareto,
            "holdout": holdout_for_report(run)}


def run_report(run, cwd: str, html: str | None, with_summary: bool) -> tuple:
    """(the Markdown to print, the --json object) of `ratchet.py report`;
    `html` is None (no page), '' (the default path) or the path asked for."""
    data = inputs(run)
    md = markdown.markdown(**data)
    out = {"summary": None, "markdown": md, "html": None}
    if html is not None:
        path = resolve_html_path(run, cwd, html or None)
        size = write_html(path, page.html(**data))
        out["html"] = {"path": path, "bytes": size}
        md += f"\nHTML report: {path} ({size / 1024:.0f} KB, self-contained; open it in a browser)\n"
    if with_summary:
        s = figures.run_summary(data["config"], data["state"], data["records"], verified=data["verified"])
        s["top_wins"] = [{k: r.get(k) for k in _WIN_KEYS} for r in s["top_wins"]]
        out["summary"] = s
    return md, out


def resolve_html_path(run, cwd: str, given: str | None) -> str:
    """The absolute path to write: `given` relative to `cwd`, or the default
    `.ratchet/report.html`; UsageError when writing there could harm."""
    path = os.path.abspath(os.path.join(cwd, given)) if given else os.path.join(run.repo, DEFAULT_HTML)
    if os.path.isdir(path):
        raise UsageError(f"--html {given} is a folder; give a file name such as {os.path.join(given, 'report.html')}")
    if not os.path.isdir(os.path.dirname(path)):
        raise UsageError(f"--html {given}: the folder {os.path.dirname(path)} does not exist")
    if os.path.lexists(path) and not _is_our_report(path):
        raise UsageError(f"--html {given}: {path} exists and is not a ratchet report; pick another file name")
    if not run.state.stop and _inside_tree_unignored(run.repo, path):
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
    return f'<meta name="generator" content="{page.GENERATOR}">'.encode() in head


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
