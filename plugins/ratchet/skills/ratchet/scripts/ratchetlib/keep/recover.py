"""Finish whatever a killed command left half-done (the contract in
keep/finish.py names each step): a decided iteration is finalized, a record
without its state is rolled forward, a torn swap or verify is put back, a
killed agent's iteration is recorded `interrupted`, and processes the killed
command left running are ended or recorded in UNCLEAN.

The modules that act (finish, paired, the executors, git) are imported only
on the path that needs them: `status` recovers on every call and nearly
always finds nothing to do, so it must not load the engine (issue 18)."""


import os

from ..core import state
from ..core.errors import RatchetError, UsageError
from ..io import seal, store_best, workspace
from ..io.store import now_iso
from ..io.store_lock import Lock


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
        _roll_forward(run, last[-1], notes)
        cur = None
    if cur:
        notes += _finish_current(run, cur, last)
    if notes:
        _remember(run, notes)
    return notes


def _roll_forward(run: workspace.Run, rec: dict, notes: list) -> None:
    """A record without its state: roll the state forward to it."""
    from ..io import gitops
    from . import finish
    if not run.store.record_trusted(rec):
        raise seal.SealError(f".ratchet/results.jsonl's last record (iteration {rec['iter']}) was not written by "
                             f"ratchet (it does not match its seal); nothing was run. Remove that line, or start "
                             f"a new run with `init`")
    if rec.get("kept") and rec.get("sha") and gitops.head_sha(run.repo) != rec["sha"]:
        notes.append(f"record of iteration {rec['iter']} found but HEAD is not its commit; state left as is")
    else:
        finish.commit_state(run, rec)
        notes.append(f"iteration {rec['iter']} was recorded but the state was not updated; state rolled forward")


def _finish_current(run: workspace.Run, cur: dict, last: list) -> list:
    """What a killed command left in current.json, finished by its phase."""
    from ..core import decision
    from ..io import procs
    from . import finish, paired, recheck
    notes = []
    if cur.get("phase") == "decided":
        if last and last[-1]["iter"] == cur["iter"]:
            run.store.clear_current()
        else:
            rec = finish.enact(run, cur["decision"], cur.get("candidate") or {})
            notes.append(f"finished iteration {rec['iter']} ({rec['decision']}) that a killed command had decided")
    elif cur.get("phase") == "measuring" and cur.get("swap"):
        notes += paired.recover(run, cur)
    elif cur.get("phase") == "verifying":
        notes += recheck.recover_verify(run, cur)
    elif cur.get("phase") == "agent":
        procs.kill_marked(cur.get("markers") or [])
        if cur.get("iter") == run.state.iteration + 1 and not run.state.stop:
            rec = finish.abandon(run, decision.INTERRUPTED, "interrupted: the loop was killed while the agent worked", cur)
            notes.append(f"iteration {rec['iter']} was cut short by a killed `loop`; recorded as interrupted"
                         + (f", its change saved in .ratchet/{rec['patch']} and undone" if rec.get("patch") else ""))
        else:
            run.store.clear_current()
    elif cur.get("phase") == "init":
        notes += _finish_init(run, cur)
    return notes


def _leftover_processes(run: workspace.Run) -> list:
    """A killed command's trial, guard or agent processes run on without it:
    kill them (its keepers, markers and trial records, io/leftovers.py); what
    survives, or may be its but is not provably so, goes into UNCLEAN.

    Every record whose command is dead is swept, not only those of the
    command whose lock was taken over: a command killed while it swept an
    earlier one's leaves that one's records behind a lock that now names the
    second, and its keepers stopped (a stopped keeper never ends its tree)."""
    holder, run.store.taken_over = run.store.taken_over, None
    held = holder.get("pid") if holder and isinstance(holder.get("pid"), int) else None
    folder = run.store.path("procs")
    if held is None and not os.path.isdir(folder):
        return []  # the common case, without importing the sweep (status: issue 18)
    from ..io import leftovers, unclean
    owners = {(held, holder.get("pid_start")): None} if held is not None else {}
    owners.update(dict.fromkeys(leftovers.dead_owners(folder)))
    notes, left, suspects, source = [], [], [], None
    agents = run.store.path("agents")
    began = [t for t in (leftovers.began(folder, pid, start, agents) for pid, start in owners) if t is not None]
    for pid, start in owners:
        what = f"the killed `{(holder.get('verb') if pid == held else None) or 'ratchet'}` (pid {pid})"
        killed, its_left, its_suspects = leftovers.sweep(pid, start, folder)
        gone = [p for p in killed if p["pid"] not in {q["pid"] for q in its_left}]
        notes += [f"killed {len(gone)} process(es) {what} left running"] if gone else []
        if its_left:
            notes.append(f"{len(its_left)} process(es) {what} left running survived a kill (pid "
                         f"{', '.join(str(p['pid']) for p in its_left[:5])}); trials are blocked until `ratchet.py clean`")
        left, suspects = left + its_left, suspects + its_suspects
        source = source or (what if its_left or its_suspects else None)
    if left or suspects:
        unclean.write(run.store, f"left by {source}", left, suspects)
    if suspects:
        notes.append(unclean.suspects_line(suspects))
    return notes + (_planted_hooks(run, min(began)) if began else [])


def _planted_hooks(run: workspace.Run, t0: float) -> list:
    """Python startup hooks written since the killed command's first recorded
    process began. Ratchet checks each run for hooks as it ends (io/carry);
    a run it was killed during may plant one later (at its exit, under its
    keeper), to run inside every later run. Moved aside, never deleted (one
    the user installed meanwhile is there to put back)."""
    from ..io import startup, store_files
    moved = []
    for path in startup.written_since(t0):
        try:
            moved.append((path, store_files.quarantine(run.store.root, path)))
        except OSError:
            continue
    if not moved:
        return []
    shown = "; ".join(f"{p} -> .ratchet/quarantine/{os.path.basename(q)}" for p, q in moved[:3])
    return [f"moved {len(moved)} Python startup hook(s) written after a killed command's trial began, which it may "
            f"have planted to run inside later runs: {shown}{' and more' if len(moved) > 3 else ''}; "
            f"put back any that is yours"]


def _leftover_jobs(run: workspace.Run, holder: dict) -> list:
    """The remote jobs (slurm, ray) a killed command left queued or running:
    cancel them all (they carry the run id, io/executor.py); UNCLEAN for any left."""
    from ..io import executor, unclean
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
    from ..io import githistory, gitops
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
