"""Forwarding between ports: ip_forward() and what happens before the FORWARD hook."""
from __future__ import annotations

import errno

import pytest
from scapy.layers.inet import ICMP, IP, UDP

from harness.testing import drops


PAYLOAD = b"packet-journey"


def test_forwarded_udp_leaves_with_ttl_decremented_new_macs_and_linux_checksum(target, router):
    h0, h1 = router[0], router[1]
    sent = h0.to_dut(dst=h1.ip, ttl=64, id=4242) / UDP(sport=1111, dport=2222) / PAYLOAD
    target.send(h0.port, sent)
    # ip_forward(): TTL 64 -> 63 with the incremental checksum update; new MACs from
    # the egress port and the permanent neighbour entry; everything else untouched.
    expected = h1.from_dut(src=h0.ip, dst=h1.ip, ttl=63, id=4242) / UDP(sport=1111, dport=2222) / PAYLOAD
    got = target.expect(h1.port, expected)
    assert got[14 + 10:14 + 12] == bytes(expected)[14 + 10:14 + 12], "IP header checksum"
    target.expect_nothing()
    assert target.drops() == []


def test_route_mtu_and_advmss_above_what_ip_allows_are_stored_capped(target, router):
    """ip_metrics_convert(): mtu is capped at 65535 - 15, advmss at 65535 - 40."""
    h1 = router[1]
    target.sh(f"ip route add 10.9.0.0/24 dev {h1.port.name} mtu 70000 advmss 70000")
    assert target.sh("ip route show 10.9.0.0/24") == f"10.9.0.0/24 dev {h1.port.name} scope link mtu 65520 advmss 65495 \n"


def test_forwarding_disabled_drops_with_inaddrerrors_and_no_icmp(target, hosts):
    h0, h1 = hosts[0], hosts[1]
    target.send(h0.port, h0.to_dut(dst=h1.ip) / UDP(sport=1, dport=2) / PAYLOAD)
    target.expect_nothing()
    assert [d.reason for d in target.drops()] == ["IP_INADDRERRORS"]


def test_no_route_is_answered_with_icmp_net_unreachable_and_innoroutes(target, router):
    h0 = router[0]
    sent = h0.to_dut(dst="198.51.100.7", id=7) / UDP(sport=1, dport=2) / PAYLOAD
    target.send(h0.port, sent)
    # ip_error(): fib_lookup() found nothing, forwarding is on -> ICMP net unreachable
    # from the address the route back to the sender chooses (p0's).
    target.expect(h0.port, h0.icmp_error(3, 0, sent))
    target.expect_nothing()
    assert [d.reason for d in target.drops()] == ["IP_INNOROUTES"]


def test_unreachable_errors_for_no_route_share_the_senders_inet_peer_tokens(target, router):
    """ip_error() (burst 5 s, cost 1 s) and icmpv4_xrlim_allow() (burst 6 s) take
    tokens from the same inet_peer of the sender: a burst of 10 gets 2 answers."""
    h0 = router[0]
    burst = [h0.to_dut(dst="198.51.100.7", id=i) / UDP(sport=1, dport=2) for i in range(10)]
    target.send(h0.port, burst)
    replies = target.collect(h0.port)
    assert [IP(f[14:])[ICMP].type for f in replies] == [3, 3]
    assert [d.reason for d in target.drops()] == ["IP_INNOROUTES"] * 10


def test_ttl_1_gets_time_exceeded_and_never_reaches_the_forward_hook(target, router):
    h0, h1 = router[0], router[1]
    sent = h0.to_dut(dst=h1.ip, ttl=1, id=99) / UDP(sport=1, dport=2) / PAYLOAD
    target.send(h0.port, sent)
    target.expect(h0.port, h0.icmp_error(11, 0, sent))
    target.expect_nothing()
    drops = target.drops()
    assert [(d.reason, d.stage) for d in drops] == [("IP_INHDR", "IP_FORWARD")]
    assert drops[0].location == "ip_forward"


def test_df_packet_over_egress_mtu_gets_frag_needed_carrying_the_mtu(target, router):
    h0, h1 = router[0], router[1]
    target.sh(f"ip link set dev {h1.port.name} mtu 1400")
    sent = h0.to_dut(dst=h1.ip, flags="DF", id=5) / UDP(sport=1, dport=2) / (b"x" * 1400)
    target.send(h0.port, sent)
    target.expect(h0.port, h0.icmp_error(3, 4, sent, nexthopmtu=1400))
    target.expect_nothing()
    assert [(d.reason, d.location) for d in target.drops()] == [("PKT_TOO_BIG", "ip_forward")]


def test_packet_without_df_is_fragmented_on_the_egress_port(target, router):
    h0, h1 = router[0], router[1]
    target.sh(f"ip link set dev {h0.port.name} mtu 9000")
    target.sh(f"ip link set dev {h1.port.name} mtu 1280")
    payload = bytes(range(256)) * 12  # 3072 bytes of UDP payload, 3080 with the header
    sent = h0.to_dut(dst=h1.ip, flags=0, id=777, ttl=20) / UDP(sport=5, dport=6) / payload
    target.send(h0.port, sent)
    datagram = bytes(sent[IP].payload)
    # (1280 - 20) & ~7 = 1256 bytes per fragment: offsets 0, 1256, 2512
    for offset, more in ((0, True), (1256, True), (2512, False)):
        chunk = datagram[offset:offset + 1256]
        expected = h1.from_dut(src=h0.ip, dst=h1.ip, ttl=19, id=777, proto=17,
                               flags="MF" if more else 0, frag=offset // 8) / chunk
        target.expect(h1.port, expected)
    target.expect_nothing()
    assert target.drops() == []


def test_blackhole_route_drops_silently_and_unreachable_route_answers_host_unreachable(target, router):
    h0 = router[0]
    target.sh("ip route add blackhole 203.0.113.0/25")
    target.sh("ip route add unreachable 203.0.113.128/25")
    target.send(h0.port, h0.to_dut(dst="203.0.113.1", id=1) / UDP(sport=1, dport=2))
    target.expect_nothing()
    sent = h0.to_dut(dst="203.0.113.200", id=2) / UDP(sport=1, dport=2)
    target.send(h0.port, sent)
    target.expect(h0.port, h0.icmp_error(3, 1, sent))
    assert [d.reason for d in target.drops()] == ["NOT_SPECIFIED", "NOT_SPECIFIED"]


@pytest.mark.parametrize("action, icmp_code, reason", [
    # fib4_rule_action(): -ENETUNREACH, which ip_error() answers with net unreachable,
    # not the host unreachable of an `unreachable` route
    ("unreachable", 0, "IP_INNOROUTES"),
    ("prohibit", 13, "NOT_SPECIFIED"),  # -EACCES: communication administratively prohibited
    ("blackhole", None, "NOT_SPECIFIED"),  # -EINVAL: ip_error() drops without an answer
])
def test_rule_action_error_is_answered_by_ip_error_not_the_routes_type(target, router, action, icmp_code, reason):
    h0, h1 = router[0], router[1]
    target.sh(f"ip route add 203.0.113.0/24 via {h1.ip}")
    target.sh(f"ip rule add to 203.0.113.0/24 priority 100 {action}")
    sent = h0.to_dut(dst="203.0.113.9", id=9) / UDP(sport=1, dport=2) / PAYLOAD
    target.send(h0.port, sent)
    if icmp_code is not None:
        target.expect(h0.port, h0.icmp_error(3, icmp_code, sent))
    target.expect_nothing()
    assert drops(target) == [(reason, "ROUTING", "ip_error")]


@pytest.mark.parametrize("action, error", [
    ("unreachable route", errno.EHOSTUNREACH),  # fib_props[] of fib_semantics.c
    ("unreachable rule", errno.ENETUNREACH),  # fib4_rule_action()
    ("prohibit rule", errno.EACCES),
    ("blackhole rule", errno.EINVAL),
])
def test_a_local_sender_gets_the_errno_of_the_rule_action_or_route_type(target, router, action, error):
    """ip_route_output_key_hash_rcu() hands fib_lookup()'s errno to udp_sendmsg(),
    which returns it from sendto(): no packet is built, nothing leaves."""
    h0, h1 = router[0], router[1]
    keyword, kind = action.split()
    target.sh(f"ip route add 203.0.113.0/24 via {h1.ip}")
    if kind == "rule":
        target.sh(f"ip rule add to 203.0.113.0/24 priority 100 {keyword}")
    else:
        target.sh(f"ip route add {keyword} 203.0.113.0/25")
    sock = target.socket("udp", (h0.dut_ip, 5000))
    with pytest.raises(OSError) as raised:
        sock.sendto(PAYLOAD, ("203.0.113.9", 2))
    assert raised.value.errno == error
    target.expect_nothing()
    assert target.drops() == []
