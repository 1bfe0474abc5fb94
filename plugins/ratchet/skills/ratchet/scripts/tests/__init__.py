"""ratchet's test suite (stdlib unittest). Run it with ../test.sh."""
