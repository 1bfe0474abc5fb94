"""Issue 9, part 5: the bad-input table (plugins/ratchet/BAD-INPUT.md), one test per row.

Every row sets up a repository, makes one mistake and runs one command.
It must give exit 2 with a one-line error naming the fix, or exit 0 with an
announced recovery; and whatever the user had (branches, HEAD, the files of
the work tree, tracked or not) is exactly as before.
"""

import json
import os
import runpy
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

from tests.util import INIT, PY, RATCHET, cli, git, make_repo, write


def without(argv, flag):
    i = argv.index(flag)
    return argv[:i] + argv[i + 2:]


def bench_printing(text, stream="stdout", code=0):
    return {"bench.py": f"import sys\nsys.{stream}.write({text!r})\nsys.exit({code})\n", "value.txt": "10\n"}


def started(t, repo):
    """A run with its baseline, for the rows about a run's state files."""
    for argv in (INIT, ["baseline"]):
        code, out, err = cli(*argv, cwd=repo)
        t.assertEqual(code, 0, err)


def corrupt(name, text):
    def setup(t, repo):
        started(t, repo)
        write(repo, ".ratchet/" + name, text)
    return setup


def tear_last_record(t, repo):
    started(t, repo)
    with open(os.path.join(repo, ".ratchet", "results.jsonl"), "a") as f:
        f.write('{"iter": 1, "decis')


def newer_format(name):
    def setup(t, repo):
        started(t, repo)
        path = os.path.join(repo, ".ratchet", name)
        with open(path) as f:
            obj = json.load(f)
        write(repo, ".ratchet/" + name, json.dumps({**obj, "format": 99}))
    return setup


def newer_record(t, repo):
    started(t, repo)
    with open(os.path.join(repo, ".ratchet", "results.jsonl"), "a") as f:
        f.write(json.dumps({"format": 99, "iter": 1, "decision": "keep", "avg": 12.0}) + "\n")


def corrupt_unclean_and_a_change(t, repo):
    corrupt("UNCLEAN", '{"format": 1, "marker": "ratch')(t, repo)
    write(repo, "value.txt", "11\n")  # a candidate, so `iterate` would run trials


def forged(name, change):
    """A started run whose sealed file NAME an agent rewrote (tests/test_seal.py's forger)."""
    def setup(t, repo):
        from tests.test_seal import forge
        started(t, repo)
        forge(repo, name, change)
        write(repo, "value.txt", "11\n")  # a candidate, so `iterate` would run trials
    return setup


def forged_harness(t, repo):
    forged("harness.json", lambda h: h["files"]["bench.py"].update(sha256="0" * 64, stat=None))(t, repo)


def forged_gitguard(t, repo):
    forged("gitguard.json", lambda g: g["files"][".git/config"].update(sha256="0" * 64, stat=None))(t, repo)


def with_loop(t, repo):
    started(t, repo)
    from ratchetlib.io.store import Store
    Store(repo).write_loop({"agent_command": "true", "max_agent_cost_usd": 1.0})
    from tests.test_seal import forge
    forge(repo, "loop.json", lambda l: l.update(agent_command="touch forged", max_agent_cost_usd=1e9))


def deleted_state(t, repo):
    started(t, repo)
    os.unlink(os.path.join(repo, ".ratchet", "state.json"))


def forged_current(t, repo):
    started(t, repo)
    write(repo, ".ratchet/current.json", json.dumps({"format": 1, "iter": 1, "phase": "decided",
                                                     "candidate": {"tracked": [], "new": []},
                                                     "decision": {"iter": 1, "decision": "keep", "avg": 99.0}}))


def forged_record(t, repo):
    started(t, repo)
    with open(os.path.join(repo, ".ratchet", "results.jsonl"), "a") as f:
        f.write(json.dumps({"format": 1, "iter": 1, "decision": "keep", "kept": True, "avg": 99.0,
                            "sha": git(repo, "rev-parse", "HEAD").strip()}) + "\n")


def key_elsewhere(t, repo):
    from tests.test_seal import key_dir
    started(t, repo)
    with open(os.path.join(repo, ".ratchet", "config.json")) as f:
        run_id = json.load(f)["run_id"]
    os.rename(os.path.join(key_dir(), run_id), os.path.join(key_dir(), run_id + ".elsewhere"))


def legacy_run(t, repo):
    from tests.test_seal import make_legacy
    started(t, repo)
    make_legacy(repo)


def hanging_git(t, repo):
    """A started run, then a `git` first on PATH that hangs on `status` and a 1 s git timeout."""
    started(t, repo)
    real = subprocess.run(["sh", "-c", "command -v git"], stdout=subprocess.PIPE, text=True).stdout.strip()
    bindir = tempfile.mkdtemp(prefix="ratchet-fakegit-")
    t.addCleanup(__import__("shutil").rmtree, bindir, True)
    with open(os.path.join(bindir, "git"), "w") as f:
        f.write(f'#!/bin/sh\nfor a in "$@"; do [ "$a" = status ] && exec sleep 1000; done\nexec {real} "$@"\n')
    os.chmod(os.path.join(bindir, "git"), 0o755)
    patch = mock.patch.dict(os.environ, {"PATH": bindir + os.pathsep + os.environ["PATH"],
                                         "RATCHET_GIT_TIMEOUT_SECONDS": "1"})
    patch.start()
    t.addCleanup(patch.stop)
    write(repo, "value.txt", "11\n")


def bare(t, repo):
    dest = repo + ".git"
    git(os.path.dirname(repo), "clone", "-q", "--bare", repo, dest)
    return dest


def shallow(t, repo):
    write(repo, "value.txt", "9\n")
    git(repo, "commit", "-qam", "second")
    dest = repo + "-shallow"
    git(os.path.dirname(repo), "clone", "-q", "--depth", "1", "file://" + repo, dest)
    git(dest, "config", "user.name", "t")
    git(dest, "config", "user.email", "t@example.invalid")
    for argv in (INIT, ["baseline"]):
        code, out, err = cli(*argv, cwd=dest)
        t.assertEqual(code, 0, err)
    write(dest, "value.txt", "12\n")
    return dest


def other_branch(t, repo):
    started(t, repo)
    git(repo, "checkout", "-q", "main")


def submodule_edited(t, repo):
    lib = repo + "-lib"
    os.makedirs(lib)
    git(lib, "init", "-q", "-b", "main")
    write(lib, "lib.py", "X = 10\n")
    git(lib, "add", "-A")
    git(lib, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "lib")
    subprocess.run(["git", "-c", "protocol.file.allow=always", "submodule", "add", "-q", lib, "lib"], cwd=repo,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    git(repo, "commit", "-qm", "a submodule")
    started(t, repo)
    write(repo, "lib/lib.py", "X = 20\n")


def not_a_repo(t, repo):
    d = tempfile.mkdtemp()
    t.addCleanup(__import__("shutil").rmtree, d, True)
    return d


OUTSIDE = os.path.join(tempfile.gettempdir(), "ratchet-elsewhere.txt")


def own_user_site(t, repo):
    """The trials' user site in a temporary folder (never the real one)."""
    base = tempfile.mkdtemp(prefix="ratchet-userbase-")
    t.addCleanup(__import__("shutil").rmtree, base, True)
    patcher = mock.patch.dict(os.environ, {"PYTHONUSERBASE": base})
    patcher.start()
    t.addCleanup(patcher.stop)


PLANTS_A_HOOK = {"bench.py": "import os, site\nd = site.getusersitepackages()\nos.makedirs(d, exist_ok=True)\n"
                             "open(os.path.join(d, 'usercustomize.py'), 'w').write('')\nprint('score: 3')\n"}
def link_outside(t, repo):
    os.symlink(tempfile.gettempdir(), os.path.join(repo, "elsewhere"))


def corrupt_middle_record(t, repo):
    started(t, repo)
    path = os.path.join(repo, ".ratchet", "results.jsonl")
    with open(path, "rb") as f:
        first = f.readline()
    with open(path, "wb") as f:
        f.write(first + b'{"iter": 1, oops\n' + first)


def inside_dot_git(t, repo):
    return os.path.join(repo, ".git")
N = "--iterate--"  # placeholder: the `iterate` command line

# (row id, what is wrong, setup or None, files or None, argv, exit code, text the output must hold)
ROWS = [
    # --- configuration ------------------------------------------------------------------------------
    ("c01", "--run-command missing", None, None, without(INIT, "--run-command"), 2, "required: --run-command"),
    ("c02", "--report-source missing: stdout assumed, said so", None, None,
     without(INIT, "--report-source") + ["--no-branch"], 0,
     "report source: stdout (no --report-source given"),
    ("c03", "--direction missing", None, None, without(INIT, "--direction"), 2, "--direction must be max or min"),
    ("c04", "--metric-name missing", None, None, without(INIT, "--metric-name"), 2, "--metric-name is required"),
    ("c05", "unknown direction", None, None, INIT[:4] + ["up"] + INIT[5:], 2, "invalid choice: 'up'"),
    ("c06", "--branch and --no-branch together", None, None, INIT + ["--branch", "x", "--no-branch"], 2,
     "--branch and --no-branch contradict"),
    ("c07", "--arms without --strategy", None, None, INIT + ["--arms", "a,b"], 2, "--arms needs --strategy bandit"),
    ("c08", "--guard-metric without --guard-command", None, None, INIT + ["--guard-metric", "t>=1"], 2,
     "--guard-metric needs --guard-command"),
    ("c09", "--trials 0", None, None, INIT + ["--trials", "0"], 2, "--trials must be a whole number >= 1"),
    ("c10", "--trials negative", None, None, INIT + ["--trials=-3"], 2, "--trials must be a whole number >= 1"),
    ("c11", "--trials not a number", None, None, INIT + ["--trials", "many"], 2, "'many' is not a whole number"),
    ("c12", "--iterations 0", None, None, INIT + ["--iterations", "0"], 2, "--iterations must be a whole number >= 1"),
    ("c13", "--trial-timeout-seconds 0", None, None, INIT + ["--trial-timeout-seconds", "0"], 2,
     "--trial-timeout-seconds must be > 0"),
    ("c14", "--trial-timeout-seconds negative", None, None, INIT + ["--trial-timeout-seconds=-5"], 2,
     "--trial-timeout-seconds must be > 0"),
    ("c15", "--guard-timeout-seconds 0", None, None, INIT + ["--guard-command", "true", "--guard-timeout-seconds", "0"],
     2, "--guard-timeout-seconds must be > 0"),
    ("c16", "--patience negative", None, None, INIT + ["--patience=-1"], 2, "--patience must be a whole number >= 0"),
    ("c17", "--max-consecutive-crashes 0", None, None, INIT + ["--max-consecutive-crashes", "0"], 2,
     "--max-consecutive-crashes must be a whole number >= 1"),
    ("c18", "--min-improvement negative", None, None, INIT + ["--min-improvement=-1"], 2,
     "--min-improvement '-1' must be a finite number >= 0"),
    ("c19", "--threshold not finite", None, None, INIT + ["--threshold", "nan"], 2, "--threshold must be a finite number"),
    ("c20", "--threshold already reached by the baseline (max, below it)", lambda t, r: cli(*INIT, "--threshold", "5", cwd=r),
     None, ["baseline"], 0, "threshold already reached by the baseline (10 vs 5); init again with a --threshold above 10"),
    ("c21", "report path outside the repository (relative)", None, None, INIT[:-3] + ["../out.txt", "--protect", "bench.py"],
     2, "the path '../out.txt' leaves the repository; use a path inside it"),
    ("c22", "report path outside the repository (absolute)", None, None, INIT[:-3] + [OUTSIDE, "--protect", "bench.py"],
     2, "is outside the repository"),
    ("c23", "a path both editable and protected", None, None, INIT + ["--editable", "bench.py"], 2,
     "--editable 'bench.py' is also protected"),
    ("c24", "--metric-pattern without a capture group", None, None, INIT + ["--metric-pattern", "took .* ms"], 2,
     "--metric-pattern needs one capture group"),
    ("c25", "--metric-pattern not a regex", None, None, INIT + ["--metric-pattern", "(["], 2,
     "--metric-pattern is not a valid regular expression"),
    ("c26", "unknown report source kind", None, None, INIT[:-3] + ["foo:bar", "--protect", "bench.py"], 2,
     "unknown report source kind 'foo:'"),
    ("c27", "invalid branch name", None, None, INIT + ["--branch", "a..b"], 2, "is not a valid git branch name"),
    ("c28", "branch already exists", None, None, INIT + ["--branch", "main"], 2, "branch 'main' already exists"),
    ("c29", "--instructions-file missing", None, None, INIT + ["--instructions-file", "nope.md"], 2,
     "--instructions-file 'nope.md' cannot be read"),
    ("c30", "--metric without a direction", None, None, INIT + ["--metric", "acc"], 2, "is not NAME:max or NAME:min"),
    ("c31", "--constraint without an operator", None, None, INIT + ["--constraint", "acc"], 2, "--constraint"),
    ("c32", "report file git tracks", None, {**dict(bench_printing("")), "out.txt": "x\n"},
     INIT[:-3] + ["out.txt", "--protect", "bench.py"], 2, "names file(s) git tracks (out.txt)"),
    ("c40", "--output the whole repository", None, None, INIT + ["--output", "."], 2,
     "--output '.' would declare every file (or ratchet's own) an output; name the folder"),
    ("c41", "--output outside the repository", None, None, INIT + ["--output", "../build"], 2,
     "--output '../build' must be a path relative to the repository root, inside it"),
    ("c33", "--protect an absolute path outside the repository", None, None, INIT + ["--protect", OUTSIDE], 2,
     f"--protect {OUTSIDE!r} is outside the repository"),
    ("c34", "--editable ../..", None, None, INIT + ["--editable", "../.."], 2,
     "--editable '../..' is outside the repository"),
    ("c35", "--protect /", None, None, INIT + ["--protect", "/"], 2, "--protect '/' is outside the repository"),
    ("c36", "--protect a symlink that points outside", link_outside, None, INIT + ["--protect", "elsewhere"], 2,
     "--protect 'elsewhere' is outside the repository"),
    ("c37", "--instructions-file outside the repository", None, None, INIT + ["--instructions-file", OUTSIDE], 2,
     f"--instructions-file {OUTSIDE!r} is outside the repository"),
    ("c38", "--artifact-glob through a symlink that points outside", link_outside, None,
     INIT + ["--artifact-glob", "elsewhere/*.pt"], 2, "--artifact-glob 'elsewhere/*.pt' is outside the repository"),
    ("c39", "a report source through a symlink that points outside", link_outside, None,
     INIT[:-3] + ["json:elsewhere/r.json", "--protect", "bench.py"], 2,
     "--report-source 'elsewhere/r.json' is outside the repository"),
    # --- environment --------------------------------------------------------------------------------
    ("e01", "not a git repository", not_a_repo, None, INIT, 2, "not inside a git repository"),
    ("e02", "bare repository", bare, None, INIT, 2, "this is a bare git repository; run ratchet inside a work tree"),
    ("e03", "detached HEAD", lambda t, r: git(r, "checkout", "-q", "--detach"), None, INIT, 2,
     "HEAD is detached; check out a branch first"),
    ("e04", "shallow clone: allowed (needs only the start commit)", shallow, None, [N], 0, "iter 1: KEEP"),
    ("e05", "no commits yet", None, "empty", INIT, 2, "the repository has no commits yet"),
    ("e06", "uncommitted changes", lambda t, r: write(r, "value.txt", "11\n"), None, INIT, 2,
     "uncommitted changes to tracked files (value.txt); commit or stash them first"),
    ("e07", "git missing (not on PATH)", "no-git", None, ["status"], 2, "git is not installed or not on PATH"),
    ("e08", "python too old", "old-python", None, ["status"], 2, "Python 3.10 or newer is required (this is 3.9)"),
    ("e09", "a verb before init", None, None, [N], 2, "no ratchet run in this repository; start one with"),
    ("e10", "iterate before baseline", lambda t, r: cli(*INIT, cwd=r), None, [N], 2, "no baseline yet"),
    ("e11", "HEAD moved to another branch mid-run", other_branch, None, [N], 2,
     "not the run's branch ratchet/"),
    ("e12", "an edit inside a git submodule", submodule_edited, None, [N], 2,
     "the change is inside git submodule or nested repository lib, which ratchet cannot swap, commit or revert"),
    ("e13", "run from inside .git", inside_dot_git, None, ["status"], 2,
     "this folder is inside .git, not the work tree; run ratchet from your project's work tree"),
    # --- the benchmark's output (read at baseline) ----------------------------------------------------
    ("o01", "no metric in the output", None, bench_printing("hello\n"), INIT + ["&&", "baseline"], 2,
     "baseline failed on trial 1: no 'score: value' line"),
    ("o02", "metric is nan", None, bench_printing("score: nan\n"), INIT + ["&&", "baseline"], 2, "value is nan"),
    ("o03", "metric is inf", None, bench_printing("score: -inf\n"), INIT + ["&&", "baseline"], 2, "value is -inf"),
    ("o04", "empty output", None, bench_printing(""), INIT + ["&&", "baseline"], 2, "report is empty"),
    ("o05", "metric only in stderr, stdout is the source", None, bench_printing("score: 3\n", "stderr"),
     INIT + ["&&", "baseline"], 2, "the metric is in stderr: init again with --report-source stderr"),
    ("o06", "benchmark crashes", None, bench_printing("score: 3\n", code=1), INIT + ["&&", "baseline"], 2,
     "exit code 1"),
    ("o07", "benchmark hangs", None, {"bench.py": "import time; time.sleep(60)\n"},
     INIT + ["--trial-timeout-seconds", "0.5", "&&", "baseline"], 2, "timed out after 0.5s (process tree killed)"),
    ("o08", "report file never written", None, bench_printing("score: 3\n"),
     INIT[:-3] + ["out.txt", "--protect", "bench.py", "&&", "baseline"], 2, "the command did not write out.txt"),
    ("o10", "benchmark rewrites a protected file (same bytes)", None,
     {"bench.py": "src = open('bench.py').read()\nopen('bench.py', 'w').write(src)\nprint('score: 3')\n"},
     INIT + ["&&", "baseline"], 2, "the benchmark itself changed protected files (bench.py (rewritten))"),
    ("o09", "a candidate prints nan: recorded, reverted", lambda t, r: (started(t, r), write(r, "value.txt", "nan\n")),
     None, [N], 0, "iter 1: CRASH"),
    ("o20", "the benchmark plants a Python startup hook", own_user_site, PLANTS_A_HOOK, INIT + ["&&", "baseline"], 2,
     "the benchmark itself changes Python's startup hooks"),
    ("o16", "the benchmark changes git's configuration", None,
     {"bench.py": "import subprocess\nsubprocess.run(['git', 'config', 'core.fsmonitor', 'false'])\nprint('score: 3')\n"},
     INIT + ["&&", "baseline"], 2, "the benchmark itself changes git's own files (.git/config (edited); undone)"),
    ("o11", "a number with a thousands comma", None, bench_printing("score: 1,234\n"), INIT + ["&&", "baseline"], 2,
     "'1,234' has a comma between digits (a thousands separator or a decimal comma?)"),
    ("o12", "a number grouped by spaces", None, bench_printing("score: 1 234\n"), INIT + ["&&", "baseline"], 2,
     "'1 234' has its digits grouped by spaces"),
    ("o13", "a number too large to compare", None, bench_printing("score: 1.7e308\n"), INIT + ["&&", "baseline"], 2,
     "1.7e+308 is too large to compare safely (|value| must be at most 1e+150)"),
    ("o14", "a number with something glued on", None, bench_printing("score: 12/100\n"), INIT + ["&&", "baseline"], 2,
     "'12/100' is not a number"),
    ("o15", "a candidate prints a value that overflows: recorded, reverted", lambda t, r: (started(t, r),
     write(r, "value.txt", "1e400\n")), None, [N], 0, "'1e400' overflows a float"),
    # --- ratchet's own state files --------------------------------------------------------------------
    ("s01", "config.json truncated", corrupt("config.json", '{"format": 1, "run_comm'), None, ["status"], 2,
     ".ratchet/config.json) is corrupt; restore it or start a new run with `init`"),
    ("s02", "state.json truncated", corrupt("state.json", '{"format": 1, "iter'), None, ["status"], 2,
     ".ratchet/state.json) is corrupt; restore it or start a new run with `init`"),
    ("s03", "init over a corrupt config.json archives it", corrupt("config.json", "{"), None,
     ["checkout-main", "&&"] + INIT, 0, "archived the previous run to .ratchet/runs/"),
    ("s04", "current.json truncated: set aside, measured again", corrupt("current.json", '{"iter": 1, "pha'), None,
     [N], 0, "current.json was unreadable; set aside as .ratchet/current.json.corrupt-"),
    ("s05", "torn last line in results.jsonl", tear_last_record, None, [N], 0, "removed a torn last line"),
    ("s06", "config.json from a newer ratchet", newer_format("config.json"), None, ["status"], 2,
     "config.json has format 99, newer than this ratchet understands (1); upgrade ratchet"),
    ("s07", "state.json from a newer ratchet", newer_format("state.json"), None, ["status"], 2,
     "state.json has format 99, newer than this ratchet understands (1); upgrade ratchet"),
    ("s08", "lock file garbage (a killed command's)", corrupt("lock", "\0\0"), None, [N], 0, "iter 1:"),
    ("s09", "results.jsonl record from a newer ratchet", newer_record, None, ["status"], 2,
     "results.jsonl has a record of format 99, newer than this ratchet understands (1); upgrade ratchet"),
    ("s10", "UNCLEAN marker corrupt", corrupt_unclean_and_a_change, None, [N], 2,
     "is unreadable, so which processes is unknown; no trial runs until it is cleared: check for leftover trial "
     "processes (ps), then run `ratchet.py clean`, which sets it aside"),
    ("s11", "clean on a corrupt UNCLEAN marker", corrupt("UNCLEAN", "\0"), None, ["clean"], 0,
     ".ratchet/UNCLEAN was unreadable: set aside as .ratchet/UNCLEAN.corrupt-"),
    ("s12", "a corrupt line in the middle of results.jsonl", corrupt_middle_record, None, ["status"], 2,
     ".ratchet/results.jsonl line 2 is not a JSON record ('{\"iter\": 1, oops'); the other lines are intact: "
     "restore that line from a backup or delete it"),
    # --- the run's contract (sealed files) and git --------------------------------------------------------
    ("k01", "config.json's run command rewritten outside ratchet",
     forged("config.json", lambda c: c.update(run_command="touch forged")), None, [N], 2,
     ".ratchet/config.json was changed outside ratchet (it does not match its seal); nothing was run. Put back the "
     "version ratchet wrote, or start a new run with `init`"),
    ("k02", "state.json's incumbent score forged", forged("state.json", lambda s: s.update(incumbent_score=1.0)),
     None, ["status"], 2, ".ratchet/state.json was changed outside ratchet (it does not match its seal)"),
    ("k03", "harness.json's pinned hashes forged", forged_harness, None, [N], 2,
     ".ratchet/harness.json was changed outside ratchet (it does not match its seal)"),
    ("k04", "loop.json's agent command and cost cap rewritten", with_loop, None, ["loop"], 2,
     ".ratchet/loop.json was changed outside ratchet (it does not match its seal)"),
    ("k05", "the seal removed from config.json", forged("config.json", lambda c: c.pop("seal")), None, ["status"], 2,
     ".ratchet/config.json has no seal but this run is sealed: it was replaced outside ratchet"),
    ("k06", "state.json deleted", deleted_state, None, ["status"], 2,
     ".ratchet/state.json is missing: it was deleted outside ratchet"),
    ("k07", "a forged current.json (a decided keep)", forged_current, None, ["status"], 2,
     ".ratchet/current.json has no seal but this run is sealed"),
    ("k08", "a forged record ahead of the state", forged_record, None, [N], 2,
     ".ratchet/results.jsonl's last record (iteration 1) was not written by ratchet"),
    ("k09", "the run's seal key is missing (another machine or account)", key_elsewhere, None, ["status"], 2,
     "is not on this machine (another machine or account started the run, or the key was deleted)"),
    ("k10", "reseal without a terminal", key_elsewhere, None, ["reseal"], 2,
     "reseal trusts the run's files as they are now, so a person must confirm it: run it yourself at a terminal"),
    ("k11", "config.json names a run id ratchet never made", forged("config.json", lambda c: c.update(run_id="../x")),
     None, ["status"], 2, "which is not a run id ratchet made: it was changed outside ratchet"),
    ("k12", "a run started before sealing: sealed as it is, said once", legacy_run, None, ["status"], 0,
     "sealed this run's contract (config.json, state.json, harness.json) as it is now"),
    ("k13", "a git call that hangs", hanging_git, None, [N], 1,
     "git status did not finish within 1 s"),
    ("k14", "gitguard.json's pins of git's configuration forged", forged_gitguard, None, [N], 2,
     ".ratchet/gitguard.json was changed outside ratchet (it does not match the digest harness.json seals)"),
    # --- executors (--executor slurm|ray) -------------------------------------------------------------
    ("x01", "unknown executor", None, None, INIT + ["--executor", "pbs"], 2, "invalid choice: 'pbs'"),
    ("x02", "--executor-options that do not split like a shell line", None, None,
     INIT + ["--executor", "slurm", "--executor-options", "--partition='gpu"], 2, "cannot be split like a shell line"),
    ("x03", "--executor-options for a local run", None, None, INIT + ["--executor-options", "--partition=gpu"], 2,
     "--executor-options needs --executor slurm or ray"),
    ("x04", "an option ratchet sets itself", None, None,
     INIT + ["--executor", "slurm", "--executor-options", "--job-name=mine"], 2,
     "--job-name is set by ratchet for every slurm trial"),
    ("x05", "ray with a report file", None, None, INIT[:-3] + ["out.txt", "--protect", "bench.py", "--executor", "ray"],
     2, "--executor ray reads the metric from the job's logs"),
    ("x06", "ray address that is not the dashboard's http address", None, None,
     INIT + ["--executor", "ray", "--executor-options", "--address=ray://head:10001"], 2,
     "must be the dashboard's http(s) address"),
    ("x07", "scheduler commands missing at init", lambda t, r: scheduler_path(t, None), None,
     INIT + ["--executor", "slurm"], 2, "--executor slurm: sbatch, squeue, scontrol, scancel not found on PATH"),
    ("x08", "scheduler commands gone when a trial starts", lambda t, r: (scheduler_path(t, "fake"),
     cli(*INIT, "--executor", "slurm", cwd=r), scheduler_path(t, None)), None, ["baseline"], 2,
     "not found on PATH (they were at init)"),
    ("x09", "--cancel-command with an executor", None, None,
     INIT + ["--executor", "slurm", "--cancel-command", "scancel --name=$RATCHET_TRIAL_ID"], 2,
     "--executor slurm cancels its jobs itself: leave --cancel-command out"),
    ("x10", "a ray job submit option ratchet does not translate", None, None,
     INIT + ["--executor", "ray", "--executor-options", "--headers={}"], 2,
     "'--headers={}' is not an option ratchet translates for Ray's Jobs API"),
    ("x11", "a ray runtime env field naming a local file", None, None,
     INIT + ["--executor", "ray", "--executor-options", "--runtime-env-json='{\"pip\": \"requirements.txt\"}'"], 2,
     "--runtime-env-json 'pip' is not supported (a requirements file is read by the CLI"),
]


def scheduler_path(t, fake):
    """PATH with git and python only, plus stand-ins for the Slurm commands when `fake`
    (init checks they exist; they never run in these rows)."""
    import shutil
    folder = tempfile.mkdtemp()
    t.addCleanup(shutil.rmtree, folder, True)
    for tool in ("git", "python3"):
        os.symlink(shutil.which(tool), os.path.join(folder, tool))
    if fake:
        for tool in ("sbatch", "squeue", "scontrol", "scancel"):
            write(folder, tool, "#!/bin/sh\nexit 1\n")
            os.chmod(os.path.join(folder, tool), 0o755)
    t.addCleanup(os.environ.__setitem__, "PATH", os.environ["PATH"])  # LIFO: the first saved is put back last
    os.environ["PATH"] = folder


def snapshot(repo):
    """Everything the user has: branches, HEAD, index, and every work-tree file outside .ratchet/."""
    if not os.path.isdir(repo) or not os.path.exists(os.path.join(repo, ".git")):
        files = {}
        for dp, dn, fn in os.walk(repo):
            for n in fn:
                with open(os.path.join(dp, n), "rb") as f:
                    files[os.path.relpath(os.path.join(dp, n), repo)] = f.read()
        return {"files": files}
    files = {}
    for dp, dn, fn in os.walk(repo):
        dn[:] = [d for d in dn if d not in (".git", ".ratchet")]
        for n in fn:
            with open(os.path.join(dp, n), "rb") as f:
                files[os.path.relpath(os.path.join(dp, n), repo)] = f.read()
    run = lambda *a: subprocess.run(["git", *a], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    return {"files": files, "refs": run("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads"),
            "head": run("symbolic-ref", "-q", "HEAD") + run("rev-parse", "HEAD"), "index": run("ls-files", "-s")}


class BadInputTest(unittest.TestCase):
    def check(self, rid, setup, files, argv, code, text):
        repo = make_repo(self, None if files in (None, "empty") else files, commit=files != "empty")
        where = repo
        if setup == "no-git":
            started(self, repo)
        elif callable(setup):
            result = setup(self, repo)  # a setup that makes another repository returns its path
            where = result if isinstance(result, str) and os.path.isdir(result) else repo
        before = snapshot(where)
        had_state = os.path.exists(os.path.join(where, ".ratchet"))
        got, out, err = self.run_argv(setup, argv, where)
        self.assertEqual(got, code, f"{rid}: exit {got}: {err}{out}")
        self.assertIn(text, err if code else out + err, f"{rid}")
        if code:
            self.assertTrue(err.startswith("ratchet: error: "), err)
            self.assertEqual(len(err.strip().splitlines()), 1, f"{rid}: not one line: {err}")
            if not had_state and os.path.isdir(os.path.join(where, ".git")) and argv[:1] == ["init"] and "&&" not in argv:
                self.assertFalse(os.path.exists(os.path.join(where, ".ratchet", "config.json")), rid)
        after = snapshot(where)
        if argv[:1] == [N] and code == 0:  # an iteration ran: the agent's candidate was kept or reverted, not the user's files
            after["files"].pop("value.txt", None), before["files"].pop("value.txt", None)
            for k in ("refs", "head", "index"):
                after.pop(k, None), before.pop(k, None)
        if "&&" in argv or argv[:1] == ["baseline"]:  # init made the experiment branch, as it should
            after.pop("refs", None), before.pop("refs", None), after.pop("head", None), before.pop("head", None)
        self.assertEqual(after, before, f"{rid}: the user's repository changed")

    def run_argv(self, setup, argv, where):
        if setup == "no-git":
            empty = tempfile.mkdtemp()
            p = subprocess.run([PY, RATCHET, *argv], cwd=where, env={**os.environ, "PATH": empty},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            return p.returncode, p.stdout, p.stderr
        if setup == "old-python":
            return self.old_python(argv, where)
        argv = ["iterate", "--hypothesis", "h"] if argv == [N] else argv
        if "&&" in argv:
            i = argv.index("&&")
            first, argv = argv[:i], argv[i + 1:]
            if first == ["checkout-main"]:
                git(where, "checkout", "-q", "main")
            else:
                code, out, err = cli(*first, cwd=where)
                self.assertEqual(code, 0, err)
        return cli(*argv, cwd=where)

    def old_python(self, argv, where):
        """Run ratchet.py as __main__ under a faked sys.version_info of 3.9."""
        import io, contextlib
        err = io.StringIO()
        with mock.patch.object(sys, "version_info", (3, 9, 18, "final", 0)), \
                mock.patch.object(sys, "argv", [RATCHET, "-C", where, *argv]), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(RATCHET, run_name="__main__")
                code = 0
            except SystemExit as e:
                code = e.code
        return code, "", err.getvalue()


def _make(row):
    rid, what, setup, files, argv, code, text = row

    def test(self):
        self.check(rid, setup, files, argv, code, text)
    test.__doc__ = f"{rid}: {what}"
    return test


for _row in ROWS:
    setattr(BadInputTest, f"test_{_row[0]}_" + "".join(c if c.isalnum() else "_" for c in _row[1])[:50].strip("_"),
            _make(_row))



class TableDocTest(unittest.TestCase):
    def test_the_doc_lists_every_row(self):
        doc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "BAD-INPUT.md")
        with open(doc) as f:
            ids = [line.split("|")[1].strip() for line in f if line.startswith("| ") and line[2] in "ceoskx"]
        self.assertEqual(ids, [r[0] for r in ROWS])


if __name__ == "__main__":
    unittest.main()
