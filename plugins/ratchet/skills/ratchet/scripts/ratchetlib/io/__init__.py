"""Edges: every process, git call and .ratchet/ file goes through here (store is the one writer).
Imports only core."""
