"""ratchet's CLI core: one module per job; see ../ratchet.py for the verbs."""
