"""Source validation: rp_filter strict and loose, local sources, martians."""
from __future__ import annotations

import pytest
from scapy.layers.inet import UDP


def _spoofed(host, src: str, dst: str):
    return host.to_dut(src=src, dst=dst) / UDP(sport=1, dport=2) / b"spoof"


def test_strict_rp_filter_drops_a_source_routed_via_another_port(target, router):
    h0, h1, h2 = router
    target.sh("sysctl -w net.ipv4.conf.all.rp_filter=1")
    target.send(h0.port, _spoofed(h0, "10.0.1.77", h2.ip))  # 10.0.1.0/24 is behind p1
    target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("IP_RPFILTER", "ROUTING")]


def test_loose_rp_filter_accepts_any_source_with_a_route_back(target, router):
    h0, h1, h2 = router
    target.sh("sysctl -w net.ipv4.conf.all.rp_filter=2")
    target.send(h0.port, _spoofed(h0, "10.0.1.77", h2.ip))
    target.expect(h2.port, h2.from_dut(src="10.0.1.77", dst=h2.ip, ttl=63) / UDP(sport=1, dport=2) / b"spoof")
    assert target.drops() == []


def test_loose_rp_filter_drops_a_source_with_no_route_back(target, router):
    h0, h1, h2 = router
    target.sh("sysctl -w net.ipv4.conf.all.rp_filter=2")
    target.send(h0.port, _spoofed(h0, "192.0.2.9", h2.ip))
    target.expect_nothing()
    assert [d.reason for d in target.drops()] == ["IP_RPFILTER"]


def test_effective_rp_filter_is_the_max_of_all_and_the_device(target, router):
    h0, h1, h2 = router
    target.sh("sysctl -w net.ipv4.conf.all.rp_filter=0")
    target.sh(f"sysctl -w net.ipv4.conf.{h0.port.name}.rp_filter=1")
    target.send(h0.port, _spoofed(h0, "10.0.1.77", h2.ip))
    target.expect_nothing()
    assert [d.reason for d in target.drops()] == ["IP_RPFILTER"]


def test_without_rp_filter_a_spoofed_source_is_forwarded(target, router):
    h0, h1, h2 = router
    target.send(h0.port, _spoofed(h0, "10.0.1.77", h2.ip))
    target.expect(h2.port, h2.from_dut(src="10.0.1.77", dst=h2.ip, ttl=63) / UDP(sport=1, dport=2) / b"spoof")


def test_local_address_as_source_is_ip_local_source(target, router):
    h0, h1, h2 = router
    target.send(h0.port, _spoofed(h0, h1.dut_ip, h2.ip))
    target.expect_nothing()
    assert [d.reason for d in target.drops()] == ["IP_LOCAL_SOURCE"]


def test_local_address_arriving_on_another_port_is_delivered_weak_host(target, hosts):
    h0, h1, _ = hosts
    sock = target.socket("udp", (h1.dut_ip, 2))
    target.send(h0.port, h0.to_dut(dst=h1.dut_ip) / UDP(sport=1, dport=2) / b"weak host")
    assert sock.recv() == (b"weak host", (h0.ip, 1))


@pytest.mark.parametrize(("src", "dst", "reason"), [
    ("127.0.0.1", "10.0.0.1", "IP_LOCALNET"),
    ("10.0.0.2", "127.0.0.1", "IP_LOCALNET"),
    ("224.0.0.9", "10.0.0.1", "IP_INVALID_SOURCE"),
    ("0.0.0.0", "10.0.0.1", "IP_INVALID_SOURCE"),
    ("10.0.0.2", "0.0.0.0", "IP_INVALID_DEST"),
])
def test_martian_addresses_are_dropped_in_routing(target, hosts, src, dst, reason):
    h0 = hosts[0]
    target.send(h0.port, _spoofed(h0, src, dst))
    target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [(reason, "ROUTING")]


def test_the_rest_of_0_slash_8_is_ordinary_unicast(target, hosts):
    """ipv4_is_zeronet() matches only 0.0.0.0 on current kernels."""
    h0 = hosts[0]
    sock = target.socket("udp", (h0.dut_ip, 2))
    target.send(h0.port, _spoofed(h0, "0.0.0.5", h0.dut_ip))
    assert sock.recv() == (b"spoof", ("0.0.0.5", 1))
