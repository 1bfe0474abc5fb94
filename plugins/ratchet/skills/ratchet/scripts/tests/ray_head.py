"""A real local Ray head for the end-to-end tests (test-only).

`ray` comes from a test-only virtual environment (.ci/run installs
`ray[default]` into .ci/cache/ray-venv; RATCHET_RAY_BIN names another
`ray`): never a dependency of the plugin, which only calls the CLI and the
Jobs REST API. The head runs with one CPU, the dashboard on 127.0.0.1,
usage stats off, its own temporary folder, in its own session
(`ray start --block`), so `stop()` ends exactly the processes it started
(that session), not every Ray on the machine. `start()` returns once a
no-op job has run: the dashboard answers before its job agent accepts jobs.
"""

import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from tests.util import free_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 6))
DEFAULT_BIN = os.path.join(ROOT, ".ci", "cache", "ray-venv", "bin", "ray")


def ray_bin():
    return os.environ.get("RATCHET_RAY_BIN") or (DEFAULT_BIN if os.path.exists(DEFAULT_BIN) else None)


def missing():
    b = ray_bin()
    if not b:
        return f"no ray: {DEFAULT_BIN} is absent (bash .ci/run installs it) and RATCHET_RAY_BIN is unset"
    if not os.access(b, os.X_OK):
        return f"RATCHET_RAY_BIN={b} is not executable"
    return None




class Head:
    def __init__(self):
        self.bin = ray_bin()
        self.dir = tempfile.mkdtemp(prefix="rt-")  # short: Ray's socket paths must fit in 107 bytes
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
                    "PATH": os.path.dirname(self.bin) + os.pathsep + os.environ.get("PATH", "")}
        self.proc = None
        self.tries, self.last = 0, "not tried"

    def start(self, timeout: float = 120.0) -> "Head":
        argv = [self.bin, "start", "--head", "--block", "--num-cpus=1", "--node-ip-address=127.0.0.1",
                "--dashboard-host=127.0.0.1", f"--dashboard-port={self.port}", f"--port={free_port()}",
                f"--ray-client-server-port={free_port()}", "--disable-usage-stats", f"--temp-dir={self.dir}",
                # Ray's fixed defaults (the job agent on 52365...) would clash with another head on this
                # machine, or one just stopped: the job agent never registers and job submits hang;
                # util.free_port never hands one port to two components (`ray start` refuses that)
                *[f"--{name}-port={free_port()}" for name in ("dashboard-agent-listen", "dashboard-agent-grpc",
                                                              "runtime-env-agent", "metrics-export", "node-manager",
                                                              "object-manager")]]
        self.log = open(os.path.join(self.dir, "start.log"), "wb")
        self.proc = subprocess.Popen(argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"ray start exited {self.proc.returncode}: {self._tail()}")
                if self._ran_a_job():
                    return self
                time.sleep(0.2)
            raise RuntimeError(f"the Ray head ran no job within {timeout:g}s ({self.last}): {self._tail()}")
        except BaseException:
            self.stop()
            raise

    def _ran_a_job(self) -> bool:
        """Whether a no-op job was accepted and succeeded: the dashboard answers
        before its job agent does ("No available agent to submit job"). Each
        try is a new job; `self.last` says why the last one did not count."""
        self.tries += 1
        job = f"warm-up-{self.port}-{self.tries}"
        body = json.dumps({"entrypoint": "true", "submission_id": job}).encode()
        req = urllib.request.Request(self.address + "/api/jobs/", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=10).close()
        except (OSError, ValueError) as e:
            self.last = f"submit: {e}"
            return False
        end, info = time.monotonic() + 60, {}
        while time.monotonic() < end:
            try:
                with urllib.request.urlopen(f"{self.address}/api/jobs/{job}", timeout=10) as r:
                    info = json.loads(r.read())
            except (OSError, ValueError) as e:
                self.last = f"status: {e}"
                time.sleep(0.2)
                continue
            if info.get("status") not in ("PENDING", "RUNNING"):
                self.last = f"{job} ended {info.get('status')}: {info.get('message')}"
                return info.get("status") == "SUCCEEDED"
            time.sleep(0.1)
        self.last = f"{job} still {info.get('status')} after 60 s"
        return False

    def _tail(self) -> str:
        try:
            with open(os.path.join(self.dir, "start.log"), errors="replace") as f:
                return f.read()[-1500:]
        except OSError:
            return "(no log)"

    def _session(self) -> list:
        """Pids in the head's session (everything `ray start` started)."""
        out = []
        sid = self.proc.pid
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat", "rb") as f:
                        fields = f.read().rsplit(b")", 1)[1].split()
                    if int(fields[3]) == sid and fields[0] != b"Z":
                        out.append(int(name))
                except (OSError, IndexError, ValueError):
                    pass
        return out

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        end = time.monotonic() + 10
        while self._session() and time.monotonic() < end:
            for pid in self._session():
                try:
                    os.kill(pid, signal.SIGTERM if time.monotonic() < end - 5 else signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.5)
        for pid in self._session():
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()
        self.proc = None
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)
