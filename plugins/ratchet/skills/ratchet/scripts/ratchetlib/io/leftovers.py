"""What a SIGKILLed ratchet command left running: end what is provably its, list the rest.

The next command calls `sweep` for the command whose lock it took over
(pid, kernel start time) and for every other whose trial records outlived
it (`dead_owners`: one killed while it swept an earlier one). What is provably the dead command's, and killed
(frozen first, keeper.freeze_kill, so nothing re-forks out of reach):
  - its keepers (each named, pid and start time, by its trial's record in
    `.ratchet/procs/`, FORMATS.md) and everything below them: each keeper is
    the subreaper of its trial, so
    however a process escaped (setsid, double fork, cleared environment) it
    is still a keeper's descendant while the keeper lives;
  - every process whose environment carries a marker of the dead command;
  - from the trial records (`.ratchet/procs/`, FORMATS.md), for a trial
    whose keeper was killed too: members of the trial's session or process
    group while its leader still lives (same pid and start time; once the
    leader is gone the number can name a later, unrelated session: pids
    wrap), and processes started after the leader that hold one of the
    trial's output files open for writing (a scan that outpaces a
    re-forker, `_provably`).
What is left (a process that lost its keeper and its session leader, cleared
its environment and closed the trial's outputs) nothing identifies for sure. So a *suspect* (same user, started after the trial,
no terminal, an orphan adopted by init or by an ancestor of the dead command)
is never killed: `sweep` returns it, and recovery records it in
.ratchet/UNCLEAN and says so in one line. Linux only (/proc); [] elsewhere.
"""

import json
import os
import signal

from ..core import faults
from . import keeper, procs, runner, store_files


def sweep(pid: int, start, record_dir=None) -> tuple:
    """End what the dead command (pid, start) left: (killed, left, suspects),
    lists of {pid, start[, cmd]}; `left` are provably its but survived SIGKILL."""
    prefix = runner.marker_prefix(pid, start)
    records = _records(record_dir, prefix)
    keepers = keepers_of(records)
    for k in keepers:
        procs.signal_pid(k, signal.SIGSTOP)  # a keeper past its grace would sweep concurrently
    faults.point("sweeping")  # a kill here leaves them stopped: the next command's dead_owners finds them

    def find():  # lazily: each is stopped as it comes, the keepers' trees first (the fast walk)
        for k in keepers:
            yield from keeper.walk(k)
        yield from (p for p in procs.find_marked(prefix, prefix=True) if p not in keepers)
        for rec, _ in records:
            yield from (p for p in _provably(rec) if p not in keepers)

    found = keeper.freeze_kill(find, send=lambda p, s: procs.signal_pid(p, s))
    for k, s in keepers.items():
        if keeper.start_of(k) == s:
            procs.signal_pid(k, signal.SIGKILL)
    everyone = {**found, **keepers}
    procs.wait_gone(list(everyone))
    killed = [{"pid": p, "start": s} for p, s in sorted(found.items())]
    left = [i for i in map(procs.process_info, sorted(everyone)) if i and i["start"] == everyone[i["pid"]]]
    suspects = {}
    for rec, path in records:
        k = rec_keeper(rec)
        if keepers.get(k[0]) != k[1]:  # its keeper was gone: look for what nothing identifies
            suspects.update((i["pid"], i) for i in _suspects(rec, set(everyone)))
        store_files.remove_record(path)
    return killed, left, [suspects[p] for p in sorted(suspects)]


def dead_owners(folder: str) -> list:
    """(pid, start) of every command with a trial record in `folder` that no
    longer runs (the record's name begins with its marker prefix, pid.start.)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    found = {}
    for name in names:
        pid, start = (name.split(".") + [""])[:2]
        if pid.isdigit() and start.isdigit() and name.endswith(".json"):
            found[(int(pid), int(start))] = None
    return [(p, s) for p, s in found if keeper.start_of(p) != s]  # start 0 (unknown) never matches a live one


def began(folder: str, pid: int, start, skip_under: str) -> float | None:
    """When the earliest process recorded for the dead command (pid, start)
    in `folder` started, in seconds since the epoch (its leader's kernel start
    time: clock ticks after boot), leaving out those whose outputs lie under
    `skip_under` (an agent's: what it installs is its change, not a trial's
    planting); None without such a record or off Linux."""
    under = os.path.join(os.path.abspath(skip_under), "")
    ticks = [rec["leader"].get("start") for rec, _ in _records(folder, runner.marker_prefix(pid, start))
             if not all(str(o).startswith(under) for o in rec.get("outputs") or ["?"])]
    ticks = [t for t in ticks if isinstance(t, int)]
    try:
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        return boot + min(ticks) / os.sysconf("SC_CLK_TCK") if ticks else None
    except (OSError, StopIteration, ValueError):
        return None


def rec_keeper(rec: dict) -> tuple:
    k = rec.get("keeper") or {}
    return k.get("pid"), k.get("start")


def _records(folder, prefix: str) -> list:
    """[(record, path)] of the dead command's trial records (unreadable ones are skipped)."""
    out = []
    try:
        names = sorted(os.listdir(folder)) if folder else []
    except OSError:
        return out
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".json")):
            continue
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                rec = json.loads(f.read())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and rec.get("format") == runner.RECORD_FORMAT and isinstance(rec.get("leader"), dict):
            out.append((rec, path))
    return out


def keepers_of(records: list) -> dict:
    """{pid: start} of the records' keepers still alive (same start time: a
    reused pid is not one)."""
    named = {}
    for rec, _ in records:
        pid, start = rec_keeper(rec)
        if isinstance(pid, int) and isinstance(start, int):
            named[pid] = start
    return {pid: named[pid] for pid in keeper.living(named)}


QUIET_PASSES = 5  # record scans in a row that find nothing new before the record stage ends


def _provably(rec: dict):
    """Yield the trial's processes its record identifies for sure (see the
    module doc), each as soon as it is recognised, so freeze_kill stops it
    (and its process group) before it can move on.

    Why the scan is shaped so. A re-forker whose keeper is gone takes a new
    pid every millisecond or two, and its fds are readable only while that
    generation lives: a snapshot of every process followed by the fd checks
    finds it already gone, every time. So each pass reads /proc newest pid
    first (the re-forker's current pid is among the newest) and checks each
    process the moment its stat is read; and passes repeat until
    QUIET_PASSES in a row find nothing new, so one unlucky pass does not end
    the search. Once one generation is stopped, its group is stopped with it
    (fork keeps the group) and the re-forking is over."""
    leader, first = rec["leader"].get("pid"), rec["leader"].get("start")
    if not isinstance(leader, int) or not isinstance(first, int):
        return
    outputs = set(rec.get("outputs") or [])
    seen, quiet = set(), 0
    while quiet < QUIET_PASSES:
        new = False
        leader_lives = keeper.start_of(leader) == first  # its session is then the trial's; once gone, pids wrap
        for pid in _newest_first():
            if pid in seen:
                continue
            stat = keeper.stat_fields(pid)
            if not stat or len(stat) < 20 or stat[0] in (b"Z", b"X") or int(stat[19]) < first:
                continue
            if (leader_lives and leader in (int(stat[2]), int(stat[3]))) or (outputs and _writes_to(pid, outputs)):
                seen.add(pid)
                new = True
                yield pid
        quiet = 0 if new else quiet + 1


def _newest_first() -> list:
    try:
        return sorted((int(n) for n in os.listdir("/proc") if n.isdigit()), reverse=True)
    except OSError:
        return []


def _writes_to(pid: int, paths: set) -> bool:
    """Whether `pid` holds one of `paths` open for writing."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") not in paths:
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                flags = next((int(l.split()[1], 8) for l in f if l.startswith("flags:")), 0)
        except (OSError, ValueError):
            continue
        if flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR):
            return True
    return False


def _suspects(rec: dict, exclude: set) -> list:
    """Processes that may be the trial's but nothing proves it (never killed)."""
    first, uid = rec["leader"].get("start"), rec.get("uid")
    if not isinstance(first, int):
        return []
    table = keeper.table()
    adopters = {1, *[p for p in rec.get("ancestors") or [] if isinstance(p, int)]}
    me = set(procs.ancestors()) | set(keeper.descendants(os.getpid(), table))
    roots = []
    for pid, st in table.items():
        if (int(st[19]) >= first and st[0] not in (b"Z", b"X") and st[4] == b"0" and int(st[1]) in adopters
                and pid not in exclude and pid not in me and _uid(pid) == uid):
            roots.append(pid)
    tree = set(roots)
    for pid in roots:
        tree |= set(keeper.descendants(pid, table))
    return [i for i in map(procs.process_info, sorted(tree - me - exclude)) if i]


def _uid(pid: int):
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
