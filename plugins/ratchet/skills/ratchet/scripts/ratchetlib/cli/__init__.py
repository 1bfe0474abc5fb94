"""The command line, the outermost layer: flags (the parser table), one
handler per verb (run_verbs, read_verbs, tool_verbs) and main (dispatch,
signals, exit codes). Nothing in ratchetlib imports it; `ratchet.py` calls
`cli.main.main`."""
