"""The tracker files a trainer already wrote (W&B, Lightning, TensorBoard,
Hugging Face trainer_state.json, JSON/JSONL/CSV metric logs), each with the
metric names seen in it and its `KIND:PATH` report source, for `detect`.
Reads only the bounded walk of detect_scan; the TensorBoard scalar tags come
from measure/tfevents."""

from __future__ import annotations

import json
import os
import re

from ..measure import tfevents
from .detect_names import BOOKKEEPING, rank
from .detect_scan import READ_LIMIT, join, read_head, read_tail, walk_tree

LOG_NAME = re.compile(r"(metric|log|result|history|eval|score|stat|progress|summary)", re.I)


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
    return sorted({k for k in keys if k.split(".")[-1].lower() not in BOOKKEEPING and not k.startswith("_")},
                  key=rank)


def _tracker(kind: str, path: str, keys: list, note: str = "") -> dict:
    spec = f"{kind}:{path}"
    found = {"kind": kind, "path": path, "source": spec, "metrics": _metric_keys(keys)[:20]}
    if note:
        found["note"] = note
    return found


def _jsonl_keys(full: str) -> list | None:
    for line in reversed(read_tail(full).splitlines()):
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            return None
        return _numeric_keys(record) if isinstance(record, dict) else None
    return None


def _csv_keys(full: str) -> list | None:
    head = read_head(full, 8192).splitlines()
    tail = [l for l in read_tail(full).splitlines() if l.strip()]
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
    for rel, dirs, files in walk_tree(root):
        parts = rel.split("/") if rel else []
        for d in dirs:
            if d in ("wandb", ".wandb") and "wandb" not in parts:
                path = join(rel, d)
                found.append(_tracker("wandb", path, _wandb_keys(root, path)))
        if "lightning_logs" in parts or "wandb" in parts or ".wandb" in parts:
            if "lightning_logs" in parts and "metrics.csv" in files:
                lightning.add("/".join(parts[:parts.index("lightning_logs") + 1]))
            continue
        for name in files:
            path = join(rel, name)
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
                    keys = _numeric_keys(json.loads(read_head(full)))
                except ValueError:
                    keys = []
                if keys:
                    found.append(_tracker("json", path, keys))
    for folder in sorted(lightning):
        csvs = sorted((os.path.getmtime(os.path.join(root, folder, r, "metrics.csv")), r)
                      for r, _, fs in walk_tree(os.path.join(root, folder)) if "metrics.csv" in fs)
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
