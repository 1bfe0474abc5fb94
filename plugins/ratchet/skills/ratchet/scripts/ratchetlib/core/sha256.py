"""SHA-256 without loading OpenSSL where the input is small (issue 18).

`hashlib` loads libcrypto on import (~3 ms, more than hashing a few small
files takes): the seals, git's configuration pins and a seed hash a few
kilobytes per command, and `status` must not pay for it. The interpreter's
own SHA-256 (`builtin`) gives the same digest and imports at once, but is
~7x slower per byte, so a large file (`for_size`) is still hashed by
OpenSSL's.
"""

try:
    from _sha2 import sha256 as builtin  # Python 3.12+
except ImportError:
    try:
        from _sha256 import sha256 as builtin  # Python 3.10, 3.11
    except ImportError:  # a build without the builtin hashes
        from hashlib import sha256 as builtin

LARGE = 256 << 10  # bytes from which OpenSSL's speed pays for its import


def for_size(size: int):
    """A new SHA-256 hash object, the faster one for `size` bytes of input."""
    if size < LARGE:
        return builtin()
    import hashlib
    return hashlib.sha256()


def hexdigest(data: bytes) -> str:
    h = for_size(len(data))
    h.update(data)
    return h.hexdigest()
