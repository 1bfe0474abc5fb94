"""Finish whatever a killed command left half-done (the contract in
keep/finish.py names each step): a decided iteration is finalized, a record
without its state is rolled forward, a torn swap or verify is put back, a
killed agent's iteration is recorded `interrupted`, and processes the killed
command left running are ended or recorded in UNCLEAN."""


from ..core import decision, state
from ..core.errors import RatchetError, UsageError
from ..io import executor, githistory, gitops, leftovers, procs, seal, store_best, unclean, workspace
from ..io.store import now_iso
from ..io.store_lock import Lock
from . import finish, paired, recheck


def recover(run: workspace.Run) -> list:
    """Finish whatever a killed command left half-done; return notes (also
    kept in state.recovered, which `status` shows)."""
    killed = run.store.taken_over
    notes = _leftover_processes(run) + (_leftover_jobs(run, killed) if killed else [])
    fixed = run.store.repair()
    if fixed:
        notes.append(fixed)
    notes += store_best.recover(run.store.root)
    last = run.store.records(last=1)
    try:
        cur = run.store.read_current()
    except seal.SealError:  # forged, not torn: nothing may act on it
        raise
    except UsageError:  # the buffer of an unfinished iteration is unreadable: measure it again
        notes.append(f"current.json was unreadable; set aside as {run.store.set_aside('current.json')}, "
                     f"and the unfinished iteration is measured again")
        cur = None
    if last and last[-1]["iter"] > run.state.iteration:
        rec = last[-1]
        if not run.store.record_trusted(rec):
            raise seal.SealError(f".ratchet/results.jsonl's last record (iteration {rec['iter']}) was not written by "
                                 f"ratchet (it does not match its seal); nothing was run. Remove that line, or start "
                                 f"a new run with `init`")
        if rec.get("kept") and rec.get("sha") and gitops.head_sha(run.repo) != rec["sha"]:
            notes.append(f"record of iteration {rec['iter']} found but HEAD is not its commit; state left as is")
        else:
            finish.commit_state(run, rec)
            notes.append(f"iteration {rec['iter']} was recorded but the state was not updated; state rolled forward")
        cur = None
    if cur and cur.get("phase") == "decided":
        if last and last[-1]["iter"] == cur["iter"]:
            run.store.clear_current()
        else:
            rec = finish.enact(run, cur["decision"], cur.get("candidate") or {})
            notes.append(f"finished iteration {rec['iter']} ({rec['decision']}) that a killed command had decided")
    elif cur and cur.get("phase") == "measuring" and cur.get("swap"):
        notes += paired.recover(run, cur)
    elif cur and cur.get("phase") == "verifying":
        notes += recheck.recover_verify(run, cur)
    elif cur and cur.get("phase") == "agent":
        procs.kill_marked(cur.get("markers") or [])
        if cur.get("iter") == run.state.iteration + 1 and not run.state.stop:
            rec = finish.abandon(run, decision.INTERRUPTED, "interrupted: the loop was killed while the agent worked", cur)
            notes.append(f"iteration {rec['iter']} was cut short by a killed `loop`; recorded as interrupted"
                         + (f", its change saved in .ratchet/{rec['patch']} and undone" if rec.get("patch") else ""))
        else:
            run.store.clear_current()
    elif cur and cur.get("phase") == "init":
        notes += _finish_init(run, cur)
    if notes:
        _remember(run, notes)
    return notes


def _leftover_processes(run: workspace.Run) -> list:
    """A killed command's trial, guard or agent processes run on without it:
    kill them (its keepers, markers and trial records, io/leftovers.py); what
    survives, or may be its but is not provably so, goes into UNCLEAN."""
    holder, run.store.taken_over = run.store.taken_over, None
    if not holder or not isinstance(holder.get("pid"), int):
        return []
    killed, left, suspects = leftovers.sweep(holder["pid"], holder.get("pid_start"), run.store.path("procs"))
    what = f"the killed `{holder.get('verb') or 'ratchet'}` (pid {holder['pid']})"
    gone = [p for p in killed if p["pid"] not in {q["pid"] for q in left}]
    notes = [f"killed {len(gone)} process(es) {what} left running"] if gone else []
    if left or suspects:
        unclean.write(run.store, f"left by {what}", left, suspects)
    if left:
        notes.append(f"{len(left)} process(es) {what} left running survived a kill (pid "
                     f"{', '.join(str(p['pid']) for p in left[:5])}); trials are blocked until `ratchet.py clean`")
    if suspects:
        notes.append(unclean.suspects_line(suspects))
    return notes


def _leftover_jobs(run: workspace.Run, holder: dict) -> list:
    """The remote jobs (slurm, ray) a killed command left queued or running:
    cancel them all (they carry the run id, io/executor.py); UNCLEAN for any left."""
    what = f"the killed `{holder.get('verb') or 'ratchet'}` (pid {holder.get('pid')})"
    missing = executor.missing_commands(run.config.executor) if run.config.executor != "local" else []
    if missing:
        return [f"jobs {what} may have left could not be checked ({', '.join(missing)} not on PATH): cancel "
                f"jobs named {executor.prefix(run.config.run_id)}* by hand"]
    cancelled, left = executor.cancel_run(run.config)
    if left:
        unclean.write(run.store, f"jobs left by {what}", left)
        return [f"{len(left)} job(s) {what} left could not be cancelled ({left[0]['cmd']}); trials are blocked "
                f"until `ratchet.py clean`"]
    return [f"cancelled {len(cancelled)} job(s) {what} left: {', '.join(c['cmd'] for c in cancelled[:3])}"] \
        if cancelled else []


def _finish_init(run: workspace.Run, cur: dict) -> list:
    """An `init` killed between creating the experiment branch and checking it out."""
    branch = cur.get("branch")
    here = gitops.current_branch(run.repo)
    switch = bool(branch and here != branch and here == cur.get("original_branch")
                  and gitops.branch_exists(run.repo, branch) and not gitops.tracked_changes(run.repo))
    if switch:
        githistory.checkout(run.repo, branch)
    run.store.clear_current()
    return [f"a killed `init` had not checked out the run's branch; switched to {branch}"] if switch else []


def _remember(run: workspace.Run, notes: list) -> None:
    """The last recovery into state.json, so `status` can tell it later."""
    run.save(state.recovered(run.state, notes, now_iso()))


def recover_for_status(run: workspace.Run) -> tuple:
    """`status` recovers too when no live command holds the lock, so the first
    look after a crash says what was fixed: (notes, the live holder or None)."""
    try:
        with Lock(run.store, "status"):
            return recover(run), None
    except seal.SealError:
        raise
    except UsageError:  # a live command holds the lock (or .ratchet/ is read-only): only look
        return [], Lock(run.store, "status").holder()
    except (RatchetError, OSError) as e:
        return [f"could not finish the recovery ({e}); the next command retries"], None
