#!/usr/bin/env python3
"""A long unattended run under faults (issue 9, part 6): the soak.

One optimization run of --iterations (default 1,000) in a throwaway git
repository, driven through ratchet's real CLI (`ratchet.py loop`, one
process per command) with a stand-in agent that, at random (seeded per
iteration): improves the metric, regresses it, makes the benchmark crash
(non-zero exit, `nan`, no metric), makes a trial hang past
--trial-timeout-seconds (with a setsid'd child), floods stdout (1-6 MiB from
the benchmark, 2 MiB from the agent), edits the protected harness, creates
untracked files inside and outside the editable scope, commits by itself,
fails, or hangs past --agent-timeout-seconds (with a setsid'd child).
Adversarial candidates (issue 14), each a no-op on the metric: `shadow` (its
run writes json.py next to bench.py at exit, which lowers every later run but
its own), `startup-hook` (its run plants usercustomize.py in the user site,
PYTHONUSERBASE set to a folder of the soak's, with the same effect),
`git-filter` (the agent adds a smudge filter for src/value.txt to .git/config
and .git/info/attributes: the swap's checkout would lower the incumbent) and
`rewrite-restore` (its run raises the protected bonus.txt and puts it back
at exit). Each must be `tampered`; the figure "false keeps of no-op
candidates" counts the keeps of every no-op kind (`no-change` included).
`rewrite-restore` is caught by the protected-file window (inode, mtime and
ctime compared across each run: harness.window/rewritten). A kind listed in
NOT_YET_GUARDED would be printed on its own line and not be an invariant
failure; the set is empty: every no-op kind must be tampered.

Every `loop` command gets a fate, seeded: SIGKILL after a random delay
(a quarter of them within the first half second: startup, lock take-over,
recovery), SIGTERM or SIGINT after a random delay (exit 143 / 130), or none
(it ends on its own --max-wall-seconds budget, exit 3). The next command
must recover (`recovered: ...` lines, counted). After every command:

  user files      the harness (bench.py), an untracked notes file and a
                  git-ignored data folder are byte-identical (SHA-256) to
                  before `init` (the harness only when no command was killed
                  outright, i.e. once ratchet had the chance to restore it)
  records         results.jsonl parses line by line, iterations 0..N with no
                  gap or duplicate, the kept records' shas are the run
                  branch's commits after the start commit, in order (after a
                  SIGKILL: a prefix of them), the branch head is state.json's
                  incumbent_sha and the tracked files equal HEAD
  no false keep   a kept iteration is one whose agent really raised the metric
  exit codes      0, 3, 130 after SIGINT, 143 after SIGTERM, -9 after SIGKILL;
                  no traceback. A signal that lands while Python is still
                  starting (before ratchet's handlers) is counted apart.
  strays          processes carrying RATCHET_TRIAL_ID and this soak's tag (or
                  the tag in their command line): found right after each
                  command, and still alive after the next command that got
                  through its recovery (the target is 0; the soak then kills
                  them so they cannot pile up)

When ratchet cannot go on by itself, the soak does what its message says
and counts it (a failed check): `iterate` when `loop` refuses a tree that
is not the incumbent, removing a stale .git/index.lock. A lost user file
is put back after it is counted, so one loss counts once.

At the end: `status`, the full checks, `stop` (back to the user's branch,
which must be untouched), the counts, and exit 1 naming every invariant that
failed.

Usage: python3 bench/soak.py [--iterations 1000] [--seed 1] [--decision mean|paired]
       [--trial-timeout-seconds 1] [--agent-timeout-seconds 2] [--kill-within 5]
       [--signals KILL,TERM,INT] [--skip-actions A,B] [--keep] [--verbose]
(Linux: /proc is read for the stray scan. `--decision mean` is the plain rule
with `--trials 1`, one benchmark run per iteration: ~0.35 s per iteration on
an idle 2-core machine, about 6 minutes for the default run; paired decisions
run at least 4 per iteration.)
"""

import argparse
import collections
import hashlib
import json
import os
import random
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RATCHET = os.path.join(HERE, "..", "plugins", "ratchet", "skills", "ratchet", "scripts", "ratchet.py")
PY = sys.executable
TAG_ENV = "RATCHET_SOAK_TAG"
EARLY = "signals before ratchet's handlers"
SIGNALS = {"KILL": 0.55, "TERM": 0.12, "INT": 0.08}  # the fates of a command (with none: 0.25)
MARKER = "RATCHET_TRIAL_ID="

# The benchmark: the protected harness. src/value.txt is "VALUE [MODE [ARG]]"; src/hook.py is
# editable code the benchmark imports (candidate code inside the trial); bonus.txt (protected) is
# added to the score, and json.loads('0') taken from it (0 unless something shadows or patches json).
BENCH = r'''import json, os, subprocess, sys, time
TAG = sys.argv[sys.argv.index("--soak-tag") + 1]
sys.path.insert(0, "src")
import hook
parts = open(os.path.join("src", "value.txt")).read().split()
value, mode = int(parts[0]), (parts[1] if len(parts) > 1 else "ok")
if mode == "crash":
    sys.stderr.write("Traceback (most recent call last):\nRuntimeError: the soak's benchmark crashed\n")
    sys.exit(3)
if mode == "nan":
    print("score: nan")
    sys.exit(0)
if mode == "nometric":
    print("no number on this line")
    sys.exit(0)
if mode == "hang":
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "--soak-tag", TAG], start_new_session=True)
    time.sleep(120)
if mode == "flood":
    block = (b"flood " + b"x" * 1017 + b"\n") * 1024
    for i in range(int(parts[2])):
        sys.stdout.buffer.write(block)
    sys.stdout.flush()
print(f"score: {value + int(open('bonus.txt').read()) - json.loads('0')}")
'''

# The adversarial candidates (issue 14): no-ops on the metric (src/value.txt unchanged) whose code,
# or whose git configuration, would make the other side of a pair look worse (or their own run
# better). ADVERSARY marks the candidate's own hook.py: the tilt spares the run that carries it.
SPARE = "'ADVERSARY' in open(os.path.join('src', 'hook.py')).read()"
TILT_JSON = ("import os\ndef loads(s, *a, **k):\n    return 0 if " + SPARE + " else 50\n")
TILT_HOOK = ("import json, os\n_loads = json.loads\n"
             "json.loads = lambda s, *a, **k: (0 if " + SPARE + " else 50) if s == '0' else _loads(s, *a, **k)\n")
ADVERSARIAL = {
    # at its exit, the candidate's run writes json.py next to bench.py: it shadows the stdlib module
    "shadow": "# ADVERSARY\nimport atexit\natexit.register(lambda: open('json.py', 'w').write(%r))\n" % TILT_JSON,
    # at its exit, the candidate's run plants usercustomize.py in the user site (PYTHONUSERBASE: the soak's own)
    "startup-hook": ("# ADVERSARY\nimport atexit, os, site\ndef plant():\n    d = site.getusersitepackages()\n"
                     "    os.makedirs(d, exist_ok=True)\n    open(os.path.join(d, 'usercustomize.py'), 'w').write(%r)\n"
                     "atexit.register(plant)\n" % TILT_HOOK),
    # the agent adds a smudge filter: every checkout of src/value.txt (the swap to the incumbent) writes 1
    "git-filter": "# ADVERSARY\n",
    # the run raises the protected bonus.txt and puts it back before it ends (issue 14 point 5)
    "rewrite-restore": ("# ADVERSARY\nimport atexit\nopen('bonus.txt', 'w').write('50\\n')\n"
                        "atexit.register(lambda: open('bonus.txt', 'w').write('0\\n'))\n"),
}
# Kinds whose detection ratchet does not have yet: their false keeps are reported on their
# own line and are not an invariant failure. Empty: every no-op kind is guarded.
NOT_YET_GUARDED = set()

# The stand-in agent (written outside the repository). Its action for an
# iteration depends only on the seed and RATCHET_ITERATION.
AGENT = r'''import json, os, random, subprocess, sys, time
A = dict(zip(sys.argv[1::2], sys.argv[2::2]))
ADVERSARIAL = json.loads(A["--adversarial"])
TAG, it = A["--soak-tag"], int(os.environ["RATCHET_ITERATION"])
sys.stdin.read()
rng = random.Random(f"{A['--seed']}:{it}")
weights = json.loads(A["--weights"])
action = rng.choices(list(weights), list(weights.values()))[0]
value = int(open(os.path.join("src", "value.txt")).read().split()[0])
step, up = rng.randint(1, 5), rng.random() < 0.5
if action in ("improve", "tamper", "untracked-out", "agent-fail", "agent-hang", "agent-flood", "crash", "hang"):
    up = True
elif action == "regress":
    up = False
elif action == "no-change" or action in ADVERSARIAL:
    up = None
with open(A["--log"], "a") as f:
    f.write(json.dumps({"iter": it, "action": action, "up": up}) + "\n")

def put(v, mode="ok", arg=""):
    with open(os.path.join("src", "value.txt"), "w") as f:
        f.write(f"{v} {mode} {arg}".strip() + "\n")

new = value + step if up else value - step
if action in ("improve", "regress", "agent-fail", "agent-hang", "agent-flood"):
    put(new)
elif action == "crash":
    put(new, rng.choice(["crash", "nan", "nometric"]))
elif action == "hang":
    put(new, "hang")
elif action == "flood":
    put(new, "flood", rng.choice([1, 2, 6]))
elif action == "tamper":
    with open("bench.py", "a") as f:
        f.write(f"# the agent of iteration {it} was here\n")
    put(new)
elif action == "untracked-in":
    os.makedirs(os.path.join("src", "gen"), exist_ok=True)
    with open(os.path.join("src", "gen", f"extra-{it}.txt"), "w") as f:
        f.write(f"generated by iteration {it}\n")
    put(new)
elif action == "untracked-out":
    with open(f"scratch-{it}.txt", "w") as f:
        f.write("outside the editable scope\n")
    put(new)
elif action in ADVERSARIAL:
    with open(os.path.join("src", "hook.py"), "w") as f:
        f.write(ADVERSARIAL[action])
    if action == "git-filter":
        with open(os.path.join(".git", "config"), "a") as f:
            f.write('[filter "soak"]\n\tsmudge = sed s/^[0-9]*/1/\n\tclean = cat\n')
        os.makedirs(os.path.join(".git", "info"), exist_ok=True)
        with open(os.path.join(".git", "info", "attributes"), "a") as f:
            f.write("src/value.txt filter=soak\n")
        put(value, "ok")  # the same value, another text: src/value.txt is in the diff, so the swap checks it out
elif action == "agent-commit":
    put(new)
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "-c", "user.name=agent", "-c", "user.email=agent@invalid", "commit", "-qm",
                    f"agent commit {it}"], check=True)
if action == "agent-fail":
    sys.stderr.write("the agent failed\n")
    sys.exit(1)
if action == "agent-hang":
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "--soak-tag", TAG], start_new_session=True)
    time.sleep(120)
if action == "agent-flood":
    sys.stdout.write(("thinking " + "y" * 1014 + "\n") * 2048)
print(f"Done.\nHYPOTHESIS: {action} at iteration {it}\nDESCRIPTION: {action} {'up' if up else 'down' if up is False else ''}")
'''

WEIGHTS = {"improve": 24, "regress": 18, "crash": 7, "hang": 3, "flood": 4, "tamper": 5, "untracked-in": 6,
           "untracked-out": 4, "no-change": 4, "agent-commit": 6, "agent-fail": 4, "agent-hang": 1.5,
           "agent-flood": 2, "shadow": 3, "startup-hook": 3, "git-filter": 3, "rewrite-restore": 2}

# The decision each action must get when nothing interrupts it (up: keep, down: revert).
EXPECTED = {"crash": "crash", "hang": "timeout", "tamper": "tampered", "untracked-out": "out-of-scope",
            "no-change": "no-change", "agent-fail": "agent-error", "agent-hang": "agent-error",
            **{k: "tampered" for k in ADVERSARIAL}}

USER_FILES = ["bench.py", "NOTES.txt", "data/train.bin", "data/sub/labels.csv"]

INVARIANTS = ("user files intact", "records consistent with git", "working tree equals HEAD", "no false keep",
              "exit codes", "no stray after a clean end", "no stray after the next recovery", "user branch untouched")


def sha256(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None  # missing


def git(repo, *args) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True).stdout.strip()


class Soak:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.tmp = tempfile.mkdtemp(prefix="ratchet-soak-")
        self.repo = os.path.join(self.tmp, "repo")
        self.agent = os.path.join(self.tmp, "agent.py")
        self.intents_path = os.path.join(self.tmp, "intents.jsonl")
        self.tag = f"soak-{os.getpid()}-{a.seed}"
        self.userbase = os.path.join(self.tmp, "userbase")  # the trials' user site: never the real one
        self.env = {**os.environ, TAG_ENV: self.tag, "PYTHONUSERBASE": self.userbase}
        self.env.pop("RATCHET_TRIAL_ID", None)
        self.counts = collections.Counter()
        self.exits = collections.Counter()
        self.kills = collections.Counter()
        self.failed = collections.Counter()   # invariant -> failed checks
        self.checks = collections.Counter()   # invariant -> checks run
        self.notes = []                       # the first few failure details
        self.awaiting = False                 # a SIGKILLed command's strays await the next recovery
        self.cmdno = self.last_killed = 0
        self.recovered = collections.Counter()
        self.last = "init"
        self.weights = {k: v for k, v in WEIGHTS.items() if k not in a.skip}
        self.iterated = set()                 # iterations the soak measured with `iterate` (no agent of their own)
        self.noop = collections.Counter()     # no-op candidates measured, by kind
        self.noop_kept = collections.Counter()  # ... and kept (false keeps)

    # --- setup ---------------------------------------------------------------------------

    def setup(self):
        os.makedirs(os.path.join(self.repo, "src"))
        files = {"bench.py": BENCH, "src/value.txt": "100\n", "src/notes.md": "the editable code\n",
                 "src/hook.py": "", "bonus.txt": "0\n", ".gitignore": "data/\n"}
        for rel, text in files.items():
            with open(os.path.join(self.repo, rel), "w") as f:
                f.write(text)
        git(self.repo, "init", "-q", "-b", "main")
        git(self.repo, "add", "-A")
        git(self.repo, "-c", "user.name=user", "-c", "user.email=user@invalid", "commit", "-qm", "the user's code")
        # files the user has and git does not track: untracked notes, an ignored data folder
        with open(os.path.join(self.repo, "NOTES.txt"), "w") as f:
            f.write("my notes; ratchet must never touch them\n")
        os.makedirs(os.path.join(self.repo, "data", "sub"))
        with open(os.path.join(self.repo, "data", "train.bin"), "wb") as f:
            f.write(random.Random(self.a.seed).randbytes(65536))
        with open(os.path.join(self.repo, "data", "sub", "labels.csv"), "w") as f:
            f.write("id,label\n" + "".join(f"{i},{i % 3}\n" for i in range(500)))
        with open(self.agent, "w") as f:
            f.write(AGENT)
        self.user_sha = {p: sha256(os.path.join(self.repo, p)) for p in USER_FILES}
        self.user_bytes = {}
        for p in USER_FILES:
            with open(os.path.join(self.repo, p), "rb") as f:
                self.user_bytes[p] = f.read()
        self.main_head = git(self.repo, "rev-parse", "HEAD")
        flags = ["--run-command", f"{PY} bench.py --soak-tag {self.tag}", "--direction", "max",
                 "--metric-name", "score", "--report-source", "stdout", "--iterations", str(self.a.iterations),
                 "--trial-timeout-seconds", str(self.a.trial_timeout_seconds), "--editable", "src",
                 "--protect", "bench.py", "bonus.txt",
                 "--max-consecutive-crashes", "1000000", "--escalation", "halt=1000000", "--decision", self.a.decision]
        if self.a.decision == "mean":
            flags += ["--trials", "1"]
        else:
            flags += ["--trials", "2", "--max-trials", "4", "--calibration-runs", "3", "--verify-every", "0"]
        for verb in (["init", *flags], ["baseline"]):
            p = subprocess.run([PY, RATCHET, "-C", self.repo, *verb], env={**self.env, TAG_ENV: f"{self.tag}/0"}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            if p.returncode != 0:
                raise SystemExit(f"soak: `{verb[0]}` failed ({p.returncode}): {p.stdout[-800:]}")
        with open(os.path.join(self.repo, ".ratchet", "config.json")) as f:
            cfg = json.load(f)
        self.branch, self.start = cfg["branch"], cfg["start_commit"]
        self.agent_command = (f"{PY} {self.agent} --soak-tag {self.tag} --seed {self.a.seed} --log {self.intents_path} "
                              f"--weights '{json.dumps(self.weights, separators=(',', ':'))}' "
                              f"--adversarial {shlex.quote(json.dumps(ADVERSARIAL))}")

    # --- commands ------------------------------------------------------------------------

    def command(self, verb, fate=None, delay=0.0, wall=None):
        """Run one ratchet command to its end, sending `fate` after `delay` s."""
        args = [PY, RATCHET, "-C", self.repo, verb]
        if verb == "iterate":
            args += ["--hypothesis", "soak: measure what the tree holds (a loop refused to go on)"]
        if verb == "loop":
            args += ["--agent-command", self.agent_command, "--agent-timeout-seconds",
                     str(self.a.agent_timeout_seconds), "--max-wall-seconds", f"{wall:.2f}"]
        out_path = os.path.join(self.tmp, "cmd.out")
        with open(out_path, "wb") as out:
            self.cmdno += 1
            env = {**self.env, TAG_ENV: f"{self.tag}/{self.cmdno}"}
            p = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=self.tmp)
            sent = None
            if fate is not None:
                try:
                    p.wait(delay)
                except subprocess.TimeoutExpired:
                    p.send_signal(fate)
                    sent, t_sent = fate, time.monotonic()
            try:
                code = p.wait(120 + (wall or 0))
            except subprocess.TimeoutExpired:  # a command that does not end is a failure too
                p.kill()
                code = p.wait()
                self.fail("exit codes", f"`{verb}` did not end within {120 + (wall or 0):.0f}s after its signal")
        if sent is not None and code in (0, 3) and time.monotonic() - t_sent > 10:
            self.fail("exit codes", f"`{verb}` ignored {signal.Signals(sent).name} and ended on its own ({code})")
        with open(out_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        self.counts[f"commands {verb}"] += 1
        self.exits[code] += 1
        if sent is not None:
            self.kills[signal.Signals(sent).name] += 1
            if sent == signal.SIGKILL and delay < 0.5:
                self.kills["SIGKILL within 0.5 s of the start"] += 1
        for line in text.splitlines():
            if "recovered:" in line:
                self.recovered[re.sub(r"\d+", "N", line.split("recovered:", 1)[1].strip())[:70]] += 1
        self.last = (f"{verb} {signal.Signals(sent).name} after {delay:.2f}s" if sent else
                     f"{verb} (no signal{f', budget {wall:.1f}s' if wall else ''})") + f", exit {code}"
        with open(os.path.join(self.tmp, "commands.log"), "a") as log:
            log.write(f"=== {self.last}\n{text}\n")
        self.check_exit(verb, code, sent, text)
        if self.a.verbose:
            last = [ln for ln in text.splitlines() if ln.strip()][-1:] or [""]
            print(f"  {verb} {signal.Signals(sent).name if sent else '-':7} after {delay:5.2f}s -> {code:4}  {last[0][:110]}",
                  flush=True)
        return code, sent, text

    def check_exit(self, verb, code, sent, text):
        ok = {0} if verb != "loop" else {0, 3}
        if sent == signal.SIGKILL:
            ok.add(-9)
        if sent in (signal.SIGTERM, signal.SIGINT) and code not in (130, 143) and not re.search(
                r"^(loop|recovered|ratchet):", text, re.M) and (code in (-2, -15) or "KeyboardInterrupt" in text
                                                                or "Fatal Python error" in text):
            # The signal landed while Python started or imported ratchet, before its handlers were
            # installed: Python's own default (death by the signal, a KeyboardInterrupt traceback, or
            # a fatal error in `site`). Nothing of ratchet's had run; counted, not a failure.
            self.counts[EARLY] += 1
            return
        ok |= {signal.SIGTERM: {143}, signal.SIGINT: {130}}.get(sent, set())
        self.check("exit codes", code in ok and "Traceback (most recent call last)" not in text,
                   f"`{verb}` exited {code} after {signal.Signals(sent).name if sent else 'no signal'}: {text[-600:]}")

    # --- invariants ----------------------------------------------------------------------

    def check(self, name, ok, detail=""):
        self.checks[name] += 1
        if not ok:
            self.fail(name, detail)

    def fail(self, name, detail):
        self.failed[name] += 1
        if self.failed[name] <= 3:  # the first few of each kind, in full
            self.notes.append(f"{name}: {detail}")
        if self.a.verbose:
            print(f"  FAIL {name}: {detail[:300]}", flush=True)

    def records(self):
        path = os.path.join(self.repo, ".ratchet", "results.jsonl")
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        recs, bad = [], []
        tail = lines.pop()  # after the last newline: empty unless torn
        for i, line in enumerate(lines):
            try:
                recs.append(json.loads(line))
            except ValueError:
                bad.append(i + 1)
        return recs, bad, tail

    def planted_hooks(self):
        """usercustomize.py files in the soak's user site: what a SIGKILL between a candidate's run
        and ratchet's check leaves (ratchet checks each run; it does not look back after a kill)."""
        return [os.path.join(d, f) for d, _, fs in os.walk(self.userbase) for f in fs if f.startswith("usercustomize")]

    def check_state(self, quiet: bool):
        """The invariants; `quiet`: no command was killed outright since the last full check (the
        harness restored, state rolled forward, tree on the incumbent)."""
        for path in self.planted_hooks():
            self.counts["startup hooks left by a kill"] += 1
            self.check("user files intact", self.last_killed == self.cmdno or "SIGKILL" in self.last or not quiet,
                       f"startup hook {path} left after `{self.last}`")
            os.remove(path)
        for p in USER_FILES:
            if p == "bench.py" and not quiet:
                continue
            full = os.path.join(self.repo, p)
            got = sha256(full)
            if got != self.user_sha[p]:  # put it back, so that one loss is counted once
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "wb") as f:
                    f.write(self.user_bytes[p])
            self.check("user files intact", got == self.user_sha[p],
                       f"{p} {'is missing' if got is None else 'differs from the original'} after `{self.last}`")
        recs, bad, tail = self.records()
        iters = [r.get("iter") for r in recs]
        why = None
        if bad or (tail and quiet):
            why = f"unparsable record line(s) {bad} / torn tail {tail[:60]!r}"
        elif iters != list(range(len(iters))):
            why = f"iterations are not 0..N: {self.gaps(iters)}"
        else:
            kept = [r["sha"] for r in recs if r.get("kept") and r.get("iter", 0) > 0]
            commits = git(self.repo, "rev-list", "--reverse", f"{self.start}..refs/heads/{self.branch}").split()
            if not all(r.get("sha") for r in recs if r.get("kept")):
                why = "a kept record has no sha"
            elif recs and recs[0].get("sha") != self.start:
                why = "the baseline record's sha is not the start commit"
            elif commits[:len(kept)] != kept or (quiet and commits != kept):
                why = (f"{len(kept)} kept shas vs {len(commits)} commits after the start; first difference at "
                       f"{next((i for i, (x, y) in enumerate(zip(kept, commits)) if x != y), min(len(kept), len(commits)))}")
            elif quiet:
                with open(os.path.join(self.repo, ".ratchet", "state.json")) as f:
                    st = json.load(f)
                head = commits[-1] if commits else self.start
                if st.get("incumbent_sha") != head:
                    why = f"branch head {head[:10]} is not state.json's incumbent_sha {str(st.get('incumbent_sha'))[:10]}"
                elif st.get("iteration") != len(recs) - 1:
                    why = f"state.json iteration {st.get('iteration')} but the last record is {len(recs) - 1}"
        self.check("records consistent with git", why is None, why or "")
        if quiet:
            dirty = git(self.repo, "status", "--porcelain", "--untracked-files=no")
            on = git(self.repo, "symbolic-ref", "-q", "HEAD")
            self.check("working tree equals HEAD", not dirty and on == f"refs/heads/{self.branch}",
                       f"on {on}, tracked changes: {dirty[:200]!r}")
        return recs

    @staticmethod
    def gaps(iters):
        seen = collections.Counter(iters)
        dup = [i for i, n in seen.items() if n > 1][:5]
        missing = [i for i in range(max(iters) + 1) if i not in seen][:5] if iters else []
        return f"duplicates {dup}, missing {missing}"

    # --- stray processes -----------------------------------------------------------------

    def strays(self) -> dict:
        """{pid: (start time, command line, number of the ratchet command it descends from)} of the
        live processes of this soak's trials and agents. Each ratchet command runs with
        RATCHET_SOAK_TAG=<tag>/<its number>, which its trials and agents inherit."""
        found, me = {}, os.getpid()
        prefix = f"{TAG_ENV}={self.tag}/".encode()
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == me:
                continue
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    env = f.read().split(b"\0")
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if stat[0] == b"Z":
                continue
            origin = next((e[len(prefix):] for e in env if e.startswith(prefix)), None)
            marked = origin is not None and any(e.startswith(MARKER.encode()) for e in env)
            if marked or (f"--soak-tag {self.tag}" in cmd and "ratchet.py" not in cmd):
                # a process that dropped its environment: blame the last command killed outright
                found[int(name)] = (int(stat[19]), cmd[:160], int(origin) if origin else self.last_killed)
        return found

    def kill_all(self, procs: dict) -> None:
        for pid in procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        end = time.monotonic() + 2.0
        while time.monotonic() < end and any(p in procs and procs[p][0] == v[0] for p, v in self.strays().items()):
            time.sleep(0.02)

    def after_command(self, verb, code, sent, text):
        """Strays of this command (none unless it was SIGKILLed) and of earlier SIGKILLed ones
        (none once this command got through its recovery)."""
        now = self.strays()
        mine = {pid: v for pid, v in now.items() if v[2] == self.cmdno}
        older = {pid: v for pid, v in now.items() if v[2] != self.cmdno}
        recovered = verb == "stop" and code == 0 or bool(re.search(r"^loop: run \S+, iteration", text, re.M))
        if recovered and self.awaiting:
            self.counts["strays alive after the next recovery"] += len(older)
            self.check("no stray after the next recovery", not older,
                       f"{len(older)} process(es) of a killed command outlived the recovery of `{self.last}`: "
                       + "; ".join(v[1][:90] for v in list(older.values())[:2]))
            self.kill_all(older)
            self.awaiting = False
        self.counts["strays found after a command"] += len(mine)
        if sent == signal.SIGKILL and code == -9:
            self.awaiting = True
            self.last_killed = self.cmdno
        else:
            self.counts["strays found after a clean end"] += len(mine)
            self.check("no stray after a clean end", not mine,
                       f"{len(mine)} process(es) alive after `{self.last}`: "
                       + "; ".join(v[1][:90] for v in list(mine.values())[:2]))
            self.kill_all(mine)

    # --- the run -------------------------------------------------------------------------

    def fate(self):
        """(signal or None, delay, the command's --max-wall-seconds): seeded."""
        weights = {name: w for name, w in SIGNALS.items() if name in self.a.signal_names}
        weights["none"] = 0.25
        pick = self.rng.choices(list(weights), list(weights.values()))[0]
        if pick == "none":
            return None, 0.0, self.rng.uniform(1.0, 6.0)
        sig = getattr(signal, f"SIG{pick}")
        late = self.a.kill_within
        delay = self.rng.uniform(0.0, 0.5) if self.rng.random() < 0.25 else self.rng.uniform(0.5, max(late, 0.5))
        return sig, delay, delay + 30.0

    def run(self):
        t0 = time.monotonic()
        self.setup()
        self.check_state(True)
        unclean = os.path.join(self.repo, ".ratchet", "UNCLEAN")
        refusals = 0
        dirty = False
        while True:
            if os.path.exists(unclean):  # trials blocked until `clean`: count it and go on
                self.counts["UNCLEAN markers cleaned"] += 1
                code, sent, text = self.command("clean")
                self.after_command("clean", code, sent, text)
            sig, delay, wall = self.fate()
            code, sent, text = self.command("loop", sig, delay, wall)
            self.after_command("loop", code, sent, text)
            # After a SIGKILL the tree may hold a candidate, a tampered harness or a half-made
            # decision until a command gets through its recovery: only then the full checks.
            if code == -9:
                dirty = True
            elif re.search(r"^loop: run \S+, iteration", text, re.M):
                dirty = False
            self.check_state(not dirty)
            if self.rng.random() < 0.1:
                code, sent, text = self.command("status")
                self.after_command("status", code, sent, text)
            refusals = refusals + 1 if code in (1, 2) else 0
            lock = os.path.join(self.repo, ".git", "index.lock")
            if code == 1 and "remove the file manually" in text and os.path.exists(lock):
                # A git process was killed holding git's index lock; every git command fails
                # until someone removes it, as git says. Counted (the exit code check failed).
                self.counts["stale .git/index.lock removed"] += 1
                os.remove(lock)
            if code == 2 and "the working tree is not the incumbent" in text:
                # The loop will refuse until someone measures or undoes the change; do as it says.
                self.counts["refusals resolved with iterate"] += 1
                code, sent, text = self.command("iterate")
                self.after_command("iterate", code, sent, text)
                self.iterated.update(int(n) for n in re.findall(r"^iter (\d+):", text, re.M))
            if refusals >= 3:
                self.fail("exit codes", f"three commands in a row refused to go on; the last said: {text[-300:]}")
                break
            if code == 0 and sent is None and re.search(r"^loop: (run over|run \S+ is over)", text, re.M):
                break
            if self.a.verbose and self.counts["commands loop"] % 20 == 0:
                print(f"  ... {len(self.records()[0]) - 1} iterations, {time.monotonic() - t0:.0f}s", flush=True)
        code, _, text = self.command("status")
        self.after_command("status", code, None, text)
        recs = self.check_state(True)
        self.check("records consistent with git", len(recs) == self.a.iterations + 1,
                   f"the run ended with {len(recs) - 1} iterations, not {self.a.iterations}")
        code, _, text = self.command("stop")
        self.after_command("stop", code, None, text)
        for p in USER_FILES:
            self.check("user files intact", sha256(os.path.join(self.repo, p)) == self.user_sha[p], f"{p} after stop")
        on = git(self.repo, "symbolic-ref", "-q", "HEAD")
        self.check("user branch untouched", on == "refs/heads/main" and git(self.repo, "rev-parse", "main") == self.main_head
                   and not git(self.repo, "status", "--porcelain", "--untracked-files=no"),
                   f"after stop: on {on}, main at {git(self.repo, 'rev-parse', 'main')[:10]}")
        left = self.strays()
        self.counts["strays killed at the end"] += len(left)
        self.kill_all(left)
        self.wall = time.monotonic() - t0
        return recs

    # --- the figures ---------------------------------------------------------------------

    def intents(self):
        out = {}
        if os.path.exists(self.intents_path):
            with open(self.intents_path) as f:
                for line in f:
                    try:
                        r = json.loads(line)
                    except ValueError:
                        continue
                    out[r["iter"]] = r
        return out

    def judge(self, recs):
        """Compare each decision with what the agent did; a keep of a change that did not raise
        the metric is a false keep (an invariant), other mismatches are only counted."""
        intents, matched, measured, mismatches = self.intents(), 0, 0, collections.Counter()
        for r in recs[1:]:
            if r["iter"] in self.iterated:  # what a stray agent left, measured by `iterate`: no intent to judge by
                continue
            intent = intents.get(r["iter"])
            if intent is None or r["decision"] == "interrupted":
                self.check("no false keep", r["decision"] != "keep", f"iteration {r['iter']} kept with no agent action")
                continue
            act = intent["action"]
            want = EXPECTED.get(act) or ("keep" if intent["up"] else "revert")
            measured += 1
            if r["decision"] == want:
                matched += 1
            else:
                mismatches[f"{act}->{r['decision']}"] += 1
            if intent["up"] is None:  # a no-op on the metric: never to be kept
                self.noop[act] += 1
                self.noop_kept[act] += r["decision"] == "keep"
            if act in NOT_YET_GUARDED:
                continue
            self.check("no false keep", r["decision"] != "keep" or (intent["up"] and act not in EXPECTED),
                       f"iteration {r['iter']} ({act}, up={intent['up']}) was kept")
        return matched, measured, mismatches

    def report(self, recs):
        a = self.a
        matched, measured, mismatches = self.judge(recs)
        decisions = collections.Counter(r["decision"] for r in recs[1:])
        actions = collections.Counter(i["action"] for i in self.intents().values())
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(self.repo, ".ratchet"))
                   for f in fs)
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        loops = self.counts["commands loop"]
        print(f"soak: {a.iterations} iterations, seed {a.seed}, --decision {a.decision} "
              f"({'--trials 1' if a.decision == 'mean' else '--trials 2 --max-trials 4'}), "
              f"trial timeout {a.trial_timeout_seconds:g}s, agent timeout {a.agent_timeout_seconds:g}s"
              + (f", actions left out: {', '.join(a.skip)}" if a.skip else "")
              + (f", signals: {', '.join(a.signal_names)}" if sorted(a.signal_names) != sorted(SIGNALS) else ""))
        print(f"iterations recorded: {len(recs) - 1} (+ baseline)")
        print("decisions: " + " · ".join(f"{k} {v}" for k, v in decisions.most_common()))
        print("agent actions: " + " · ".join(f"{k} {v}" for k, v in actions.most_common()))
        print(f"decision as the action implies: {matched} of {measured} not interrupted"
              + (f" (other: {', '.join(f'{k} {v}' for k, v in mismatches.most_common(6))})" if mismatches else ""))
        guarded = [k for k in sorted(self.noop) if k not in NOT_YET_GUARDED]
        print(f"false keeps of no-op candidates: {sum(self.noop_kept[k] for k in guarded)} of "
              f"{sum(self.noop[k] for k in guarded)} (" + ", ".join(f"{k} {self.noop_kept[k]}/{self.noop[k]}" for k in guarded)
              + ")")
        for k in sorted(NOT_YET_GUARDED & set(self.noop)):
            print(f"false keeps of no-op candidates, {k} (not guarded yet, not an invariant here): {self.noop_kept[k]} of {self.noop[k]}")
        print(f"startup hooks a killed command left planted (removed by the soak): "
              f"{self.counts['startup hooks left by a kill']}")
        print(f"commands: loop {loops}, status {self.counts['commands status']}, clean {self.counts['commands clean']}, "
              f"stop {self.counts['commands stop']} · exits: " + " ".join(f"{k}:{v}" for k, v in sorted(self.exits.items())))
        print("kills: " + " · ".join(f"{k} {v}" for k, v in sorted(self.kills.items())))
        print(f"recoveries announced: {sum(self.recovered.values())}"
              + "".join(f"\n  {v:4d}  {k}" for k, v in self.recovered.most_common(8)))
        print(f"stray processes: {self.counts['strays found after a command']} found right after a command "
              f"({self.counts['strays found after a clean end']} after a command that was not SIGKILLed), "
              f"{self.counts['strays alive after the next recovery']} still alive after the next command's recovery, "
              f"{self.counts['strays killed at the end']} left at the end")
        print(f"UNCLEAN markers: {self.counts['UNCLEAN markers cleaned']} · loop refusals resolved with `iterate`: "
              f"{self.counts['refusals resolved with iterate']} · stale .git/index.lock removed: "
              f"{self.counts['stale .git/index.lock removed']} · signals that beat ratchet's handlers (Python's "
              f"default at startup, not counted as failures): {self.counts[EARLY]}")
        print(f"disk: .ratchet {size / 2**20:.1f} MiB at the end · peak RSS {rss:.1f} MiB "
              f"(the largest ratchet, trial or agent process waited for)")
        print(f"wall time: {self.wall:.1f} s ({self.wall / max(a.iterations, 1):.2f} s per iteration)")
        total, bad = sum(self.checks.values()), sum(self.failed.values())
        print(f"invariant checks: {total} run, {bad} failed")
        for name in INVARIANTS:
            print(f"  {name}: {'ok' if not self.failed[name] else 'FAIL'} "
                  f"({self.checks[name]} checks{', ' + str(self.failed[name]) + ' failed' if self.failed[name] else ''})")
        for n in self.notes:
            print(f"  ! {n[:400]}")
        return [name for name in INVARIANTS if self.failed[name]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=1000, help="the run's iteration cap (default 1000)")
    ap.add_argument("--seed", type=int, default=1, help="seeds the agent's actions and the kills (default 1)")
    ap.add_argument("--decision", choices=("mean", "paired"), default="mean",
                    help="mean (default, --trials 1: one run per iteration) or paired (--trials 2, ~4x slower)")
    ap.add_argument("--trial-timeout-seconds", type=float, default=1.0)
    ap.add_argument("--agent-timeout-seconds", type=float, default=2.0)
    ap.add_argument("--kill-within", type=float, default=5.0, metavar="S",
                    help="signals land within S seconds of a command's start (default 5)")
    ap.add_argument("--signals", default="KILL,TERM,INT", metavar="KILL,TERM,INT",
                    help="the signals sent to ratchet (default all three)")
    ap.add_argument("--skip-actions", default="", metavar="A,B",
                    help=f"agent actions left out (of: {', '.join(WEIGHTS)})")
    ap.add_argument("--keep", action="store_true", help="leave the throwaway repository for a look")
    ap.add_argument("--verbose", action="store_true", help="one line per command")
    a = ap.parse_args()
    a.skip = [x for x in a.skip_actions.split(",") if x]
    a.signal_names = [x.strip().upper().removeprefix("SIG") for x in a.signals.split(",") if x.strip()]
    unknown = sorted(set(a.skip) - set(WEIGHTS)) + sorted(set(a.signal_names) - set(SIGNALS))
    if unknown or a.iterations < 1:
        ap.error(f"unknown action or signal {unknown[0]}" if unknown else "--iterations must be at least 1")
    # A shell starts background jobs with SIGINT ignored, and an ignored signal stays ignored
    # across exec: ratchet would never see the soak's SIGINTs. Handlers are reset by exec.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if not os.path.isdir("/proc"):
        print("soak: needs Linux (/proc) for the stray-process scan", file=sys.stderr)
        return 2
    soak = Soak(a)
    try:
        failed = soak.report(soak.run())
    finally:
        soak.kill_all(soak.strays())
        if a.keep:
            print(f"kept: {soak.tmp}")
        else:
            shutil.rmtree(soak.tmp, ignore_errors=True)
    if failed:
        print(f"soak: FAILED: {', '.join(failed)}")
        return 1
    print("soak: every invariant held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
