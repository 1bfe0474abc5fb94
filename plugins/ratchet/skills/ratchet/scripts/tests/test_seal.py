"""The run's contract is sealed (issue 15 point 2, ratchetlib/seal.py).

Black-box: ratchet.py runs as a subprocess in a user's default environment
on throwaway repositories; a forger rewrites `.ratchet/` files the way an
agent's Bash or a trial's code would (plain file writes, no key)."""

import json
import os
import pty
import subprocess
import tempfile
import time
import unittest
import unittest.mock

from tests.util import PY, RATCHET, TRIAL_PY, git, make_repo, read, write

# The run command touches a marker named by the forger; a forged command would too.
BENCH = "print('score:', open('value.txt').read().strip())\n"
MEAN = ["--decision", "mean", "--trials", "1"]


def user_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}
    env.update(extra)
    return env


def key_dir():
    return os.path.join(os.environ["XDG_STATE_HOME"], "ratchet", "keys")


def forge(repo, name, change):
    """Rewrite .ratchet/NAME as an agent would: parse, change, write back (the seal left as it was)."""
    path = os.path.join(repo, ".ratchet", name)
    with open(path) as f:
        obj = json.load(f)
    change(obj)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def make_legacy(repo):
    """Turn a run into one started before sealing: no seal in any file, no key."""
    root = os.path.join(repo, ".ratchet")
    run_id = json.loads(read(repo, ".ratchet/config.json"))["run_id"]
    for name in ("config.json", "state.json", "harness.json", "loop.json", "current.json"):
        if os.path.exists(os.path.join(root, name)):
            forge(repo, name, lambda o: o.pop("seal", None))
    lines = [json.loads(l) for l in read(repo, ".ratchet/results.jsonl").splitlines()]
    write(repo, ".ratchet/results.jsonl", "".join(json.dumps({k: v for k, v in r.items() if k != "seal"}) + "\n"
                                                  for r in lines))
    os.unlink(os.path.join(key_dir(), run_id))


class SealTest(unittest.TestCase):
    def setUp(self):
        self.repo = make_repo(self, {"bench.py": BENCH, "value.txt": "10\n"})
        self.marker = os.path.join(os.path.dirname(self.repo), "forged-command-ran")

    def ratchet(self, *argv, env=None, stdin=None):
        p = subprocess.run([PY, RATCHET, *argv], cwd=self.repo, env=env or user_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120, stdin=stdin or subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr

    def ok(self, *argv):
        code, out, err = self.ratchet(*argv)
        self.assertEqual(code, 0, f"{argv}: {err}{out}")
        return out + err

    def refused(self, *argv, names):
        code, out, err = self.ratchet(*argv)
        self.assertEqual(code, 2, f"{argv}: {err}{out}")
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertTrue(err.startswith("ratchet: error: "), err)
        self.assertIn(names, err)
        self.assertNotIn("Traceback", err)
        return err

    def start(self, *extra):
        self.ok("init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name", "score",
                "--report-source", "stdout", *MEAN, *extra)
        self.ok("baseline")

    def sneaky(self):
        return f"touch {self.marker}; {TRIAL_PY} bench.py"

    # --- changed between commands ----------------------------------------------------
    def test_a_rewritten_run_command_never_runs(self):
        self.start()
        forge(self.repo, "config.json", lambda c: c.update(run_command=self.sneaky()))
        self.set(20)
        err = self.refused("iterate", "--hypothesis", "h", names=".ratchet/config.json")
        self.assertIn("was changed outside ratchet", err)
        self.assertFalse(os.path.exists(self.marker))
        for verb in (["status"], ["baseline"], ["verify"], ["stop"]):
            self.refused(*verb, names=".ratchet/config.json")
        self.assertFalse(os.path.exists(self.marker))
        self.assertEqual(read(self.repo, "value.txt"), "20\n")  # the candidate is untouched

    def test_every_contract_field_is_sealed(self):
        self.start()
        for change in (lambda c: c.update(guard_command=self.sneaky()), lambda c: c.update(trials=1000),
                       lambda c: c.update(direction="min"), lambda c: c["protect"].remove("bench.py"),
                       lambda c: c.update(editable=["."]), lambda c: c.update(alpha=0.99)):
            before = read(self.repo, ".ratchet/config.json")
            forge(self.repo, "config.json", change)
            self.refused("iterate", "--hypothesis", "h", names=".ratchet/config.json")
            write(self.repo, ".ratchet/config.json", before)  # putting the approved version back is the fix
        self.set(20)
        self.assertIn("KEEP", self.ok("iterate", "--hypothesis", "h"))

    def test_a_forged_incumbent_score_or_baseline(self):
        self.start()
        for change in (lambda s: s.update(incumbent_score=1.0), lambda s: s.update(baseline=0.5),
                       lambda s: s.update(stop=None, iteration=-1), lambda s: s.pop("seal")):
            before = read(self.repo, ".ratchet/state.json")
            forge(self.repo, "state.json", change)
            self.refused("iterate", "--hypothesis", "h", names=".ratchet/state.json")
            write(self.repo, ".ratchet/state.json", before)
        os.unlink(os.path.join(self.repo, ".ratchet", "state.json"))
        err = self.refused("status", names=".ratchet/state.json")
        self.assertIn("is missing", err)

    def test_forged_harness_hashes_hide_no_tampering(self):
        self.start()
        write(self.repo, "bench.py", "print('score: 1000')\n")
        git(self.repo, "commit", "-qam", "a better benchmark")
        import hashlib
        sha = hashlib.sha256(b"print('score: 1000')\n").hexdigest()
        forge(self.repo, "harness.json", lambda h: h["files"]["bench.py"].update(sha256=sha, size=21, stat=None))
        self.refused("iterate", "--hypothesis", "h", names=".ratchet/harness.json")
        os.unlink(os.path.join(self.repo, ".ratchet", "harness.json"))
        self.refused("iterate", "--hypothesis", "h", names=".ratchet/harness.json")

    def test_forged_git_configuration_pins(self):
        """gitguard.json's digest is sealed in harness.json: a change to
        .git/config made together with its pin is refused, as is a deleted
        pin file; putting the pins back is the fix."""
        self.start()
        pins = read(self.repo, ".ratchet/gitguard.json")
        config = read(self.repo, ".git/config") + "[ratchet]\n\tforged = 1\n"
        write(self.repo, ".git/config", config)
        import hashlib
        sha = hashlib.sha256(config.encode()).hexdigest()
        forge(self.repo, "gitguard.json", lambda g: g["files"][".git/config"].update(sha256=sha, size=len(config),
                                                                                       stat=None, copy=False))
        err = self.refused("iterate", "--hypothesis", "h", names=".ratchet/gitguard.json")
        self.assertIn("does not match the digest harness.json seals", err)
        os.unlink(os.path.join(self.repo, ".ratchet", "gitguard.json"))
        self.assertIn("is missing", self.refused("iterate", "--hypothesis", "h", names=".ratchet/gitguard.json"))
        write(self.repo, ".ratchet/gitguard.json", pins)
        self.set(20)
        out = self.ok("iterate", "--hypothesis", "h")
        self.assertIn("TAMPERED", out)  # the pins as ratchet wrote them see the edit of .git/config
        self.assertNotIn("forged", read(self.repo, ".git/config"))  # and put the file back

    def test_forged_in_progress_iteration_and_record(self):
        self.start()
        self.set(20)
        decided = {"format": 1, "iter": 1, "phase": "decided", "candidate": {"tracked": ["value.txt"], "new": []},
                   "decision": {"iter": 1, "decision": "keep", "kept": True, "avg": 99.0, "reason": "forged"}}
        write(self.repo, ".ratchet/current.json", json.dumps(decided))
        self.refused("status", names=".ratchet/current.json")
        os.unlink(os.path.join(self.repo, ".ratchet", "current.json"))
        git(self.repo, "commit", "-qam", "unmeasured")
        head = git(self.repo, "rev-parse", "HEAD").strip()
        with open(os.path.join(self.repo, ".ratchet", "results.jsonl"), "a") as f:
            f.write(json.dumps({"format": 1, "iter": 1, "decision": "keep", "kept": True, "avg": 99.0,
                                "sha": head, "reason": "forged"}) + "\n")
        err = self.refused("iterate", "--hypothesis", "h", names=".ratchet/results.jsonl")
        self.assertIn("iteration 1", err)
        self.assertNotEqual(json.loads(read(self.repo, ".ratchet/state.json"))["incumbent_score"], 99.0)

    def test_a_resumed_loop_refuses_a_rewritten_agent_command_or_budget(self):
        agent = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin_agent.py")
        plan = os.path.join(os.path.dirname(self.repo), "plan.json")
        with open(plan, "w") as f:
            json.dump({"default": {"write": {"value.txt": "11\n"}}}, f)
        self.start()
        code, out, err = self.ratchet("loop", "--agent-command", f"{TRIAL_PY} {agent} {plan}", "--max-wall-seconds", "0.001")
        self.assertEqual(code, 3, err + out)
        for change in (lambda l: l.update(agent_command=self.sneaky()), lambda l: l.update(max_agent_cost_usd=1e9),
                       lambda l: l.update(max_wall_seconds=None)):
            before = read(self.repo, ".ratchet/loop.json")
            forge(self.repo, "loop.json", change)
            self.refused("loop", names=".ratchet/loop.json")
            self.assertFalse(os.path.exists(self.marker))
            write(self.repo, ".ratchet/loop.json", before)
        # flags given to `loop` are how its settings legitimately change
        code, out, err = self.ratchet("loop", "--max-wall-seconds", "0.002")
        self.assertEqual(code, 3, err + out)
        self.assertEqual(json.loads(read(self.repo, ".ratchet/loop.json"))["max_wall_seconds"], 0.002)

    def test_chain_still_changes_settings(self):
        self.start()
        self.set(20)
        self.ok("iterate", "--hypothesis", "h")
        self.ok("stop")
        self.ok("chain", "--rationale", "more trials", "--trials", "3")
        self.assertEqual(json.loads(read(self.repo, ".ratchet/config.json"))["trials"], 3)
        self.ok("baseline")
        self.set(30)
        self.assertIn("KEEP", self.ok("iterate", "--hypothesis", "h2"))
        self.ok("history", "--all")

    # --- changed while a command runs -------------------------------------------------
    def test_a_trial_that_rewrites_the_config_is_tampered_and_undone(self):
        # the benchmark runs an optional plugin module: a candidate can add one that rewrites ratchet's config
        write(self.repo, "bench.py", "import os\nos.path.exists('plugin.py') and exec(open('plugin.py').read())\n" + BENCH)
        git(self.repo, "commit", "-qam", "plugins")
        self.start("--protect", "bench.py")
        approved = read(self.repo, ".ratchet/config.json")
        write(self.repo, "plugin.py", "import json\np = '.ratchet/config.json'\nc = json.load(open(p))\n"
              f"c['run_command'] = {self.sneaky()!r}\njson.dump(c, open(p, 'w'))\n")
        out = self.ok("iterate", "--hypothesis", "a plugin")
        self.assertIn("TAMPERED", out)
        self.assertIn(".ratchet/config.json (edited)", out)
        self.assertEqual(read(self.repo, ".ratchet/config.json"), approved)
        self.assertFalse(os.path.exists(os.path.join(self.repo, "plugin.py")))  # the candidate was reverted
        self.set(30)
        self.assertIn("KEEP", self.ok("iterate", "--hypothesis", "a real change"))
        self.assertFalse(os.path.exists(self.marker))

    def test_an_agent_that_rewrites_the_loop_settings_is_tampered(self):
        agent = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin_agent.py")
        plan = os.path.join(os.path.dirname(self.repo), "plan.json")
        with open(plan, "w") as f:
            json.dump({"1": {"write": {"value.txt": "20\n", ".ratchet/loop.json":
                                       json.dumps({"agent_command": self.sneaky(), "max_agent_cost_usd": 1e9})}},
                       "default": {"write": {"value.txt": "30\n"}}}, f)
        self.start("--iterations", "2")
        code, out, err = self.ratchet("loop", "--agent-command", f"{TRIAL_PY} {agent} {plan}")
        self.assertEqual(code, 0, err + out)
        self.assertIn("iter 1: TAMPERED", out)
        self.assertIn("iter 2: KEEP", out)
        self.assertFalse(os.path.exists(self.marker))
        self.assertEqual(json.loads(read(self.repo, ".ratchet/loop.json"))["agent_command"], f"{TRIAL_PY} {agent} {plan}")

    # --- runs from before sealing, other machines, reseal ----------------------------------
    def test_a_run_from_before_sealing_is_sealed_once_and_then_checked(self):
        self.start()
        self.set(20)
        self.ok("iterate", "--hypothesis", "h")
        make_legacy(self.repo)
        out = self.ok("status")
        self.assertIn("sealed this run's contract", out)
        self.assertNotIn("sealed this run's contract", self.ok("status"))  # said once
        self.set(30)
        self.assertIn("KEEP", self.ok("iterate", "--hypothesis", "h2"))
        forge(self.repo, "config.json", lambda c: c.update(run_command=self.sneaky()))
        self.refused("iterate", "--hypothesis", "h", names=".ratchet/config.json")
        self.assertFalse(os.path.exists(self.marker))

    def test_stripping_the_seals_does_not_make_a_run_look_old(self):
        self.start()
        forge(self.repo, "config.json", lambda c: (c.pop("seal"), c.update(run_command=self.sneaky())))
        err = self.refused("iterate", "--hypothesis", "h", names=".ratchet/config.json")
        self.assertIn("has no seal but this run is sealed", err)

    def test_a_missing_key_and_reseal_at_a_terminal(self):
        self.start()
        run_id = json.loads(read(self.repo, ".ratchet/config.json"))["run_id"]
        os.rename(os.path.join(key_dir(), run_id), os.path.join(key_dir(), "elsewhere"))
        err = self.refused("status", names=os.path.join(key_dir(), run_id))
        self.assertIn("ratchet.py reseal", err)
        err = self.refused("reseal", names="at a terminal")  # no TTY: a script or an agent cannot confirm it
        self.assertEqual(self.reseal_at_a_terminal("wrong-id")[0], 2)
        self.refused("status", names="is not on this machine")
        code, out = self.reseal_at_a_terminal(run_id)
        self.assertEqual(code, 0, out)
        self.assertIn(f"run command: {TRIAL_PY} bench.py", out)
        self.assertIn("resealed config.json, state.json, harness.json", out)
        self.set(20)
        self.assertIn("KEEP", self.ok("iterate", "--hypothesis", "h"))
        self.assertEqual(oct(os.stat(os.path.join(key_dir(), run_id)).st_mode & 0o777), "0o600")
        self.assertEqual(oct(os.stat(key_dir()).st_mode & 0o777), "0o700")

    def reseal_at_a_terminal(self, answer):
        """`reseal` with a pseudo-terminal on stdin and stdout, typing `answer`."""
        pid, fd = pty.fork()
        if pid == 0:
            os.chdir(self.repo)
            os.execve(PY, [PY, RATCHET, "reseal"], user_env())
        out, sent = b"", False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if not sent and b"to trust these files" in out:
                os.write(fd, answer.encode() + b"\n")
                sent = True
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace")

    def set(self, v):
        write(self.repo, "value.txt", f"{v}\n")


class SealDigest(unittest.TestCase):
    """The seal's HMAC is built on the interpreter's own SHA-256 (no OpenSSL
    load on every command, issue 18): it must be hmac.new's, byte for byte."""

    def test_same_digest_as_the_hmac_module(self):
        import hashlib
        import hmac
        from ratchetlib.io import seal
        for key in (b"", b"k", os.urandom(32), os.urandom(64), os.urandom(65), os.urandom(200)):
            for msg in (b"", b"x", b"\0".join((b"ratchet-seal-1", b"run", b"state.json", os.urandom(5000)))):
                self.assertEqual(seal.hmac_sha256(key, msg), hmac.new(key, msg, hashlib.sha256).hexdigest())

    def test_the_compare_is_hmacs_constant_time_one(self):
        import hmac
        from ratchetlib.io import seal
        for a, b in (("ab", "ab"), ("ab", "ac"), ("", ""), ("a", "ab")):
            self.assertEqual(seal.compare_digest(a, b), hmac.compare_digest(a, b))



class SealBytes(unittest.TestCase):
    """A sealed file is written with one dump and checked without dumping it
    again (issue 18: json's indented encoder is pure Python), and means the
    same as the two-dump form it replaces: the bytes, and what verifies."""

    def setUp(self):
        from ratchetlib.io import seal
        self.seal = seal
        self.root = tempfile.mkdtemp(prefix="ratchet-sealbytes-")
        self.addCleanup(__import__("shutil").rmtree, self.root, True)
        self.key = os.urandom(32)
        patch = unittest.mock.patch.object(seal, "key_for", return_value=("run-1", self.key))
        patch.start()
        self.addCleanup(patch.stop)

    def two_dumps(self, obj):
        from ratchetlib.core import seal_format
        body = seal_format.dumps(obj)
        return seal_format.dumps({**obj, "seal": seal_format.mac(self.key, "run-1", "state.json", body)})

    def test_the_bytes_are_the_two_dump_form(self):
        for obj in ({"format": 1, "a": [1, 2.5, {"b": None}], "c": "caf\u00e9"}, {"x": {}}, {}):
            self.assertEqual(self.seal.dump(obj, "state.json", "run-1", self.key), self.two_dumps(obj))

    def test_what_verifies_is_unchanged(self):
        obj = {"format": 1, "best": 2.0, "trials": [{"k": 1}]}
        raw = self.seal.dump(obj, "state.json", "run-1", self.key)
        from ratchetlib.core import seal_format
        with unittest.mock.patch.object(seal_format, "dumps", side_effect=AssertionError("dumped again")):
            self.assertEqual(self.seal.verify(self.root, "state.json", raw, json.loads(raw)), obj)
        self.seal.forget(self.root)
        relaid = (json.dumps(json.loads(raw), indent=4) + "\n").encode()  # re-indented by hand: the slow path
        self.assertEqual(self.seal.verify(self.root, "state.json", relaid, json.loads(relaid)), obj)
        self.seal.forget(self.root)
        forged = raw.replace(b'"best": 2.0', b'"best": 9.0')
        with self.assertRaises(self.seal.SealError):
            self.seal.verify(self.root, "state.json", forged, json.loads(forged))
        tail_moved = raw.replace(b'"trials"', b'"seal2": 1, "trials"')
        with self.assertRaises(self.seal.SealError):
            self.seal.verify(self.root, "state.json", tail_moved, json.loads(tail_moved))


if __name__ == "__main__":
    unittest.main()
