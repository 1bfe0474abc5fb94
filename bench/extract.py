#!/usr/bin/env python3
"""Metric extraction speed on huge captured outputs: the forward line-by-line
scan against `metrics.extract` (rule 1 read backwards, see ratchetlib/metrics.py),
side by side in one run, on the same files.

Cases (SIZE of output each, ~70-byte lines unless said):
  end      training-log noise, the metric printed once at the very end   (the usual benchmark)
  every    `step N loss=... score=...` on every line, the last one counts (a tracker-style log)
  middle   the metric once in the middle of the noise                     (bench/flood.py's case)
  absent   no metric at all                                               (a crash that flooded)
  oneline  no newline at all, the metric in the middle                    (a progress bar)
For each: seconds of the forward scan (`metrics._scan`, the whole of the old
`extract`), seconds of `extract`, the speed-up, and that both read the same.

Usage: python3 bench/extract.py [--mib 1024]   (needs SIZE of free disk; the
forward scans take ~40-60 s per GiB each)
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "plugins", "ratchet", "skills", "ratchet", "scripts"))

from ratchetlib.measure import metrics  # noqa: E402

MiB = 1 << 20
NOISE = b"step 123 loss=0.2500 lr=3e-4 grad_norm=1.07 \xff\xfe tokens/s=51234 ok\n"


def _write(path: str, mib: int, kind: str) -> None:
    with open(path, "wb") as f:
        if kind == "oneline":
            chunk = (b"\r progress 50% \xff\x00" * 70000)[:MiB]
            for i in range(mib):
                f.write(chunk)
                if i == mib // 2:
                    f.write(b" score: 7 ")
            f.write(b" done")
            return
        if kind == "every":
            line = b"step 123 loss=0.2500 lr=3e-4 score=0.812 tokens/s=51234\n"
        else:
            line = NOISE
        chunk = line * (MiB // len(line))
        for i in range(mib):
            f.write(chunk)
            if kind == "middle" and i == mib // 2:
                f.write(b"score: 7\n")
        if kind == "end":
            f.write(b"score: 7\n")
        if kind == "every":
            f.write(b"step 124 loss=0.2499 lr=3e-4 score=0.815 tokens/s=51230\n")


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def forward(path: str):
    with open(path, "rb") as f:
        return metrics._scan(f, "score")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=1024, help="output size per case (default 1024 = 1 GiB)")
    ap.add_argument("--dir", default=None, help="where the files go (default: the temp dir)")
    ap.add_argument("--cases", default="end,every,middle,absent,oneline")
    a = ap.parse_args()
    where = tempfile.mkdtemp(prefix="ratchet-extract-", dir=a.dir)
    rows = []
    try:
        for kind in a.cases.split(","):
            path = os.path.join(where, kind)
            _write(path, a.mib, kind)
            size = os.path.getsize(path)
            with open(path, "rb") as f:  # the page cache holds the file for both scans
                while f.read(8 * MiB):
                    pass
            old, t_old = _timed(lambda: forward(path))
            new, t_new = _timed(lambda: metrics.extract(path, "score"))
            os.unlink(path)
            rows.append((kind, size, t_old, t_new, old == new, new.value if new.value is not None else new.status))
    finally:
        shutil.rmtree(where, ignore_errors=True)
    print(f"{'case':8} {'output':>10} {'forward scan':>13} {'extract':>10} {'speed-up':>9}  same  value")
    for kind, size, t_old, t_new, same, value in rows:
        print(f"{kind:8} {size / MiB:6.0f} MiB {t_old:11.2f} s {t_new:8.3f} s {t_old / max(t_new, 1e-9):8.0f}x  "
              f"{'yes' if same else 'NO'}   {value}")
    gib = sum(r[1] for r in rows) / (1 << 30)
    print(f"per GiB: forward scan {sum(r[2] for r in rows) / gib:.1f} s, extract {sum(r[3] for r in rows) / gib:.2f} s "
          f"(all cases together)")
    if not all(r[4] for r in rows):
        raise SystemExit("the two scans disagree")


if __name__ == "__main__":
    main()
