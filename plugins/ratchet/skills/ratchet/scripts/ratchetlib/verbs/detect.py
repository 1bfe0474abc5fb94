"""`ratchet.py detect`: what a project offers to optimize, found deterministically.

The setup skill asks this instead of exploring by hand, so a run starts from
facts: build files and their targets (pyproject.toml, package.json,
Makefile), whether pytest is set up, tracker files a trainer already wrote
(W&B, Lightning, TensorBoard, Hugging Face trainer_state.json, JSON/JSONL/CSV
metric logs) with the metric names in them, trackers the code uses but that
have not written anything yet, candidate metric names with their likely
direction, entry points, likely run commands, and a complete `init` proposal
when there is enough to make one, plus the questions that remain.

A metric a source file prints as `NAME: value` / `NAME=value` (print, echo,
console.log, ...) is found too, with its stream as the source, so a plain
benchmark gets complete flags; a direction the name does not tell is left
out of the proposal and asked. Commands are suggested only for tools that
are installed here (make, npm, pytest).

Same files and tools in, same answer out: folders are walked in sorted
order, to a fixed depth and a fixed number of entries, skipping virtualenvs,
caches and `.git`; only the first part of large files is read; nothing is
executed and nothing is written.

This module puts the report together (build files, commands, the proposal
and its questions); the walk is detect_scan, what a name tells is
detect_names, tracker files are detect_trackers, the sources detect_code.
"""

import json
import os
import re
import shlex
import shutil
import sys

from ..core import sourcespec
from ..core.errors import UsageError
from .detect_code import code_facts, printed_metrics
from .detect_names import direction_of, rank
from .detect_scan import read_head, walk_tree
from .detect_trackers import find_trackers

FORMAT = 1
_ENTRY_RANK = (("bench", 0), ("perf", 1), ("train", 2), ("main", 3), ("run", 4), ("eval", 5))


# --- project files ------------------------------------------------------------------

def _makefile_targets(text: str) -> list:
    targets = re.findall(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)\s*:(?!=)", text, re.M)
    return sorted(set(targets))


def _pyproject(text: str) -> dict:
    """The few pyproject.toml facts needed, by line scanning (no tomllib before 3.11)."""
    scripts, section, pytest = [], None, False
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"\[(.+)\]$", line)
        if m:
            section = m.group(1).strip()
            pytest = pytest or section == "tool.pytest.ini_options"
            continue
        m = re.match(r"""["']?([A-Za-z0-9_.-]+)["']?\s*=""", line)
        if section == "project.scripts" and m:
            scripts.append(m.group(1))
    return {"scripts": sorted(scripts), "pytest_config": pytest, "mentions_pytest": "pytest" in text}


def _is_entry_point(full: str) -> bool:
    text = read_head(full, 64 * 1024)
    return bool(re.search(r"""^if\s+__name__\s*==\s*["']__main__["']\s*:""", text, re.M))


def _entry_rank(name: str) -> tuple:
    low = name.lower()
    return (next((r for word, r in _ENTRY_RANK if low.startswith(word)), 9), name)


def _python() -> str:
    return "python3" if sys.platform != "win32" else "python"


# --- putting it together ---------------------------------------------------------------

def _git_facts(root: str) -> dict:
    from ..io import gitops
    try:
        top = gitops.find_root(root)
    except UsageError:  # not a repository, or no git: a fact to report, not an error
        return {"repo": False, "branch": None, "commits": False, "dirty": []}
    return {"repo": True, "branch": gitops.current_branch(top), "commits": gitops.head_sha(top) is not None,
            "dirty": gitops.tracked_changes(top)[:20] if gitops.head_sha(top) else []}


def detect(root: str) -> dict:
    """The whole report (see FORMATS.md, `detect --json`)."""
    root = os.path.abspath(root)
    files = set(os.listdir(root)) if os.path.isdir(root) else set()
    facts = {"pyproject": "pyproject.toml" in files, "package_json": "package.json" in files,
             "makefile": next((m for m in ("GNUmakefile", "makefile", "Makefile") if m in files), None)}
    targets = {"make": [], "npm": [], "pyproject_scripts": []}
    pyproject = _pyproject(read_head(os.path.join(root, "pyproject.toml"))) if facts["pyproject"] else {}
    targets["pyproject_scripts"] = pyproject.get("scripts", [])
    if facts["makefile"]:
        targets["make"] = _makefile_targets(read_head(os.path.join(root, facts["makefile"])))
    if facts["package_json"]:
        try:
            scripts = json.loads(read_head(os.path.join(root, "package.json"))).get("scripts") or {}
            targets["npm"] = sorted(scripts) if isinstance(scripts, dict) else []
        except (ValueError, AttributeError):
            pass
    test_files = 0
    for rel, _, names in walk_tree(root):
        test_files += sum(1 for n in names if re.match(r"(test_.*|.*_test)\.py$", n))
    setup_cfg = read_head(os.path.join(root, "setup.cfg"))
    pytest = {"configured": bool(pyproject.get("pytest_config") or "pytest.ini" in files or "conftest.py" in files
                                 or "[tool:pytest]" in setup_cfg or "[pytest]" in read_head(os.path.join(root, "tox.ini"))),
              "test_files": test_files,
              "installed": _importable("pytest")}
    entries = sorted((n for n in files if n.endswith(".py") and os.path.isfile(os.path.join(root, n))
                      and _is_entry_point(os.path.join(root, n))), key=_entry_rank)
    trackers = find_trackers(root)
    code_trackers, code_names = code_facts(root)
    commands = _commands(entries, targets, pytest)
    printed = printed_metrics(root)
    metrics = _metrics(trackers, code_names, printed)
    report = {"format": FORMAT, "root": root, "git": _git_facts(root), "project": facts, "targets": targets,
              "pytest": pytest, "tools": _tools(), "entry_points": entries, "trackers": trackers,
              "code_trackers": code_trackers, "metrics": metrics, "commands": commands}
    report["proposal"], report["questions"] = _proposal(report)
    return report


def _tools() -> dict:
    """Which of the tools a proposed command would need are installed here."""
    return {"make": bool(shutil.which("make")), "npm": bool(shutil.which("npm")),
            "pytest": _importable("pytest") or bool(shutil.which("pytest"))}


def _importable(module: str) -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _commands(entries: list, targets: dict, pytest: dict) -> list:
    out = []
    for name in entries:
        out.append({"command": f"{_python()} {shlex.quote(name)}", "why": f"{name} has a __main__ block",
                    "rank": _entry_rank(name)[0]})
    tools = _tools()
    for tool, prefix in (("make", "make "), ("npm", "npm run ")):
        for t in targets[tool] if tools[tool] else ():  # only what can run here
            rank = next((r for word, r in _ENTRY_RANK if t.lower().startswith(word)), None)
            if rank is not None or t in ("test", "check"):
                out.append({"command": prefix + t, "why": f"{tool} target {t}", "rank": 7 if rank is None else rank})
    if (pytest["configured"] or pytest["test_files"]) and tools["pytest"]:
        out.append({"command": f"{_python()} -m pytest -q", "why": "a pytest suite (metric: its run time)",
                    "rank": 8})
    out.sort(key=lambda c: (c["rank"], c["command"]))
    return [{"command": c["command"], "why": c["why"]} for c in out]


_KIND_PREFERENCE = ("hf", "wandb", "tensorboard", "lightning", "jsonl", "csv", "json")


def _metrics(trackers: list, code_names: list, printed: list = ()) -> list:
    """Candidate metrics; a name logged in several places takes the most specific tracker
    (a framework's own log before a generic per-step log before a one-shot JSON file),
    then a name a source file prints (`NAME: value`: its stream is the source)."""
    seen = {}
    for t in sorted(trackers, key=lambda t: (_KIND_PREFERENCE.index(t["kind"]), t["path"])):
        for name in t["metrics"]:
            if name not in seen:
                seen[name] = {"name": name, "direction": direction_of(name), "source": f"{t['source']}#{name}",
                              "seen_in": t["path"]}
    for p in printed:
        if p["name"] not in seen:
            seen[p["name"]] = {"name": p["name"], "direction": direction_of(p["name"]), "source": p["stream"],
                               "seen_in": p["file"]}
    for name in code_names:
        if name not in seen:
            seen[name] = {"name": name, "direction": direction_of(name), "source": None, "seen_in": "code"}
    ordered = sorted(seen.values(), key=lambda m: (m["source"] is None, rank(m["name"])))
    return ordered[:20]


def _pick_metric(metrics: list):
    """The metric to propose: the best-ranked one with a direction, else the best one
    with a known source (its direction is then asked), else None."""
    return (next((m for m in metrics if m["direction"]), None)
            or next((m for m in metrics if m["source"]), None))


def _pick_command(commands: list, metric):
    """The command that runs the file printing the metric, else the best-ranked one."""
    if not commands:
        return None
    seen_in = metric.get("seen_in") if metric else None
    if seen_in and metric.get("source") in sourcespec.STREAMS:
        for c in commands:
            if seen_in in shlex.split(c["command"]):
                return c["command"]
    return commands[0]["command"]


def _proposal(report: dict):
    questions = []
    git = report["git"]
    if not git["repo"] or not git["commits"]:
        questions.append("this folder is not a git repository with a commit; ratchet needs one (git init, commit)")
    elif git["dirty"]:
        questions.append("tracked files have uncommitted changes; commit or stash them before init")
    metric = _pick_metric(report["metrics"])
    command = _pick_command(report["commands"], metric)
    if command is None:
        questions.append("no benchmark or training command found: which command prints or logs the metric?")
    elif len(report["commands"]) > 1:
        questions.append("several candidate commands; confirm the one to optimize")
    if report["pytest"]["test_files"] and not report["tools"]["pytest"]:
        questions.append("the project has pytest tests but pytest is not installed here, so no pytest command "
                         "is proposed (install it to use the tests as a command or --guard-command)")
    if metric is None:
        questions.append("which metric, and is higher or lower better?")
    elif metric["source"] is None:
        if report["code_trackers"]:
            questions.append(f"the code logs with {report['code_trackers'][0]['kind']} but no log files exist yet: "
                             f"run the command once, then run detect again")
        questions.append(f"does the command print `{metric['name']}: VALUE` on stdout? otherwise give the file it logs to")
    if metric is not None and metric["direction"] is None:
        questions.append(f"is higher or lower better for {metric['name']}? add --direction max or --direction min")
    if command is None or metric is None:
        return None, questions
    source = metric["source"] or "stdout"
    # Timing benchmarks are noisy: average 3 runs; a training run is long: 1 (its seed noise is smaller).
    training = source not in sourcespec.STREAMS or "train" in command
    flags = {"run_command": command, "direction": metric["direction"], "metric_name": metric["name"],
             "report_source": source, "trials": 1 if training and "bench" not in command else 3}
    if command.endswith("pytest -q"):
        flags.update(metric_name="seconds", direction="min", report_source="stdout",
                     metric_pattern=r"in ([0-9.]+)s")
    missing = [k for k, v in flags.items() if v is None]
    flags = {k: v for k, v in flags.items() if v is not None}
    args = []
    for key, value in flags.items():
        args += [f"--{key.replace('_', '-')}", shlex.quote(str(value))]
    proposal = {"flags": flags, "args": " ".join(args)}
    if missing:
        proposal["missing"] = missing
    return proposal, questions


def human(report: dict) -> str:
    """A short plain-text summary of `detect`."""
    lines = [f"project: {report['root']}"]
    if report["commands"]:
        lines.append("commands: " + "; ".join(c["command"] for c in report["commands"][:5]))
    if report["trackers"]:
        lines.append("trackers: " + "; ".join(f"{t['source']} ({', '.join(t['metrics'][:4]) or 'no metrics'})"
                                             for t in report["trackers"][:5]))
    if report["metrics"]:
        lines.append("metrics: " + ", ".join(f"{m['name']} ({m['direction'] or '?'})" for m in report["metrics"][:8]))
    if report["proposal"]:
        lines.append("proposal: ratchet.py init " + report["proposal"]["args"])
    lines += [f"question: {q}" for q in report["questions"]]
    return "\n".join(lines)
