"""The ideas backlog: `.ratchet/ideas.json`, ideas the agent (or ratchet) means to try.

The agent adds ideas it has no room for this iteration (`ideas add`), marks them
done when tried (`ideas done N`), and ratchet adds reverted near misses on its
own, with their figures, so a promising change that fell short is not
forgotten. Ids are assigned from a counter that only grows, so `done N` always
means the idea the agent saw as #N.

File shape (format 1):

    {"format": 1, "next_id": 4,
     "ideas": [{"id": 1, "text": "...", "source": "agent" | "near-miss",
                "status": "open" | "done", "created": "...Z", "closed": null,
                "figures": null | {"iter": 7, "estimate": 0.012,
                                   "interval": [-0.004, 0.028], "delta": 1.2,
                                   "avg": 101.2, "incumbent": 100.0,
                                   "patch": "patches/iter-0007.patch"},
                "key": "normalized hypothesis, near misses only"}]}

The file stays small whatever the history length: open near misses beyond the
last NEAR_MISS_CAP and done ideas beyond the last DONE_CAP are dropped (their
ids are never reused). Callers hold the `.ratchet/lock` around changes.
"""

from ..core import change
from ..core.memory import looks_better
from . import hints
from ..io import store
from ..core.errors import UsageError

FORMAT = 1
NEAR_MISS_CAP = 20
DONE_CAP = 50
TEXT_CAP = 300
SOURCES = ("agent", "near-miss")


def _empty():
    return {"format": FORMAT, "next_id": 1, "ideas": []}


def load(path):
    """The backlog at `path` (an empty one when the file does not exist);
    UsageError for a corrupt file or a newer format."""
    data = store.read_json(path, "ideas.json") or _empty()
    data.setdefault("next_id", 1)
    data.setdefault("ideas", [])
    return data


def _prune(ideas):
    """Bound the file: the newest NEAR_MISS_CAP open near misses and the newest
    DONE_CAP done ideas survive; open agent ideas always do."""
    open_misses = [i["id"] for i in ideas if i["status"] == "open" and i["source"] == "near-miss"]
    done = [i["id"] for i in ideas if i["status"] == "done"]
    dropped = set(open_misses[:-NEAR_MISS_CAP] if len(open_misses) > NEAR_MISS_CAP else [])
    dropped |= set(done[:-DONE_CAP] if len(done) > DONE_CAP else [])
    return [i for i in ideas if i["id"] not in dropped]


def _append(path, data, idea):
    idea = {"id": data["next_id"], "status": "open", "created": store.now_iso(), "closed": None, **idea}
    data["next_id"] += 1
    data["ideas"] = _prune(data["ideas"] + [idea])
    store.write_json(path, data)
    return idea


def add(path, text, source="agent", figures=None):
    """Add an open idea and return it. Adding the text of an idea that is
    already open returns that idea instead of a duplicate. Raises UsageError
    for empty text or an unknown source."""
    clean = " ".join(str(text or "").split())
    if not clean:
        raise UsageError("an idea needs some text")
    if source not in SOURCES:
        raise UsageError(f"unknown idea source {source!r}; use one of: {', '.join(SOURCES)}")
    clean = clean[:TEXT_CAP]
    data = load(path)
    for idea in data["ideas"]:
        if idea["status"] == "open" and idea["text"] == clean:
            return idea
    return _append(path, data, {"text": clean, "source": source, "figures": figures})


def list_open(path, limit=None):
    """Open ideas, oldest first (a queue: the longest-waiting idea is on top)."""
    opened = [i for i in load(path)["ideas"] if i["status"] == "open"]
    return opened if limit is None else opened[:limit]


def done(path, n):
    """Mark open idea #n done and return it; UsageError (one line) when there
    is no open idea with that number (or `n` is not a number)."""
    try:
        n = int(str(n).lstrip("#"))
    except ValueError:
        raise UsageError(f"an idea number is a whole number like 3, got {n!r}") from None
    data = load(path)
    for idea in data["ideas"]:
        if idea["id"] == n and idea["status"] == "open":
            idea["status"] = "done"
            idea["closed"] = store.now_iso()
            data["ideas"] = _prune(data["ideas"])
            store.write_json(path, data)
            return idea
    numbers = ", ".join(str(i["id"]) for i in data["ideas"] if i["status"] == "open")
    raise UsageError(f"no open idea #{n} (open: {numbers or 'none'})")


def _figures(record):
    keys = ("iter", "estimate", "interval", "delta", "avg", "incumbent", "patch")
    return {k: record[k] for k in keys if record.get(k) is not None}


def _describe(figures, direction="max", log_scale=True):
    """Short figures for the idea's text: the estimate and its interval when
    the paired test measured them, as the metric's own change (change.py),
    else the raw delta."""
    if "estimate" in figures:
        return change.improvement_text(figures["estimate"], figures.get("interval"), direction, log_scale)
    return f"delta {figures['delta']:+.4g}" if "delta" in figures else "no figures"


def is_near_miss(record, direction):
    """A reverted change whose best estimate still pointed the right way: not
    enough evidence (or below the margin), but maybe worth another try."""
    return record.get("decision") == "revert" and looks_better(record, direction)


def auto_add_near_miss(path, record, config=None):
    """Add `record` as a near-miss idea when it is one and return the idea;
    None when it is not a near miss or is already in the backlog (same
    iteration, or the same hypothesis, open or done)."""
    direction = (config or {}).get("direction", "max")
    if not is_near_miss(record, direction):
        return None
    hypothesis = " ".join(str(record.get("hypothesis") or record.get("description") or "").split())
    key = hints.text_key(hypothesis) or f"iter {record.get('iter')}"
    data = load(path)
    for idea in data["ideas"]:
        figures = idea.get("figures") or {}
        if idea["source"] == "near-miss" and (
                idea.get("key") == key or figures.get("iter") == record.get("iter")):
            return None
    figures = _figures(record)
    text = (f"near miss from iter {record.get('iter')} "
            f"({_describe(figures, direction, record.get('log_scale') is not False)}): "
            f"{hypothesis or 'see its patch'}")
    return _append(path, data, {"text": text[:TEXT_CAP], "source": "near-miss",
                                "figures": figures, "key": key})
