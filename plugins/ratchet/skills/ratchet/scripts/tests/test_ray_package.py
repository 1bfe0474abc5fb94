"""The working directory as a Ray package (io/ray_package.py) and the REST submit (exec_ray.submit),
without a cluster: the submit goes to a stand-in Jobs API on 127.0.0.1. When Ray's own Python is
at hand (RATCHET_RAY_BIN's venv, as for test_e2e_ray.py) the package is also compared with the one
Ray's packaging code makes of the same tree."""

import io
import json
import os
import shutil
import subprocess
import tempfile
import threading
import unittest
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ratchetlib.io import exec_ray, ray_package

EXCLUDES = ["*.txt", "!top.txt", ".ratchet/", ".git/"]


def tree(root):
    """Excluded (defaults, runtime env excludes, .ratchet/), ignored (.gitignore, a sub-folder's
    .rayignore, a re-include), symlinked (file, folder, dangling) and empty paths."""
    files = {"a/b/f.py": "1", "top.txt": "2", "other.txt": "o", ".git/x/y": "g", "__pycache__/c.pyc": "c",
             ".venv/bin/p": "v", "data/big.bin": "d", ".gitignore": "data/\n*.log\n!keep.log\n", "x.log": "l",
             "keep.log": "k", "sub/.rayignore": "/deep\n", "sub/deep/z": "z", "sub/s.py": "s", ".ratchet/st": "r",
             "we ird[1].py": "w"}
    for rel, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, rel)) or root, exist_ok=True)
        with open(os.path.join(root, rel), "w") as f:
            f.write(text)
    os.makedirs(os.path.join(root, "empty"))
    os.symlink("a/b/f.py", os.path.join(root, "link.py"))
    os.symlink("a", os.path.join(root, "linkdir"))
    os.symlink("nowhere", os.path.join(root, "dangling"))


def names(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n).decode() for n in z.namelist()}


class PackageTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="ratchet-pkg-")
        self.addCleanup(shutil.rmtree, self.root, True)
        tree(self.root)

    def test_what_goes_into_the_zip(self):
        pkg = ray_package.package(self.root, EXCLUDES)
        self.assertEqual(names(ray_package.zip_bytes(pkg)),
                         {".gitignore": "data/\n*.log\n!keep.log\n", "a/b/f.py": "1", "empty/": "", "keep.log": "k",
                          "link.py": "1", "linkdir/b/f.py": "1", "sub/.rayignore": "/deep\n", "sub/s.py": "s",
                          "top.txt": "2", "we ird[1].py": "w"})
        self.assertRegex(pkg.name, r"^_ray_pkg_[0-9a-f]{16}\.zip$")

    def test_the_same_content_gives_the_same_name_and_a_change_another(self):
        first = ray_package.package(self.root, EXCLUDES).name
        os.utime(os.path.join(self.root, "a/b/f.py"), (1, 1))  # a touch is no change
        with open(os.path.join(self.root, "other.txt"), "w") as f:  # nor is an excluded file's
            f.write("changed")
        self.assertEqual(ray_package.package(self.root, EXCLUDES).name, first)
        with open(os.path.join(self.root, "sub/s.py"), "w") as f:
            f.write("s2")
        self.assertNotEqual(ray_package.package(self.root, EXCLUDES).name, first)

    def test_the_gitignore_is_skipped_as_ray_skips_it(self):
        os.environ["RAY_RUNTIME_ENV_IGNORE_GITIGNORE"] = "1"
        self.addCleanup(os.environ.pop, "RAY_RUNTIME_ENV_IGNORE_GITIGNORE")
        got = names(ray_package.zip_bytes(ray_package.package(self.root, EXCLUDES)))
        self.assertIn("data/big.bin", got)
        self.assertIn("x.log", got)

    def test_a_symlink_loop_is_refused(self):
        os.symlink("..", os.path.join(self.root, "a", "up"))
        with self.assertRaisesRegex(ray_package.PackageError, "symlink to a directory that contains it"):
            ray_package.package(self.root, EXCLUDES)
        pkg = ray_package.package(self.root, EXCLUDES + ["up"])  # excluded (here and under linkdir/), it is fine
        self.assertNotIn("a/up", [rel for _, rel in pkg.entries])

    def test_a_package_over_the_size_limit_is_refused(self):
        os.environ["RAY_max_grpc_message_size"] = "100"
        self.addCleanup(os.environ.pop, "RAY_max_grpc_message_size")
        with self.assertRaisesRegex(ray_package.PackageError, "over Ray's limit"):
            ray_package.zip_bytes(ray_package.package(self.root, EXCLUDES))

    def test_patterns_match_as_gitwildmatch(self):
        cases = {"*.py": (["a.py", "d/a.py"], ["a.pyc"]), "/top": (["top", "top/x"], ["d/top"]),
                 "d/": (["d/x", "e/d/x"], ["d"]), "a/**/z": (["a/z", "a/b/c/z"], ["b/a/z"]),
                 "f[0-9]": (["f1"], ["fx"]), "f[!0-9]": (["fx"], ["f1"]), "\\#x": (["#x"], [])}
        for pattern, (hit, miss) in cases.items():
            regex, include = ray_package.wildmatch(pattern)
            for path in hit:
                self.assertTrue(regex.match(path), (pattern, path))
            for path in miss:
                self.assertFalse(regex.match(path), (pattern, path))
        self.assertEqual(ray_package.wildmatch("# c"), (None, None))
        self.assertFalse(ray_package.wildmatch("!x")[1])

    def test_the_same_package_as_rays_own_code(self):
        ray_bin = os.environ.get("RATCHET_RAY_BIN") or ""
        python = os.path.join(os.path.dirname(ray_bin), "python")
        if not os.path.exists(python):
            self.skipTest("no Ray venv (RATCHET_RAY_BIN)")
        os.symlink("..", os.path.join(self.root, "a", "up"))  # Ray would recurse on it: excluded
        script = ("import sys, json, zipfile\n"
                  "from ray._private.runtime_env.packaging import get_uri_for_directory, _zip_files\n"
                  "from ray._private import ray_constants\n"
                  "ex = ray_constants.get_runtime_env_default_excludes() + json.loads(sys.argv[2])\n"
                  "print(get_uri_for_directory(sys.argv[1], True, excludes=ex))\n"
                  "_zip_files(sys.argv[1], ex, sys.argv[3], include_gitignore=True)\n")
        out = os.path.join(tempfile.mkdtemp(prefix="ratchet-raypkg-"), "ray.zip")
        self.addCleanup(shutil.rmtree, os.path.dirname(out), True)
        excludes = EXCLUDES + ["up"]
        got = subprocess.run([python, "-c", script, self.root, json.dumps(excludes), out], capture_output=True,
                             text=True, timeout=60, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
        self.assertEqual(got.returncode, 0, got.stderr)
        pkg = ray_package.package(self.root, excludes)
        self.assertEqual(got.stdout.strip().splitlines()[-1], "gcs://" + pkg.name)
        with open(out, "rb") as f:
            self.assertEqual(names(ray_package.zip_bytes(pkg)), names(f.read()))


class StandInJobsApi(BaseHTTPRequestHandler):
    """The package and submit endpoints of Ray's dashboard, in memory."""

    def log_message(self, *a):
        pass

    def _answer(self, code, body=b""):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.server.calls.append(("GET", self.path))
        self._answer(200 if self.path in self.server.packages else 404)

    def do_PUT(self):
        self.server.calls.append(("PUT", self.path))
        self.server.packages[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(200)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.calls.append(("POST", self.path))
        self.server.jobs.append(body)
        refused = body["submission_id"] == "taken"
        self._answer(400 if refused else 200, b"Traceback\nValueError: Job with submission_id taken already exists"
                     if refused else json.dumps({"submission_id": body["submission_id"]}).encode())


class SubmitTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="ratchet-pkg-")
        self.addCleanup(shutil.rmtree, self.root, True)
        tree(self.root)
        self.api = ThreadingHTTPServer(("127.0.0.1", 0), StandInJobsApi)
        self.api.calls, self.api.packages, self.api.jobs = [], {}, []
        threading.Thread(target=self.api.serve_forever, daemon=True).start()
        self.addCleanup(self.api.server_close)
        self.addCleanup(self.api.shutdown)
        self.opts = [f"--address=http://127.0.0.1:{self.api.server_port}", "--entrypoint-num-cpus=0.5",
                     "--metadata-json={\"who\": \"me\"}", "--runtime-env-json={\"excludes\": [\"*.txt\", \"!top.txt\"],"
                     " \"env_vars\": {\"A\": \"1\"}}"]

    def submit(self, name, node=None):
        return exec_ray.submit(self.opts, "echo 'a b'", self.root, {}, {"RATCHET_TRIAL_ID": name}, name, node)

    def test_the_package_is_sent_once_then_the_job_posted(self):
        self.assertEqual(self.submit("j1"), ("j1", None))
        self.assertEqual(self.submit("j2", node="10.0.0.2"), ("j2", None))
        pkg = ray_package.package(self.root, ["*.txt", "!top.txt", ".ratchet/", ".git/"])
        path = f"/api/packages/gcs/{pkg.name}"
        self.assertEqual(self.api.calls, [("GET", path), ("PUT", path), ("POST", "/api/jobs/"),
                                          ("GET", path), ("POST", "/api/jobs/")])
        self.assertEqual(names(self.api.packages[path]), names(ray_package.zip_bytes(pkg)))
        first, second = self.api.jobs
        self.assertEqual(first, {"entrypoint": "sh -c 'echo '\"'\"'a b'\"'\"''", "submission_id": "j1",
                                 "runtime_env": {"excludes": ["*.txt", "!top.txt", ".ratchet/", ".git/"],
                                                 "env_vars": {"A": "1", "RATCHET_TRIAL_ID": "j1"},
                                                 "working_dir": "gcs://" + pkg.name},
                                 "metadata": {"who": "me"}, "entrypoint_num_cpus": 0.5})
        self.assertEqual(second["entrypoint_resources"], {"node:10.0.0.2": 0.001})

    def test_a_refusal_is_named_in_one_line(self):
        job, why = self.submit("taken")
        self.assertIsNone(job)
        self.assertEqual(why, "ray refused the job (HTTP 400: ValueError: Job with submission_id taken already exists)")

    def test_no_answer_is_a_refusal_not_a_traceback(self):
        self.api.shutdown()
        self.api.server_close()
        job, why = self.submit("j")
        self.assertIsNone(job)
        self.assertIn("ray refused the working directory's package", why)


if __name__ == "__main__":
    unittest.main()
