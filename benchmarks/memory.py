"""The mock's memory: flat over a long run, and per conntrack entry.

- `mock.rss_growth_10M`: the process's resident set growth (VmRSS, after a
  collection) over 10M packets forwarded p0 -> p1 as in ipv4_path, in batches
  through `target.transmit()` (the per-packet path, every packet with its
  journey; the line-rate engine would carry them as trains and prove nothing
  about it), after a warm-up of 10 x the journey limit: by then the tracer
  keeps its first journeys whole and summarises the rest as paths, and p1,
  whose frames nobody collects, holds as many as it keeps and drops the rest.
- `mock.ct_entry_bytes`: tracemalloc's growth over 10k UDP flows forwarded
  through masquerade (each makes one confirmed, NATed entry), divided by 10k.
  The hop caches that have their own bound (the tracer's interned hops,
  nf_conntrack_in's and the NAT core's) are emptied before both readings: they
  weigh the same with 10k entries as with 10M. The kernel's nf_conn is a
  256-byte slab object (nf_conntrack_core.c, nf_conntrack_cachep).
"""
from __future__ import annotations

import gc
import os
import time
import tracemalloc

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from benchmarks.ipv4_path import BATCH, _configure, _frame
from benchmarks.netfilter import BASE
from harness.mockkernel.target import MockTarget
from harness.mockkernel.tracer import JOURNEY_LIMIT
from harness.target import PORTS

PACKETS = 10_000_000
WARM_UP = 10 * JOURNEY_LIMIT
FLOWS = 10_000
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _rss_bytes() -> int:
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def rss_growth(packets: int) -> tuple[float, float]:
    """(RSS growth in MB, seconds) over `packets` forwarded after the warm-up."""
    target = MockTarget()
    _configure(target)
    batch = [_frame("10.0.1.2")] * BATCH
    for _ in range(WARM_UP // BATCH):
        target.transmit(PORTS[0], batch)
    before = _rss_bytes()
    start = time.perf_counter()
    for _ in range(packets // BATCH):
        target.transmit(PORTS[0], batch)
    elapsed = time.perf_counter() - start
    growth = (_rss_bytes() - before) / 1e6
    target.close()
    return growth, elapsed


def _flow_frames(first: int, count: int) -> list[bytes]:
    """One UDP frame per flow, p0 -> p1, flows differing in source address and port."""
    return [bytes(Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) /
                  IP(src=f"10.0.0.{2 + (flow >> 14)}", dst="10.0.1.2") /
                  UDP(sport=1024 + (flow & 0x3FFF), dport=2000) / (b"x" * 18))
            for flow in range(first, first + count)]


def _empty_bounded_caches(target: MockTarget) -> None:
    kernel = target.kernel
    kernel.tracer.reset()
    kernel.conntrack.hops.clear()
    for family in kernel.nat_lookups.values():  # per family, per hook (nf_nat.py)
        for lookups in family.values():
            lookups.hops.clear()
    for nic in kernel.nics.values():
        nic.wire.clear()
    gc.collect()


def ct_entry_bytes(flows: int) -> float:
    """Bytes per conntrack entry: traced memory growth over `flows` new entries."""
    target = MockTarget()
    _configure(target)
    target.sh("nft -f -", stdin=BASE)
    target.transmit(PORTS[0], _flow_frames(0, 1) * 4)  # the path warmed up, its one entry made
    frames = _flow_frames(1, flows)
    tracemalloc.start()
    try:
        _empty_bounded_caches(target)
        before = tracemalloc.get_traced_memory()[0]
        for first in range(0, flows, BATCH):
            target.transmit(PORTS[0], frames[first:first + BATCH])
        _empty_bounded_caches(target)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    entries = target.kernel.conntrack.count - 1
    if entries != flows:
        raise RuntimeError(f"{flows} flows made {entries} conntrack entries, not one each")
    target.close()
    return grown / flows


def main() -> None:
    print(f"figure mock.ct_entry_bytes {ct_entry_bytes(FLOWS):.0f} B", flush=True)
    growth, elapsed = rss_growth(PACKETS)
    print(f"figure mock.rss_growth_10M {growth:.1f} MB", flush=True)
    print(f"figure mock.rss_growth_10M_pps {PACKETS / elapsed:.0f} pps", flush=True)
