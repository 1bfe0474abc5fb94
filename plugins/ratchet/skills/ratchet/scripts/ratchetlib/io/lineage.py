"""Chains of runs: which run a run continues, and the history across them.

A run started by `ratchet.py chain` begins at its parent's best commit and
carries `.ratchet/parent.json` (FORMATS.md): the parent's id, branch, start
and best, its verified result when it has one, why the follow-up was
started, and `chain`, the ids of every earlier run, oldest first. The file is
written once, before the run's config, and made read-only (0444): it is the
record of where the run came from, not state. `init` archives it with the
run like every other file.
"""

from __future__ import annotations

import os

from ..core.errors import UsageError
from . import store_files
from .store import Store


def write_parent(store: Store, parent: dict | None) -> None:
    """Write the new run's parent.json (read-only), or clear a stray one."""
    # a stray one was left by an init killed before its config.json: it belongs to no run
    store_files.write_read_only(store.root, "parent", None if parent is None else {"format": 1, **parent})


def parent_of(root: str) -> dict | None:
    """The parent.json in a run folder (`.ratchet/` or `.ratchet/runs/<id>/`), or None."""
    return store_files.read_doc(root, "parent")


def runs(store: Store, run_id: str) -> list:
    """[{run_id, parent, records}] for every run of the chain ending in the current one, oldest first."""
    current = parent_of(store.root)
    ids = list(current.get("chain") or []) if current else []
    out = []
    for rid in ids:
        archived = store.archived(rid)
        folder = archived.root
        out.append({"run_id": rid, "parent": parent_of(folder) if os.path.isdir(folder) else None,
                    "records": archived.records(), "missing": not os.path.isdir(folder)})
    out.append({"run_id": run_id, "parent": current, "records": store.records(), "missing": False})
    return out


def summary(store: Store) -> str:
    """One line for `status` about where a chained run started, or ''."""
    try:
        p = parent_of(store.root)
    except UsageError:  # a damaged parent.json must not break status
        return ""
    if not p:
        return ""
    return (f"chained from run {p.get('parent_run_id')} at its best {p.get('best')!r} "
            f"(iter {p.get('best_iter')}): {p.get('rationale', '')}")
