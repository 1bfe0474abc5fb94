#!/usr/bin/env python3
"""Ratchet's peak memory and disk when a trial floods its output (issue 9, part 3).

Runs `ratchet.py baseline` as a real process on throwaway repositories whose
benchmark prints, side by side in one run:
  tiny     one line `score: 7`                        (the reference)
  lines    SIZE of text lines, the metric only in the middle, non-UTF-8 bytes
  oneline  SIZE with no newline at all, the metric in the middle, no final newline
and prints for each: the output size, ratchet's peak RSS (ru_maxrss of the
ratchet process alone, read in that process), the metric it read, the size
of the kept report, and the wall time.

Usage: python3 bench/flood.py [--mib 1024]    (needs ~SIZE of free disk, ~30 s for 1 GiB)
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RATCHET = os.path.join(HERE, "..", "plugins", "ratchet", "skills", "ratchet", "scripts", "ratchet.py")

# Runs ratchet's main in this process and reports this process's own peak RSS (KiB on Linux).
WRAP = ("import os, resource, runpy, sys\n"
        "sys.argv = [sys.argv[1]] + sys.argv[3:]\nsys.path.insert(0, os.path.dirname(sys.argv[0]))\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "finally:\n    open(__import__('os').environ['RSS_OUT'], 'w').write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\n")

BENCHES = {
    "tiny": "print('score: 7')\n",
    "lines": ("import sys\nw = sys.stdout.buffer.write\nblock = b'step 123 loss=0.25 \\xff\\xfe\\xe9 ' * 3 + b'\\n'\n"
              "chunk = block * ((1 << 20) // len(block))\nn = {mib}\n"
              "for i in range(n):\n    w(chunk)\n    i == n // 2 and w(b'score: 7\\n')\n"),
    "oneline": ("import sys\nw = sys.stdout.buffer.write\nchunk = (b'\\r progress 50% \\xff\\x00' * 70000)[:1 << 20]\nn = {mib}\n"
                "for i in range(n):\n    w(chunk)\n    i == n // 2 and w(b' score: 7 ')\nw(b' done')\n"),
}


def git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def case(name: str, mib: int, where: str) -> dict:
    repo = tempfile.mkdtemp(prefix=f"flood-{name}-", dir=where)
    try:
        git(repo, "init", "-q", "-b", "main")
        with open(os.path.join(repo, "bench.py"), "w") as f:
            f.write(BENCHES[name].format(mib=mib))
        git(repo, "add", "-A")
        git(repo, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "start")
        init = [sys.executable, RATCHET, "-C", repo, "init", "--run-command", f"{sys.executable} bench.py",
                "--direction", "max", "--metric-name", "score", "--report-source", "stdout", "--no-branch"]
        subprocess.run(init, check=True, stdout=subprocess.DEVNULL)
        rss_file = os.path.join(repo, ".rss")
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-c", WRAP, RATCHET, "-", "-C", repo, "baseline", "--json"],
                           env={**os.environ, "RSS_OUT": rss_file}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        seconds = time.monotonic() - t0
        if p.returncode != 0:
            raise SystemExit(f"{name}: baseline failed: {p.stderr.decode()[-500:]}")
        trial = json.loads(p.stdout)["record"]["trials"][0]
        with open(rss_file) as f:
            rss_kib = int(f.read())
        report = os.path.join(repo, ".ratchet", trial["report"])
        return {"name": name, "output": (trial.get("clipped") or {}).get("txt", 0) + os.path.getsize(report),
                "rss_mib": rss_kib / 1024, "score": trial["score"], "kept": os.path.getsize(report), "seconds": seconds}
    finally:
        shutil.rmtree(repo, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=1024, help="output size of the flooding cases (default 1024 = 1 GiB)")
    ap.add_argument("--dir", default=None, help="where the throwaway repositories go (default: the temp dir)")
    a = ap.parse_args()
    rows = [case(n, a.mib, a.dir) for n in ("tiny", "lines", "oneline")]
    print(f"{'case':8} {'output':>12} {'peak RSS':>10} {'metric':>7} {'report kept':>12} {'seconds':>8}")
    for r in rows:
        print(f"{r['name']:8} {r['output'] / 2 ** 20:9.1f} MiB {r['rss_mib']:6.1f} MiB {r['score']!s:>7} "
              f"{r['kept'] / 2 ** 20:8.2f} MiB {r['seconds']:8.1f}")
    worst = max(rows[1:], key=lambda r: r["rss_mib"])
    print(f"peak memory on {a.mib} MiB of output: {worst['rss_mib']:.1f} MiB "
          f"({worst['rss_mib'] / rows[0]['rss_mib']:.2f}x the {rows[0]['rss_mib']:.1f} MiB of a one-line output); "
          f"disk: the full output while the trial runs, then {max(r['kept'] for r in rows) / 2 ** 20:.1f} MiB kept")


if __name__ == "__main__":
    main()
