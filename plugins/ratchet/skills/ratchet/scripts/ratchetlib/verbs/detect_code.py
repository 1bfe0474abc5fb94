"""What the project's source says about metrics, for `detect`: the trackers
the code uses but that have written nothing yet (wandb.init, SummaryWriter,
a Trainer, a CSVLogger), metric-looking string literals, and every
`NAME: value` / `NAME=value` a source file prints, with the stream it prints
to (so a plain benchmark gets a complete proposal). Nothing is executed."""

import os
import re

from .detect_names import BOOKKEEPING, direction_of, rank
from .detect_scan import join, read_head, walk_tree

_CODE_METRIC_WORDS = {"loss", "acc", "accuracy", "f1", "auc", "score", "throughput", "latency", "ppl",
                      "perplexity", "bpb", "mse", "mae", "rmse", "bleu", "rouge", "reward", "wer", "cer"}
# A string literal that is a name ("val_loss") or starts a `name: value` print ("latency_ms: ").
_METRIC_LITERAL = re.compile(r"""["']([A-Za-z][\w./-]{1,40})(?:["']|\s*[:=])""")
_CODE_TRACKERS = (("wandb", re.compile(r"\bwandb\.init\(")),
                  ("tensorboard", re.compile(r"\bSummaryWriter\(|\btensorboard\b")),
                  ("hf", re.compile(r"\bTrainer\(|\bSeq2SeqTrainer\(|\bSFTTrainer\(")),
                  ("lightning", re.compile(r"\bCSVLogger\(|\bpytorch_lightning\b|\bimport lightning\b|\blightning\.pytorch\b")))


def code_facts(root: str) -> tuple:
    """(trackers the code uses, metric-looking string literals) from the Python sources."""
    uses, names = {}, set()
    for rel, _, files in walk_tree(root):
        if rel and rel.split("/")[0] in ("tests", "test", "docs", "examples"):
            continue
        for name in files:
            if not name.endswith(".py"):
                continue
            path = join(rel, name)
            text = read_head(os.path.join(root, path))
            for kind, pattern in _CODE_TRACKERS:
                if pattern.search(text):
                    uses.setdefault(kind, path)
            for literal in _METRIC_LITERAL.findall(text):
                words = set(re.split(r"[^a-z0-9]+", literal.lower()))
                if words & _CODE_METRIC_WORDS and direction_of(literal) and len(literal) <= 30 \
                        and not re.search(r"\.(py|json|jsonl|csv|txt|pt|bin)$", literal):
                    names.add(literal)
    return [{"kind": k, "file": f} for k, f in sorted(uses.items())], sorted(names, key=rank)[:20]


_SOURCE_EXTS = (".py", ".sh", ".bash", ".js", ".mjs", ".ts", ".go", ".rs", ".c", ".cc", ".cpp", ".rb", ".jl",
                ".java", ".kt", ".swift", ".lua", ".r", ".R", ".pl")
_PRINT_CALL = re.compile(r"\b(print|printf|println|eprint|eprintln|echo|puts|console\.(?:log|error|info)|fmt\.F?Print"
                         r"|System\.(?:out|err)\.print|write|cout|cerr|log|info|say)\b")
# `"NAME: ` / `'NAME=` at the start of a string literal, then a value: a placeholder
# ({...}, %..., $var) or a number, or the literal ends there (print("wall_ms:", ms)).
_PRINTED = re.compile(r"""(?:["'`]|f["'])\s*([A-Za-z][\w./-]{0,40}?)\s*[:=]\s*"""
                      r"""(?=["'`,)]|\{|%|\$|[-+]?\.?\d)""")
_STDERR = re.compile(r"stderr|console\.error|eprint|cerr|System\.err|>&2")


def printed_metrics(root: str) -> list:
    """[{"name", "file", "stream"}] for every `NAME: value` / `NAME=value` a source file prints.

    A line counts when it calls something that prints (print, echo, printf,
    console.log, ...) and a string literal on it starts with `NAME:` or `NAME=`
    followed by a value or a placeholder; `stream` is stderr when the line
    writes there, else stdout. Tests, docs and examples are skipped; each name
    keeps the first file it is seen in (sorted walk)."""
    found = {}
    for rel, _, files in walk_tree(root):
        if rel and rel.split("/")[0] in ("tests", "test", "docs", "examples"):
            continue
        for name in files:
            if not name.endswith(_SOURCE_EXTS) or name.startswith("test_"):
                continue
            path = join(rel, name)
            for line in read_head(os.path.join(root, path), 128 * 1024).splitlines():
                if not _PRINT_CALL.search(line):
                    continue
                for metric in _PRINTED.findall(line):
                    low = metric.lower()
                    if metric in found or low in BOOKKEEPING or low in ("http", "https", "file", "usage", "error",
                                                                         "warning", "note", "todo", "info", "debug"):
                        continue
                    found[metric] = {"name": metric, "file": path,
                                     "stream": "stderr" if _STDERR.search(line) else "stdout"}
    return sorted(found.values(), key=lambda m: rank(m["name"]))[:20]
