"""SIGINT / SIGTERM during training: the first signal asks the loop to stop at the next step boundary (it then
saves a resumable state); a second one interrupts at once."""
from __future__ import annotations

import signal
import threading
import time

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """Context manager that turns SIGINT / SIGTERM into `signum` (the main thread only: Python delivers signals
    there, and other threads cannot install handlers)."""

    def __init__(self, repeat_grace: float = 0.0) -> None:
        """repeat_grace: a second signal within this many seconds of the first is the same request (torchrun's
        launcher forwards the terminal's Ctrl-C to processes that got it already)."""
        self.signum: int | None = None
        self.repeat_grace = repeat_grace
        self._first = 0.0
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # asked twice: the user wants out now
            if time.monotonic() - self._first < self.repeat_grace:
                return
            raise KeyboardInterrupt
        self.signum = signum
        self._first = time.monotonic()

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""
