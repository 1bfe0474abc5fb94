"""The narrow edge between ratchet and git: every git subprocess goes here.

Each function runs one or two git commands and returns plain data. Paths are
passed literally (GIT_LITERAL_PATHSPECS), so a file named `*.py` is never read
as a glob. A missing git or a failed command raises: UsageError when it is
the user's repository state that is wrong, RatchetError otherwise.

Git configuration is harness, not input (see the README's threat model): every
call runs with hooks disabled (`core.hooksPath=/dev/null`: no post-checkout,
reference-transaction, post-commit ... inside ratchet's own calls), no
fsmonitor, no automatic gc, no pager or prompt, and, on the subcommands that
read or write work-tree content, every filter driver the configuration names
neutralised (its clean, smudge and process commands emptied, `required` off:
git then copies bytes as they are), and no external diff or textconv. The
drivers are listed afresh whenever a configuration file changed since the
last listing (gitfilters.py), so one a trial just added to `.git/config`
never runs either. Every call has a timeout
(`RATCHET_GIT_TIMEOUT_SECONDS`, default 120): a hung git is a one-line error
naming the command, never a hang.

Branches and commits are in githistory.py, the patches that swap a change
out of and into the work tree in gitpatch.py; both call git through here.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

from ..core import record
from ..core.errors import RatchetError, UsageError
from . import gitfilters, gitroot

TIMEOUT_ENV = "RATCHET_GIT_TIMEOUT_SECONDS"
DEFAULT_TIMEOUT = 120.0

# Settings that keep code the repository (or a trial) planted out of ratchet's git calls.
_SAFE = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "gc.auto=0",
         "-c", "maintenance.auto=false", "-c", "core.pager=cat"]
# Subcommands that read or write work-tree content, so may run a filter driver or a diff driver.
_FILTERING = frozenset(("add", "apply", "checkout", "commit", "diff", "reset", "stash", "status", "worktree",
                        "read-tree", "restore", "switch", "update-index", "clean", "rm", "mv"))
_DIFFING = frozenset(("diff", "log", "show"))
# Variables of the caller's environment that would run a program or redirect output.
_DROP = ("GIT_EXTERNAL_DIFF", "GIT_PAGER", "PAGER", "GIT_ASKPASS", "SSH_ASKPASS", "GIT_EDITOR", "GIT_SEQUENCE_EDITOR")


def _env(extra: dict | None = None) -> dict:
    """The environment of a git call, read now (so PATH and the timeout can
    change between calls, as a test's fake git needs)."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    env.update({"GIT_LITERAL_PATHSPECS": "1", "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat"})
    return {**env, **extra} if extra else env


def timeout_seconds() -> float:
    """The per-call git timeout: RATCHET_GIT_TIMEOUT_SECONDS when it is a
    number > 0, else DEFAULT_TIMEOUT."""
    try:
        value = float(os.environ.get(TIMEOUT_ENV, ""))
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 and value == value and value != float("inf") else DEFAULT_TIMEOUT


def _subcommand(args) -> tuple:
    """(index, name) of the git subcommand in `args`, past leading `-c X` options."""
    i = 0
    while i < len(args) and args[i] == "-c":
        i += 2
    return i, (args[i] if i < len(args) else "")


def _filter_overrides(repo: str) -> list:
    """`-c` options emptying every filter driver the configuration defines
    (any scope, includes too). A driver name git's `-c` cannot carry (one
    holding `=`) cannot be neutralised: refused rather than run."""
    return _config(repo)[0]


def identity(repo: str) -> list:
    """The `-c` fallback identity for a commit (gitfilters.FALLBACK_IDENTITY)
    unless the configuration sets both user.email and user.name."""
    return _config(repo)[1]


def _config(repo: str) -> tuple:
    """(filter overrides, identity), from one `git config` listing kept until
    a configuration file changes (gitfilters)."""
    env = _env()
    return gitfilters.cached(repo, env, lambda: _list_config(repo, env))


def _list_config(repo: str, env: dict) -> tuple:
    p = _run(["git", *_SAFE, "config", "-z", "--get-regexp", gitfilters.LISTED], repo, env, what="git config")
    return gitfilters.parse_listing(p.stdout)


def _argv(repo: str, args) -> list:
    """The full argv of `git args`: the safe settings first, the filter
    drivers emptied and external diffs off where they could run."""
    i, sub = _subcommand(args)
    args = list(args)
    if sub in _DIFFING:
        args[i + 1:i + 1] = ["--no-ext-diff", "--no-textconv"]
    extra = _filter_overrides(repo) if sub in _FILTERING else []
    return ["git", *_SAFE, *extra, *args]


_FINISH_SECONDS = 60.0


def _stop(p: subprocess.Popen) -> None:
    """SIGTERM first (git removes its lock files on it), SIGKILL after 5 s."""
    try:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=5)
    except (subprocess.TimeoutExpired, OSError):
        p.kill()
        p.wait()


def _run(argv: list, repo: str, env: dict, input: bytes | None = None,
         what: str | None = None) -> subprocess.CompletedProcess:
    """`git argv` with pipes and the timeout, except that a signal arriving
    meanwhile (Ctrl-C, SIGTERM: an exception here) lets git finish first,
    then goes on. subprocess.run would SIGKILL git, which can leave
    `.git/index.lock` behind and fail every later git command until someone
    deletes it. A timeout stops git (SIGTERM, so it drops its locks) and
    raises a one-line RatchetError naming `what` (default `git SUBCOMMAND`)."""
    return _collect(_spawn(argv, repo, env, input is not None), argv, repo, input, what, time.monotonic())


def _spawn(argv: list, repo: str, env: dict, piped: bool = False) -> subprocess.Popen:
    try:
        return subprocess.Popen(argv, cwd=repo, env=env, stdin=subprocess.PIPE if piped else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise UsageError("git is not installed or not on PATH; install git and retry") from None


def _collect(p: subprocess.Popen, argv: list, repo: str, input: bytes | None, what: str | None, t0: float):
    """Wait for git started at `t0` (see _run); a CompletedProcess."""
    limit = timeout_seconds()
    with p:
        try:
            out, err = p.communicate(input, timeout=max(0.0, limit - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            _stop(p)
            raise RatchetError(f"{what or 'git ' + _subcommand(argv[1:])[1]} did not finish within {limit:g} s (in {repo}); it was stopped. Check what "
                               f"holds the repository (a lock, a network file system), or raise {TIMEOUT_ENV}") from None
        except BaseException:
            try:
                p.communicate(timeout=_FINISH_SECONDS)
            except BaseException:
                p.kill()
            raise
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


def _checked(p: subprocess.CompletedProcess, args) -> str:
    if p.returncode != 0:
        msg = p.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RatchetError(f"git {_subcommand(args)[1]} failed: {msg[-1] if msg else 'exit ' + str(p.returncode)}")
    return p.stdout.decode("utf-8", "surrogateescape")


def run_git(repo: str, *args: str, input: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`git args` in `repo` under the safe settings, without raising on a
    non-zero exit (the caller reads returncode)."""
    return _run(_argv(repo, args), repo, _env(env), input)


def git(repo: str, *args: str, check: bool = True, input: bytes | None = None, env: dict | None = None) -> str:
    """Run `git args` in `repo`; return stdout as text, raise on failure.
    `env` adds variables (e.g. GIT_INDEX_FILE for a private index)."""
    p = run_git(repo, *args, input=input, env=env)
    if check:
        return _checked(p, args)
    return p.stdout.decode("utf-8", "surrogateescape")


def find_root(cwd: str) -> str:
    """The work tree root containing `cwd`; UsageError when there is none.

    git prints the root as raw bytes on its own line, so the root is that
    line minus its newline, decoded like any other file name (os.fsdecode:
    a non-UTF-8 byte survives as a surrogate and round-trips to the same
    path). Never split on whitespace: `/x/sp ace` is not `/x/sp`. Each way
    of failing (no git, no repository, a folder or `.git` this user may not
    read, a repository git refuses as another user's) has its own line."""
    if not os.path.isdir(cwd):
        raise UsageError(f"{cwd} is not a directory")
    if not os.access(cwd, os.R_OK | os.X_OK):
        raise UsageError(f"cannot read {cwd}: permission denied; run ratchet as a user who may read it")
    try:
        p = run_git(cwd, "rev-parse", "--is-bare-repository", "--show-toplevel")  # no git: UsageError from _run
    except PermissionError:
        raise UsageError("git cannot be run (permission denied); check the git on PATH") from None
    first, _, rest = p.stdout.partition(b"\n")
    if first == b"true":  # bare: git prints this, then fails on --show-toplevel
        raise UsageError("this is a bare git repository; run ratchet inside a work tree")
    if p.returncode != 0:
        raise UsageError(_no_root_reason(cwd, p.stderr.decode("utf-8", "replace")))
    top = rest[:-1] if rest.endswith(b"\n") else rest
    if not top:
        raise UsageError("this is a bare git repository; run ratchet inside a work tree")
    return os.fsdecode(top)


def _no_root_reason(cwd: str, stderr: str) -> str:
    """The one line for a failed `git rev-parse --show-toplevel`."""
    if "dubious ownership" in stderr:
        return ("git refuses this repository: it belongs to another user (git's safe.directory check); "
                "run ratchet as its owner, or see `git config --global --add safe.directory`")
    if "must be run in a work tree" in stderr:
        return "this folder is inside .git, not the work tree; run ratchet from your project's work tree"
    d = os.path.abspath(cwd)
    while True:  # a .git git could not read looks like no repository at all
        dot = os.path.join(d, ".git")
        if os.path.lexists(dot) and not os.access(dot, os.R_OK | os.X_OK if os.path.isdir(dot) else os.R_OK):
            return f"cannot read {dot}: permission denied; run ratchet as the repository's owner or fix its permissions"
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    if "not a git repository" in stderr:
        return "not inside a git repository; run ratchet from your project's git work tree (git init first)"
    lines = stderr.strip().splitlines()
    return f"git cannot open this repository: {lines[0] if lines else 'it exited with an error'}"


def version() -> tuple | None:
    """git's version as a tuple of ints, e.g. (2, 39, 5); None when git is missing."""
    try:
        p = _run(["git", "--version"], ".", _env())
    except UsageError:
        return None
    m = re.search(r"git version (\d+)\.(\d+)(?:\.(\d+))?", p.stdout.decode("utf-8", "replace"))
    return tuple(int(g) for g in m.groups() if g is not None) if m else (0,)


def head_sha(repo: str) -> str | None:
    """The commit HEAD points at, or None in a repository with no commits
    (from `.git`'s files when gitroot.plain_head is sure, else from git)."""
    plain = gitroot.plain_head(repo)
    if plain is not None:
        return plain[1]
    out = git(repo, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False).strip()
    return out or None


def current_branch(repo: str) -> str | None:
    """The checked-out branch name, or None on a detached HEAD (as head_sha)."""
    plain = gitroot.plain_head(repo)
    if plain is not None:
        return plain[0]
    out = git(repo, "symbolic-ref", "-q", "--short", "HEAD", check=False).strip()
    return out or None


def is_shallow(repo: str) -> bool:
    return git(repo, "rev-parse", "--is-shallow-repository").strip() == "true"


def branch_exists(repo: str, name: str) -> bool:
    return bool(git(repo, "rev-parse", "--verify", "-q", f"refs/heads/{name}", check=False).strip())


def is_ignored(repo: str, rel: str) -> bool:
    """Whether git ignores `rel` (which need not exist); a tracked file is not ignored."""
    return run_git(repo, "check-ignore", "-q", "--", rel).returncode == 0


def valid_branch_name(repo: str, name: str) -> bool:
    return run_git(repo, "check-ref-format", "--branch", name).returncode == 0


class Change(record.Record):
    """One entry of `git status`: `xy` is the two status letters as porcelain
    v1 shows them (" M", "A ", "??", "!!"); `gitlink`: a submodule in HEAD or
    the index (mode 160000), which porcelain v2 reports with the entry."""

    xy: str
    path: str
    gitlink: bool = False

    @property
    def untracked(self) -> bool:
        return self.xy == "??"


STATUS = ("status", "--porcelain=v2", "-z", "--untracked-files=all", "--no-renames")
_GITLINK = "160000"
_MODES = {"1": (3, 5), "2": (3, 5), "u": (3, 6)}  # entry kind -> the fields holding its HEAD/index/stage modes
_PATH_AT = {"1": 8, "2": 9, "u": 10}             # -> the field the path starts at (it may hold spaces)


def status(repo: str) -> list:
    """Changed tracked paths and untracked (not ignored) files, as Changes (a
    rename as its two sides, delete + add, so callers reason about plain paths)."""
    return parse_status(git(repo, *STATUS))


def parse_status(raw: str) -> list:
    """Changes from `git status --porcelain=v2 -z` (git-status(1)): "1"/"2"
    changed entries (a "2" one, a rename, carries its old path in the next
    field), "u" unmerged, "?" untracked, "!" ignored."""
    out, fields = [], iter(raw.split("\0"))
    for entry in fields:
        kind = entry[:1]
        if kind in ("?", "!") and len(entry) > 2:
            out.append(Change(kind * 2, entry[2:]))
        elif kind in _PATH_AT:
            parts = entry.split(" ", _PATH_AT[kind])
            lo, hi = _MODES[kind]
            out.append(Change(parts[1].replace(".", " "), parts[-1], _GITLINK in parts[lo:hi]))
            if kind == "2":
                next(fields, None)
    return out


def tracked_changes(repo: str) -> list:
    return [c.path for c in status(repo) if not c.untracked]


def untracked(repo: str) -> list:
    return untracked_in(status(repo))


def untracked_in(changes: list) -> list:
    """The untracked files of a `status()` already read, sorted."""
    return sorted(c.path for c in changes if c.untracked)


def status_and_ignored(repo: str) -> tuple:
    """(`status()`, the git-ignored entries) from one git process (issue 18),
    for init, and for iterate before its trials and after its decision. An
    ignored folder is one entry ("build/"), files ignored one by one each."""
    entries = parse_status(git(repo, *STATUS, "--ignored=matching"))
    return [c for c in entries if c.xy != "!!"], sorted(c.path for c in entries if c.xy == "!!")



def nested_repos(changes: list) -> list:
    """The paths among `changes` (Changes, from the status they were read
    with) that are submodules (a gitlink in HEAD or the index) or git
    repositories inside the tree (status shows them as "dir/")."""
    return sorted(c.path for c in changes if c.gitlink or c.path.endswith("/"))


def nested_edited(repo: str, path: str) -> bool:
    """Whether the submodule at `path` differs from the commit HEAD records
    for it (its commit moved, or its files changed) beyond Python bytecode
    caches, which importing its modules writes. A nested repository git does
    not track ("dir/") always counts."""
    if path.endswith("/"):
        return True
    want = [e.split()[2] for e in git(repo, "ls-tree", "-z", "HEAD", "--", path).split("\0") if e.startswith("160000 ")]
    sub = os.path.join(repo, path)
    if not want or git(sub, "rev-parse", "HEAD", check=False).strip() != want[0]:
        return True
    raw = git(sub, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignore-submodules=none")
    for entry in (e for e in raw.split("\0") if len(e) > 3):
        if not (entry[:2] == "??" and ("__pycache__/" in entry or entry.endswith(".pyc"))):
            return True
    return False


def exclude_path(repo: str) -> str:
    rel = git(repo, "rev-parse", "--git-path", "info/exclude").strip()
    return rel if os.path.isabs(rel) else os.path.join(repo, rel)


def ensure_excluded(repo: str, pattern: str) -> None:
    """Add `pattern` to .git/info/exclude once; the user's .gitignore is untouched."""
    path = exclude_path(repo)
    try:
        with open(path, encoding="utf-8") as f:
            if pattern in (line.strip() for line in f):
                return
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"\n{pattern}\n")


