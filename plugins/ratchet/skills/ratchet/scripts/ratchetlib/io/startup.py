"""The interpreter startup hooks a trial can plant outside the repository.

Python runs `sitecustomize`/`usercustomize` and every `.pth` file of its site
directories at the start of every process, the benchmark's included. A
candidate's run that writes one there would run its code inside the
incumbent's next run (slowing it, or changing what it prints), and nothing
in the working tree would show it. So every run is bracketed: `snapshot()`
before it, `changed()` after it, and `undo()` puts back what the run did
(a created hook is removed, a changed or deleted one is rewritten from the
bytes kept in the snapshot).

Watched: the user site directories under PYTHONUSERBASE (default ~/.local;
every `lib/python*/site-packages`, so a run command using another Python
than ratchet's is covered), the site directories of ratchet's interpreter,
the folders on PYTHONPATH, and the file PYTHONSTARTUP names. The paths come
from ratchet's own environment, which every trial inherits.
"""

from __future__ import annotations

import glob
import os
import site
import sys

KEEP_BYTES = 256 << 10            # a hook up to this size is restorable
HOOK_STEMS = frozenset(("sitecustomize", "usercustomize"))
CREATED, CHANGED, DELETED = "created", "changed", "deleted"


def _user_base(env) -> str:
    return env.get("PYTHONUSERBASE") or os.path.join(os.path.expanduser("~"), ".local")


def site_dirs(env=None) -> list:
    """Every folder whose hooks a Python started by a trial may run."""
    env = os.environ if env is None else env
    base = _user_base(env)
    found = glob.glob(os.path.join(glob.escape(base), "lib", "python*", "site-packages"))
    found += glob.glob(os.path.join(glob.escape(base), "Python", "*", "site-packages"))  # Windows-style layout
    try:
        found += list(site.getsitepackages())
    except AttributeError:  # a virtualenv's old site.py
        pass
    found += [os.path.join(sys.prefix, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")]
    found += [p for p in (env.get("PYTHONPATH") or "").split(os.pathsep) if p]
    return sorted({os.path.abspath(p) for p in found})


def within(repo: str, env=None) -> bool:
    """Whether a watched folder or PYTHONSTARTUP lies in (or holds) `repo`:
    then a swap of the repository's files can move a hook."""
    env = os.environ if env is None else env
    root = os.path.realpath(repo)
    watched = site_dirs(env) + ([os.path.abspath(env["PYTHONSTARTUP"])] if env.get("PYTHONSTARTUP") else [])
    for p in map(os.path.realpath, watched):
        if p == root or p.startswith(root + os.sep) or root.startswith(p + os.sep):
            return True
    return False


def _is_hook(name: str) -> bool:
    return name.endswith(".pth") or name.split(".", 1)[0] in HOOK_STEMS


def _hooks_among(names: list) -> list:
    """The hook names of a folder's listing; str methods first, so a
    site-packages of thousands of entries costs little more than its listing."""
    return [n for n in names if (n.endswith(".pth") or n.startswith(_STEM_PREFIXES)) and _is_hook(n)]


_STEM_PREFIXES = tuple(HOOK_STEMS)


def _entry(path: str) -> list | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    data = None
    if os.path.isfile(path) and st.st_size <= KEEP_BYTES:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            data = None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode, data]


def snapshot(env=None) -> dict:
    """{path: [size, mtime_ns, ctime_ns, inode, mode, bytes or None]} of every hook now."""
    env = os.environ if env is None else env
    out = {}
    for d in site_dirs(env):
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in _hooks_among(names):
            full = os.path.join(d, name)
            if os.path.isdir(full) and not os.path.islink(full):  # a `usercustomize/` package
                for top, _, files in os.walk(full):
                    for f in files:
                        e = _entry(os.path.join(top, f))
                        if e is not None:
                            out[os.path.join(top, f)] = e
            else:
                e = _entry(full)
                if e is not None:
                    out[full] = e
    startup = env.get("PYTHONSTARTUP")
    if startup:
        e = _entry(os.path.abspath(startup))
        if e is not None:
            out[os.path.abspath(startup)] = e
    return out


def written_since(t0: float, env=None) -> list:
    """The hooks created or changed at `t0` (seconds since the epoch) or
    later, by their ctime (which no process can set back), with the
    compiled copies Python made of them since (`__pycache__/STEM.*.pyc`):
    what a trial left by a killed command may have planted after the last
    check of its own run (keep/recover moves them aside). A second of slack
    covers the coarse clock a start time is counted in."""
    since = int((t0 - 1.0) * 1e9)
    found = []
    for path, entry in snapshot(env).items():
        cached = glob.glob(os.path.join(glob.escape(os.path.dirname(path)), "__pycache__",
                                        glob.escape(os.path.splitext(os.path.basename(path))[0]) + ".*.pyc"))
        found += [path] if entry[2] >= since else []  # the snapshot's ctime_ns
        found += [p for p in cached if _ctime_ns(p) >= since]
    return sorted(set(found))


def _ctime_ns(path: str) -> int:
    try:
        return os.lstat(path).st_ctime_ns
    except OSError:
        return -1


def changed(before: dict, after: dict | None = None) -> dict:
    """{path: created|changed|deleted} between two snapshots (default: now)."""
    after = snapshot() if after is None else after
    out = {}
    for p, e in after.items():
        if p not in before:
            out[p] = CREATED
        elif e[:4] != before[p][:4]:
            out[p] = CHANGED
    for p in before:
        if p not in after:
            out[p] = DELETED
    return dict(sorted(out.items()))


def undo(before: dict, changes: dict) -> list:
    """Put every changed hook back as in `before`; return the paths that could not be."""
    failed = []
    for p, kind in changes.items():
        try:
            if kind == CREATED:
                if os.path.isdir(p) and not os.path.islink(p):
                    import shutil  # an undo is rare (issue 18)
                    shutil.rmtree(p)
                else:
                    os.remove(p)
                continue
            data = before[p][5]
            if data is None:
                failed.append(p)
                continue
            os.makedirs(os.path.dirname(p), exist_ok=True)
            tmp = p + ".ratchet-restore"
            with open(tmp, "wb") as f:
                f.write(data)
            os.chmod(tmp, before[p][4] & 0o7777)
            os.replace(tmp, p)
        except OSError:
            failed.append(p)
    return failed
