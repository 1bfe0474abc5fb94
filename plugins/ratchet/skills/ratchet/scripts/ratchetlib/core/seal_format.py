"""The bytes of a sealed file: how a seal is computed and where it sits
(FORMATS.md "Seals"); pure, so io/seal (keys, which run, what verifies)
and the tests share one definition.

A sealed JSON file is `dumps({**body, "seal": mac(key, run id, file name,
dumps(body))})`; a results.jsonl line is `line({**rec, "seal": mac(..,
"results.jsonl", line(rec))})`. `dump` makes the first with one
`dumps`: json's indented encoder is pure Python, and every sealed write and
check used to run it twice (issue 18); `body_bytes` cuts the body's bytes
back out of a file `dump` wrote instead of dumping the parsed body again.

HMAC-SHA256 is built on the interpreter's own SHA-256 (RFC 2104 over it;
core/sha256), not hmac/hashlib, which load OpenSSL: every command checks
seals, and `status` must not pay for libcrypto to print a few lines (issue
18). The digest is hmac's (tests/test_seal compares them); the compare is
the constant-time one hmac itself uses.
"""

from __future__ import annotations

import json

from .sha256 import builtin as _sha256

try:
    from _operator import _compare_digest as compare_digest
except ImportError:
    from hmac import compare_digest

FIELD = "seal"
RECORDS = "results.jsonl"
_DOMAIN = b"ratchet-seal-1"
_INNER = bytes(x ^ 0x36 for x in range(256))
_OUTER = bytes(x ^ 0x5C for x in range(256))


def hmac_sha256(key: bytes, msg: bytes) -> str:
    """HMAC-SHA256 (RFC 2104) of `msg` under `key`, hex: what hmac.new(key, msg, sha256) gives."""
    key = (_sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    inner = _sha256(key.translate(_INNER) + msg).digest()
    return _sha256(key.translate(_OUTER) + inner).hexdigest()


def mac(key: bytes, run_id: str, name: str, body: bytes) -> str:
    return hmac_sha256(key, b"\0".join((_DOMAIN, run_id.encode(), name.encode(), body)))


def dumps(obj: dict) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=False) + "\n").encode()


def _line(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def strip(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k != FIELD}


def dump(obj: dict, name: str, run_id: str | None, key: bytes | None) -> bytes:
    """The file bytes of `obj`: sealed when there is a key, plain otherwise
    (a run from before sealing, until it is adopted). The sealed bytes are
    the body's with the seal as its last member, which is what `dumps` of
    the whole would print."""
    obj = strip(obj)
    body = dumps(obj)
    if key is None:
        return body
    seal = mac(key, run_id, name, body)
    return body[:-3] + _seal_member(seal) + b"\n}\n" if obj else dumps({FIELD: seal})


def _seal_member(seal: str) -> bytes:
    return b',\n "' + FIELD.encode() + b'": "' + seal.encode() + b'"'


def body_bytes(raw: bytes, seal, body: dict) -> bytes:
    """The bytes `seal` was made over: cut from `raw` when it is exactly what
    `dump` writes (the seal its last member), else, for a file laid out
    otherwise (re-indented by hand), `body` dumped again."""
    tail = _seal_member(seal) + b"\n}\n" if isinstance(seal, str) else None
    if tail is not None and body and raw.endswith(tail):
        return raw[:-len(tail)] + b"\n}\n"
    return dumps(body)


def record_line(rec: dict, run_id: str | None, key: bytes | None) -> bytes:
    """One results.jsonl line (with its newline), sealed when there is a key."""
    rec = strip(rec)
    if key is None:
        return _line(rec) + b"\n"
    return _line({**rec, FIELD: mac(key, run_id, RECORDS, _line(rec))}) + b"\n"


def record_verifies(rec: dict, run_id: str | None, key: bytes | None) -> bool:
    seal = rec.get(FIELD)
    return bool(key) and isinstance(seal, str) and compare_digest(seal, mac(key, run_id, RECORDS, _line(strip(rec))))
