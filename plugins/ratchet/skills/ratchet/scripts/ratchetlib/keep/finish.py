"""The one decision tail (`settle`), used by iterate, decide, run-trial,
loop, --parallel, abandoned iterations and the baseline: the record, then
`enact` (steps 1-4 of the crash order below), then the re-measure of HEAD that a
--threshold stop needs (`confirm_threshold`), the paired verify when due, and
the holdout once the run has stopped.

Crash safety rests on one ordering, used by every decision:
  1. current.json records the decision (phase `decided`) and the candidate's
     paths, before git is touched;
  2. git acts (commit with a `Ratchet-Iteration` trailer, or save the patch
     and restore the incumbent; a `tampered` decision first restores the
     pinned harness, see harness.py);
  3. the record is appended to results.jsonl;
  4. state.json is replaced (the pure `core/state.apply_record`, which
     recovery replays), current.json removed.
A command that starts after a kill at any point runs `recover()`, which
finishes step 2-4 from the buffer (idempotently) or rolls state forward from
a record already written, kills the processes the killed command left
running, and reports what it did. The fault-injection suite
(tests/test_kill_points.py) SIGKILLs commands at each of `faults.POINTS`.
"""

from __future__ import annotations

import os
import time

from ..core.record import replace as copy_with
from ..core import decision, faults, headline, paths, sha256, state, term
from ..core.errors import RatchetError, UsageError
from ..io import artifacts, clip, fresh, gitguard, githistory, gitops, gitpatch, harness, swapfiles, workspace
from ..io.store import atomic_write, now_iso
from ..learn import learning
from . import candidate, integrity, paired, recheck


def record(iteration: int, v: decision.Verdict, trials: list, incumbent, cur: dict, cand: candidate.Candidate,
            extra: dict | None = None) -> dict:
    rec = {"iter": iteration, "hypothesis": cur.get("hypothesis", ""), "description": cur.get("description", ""),
            "trial_scores": [t.get("score") for t in trials], "avg": v.avg, "decision": v.decision,
            "kept": v.decision == decision.KEEP, "sha": None, "incumbent": incumbent, "delta": v.delta,
            "timestamp": now_iso(), "reason": v.reason + (f" ({cand.note})" if cand.note else ""),
            "trials": trials, "changed": cand.paths, "patch": None, "critic": cur.get("critic"),
            "seconds": round(time.time() - cur.get("t0", time.time()), 3), "agent": cur.get("agent")}
    rec.update(extra or {})
    made = cur.get("ignored_new")
    if made:
        rec["ignored_new"] = list(made)
        if rec["kept"]:
            shown = ", ".join(made[:5]) + (f" and {len(made) - 5} more" if len(made) > 5 else "")
            rec["reason"] += (f"; not part of the commit: git-ignored {shown}, made since init (a clean checkout "
                              f"of the branch will not have it: `git add -f` what the change needs)")
    return rec


def _apply_git(run: workspace.Run, rec: dict, cand: dict) -> dict:
    """Commit (keep) or save the patch and restore the incumbent (others).

    Idempotent, so recovery can call it again after a kill part-way.
    """
    repo, it = run.repo, rec["iter"]
    tracked, new = cand.get("tracked", []), cand.get("new", [])
    measured, run.incumbent_side = run.incumbent_side, None  # this iteration's alone
    if rec["decision"] == decision.KEEP:
        head = gitops.head_sha(repo)
        if head != run.state.incumbent_sha and githistory.commit_trailer(repo, head) == it:
            return {**rec, "sha": head}
        title = (rec.get("description") or rec.get("hypothesis") or "change").splitlines()[0][:72]
        msg = term.printable(f"ratchet: iter {it}: {title}\n\n{rec['reason']}\n\n{githistory.TRAILER}: {it}\n")
        rec = {**rec, "sha": githistory.commit_paths(repo, tracked + new, msg, new)}
        faults.point("committed")
        return rec
    if rec["decision"] == decision.TAMPERED:  # git's own files first: the revert below checks files out
        gitguard.restore(repo, run.store.root)
        harness.restore(repo, run.store.root)
    if tracked or new:
        patch_file = run.store.patch_path(it)
        # The patch never carries harness changes: re-applying it must not tamper again.
        mine = [p for p in tracked + new if paths.classify(p, run.config.editable, run.config.protect) != paths.PROTECTED
                and p not in gitguard.attributes_in([p])]
        if mine and not os.path.exists(patch_file):
            patch = _measured_patch(run, cand, mine) or _diff(repo, [p for p in tracked if p in mine],
                                                               [p for p in new if p in mine], cand)
            atomic_write(patch_file, patch)
        if not _back_from_memory(run, rec, cand, measured):
            swapfiles.clear_temps(repo, tracked + new)  # a write of _back_from_memory's a kill cut short
            gitpatch.back_to_head(repo, tracked, new, bool(cand.get("index_is_head")))  # nothing staged: a checkout alone
        fresh.switched(repo, tracked + new)
        faults.point("reverted")
        if mine:
            rec = {**rec, "patch": os.path.relpath(patch_file, run.store.root)}
    return rec


def _back_from_memory(run: workspace.Run, rec: dict, cand: dict, measured: dict | None) -> bool:
    """Put the incumbent back by writing the side keep/paired's swap captured
    of the same paths (issue 18: no `git checkout`, the same bytes and modes
    it wrote): only when the tree holds exactly the candidate measured
    (`patch_sha256`), nothing is staged, HEAD is still the incumbent it was
    captured from, and the decision restored nothing of git's or the
    harness's first (`tampered`). False: git does it (idempotent, as after
    a kill part-way through these writes)."""
    side = (measured or {}).get("side")
    if (not side or rec["decision"] == decision.TAMPERED or not cand.get("patch_sha256")
            or not cand.get("index_is_head") or measured.get("head") != run.state.incumbent_sha
            or sorted(side) != sorted(cand.get("tracked", []) + cand.get("new", []))):
        return False
    try:
        swapfiles.write_side(run.repo, side)
    except OSError:
        return False
    return True


def _diff(repo: str, tracked: list, new: list, cand: dict) -> bytes:
    """The revert's patch from git: a tracked path the index no longer has
    but the tree does is a new file again (a staged new file, once paired
    trials' first switch reset the index), which `git diff HEAD` would leave
    out of the patch without `add -N`. Nothing staged (`index_is_head`): no
    such path, and no `ls-files` to find one."""
    staged = tracked and not cand.get("index_is_head")
    listed = set(gitops.git(repo, "ls-files", "-z", "--", *tracked).split("\0")) if staged else set(tracked)
    again = [p for p in tracked if p not in listed and os.path.lexists(os.path.join(repo, p))]
    patch = gitpatch.diff_patch(repo, [p for p in tracked if p not in again], new + again)
    return patch.encode("utf-8", "surrogateescape")


def _measured_patch(run: workspace.Run, cand: dict, mine: list) -> bytes | None:
    """The patch the pairs were measured from (keep/paired's swap patch), when
    the tree still holds exactly that candidate (`patch_sha256`, set only
    then) and every one of its paths goes into the revert's patch: the
    same bytes a `git diff` would give, without its git processes (issue 18;
    three with new files)."""
    want = cand.get("patch_sha256")
    if not want or sorted(mine) != sorted(cand.get("tracked", []) + cand.get("new", [])):
        return None
    try:
        with open(run.store.path(*paired.SWAP_PATCH), "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data if sha256.hexdigest(data) == want else None


def enact(run: workspace.Run, rec: dict, cand: dict) -> dict:
    """Steps 1-4 of the module docstring for one decided iteration."""
    run.store.write_current({"iter": rec["iter"], "phase": "decided", "decision": rec, "candidate": cand})
    faults.point("decided")
    rec = _apply_git(run, rec, cand)
    rec = artifacts.apply(run.store.root, run.repo, run.config, rec)
    run.store.append_record(rec)
    faults.point("recorded")
    commit_state(run, rec)
    return rec


def commit_state(run: workspace.Run, rec: dict) -> None:
    """Step 4: the state after `rec`, the derived learning files first."""
    # what the trials wrote joins; what the agent made stays out until a keep has named it
    pending = set() if rec.get("kept") else set(rec.get("ignored_new") or ())
    changes, ignored = gitops.status_and_ignored(run.repo)  # one git process for both
    st = state.after_decision(state.apply_record(run.state, rec, run.config), gitops.untracked_in(changes),
                              [p for p in ignored if p not in pending])
    run.learned = learning.persist(run, rec, st)
    run.save(st)
    faults.point("state-renamed")
    run.store.clear_current()
    old = rec["iter"] - clip.AGE_AFTER  # a night of chatty trials stays within a bounded size (io/clip)
    if old > 0 and old not in (st.incumbent_iter, st.best_iter):
        clip.age(run.store, old)


def holdout_at_stop(run: workspace.Run) -> None:
    """Once the run has stopped, evaluate the holdout (once per final commit)."""
    cfg, st = run.config, run.state
    if not (st.stop and cfg.holdout_command and st.iteration >= 0):
        return
    from ..measure import holdout  # only a run with a holdout, once stopped, loads it
    done = holdout.load(run.store.root)
    if done and (done.get("best") or {}).get("sha") == st.incumbent_sha:
        return
    try:
        run.holdout = holdout.run(cfg, run.repo, run.store.root, st)
    except (RatchetError, OSError) as e:  # the run's record stands; say why there is no holdout
        run.holdout = {"held": None, "summary": f"the holdout could not run: {e}"}


def verify_when_due(run: workspace.Run) -> None:
    """Paired runs: re-measure start vs best when recheck.due says so."""
    if recheck.due(run):
        _verify(run)


def confirm_threshold(run: workspace.Run) -> None:
    """The best's own mean crosses --threshold: re-measure HEAD against the
    start first; the run stops only if that value crosses it too
    (core/decision.stop_reason). A kill before the state write leaves the run
    going: the next decision's tail re-measures again."""
    if not run.state.stop and headline.threshold_to_confirm(run.state, run.config):
        _verify(run)


def _verify(run: workspace.Run) -> None:
    """One tail verify: verify.json, then state.json with `verified` and any
    stop it confirms (a --threshold reached by the re-measured value)."""
    try:
        verified = recheck.remeasure(run)
    except (RatchetError, UsageError, OSError) as e:  # the decision stands; say why there is no verified gain
        run.verify_error = str(e)
        return
    if verified:
        faults.point("verified")
        run.save(state.with_verified(run.state, verified, run.config))


def settle(run: workspace.Run, cur: dict, v: decision.Verdict, trials: list, extra: dict | None = None,
           cand: candidate.Candidate | None = None) -> dict:
    """Finish iteration `cur["iter"]` on verdict `v`, whoever reached it: a
    keep commits the candidate in the tree, anything else saves it as the
    patch and undoes it; `extra` fields join the record (a baseline passes
    `kept` and `sha`). The caller holds the lock."""
    cand = cand or candidate.candidate(run)
    rec = record(cur["iter"], v, trials, run.state.incumbent_score, cur, cand, extra)
    rec.update(arm=cur.get("arm"), similar=cur.get("similar"))
    made = {k: v for k, v in (cur.get("candidate") or {}).items() if k == "patch_sha256"}  # keep/paired
    rec = enact(run, rec, {**cand.to_dict(), **made})
    confirm_threshold(run)
    verify_when_due(run)
    holdout_at_stop(run)  # after the verify: its summary compares with the re-measured gain
    return rec


def abandon(run: workspace.Run, kind: str, reason: str, cur: dict) -> dict:
    """Record iteration `cur["iter"]` as `kind` (agent-error, interrupted)
    without judging it: the trials run so far are kept, the candidate in the
    tree is saved as the patch and undone. A harness the agent changed makes
    it `tampered` instead (the harness is restored). The caller holds the lock."""
    cand = candidate.candidate(run)
    if "ignored_new" not in cur:
        cur["ignored_new"] = candidate.ignored_new(run, cand)
    v, extra = integrity.before_trials(run, cand)
    if v is None or v.decision != decision.TAMPERED:
        v, extra = decision.Verdict(kind, None, None, reason), {}
    else:
        v = copy_with(v, reason=f"{v.reason} ({reason.split(':', 1)[0]} as well)")
    return settle(run, cur, v, cur.get("trials") or [], extra, cand)
