"""Writing a file aside and renaming it into place, the one way every writer
here replaces a file (`store.atomic_write`, the trial process records,
`swapfiles`' write-back).

The contract: the caller writes `tmp` inside the block; on a normal exit
`tmp` is renamed over `path` (atomic on one file system, so a reader sees
the old file or the new, never a part); on any failure, a full disk or a
signal included, `tmp` is removed and the error goes on. `path` is then as
it was and no temp is left behind. Durability (fsync of the data, of the
folder) is the caller's choice: it depends on what reads the file."""

import contextlib
import os


@contextlib.contextmanager
def renamed_into_place(tmp: str, path: str):
    try:
        yield
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
