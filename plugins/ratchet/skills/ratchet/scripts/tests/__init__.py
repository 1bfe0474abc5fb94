"""ratchet's test suite (stdlib unittest). Run it with ../test.sh.

Trials, agents and clients started by the tests inherit this process's
environment. The machines the project is built on set variables a user's
shell does not, and two of them hide real bugs: PYTHONDONTWRITEBYTECODE
(no `__pycache__`, so a stale .pyc can never serve the other side of a
swap) and PYTHONUNBUFFERED (output a killed process had not flushed is
never lost). They are cleared here, first, so every test sees what users see
(USER_SHELL_UNSET). `.ci/run` unsets them too, for the demo.
"""

import atexit
import os
import shutil
import tempfile

USER_SHELL_UNSET = ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")
for _name in USER_SHELL_UNSET:
    os.environ.pop(_name, None)

# The seal keys of the suite's throwaway runs (ratchetlib/seal.py) go to a throwaway
# state folder, removed at the end, never to the user's ~/.local/state.
_STATE = tempfile.mkdtemp(prefix="ratchet-test-state-")
os.environ["XDG_STATE_HOME"] = _STATE
atexit.register(shutil.rmtree, _STATE, True)
