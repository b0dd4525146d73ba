"""The mock's FIB at scale (harness/mockkernel/ipv4/fib_trie.py).

- `mock.route_miss_10`, `mock.route_miss_100k`, `mock.route_miss_1M` (us): the
  per-packet cost of forwarding p0 -> p1 with that many routes loaded, each
  packet to the next route in turn (cycling through all of them, a different
  host of it each round), so that the route a packet needs is never the one
  the packet before it used. The routes are a BGP-like mix of prefix lengths (/8 to /24, most of them /24,
  some longer), all via p1's neighbour. Medians of 5, the tables' runs
  interleaved.
- `mock.route_add_100k` (us): one `ip route add PREFIX via GW` through
  target.sh() with 100k routes present (medians of 5 runs of 200 adds).
- `mock.route_load_1M` (s): 1M routes loaded through the API `ip route add`
  uses (fib_frontend.fib_table_insert(), NLM_F_CREATE|NLM_F_EXCL: the mock has
  no `ip -batch`).
"""
from __future__ import annotations

import gc
import random
import statistics
import struct
import time

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from benchmarks.ipv4_path import BATCH
from harness.mockkernel.core.rtnetlink import NLM_F_CREATE, NLM_F_EXCL
from harness.mockkernel.ipv4 import fib_frontend
from harness.mockkernel.net import RT_TABLE_MAIN, FibRoute, int_to_ip, ip_to_int
from harness.mockkernel.target import MockTarget
from harness.target import PORTS

GATEWAY = "10.0.1.2"
RUNS = 5
PACKETS = 20 * BATCH
# prefix lengths and their weights, roughly a full table's (most are /24)
LENGTHS = ((8, 1), (12, 1), (14, 2), (16, 5), (18, 4), (19, 5), (20, 8), (21, 8), (22, 15), (23, 12),
           (24, 120), (28, 1), (32, 1))


def prefixes(count: int, seed: int = 7) -> list[tuple[int, int]]:
    """`count` distinct prefixes outside 10/8 and 127/8, lengths as LENGTHS weighs them."""
    rng, seen = random.Random(seed), set()
    plens, weights = zip(*LENGTHS)
    while len(seen) < count:
        plen = rng.choices(plens, weights)[0]
        addr = rng.randrange(0x0B000000, 0xDF000000)
        if addr >> 24 == 127:
            continue
        seen.add((addr & (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF, plen))
    return sorted(seen)


def loaded_target(routes: list[tuple[int, int]]) -> tuple[MockTarget, float]:
    """p0 and p1 addressed, p1's neighbour known, forwarding on, `routes` via
    it; and the seconds the routes took to load."""
    target = MockTarget()
    for port in PORTS[:2]:
        target.sh(f"ip addr add 10.0.{port.index}.1/24 dev {port.name}")
        target.sh(f"ip neigh replace 10.0.{port.index}.2 lladdr {port.peer_mac} dev {port.name} nud permanent")
    target.sh("sysctl -w net.ipv4.ip_forward=1")
    gateway = ip_to_int(GATEWAY)
    gc.collect()
    start = time.perf_counter()
    for dst, plen in routes:
        fib_frontend.fib_table_insert(target.kernel, FibRoute(RT_TABLE_MAIN, dst, plen, gateway=gateway),
                                      NLM_F_CREATE | NLM_F_EXCL)
    return target, time.perf_counter() - start


def frames(routes: list[tuple[int, int]], count: int, start: int = 0) -> list[bytes]:
    """`count` frames p0 -> p1, the i-th (from `start`) to an address inside
    route i mod len(routes), the next host of it each round."""
    template = bytearray(bytes(Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) /
                               IP(src="10.0.0.2", dst="11.0.0.1") / UDP(sport=1000, dport=2000, chksum=0) /
                               (b"x" * 18)))
    out = []
    for index in range(start, start + count):
        dst, plen = routes[index % len(routes)]
        host = (index // len(routes) + 1) % (1 << (32 - plen)) if plen < 32 else 0
        struct.pack_into(">I", template, 14 + 16, dst | host)
        struct.pack_into(">H", template, 14 + 10, 0)
        struct.pack_into(">H", template, 14 + 10, _checksum(template[14:34]))
        out.append(bytes(template))
    return out


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(">10H", header))
    total = (total & 0xFFFF) + (total >> 16)
    return ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF


def per_packet_us(target: MockTarget, packets: list[bytes]) -> float:
    """Microseconds per packet forwarded, all of `packets` checked out of p1."""
    before = target.kernel.dev_by_name(PORTS[1].name).stats.tx_packets
    gc.collect()
    start = time.perf_counter()
    for offset in range(0, len(packets), BATCH):
        target.transmit(PORTS[0], packets[offset:offset + BATCH])
    elapsed = time.perf_counter() - start
    sent = target.kernel.dev_by_name(PORTS[1].name).stats.tx_packets - before
    if sent != len(packets):
        raise RuntimeError(f"only {sent} of {len(packets)} packets were forwarded")
    return elapsed / len(packets) * 1e6


def route_add_us(target: MockTarget, count: int = 200) -> float:
    extra = [(0xDF000000 + (i << 8), 24) for i in range(count)]
    gc.collect()
    start = time.perf_counter()
    for dst, plen in extra:
        target.sh(f"ip route add {int_to_ip(dst)}/{plen} via {GATEWAY}")
    elapsed = time.perf_counter() - start
    for dst, plen in extra:
        target.sh(f"ip route del {int_to_ip(dst)}/{plen}")
    return elapsed / count * 1e6


def main() -> None:
    sizes = {"10": 10, "100k": 100_000}
    loaded = {}
    for name, size in sizes.items():
        routes = prefixes(size)
        target, _ = loaded_target(routes)
        loaded[name] = (target, routes)
    miss = {name: [] for name in sizes}
    adds = []
    for run in range(RUNS):
        for name, (target, routes) in loaded.items():
            miss[name].append(per_packet_us(target, frames(routes, PACKETS, run * PACKETS)))
        adds.append(route_add_us(loaded["100k"][0]))
    for name in sizes:
        print(f"figure mock.route_miss_{name} {statistics.median(miss[name]):.2f} us", flush=True)
    print(f"figure mock.route_add_100k {statistics.median(adds):.1f} us", flush=True)
    for target, _ in loaded.values():
        target.close()
    loaded.clear()
    routes = prefixes(1_000_000)
    target, seconds = loaded_target(routes)
    print(f"figure mock.route_load_1M {seconds:.1f} s", flush=True)
    runs = [per_packet_us(target, frames(routes, PACKETS, run * PACKETS)) for run in range(RUNS)]
    print(f"figure mock.route_miss_1M {statistics.median(runs):.2f} us", flush=True)
    target.close()
