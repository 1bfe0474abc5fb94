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
"""

import json
import os
import re
import shlex
import shutil
import sys
from typing import Optional

from ..core import sourcespec
from ..measure import tfevents
from ..core.errors import UsageError

FORMAT = 1
MAX_DEPTH = 4
MAX_ENTRIES = 20000
READ_LIMIT = 256 * 1024
SKIP_DIRS = {".git", ".ratchet", "node_modules", ".venv", "venv", "env", ".env", "__pycache__", ".tox", ".nox",
             ".mypy_cache", ".pytest_cache", ".ruff_cache", "site-packages", "dist", "build", ".idea", ".vscode",
             ".cache", ".ipynb_checkpoints", ".eggs"}
LOG_NAME = re.compile(r"(metric|log|result|history|eval|score|stat|progress|summary)", re.I)
_BOOKKEEPING = {"step", "epoch", "global_step", "_step", "_runtime", "_timestamp", "_wandb", "total_flos",
                "train_runtime", "train_samples_per_second", "train_steps_per_second", "eval_runtime",
                "eval_samples_per_second", "eval_steps_per_second", "learning_rate", "lr", "grad_norm",
                "time", "timestamp", "wall_time", "iteration", "iter", "batch", "created_at"}
_MIN_WORDS = ("loss", "error", "errors", "err", "latency", "time", "duration", "seconds", "secs", "sec", "ms",
              "us", "ns", "usec", "msec", "elapsed", "wall", "runtime", "ttft", "perplexity",
              "ppl", "bpb", "bpc", "mse", "mae", "rmse", "wer", "cer", "size", "bytes", "kb", "mb", "gb", "kib",
              "mib", "gib", "memory", "mem", "rss", "allocs", "allocations", "cycles", "instructions", "misses",
              "regret", "nll", "distance", "cost", "fail", "failures")
_MAX_WORDS = ("acc", "accuracy", "f1", "auc", "auroc", "precision", "recall", "score", "throughput", "bleu",
              "rouge", "map", "iou", "dice", "reward", "return", "ops", "qps", "rps", "tps", "ips", "per_sec",
              "per_second", "speed", "fps", "r2", "correct", "pass", "passed", "win", "hits", "hit")
# A rate per unit of time is a throughput: higher is better, whatever the unit word says.
_PER_TIME = re.compile(r"(?:^|_)per_(?:s|sec|secs|second|ms|us|min|minute|hour)$")
_CODE_METRIC_WORDS = {"loss", "acc", "accuracy", "f1", "auc", "score", "throughput", "latency", "ppl",
                      "perplexity", "bpb", "mse", "mae", "rmse", "bleu", "rouge", "reward", "wer", "cer"}
# A string literal that is a name ("val_loss") or starts a `name: value` print ("latency_ms: ").
_METRIC_LITERAL = re.compile(r"""["']([A-Za-z][\w./-]{1,40})(?:["']|\s*[:=])""")
_CODE_TRACKERS = (("wandb", re.compile(r"\bwandb\.init\(")),
                  ("tensorboard", re.compile(r"\bSummaryWriter\(|\btensorboard\b")),
                  ("hf", re.compile(r"\bTrainer\(|\bSeq2SeqTrainer\(|\bSFTTrainer\(")),
                  ("lightning", re.compile(r"\bCSVLogger\(|\bpytorch_lightning\b|\bimport lightning\b|\blightning\.pytorch\b")))
_ENTRY_RANK = (("bench", 0), ("perf", 1), ("train", 2), ("main", 3), ("run", 4), ("eval", 5))


def direction_of(name: str) -> Optional[str]:
    """`min`, `max` or None, from the words in a metric name."""
    words = [w for w in re.split(r"[^a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()) if w]
    joined = "_".join(words)
    if name.lower().replace(" ", "").endswith("/s") or _PER_TIME.search(joined):
        return "max"
    for w in words:
        if w in _MIN_WORDS:
            return "min"
    for w in words:
        if w in _MAX_WORDS:
            return "max"
    if any(joined.endswith(x) for x in ("per_sec", "per_second")):
        return "max"
    return None


def _rank(name: str) -> tuple:
    """Sort key: validation/eval metrics with a known direction first."""
    low = name.lower()
    split = 0 if re.match(r"(val|valid|validation|eval|test)[_/.]", low) or low.startswith(("eval", "val")) else 1
    kind = 0 if "loss" in low else 1 if "acc" in low else 2
    return (direction_of(name) is None, split, kind, name)


# --- walking ----------------------------------------------------------------------

def _walk(root: str):
    """(rel_dir, dirnames, filenames) in sorted order, bounded in depth and size."""
    seen = 0
    for here, dirs, files in os.walk(root):
        rel = os.path.relpath(here, root).replace(os.sep, "/")
        depth = 0 if rel == "." else rel.count("/") + 1
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")
                         and depth < MAX_DEPTH)
        files = sorted(files)
        seen += len(dirs) + len(files)
        yield ("" if rel == "." else rel), dirs, files
        if seen > MAX_ENTRIES:
            return


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def _read(path: str, limit: int = READ_LIMIT) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def _tail(path: str, limit: int = 64 * 1024) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read().decode("utf-8", "replace")
        return data if size <= limit else data.split("\n", 1)[-1]
    except OSError:
        return ""


def _numeric_keys(obj, prefix: str = "", depth: int = 0) -> list:
    out = []
    if isinstance(obj, dict) and depth < 3:
        for k, v in obj.items():
            key = f"{prefix}{k}"
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(key)
            elif isinstance(v, dict):
                out += _numeric_keys(v, key + ".", depth + 1)
    return out


def _metric_keys(keys) -> list:
    return sorted({k for k in keys if k.split(".")[-1].lower() not in _BOOKKEEPING and not k.startswith("_")},
                  key=_rank)


# --- trackers ---------------------------------------------------------------------

def _tracker(kind: str, path: str, keys: list, note: str = "") -> dict:
    spec = f"{kind}:{path}"
    found = {"kind": kind, "path": path, "source": spec, "metrics": _metric_keys(keys)[:20]}
    if note:
        found["note"] = note
    return found


def _jsonl_keys(full: str) -> Optional[list]:
    for line in reversed(_tail(full).splitlines()):
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            return None
        return _numeric_keys(record) if isinstance(record, dict) else None
    return None


def _csv_keys(full: str) -> Optional[list]:
    head = _read(full, 8192).splitlines()
    tail = [l for l in _tail(full).splitlines() if l.strip()]
    if len(head) < 2 or not tail:
        return None
    header = [h.strip() for h in head[0].split(",")]
    keys = []
    for row in reversed(tail[-50:]):
        cells = row.split(",")
        if len(cells) != len(header):
            continue
        for name, cell in zip(header, cells):
            try:
                float(cell)
                keys.append(name)
            except ValueError:
                pass
    return sorted(set(keys)) or None


def _hf_keys(full: str) -> list:
    try:
        with open(full, "rb") as f:
            state = json.loads(f.read(16 * 1024 * 1024))
    except (OSError, ValueError):
        return []
    keys = set()
    for entry in (state.get("log_history") or [])[-200:] if isinstance(state, dict) else []:
        if isinstance(entry, dict):
            keys.update(k for k, v in entry.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
    return sorted(keys)


def _wandb_keys(root: str, folder: str) -> list:
    full = os.path.join(root, folder)
    try:
        runs = sorted(n for n in os.listdir(full) if re.match(r"(offline-)?run-\d{8}_\d{6}-", n))
    except OSError:
        return []
    pick = "latest-run" if os.path.isdir(os.path.join(full, "latest-run")) else (runs[-1] if runs else None)
    if pick is None:
        return []
    try:
        with open(os.path.join(full, pick, "files", "wandb-summary.json"), "rb") as f:
            return _numeric_keys(json.loads(f.read(READ_LIMIT)))
    except (OSError, ValueError):
        return []


def find_trackers(root: str) -> list:
    """Tracker files and folders present, each with the metric names seen in it."""
    found, tb_roots, hf_dirs, lightning = [], {}, set(), set()
    for rel, dirs, files in _walk(root):
        parts = rel.split("/") if rel else []
        for d in dirs:
            if d in ("wandb", ".wandb") and "wandb" not in parts:
                path = _join(rel, d)
                found.append(_tracker("wandb", path, _wandb_keys(root, path)))
        if "lightning_logs" in parts or "wandb" in parts or ".wandb" in parts:
            if "lightning_logs" in parts and "metrics.csv" in files:
                lightning.add("/".join(parts[:parts.index("lightning_logs") + 1]))
            continue
        for name in files:
            path = _join(rel, name)
            full = os.path.join(root, path)
            if name.startswith("events.out.tfevents."):
                top = parts[0] if parts else path
                tb_roots.setdefault(top, []).append(full)
            elif name == "trainer_state.json":
                out_dir = "/".join(parts[:-1]) if parts and parts[-1].startswith("checkpoint-") else rel
                hf_dirs.add(out_dir or ".")
            elif not LOG_NAME.search(name):
                continue
            elif name.endswith(".jsonl"):
                keys = _jsonl_keys(full)
                if keys:
                    found.append(_tracker("jsonl", path, keys))
            elif name.endswith(".csv"):
                keys = _csv_keys(full)
                if keys:
                    found.append(_tracker("csv", path, keys))
            elif name.endswith(".json"):
                try:
                    keys = _numeric_keys(json.loads(_read(full)))
                except ValueError:
                    keys = []
                if keys:
                    found.append(_tracker("json", path, keys))
    for folder in sorted(lightning):
        csvs = sorted((os.path.getmtime(os.path.join(root, folder, r, "metrics.csv")), r)
                      for r, _, fs in _walk(os.path.join(root, folder)) if "metrics.csv" in fs)
        keys = _csv_keys(os.path.join(root, folder, csvs[-1][1], "metrics.csv")) if csvs else []
        found.append(_tracker("lightning", folder, keys or []))
    for top, files in sorted(tb_roots.items()):
        tags = sorted({t for f in sorted(files)[-20:] for t in tfevents.scalar_tags(f)})
        found.append(_tracker("tensorboard", top, tags))
    for out_dir in sorted(hf_dirs):
        state = os.path.join(root, out_dir, "trainer_state.json")
        if not os.path.exists(state):
            states = sorted(
                (os.path.getmtime(os.path.join(root, out_dir, d, "trainer_state.json")), d)
                for d in os.listdir(os.path.join(root, out_dir))
                if os.path.isfile(os.path.join(root, out_dir, d, "trainer_state.json")))
            state = os.path.join(root, out_dir, states[-1][1], "trainer_state.json") if states else state
        found.append(_tracker("hf", out_dir, _hf_keys(state)))
    return sorted(found, key=lambda t: (t["kind"], t["path"]))


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
    text = _read(full, 64 * 1024)
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


def _code_facts(root: str) -> tuple:
    """(trackers the code uses, metric-looking string literals) from the Python sources."""
    uses, names = {}, set()
    for rel, _, files in _walk(root):
        if rel and rel.split("/")[0] in ("tests", "test", "docs", "examples"):
            continue
        for name in files:
            if not name.endswith(".py"):
                continue
            path = _join(rel, name)
            text = _read(os.path.join(root, path))
            for kind, pattern in _CODE_TRACKERS:
                if pattern.search(text):
                    uses.setdefault(kind, path)
            for literal in _METRIC_LITERAL.findall(text):
                words = set(re.split(r"[^a-z0-9]+", literal.lower()))
                if words & _CODE_METRIC_WORDS and direction_of(literal) and len(literal) <= 30 \
                        and not re.search(r"\.(py|json|jsonl|csv|txt|pt|bin)$", literal):
                    names.add(literal)
    return [{"kind": k, "file": f} for k, f in sorted(uses.items())], sorted(names, key=_rank)[:20]


_SOURCE_EXTS = (".py", ".sh", ".bash", ".js", ".mjs", ".ts", ".go", ".rs", ".c", ".cc", ".cpp", ".rb", ".jl",
                ".java", ".kt", ".swift", ".lua", ".r", ".R", ".pl")
_PRINT_CALL = re.compile(r"\b(print|printf|println|eprint|eprintln|echo|puts|console\.(?:log|error|info)|fmt\.F?Print"
                         r"|System\.(?:out|err)\.print|write|cout|cerr|log|info|say)\b")
# `"NAME: ` / `'NAME=` at the start of a string literal, then a value: a placeholder
# ({...}, %..., $var) or a number, or the literal ends there (print("wall_ms:", ms)).
_PRINTED = re.compile(r"""(?:["'`]|f["'])\s*([A-Za-z][\w./-]{0,40}?)\s*[:=]\s*"""
                      r"""(?=["'`,)]|\{|%|\$|[-+]?\.?\d)""")
_STDERR = re.compile(r"stderr|console\.error|eprint|cerr|System\.err|>&2")


def printed_metrics(root: str) -> list:
    """[{"name", "file", "stream"}] for every `NAME: value` / `NAME=value` a source file prints.

    A line counts when it calls something that prints (print, echo, printf,
    console.log, ...) and a string literal on it starts with `NAME:` or `NAME=`
    followed by a value or a placeholder; `stream` is stderr when the line
    writes there, else stdout. Tests, docs and examples are skipped; each name
    keeps the first file it is seen in (sorted walk)."""
    found = {}
    for rel, _, files in _walk(root):
        if rel and rel.split("/")[0] in ("tests", "test", "docs", "examples"):
            continue
        for name in files:
            if not name.endswith(_SOURCE_EXTS) or name.startswith("test_"):
                continue
            path = _join(rel, name)
            for line in _read(os.path.join(root, path), 128 * 1024).splitlines():
                if not _PRINT_CALL.search(line):
                    continue
                for metric in _PRINTED.findall(line):
                    low = metric.lower()
                    if metric in found or low in _BOOKKEEPING or low in ("http", "https", "file", "usage", "error",
                                                                         "warning", "note", "todo", "info", "debug"):
                        continue
                    found[metric] = {"name": metric, "file": path,
                                     "stream": "stderr" if _STDERR.search(line) else "stdout"}
    return sorted(found.values(), key=lambda m: _rank(m["name"]))[:20]


def detect(root: str) -> dict:
    """The whole report (see FORMATS.md, `detect --json`)."""
    root = os.path.abspath(root)
    files = set(os.listdir(root)) if os.path.isdir(root) else set()
    facts = {"pyproject": "pyproject.toml" in files, "package_json": "package.json" in files,
             "makefile": next((m for m in ("GNUmakefile", "makefile", "Makefile") if m in files), None)}
    targets = {"make": [], "npm": [], "pyproject_scripts": []}
    pyproject = _pyproject(_read(os.path.join(root, "pyproject.toml"))) if facts["pyproject"] else {}
    targets["pyproject_scripts"] = pyproject.get("scripts", [])
    if facts["makefile"]:
        targets["make"] = _makefile_targets(_read(os.path.join(root, facts["makefile"])))
    if facts["package_json"]:
        try:
            scripts = json.loads(_read(os.path.join(root, "package.json"))).get("scripts") or {}
            targets["npm"] = sorted(scripts) if isinstance(scripts, dict) else []
        except (ValueError, AttributeError):
            pass
    test_files = 0
    for rel, _, names in _walk(root):
        test_files += sum(1 for n in names if re.match(r"(test_.*|.*_test)\.py$", n))
    setup_cfg = _read(os.path.join(root, "setup.cfg"))
    pytest = {"configured": bool(pyproject.get("pytest_config") or "pytest.ini" in files or "conftest.py" in files
                                 or "[tool:pytest]" in setup_cfg or "[pytest]" in _read(os.path.join(root, "tox.ini"))),
              "test_files": test_files,
              "installed": _importable("pytest")}
    entries = sorted((n for n in files if n.endswith(".py") and os.path.isfile(os.path.join(root, n))
                      and _is_entry_point(os.path.join(root, n))), key=_entry_rank)
    trackers = find_trackers(root)
    code_trackers, code_names = _code_facts(root)
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
    ordered = sorted(seen.values(), key=lambda m: (m["source"] is None, _rank(m["name"])))
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
