"""The run's contract, sealed: what the user approved cannot be changed
behind ratchet's back (issue 15 point 2; FORMATS.md "Seals").

Sealed: `config.json` (run, guard, holdout, cancel commands, budgets,
direction, metric and decision settings, editable and protected sets),
`state.json` (baseline, incumbent, counters), `harness.json` (the pinned
hashes, and gitguard.json's digest: io/gitguard), `loop.json` (the headless agent command and its budgets) and
`current.json` (the iteration in progress, which recovery acts on), plus
each line of `results.jsonl` (recovery rolls the state forward from the
last one).

How (the bytes: core/seal_format): each of those files carries, as its last key, `"seal"`: an
HMAC-SHA256, keyed with a random 32-byte key made for the run at `init`,
over the rest of the file's bytes, the run id and the file's name. The key
lives outside the repository, in the user's state folder
(`$XDG_STATE_HOME/ratchet/keys/<run-id>`, else
`~/.local/state/ratchet/keys/<run-id>`; folder 0700, file 0600), so
nothing that can only write the work tree (a trial's code, an agent that
edits `.ratchet/`) can make a file that verifies. The seal is in the file
itself, so a file and its seal are replaced by one atomic rename: a kill
at any instant leaves a file that verifies, and no new crash-ordering step
exists for sealed writes.

Who may write: only store.py's writers (`write_sealed`, the Store methods
that call it) and `append_record`; every reader goes through `read_sealed`,
which refuses (UsageError, exit 2, one line naming the file) a file that
does not verify, so a command stops before it acts. Within one command,
`changed()` compares each sealed file with the bytes this process last
wrote or verified, so a file rewritten while a trial or an agent ran is
caught at once (engine makes that iteration `tampered` and puts the bytes
back).

Runs started before sealing (config.json without a seal and no key) are
sealed as they are by the first command that opens them (`adopt`), which
says so once. A key that is missing for a sealed run (another machine or
account) is a one-line refusal naming the key's path: copy the key, or run
`ratchet.py reseal` at a terminal, which shows the contract and asks the
person to type the run id before it trusts the files as they are.

Limits (README "What it guarantees"): a process running as the same user
can read the key and forge a seal, or put back an older sealed copy it
kept; the seal detects accidental and trial-code rewrites and an agent
editing `.ratchet/` through its tools or Bash, it cannot stop a determined
same-user attacker.
"""

from __future__ import annotations

import json
import os
import re

from ..core.errors import UsageError
from ..core.seal_format import FIELD, RECORDS, compare_digest, dump, hmac_sha256, record_line, record_verifies, strip
from ..core.seal_format import body_bytes as _body_bytes, mac as _mac

# The byte format is core/seal_format's; these names are also seal's, as store.py,
# the tests and bench/overhead.py have always called them.
__all__ = ["FIELD", "RECORDS", "compare_digest", "dump", "hmac_sha256", "record_line", "record_verifies", "strip"]
SEALED = ("config.json", "state.json", "harness.json", "loop.json", "current.json")
_ADOPTING = "adopting "  # a key file whose adoption of a pre-seal run is not finished
_RUN_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,127}")

_pending = {}  # store root -> run id: `init` seals files before config.json names the run
_good = {}     # (store root, name) -> the bytes this process last wrote or verified (None: absent)
# What this command read once (every sealed read and write asks, ~20 an iterate, issue 18); emptied
# by `forget` (a new command), `begin` and a write of config.json (a new run) or of a key file.
_runs = {}     # store root -> (run id, config sealed?)
_keys = {}     # run id -> the key file's text, None when there is none


class SealError(UsageError):
    """A sealed file does not verify, or its key is missing: exit 2, nothing run."""


# --- the key ----------------------------------------------------------------

def key_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "ratchet", "keys")


def key_path(run_id: str) -> str:
    if not valid_run_id(run_id):
        raise SealError(f"config.json names the run {run_id!r}, which is not a run id ratchet made: it was changed "
                        f"outside ratchet; nothing was run. Put back the version ratchet wrote or start a new run "
                        f"with `init`")
    return os.path.join(key_dir(), run_id)


def _read_key_file(run_id: str) -> str | None:
    if run_id in _keys:
        return _keys[run_id]
    _keys[run_id] = _read_key_file_now(run_id)
    return _keys[run_id]


def _read_key_file_now(run_id: str) -> str | None:
    try:
        with open(key_path(run_id), encoding="ascii") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise SealError(f"cannot read this run's seal key {key_path(run_id)}: {getattr(e, 'strerror', e)}; "
                        f"make it readable by you (mode 0600)") from None


def _parse_key(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        key = bytes.fromhex(text[len(_ADOPTING):] if text.startswith(_ADOPTING) else text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise SealError(f"this run's seal key {key_path_hint()} is damaged; copy it again from where the run "
                        f"started, or run `ratchet.py reseal` at a terminal")
    return key


def key_path_hint() -> str:
    return os.path.join(key_dir(), "<run-id>")


def read_key(run_id: str) -> bytes | None:
    """The run's key, None when there is none on this machine."""
    return _parse_key(_read_key_file(run_id))


def adopting(run_id: str) -> bool:
    """Whether an adoption of a pre-seal run was cut short (see `adopt`)."""
    text = _read_key_file(run_id)
    return text is not None and text.startswith(_ADOPTING)


def _write_key_file(run_id: str, text: str, exclusive: bool) -> None:
    _keys.clear()
    folder = key_dir()
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
        path = key_path(run_id)
        tmp = path + ".tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fd = os.open(tmp, flags, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            os.link(tmp, path)  # fails when a key already exists: never replace a run's key
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except FileExistsError:
        os.unlink(tmp)
        raise
    except OSError as e:
        raise SealError(f"cannot write this run's seal key in {folder}: {e.strerror}; make that folder writable, "
                        f"or set XDG_STATE_HOME to a folder you can write") from None


def make_key(run_id: str, adopting_run: bool = False) -> bytes:
    """A new random key for `run_id` (an existing key is kept and returned)."""
    import secrets
    key = secrets.token_bytes(32)
    try:
        _write_key_file(run_id, (_ADOPTING if adopting_run else "") + key.hex(), exclusive=True)
    except FileExistsError:
        return read_key(run_id)
    return key


def replace_key(run_id: str) -> bytes:
    """`reseal` on a machine without the run's key (or with a damaged one)."""
    import secrets
    key = secrets.token_bytes(32)
    _write_key_file(run_id, key.hex(), exclusive=False)
    return key


def finish_adoption(run_id: str, key: bytes) -> None:
    _write_key_file(run_id, key.hex(), exclusive=False)


# --- which run, which key ------------------------------------------------------------

def begin(root: str, run_id: str) -> None:
    """`init`: make the new run's key before its first sealed file is written."""
    make_key(run_id)
    _pending[root] = run_id
    _runs.clear()


def _config_on_disk(root: str) -> dict | None:
    try:
        with open(os.path.join(root, "config.json"), "rb") as f:
            obj = json.loads(f.read())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def run_of(root: str) -> tuple:
    """(run id, config sealed?) of the run in `root`; (None, False) when unknown."""
    if root in _runs:
        return _runs[root]
    cfg = _config_on_disk(root)
    if cfg is None:
        return _pending.get(root), True  # not kept: init is about to write it
    _runs[root] = cfg.get("run_id"), FIELD in cfg
    return _runs[root]


def _where(root: str, name: str) -> str:
    return f".ratchet/{name}" if os.path.basename(root) == ".ratchet" else os.path.join(root, name)


def changed_outside(root: str, name: str, how: str) -> SealError:
    """The refusal for file `name` that ratchet did not write as it is (`how`)."""
    return SealError(f"{_where(root, name)} {how}; nothing was run. Put back the version ratchet wrote, or start a "
                     f"new run with `init` (`ratchet.py reseal`, at a terminal, accepts the file as it is now)")


def _missing_key(root: str, run_id: str, name: str) -> SealError:
    return SealError(f"this run's seal key {key_path(run_id)} is not on this machine (another machine or account "
                     f"started the run, or the key was deleted), so {_where(root, name)} cannot be checked; copy "
                     f"that file from where the run started, or run `ratchet.py reseal` at a terminal")


def key_for(root: str, name: str, obj: dict | None = None) -> tuple:
    """(run id, key) for reading or writing `name` in `root`; key None for a
    run from before sealing. SealError when the run is sealed but its key
    is missing."""
    if name == "config.json" and obj is not None and obj.get("run_id"):
        run_id, sealed = obj["run_id"], True
    else:
        run_id, sealed = run_of(root)
    if run_id is None:
        return None, None
    key = read_key(run_id)
    if key is None and sealed:
        raise _missing_key(root, run_id, name)
    return run_id, key


# --- reading and writing (called by store.py only) -------------------------------------

def remember(root: str, name: str, data: bytes | None) -> None:
    _good[(root, name)] = data
    if name == "config.json":
        _runs.pop(root, None)


def forget(root: str) -> None:
    """A new command (or a new run) starts: what an earlier one in this
    process saw of `root` says nothing about the files now."""
    for k in [k for k in _good if k[0] == root]:
        del _good[k]
    _runs.clear()
    _keys.clear()


def valid_run_id(run_id) -> bool:
    return isinstance(run_id, str) and bool(_RUN_ID.fullmatch(run_id))


def verify(root: str, name: str, raw: bytes, obj: dict) -> dict:
    """`obj` (parsed from `raw`) without its seal; SealError when it does not verify."""
    run_id, key = key_for(root, name)
    mac = obj.get(FIELD)
    if key is None or (mac is None and adopting(run_id)):
        remember(root, name, raw)
        return strip(obj)  # a run from before sealing, or one `adopt` is sealing: accepted as it is
    if mac is None:
        raise changed_outside(root, name, "has no seal but this run is sealed: it was replaced outside ratchet")
    body = strip(obj)
    if raw == _good.get((root, name)):  # the very bytes this process wrote or verified
        return body
    if not _holds(key, run_id, name, raw, mac, body):
        raise changed_outside(root, name, "was changed outside ratchet (it does not match its seal)")
    remember(root, name, raw)
    return body


def _holds(key: bytes, run_id: str, name: str, raw: bytes, mac, body: dict) -> bool:
    """Whether `mac` is the seal of `body`, whose bytes are cut from `raw` (seal_format.body_bytes)."""
    return isinstance(mac, str) and compare_digest(mac, _mac(key, run_id, name, _body_bytes(raw, mac, body)))


def verified_body(root: str, name: str, raw: bytes) -> dict | None:
    """The body of `raw` (file `name`) when it carries a seal that verifies
    under this run's key; None otherwise, never an error: for a file ratchet
    makes again rather than refuses (gitfilters' kept listing). A run
    without a key (from before sealing) trusts nothing this way."""
    try:
        run_id, key = key_for(root, name)
        obj = json.loads(raw)
    except (UsageError, ValueError, UnicodeDecodeError):
        return None
    if key is None or not isinstance(obj, dict):
        return None
    body = strip(obj)
    return body if _holds(key, run_id, name, raw, obj.get(FIELD), body) else None


def missing(root: str, name: str) -> SealError:
    """The refusal for a sealed file that must exist (state.json, harness.json)."""
    return changed_outside(root, name, "is missing: it was deleted outside ratchet")


def is_sealed(root: str) -> bool:
    run_id, sealed = run_of(root)
    return bool(run_id) and (sealed or read_key(run_id) is not None)


def changed(root: str) -> list:
    """Sealed files that differ from the bytes this process last wrote or
    verified (a rewrite made while this command ran), in SEALED order."""
    out = []
    for name in SEALED:
        if (root, name) not in _good:
            continue
        try:
            with open(os.path.join(root, name), "rb") as f:
                now = f.read()
        except FileNotFoundError:
            now = None
        if now != _good[(root, name)]:
            out.append(name)
    return out


def known(root: str, name: str) -> tuple:
    """(whether this process knows `name`'s good bytes, those bytes or None)."""
    return (root, name) in _good, _good.get((root, name))
