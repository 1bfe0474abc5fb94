"""The filter drivers git's configuration defines, listed again only when a
configuration file changed (gitops neutralises each one on every call that
reads or writes work-tree content), and, from the same listing, whether it
names a commit identity (issue 18: no `git config` of its own per commit).

Why: listing them is a `git config` process before every such call, half of
an `iterate`'s git processes (issue 18). The list can only change when a
file git reads its configuration from changes, so it is kept, per
repository, with the stat of each of those files, and listed afresh the
moment one of them differs: a driver a trial just added to `.git/config` (or
to ~/.gitconfig) is still never run.

Contract of `cached(repo, env, lister)`: `lister()` runs the listing and
returns (overrides, keys seen). A kept result is used only when all of these
held when it was listed and still hold: the repository's `.git` is a folder
(a linked worktree's or a submodule's `.git` file, or GIT_DIR set: always listed), no key
seen is an `include`/`includeIf` (an included file could be anywhere), and
every file git may read for this environment (GIT_CONFIG_SYSTEM or
/etc/gitconfig and the one under git's own prefix, GIT_CONFIG_GLOBAL or
~/.gitconfig and $XDG_CONFIG_HOME/git/config, `.git/config`,
`.git/config.worktree`) has the same inode, size, mtime and ctime, with the
environment variables that pick them (and GIT_CONFIG_COUNT/_PARAMETERS)
unchanged. A file changed less than RACY_SECONDS before it was listed is not
trusted (a second write within the same clock tick could keep its times):
such a listing is not kept. The tick is the kernel's coarse clock (a few ms)
where the file system keeps nanoseconds, so RACY_SECONDS is 0.1 s there; a
file whose times are whole seconds (FAT, some network file systems) gets
COARSE_RACY_SECONDS. A write is caught by its ctime, which no process can
set back.

The kept listing also outlives the process, for the next ratchet command in
the same repository (issue 18: one `git config` a command): it is written
to `.ratchet/gitconfig.json`, sealed with the run's key, whenever a listing
is kept, and read back when this process has none; the same key decides
whether it is used. A file that does not verify (forged, torn, another
run's) is ignored and listed again, never trusted; a run without a key
keeps nothing there.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from ..core.errors import RatchetError, UsageError
from . import gitroot

RACY_SECONDS = 0.1
COARSE_RACY_SECONDS = 2.0
_ENV_KEYS = ("HOME", "XDG_CONFIG_HOME", "GIT_CONFIG_SYSTEM", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM",
             "GIT_CONFIG_COUNT", "GIT_CONFIG_PARAMETERS", "PATH")
_KEPT = {}  # repo -> (key, (overrides, identity))
SAVED = "gitconfig.json"  # in the run's store (store.FILES "gitconfig"): the kept listing, for the next command
LISTED = r"^(filter|include|includeif)\.|^user\.(email|name)$"  # what `git config --get-regexp` lists for `parse_listing`
FALLBACK_IDENTITY = ["-c", "user.name=ratchet", "-c", "user.email=ratchet@localhost"]


def parse_listing(listing: bytes) -> tuple:
    """((filter overrides, identity), every key seen) of a `git config -z
    --get-regexp LISTED` listing. The overrides are `-c` options emptying
    every filter driver (any scope, includes too); a driver name git's `-c`
    cannot carry (one holding `=`) cannot be neutralised: refused rather than
    run. The identity is FALLBACK_IDENTITY unless both user.email and
    user.name are set (the last value of each, as `git config KEY` reads it)."""
    names, keys, user = [], [], {}
    for item in listing.decode("utf-8", "surrogateescape").split("\0"):
        key, _, value = item.partition("\n")
        keys.append(key)
        if key.lower() in ("user.email", "user.name"):
            user[key.lower()] = value.strip()
        elif key.startswith("filter.") and key.count(".") >= 2:
            name = key[len("filter."):].rsplit(".", 1)[0]
            if name not in names:
                names.append(name)
    out = []
    for name in names:
        if "=" in name or "\n" in name:
            raise RatchetError(f"the git filter driver {name!r} cannot be switched off for ratchet's git calls; "
                               f"remove it from the git configuration")
        for var, value in (("clean", ""), ("smudge", ""), ("process", ""), ("required", "false")):
            out += ["-c", f"filter.{name}.{var}={value}"]
    return (out, [] if user.get("user.email") and user.get("user.name") else FALLBACK_IDENTITY), keys


def config_files(repo: str, env: dict) -> list:
    """Every configuration file git may read in `repo` under `env`."""
    home = env.get("HOME") or os.path.expanduser("~")
    xdg = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    out = [env["GIT_CONFIG_SYSTEM"]] if env.get("GIT_CONFIG_SYSTEM") else ["/etc/gitconfig"]
    exe = gitroot.git_executable(env.get("PATH"))
    if exe:  # a git built with another prefix reads <prefix>/etc/gitconfig
        out.append(os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(exe))), "etc", "gitconfig"))
    out += [env["GIT_CONFIG_GLOBAL"]] if env.get("GIT_CONFIG_GLOBAL") else \
        [os.path.join(home, ".gitconfig"), os.path.join(xdg, "git", "config")]
    return out + [os.path.join(repo, ".git", "config"), os.path.join(repo, ".git", "config.worktree")]


def _stat(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _key(repo: str, env: dict) -> tuple | None:
    """What the listing depends on, or None when it cannot be kept."""
    if not os.path.isdir(os.path.join(repo, ".git")) or "GIT_DIR" in env or "GIT_COMMON_DIR" in env \
            or any(k.startswith("GIT_CONFIG_KEY_") for k in env):
        return None
    return (tuple(env.get(k) for k in _ENV_KEYS), tuple((p, _stat(p)) for p in config_files(repo, env)))


def _settled(key: tuple, now_ns: int) -> bool:
    def racy(st) -> float:
        coarse = st[2] % 1_000_000_000 == 0 and st[3] % 1_000_000_000 == 0
        return max(RACY_SECONDS, COARSE_RACY_SECONDS) if coarse else RACY_SECONDS
    return all(st is None or now_ns - max(st[2], st[3]) > racy(st) * 1e9 for _, st in key[1])


def cached(repo: str, env: dict, lister: Callable[[], tuple]) -> tuple:
    """What `lister` returns first ((overrides, identity): `parse_listing`) for `repo`,
    listed again unless kept (see the module doc)."""
    key = _key(repo, env)
    kept = _KEPT.get(repo) or (key is not None and _saved(repo)) or None
    if key is not None and kept and kept[0] == key:
        _KEPT[repo] = kept
        return kept[1]
    now_ns = time.time_ns()
    listed, seen = lister()
    includes = any(k.lower().startswith(("include.", "includeif.")) for k in seen)
    if key is not None and not includes and _settled(key, now_ns) and _key(repo, env) == key:
        _KEPT[repo] = (key, listed)
        _save(repo, key, listed)
    else:
        _KEPT.pop(repo, None)
    return listed


def _store(repo: str) -> str | None:
    """The run's store in `repo`, None when there is no run."""
    from .store import Store
    store = Store(repo)
    return store.root if store.exists() else None


def _saved(repo: str) -> tuple | None:
    """(key, listing) kept by an earlier command, when its seal verifies."""
    root = _store(repo)
    if root is None:
        return None
    try:
        with open(os.path.join(root, SAVED), "rb") as f:  # store.FILES["gitconfig"]
            raw = f.read()
    except OSError:
        return None
    from . import seal
    body = seal.verified_body(root, SAVED, raw)
    try:
        return _as_key(body["key"]), (list(body["overrides"]), list(body["identity"]))
    except (TypeError, KeyError, ValueError):
        return None


def _as_key(key: list) -> tuple:
    """A key read back from JSON, in the shape `_key` makes (tuples)."""
    env, files = key
    return tuple(env), tuple((p, None if st is None else tuple(st)) for p, st in files)


def _save(repo: str, key: tuple, listed: tuple) -> None:
    root = _store(repo)
    if root is None:
        return
    from . import seal, store
    try:
        if seal.key_for(root, SAVED)[1] is not None:
            store.write_sealed(root, SAVED, {"format": 1, "key": key, "overrides": listed[0], "identity": listed[1]})
    except (OSError, RatchetError, UsageError):
        pass  # a cache: the next command lists again
