"""Every `--report-source` kind through the real CLI: init, baseline, a keep,
then a trial that writes nothing, a corrupt file and an old (stale) file, each
of which must be a crash, never a score."""

import inspect
import json
import os
import time
import unittest

from tests import test_sources as ts
from tests.util import RepoTest, TRIAL_PY, git, write

# Each writer is the body of `write(x, corrupt)` in the benchmark: x is the
# score to log; corrupt asks for a damaged file. It returns the path written.
WRITERS = {
    "json": """
    os.makedirs('out', exist_ok=True)
    body = '{"eval": {"score": ' if corrupt else json.dumps({"eval": {"score": x, "loss": 1.0}})
    open('out/metrics.json', 'w').write(body)
    return 'out/metrics.json'
""",
    "jsonl": """
    with open('metrics.jsonl', 'w') as f:
        f.write('{"step": 1, "score": 1.0}\\n')
        f.write('garbage\\n{"step": 2}\\n' if corrupt else json.dumps({"step": 2, "score": x}) + '\\n')
    return 'metrics.jsonl'
""",
    "csv": """
    rows = 'step,score\\n1,2,3\\n2,5\\n' if corrupt else 'step,score\\n1,1.0\\n2,%r\\n3,\\n' % x
    open('log.csv', 'w').write(rows)
    return 'log.csv'
""",
    "hf": """
    os.makedirs('out', exist_ok=True)
    history = [{"loss": 2.0, "step": 5}, {"eval_score": x - 1, "step": 10}, {"eval_score": x, "step": 20}]
    body = '{"log_history": [' if corrupt else json.dumps({"log_history": history, "global_step": 20})
    open('out/trainer_state.json', 'w').write(body)
    return 'out/trainer_state.json'
""",
    "wandb": """
    run = 'wandb/run-%s-%s' % (time.strftime('%Y%m%d_%H%M%S'), os.urandom(3).hex())
    os.makedirs(run + '/files')
    body = '{"score": ' if corrupt else json.dumps({"score": x, "_step": 3})
    open(run + '/files/wandb-summary.json', 'w').write(body)
    if os.path.lexists('wandb/latest-run'):
        os.remove('wandb/latest-run')
    os.symlink(os.path.basename(run), 'wandb/latest-run')
    return run + '/files/wandb-summary.json'
""",
    "tensorboard": """
    folder = 'runs/%d' % time.time_ns()
    os.makedirs(folder)
    data = record(event(time.time(), 0, file_version='brain.Event:2'))
    data += record(event(time.time(), 1, simple_value('score', x - 1)))
    last = record(event(time.time() + 1, 2, simple_value('score', x)))
    if corrupt:
        last = last[:-1] + bytes([last[-1] ^ 0xFF])
    path = folder + '/events.out.tfevents.%d.host' % time.time()
    open(path, 'wb').write(data + last)
    return path
""",
    "lightning": """
    n = len([d for d in os.listdir('lightning_logs')]) if os.path.isdir('lightning_logs') else 0
    folder = 'lightning_logs/version_%d' % n
    os.makedirs(folder)
    rows = 'epoch,step,score\\n0,1,2,3\\n0,2,1\\n' if corrupt else 'epoch,step,score,train_loss\\n0,1,,0.5\\n0,2,%r,\\n' % x
    open(folder + '/metrics.csv', 'w').write(rows)
    return folder + '/metrics.csv'
""",
}

SPECS = {
    "json": "json:out/metrics.json#eval.score",
    "jsonl": "jsonl:metrics.jsonl",
    "csv": "csv:log.csv#score",
    "hf": "hf:out#score@last",
    "wandb": "wandb:wandb",
    "tensorboard": "tensorboard:runs/**/events.out.tfevents.*",
    "lightning": "lightning:lightning_logs#score",
}

TB_HELPERS = "\n".join(inspect.getsource(f) for f in (
    ts._varint, ts._field, ts.simple_value, ts.event, ts._crc32c_bitwise, ts._masked, ts.record))


def bench(kind: str) -> str:
    """value.txt says what to do: a number, `skip`, `corrupt`, `nan`, or `old:N` (write N, back-dated)."""
    return ("import json, os, struct, sys, time\n" + TB_HELPERS + "\n\ndef write(x, corrupt):" + WRITERS[kind]
            + """
v = open('value.txt').read().strip()
if v == 'skip':
    print('wrote nothing')
    sys.exit(0)
old = v.startswith('old:')
path = write(float(v[4:] if old else (0 if v == 'corrupt' else v)), v == 'corrupt')
if old:
    t = time.time() - 3600
    os.utime(path, (t, t))
print('wrote', path)
""")


class EverySourceThroughTheCli(RepoTest):
    def check_kind(self, kind):
        self.repo = self.repo  # noqa: keep the base repo
        write(self.repo, "bench.py", bench(kind))
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", f"{kind} bench")
        self.run_ok("init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name", "score",
                    "--report-source", SPECS[kind], "--protect", "bench.py", "--max-consecutive-crashes", "9")
        self.assertIn("baseline: score 10", self.run_ok("baseline"))
        self.set_value(12)
        out = self.run_ok("iterate", "--hypothesis", "valid file")
        self.assertIn("iter 1: KEEP", out)
        trial = self.records()[-1]["trials"][0]
        with open(os.path.join(self.repo, ".ratchet", trial["report"]), "rb") as f:
            copied = f.read()
        self.assertTrue(copied, "the file read was not copied as the trial's report")
        self.assertEqual(trial["source_status"], "ok")
        expected = {"skip": ("missing", "stale"), "corrupt": ("corrupt",), "old:50": ("stale",)}
        for value, statuses in expected.items():
            self.set_value(value)
            out = self.run_ok("iterate", "--hypothesis", value)
            rec = self.records()[-1]
            self.assertEqual(rec["decision"], "crash", f"{kind} {value}: {out}")
            self.assertIsNone(rec["avg"])
            self.assertEqual(rec["trials"][0]["status"], "no-metric")
            self.assertIn(rec["trials"][0]["source_status"], statuses, f"{kind} {value}: {rec['reason']}")
        self.assertEqual(self.state()["best"], 12.0)

    def test_json(self):
        self.check_kind("json")

    def test_jsonl(self):
        self.check_kind("jsonl")

    def test_csv(self):
        self.check_kind("csv")

    def test_hf(self):
        self.check_kind("hf")

    def test_wandb(self):
        self.check_kind("wandb")

    def test_tensorboard(self):
        self.check_kind("tensorboard")

    def test_lightning(self):
        self.check_kind("lightning")


class SourceDetailsTest(RepoTest):
    def setUp(self):
        super().setUp()
        write(self.repo, "bench.py", bench("jsonl"))
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", "jsonl bench")

    def init(self, *extra):
        return self.run_ok("init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name", "score",
                           "--report-source", "jsonl:metrics.jsonl", "--protect", "bench.py", *extra)

    def test_not_finite_is_its_own_status(self):
        self.init()
        self.run_ok("baseline")
        self.set_value("nan")
        self.assertIn("CRASH", self.run_ok("iterate", "--hypothesis", "nan"))
        self.assertEqual(self.records()[-1]["trials"][0]["status"], "not-finite")

    def test_source_path_is_protected_and_users_old_file_is_kept(self):
        write(self.repo, "metrics.jsonl", '{"score": 999}\n')  # the user's own, untracked, old log
        out = self.init("--decision", "mean")  # one trial per iteration: `stale-` is the agent's log below
        self.assertIn("metrics.jsonl", out.split("protected:")[1].splitlines()[0])
        self.assertIn("baseline: score 10", self.run_ok("baseline"))
        with open(os.path.join(self.repo, ".ratchet", "reports", "original-metrics.jsonl")) as f:
            self.assertEqual(f.read(), '{"score": 999}\n')
        # A log written between trials (by the agent, say) is moved aside, never read.
        write(self.repo, "metrics.jsonl", '{"score": 1000}\n')
        self.set_value(11)
        self.assertIn("iter 1: KEEP  score 11 vs 10", self.run_ok("iterate", "--hypothesis", "edits the log"))
        with open(os.path.join(self.repo, ".ratchet", "reports", "stale-metrics.jsonl")) as f:
            self.assertEqual(f.read(), '{"score": 1000}\n')
        with open(os.path.join(self.repo, ".ratchet", "reports", "original-metrics.jsonl")) as f:
            self.assertEqual(f.read(), '{"score": 999}\n')


    def test_consecutive_trials_never_read_each_others_output(self):
        # Trial 1 writes, trial 2 writes nothing: trial 2 must not score trial 1's file,
        # however quickly it starts (the file is moved aside and trials are spaced by MTIME_SLACK).
        write(self.repo, "bench.py", "import os\nif os.path.exists('flag'):\n    os.remove('flag')\n"
              "else:\n    open('flag', 'w').close()\n    open('metrics.jsonl', 'w').write('{\"score\": 5}\\n')\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", "alternating bench")
        self.init("--trials", "2")
        err = self.run_fail("baseline")
        self.assertIn("trial 2", err)
        self.assertIn("does not exist", err)

    def test_a_fake_run_folder_planted_by_the_agent_is_tampering(self):
        write(self.repo, "bench.py", bench("wandb"))
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", "wandb bench")
        self.run_ok("init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name", "score",
                    "--report-source", "wandb:wandb", "--protect", "bench.py")
        self.run_ok("baseline")
        write(self.repo, "wandb/run-29991231_000000-fake/files/wandb-summary.json", '{"score": 1e9}')
        self.set_value(11)
        out = self.run_ok("iterate", "--hypothesis", "plant a result")
        self.assertIn("TAMPERED", out)
        self.assertFalse(os.path.exists(os.path.join(self.repo, "wandb", "run-29991231_000000-fake")))

    def test_a_tracked_report_file_is_refused_at_init(self):
        # Each trial rewrites it: committed, it would read as an edit of a protected file every other iteration.
        for spec, rel in (("jsonl:metrics.jsonl", "metrics.jsonl"), ("report.txt", "report.txt"),
                          ("lightning:logs", "logs/version_0/metrics.csv")):
            with self.subTest(spec=spec):
                write(self.repo, rel, "score: 1\n")
                git(self.repo, "add", rel)
                git(self.repo, "commit", "-qm", "tracked log")
                err = self.run_fail("init", "--run-command", "true", "--direction", "max", "--metric-name", "score",
                                    "--report-source", spec)
                self.assertIn(f"git tracks ({rel})", err)
                git(self.repo, "rm", "-q", "--cached", rel)
                git(self.repo, "commit", "-qm", "untrack")
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "config.json")))

    def test_invalid_specs_are_one_line_usage_errors(self):
        for spec, fragment in (("yaml:x.yaml", "unknown report source kind"), ("json:", "names no path"),
                               ("jsonl:m.jsonl#", "empty key"), ("wandb:.", "whole repository"),
                               ("hf:out@worst", "unknown selector"), ("json:/etc/x.json", "relative")):
            with self.subTest(spec=spec):
                err = self.run_fail("init", "--run-command", "true", "--direction", "max", "--metric-name", "score",
                                    "--report-source", spec)
                self.assertIn(fragment, err)
        self.assertFalse(os.path.exists(os.path.join(self.repo, ".ratchet", "config.json")))

    def test_plain_file_named_like_a_kind(self):
        write(self.repo, "bench.py", "open('r:1.txt', 'w').write('score: %s' % open('value.txt').read())\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", "odd name")
        self.run_ok("init", "--run-command", f"{TRIAL_PY} bench.py", "--direction", "max", "--metric-name", "score",
                    "--report-source", "./r:1.txt", "--protect", "bench.py")
        with open(os.path.join(self.repo, ".ratchet", "config.json")) as f:
            self.assertEqual(json.load(f)["report_source"], "./r:1.txt")
        self.assertIn("baseline: score 10", self.run_ok("baseline"))


class SettleTest(unittest.TestCase):
    def test_settle_waits_out_the_slack_only(self):
        from ratchetlib.measure import capture
        from ratchetlib.measure import reading
        ended = time.time()
        capture.wait_until_stale(ended, None)
        self.assertGreater(time.time(), ended + reading.MTIME_SLACK)
        t0 = time.monotonic()
        capture.wait_until_stale(time.time() - 10, None)
        self.assertLess(time.monotonic() - t0, 0.01)


class ToMoveTest(unittest.TestCase):
    """capture.to_move: untracked reports go aside before a trial, tracked
    ones stay; the tree carry.watch read answers for the files it lists
    untracked, so only the others cost a git process (issue 18)."""

    def test_the_tree_answers_for_untracked_files_and_git_once_for_the_rest(self):
        from unittest import mock
        from ratchetlib.core import sourcespec
        from ratchetlib.io import carry, gitops
        from ratchetlib.measure import capture
        from tests.util import make_repo
        repo = make_repo(self, {"tracked.txt": "score: 1\n", ".gitignore": "ignored.txt\n"})
        write(repo, "untracked.txt", "score: 2\n")
        write(repo, "ignored.txt", "score: 3\n")
        tree = carry.tree(repo)
        calls = []
        real = gitops.git

        def counted(r, *args):
            calls.append(args)
            return real(r, *args)
        with mock.patch.object(gitops, "git", counted):
            for rel, moved in (("untracked.txt", True), ("ignored.txt", True), ("tracked.txt", False)):
                src = sourcespec.parse_source(rel)
                calls.clear()
                self.assertEqual(capture.to_move(repo, src, tree), [rel] if moved else [], rel)
                self.assertEqual(len(calls), 0 if moved else 1, rel)
                self.assertEqual(capture.to_move(repo, src), [rel] if moved else [], rel)  # git alone agrees


if __name__ == "__main__":
    unittest.main()
