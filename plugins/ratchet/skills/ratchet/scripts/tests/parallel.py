"""The suite, one process per test class, several at once (stdlib only).

Why: most of the suite waits (trials, sleeps, real processes, the real
client), so running test classes side by side cuts the wall time on a
2-core machine without touching what any test asserts. Each class runs in
its own `python3 -m unittest` process, so module-level state, signals,
subreaper settings and the cwd of one class never reach another.

Contract:
  - units are test classes, found by unittest's own discovery (pattern
    test*.py), started longest first: by the durations this runner saved
    last time (`$TMPDIR/ratchet-test-times.json`; a run that skipped some
    of a class's tests, its tools absent, never lowers its time), else by
    the module's own EXPECTED_SECONDS (the end-to-end modules that wait on a
    real Ray or Slurm say it, so a first run starts them first), else by
    source size;
    a class that took longer than SPLIT_SECONDS last time and shares no
    fixture (no setUpClass / setUpModule in its class or module) runs as
    several units, its tests dealt round-robin, so one slow class does not
    finish alone at the end (its time is saved as the sum of its parts);
  - `python3 tests/parallel.py MODULE...` runs only those modules' classes
    (e.g. `tests.test_paired`), to time the runner on a subset;
  - the units' temporary files (every throwaway repository, `.ratchet/`
    folder, Ray and Slurm scratch) go to a folder of their own on a
    RAM-backed filesystem (/dev/shm) when the caller set no TMPDIR and it has
    SCRATCH_MIN_BYTES free; it is removed at the end. The code under test is
    the same; what changes is the cost of its fsyncs (each iterate makes ~20,
    ~4 ms each on this machine's disk under the suite's load) and of the
    journal's work on disk (measured here: a sixth less CPU, a fifth less wall);
  - RATCHET_TEST_JOBS sets how many run at once (default: 2 per core, at
    least 2; on 2 cores 6 at once was no faster within the machine's noise,
    153-178 s against 165-170 s, and 8 was slower, 175 s);
    RATCHET_TEST_UNIT_TIMEOUT ends a hung unit (default
    900 s) and counts it as an error;
  - each finished unit prints one line (its wall time and its CPU time:
    the unit and the processes it waited for); a unit that failed prints its
    whole output; the run ends with unittest's own closing lines
    (`Ran N tests in Xs`, then `OK` or `FAILED (...)`) summed over all
    units, and exits 1 when anything failed.
"""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
TIMES = os.path.join(tempfile.gettempdir(), "ratchet-test-times.json")
COUNTS = ("failures", "errors", "skipped", "expected failures", "unexpected successes")


SPLIT_SECONDS = 30.0
RAM_DIR = "/dev/shm"
SCRATCH_MIN_BYTES = 2 << 30


def units(modules=()) -> dict:
    """{`tests.module.Class`: (its test ids, whether it shares a fixture)},
    in discovery order; only `modules` when given. A module that cannot be
    imported is one unit under its own name: it fails loudly when run."""
    found = {}

    def walk(suite, named=None):
        for item in suite:
            if isinstance(item, unittest.TestSuite):
                walk(item, named)
            elif isinstance(item, unittest.loader._FailedTest):
                found.setdefault(named or item._testMethodName, ([], True))
            else:
                cls = type(item)
                ids, _ = found.setdefault(f"{cls.__module__}.{cls.__qualname__}", ([], _shared(cls)))
                ids.append(item.id())

    loader = unittest.defaultTestLoader
    if not modules:
        walk(loader.discover(HERE, pattern="test*.py", top_level_dir=TOP))
    if modules and TOP not in sys.path:
        sys.path.insert(0, TOP)
    for name in modules:
        walk(loader.loadTestsFromName(name), name)
    return found


def _shared(cls) -> bool:
    """Whether the class's tests share state built once (class or module fixtures)."""
    module = sys.modules.get(cls.__module__)
    own = any(getattr(cls, name).__func__ is not getattr(unittest.TestCase, name).__func__
              for name in ("setUpClass", "tearDownClass"))
    return own or any(hasattr(module, name) for name in ("setUpModule", "tearDownModule"))


def plan(found: dict, known: dict) -> list:
    """[(unit name, the ids it runs, its class)], longest first (see the module doc)."""
    out, weight = [], {}
    for cls, (ids, shared) in found.items():
        parts = 1 if shared else max(1, min(len(ids), math.ceil(known.get(cls, 0.0) / SPLIT_SECONDS)))
        for i in range(parts):
            name = cls if parts == 1 else f"{cls}[{i + 1}/{parts}]"
            out.append((name, [cls] if parts == 1 else ids[i::parts], cls))
            weight[name] = known.get(cls, _expected(cls)) / parts
    return sorted(out, key=lambda u: (-weight[u[0]], -_size(u[2])))


def _expected(unit: str) -> float:
    return float(getattr(sys.modules.get(unit.rsplit(".", 1)[0]), "EXPECTED_SECONDS", 0.0))


def _size(unit: str) -> int:
    path = os.path.join(TOP, *unit.split(".")[:2]) + ".py"
    return os.path.getsize(path) if os.path.exists(path) else 0


def known_times() -> dict:
    try:
        with open(TIMES) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def parse(output: str) -> dict:
    """unittest's closing lines -> {'ran': N, 'failures': N, ...}."""
    ran = re.findall(r"^Ran (\d+) tests? in ", output, re.M)
    status = re.findall(r"^(OK|FAILED)(?: \((.*)\))?\s*$", output, re.M)
    result = {"ran": int(ran[-1]) if ran else 0}
    for part in (status[-1][1] if status else "").split(","):
        if "=" in part:
            key, value = part.split("=")
            result[key.strip()] = int(value)
    if not ran or not status:
        result["errors"] = result.get("errors", 0) + 1  # crashed before unittest could report
    return result


def scratch_dir():
    """A new folder for the units' TMPDIR on a RAM-backed filesystem, or None
    (the caller's own TMPDIR, or no such filesystem with room: the default)."""
    if os.environ.get("TMPDIR") or not os.access(RAM_DIR, os.W_OK | os.X_OK):
        return None
    try:
        st = os.statvfs(RAM_DIR)
        if st.f_bavail * st.f_frsize < SCRATCH_MIN_BYTES:
            return None
        path = tempfile.mkdtemp(prefix="r", dir=RAM_DIR)  # short: Ray's socket paths under it stay < 108 bytes
        os.chmod(path, 0o1777)  # as /tmp: the tests' other users (munge, a plain user) reach and write it
        return path
    except OSError:
        return None


class Unit:
    def __init__(self, spec: tuple, timeout: float, env=None):
        (self.name, ids, self.cls), self.timeout = spec, timeout
        self.log = tempfile.TemporaryFile(mode="w+")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "unittest", *ids], cwd=TOP, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self.timed_out, self.cpu = False, 0.0

    def poll(self):
        if self.proc.returncode is None:
            self._reap(os.WNOHANG)
        if self.proc.returncode is None and time.monotonic() - self.t0 > self.timeout:
            self.timed_out = True
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self._reap(0)
        return self.proc.returncode

    def _reap(self, flags: int) -> None:
        """Popen.poll, through wait4 for the unit's CPU time (it and every
        process it waited for; daemons that left it are not counted)."""
        pid, status, usage = os.wait4(self.proc.pid, flags)
        if pid:
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            self.cpu = usage.ru_utime + usage.ru_stime

    def output(self) -> str:
        self.log.seek(0)
        text = self.log.read()
        self.log.close()
        if self.timed_out:
            text += f"\nunit killed after {self.timeout:.0f} s (RATCHET_TEST_UNIT_TIMEOUT)\n"
        return text


def main() -> int:
    scratch = scratch_dir()
    try:
        return run({**os.environ, "TMPDIR": scratch} if scratch else None)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def run(env) -> int:
    jobs = int(os.environ.get("RATCHET_TEST_JOBS") or max(2, 2 * (os.cpu_count() or 1)))
    timeout = float(os.environ.get("RATCHET_TEST_UNIT_TIMEOUT") or 900)
    found = units(sys.argv[1:])
    pending, running, totals, times, failed = plan(found, known_times()), [], dict.fromkeys(("ran",) + COUNTS, 0), {}, []
    skipped = set()
    t0, cpu = time.monotonic(), 0.0
    print(f"{len(found)} test classes as {len(pending)} units, {jobs} at a time", flush=True)
    while pending or running:
        while pending and len(running) < jobs:
            running.append(Unit(pending.pop(0), timeout, env))
        for unit in [u for u in running if u.poll() is not None]:
            running.remove(unit)
            seconds = time.monotonic() - unit.t0
            times[unit.cls] = round(times.get(unit.cls, 0.0) + seconds, 2)
            text, result = unit.output(), None
            result = parse(text)
            for key in totals:
                totals[key] += result.get(key, 0)
            if result.get("skipped"):
                skipped.add(unit.cls)
            bad = unit.proc.returncode != 0 or result.get("failures") or result.get("errors")
            cpu += unit.cpu
            print(f"{'FAIL' if bad else 'ok  '} {unit.name}  {result['ran']} tests  {seconds:.1f}s  cpu {unit.cpu:.1f}s",
                  flush=True)
            if bad:
                failed.append(unit.name)
                print(text, flush=True)
        time.sleep(0.05)
    _save(times, skipped)
    print("\n" + "-" * 70)
    print(f"units' CPU time: {cpu:.1f}s (the units and what they waited for)")
    print(f"Ran {totals['ran']} tests in {time.monotonic() - t0:.3f}s\n")
    extra = ", ".join(f"{k}={totals[k]}" for k in COUNTS if totals[k])
    if failed:
        print(f"FAILED ({extra})" if extra else "FAILED (errors=1)")
        print("failed units: " + " ".join(failed))
        return 1
    print(f"OK ({extra})" if extra else "OK")
    return 0


def _save(times: dict, skipped: set) -> None:
    try:
        with open(TIMES) as f:
            known = json.load(f)
    except (OSError, ValueError):
        known = {}
    for cls, seconds in times.items():
        known[cls] = max(seconds, known.get(cls, 0.0)) if cls in skipped else seconds
    try:
        with open(TIMES + ".tmp", "w") as f:
            json.dump(known, f, indent=0, sort_keys=True)
        os.replace(TIMES + ".tmp", TIMES)
    except OSError:
        pass  # timing is only a hint for the next run's order


if __name__ == "__main__":
    sys.exit(main())
