"""A real single-node Slurm cluster for the end-to-end tests (test-only).

Debian's `slurm-wlm` and `munge` (installed by .ci/run) provide the daemons;
this module writes a minimal slurm.conf into a temporary folder, starts
`munged` (as the munge user, its folders owned by it, on its own socket),
`slurmctld` and `slurmd` (both on loopback, on free ports), waits until
`sinfo` shows the node idle, and stops all three again. It needs root (the
daemons run as root here; the jobs run as the submitting user). The product
never relies on any of this: it only calls sbatch/squeue/scontrol/scancel.

`Cluster(accounting=True)` also starts a MariaDB server of its own (data in
the cluster's folder, TCP on a free loopback port) and `slurmdbd` on it, and
registers the cluster with `sacctmgr`: then `sacct` answers, as on a
production cluster (Debian's slurmdbd, slurm-wlm-mysql-plugin, mariadb-server).

`missing()` says why the cluster cannot run (None when it can); the tests
fail on that under CI=true and skip otherwise (like test_e2e_claude.py).
"""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from tests.util import free_port

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")


def _sbin(name: str):
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)), None)


ACCOUNTING = ("slurmdbd", "sacctmgr", "sacct", "mariadbd", "mariadb-install-db", "mariadb")


def missing(accounting: bool = False):
    """Why a cluster (with `accounting`: slurmdbd on its own MariaDB) cannot be started here, or None."""
    gone = [n for n in DAEMONS + CLIENTS + (ACCOUNTING if accounting else ()) if not _sbin(n)]
    plugin = glob.glob("/usr/lib*/*/slurm-wlm/accounting_storage_mysql.so") + \
        glob.glob("/usr/lib*/slurm*/accounting_storage_mysql.so")
    if accounting and not plugin:
        gone.append("accounting_storage_mysql.so (slurm-wlm-mysql-plugin)")
    if gone:
        return ("not installed: " + ", ".join(gone) + " (apt-get install slurm-wlm munge"
                + (" slurmdbd slurm-wlm-mysql-plugin mariadb-server" if accounting else "") + ")")
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd/munged needs root"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "no munge user (the munge package creates it)"
    return None


class Cluster:
    """Start with `start()`, always `stop()` (tests call it in addCleanup)."""

    def __init__(self, accounting: bool = False):
        self.accounting = accounting  # slurmdbd on a MariaDB of its own: sacct answers
        self.dir = tempfile.mkdtemp(prefix="ratchet-slurm-")
        os.chmod(self.dir, 0o755)
        self.host = socket.gethostname().split(".")[0]
        self.conf = os.path.join(self.dir, "slurm.conf")
        self.procs = []
        self.env = {**os.environ, "SLURM_CONF": self.conf}

    def path(self, *parts) -> str:
        return os.path.join(self.dir, *parts)

    def start(self, timeout: float = 60.0) -> "Cluster":
        try:
            self._munge()
            for d in ("state", "spool", "log"):
                os.makedirs(self.path(d), exist_ok=True)
            if self.accounting:
                self._slurmdbd(self._mariadb())
            self._write_conf()
            if self.accounting:
                r = self.run("sacctmgr", "-i", "add", "cluster", "ratchettest")
                if r.returncode != 0 and "already exists" not in r.stdout + r.stderr:
                    raise RuntimeError("sacctmgr add cluster: " + (r.stdout + r.stderr).strip())
            self._daemon([_sbin("slurmctld"), "-D", "-f", self.conf], "slurmctld.out")
            self._daemon([_sbin("slurmd"), "-D", "-f", self.conf], "slurmd.out")
            self._wait_idle(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _munge(self) -> None:
        m = pwd.getpwnam("munge")
        mdir = self.path("munge")
        os.makedirs(mdir, mode=0o700)
        subprocess.run([_sbin("mungekey"), "--create", "--keyfile", os.path.join(mdir, "munge.key")],
                       check=True, capture_output=True)
        for top, dirs, files in os.walk(mdir):
            for n in [top] + [os.path.join(top, f) for f in files]:
                os.chown(n, m.pw_uid, m.pw_gid)
        self.socket = os.path.join(mdir, "munge.socket")
        argv = [_sbin("munged"), "--foreground", "--force", "--socket", self.socket,
                "--key-file", os.path.join(mdir, "munge.key"), "--pid-file", os.path.join(mdir, "munged.pid"),
                "--log-file", os.path.join(mdir, "munged.log"), "--seed-file", os.path.join(mdir, "munged.seed")]

        def demote():
            os.setgid(m.pw_gid)
            os.setgroups([])
            os.setuid(m.pw_uid)
        self._daemon(argv, "munged.out", preexec=demote)
        end = time.monotonic() + 15
        while not os.path.exists(self.socket):
            if time.monotonic() > end:
                raise RuntimeError("munged did not create its socket: " + self._log("munged.out"))
            time.sleep(0.05)

    def _mariadb(self) -> int:
        """A MariaDB server of the test's own (its data in the cluster's folder,
        TCP on a free loopback port); returns the port."""
        data, sock, port = self.path("db"), self.path("mysql.sock"), free_port()
        r = subprocess.run(["mariadb-install-db", "--user=root", f"--datadir={data}", "--skip-test-db",
                            "--auth-root-authentication-method=socket"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("mariadb-install-db: " + (r.stdout + r.stderr)[-800:])
        self._daemon([_sbin("mariadbd"), "--user=root", f"--datadir={data}", f"--socket={sock}", f"--port={port}",
                      "--bind-address=127.0.0.1", f"--pid-file={self.path('mysqld.pid')}",
                      f"--log-error={self.path('log', 'mysqld.err')}"], "mariadbd.out")
        end = time.monotonic() + 30
        while True:
            r = subprocess.run(["mariadb", f"--socket={sock}", "-u", "root", "-e",
                                "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'ratchet-test'; "
                                "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"], capture_output=True, text=True)
            if r.returncode == 0:
                return port
            if time.monotonic() > end:
                raise RuntimeError("mariadbd did not answer: " + r.stderr[-500:] + self._log("mariadbd.out"))
            time.sleep(0.2)

    def _slurmdbd(self, db_port: int) -> None:
        self.dbd_port = free_port()
        conf = self.path("slurmdbd.conf")
        with open(conf, "w") as f:
            f.write("\n".join([
                "AuthType=auth/munge", f"AuthInfo=socket={self.socket}", "DbdAddr=127.0.0.1", "DbdHost=localhost",
                f"DbdPort={self.dbd_port}", "SlurmUser=root", f"LogFile={self.path('log', 'slurmdbd.log')}",
                f"PidFile={self.path('slurmdbd.pid')}", "StorageType=accounting_storage/mysql",
                "StorageHost=127.0.0.1", f"StoragePort={db_port}", "StorageUser=slurm", "StoragePass=ratchet-test",
                "StorageLoc=slurm_acct_db"]) + "\n")
        os.chmod(conf, 0o600)  # slurmdbd refuses a config others can read (it holds the password)
        self._daemon([_sbin("slurmdbd"), "-D"], "slurmdbd.out")  # reads slurmdbd.conf beside $SLURM_CONF
        end = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.dbd_port)) == 0:
                    return
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{os.path.basename(p.args[0])} exited {p.returncode}: "
                                       + self._log("slurmdbd.out") + self._log(os.path.join("log", "slurmdbd.log")))
            if time.monotonic() > end:
                raise RuntimeError("slurmdbd does not listen: " + self._log(os.path.join("log", "slurmdbd.log")))
            time.sleep(0.2)

    def _write_conf(self) -> None:
        cpus = os.cpu_count() or 1
        lines = [
            "ClusterName=ratchettest",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            f"SlurmctldPort={free_port()}",
            f"SlurmdPort={free_port()}",
            "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", f"AuthInfo=socket={self.socket}",
            "CredType=cred/munge",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
            "JobAcctGatherType=jobacct_gather/none",
            *(["AccountingStorageType=accounting_storage/slurmdbd", "AccountingStorageHost=127.0.0.1",
               f"AccountingStoragePort={self.dbd_port}",
               f"AccountingStoragePass={self.socket}"] if self.accounting  # the munge socket for slurmdbd
              else ["AccountingStorageType=accounting_storage/none"]),
            "JobCompType=jobcomp/none", "MpiDefault=none", "ReturnToService=2",
            "SchedulerType=sched/backfill", "MinJobAge=600", "KillWait=2",
            # a job starts within a second of sbatch (the default delays batch scheduling up to 3 s), and
            # a client gives up on an unreachable controller after 8 s instead of 18 (the restart test)
            "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0", "MessageTimeout=5",
            "SlurmctldTimeout=30", "SlurmdTimeout=30", "InactiveLimit=0",
            f"StateSaveLocation={self.path('state')}", f"SlurmdSpoolDir={self.path('spool')}",
            f"SlurmctldPidFile={self.path('slurmctld.pid')}", f"SlurmdPidFile={self.path('slurmd.pid')}",
            f"SlurmctldLogFile={self.path('log', 'slurmctld.log')}", f"SlurmdLogFile={self.path('log', 'slurmd.log')}",
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN",
            f"PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
        ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.conf, 0o644)

    def _daemon(self, argv, log: str, preexec=None) -> None:
        out = open(self.path(log), "wb")
        self.procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           env=self.env, preexec_fn=preexec, start_new_session=True))
        out.close()

    def _log(self, name: str) -> str:
        try:
            with open(self.path(name), errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return "(no log)"

    def _wait_idle(self, timeout: float) -> None:
        end, last = time.monotonic() + timeout, ""
        while time.monotonic() < end:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{os.path.basename(p.args[0])} exited {p.returncode}: "
                                       + self._log(os.path.basename(p.args[0]) + ".out"))
            r = subprocess.run(["sinfo", "--noheader", "-o", "%T"], env=self.env, capture_output=True, text=True)
            last = (r.stdout + r.stderr).strip()
            if r.returncode == 0 and last.startswith("idle"):
                return
            time.sleep(0.3)
        raise RuntimeError(f"the node is not idle after {timeout:g}s (sinfo: {last}); slurmd: "
                           + self._log(os.path.join("log", "slurmd.log")))

    def stop_controller(self) -> None:
        """Stop slurmctld (its state is saved; jobs on the node keep running)."""
        ctld = next(p for p in self.procs if os.path.basename(p.args[0]) == "slurmctld")
        ctld.send_signal(signal.SIGTERM)
        ctld.wait(timeout=30)
        self.procs.remove(ctld)

    def start_controller(self) -> None:
        """Start slurmctld again; it recovers the saved jobs."""
        self._daemon([_sbin("slurmctld"), "-D", "-f", self.conf], "slurmctld-again.out")

    def run(self, *argv) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=30)

    def jobs(self) -> list:
        """(id, name, state) of every job squeue still lists."""
        r = self.run("squeue", "--noheader", "-o", "%i|%j|%T")
        return [tuple(line.split("|")) for line in r.stdout.splitlines() if line.strip()]

    def stop(self) -> None:
        """Stop every daemon this cluster started (slurmd, slurmctld, munged)."""
        if os.path.exists(self.conf):
            self.run("scancel", "--full", "--user", pwd.getpwuid(os.getuid()).pw_name) \
                if shutil.which("scancel") else None
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass
        for p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                p.wait()
        self.procs = []
        shutil.rmtree(self.dir, ignore_errors=True)
