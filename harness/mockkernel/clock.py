"""Virtual time for the mock kernel (kernel/time/timer.c, in spirit).

Nothing in the mock reads the wall clock. Time moves only when the harness
advances it; timers due by then fire in order of their expiry. CLOCK_REALTIME
(ktime_get_real(): what nft's `meta time`, `day` and `hour` read) is a fixed
wall-clock instant at boot, REALTIME_AT_BOOT, plus the virtual time. `Timer` is a
struct timer_list: at most one pending expiry, moved by mod_timer() and
cancelled by del_timer().
"""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable


REALTIME_AT_BOOT = 1767225600.0  # 2026-01-01 00:00:00 UTC, a Thursday


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def realtime(self) -> float:
        """ktime_get_real(), in seconds since the epoch."""
        return REALTIME_AT_BOOT + self.now

    def add_timer(self, delay: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (self.now + delay, next(self._seq), callback))

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, firing each timer at its expiry time."""
        if seconds < 0:
            raise ValueError("virtual time does not run backwards")
        self.advance_to(self.now + seconds)

    def next_expiry(self) -> float | None:
        """When the earliest queued timer is due (it may find nothing left to do); None if none is queued."""
        return self._timers[0][0] if self._timers else None

    def advance_to(self, deadline: float) -> None:
        """Move time forward to `deadline` (not back), firing each timer due by then at its expiry time."""
        deadline = max(deadline, self.now)
        while self._timers and self._timers[0][0] <= deadline:
            when, _, callback = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            callback()
        self.now = deadline


class Timer:
    """struct timer_list. mod_timer() to a later expiry keeps the queued entry
    and re-queues it when it comes due (as sk_reset_timer() callers re-arm the
    retransmit timer on every ACK), so re-arming costs no heap push."""

    __slots__ = ("clock", "function", "expires", "pending", "_queued_at", "_entry")

    def __init__(self, clock: Clock, function: Callable[[], None]) -> None:
        self.clock, self.function = clock, function
        self.expires = 0.0
        self.pending = False  # timer_pending()
        self._queued_at: float | None = None  # the expiry of this timer's live entry in the clock's heap
        self._entry = 0  # which of the entries queued for this timer is the live one

    def mod_timer(self, expires: float) -> None:
        self.expires, self.pending = expires, True
        if self._queued_at is None or self._queued_at > expires:
            self._queue(expires)

    def del_timer(self) -> None:
        self.pending = False

    def _queue(self, expires: float) -> None:
        self._queued_at = expires
        self._entry = entry = self._entry + 1
        self.clock.add_timer(max(0.0, expires - self.clock.now), lambda: self._run(entry))

    def _run(self, entry: int) -> None:
        if entry != self._entry:
            return  # superseded by an earlier expiry
        self._queued_at = None
        if not self.pending:
            return
        if self.expires > self.clock.now:
            self._queue(self.expires)
            return
        self.pending = False
        self.function()
