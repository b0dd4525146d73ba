"""ARP: answering for local addresses, resolving next hops, failing resolution."""
from __future__ import annotations

from scapy.layers.inet import UDP
from scapy.layers.l2 import ARP, Ether

from harness.testing import drops


def test_arp_request_for_a_dut_address_is_answered(target, hosts):
    h0 = hosts[0]
    request = Ether(src=h0.mac, dst="ff:ff:ff:ff:ff:ff") / \
        ARP(op=1, hwsrc=h0.mac, psrc="10.0.0.9", hwdst="00:00:00:00:00:00", pdst=h0.dut_ip)
    target.send(h0.port, request)
    reply = Ether(src=h0.port.mac, dst=h0.mac) / \
        ARP(op=2, hwsrc=h0.port.mac, psrc=h0.dut_ip, hwdst=h0.mac, pdst="10.0.0.9")
    target.expect(h0.port, reply)
    target.expect_nothing()
    neigh = target.sh(f"ip neigh show 10.0.0.9 dev {h0.port.name}")
    assert h0.mac in neigh and "STALE" in neigh


def test_forwarding_to_an_unknown_next_hop_arps_then_sends_the_queued_packet(target, router):
    h0, h1 = router[0], router[1]
    target.sh(f"ip neigh del {h1.ip} dev {h1.port.name}")
    sent = h0.to_dut(dst=h1.ip, id=3) / UDP(sport=1, dport=2) / b"queued"
    target.send(h0.port, sent)
    who_has = Ether(src=h1.port.mac, dst="ff:ff:ff:ff:ff:ff") / \
        ARP(op=1, hwsrc=h1.port.mac, psrc=h1.dut_ip, hwdst="00:00:00:00:00:00", pdst=h1.ip)
    target.expect(h1.port, who_has)
    target.send(h1.port, Ether(src=h1.mac, dst=h1.port.mac) /
                ARP(op=2, hwsrc=h1.mac, psrc=h1.ip, hwdst=h1.port.mac, pdst=h1.dut_ip))
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=3, ttl=63) / UDP(sport=1, dport=2) / b"queued")
    assert "REACHABLE" in target.sh(f"ip neigh show {h1.ip} dev {h1.port.name}")


def test_unanswered_arp_fails_the_queued_packet_with_host_unreachable(target, router):
    h0 = router[0]
    target.send(h0.port, h0.to_dut(dst="10.0.1.50", id=8) / UDP(sport=1, dport=2))
    target.wait(4)
    solicits = [f for f in target.collect(router[1].port) if Ether(f).type == 0x0806]
    assert len(solicits) == 3, "mcast_probes=3 broadcast requests, retrans_time apart"
    # the packet failed after ip_forward(), so the quoted header has TTL 63
    forwarded = h0.to_dut(dst="10.0.1.50", id=8, ttl=63) / UDP(sport=1, dport=2)
    target.expect(h0.port, h0.icmp_error(3, 1, forwarded))
    assert [d.reason for d in target.drops()] == ["NEIGH_FAILED"]


def test_an_arp_runt_shorter_than_its_addresses_is_dropped_too_small(target, hosts):
    """arp_rcv() pulls arp_hdr_len(dev), 28 bytes for Ethernet/IPv4, before reading a field:
    a runt of 20 is dropped with pskb_may_pull_reason()'s PKT_TOO_SMALL (6.17+)."""
    h0 = hosts[0]
    request = Ether(src=h0.mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=h0.mac, psrc=h0.ip, pdst=h0.dut_ip)
    target.send(h0.port, bytes(request)[:14 + 20])
    target.expect_nothing()
    assert drops(target) == [("PKT_TOO_SMALL", "NEIGH", "arp_rcv")]
