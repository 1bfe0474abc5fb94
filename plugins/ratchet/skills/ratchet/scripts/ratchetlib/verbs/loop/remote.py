"""`loop --parallel N` with `--executor slurm|ray`: the round's proposals measured at once.

Locally the proposals are measured one after the other in the main tree, so
timing benchmarks never share the machine. On a cluster every trial is a
job on a node, so the N proposals are measured at the same time, each in a
measurement tree of its own: its slot worktree, reset to the incumbent with
everything the agent left in it removed (`git clean -ffdx`), the pinned
harness put back (harness.restore: a protected file git does not track is
copied in from its pin), then the proposal's patch applied. Only what git
tracks (and the pinned harness) is in that tree: a benchmark that reads
untracked data must find it by an absolute path (on a cluster: the shared
file system).

One thread per proposal runs exactly the local path's checks, trials and
judgement (parallel._measure_proposal on a Run whose repo is that tree),
inside an executor lane: its jobs stay on one node, away from the nodes the
other proposals hold where the scheduler allows (executor.py). Proposal K's
trials are numbered from (K-1) x --trials + 1, so no two share a report.

Crash safety is the local path's: current.json stays in phase `agent` until
the round's record is decided (a SIGKILL anywhere is recovered as an
interrupted iteration, and the next command cancels the run's jobs,
executor.cancel_run). Ctrl-C or SIGTERM reach the main thread, which only
waits here: it halts the lanes (no new submission), cancels every job of
the run, waits for the threads, cancels again, then re-raises. An error in
one thread does the same and is raised once all have ended.

The main tree: no trial runs there this round, but candidate code on a
node may share its file system, so it is watched across the round like a
trial (carry.watch/written, the harness window, sealed files, git's
configuration). A change there cannot be told to one proposal: every
measured proposal of the round is `tampered` and the change undone.
"""

import threading

from ...core import decision
from ...io import carry, critical, executor, gitguard, gitops, harness
from ...keep import integrity

JOIN_WAIT = 120.0  # seconds the threads get to end after their jobs were cancelled


def measurement_tree(path: str, store_root: str) -> str:
    """The slot worktree at `path` (already reset to the incumbent) with
    nothing of the agent's left in it and the pinned harness in place."""
    gitops.git(path, "clean", "-ffdxq")
    harness.restore(path, store_root)
    return path


def at_once(cfg, fns: list) -> list:
    """Call every fn in its own thread and executor lane; their results, in
    order. A signal or a thread's error halts and cancels (module docstring)."""
    out, errors = [None] * len(fns), []

    def one(i: int) -> None:
        try:
            with executor.lane(("slot", i)):
                out[i] = fns[i]()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)
    executor.halt(False)
    threads = [threading.Thread(target=one, args=(i,), name=f"ratchet-slot-{i + 1}", daemon=True)
               for i in range(len(fns))]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads) and not errors:
            for t in threads:
                t.join(0.2)
    except BaseException:
        critical.blocked(lambda: _stop(cfg, threads))
        raise
    if errors:
        critical.blocked(lambda: _stop(cfg, threads))
        raise errors[0]
    return out


def _stop(cfg, threads: list) -> None:
    """No lane submits again; every job of the run cancelled; the threads
    given time to end; cancelled again (a job submitted meanwhile)."""
    executor.halt()
    executor.cancel_run(cfg)
    for t in threads:
        t.join(JOIN_WAIT / max(len(threads), 1))
    executor.cancel_run(cfg)


def watch_main_tree(run) -> tuple:
    """The main tree as it is before the round's trials."""
    return carry.watch(run), harness.window(run.repo, run.store.root)


def checked(run, watched: tuple, subs: list) -> list:
    """The round's summaries, every measured one `tampered` when the main
    tree moved while the proposals ran (put back first)."""
    before, win = watched
    moved, hooks = carry.written(run, before, ())
    after = integrity.after_batch(run, "while the round's proposals ran on the cluster", win)
    if not (moved or hooks or after):
        return subs
    lost = carry.undo(run, before, moved, hooks) if moved or hooks else []
    gitguard.restore(run.repo, run.store.root)
    harness.restore(run.repo, run.store.root)
    why = after[0].reason if after else carry.reason(moved, hooks, lost, "a trial of this round")
    extra = after[1] if after else {"outside_writes": moved, "startup_hooks": hooks}
    return [{**s, **extra, "decision": decision.TAMPERED, "avg": None, "delta": None,
             "reason": f"{why} (the main tree changed while the proposals ran at once: none can be kept)"}
            if s["trials"] else s for s in subs]
