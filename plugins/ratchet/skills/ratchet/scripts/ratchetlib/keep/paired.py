"""Paired, interleaved measurement (`--decision paired`, the default).

Each pair is one run of the incumbent (the last kept commit, HEAD) and one of
the candidate (the agent's change in the tree), back to back, the order
alternating (AB, BA, ...: `incumbent_first`) so a drifting machine
cancels inside the pairs. Both run in the same working directory, so ignored
data folders, build outputs and relative paths work unchanged: the editable
files are swapped.

The swap, and why it is crash safe:
  1. before the first swap the candidate is saved as a binary patch
     (`.ratchet/swap/candidate.patch`) with its changed and new paths, and
     current.json records `swap` (the same data a revert saves);
  2. to the incumbent: the candidate's paths are restored to HEAD and its
     new files removed (`gitpatch.back_to_head`);
  3. to the candidate: the same restore, then `git apply --binary` of the
     saved patch. Restore-then-apply is idempotent, so `recover` (a command
     started after a kill at any point) simply does step 3 (and removes a
     temporary file a killed write left, swapfiles.clear_temps);
  4. within one `measure`, each side is captured the first time it is in
     the tree (the candidate at step 1, the incumbent after its first
     restore) and every later switch writes the captured files back
     (io/swapfiles.py): no git process, the same bytes and modes as the
     first switch, and on any failure step 2 or 3 through git instead.
Each switch ends in `fresh.switched` (new mtimes, the .pyc of swapped
modules dropped), so caches keyed by mtime never serve the other side.
After the last pair the tree holds the candidate again and `swap` is
cleared; the engine's usual decision ordering then commits it or saves it
as the iteration's patch and restores the incumbent.

After each pair `sprt_decide` says keep, revert or continue; at least
`Config.min_pairs` pairs run, at most `--max-trials`. With `--seed-env VAR`
both runs of pair p see the same `pair_seed(run_id, iteration, p)`.

Units: effects, h0/h1 and the noise are on the stats scale (log-ratios when
every score is positive, metric units otherwise). What records and state show
people and the learning loop (`estimate`, `interval`, `detectable_effect`) is
a relative improvement (0.031 = +3.1%, positive = better): `relative`.
"""

from __future__ import annotations

import math
import os
import time

from ..core import change, faults, sha256
from ..core.effects import incumbent_first, pair_effect, pair_seed, use_log_scale
from ..core.noise import noise_estimate
from ..core.power import hypotheses, noise_of, relative
from ..core.robust import incumbent_adrift
from ..core.sprt import sprt_decide
from ..io import carry, fresh, gitpatch, swapfiles, treescan
from ..measure import trial
from ..core.errors import RatchetError
from ..io import store_files
from ..io.store import atomic_write
from ..core.state import RunState

SWAP_PATCH = ("swap", "candidate.patch")
STAGED = ("swap", "artifacts")  # a candidate run's checkpoints, copied aside (_stage)
# The trials so far reach current.json for `status` and `tail` of a run in
# progress, at most this often: recovery discards a measuring buffer's trials,
# so nothing else reads them, and a write a trial of a 1 ms benchmark was
# 4 of iterate's 8 sealed writes (issue 18).
PROGRESS_SECONDS = 1.0


# --- the swap -----------------------------------------------------------------

def save_candidate(run, cur: dict, cand) -> dict:
    """Step 1: the candidate as a patch under .ratchet/, `swap` in current.json."""
    path = run.store.path(*SWAP_PATCH)
    store_files.folder(run.store.root, "swap")
    patch = gitpatch.diff_patch(run.repo, list(cand.tracked), list(cand.new)).encode("utf-8", "surrogateescape")
    atomic_write(path, patch)
    cur["swap"] = {"patch": os.path.relpath(path, run.store.root), "tracked": list(cand.tracked),
                   "new": list(cand.new), "in_tree": "candidate", "sha256": sha256.hexdigest(patch)}
    run.store.write_current(cur)
    return cur["swap"]


def to_incumbent(run, swap: dict, sides: dict | None = None) -> None:
    """Step 2; with `sides` (one measure's memory, io/swapfiles) the first
    switch goes through git and is captured, every later one is file writes.
    `sides["index_is_head"]` (the candidate staged nothing): the first
    switch is a checkout alone (gitpatch.back_to_head)."""
    if not _from_memory(run, swap, sides, "incumbent"):
        clean = (sides or {}).pop("index_is_head", False)
        _note_absent(sides, gitpatch.back_to_head(run.repo, swap["tracked"], swap["new"], clean))
        _capture(run, swap, sides, "incumbent")
    fresh.switched(run.repo, swap["tracked"] + swap["new"])


def to_candidate(run, swap: dict, sides: dict | None = None) -> None:
    """Restore, then apply the saved patch (idempotent: recovery calls it);
    from `sides` when the candidate was captured (see to_incumbent)."""
    if _from_memory(run, swap, sides, "candidate"):
        fresh.switched(run.repo, swap["tracked"] + swap["new"])
        return
    _note_absent(sides, gitpatch.back_to_head(run.repo, swap["tracked"], swap["new"]))
    faults.point("swap-restored")
    with open(os.path.join(run.store.root, swap["patch"]), "rb") as f:
        patch = f.read()
    if patch:
        err = gitpatch.apply_patch(run.repo, patch)
        if err:
            raise RatchetError(f"could not re-apply the candidate from .ratchet/{swap['patch']}: {err}; "
                               f"apply it by hand (git apply --binary)")
    fresh.switched(run.repo, swap["tracked"] + swap["new"])


def _note_absent(sides: dict | None, absent: list) -> None:
    """Keep which of the swap's tracked paths HEAD lacks (`sides["absent"]`):
    with it, the tree after a later switch is known without git (carry.swapped)."""
    if sides is not None:
        sides["absent"] = absent


def _switch(run, swap: dict, sides: dict, seen: dict, role: str) -> None:
    """One switch of `measure`'s pairs to `role`; `seen["tree"]` becomes the
    tree the last run left as the swap alone moved it (carry.swapped: no git
    status), once `sides` knows what HEAD lacks. `in_tree` reaches
    current.json with the trial's own write: recovery never reads it (it
    restores the candidate whichever side is in the tree), so a write of its
    own before each switch bought nothing (issue 18)."""
    left, scan = seen.pop("tree", None), seen.pop("scan", None)
    swap["in_tree"] = role
    to_incumbent(run, swap, sides) if role == "incumbent" else to_candidate(run, swap, sides)
    if left is not None and "absent" in sides:
        seen["tree"] = carry.swapped(run.repo, left, swap["tracked"], swap["new"], sides["absent"], role)
        if scan is not None:  # the scan, as the swap moved it (io/treescan)
            seen["scan"] = scan and treescan.rescan(run.repo, scan, swap["tracked"] + swap["new"], seen["tree"])


def _capture(run, swap: dict, sides: dict | None, role: str) -> None:
    if sides is not None:
        sides[role] = swapfiles.read_side(run.repo, swap["tracked"] + swap["new"])


def _from_memory(run, swap: dict, sides: dict | None, role: str) -> bool:
    """Write the captured side; False when there is none or a write failed
    (the caller then swaps through git, which puts every path right)."""
    side = (sides or {}).get(role)
    if not side:
        return False
    if role == "candidate":
        faults.point("swap-restored")  # the incumbent is still in the tree, as after back_to_head
    try:
        swapfiles.write_side(run.repo, side)
    except OSError:
        sides[role] = None
        return False
    return True


def recover(run, cur: dict) -> list:
    """A command killed mid-swap: put the candidate back in the tree."""
    swap = cur.get("swap")
    if not swap:
        return []
    swapfiles.clear_temps(run.repo, swap["tracked"] + swap["new"])
    to_candidate(run, swap)
    cur = {k: v for k, v in cur.items() if k != "swap"}
    run.store.write_current(cur)
    return [f"a killed command left iteration {cur.get('iter')} mid-swap; the candidate was restored "
            f"from .ratchet/{swap['patch']}"]


# --- the plan of one iteration's test ----------------------------------------

# --- measuring ----------------------------------------------------------------

def seed_env(cfg, iteration: int, pair: int) -> dict | None:
    """The environment both runs of `pair` share (common random numbers)."""
    if not cfg.seed_env:
        return None
    return {cfg.seed_env: str(pair_seed(cfg.run_id, iteration, pair))}


def effects_of(cfg, cand: list, inc: list, log_scale: bool) -> tuple:
    """(effects, log_scale) for complete pairs; the difference scale when a
    score is not positive."""
    pairs = [(i["score"], c["score"]) for i, c in zip(inc, cand)]
    if log_scale and any(s <= 0 for p in pairs for s in p):
        log_scale = False
    return [pair_effect(i, c, cfg.direction, log_scale) for i, c in pairs], log_scale


def measure(run, cur: dict, cand) -> tuple:
    """Run pairs until the test decides or a run fails; the tree ends on the
    candidate. Returns (candidate trials, incumbent trials, stats verdict or
    None when a run failed, log_scale). Each run is a watched trial
    (measure/trial.py: capture, heartbeat, artifacts, carry)."""
    cfg, st, it = run.config, run.state, cur["iter"]
    log_scale = bool(st.log_scale)
    base = st.incumbent_score
    hyp = hypotheses(cfg, base, log_scale)  # before any swap: a usage error leaves the tree untouched
    noise = noise_of(st.noise)
    swap, shown = save_candidate(run, cur, cand), time.monotonic()
    sides = {"candidate": swapfiles.read_side(run.repo, swap["tracked"] + swap["new"]),  # as the patch: the agent's tree
             "index_is_head": cand.index_is_head}
    faults.point("swap-saved")
    ctrials, itrials = cur.setdefault("trials", []), cur.setdefault("incumbent_trials", [])
    in_tree, verdict, k, last = "candidate", None, 0, None
    # seen: the tree while no swap moved it; the first from the candidate's own status, read the way
    # carry.tree reads it (issue 18: one git process fewer), now that fresh.switched has run
    seen = {"tree": carry.tree(run.repo, list(cand.status))} if cand.status is not None else {}
    staged = run.store.path(*STAGED)
    store_files.remove_path(staged, strict=False)
    try:
        for p in range(1, cfg.max_trials + 1):
            env = seed_env(cfg, it, p)
            order = ("incumbent", "candidate") if incumbent_first(p) else ("candidate", "incumbent")
            failed = False
            for role in order:
                if role != in_tree:
                    _switch(run, swap, sides, seen, role)
                    in_tree = role
                    if role == "incumbent":
                        faults.point("swapped")
                k += 1
                # watched (carry.py): a candidate's run that wrote outside its diff is undone before
                # the incumbent runs again, and ends the pairs (`tampered`)
                t = trial.watched_trial(run, it, k, env, f"iter {it} pair {p}/{cfg.max_trials} {role}",
                              own=cand.paths if role == "candidate" else None, seen=seen)
                t.update(pair=p, role=role)
                (itrials if role == "incumbent" else ctrials).append(t)
                last = role
                if role == "candidate":
                    _stage(run.repo, staged, t.get("artifacts") or [])
                if time.monotonic() - shown >= PROGRESS_SECONDS:
                    run.store.write_current(cur, progress=True)
                    shown = time.monotonic()
                faults.point("trial-done")
                if t["status"] != "ok" or t.get("carried"):
                    failed = True
                    break
            if failed:
                verdict = None
                break
            verdict = _test(cfg, ctrials, itrials, base, log_scale, hyp, noise)
            if verdict.decided:
                break
    finally:
        _end_pairs(run, cur, swap, sides, in_tree, last == "incumbent")
    if sides.get("incumbent") and (cur.get("candidate") or {}).get("patch_sha256"):
        run.incumbent_side = {"head": st.incumbent_sha, "side": sides["incumbent"]}
    return ctrials, itrials, verdict, log_scale


def _end_pairs(run, cur: dict, swap: dict, sides: dict, in_tree: str, incumbent_last: bool) -> None:
    """The candidate back in the tree, with the checkpoints its last run
    wrote; `patch_sha256` in the buffer's candidate when the tree holds it
    exactly as saved (the patch a revert saves, keep/finish); `swap` done."""
    if in_tree != "candidate":
        to_candidate(run, swap, sides)
    if incumbent_last:  # the candidate's checkpoints, not the incumbent's, are what a keep promotes
        _unstage(run.repo, run.store.path(*STAGED))
    if sides.get("candidate") and swapfiles.read_side(run.repo, swap["tracked"] + swap["new"]) == sides["candidate"]:
        cur["candidate"] = {**cur.get("candidate", {}), "patch_sha256": swap["sha256"]}
    cur.pop("swap", None)
    run.store.write_current(cur)


def _test(cfg, ctrials: list, itrials: list, base: float, log_scale: bool, hyp: tuple, noise):
    """The sequential test on the pairs so far (pure): the run's hypotheses
    (`hyp`, recomputed when a non-positive score moved the effects off the
    log scale) and the calibrated noise as its prior."""
    effects, scale = effects_of(cfg, ctrials, itrials, log_scale)
    h0, h1 = hyp if scale == log_scale else hypotheses(cfg, base, scale)
    prior = noise if noise is not None and noise.log_scale == scale else None
    sigma = prior.sigma_pair if prior else None
    adrift = incumbent_adrift([t["score"] for t in itrials], [t["score"] for t in ctrials], base, sigma, scale)
    return sprt_decide(effects, h0=h0, h1=h1, alpha=cfg.alpha, beta=cfg.beta, min_pairs=cfg.min_pairs,
                       max_pairs=cfg.max_trials, sigma_prior=sigma, prior_df=prior.df if prior else 0.0,
                       log_scale=scale, direction=cfg.direction, adrift=adrift)


def _stage(repo: str, staged: str, rels: list) -> None:
    """Copy what a candidate run wrote (--artifact-glob matches) aside: a later
    incumbent run may overwrite a checkpoint with a fixed name."""
    store_files.remove_path(staged, strict=False)
    for rel in rels:
        src = os.path.join(repo, rel)
        if os.path.isfile(src):
            store_files.copy_in(src, os.path.join(staged, rel), keep_times=True)


def _unstage(repo: str, staged: str) -> None:
    for top, _, files in os.walk(staged):
        for name in files:
            src = os.path.join(top, name)
            dst = os.path.join(repo, os.path.relpath(src, staged))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            import shutil  # only with --artifact-glob checkpoints (issue 18)
            shutil.copy2(src, dst)
    store_files.remove_path(staged, strict=False)


def evidence(cfg, verdict, ctrials: list, itrials: list) -> dict:
    """The record's top-level evidence fields of a paired decision."""
    inc_mean = mean_or_none(t["score"] for t in itrials)
    effects, scale = effects_of(cfg, ctrials, itrials, verdict.log_scale)
    iv = verdict.interval
    return {"pairs": verdict.pairs, "effects": effects, "log_scale": verdict.log_scale,
            "estimate": relative(verdict.estimate, verdict.log_scale, inc_mean),
            "interval": None if iv is None else [relative(x, verdict.log_scale, inc_mean) for x in iv],
            "statistic": verdict.statistic, "incumbent_scores": [t.get("score") for t in itrials],
            "incumbent_trials": itrials, "test": {"h0": verdict.h0, "h1": verdict.h1, "bounds":
                                                  None if verdict.bounds is None else list(verdict.bounds),
                                                  "sigma": verdict.sigma}}


def mean_or_none(values) -> float | None:
    xs = [v for v in values if v is not None]
    return math.fsum(xs) / len(xs) if xs else None


# --- calibration and the noise estimate in state ----------------------------

def calibration(scores: list) -> dict:
    """Record fields of the baseline's calibration runs."""
    log_scale = use_log_scale(scores)
    return {"log_scale": log_scale, "noise": noise_estimate(scores, log_scale).to_json()}


def calibration_lines(cfg, rec: dict, state: RunState) -> list:
    """What `baseline` prints about the noise, plainly."""
    noise = noise_of(state.noise)
    if noise is None:
        return []
    cv = f"cv {noise.cv * 100:.2g}%" if noise.cv is not None else f"spread {noise.spread:.4g}"
    out = f" ({noise.outliers} outlier set aside)" if noise.outliers else ""
    d = state.detectable_effect
    lines = [f"noise: {cv} over {noise.samples} runs{out}"]
    if noise.deterministic:
        lines.append("the metric is deterministic here: each change is decided after "
                     f"{cfg.min_pairs} pairs by plain comparison")
        return lines
    if d is None:
        return lines
    shown = abs(change.metric_change(d, cfg.direction, noise.log_scale) or d) * 100  # the metric's own change
    lines.append(f"smallest improvement detectable within {cfg.max_trials} pairs: {shown:.2g}% "
                 f"(target {cfg.target:g}%)")
    if d * 100 > cfg.target:
        lines.append(f"too noisy for the target: changes under ~{shown:.2g}% will mostly be reverted. "
                     f"What helps: a higher --max-trials, a quieter benchmark (idle machine, pinned CPU, "
                     f"fixed seeds or --seed-env), longer runs (more repetitions per run), or a larger --target")
    return lines
