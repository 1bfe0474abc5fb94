"""What the hooks read of a ratchet run: the runs in the folders above a
path and their JSON files, read without importing ratchetlib (a hook runs
on every tool call and must answer in milliseconds). A file that is absent
or not a JSON object reads as None: a hook never gets in the way over an
unreadable file, and the CLI itself refuses one with a clear line."""

import json
import os


def read_json(path):
    try:
        with open(path, "rb") as f:
            obj = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def runs_above(folder):
    """The folders from `folder` up (itself included) that hold a run's
    `.ratchet/config.json`, nearest first."""
    folder = os.path.abspath(folder)
    while True:
        if os.path.isfile(os.path.join(folder, ".ratchet", "config.json")):
            yield folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return
        folder = parent


def state_of(root):
    """The run's state.json as a dict, or None."""
    return read_json(os.path.join(root, ".ratchet", "state.json"))
