"""Sealing a run as it is now: adopting a run from before seals, `reseal`,
and putting sealed files back after an undone step.

Part of the store (only io/store* writes under `.ratchet/`); every file is
rewritten through `store.write_sealed` / `store.atomic_write`, so each step
stays atomic, and `adopt` keeps its named kill point (`seal-adopt`) between
files. The seal itself is seal.py's.
"""

from __future__ import annotations

import os

from ..core import faults, sha256
from ..core.errors import UsageError
from . import seal
from .store import atomic_write, parse_doc, read_sealed, records_in, write_sealed


def put_back(root: str, names: list) -> None:
    """Rewrite sealed files `names` with the bytes this process last wrote or
    verified (they carry a valid seal), or remove one that was absent then."""
    for name in names:
        _, data = seal.known(root, name)
        if data is None:
            try:
                os.unlink(os.path.join(root, name))
            except FileNotFoundError:
                pass
        else:
            atomic_write(os.path.join(root, name), data)


def adopt(root: str) -> str | None:
    """Seal a run started before sealing existed, as its files are now: the
    key is made first (marked `adopting`, so a kill part-way is finished by
    the next command), then every sealed file is rewritten with its seal,
    state.json noting the last record written before (`sealed_after`:
    unsealed records up to it are the run's own). Returns the line to
    announce, or None when there was nothing to do."""
    run_id, sealed = seal.run_of(root)
    if not run_id or not os.path.exists(os.path.join(root, "config.json")):
        return None
    key = seal.read_key(run_id)
    if key is not None and not seal.adopting(run_id):
        return None  # sealed (or, without config's seal, tampered: read_sealed says so)
    if key is None:
        if sealed:
            return None  # a sealed run whose key is missing: read_sealed says so
        key = seal.make_key(run_id, adopting_run=True)
    done = []
    for name in seal.SEALED:
        obj = read_sealed(root, name)
        if obj is None:
            continue
        if name == "state.json" and "sealed_after" not in obj:
            last = records_in(root, last=1)
            obj = {**obj, "sealed_after": last[-1].get("iter") if last else None}
            if not os.path.exists(os.path.join(root, "harness.json")):
                obj["unpinned"] = True  # started before harness pinning existed: no harness.json to require
        write_sealed(root, name, obj)
        done.append(name)
        faults.point("seal-adopt")
    seal.finish_adoption(run_id, key)
    return (f"sealed this run's contract ({', '.join(done)}) as it is now: the run started before ratchet "
            f"sealed runs, so a change made before now cannot be detected; the key is {seal.key_path(run_id)}")


def seal_problems(root: str) -> list:
    """One line per sealed file that does not verify now (for `reseal`)."""
    out = []
    for name in seal.SEALED:
        try:
            read_sealed(root, name)
        except UsageError as e:
            out.append(str(e).split(";")[0])
    return out


def trust(root: str) -> list:
    """`reseal`, after a person confirmed it: seal every sealed file as it is
    now (a missing or damaged key is replaced by a new one); records written
    so far count as the run's own. Returns the names sealed."""
    run_id = seal.run_of(root)[0]
    seal.key_path(run_id)  # refuses a run id ratchet never made
    try:
        key = seal.read_key(run_id)
    except seal.SealError:
        key = None
    if key is None:
        seal.replace_key(run_id)
    done = []
    for name in seal.SEALED:
        path = os.path.join(root, name)
        try:
            with open(path, "rb") as f:
                obj = parse_doc(f.read(), path, name)
        except FileNotFoundError:
            continue
        if name == "state.json":
            last = records_in(root, last=1)
            obj = {**obj, "sealed_after": last[-1].get("iter") if last else None}
        if name == "harness.json":
            obj = _with_gitguard(root, obj)
        write_sealed(root, name, obj)
        done.append(name)
    return done


def _with_gitguard(root: str, harness_doc: dict) -> dict:
    """harness.json trusting gitguard.json as it is now (io/gitguard)."""
    try:
        with open(os.path.join(root, "gitguard.json"), "rb") as f:
            return {**harness_doc, "gitguard_sha256": sha256.hexdigest(f.read())}
    except FileNotFoundError:
        return {k: v for k, v in harness_doc.items() if k != "gitguard_sha256"}
