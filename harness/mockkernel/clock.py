"""Virtual time for the mock kernel (kernel/time/timer.c, in spirit).

Nothing in the mock reads the wall clock. Time moves only when the harness
advances it; timers due by then fire in order of their expiry.
"""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def add_timer(self, delay: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (self.now + delay, next(self._seq), callback))

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, firing each timer at its expiry time."""
        if seconds < 0:
            raise ValueError("virtual time does not run backwards")
        deadline = self.now + seconds
        while self._timers and self._timers[0][0] <= deadline:
            when, _, callback = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            callback()
        self.now = deadline
