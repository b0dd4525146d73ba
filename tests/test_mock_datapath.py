"""Unit tests of the mock kernel's pieces, each pinned to the kernel behaviour it models."""
from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.mockkernel.bpf.asm import assemble
from harness.mockkernel.bpf.maps import BPF_MAP_TYPE_ARRAY
from harness.mockkernel.bpf.syscall import bpf_runtime
from harness.mockkernel.clock import Clock
from harness.mockkernel.core.xdp import dev_xdp_attach
from harness.mockkernel.ipv4 import route
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.net import RouteType, ip_to_int
from harness.mockkernel.target import sh
from harness.mockkernel.wire.checksum import checksum
from harness.mockkernel.wire.ipv4 import Ipv4Packet
from harness.target import PORTS, CommandError


def _header(ttl: int, check: int | None = None) -> bytearray:
    raw = bytearray(bytes(IP(src="10.0.0.2", dst="10.0.1.2", ttl=ttl, id=1) / UDP()))[:20]
    if check is not None:
        raw[10:12] = struct.pack("!H", check)
    return raw


@pytest.mark.parametrize("ttl", [2, 17, 64, 255])
def test_ip_decrease_ttl_matches_a_full_checksum_recompute(ttl):
    hdr = _header(ttl)
    Ipv4Packet(hdr, 0).decrease_ttl()
    assert hdr[8] == ttl - 1
    assert Ipv4Packet(hdr, 0).checksum_ok()
    assert hdr == _header(ttl - 1)


def test_ip_decrease_ttl_folds_a_result_of_0xffff_to_zero_as_x86_linux_does():
    # raw checksum bytes fe ff: the little-endian load is 0xfffe, +1 = 0xffff, +carry -> 0
    hdr = _header(64, check=0xFEFF)
    Ipv4Packet(hdr, 0).decrease_ttl()
    assert hdr[10:12] == b"\x00\x00"


def test_checksum_of_a_valid_header_is_zero():
    assert checksum(_header(64)) == 0


def test_longest_prefix_wins_then_the_lowest_metric():
    k = Kernel()
    sh(k, ["ip", "addr", "add", "10.0.0.1/24", "dev", "p0"])
    sh(k, ["ip", "addr", "add", "10.0.1.1/24", "dev", "p1"])
    sh(k, ["ip", "route", "add", "192.0.2.0/24", "via", "10.0.0.2", "metric", "10"])
    sh(k, ["ip", "route", "add", "192.0.2.0/24", "via", "10.0.1.2", "metric", "5"])
    sh(k, ["ip", "route", "add", "192.0.2.128/25", "via", "10.0.0.2"])
    low = route.ip_route_output(k, ip_to_int("192.0.2.1"))
    high = route.ip_route_output(k, ip_to_int("192.0.2.200"))
    assert (low.dev.name, low.gateway) == ("p1", ip_to_int("10.0.1.2"))
    assert (high.dev.name, high.gateway) == ("p0", ip_to_int("10.0.0.2"))


def test_fwmark_rule_selects_its_table_before_main():
    k = Kernel()
    sh(k, ["ip", "addr", "add", "10.0.0.1/24", "dev", "p0"])
    sh(k, ["ip", "addr", "add", "10.0.1.1/24", "dev", "p1"])
    sh(k, ["ip", "route", "add", "default", "via", "10.0.0.2"])
    sh(k, ["ip", "route", "add", "default", "via", "10.0.1.2", "table", "100"])
    sh(k, ["ip", "rule", "add", "fwmark", "7", "table", "100"])
    assert route.ip_route_output(k, ip_to_int("8.8.8.8")).dev.name == "p0"
    assert route.ip_route_output(k, ip_to_int("8.8.8.8"), mark=7).dev.name == "p1"


def test_a_route_added_routes_the_next_packet_to_the_same_destination():
    k = Kernel()
    sh(k, ["ip", "addr", "add", "10.0.0.1/24", "dev", "p0"])
    sh(k, ["sysctl", "-w", "net.ipv4.ip_forward=1"])
    p0 = k.dev_by_name("p0")
    first = route.ip_route_input(k, ip_to_int("198.51.100.1"), ip_to_int("10.0.0.2"), 0, p0)
    assert first.input is route.DstInput.ERROR
    sh(k, ["ip", "route", "add", "198.51.100.0/24", "via", "10.0.0.9"])
    again = route.ip_route_input(k, ip_to_int("198.51.100.1"), ip_to_int("10.0.0.2"), 0, p0)
    assert again.input is route.DstInput.FORWARD


def test_routes_through_one_nexthop_share_its_cached_route_until_rt_genid_moves():
    """__mkroute_input() reuses nhc_rth_input while rt_cache_valid(); routes with the
    same nexthop share one fib_info (fib_find_info()), so one rtable; rt_cache_flush()
    retires it and the next packet gets a new one."""
    k = Kernel()
    sh(k, ["ip", "addr", "add", "10.0.0.1/24", "dev", "p0"])
    sh(k, ["ip", "addr", "add", "10.0.1.1/24", "dev", "p1"])
    sh(k, ["sysctl", "-w", "net.ipv4.ip_forward=1"])
    sh(k, ["ip", "route", "add", "198.51.100.0/24", "via", "10.0.1.9"])
    sh(k, ["ip", "route", "add", "203.0.113.0/24", "via", "10.0.1.9"])
    sh(k, ["ip", "route", "add", "192.0.2.0/24", "via", "10.0.1.8"])
    p0 = k.dev_by_name("p0")

    def routed(dst: str):
        return route.ip_route_input(k, ip_to_int(dst), ip_to_int("10.0.0.2"), 0, p0)

    first = routed("198.51.100.1")
    assert (first.input, first.dev.name, first.gateway) == (route.DstInput.FORWARD, "p1", ip_to_int("10.0.1.9"))
    assert routed("198.51.100.77") is first and routed("203.0.113.5") is first
    assert routed("192.0.2.1") is not first and routed("192.0.2.1").gateway == ip_to_int("10.0.1.8")
    sh(k, ["ip", "neigh", "show"])
    renewed = routed("198.51.100.1")
    assert renewed is not first and renewed.genid > first.genid
    assert (renewed.input, renewed.dev, renewed.gateway) == (first.input, first.dev, first.gateway)


def _udp_frame(i: int = 0) -> bytes:
    return bytes(Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) /
                 IP(src="10.0.0.2", dst="10.0.0.1", id=i) / UDP(sport=1, dport=9))


def test_frames_beyond_the_rx_ring_are_missed_without_an_skb():
    k = Kernel()
    sh(k, ["ethtool", "-G", "p0", "rx", "8"])
    k.receive("p0", [_udp_frame(i) for i in range(20)])
    assert k.dev_by_name("p0").stats.rx_missed_errors == 12
    missed = [d for d in k.tracer.drops if d.stage == "NIC_RX"]
    assert len(missed) == 12 and {d.reason for d in missed} == {"FULL_RING"}


@pytest.mark.parametrize("generic, location", [(False, "veth_xdp_rcv_skb"), (True, "do_xdp_generic")])
def test_an_xdp_program_that_faults_aborts_the_frame_with_the_fault_in_its_hop(generic, location):
    k = Kernel()
    rt = bpf_runtime(k)
    array = rt.create_map(BPF_MAP_TYPE_ARRAY, 4, 8, 1, name="m")
    # the verifier lets root read struct bpf_map through a map pointer; the mock has no such struct: a fault
    prog = rt.load_program(assemble(f"lddw r1, map_by_fd({array.fd})\nldxdw r0, [r1+0]\nexit"), "xdp")
    dev_xdp_attach(k.dev_by_name("p0"), lambda: prog, generic)
    k.receive("p0", [_udp_frame(1)])
    (journey,) = k.tracer.journeys
    (xdp_hop,) = [hop for hop in journey.hops if hop.stage == "XDP"]
    assert xdp_hop.verdict == "ABORTED"
    assert "insn 2 (r0 = *(u64 *)(r1 +0)): read of 8 bytes at map m" in xdp_hop.summary
    assert (journey.drop.reason, journey.drop.stage, journey.drop.location) == ("NOT_SPECIFIED", "XDP", location)


def test_napi_polls_64_per_device_within_netdev_budget_rounds():
    k = Kernel()
    sh(k, ["ethtool", "-G", "p0", "rx", "1024"])
    sh(k, ["sysctl", "-w", "net.core.netdev_budget=300"])
    k.receive("p0", [_udp_frame(i) for i in range(700)])
    rounds = [next(h.summary for h in j.hops if h.stage == "NAPI") for j in k.tracer.journeys]
    assert rounds.count("softirq round 1") == 300
    assert rounds.count("softirq round 2") == 300
    assert rounds.count("softirq round 3") == 100


def test_virtual_clock_fires_timers_in_order_at_their_time():
    clock, fired = Clock(), []
    clock.add_timer(2.0, lambda: fired.append(("b", clock.now)))
    clock.add_timer(1.0, lambda: fired.append(("a", clock.now)))
    clock.advance(1.5)
    assert fired == [("a", 1.0)]
    clock.advance(1.0)
    assert fired == [("a", 1.0), ("b", 2.0)] and clock.now == 2.5


def test_unsupported_command_names_the_program():
    with pytest.raises(CommandError, match="'tcpdump' is not supported on the mock target"):
        sh(Kernel(), ["tcpdump", "-i", "p0"])


def test_icmp_peer_bucket_allows_six_then_one_per_second():
    from harness.mockkernel.ipv4.icmp import inet_peer_xrlim_allow
    k = Kernel()
    allowed = [inet_peer_xrlim_allow(k, 1, 1.0) for _ in range(10)]
    assert allowed == [True] * 6 + [False] * 4
    k.advance(1.0)
    assert inet_peer_xrlim_allow(k, 1, 1.0) and not inet_peer_xrlim_allow(k, 1, 1.0)


def test_rule_prefix_is_matched_under_its_mask_as_given():
    """fib4_rule_match() masks both sides: `from 10.0.0.1/24` matches 10.0.0.0/24."""
    k = Kernel()
    sh(k, ["ip", "addr", "add", "10.0.0.1/24", "dev", "p0"])
    sh(k, ["ip", "addr", "add", "10.0.1.1/24", "dev", "p1"])
    sh(k, ["ip", "route", "add", "default", "via", "10.0.1.2", "table", "7"])
    sh(k, ["ip", "rule", "add", "from", "10.0.0.1/24", "table", "7"])
    assert route.ip_route_output(k, ip_to_int("8.8.8.8"), ip_to_int("10.0.0.1")).dev.name == "p1"


def _all_hosts_frame(src: str = "10.0.0.2", dport: int = 9) -> bytes:
    return bytes(Ether(src=PORTS[0].peer_mac, dst="01:00:5e:00:00:01") /
                 IP(src=src, dst="224.0.0.1") / UDP(sport=1, dport=dport) / b"group")


def test_all_hosts_route_is_local_multicast_and_never_cached():
    """ip_route_input_mc() allocates a dst per packet; only a nexthop's route is reused."""
    k = Kernel()
    sh(k, ["ip", "addr", "add", "10.0.0.1/24", "dev", "p0"])
    p0 = k.dev_by_name("p0")
    rt = route.ip_route_input(k, ip_to_int("224.0.0.1"), ip_to_int("10.0.0.2"), 0, p0, 0, 17)
    assert (rt.input, rt.type) == (route.DstInput.LOCAL, RouteType.RTN_MULTICAST)
    assert (rt.is_multicast, rt.is_broadcast) == (True, False)
    assert rt.hop.where == "ip_route_input_mc"
    assert route.ip_route_input(k, ip_to_int("224.0.0.1"), ip_to_int("10.0.0.2"), 0, p0, 0, 17) is not rt


@pytest.mark.parametrize("group, protocol, reason", [
    ("224.0.0.1", 17, None),
    ("239.1.2.3", 17, "IP_INVALID_SOURCE"),
    ("239.1.2.3", 2, None),
])
def test_zeronet_source_may_send_only_to_link_local_groups_or_igmp(group, protocol, reason):
    """ip_mc_validate_source(): 0.0.0.0 is refused for a routable group unless
    the packet is IGMP (a group joined with IP_ADD_MEMBERSHIP, which the suite
    cannot make, would see this)."""
    k = Kernel()
    p0 = k.dev_by_name("p0")
    assert route.ip_mc_validate_source(k, ip_to_int(group), 0, 0, p0, 0, protocol) == reason


def test_multicast_datagram_is_cloned_to_the_group_bound_and_the_wildcard_socket():
    """__udp4_lib_mcast_deliver(): each matching socket gets its own copy (two
    sockets share a port only with SO_REUSEADDR, which target.socket() does not
    set, so the sockets are put into the table directly)."""
    from harness.mockkernel.ipv4.udp import UdpSock, udp_recvmsg
    k = Kernel()
    sh(k, ["ip", "addr", "add", "10.0.0.1/24", "dev", "p0"])
    wildcard, group = UdpSock(0, 9, 1 << 20), UdpSock(ip_to_int("224.0.0.1"), 9, 1 << 20)
    unicast = UdpSock(ip_to_int("10.0.0.1"), 9, 1 << 20)
    k.udp_sockets.update({(0, 9): wildcard, (group.addr, 9): group, (unicast.addr, 9): unicast})
    k.receive("p0", [_all_hosts_frame()])
    assert [udp_recvmsg(sk) for sk in (wildcard, group, unicast)] == \
        [(b"group", (ip_to_int("10.0.0.2"), 1))] * 2 + [None]
    assert k.tracer.drops == []
