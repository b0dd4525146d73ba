"""The conntrack table limit every lab on the host shares (net/netfilter/nf_conntrack_core.c).

nf_conntrack_max is init_net's, read-only in other namespaces; each namespace counts
its own entries against it. When a new connection finds its namespace's table full
and early_drop() finds no unreplied entry to evict, __nf_conntrack_alloc() drops the
packet and sets `conntrack_gc_work.early_drop`, which is global: gc_worker()'s next
run, up to GC_SCAN_INTERVAL_MAX (60 s) later, kills the unreplied entries of every
namespace above 95% of nf_conntrack_max (gc_worker_can_early_drop()) and clears the
flag when it ends. Seen on the lab under `-n auto`: a table-full drop in one worker's
lab took 257 unreplied entries (GC_SCAN_EXPIRED_MAX + 1 at HZ=250) from the full
table another worker had just filled.

So labs take turns: a lab that fills its table past 95% holds a host-wide lock until
it closes (`HostConntrackTable.claim_for()`), and a lab whose table overflowed
releases it only once a gc scan has ended (`release()`), since the flag is cleared
only when a gc_worker() invocation ends without being cut short by its time budget
(GC_SCAN_MAX_DURATION): at the end of a full scan, or after GC_SCAN_EXPIRED_MAX + 1
kills. A scan walks the hash buckets in order and, on a loaded host, is cut into
many invocations (it calls cond_resched() per bucket), so the early-drop mode can
outlive by seconds the reaping of an entry in the middle of the table. Hence the
marker: of GC_MARKER_CANDIDATES entries, the one a dump lists last (a dump walks the
buckets in the same order, ctnetlink_dump_table()) sits in one of the last buckets;
`release()` flushes its table, creates that entry alone with a 1 s timeout, and waits
for it to go. Nothing else reaps it (no packet looks it up, no dump lists it), so its
going is the gc passing the last buckets, where the scan ends and the flag is
cleared (or the next scan, if the current one had passed it already). Its tuple is
its own reply (source = destination), so both of its hash nodes share that bucket.
"""
from __future__ import annotations

import fcntl
import time
from typing import IO

from harness.drivers import nfnetlink
from harness.drivers.netns import NetnsLab, require_tool
from harness.journey import CtEntry
from harness.target import TargetError

LOCK_PATH = "/run/lock/packet-journey-conntrack-table.lock"
GC_EARLY_DROP_PERCENT = 95
GC_SCAN_INTERVAL_MAX = 60.0  # s: the longest the gc waits between runs
GC_RUN_TIMEOUT = 3 * GC_SCAN_INTERVAL_MAX  # reached only if the gc does not run at all
POLL_INTERVAL = 0.2
GC_MARKER_CANDIDATES = 4096  # the last lies in the last 1/4096 of the buckets, on average


def gc_marker(n: int) -> tuple[str, str, int, int]:
    """Candidate `n`: a UDP tuple that is its own reply, in TEST-NET-2, which no test uses."""
    address, port = f"198.51.100.{n & 0xFF}", 1024 + (n >> 8)
    return (address, address, port, port)


def unreplied_udp(tuple_: tuple[str, str, int, int], timeout: int) -> CtEntry:
    return CtEntry("udp", "", tuple_, tuple_, frozenset(), 0, timeout)


def conntrack_stat(lab: NetnsLab, name: str) -> int:
    """A /proc/net/stat/nf_conntrack counter of the DUT namespace, summed over the CPUs."""
    header, *cpus = lab.read_proc_net(lab.dut, "stat/nf_conntrack").split("\n")
    column = header.split().index(name)
    return sum(int(row.split()[column], 16) for row in cpus if row.strip())


def sysctl(lab: NetnsLab, key: str) -> int:
    return int(lab.run(lab.dut, ["sysctl", "-n", key]))


class HostConntrackTable:
    """One lab's turn at the host's conntrack table limit (module doc)."""

    def __init__(self, lab: NetnsLab) -> None:
        self.lab = lab
        self._lock: IO[str] | None = None

    def claim_for(self, new_entries: int) -> None:
        """Before creating `new_entries`: wait for the host-wide lock if they bring the
        lab's table to the gc's early-drop threshold."""
        if self._lock is not None:
            return
        limit = sysctl(self.lab, "net.netfilter.nf_conntrack_max")
        count = sysctl(self.lab, "net.netfilter.nf_conntrack_count")
        if (count + new_entries) * 100 < limit * GC_EARLY_DROP_PERCENT:
            return
        lock = open(LOCK_PATH, "w")  # noqa: SIM115 -- held until release()
        fcntl.flock(lock, fcntl.LOCK_EX)
        self._lock = lock

    def release(self) -> None:
        """Let the next lab fill its table; after a table-full drop, once the gc has run."""
        if self._lock is None:
            return
        try:
            if conntrack_stat(self.lab, "drop"):
                self._wait_for_a_gc_run()
        finally:
            self._lock.close()
            self._lock = None

    def _wait_for_a_gc_run(self) -> None:
        flush = [require_tool("conntrack"), "-F"]
        self.lab.run(self.lab.dut, flush)
        candidates = {gc_marker(n) for n in range(GC_MARKER_CANDIDATES)}
        nfnetlink.create_entries(self.lab, (unreplied_udp(tuple_, 600) for tuple_ in candidates))
        last = [entry.original for entry in nfnetlink.conntrack_entries(self.lab) if entry.original in candidates][-1]
        self.lab.run(self.lab.dut, flush)
        nfnetlink.create_entries(self.lab, [unreplied_udp(last, 1)])
        deadline = time.monotonic() + GC_RUN_TIMEOUT
        while sysctl(self.lab, "net.netfilter.nf_conntrack_count"):
            if time.monotonic() > deadline:
                raise TargetError(
                    f"the conntrack gc did not run within {GC_RUN_TIMEOUT:.0f} s of this lab's table-full drop "
                    "(its expired marker is still there): the early-drop mode that drop started may evict "
                    "unreplied entries of the next lab that fills its table")
            time.sleep(POLL_INTERVAL)
