"""What CPython allows per packet, next to what the mock does with the same frames.

python.forward_ceiling: a minimal pure-Python IPv4 forwarder, hand-written here
and sharing no code with the mock, fed the frames, batches and sender loop of
ipv4_path's mock.forward_udp (p0 -> p1 through a /24, 250-frame batches). Per
frame it does what a forwarder cannot leave out and still put the kernel's
frame on the wire: copy the frame, check the destination MAC, EtherType, IPv4
version/IHL, tot_len and header checksum (ip_rcv_core()), look the destination
/24 up in a dict, refuse TTL <= 1, decrement TTL with ip_decrease_ttl()'s
incremental checksum update (include/net/ip.h, as x86 loads the field), write
the next hop's Ethernet header and append the frame to the egress port's list.
python.ct_nat_ceiling: the same plus what a conntrack hit and SNAT add (the
flow's tuple from the IPv4 and UDP headers, a dict lookup of the connection,
the source address rewritten with csum_replace4()'s and
inet_proto_csum_replace4()'s updates of the IPv4 and UDP checksums, as
nf_nat_ipv4_manip_pkt() makes them), on netfilter's forward_ct_nat_100rules
frames. No counters, no journeys, no rules: the figures are ceilings.
Both compare their output with the mock's: the frames must be byte-identical.

Each figure is the median of ROUNDS runs, the mock's and the ceiling's
alternating in one process so that both see the same machine load; the ratios
(mock.forward_udp_vs_ceiling, mock.forward_ct_nat_100rules_vs_ceiling) are of
those medians.
"""
from __future__ import annotations

import gc
import statistics
import struct
import sys
import time

from benchmarks.ipv4_path import BATCH, _frame, _mock, measure
from benchmarks.netfilter import ruleset_100_rules
from harness.target import PORTS

ROUNDS = 5
FORWARD_COUNT = 30_000  # ipv4_path's
CT_NAT_COUNT = 20_000  # netfilter's

# Ethernet + IPv4 header in one load: dst, EtherType, version/IHL, tot_len, ttl, check, saddr, daddr
ETH_IPV4 = struct.Struct("!6s6xHBxH4xBxHII")
MACS = struct.Struct("!6s6s")
LE16 = struct.Struct("<H")
BE16 = struct.Struct("!H")
UDP_PORTS = struct.Struct("!HH")
CHECK_SADDR = struct.Struct("!HI")
ETH_P_IP = 0x0800
IPV4_HEADER = slice(14, 34)  # a 20-byte header: anything longer is not forwarded here
CHECK, TTL, SADDR, UDP_CHECK = 24, 22, 26, 40


class CeilingForwarder:
    """`routes`: destination address >> 8 -> (egress list, source MAC, next hop's MAC)."""

    def __init__(self, mac: bytes, routes: dict[int, tuple[list, bytes, bytes]]) -> None:
        self.mac = mac
        self.routes = routes

    def receive(self, frames: list[bytes]) -> None:
        mac, routes = self.mac, self.routes
        for frame in frames:
            buf = bytearray(frame)
            dst, ethertype, ver_ihl, tot_len, ttl, check, saddr, daddr = ETH_IPV4.unpack_from(buf)
            if dst != mac or ethertype != ETH_P_IP or ver_ihl != 0x45 or tot_len > len(buf) - 14:
                continue
            header = int.from_bytes(buf[IPV4_HEADER], "big")
            if not header or header % 0xFFFF:
                continue
            route = routes.get(daddr >> 8)
            if route is None or ttl <= 1:
                continue
            egress, src_mac, next_hop = route
            (check,) = LE16.unpack_from(buf, CHECK)
            check += 1  # ip_decrease_ttl(): htons(0x0100) added to the little-endian load
            LE16.pack_into(buf, CHECK, (check + (check >= 0xFFFF)) & 0xFFFF)
            buf[TTL] = ttl - 1
            MACS.pack_into(buf, 0, next_hop, src_mac)
            egress.append(bytes(buf[:14 + tot_len]))


class CeilingNatForwarder(CeilingForwarder):
    """`conntrack`: (saddr, daddr, sport, dport) -> the source address SNAT gives it."""

    def __init__(self, mac: bytes, routes: dict, conntrack: dict[tuple[int, int, int, int], int]) -> None:
        super().__init__(mac, routes)
        self.conntrack = conntrack

    def receive(self, frames: list[bytes]) -> None:
        mac, routes, conntrack = self.mac, self.routes, self.conntrack
        for frame in frames:
            buf = bytearray(frame)
            dst, ethertype, ver_ihl, tot_len, ttl, check, saddr, daddr = ETH_IPV4.unpack_from(buf)
            if dst != mac or ethertype != ETH_P_IP or ver_ihl != 0x45 or tot_len > len(buf) - 14:
                continue
            header = int.from_bytes(buf[IPV4_HEADER], "big")
            if not header or header % 0xFFFF:
                continue
            new_saddr = conntrack.get((saddr, daddr, *UDP_PORTS.unpack_from(buf, 34)))
            route = routes.get(daddr >> 8)
            if new_saddr is None or route is None or ttl <= 1:
                continue
            egress, src_mac, next_hop = route
            (le_check,) = LE16.unpack_from(buf, CHECK)
            le_check += 1
            LE16.pack_into(buf, CHECK, (le_check + (le_check >= 0xFFFF)) & 0xFFFF)
            buf[TTL] = ttl - 1
            (check,) = BE16.unpack_from(buf, CHECK)
            CHECK_SADDR.pack_into(buf, CHECK, (check + saddr - new_saddr) % 0xFFFF, new_saddr)
            (udp_check,) = BE16.unpack_from(buf, UDP_CHECK)
            if udp_check:
                BE16.pack_into(buf, UDP_CHECK, (udp_check + saddr - new_saddr) % 0xFFFF or 0xFFFF)
            MACS.pack_into(buf, 0, next_hop, src_mac)
            egress.append(bytes(buf[:14 + tot_len]))


def _ip(text: str) -> int:
    return int.from_bytes(bytes(map(int, text.split("."))), "big")


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _routes(egress: list) -> dict:
    return {_ip("10.0.1.0") >> 8: (egress, _mac(PORTS[1].mac), _mac(PORTS[1].peer_mac))}


def ceiling_pps(forwarder: CeilingForwarder, egress: list, count: int) -> float:
    batch = [_frame("10.0.1.2")] * BATCH
    batches = count // BATCH
    gc.collect()
    start = time.perf_counter()
    for _ in range(batches):
        forwarder.receive(batch)
    elapsed = time.perf_counter() - start
    if len(egress) != batches * BATCH:
        print(f"ceiling: only {len(egress)} of {batches * BATCH} frames forwarded", file=sys.stderr)
    return len(egress) / elapsed


def mock_pps(ruleset: str | None, count: int) -> tuple[float, bytes]:
    """The mock's rate as ipv4_path/netfilter measure it, and its last frame out of p1."""
    target = _mock()
    try:
        if ruleset is not None:
            target.sh("nft -f -", stdin=ruleset)
        pps = measure(target, "forward", count)
        return pps, target.collect(PORTS[1])[-1]
    finally:
        target.close()


def compare(name: str, ruleset: str | None, count: int, make_ceiling) -> None:
    mock_rates, ceiling_rates = [], []
    for _ in range(ROUNDS):
        pps, mock_frame = mock_pps(ruleset, count)
        mock_rates.append(pps)
        egress: list = []
        ceiling_rates.append(ceiling_pps(make_ceiling(egress), egress, count))
        if egress and egress[-1] != mock_frame:
            print(f"{name}: the ceiling's frame {egress[-1].hex()} is not the mock's {mock_frame.hex()}",
                  file=sys.stderr)
    mock, ceiling = statistics.median(mock_rates), statistics.median(ceiling_rates)
    ceiling_name = "python.forward_ceiling" if ruleset is None else "python.ct_nat_ceiling"
    print(f"figure {ceiling_name} {ceiling:.0f} pps", flush=True)
    print(f"figure mock.{name} {mock:.0f} pps", flush=True)
    print(f"figure mock.{name}_vs_ceiling {mock / ceiling:.3f} ratio", flush=True)


def main() -> None:
    mac = _mac(PORTS[0].mac)
    masquerade = {(_ip("10.0.0.2"), _ip("10.0.1.2"), 1000, 2000): _ip("10.0.1.1")}
    compare("forward_udp", None, FORWARD_COUNT, lambda egress: CeilingForwarder(mac, _routes(egress)))
    compare("forward_ct_nat_100rules", ruleset_100_rules(), CT_NAT_COUNT,
            lambda egress: CeilingNatForwarder(mac, _routes(egress), masquerade))
