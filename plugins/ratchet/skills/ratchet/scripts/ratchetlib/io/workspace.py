"""The open run: its repository, its `.ratchet/` store, the Config the user
approved and the state. `open_run` verifies the contract first (seal.py): a
sealed file changed outside ratchet stops the command here, before anything
runs. Every verb starts from one of these."""

from __future__ import annotations

import sys

from ..core import config as configmod
from ..core import record
from ..core.errors import UsageError
from ..core.state import RunState
from . import gitroot, seal
from .store import Store, read_sealed
from .store_seal import adopt


class Run(record.Record, frozen=False):
    repo: str
    store: Store
    config: configmod.Config
    state: RunState
    holdout: dict | None = None  # set when this command ran the holdout
    verify_error: str | None = None  # set when an automatic verify could not run
    learned: dict | None = None  # the learning snapshot of this command's last decision (show.verdict)
    incumbent_side: dict | None = None  # {"head", "side"}: the incumbent's bytes of the candidate's paths as
    # keep/paired's swap captured them (io/swapfiles), for that iteration's revert to write back without git

    def save(self, state: RunState) -> None:
        """Write `state` (state.json) and make it this command's state: the one
        way a verb changes the run state once it has a Run."""
        self.store.write_state(state)
        self.state = state


def open_run(cwd: str) -> Run:
    """Open the run, its contract verified first (seal.py): a sealed file
    changed outside ratchet stops the command here, before anything runs."""
    repo = gitroot.plain_root(cwd)
    if repo is None:
        from . import gitops
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
        for name, found in (("state.json", state), ("harness.json", read_sealed(store.root, "harness.json"))):
            if found is None and not (name == "harness.json" and state is not None and state.unpinned):
                raise seal.missing(store.root, name)
    return Run(repo, store, configmod.from_dict(cfg), state or RunState())
