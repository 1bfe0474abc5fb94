"""`ratchet.py detect` on fixture projects: what it finds, and that its proposal starts a run."""

import json
import os
import shlex
import shutil
import tempfile
import time
import unittest
from unittest import mock

from ratchetlib.verbs import detect, detect_names
from ratchetlib.core import sourcespec
from tests import test_sources as ts
from tests.util import cli, make_repo, write

TRAIN = "import json\n\nif __name__ == '__main__':\n    print('val_loss: 0.5')\n"


def tools(make=True, npm=True, pytest=True):
    """detect as if exactly these tools were installed (detect runs in-process through `cli`)."""
    return mock.patch.object(detect, "_tools", lambda: {"make": make, "npm": npm, "pytest": pytest})


class DetectTest(unittest.TestCase):
    def detect_json(self, repo):
        code, out, err = cli("detect", "--json", cwd=repo)
        self.assertEqual(code, 0, err)
        return json.loads(out)

    def test_ml_project_with_every_tracker(self):
        repo = make_repo(self, {"train.py": TRAIN, "eval.py": TRAIN, "model.py": "import wandb\nwandb.init()\n"})
        # tracker output is untracked, as trainers' logs are
        write(repo, "metrics.jsonl", '{"epoch": 1, "val_loss": 0.9}\n{"epoch": 2, "val_loss": 0.5, "val_acc": 0.8}\n')
        write(repo, "logs/results.csv", "step,val_accuracy,lr\n1,0.5,0.1\n2,0.7,0.1\n")
        write(repo, "wandb/run-20240101_000000-abc/files/wandb-summary.json",
              '{"val/loss": 0.4, "_step": 3, "_runtime": 1.0}')
        write(repo, "lightning_logs/version_0/metrics.csv", "epoch,step,val_f1\n0,1,0.3\n")
        write(repo, "out/checkpoint-10/trainer_state.json",
              json.dumps({"log_history": [{"loss": 1.0, "step": 5}, {"eval_loss": 0.7, "step": 10}]}))
        os.makedirs(os.path.join(repo, "runs", "exp1"))
        with open(os.path.join(repo, "runs", "exp1", "events.out.tfevents.1.host"), "wb") as f:
            f.write(ts.event_file([ts.event(time.time(), 1, ts.simple_value("train/loss", 0.3))]))
        report = self.detect_json(repo)
        trackers = {t["source"]: t["metrics"] for t in report["trackers"]}
        self.assertEqual(trackers, {
            "csv:logs/results.csv": ["val_accuracy"],
            "hf:out": ["eval_loss", "loss"],
            "jsonl:metrics.jsonl": ["val_loss", "val_acc"],
            "lightning:lightning_logs": ["val_f1"],
            "tensorboard:runs": ["train/loss"],
            "wandb:wandb": ["val/loss"],
        })
        for spec in trackers:  # every proposed source is one ratchet accepts
            self.assertTrue(sourcespec.parse_source(spec).structured, spec)
        self.assertEqual(report["entry_points"], ["train.py", "eval.py"])
        self.assertEqual(report["code_trackers"], [{"kind": "wandb", "file": "model.py"}])
        by_name = {m["name"]: m for m in report["metrics"]}
        self.assertEqual(by_name["val_loss"]["direction"], "min")
        self.assertEqual(by_name["val_accuracy"]["direction"], "max")
        self.assertEqual(by_name["val_f1"]["direction"], "max")
        flags = report["proposal"]["flags"]
        self.assertEqual((flags["run_command"], flags["metric_name"], flags["direction"]),
                         ("python3 train.py", "eval_loss", "min"))
        self.assertEqual(flags["report_source"], "hf:out#eval_loss")
        # The same files give the same answer, byte for byte.
        self.assertEqual(self.detect_json(repo), report)
        # The proposal is a complete, valid init.
        code, out, err = cli("init", *shlex.split(report["proposal"]["args"]), cwd=repo)
        self.assertEqual(code, 0, err)
        self.assertIn("out", out.split("protected:")[1].splitlines()[0])

    def test_node_project(self):
        repo = make_repo(self, {"package.json": json.dumps({"scripts": {"lint": "x", "test": "jest", "bench": "node b.js"}}),
                                "b.js": "console.log('ops_per_sec: 5')\n"})
        with tools(npm=True):
            report = self.detect_json(repo)
        self.assertEqual(report["targets"]["npm"], ["bench", "lint", "test"])
        self.assertEqual([c["command"] for c in report["commands"]], ["npm run bench", "npm run test"])
        self.assertEqual(report["metrics"], [{"name": "ops_per_sec", "direction": "max", "source": "stdout",
                                              "seen_in": "b.js"}])
        self.assertEqual(report["proposal"]["flags"], {"run_command": "npm run bench", "direction": "max",
                                                       "metric_name": "ops_per_sec", "report_source": "stdout",
                                                       "trials": 3})
        with tools(npm=False):  # npm is not installed: no npm command is suggested
            report = self.detect_json(repo)
        self.assertEqual((report["commands"], report["proposal"]), ([], None))
        self.assertIn("no benchmark or training command found: which command prints or logs the metric?",
                      report["questions"])

    def test_any_printed_name_value_line_gives_complete_flags(self):
        bench = ("import sys, time\n\ndef main():\n    t = time.perf_counter()\n"
                 "    ms = (time.perf_counter() - t) * 1000\n    print(f\"wall_ms: {ms:.3f}\")\n\n"
                 "if __name__ == '__main__':\n    main()\n")
        repo = make_repo(self, {"bench.py": bench, "sol.py": "X = 1\n", "train_helper.py": "print('hello')\n"})
        report = self.detect_json(repo)
        self.assertEqual(report["metrics"][0], {"name": "wall_ms", "direction": "min", "source": "stdout",
                                                "seen_in": "bench.py"})
        flags = report["proposal"]["flags"]
        self.assertEqual(flags, {"run_command": "python3 bench.py", "direction": "min", "metric_name": "wall_ms",
                                 "report_source": "stdout", "trials": 3})
        self.assertNotIn("missing", report["proposal"])
        code, out, err = cli("init", *shlex.split(report["proposal"]["args"]), cwd=repo)
        self.assertEqual(code, 0, err)
        code, out, err = cli("baseline", cwd=repo)
        self.assertEqual(code, 0, err + out)
        self.assertIn("baseline: wall_ms", out)

    def test_printed_forms_streams_and_directions(self):
        cases = [('print("throughput=%d" % n)', "throughput", "max", "stdout"),
                 ('print("qps:", qps)', "qps", "max", "stdout"),
                 ('print(f"val_acc={acc}")', "val_acc", "max", "stdout"),
                 ('print(f"p95_ms: {p95}", file=sys.stderr)', "p95_ms", "min", "stderr"),
                 ('sys.stdout.write("binary_size: %d\\n" % size)', "binary_size", "min", "stdout"),
                 ('print("train_loss: 0.25")', "train_loss", "min", "stdout"),
                 ('print(f"tokens/s: {rate}")', "tokens/s", "max", "stdout"),
                 ('print(f"ops_per_sec={n}")', "ops_per_sec", "max", "stdout"),
                 ('print(f"errors: {n}")', "errors", "min", "stdout")]
        for line, name, direction, stream in cases:
            repo = make_repo(self, {"bench.py": f"import sys\nif __name__ == '__main__':\n    {line}\n"})
            report = self.detect_json(repo)
            self.assertEqual([(m["name"], m["direction"], m["source"]) for m in report["metrics"]],
                             [(name, direction, stream)], line)
            self.assertEqual(report["proposal"]["flags"]["report_source"], stream, line)
        for line in ('x = {"a": 1}', 'print("usage: bench.py N")', 'print("see https://x.invalid")',
                     'label = "wall_ms: "'):  # not a printed metric: no value, not printed, or a known word
            repo = make_repo(self, {"bench.py": f"if __name__ == '__main__':\n    {line}\n"})
            self.assertEqual(self.detect_json(repo)["metrics"], [], line)

    def test_unclear_direction_is_asked_and_the_rest_proposed(self):
        repo = make_repo(self, {"bench.py": "if __name__ == '__main__':\n    print(f'widgets: {3}')\n"})
        report = self.detect_json(repo)
        proposal = report["proposal"]
        self.assertEqual(proposal["missing"], ["direction"])
        self.assertEqual(proposal["flags"], {"run_command": "python3 bench.py", "metric_name": "widgets",
                                             "report_source": "stdout", "trials": 3})
        self.assertNotIn("--direction", proposal["args"])
        self.assertIn("is higher or lower better for widgets? add --direction max or --direction min",
                      report["questions"])
        code, out, err = cli("init", *shlex.split(proposal["args"]), "--direction", "max", cwd=repo)
        self.assertEqual(code, 0, err)

    def test_only_installed_tools_are_suggested(self):
        repo = make_repo(self, {"Makefile": "bench:\n\tpython3 bench.py\n",
                                "bench.py": "if __name__ == '__main__':\n    print('latency_ms: 3')\n",
                                "tests/test_lib.py": "def test_x():\n    assert True\n"})
        with tools(make=False, npm=False, pytest=False):
            report = self.detect_json(repo)
        self.assertEqual([c["command"] for c in report["commands"]], ["python3 bench.py"])
        self.assertEqual(report["tools"], {"make": False, "npm": False, "pytest": False})
        self.assertTrue(any("pytest is not installed here" in q for q in report["questions"]), report["questions"])
        with tools(make=True, pytest=True):
            report = self.detect_json(repo)
        self.assertEqual([c["command"] for c in report["commands"]],
                         ["make bench", "python3 bench.py", "python3 -m pytest -q"])
        self.assertFalse(any("pytest is not installed" in q for q in report["questions"]))

    def test_python_library_with_makefile_and_pytest(self):
        repo = make_repo(self, {
            "pyproject.toml": '[project]\nname = "lib"\n\n[project.scripts]\nlib-bench = "lib.bench:main"\n\n'
                              '[tool.pytest.ini_options]\naddopts = "-q"\n',
            "Makefile": ".PHONY: bench test\nbench:\n\tpython3 bench.py\ntest:\n\tpytest\nVAR := 1\n",
            "bench.py": "import time\nif __name__ == \"__main__\":\n    print('latency_ms: 3')\n",
            "tests/test_lib.py": "def test_x():\n    assert True\n"})
        with tools():
            report = self.detect_json(repo)
        self.assertEqual(report["targets"]["make"], ["bench", "test"])
        self.assertEqual(report["targets"]["pyproject_scripts"], ["lib-bench"])
        self.assertEqual(report["pytest"]["configured"], True)
        self.assertEqual(report["pytest"]["test_files"], 1)
        self.assertEqual([c["command"] for c in report["commands"]],
                         ["make bench", "python3 bench.py", "make test", "python3 -m pytest -q"])
        self.assertEqual([m["name"] for m in report["metrics"]], ["latency_ms"])
        self.assertEqual(report["proposal"]["flags"]["trials"], 3)
        self.assertEqual(report["proposal"]["flags"]["direction"], "min")

    def test_not_a_repository_and_empty(self):
        d = tempfile.mkdtemp(prefix="ratchet-detect-")
        self.addCleanup(shutil.rmtree, d, True)
        report = self.detect_json(d)
        self.assertEqual(report["git"]["repo"], False)
        self.assertEqual((report["commands"], report["trackers"], report["proposal"]), ([], [], None))
        self.assertTrue(any("not a git repository" in q for q in report["questions"]))
        code, out, err = cli("detect", cwd=d)
        self.assertEqual(code, 0, err)
        self.assertIn("question:", out)

    def test_direction_words(self):
        cases = {"val_loss": "min", "eval/accuracy": "max", "p95_latency_ms": "min", "tokensPerSec": "max",
                 "samples_per_second": "max", "binary_size": "min", "bleu": "max", "wer": "min", "widgets": None}
        self.assertEqual({k: detect_names.direction_of(k) for k in cases}, cases)

    def test_walk_skips_virtualenvs_and_stays_bounded(self):
        repo = make_repo(self, {"train.py": TRAIN})
        write(repo, ".venv/lib/metrics.jsonl", '{"val_loss": 1}\n')
        write(repo, "node_modules/x/results.json", '{"score": 1}')
        write(repo, "a/b/c/d/e/metrics.jsonl", '{"val_loss": 1}\n')  # deeper than MAX_DEPTH
        self.assertEqual(self.detect_json(repo)["trackers"], [])


if __name__ == "__main__":
    unittest.main()
