"""ratchet's test suite (stdlib unittest). Run it with ../test.sh."""

import atexit
import os
import shutil
import tempfile

# The seal keys of the suite's throwaway runs (ratchetlib/seal.py) go to a throwaway
# state folder, removed at the end, never to the user's ~/.local/state.
_STATE = tempfile.mkdtemp(prefix="ratchet-test-state-")
os.environ["XDG_STATE_HOME"] = _STATE
atexit.register(shutil.rmtree, _STATE, True)
