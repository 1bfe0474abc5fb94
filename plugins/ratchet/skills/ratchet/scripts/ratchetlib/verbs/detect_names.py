"""What a metric's name tells `detect`: its likely direction (`loss`,
`latency_ms`: min; `accuracy`, `tokens_per_sec`: max; else unknown, and the
setup asks), which names are bookkeeping rather than metrics (step, epoch,
learning rate), and the order candidates are proposed in."""

from __future__ import annotations

import re

BOOKKEEPING = {"step", "epoch", "global_step", "_step", "_runtime", "_timestamp", "_wandb", "total_flos",
                "train_runtime", "train_samples_per_second", "train_steps_per_second", "eval_runtime",
                "eval_samples_per_second", "eval_steps_per_second", "learning_rate", "lr", "grad_norm",
                "time", "timestamp", "wall_time", "iteration", "iter", "batch", "created_at"}
_MIN_WORDS = ("loss", "error", "errors", "err", "latency", "time", "duration", "seconds", "secs", "sec", "ms",
              "us", "ns", "usec", "msec", "elapsed", "wall", "runtime", "ttft", "perplexity",
              "ppl", "bpb", "bpc", "mse", "mae", "rmse", "wer", "cer", "size", "bytes", "kb", "mb", "gb", "kib",
              "mib", "gib", "memory", "mem", "rss", "allocs", "allocations", "cycles", "instructions", "misses",
              "regret", "nll", "distance", "cost", "fail", "failures")
_MAX_WORDS = ("acc", "accuracy", "f1", "auc", "auroc", "precision", "recall", "score", "throughput", "bleu",
              "rouge", "map", "iou", "dice", "reward", "return", "ops", "qps", "rps", "tps", "ips", "per_sec",
              "per_second", "speed", "fps", "r2", "correct", "pass", "passed", "win", "hits", "hit")
# A rate per unit of time is a throughput: higher is better, whatever the unit word says.
_PER_TIME = re.compile(r"(?:^|_)per_(?:s|sec|secs|second|ms|us|min|minute|hour)$")


def direction_of(name: str) -> str | None:
    """`min`, `max` or None, from the words in a metric name."""
    words = [w for w in re.split(r"[^a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()) if w]
    joined = "_".join(words)
    if name.lower().replace(" ", "").endswith("/s") or _PER_TIME.search(joined):
        return "max"
    for w in words:
        if w in _MIN_WORDS:
            return "min"
    for w in words:
        if w in _MAX_WORDS:
            return "max"
    if any(joined.endswith(x) for x in ("per_sec", "per_second")):
        return "max"
    return None


def rank(name: str) -> tuple:
    """Sort key: validation/eval metrics with a known direction first."""
    low = name.lower()
    split = 0 if re.match(r"(val|valid|validation|eval|test)[_/.]", low) or low.startswith(("eval", "val")) else 1
    kind = 0 if "loss" in low else 1 if "acc" in low else 2
    return (direction_of(name) is None, split, kind, name)
