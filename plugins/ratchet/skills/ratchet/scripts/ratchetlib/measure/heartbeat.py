"""Signs of life on stderr while a long trial runs.

A five-minute training run is silent for five minutes; whoever waits on
ratchet (a user at a terminal, or an agent polling a background command)
must be able to tell "still running" from "hung". So while a trial runs:

- stderr is not a terminal (logs, pipes, Claude Code's Bash tool): one line
  every 30 s, `ratchet: iter 3 trial 1/3 running 1:30 (timeout 10:00)`;
- stderr is a terminal: a live line, rewritten every second with a carriage
  return and erased when the trial ends. NO_COLOR (any value) or TERM=dumb
  turns off the escape sequences (dim text, erase-to-end-of-line); the line
  is then padded with spaces instead.

`RATCHET_HEARTBEAT_SECONDS` overrides the interval in both modes (tests use
milliseconds). Nothing is printed for a trial shorter than one interval.
"""

from __future__ import annotations

import os
import sys

from ..core import term

INTERVAL_SECONDS = 30.0
LIVE_INTERVAL_SECONDS = 1.0
ENV_INTERVAL = "RATCHET_HEARTBEAT_SECONDS"


def clock(seconds: float) -> str:
    """1:05, 12:00, 1:02:03."""
    s = int(seconds)
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Heartbeat:
    """The `progress` object `runner.run` ticks: `interval`, `tick(elapsed)`, `done()`."""

    def __init__(self, label: str, timeout: float | None, stream=None,
                 interval: float | None = None, environ=None):
        env = os.environ if environ is None else environ
        self.stream = stream if stream is not None else sys.stderr
        self.label, self.timeout = label, timeout
        self.live = _isatty(self.stream)
        self.escapes = self.live and term.escapes_allowed(env)
        if interval is None:
            interval = _env_interval(env) or (LIVE_INTERVAL_SECONDS if self.live else INTERVAL_SECONDS)
        self.interval = interval
        self._width = 0

    def text(self, elapsed: float) -> str:
        limit = f" (timeout {clock(self.timeout)})" if self.timeout else ""
        return f"ratchet: {self.label} running {clock(elapsed)}{limit}"

    def tick(self, elapsed: float) -> None:
        text = self.text(elapsed)
        if not self.live:
            self._write(text + "\n")
        elif self.escapes:
            self._write(f"\r\x1b[2m{text}\x1b[0m\x1b[K")
        else:
            self._write("\r" + text.ljust(self._width))
        self._width = max(self._width, len(text))

    def done(self) -> None:
        """Erase the live line, so what follows starts on a clean line."""
        if self.live and self._width:
            self._write("\r\x1b[K" if self.escapes else "\r" + " " * self._width + "\r")
            self._width = 0

    def _write(self, data: str) -> None:
        try:
            self.stream.write(data)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stderr must not fail the trial


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _env_interval(env) -> float | None:
    try:
        value = float(env.get(ENV_INTERVAL, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def for_trial(label: str, timeout: float | None) -> Heartbeat:
    """The heartbeat of one trial, on the current sys.stderr."""
    return Heartbeat(label, timeout)
