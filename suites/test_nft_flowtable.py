"""The nft flowtable software fast path (nf_flow_table_ip.c nf_flow_offload_ip_hook(),
nft_flow_offload.c): `flow add @ft` in a forward chain offloads an established
connection once conntrack has confirmed it; from then on the flowtable's ingress hook
on p0/p1 forwards its packets itself (TTL decremented, NAT from the conntrack
tuples), so FORWARD and POSTROUTING never see them, until a packet is too big for
the route's MTU (that one takes the slow path), has TTL 1 (the slow path answers
it), or is a TCP FIN or RST (the flow is torn down: the connection is back on the
slow path for good).

The netns lab's 6.18 has no nf_flow_table (CONFIG_NF_FLOW_TABLE unset: every
flowtable is refused with ENOENT), so these run on the mock and skip on the labs
with capability nft_flowtable; the mock models a kernel that has nf_flow_table,
nf_flow_table_inet and nft_flow_offload."""
from __future__ import annotations

import re

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from harness.testing import counted_by_comment

pytestmark = [pytest.mark.requires("nftables"), pytest.mark.requires("nft_flowtable")]

RULESET = """table inet t {
	flowtable ft {
		hook ingress priority filter
		devices = { p0, p1 }
		counter
	}
	chain fw {
		type filter hook forward priority filter; policy accept;
		meta l4proto { tcp, udp } flow add @ft counter comment "offloaded"
		counter comment "forward"
	}
	chain post {
		type filter hook postrouting priority filter; policy accept;
		counter comment "postrouting"
	}
}
"""
NAT = """table ip nat {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "p0" udp dport 8080 dnat to 10.0.1.2:80
	}
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "p1" masquerade
	}
}
"""


def flowtable(target, extra: str = "") -> None:
    target.sh("nft -f -", stdin=RULESET + extra)


def udp_from(host, dst: str, n: int, sport: int = 1000, dport: int = 2000, **ip_fields):
    return host.to_dut(dst=dst, id=n, **ip_fields) / UDP(sport=sport, dport=dport) / f"datagram {n}".encode()


def conntrack_statuses(target) -> list[frozenset[str]]:
    return [entry.status for entry in target.conntrack()]


def test_once_offloaded_a_udp_flow_bypasses_forward_and_postrouting(target, router):
    """The first datagram's entry is unconfirmed in FORWARD (no offload); the second
    offloads it; the third to fifth are forwarded by the flowtable (TTL 63) and never
    counted in FORWARD or POSTROUTING."""
    h0, h1 = router[0], router[1]
    flowtable(target)
    for n in range(1, 6):
        target.send(h0.port, udp_from(h0, h1.ip, n))
        target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=n, ttl=63) / UDP(sport=1000, dport=2000) /
                      f"datagram {n}".encode())
    assert counted_by_comment(target) == {"offloaded": 1, "forward": 2, "postrouting": 2}
    assert conntrack_statuses(target) == [frozenset({"confirmed", "offload"})]


def test_the_fast_path_hop_is_the_flowtable_ingress_hook_and_no_netfilter_hook_follows(target, router):
    h0, h1 = router[0], router[1]
    flowtable(target)
    for n in range(1, 4):
        target.send(h0.port, udp_from(h0, h1.ip, n))
    last = target.journeys()[-1]
    stages = [hop.stage for hop in last.hops]
    assert ("NF_INGRESS", "nf_flow_offload_ip_hook") in [(hop.stage, hop.where) for hop in last.hops]
    assert not {"NF_PREROUTING", "ROUTING", "NF_FORWARD", "NF_POSTROUTING"} & set(stages)
    assert stages.index("NF_INGRESS") < stages.index("NIC_TX")


def test_dnat_and_snat_are_applied_in_the_fast_path_both_ways(target, router):
    """h0 -> 10.0.0.1:8080 is DNATed to h1 10.0.1.2:80 and masqueraded to 10.0.1.1;
    after offload the flowtable rewrites both directions from the conntrack tuples
    (nf_flow_snat_ip/port, nf_flow_dnat_ip/port) with checksums updated."""
    h0, h1 = router[0], router[1]
    flowtable(target, NAT)
    for n in range(1, 4):
        target.send(h0.port, udp_from(h0, h0.dut_ip, n, dport=8080))
        target.expect(h1.port, Ether(src=h1.port.mac, dst=h1.mac) /
                      IP(src="10.0.1.1", dst="10.0.1.2", id=n, ttl=63) / UDP(sport=1000, dport=80) /
                      f"datagram {n}".encode())
        target.send(h1.port, Ether(src=h1.mac, dst=h1.port.mac) / IP(src="10.0.1.2", dst="10.0.1.1", id=100 + n) /
                    UDP(sport=80, dport=1000) / f"reply {n}".encode())
        target.expect(h0.port, Ether(src=h0.port.mac, dst=h0.mac) /
                      IP(src="10.0.0.1", dst="10.0.0.2", id=100 + n, ttl=63) / UDP(sport=8080, dport=1000) /
                      f"reply {n}".encode())
    # slow path: datagram 1 (unconfirmed), datagram 2 (offloads); the replies all take the fast path
    assert counted_by_comment(target) == {"offloaded": 1, "forward": 2, "postrouting": 2}
    assert conntrack_statuses(target) == [frozenset({"confirmed", "seen-reply", "snat", "dnat", "offload"})]


def test_ttl_2_is_forwarded_with_ttl_1_and_ttl_1_takes_the_slow_path_to_time_exceeded(target, router):
    h0, h1 = router[0], router[1]
    flowtable(target)
    for n in (1, 2):
        target.send(h0.port, udp_from(h0, h1.ip, n))
    target.send(h0.port, udp_from(h0, h1.ip, 3, ttl=2))
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=3, ttl=1) / UDP(sport=1000, dport=2000) / b"datagram 3")
    last = udp_from(h0, h1.ip, 4, ttl=1)
    target.send(h0.port, last)
    target.expect(h0.port, h0.icmp_error(11, 0, last[IP]))
    # the time-exceeded error is sent by the DUT: it crosses POSTROUTING
    assert counted_by_comment(target) == {"offloaded": 1, "forward": 2, "postrouting": 3}


def test_a_packet_over_the_route_mtu_leaves_the_fast_path_and_ip_forward_answers_it(target, router):
    """The flow's MTU is its route's (p1 at 1400); a 1450-byte DF datagram takes the
    slow path (nf_flow_exceeds_mtu()), where ip_forward() sends frag-needed."""
    h0, h1 = router[0], router[1]
    target.sh("ip link set dev p1 mtu 1400")
    flowtable(target)
    for n in (1, 2, 3):
        target.send(h0.port, udp_from(h0, h1.ip, n))
    big = h0.to_dut(dst=h1.ip, id=4, flags="DF") / UDP(sport=1000, dport=2000) / bytes(1450 - 28)
    target.send(h0.port, big)
    target.expect(h0.port, h0.icmp_error(3, 4, big[IP], nexthopmtu=1400))
    target.expect_nothing([h1.port])
    # ip_forward() refuses it before FORWARD; its error crosses POSTROUTING
    assert counted_by_comment(target) == {"offloaded": 1, "forward": 2, "postrouting": 3}
    assert conntrack_statuses(target) == [frozenset({"confirmed", "offload"})]


def tcp(src_host, dst_host, flags: str, seq: int, ack: int = 0, payload: bytes = b""):
    """A segment of the connection h0:40000 -> h1:80, from either side."""
    sport, dport = (40000, 80) if src_host.port.index == 0 else (80, 40000)
    return src_host.to_dut(src=src_host.ip, dst=dst_host.ip) / TCP(sport=sport, dport=dport, flags=flags, seq=seq,
                                                                  ack=ack, window=65535) / payload


def test_a_tcp_fin_tears_the_flow_down_and_the_connection_is_back_on_the_slow_path(target, router):
    """The handshake's last ACK (ESTABLISHED and ASSURED) offloads the connection; data
    goes by the flowtable; the FIN tears the flow down (nf_flow_state_check()) and is
    forwarded on the slow path, where conntrack moves the entry to FIN_WAIT."""
    h0, h1 = router[0], router[1]
    flowtable(target)
    target.send(h0.port, tcp(h0, h1, "S", 1000))
    target.send(h1.port, tcp(h1, h0, "SA", 5000, 1001))
    target.send(h0.port, tcp(h0, h1, "A", 1001, 5001))
    [entry] = target.conntrack()
    # ctnetlink_dump_info() leaves an offloaded entry's timeout and TCP state out
    assert (entry.status, entry.state, entry.timeout) == (
        frozenset({"confirmed", "seen-reply", "assured", "offload"}), "", 0)
    target.send(h0.port, tcp(h0, h1, "PA", 1001, 5001, b"fast"))
    assert counted_by_comment(target) == {"offloaded": 1, "forward": 3, "postrouting": 3}
    target.send(h0.port, tcp(h0, h1, "FA", 1005, 5001))
    [entry] = target.conntrack()
    assert (entry.state, "offload" in entry.status) == ("FIN_WAIT", False)
    target.send(h1.port, tcp(h1, h0, "A", 5001, 1006))  # no longer offloaded: the slow path, CLOSE_WAIT
    assert counted_by_comment(target) == {"offloaded": 1, "forward": 5, "postrouting": 5}
    assert [(e.state, "offload" in e.status) for e in target.conntrack()] == [("CLOSE_WAIT", False)]


def test_the_flowtable_counter_flag_counts_fast_path_packets_in_the_conntrack_entry(target, router):
    """With nf_conntrack_acct on, conntrack counts the slow path's packets and the
    flowtable (`counter`: nf_ct_acct_update()) the fast path's: every datagram is
    counted once, with its IP length."""
    h0, h1 = router[0], router[1]
    target.sh("sysctl -w net.netfilter.nf_conntrack_acct=1")
    flowtable(target)
    for n in range(1, 6):
        target.send(h0.port, udp_from(h0, h1.ip, n))
    listing = target.sh("conntrack -L")
    assert re.findall(r"packets=(\d+) bytes=(\d+)", listing) == [("5", str(5 * (20 + 8 + 10))), ("0", "0")]
    assert "[OFFLOAD]" in listing


@pytest.mark.ipv6
def test_an_ipv6_flow_is_offloaded_by_an_inet_flowtable_and_its_hop_limit_decremented(target, router6):
    """nf_flow_offload_inet_hook() hands IPv6 to nf_flow_offload_ipv6_hook(): the third
    datagram leaves with hop limit 63 and FORWARD never sees it."""
    h0, h1 = router6[0], router6[1]
    flowtable(target)
    for n in range(1, 4):
        payload = UDP(sport=1000, dport=2000) / f"datagram {n}".encode()
        target.send(h0.port, h0.to_dut6(dst=h1.ip6, fl=n) / payload)
        target.expect(h1.port, h1.from_dut6(src=h0.ip6, dst=h1.ip6, hlim=63, fl=n) / payload)
    assert counted_by_comment(target) == {"offloaded": 1, "forward": 2, "postrouting": 2}
    [entry] = target.sh("conntrack -L -f ipv6").splitlines()
    assert entry.startswith("udp      17 src=2001:db8::2 ") and "[OFFLOAD]" in entry  # no timeout once offloaded


def test_an_idle_flow_is_torn_down_by_the_flowtable_gc_and_offloaded_again_by_its_next_packet(target, router):
    """nf_flow_offload_work_gc(), every second: a flow idle past nf_flowtable_udp_timeout
    is torn down; flow_offload_fixup_ct() leaves the entry the replied timeout less the
    offload timeout (120 - 2 s); the next datagram takes the slow path and offloads it again."""
    h0, h1 = router[0], router[1]
    target.sh("sysctl -w net.netfilter.nf_flowtable_udp_timeout=2")
    flowtable(target)
    for n in (1, 2, 3):
        target.send(h0.port, udp_from(h0, h1.ip, n))
    target.wait(4)
    [entry] = target.conntrack()
    assert ("offload" in entry.status, entry.timeout) == (False, 118 - 2)  # two seconds after the teardown
    target.send(h0.port, udp_from(h0, h1.ip, 4))
    target.send(h0.port, udp_from(h0, h1.ip, 5))
    assert counted_by_comment(target) == {"offloaded": 2, "forward": 3, "postrouting": 3}


def test_the_flowtable_runs_at_its_priority_among_the_netdev_ingress_chains(target, router):
    """Its hook is a netdev ingress hook on each of its devices: a chain of p0 at a lower
    priority sees every datagram, one at a higher priority only those the flowtable did
    not take (nf_hook_entries in priority order; NF_STOLEN ends the hook)."""
    h0, h1 = router[0], router[1]
    flowtable(target, 'table netdev n {\n\tchain before {\n\t\ttype filter hook ingress device "p0" priority -10;\n'
                      '\t\tcounter comment "before"\n\t}\n\tchain after {\n'
                      '\t\ttype filter hook ingress device "p0" priority 10;\n\t\tcounter comment "after"\n\t}\n}\n')
    for n in range(1, 6):
        target.send(h0.port, udp_from(h0, h1.ip, n))
    assert counted_by_comment(target) == {"before": 5, "after": 2, "offloaded": 1, "forward": 2, "postrouting": 2}


def test_a_direction_whose_input_device_is_not_the_flowtables_stays_on_the_slow_path(target, router):
    """The flowtable hooks p0 only: the original direction (in on p0) is forwarded by it,
    replies (in on p1) still cross FORWARD and POSTROUTING."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=RULESET.replace("devices = { p0, p1 }", "devices = { p0 }"))
    for n in range(1, 4):
        target.send(h0.port, udp_from(h0, h1.ip, n))
        target.send(h1.port, h1.to_dut(src=h1.ip, dst=h0.ip, id=10 + n) / UDP(sport=2000, dport=1000) / b"reply")
    # slow path: datagram 1, and the three replies, the first of which offloads the flow
    # (the entry is confirmed by then: either direction offloads it)
    assert counted_by_comment(target) == {"offloaded": 1, "forward": 4, "postrouting": 4}


def test_deleting_the_flowtable_or_the_conntrack_entry_puts_the_flow_back_on_the_slow_path(target, router):
    """nf_flow_table_free() tears every flow down (the entry loses OFFLOAD); a flow whose
    entry is deleted (conntrack -F) is missed by flow_offload_lookup() (nf_ct_is_dying())."""
    h0, h1 = router[0], router[1]
    flowtable(target)
    for n in (1, 2, 3):
        target.send(h0.port, udp_from(h0, h1.ip, n))
    target.sh("conntrack -F")
    target.send(h0.port, udp_from(h0, h1.ip, 4))  # slow path: a new entry, unconfirmed in FORWARD
    assert counted_by_comment(target) == {"offloaded": 1, "forward": 3, "postrouting": 3}
    target.send(h0.port, udp_from(h0, h1.ip, 5))  # offloads the new entry
    target.sh("nft flush chain inet t fw")
    target.sh("nft delete flowtable inet t ft")
    assert conntrack_statuses(target) == [frozenset({"confirmed"})]
    target.send(h0.port, udp_from(h0, h1.ip, 6))
    assert counted_by_comment(target) == {"postrouting": 5}  # datagrams 1, 2, 4, 5 and 6
