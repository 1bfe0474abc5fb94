"""The cluster e2e tests' proof of concurrency, as the first lines of their
bench.py: with $BARRIER set (by the test, for a `loop --parallel` round), a
trial of iteration N >= 1 marks itself in $BARRIER/N and waits until another
trial of the same iteration has started; alone after 30 s it fails. So a
round whose proposals ran one after the other crashes, and a pass shows the
jobs overlapped. The baseline (iteration 0) never waits."""

PRELUDE = ("import os, re, sys, time\n"
           "b, i = os.environ.get('BARRIER'), re.search(r'-i(\\d+)-t', os.environ['RATCHET_TRIAL_ID'])\n"
           "if b and i and i.group(1) != '0':\n"
           "    d = os.path.join(b, i.group(1))\n"
           "    os.makedirs(d, exist_ok=True)\n"
           "    open(os.path.join(d, os.environ['RATCHET_TRIAL_ID']), 'w').close()\n"
           "    end = time.time() + 30\n"
           "    while len(os.listdir(d)) < 2 and time.time() < end:\n"
           "        time.sleep(0.05)\n"
           "    if len(os.listdir(d)) < 2:\n"
           "        sys.exit('alone: no other proposal ran at the same time')\n")
