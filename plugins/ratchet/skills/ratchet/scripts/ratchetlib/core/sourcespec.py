"""A `--report-source` value, parsed: where a trial's score comes from.

A `--report-source` value names where a trial's score comes from:

    stdout | stderr                  the command's own output      (core extractor)
    PATH                             a text or JSON report file    (core extractor)
    json:PATH[#KEY.PATH]             a value in one JSON document
    jsonl:PATH[#KEY]                 the last JSON-lines record that has KEY
    csv:PATH[#COLUMN]                the last row with a non-empty COLUMN
    hf:PATH[#KEY][@last|@best]       Hugging Face Trainer trainer_state.json
    wandb:DIR[#KEY]                  Weights & Biases wandb-summary.json
    tensorboard:GLOB[#TAG]           TensorBoard events.out.tfevents.* files
    lightning:PATH[#COLUMN]          PyTorch Lightning CSVLogger metrics.csv

`tb:` is accepted for `tensorboard:`. KEY, COLUMN and TAG default to the
metric name. A KEY is dotted (`eval.loss`, `history.-1.loss`: integer segments
index lists, negative from the end); a key that itself contains dots is found
too, because the longest literal key is tried first. PATHs are relative to the
repository root and may not leave it (checked lexically here and again after
symlinks when reading); write `./x:y` for a plain report file whose name
looks like `kind:`.

Pure: no file is read here (measure/sources.py reads them), so `config` can
validate the flag at init without importing the readers. `parse_source` raises
`ValueError` with a one-line message naming the fix.
"""

from __future__ import annotations

import os
import posixpath
import re

from . import record

STREAMS = ("stdout", "stderr")
TEXT = "text"
KINDS = ("json", "jsonl", "csv", "hf", "wandb", "tensorboard", "lightning")
_ALIASES = {"tb": "tensorboard"}
_EXAMPLES = {
    "json": "json:results.json#eval.loss",
    "jsonl": "jsonl:metrics.jsonl#val_loss",
    "csv": "csv:log.csv#val_loss",
    "hf": "hf:output/trainer_state.json#eval_loss@best",
    "wandb": "wandb:wandb#val_loss",
    "tensorboard": "tensorboard:runs/**/events.out.tfevents.*#loss",
    "lightning": "lightning:lightning_logs#val_loss",
}
# Kinds whose PATH names one file the runner may move aside before a trial.
SINGLE_FILE = (TEXT, "json", "jsonl", "csv", "lightning")

class Source(record.Record):
    """A parsed `--report-source`. `key` None means "use the metric name"."""

    kind: str
    path: str | None = None
    key: str | None = None
    pick: str = "last"
    spec: str = ""

    @property
    def structured(self) -> bool:
        """True for the kinds `read_metric` reads (not streams, not text)."""
        return self.kind in KINDS


# --------------------------------------------------------------- parsing


def parse_source(spec: str) -> Source:
    """Parse a `--report-source` value; ValueError with the fix if invalid."""
    text = spec.strip() if isinstance(spec, str) else ""
    if not text:
        raise ValueError("--report-source is empty; use stdout, stderr, a file path, or KIND:PATH#KEY")
    if text in STREAMS:
        return Source(text, spec=text)
    m = re.match(r"([A-Za-z][A-Za-z0-9_-]*):(.*)\Z", text, re.S)
    if not m:
        return Source(TEXT, _clean_path(text, text), spec=text)
    kind = _ALIASES.get(m.group(1).lower(), m.group(1).lower())
    if kind not in KINDS:
        raise ValueError(f"unknown report source kind '{m.group(1)}:' in '{text}'; use one of "
                         f"{', '.join(k + ':' for k in KINDS)}, or write ./{text} for a file path")
    rest, pick = m.group(2), "last"
    if kind == "hf":
        rest, pick = _split_pick(rest, text)
    path, sep, key = rest.rpartition("#") if "#" in rest else (rest, "", "")
    if sep and not key:
        raise ValueError(f"empty key after '#' in '{text}'; write {_EXAMPLES[kind]} "
                         f"or drop the '#' to use the metric name")
    if not path:
        raise ValueError(f"'{text}' names no path; write for example {_EXAMPLES[kind]}")
    return Source(kind, _clean_path(path, text), key or None, pick, text)


def _split_pick(rest: str, text: str):
    m = re.search(r"@([A-Za-z]+)\Z", rest)
    if not m:
        return rest, "last"
    if m.group(1).lower() not in ("best", "last"):
        raise ValueError(f"unknown selector '@{m.group(1)}' in '{text}'; use @last or @best")
    return rest[:m.start()], m.group(1).lower()


def _clean_path(path: str, text: str) -> str:
    if os.path.isabs(path) or path.startswith("~"):
        raise ValueError(f"'{text}': give the path relative to the repository root, not '{path}'")
    norm = posixpath.normpath(path.replace("\\", "/"))
    if norm == ".." or norm.startswith("../"):
        raise ValueError(f"'{text}': the path '{path}' leaves the repository; use a path inside it")
    return norm
