"""The open run: its repository, its `.ratchet/` store, the Config the user
approved and the state. `open_run` verifies the contract first (seal.py): a
sealed file changed outside ratchet stops the command here, before anything
runs. Every verb starts from one of these."""

import dataclasses
import sys
from typing import Optional

from ..core import config as configmod
from ..core.errors import UsageError
from ..core.state import RunState
from . import gitops, harness, seal
from .store import Store
from .store_seal import adopt


@dataclasses.dataclass
class Run:
    repo: str
    store: Store
    config: configmod.Config
    state: RunState
    holdout: Optional[dict] = None  # set when this command ran the holdout
    verify_error: Optional[str] = None  # set when an automatic verify could not run
    learned: Optional[dict] = None  # the learning snapshot of this command's last decision (show.verdict)

    def save(self, state: RunState) -> None:
        """Write `state` (state.json) and make it this command's state: the one
        way a verb changes the run state once it has a Run."""
        self.store.write_state(state)
        self.state = state


def open_run(cwd: str) -> Run:
    """Open the run, its contract verified first (seal.py): a sealed file
    changed outside ratchet stops the command here, before anything runs."""
    repo = gitops.find_root(cwd)
    store = Store(repo)
    seal.forget(store.root)
    if store.exists():
        adopted = adopt(store.root)
        if adopted:
            sys.stderr.write(f"ratchet: {adopted}\n")
    cfg = store.read_config()
    if cfg is None:
        raise UsageError("no ratchet run in this repository; start one with `ratchet.py init --run-command ...`")
    state = store.read_state()
    if seal.is_sealed(store.root):
        for name, found in (("state.json", state), ("harness.json", harness.load(store.root))):
            if found is None and not (name == "harness.json" and state is not None and state.unpinned):
                raise seal.missing(store.root, name)
    return Run(repo, store, configmod.from_dict(cfg), state or RunState())
