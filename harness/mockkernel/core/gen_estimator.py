"""The rate estimator (net/core/gen_estimator.c) on the mock's virtual clock.

gen_new_estimator() starts a timer every (HZ/4) << intvl_log jiffies (intvl_log
is the configured interval + 2: 250 ms to 8 s; HZ/4 is 62 jiffies at HZ 250);
est_timer() reads the byte and packet counters and folds what they grew by
into an EWMA scaled by 2^8 (W = 2^-ewma_log); gen_estimator_read() gives the
averages in bytes and packets per second.

The timer is run lazily: before anyone reads or grows the counters, every tick
due by then runs first, on the counters as they were (they change only when a
packet passes, so each tick sees what the kernel's would). Ticks that can no
longer change the averages (the counters idle and both averages below
2^ewma_log, where the kernel's shift leaves them unchanged) are skipped whole.
A timer that fires late (the kernel's "Ouch... timer was delayed") has no
counterpart in virtual time.
"""
from __future__ import annotations

from harness.mockkernel.core.sysctl import HZ

EST_MIN_INTERVAL, EST_MAX_INTERVAL = -2, 3  # gen_new_estimator(): 250 ms .. 8 s


class GnetStatsBasic:
    """struct gnet_stats_basic_sync: the counters an estimator reads."""

    __slots__ = ("bytes", "packets")

    def __init__(self) -> None:
        self.bytes = self.packets = 0


class NetRateEstimator:
    """struct net_rate_estimator, made by gen_new_estimator()."""

    __slots__ = ("bstats", "clock", "ewma_log", "intvl_log", "last_bytes", "last_packets", "avbps", "avpps",
                 "next_jiffies", "period")

    def __init__(self, bstats: GnetStatsBasic, clock, interval: int, ewma_log: int) -> None:
        """gen_new_estimator(); the caller has checked `interval` (-2..3) and `ewma_log` (1..30)."""
        self.bstats, self.clock = bstats, clock
        self.ewma_log, self.intvl_log = ewma_log, interval + 2
        self.period = (HZ // 4) << self.intvl_log
        self.last_bytes, self.last_packets = bstats.bytes, bstats.packets
        self.avbps = self.avpps = 0
        self.next_jiffies = jiffies(clock) + self.period

    def est_timer(self) -> None:
        """est_timer(): this interval's growth, shifted to 2^8 per second, into the EWMA."""
        shift, ewma_log = 10 - self.intvl_log, self.ewma_log
        b_bytes, b_packets = self.bstats.bytes, self.bstats.packets
        self.avbps += ((b_bytes - self.last_bytes) << shift >> ewma_log) - (self.avbps >> ewma_log)
        self.avpps += ((b_packets - self.last_packets) << shift >> ewma_log) - (self.avpps >> ewma_log)
        self.last_bytes, self.last_packets = b_bytes, b_packets
        self.next_jiffies += self.period

    def run_timers(self) -> None:
        """The ticks due by now, before the counters change or are read."""
        now = jiffies(self.clock)
        while self.next_jiffies <= now:
            if (self.bstats.bytes == self.last_bytes and self.bstats.packets == self.last_packets
                    and not self.avbps >> self.ewma_log and not self.avpps >> self.ewma_log):
                self.next_jiffies += (now - self.next_jiffies) // self.period * self.period + self.period
                return
            self.est_timer()

    def read(self) -> tuple[int, int]:
        """gen_estimator_read(): (bytes per second, packets per second)."""
        self.run_timers()
        return self.avbps >> 8, self.avpps >> 8


def jiffies(clock) -> int:
    return int(clock.now * HZ)
