"""Journeys through TC egress on both targets: where the TC_EGRESS hop stands in a
forwarded packet's or an answer's journey (after NF_POSTROUTING, before NIC_TX),
and the verdicts both can tell: SHOT, OK (the frame left the port) and REDIRECT
(it left another port). The lab infers them from counters (xdpstats.py), the mock
records them hop by hop; PIPE and UNSPEC look like OK on the lab, STOLEN and TRAP
have no verdict there, so suites do not compare those."""
from __future__ import annotations

import ipaddress
import json

import pytest
from scapy.layers.inet import ICMP, IP, UDP

from harness import bpfmaps
from harness.testing import icmp_socket_mask

pytestmark = pytest.mark.requires("tc", "journey.tc")

CONNTRACK_HOPS = ("nf_conntrack_in", "nf_confirm")
POSTROUTING = """
table ip t {
    chain forward {
        type filter hook forward priority 0; policy accept;
    }
    chain postrouting {
        type filter hook postrouting priority 0; policy accept;
    }
}
"""
MASQUERADE_ON_P1 = """
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "p1" masquerade
    }
}
"""


def attach(target, port: str, direction: str, obj, section: str = "tc") -> None:
    target.sh(f"tc qdisc replace dev {port} clsact")
    target.sh(f"tc filter add dev {port} {direction} bpf da obj {obj} sec {section}")


def journey_of(target, ident: int):
    return next(j for j in target.journeys() if f" id={ident} " in str(j.packet))


def egress_part(journey) -> list[tuple[str, str, str]]:
    """(stage, where, verdict) from the first NF_POSTROUTING hop on: chain hops are
    named by their chain, NAT rewrites by nf_nat_packet (conntrack's own hops are
    the mock's only)."""
    stages = journey.stages
    start = stages.index("NF_POSTROUTING") if "NF_POSTROUTING" in stages else 0
    return [(h.stage, h.where, h.verdict) for h in journey.hops[start:]
            if h.stage in ("NF_POSTROUTING", "TC_EGRESS", "NIC_TX") and h.where not in CONNTRACK_HOPS]


def shot_at_p1_egress(target, router, bpf_objects, ident: int, ruleset: str | None = None):
    """The journey of a datagram from h0 to h1 that tc_drop_udp shoots at p1's
    egress, with `ruleset` loaded first if given."""
    h0, h1 = router[0], router[1]
    if ruleset is not None:
        target.sh("nft -f -", stdin=ruleset)
    attach(target, h1.port.name, "egress", bpf_objects["tc_drop_udp"])
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=ident) / UDP(sport=5001, dport=7) / b"shot")
    target.expect_nothing()
    return journey_of(target, ident)


def nat_rewrites(journey) -> list[str]:
    return [str(h.summary) for h in journey.hops if h.where == "nf_nat_packet"]


def redirected(target, host, ident: int, dst: str, out_of: str | None):
    """A UDP datagram from `host` to `dst` that tc_redirect sends out of port
    `out_of`, or to an ifindex no device has (None)."""
    links = json.loads(target.sh("ip -j link show"))
    if out_of is None:
        ifindex = max(link["ifindex"] for link in links) + 1
    else:
        ifindex = next(link["ifindex"] for link in links if link["ifname"] == out_of)
    return host.to_dut(dst=dst, id=ident) / UDP(sport=1, dport=9) / bytes([ifindex, 0])


def tc_hops(journey) -> list[tuple[str, str, str]]:
    return [(h.stage, h.where, h.verdict) for h in journey.hops if h.stage.startswith("TC_") or h.stage == "NIC_TX"]


@pytest.mark.requires("nftrace")
def test_tc_egress_on_a_forwarded_packet_comes_after_postrouting(target, router, bpf_objects):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=POSTROUTING)
    attach(target, h1.port.name, "egress", bpf_objects["tc_drop_udp"])
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=51) / ICMP(type=8, id=7, seq=1) / b"passes")
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=51, ttl=63) / ICMP(type=8, id=7, seq=1) / b"passes")
    journey = journey_of(target, 51)
    assert [s for s in journey.stages if s in ("NF_FORWARD", "NF_POSTROUTING", "TC_EGRESS", "NIC_TX")] == \
        ["NF_FORWARD", "NF_POSTROUTING", "TC_EGRESS", "NIC_TX"]
    assert egress_part(journey) == [("NF_POSTROUTING", "ip t postrouting", "ACCEPT"), ("TC_EGRESS", "p1", "OK"),
                                    ("NIC_TX", "p1", "XMIT")]
    assert journey.drop is None


@pytest.mark.requires("nftrace", "drop_reasons")
def test_tc_egress_shot_is_the_last_hop_of_a_forwarded_packet(target, router, bpf_objects):
    journey = shot_at_p1_egress(target, router, bpf_objects, 52, POSTROUTING)
    assert egress_part(journey) == [("NF_POSTROUTING", "ip t postrouting", "ACCEPT"), ("TC_EGRESS", "p1", "SHOT")]
    assert journey.stages[-1] == "TC_EGRESS"
    assert (journey.drop.reason, journey.drop.stage, journey.drop.location) == \
        ("TC_EGRESS", "TC_EGRESS", "__dev_queue_xmit")


@pytest.mark.requires("drop_reasons")
def test_without_netfilter_tracing_the_egress_drop_still_gets_its_tc_hop(target, router, bpf_objects):
    """No nft ruleset: the lab has only the kfree_skb drop (ttl already decremented)
    to put the hop in."""
    journey = shot_at_p1_egress(target, router, bpf_objects, 53)
    assert [(h.stage, h.where, h.verdict) for h in journey.hops if h.stage == "TC_EGRESS"] == \
        [("TC_EGRESS", "p1", "SHOT")]
    assert journey.drop.stage == "TC_EGRESS"


@pytest.mark.requires("nftrace", "bpftool", "conntrack")
def test_egress_tc_nat_runs_after_masquerade(target, router, bpf_objects):
    """POSTROUTING masquerades 10.0.0.2 to 10.0.1.1, then tc_nat at p1's egress
    rewrites 10.0.1.1 to 10.0.1.77: the TC hop stands after the nat chain and its
    SNAT, which names netfilter's translation (on the lab from the conntrack
    entry's reply tuple, not from the frame TC rewrote)."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=MASQUERADE_ON_P1)
    attach(target, h1.port.name, "egress", bpf_objects["tc_nat"], "tc/egress")
    snat = bpfmaps.map_of(target, h1.port.name, "snat", hook="tc/egress")
    snat.update(ipaddress.IPv4Address(h1.dut_ip).packed, ipaddress.IPv4Address("10.0.1.77").packed)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=54) / UDP(sport=5000, dport=53) / b"nat")
    target.expect(h1.port, h1.from_dut(src="10.0.1.77", dst=h1.ip, id=54, ttl=63) /
                  UDP(sport=5000, dport=53) / b"nat")
    journey = journey_of(target, 54)
    assert egress_part(journey) == [
        ("NF_POSTROUTING", "ip nat postrouting", "ACCEPT"), ("NF_POSTROUTING", "nf_nat_packet", "SNAT"),
        ("TC_EGRESS", "p1", "OK"), ("NIC_TX", "p1", "XMIT")]
    assert nat_rewrites(journey) == ["saddr 10.0.0.2:5000 -> 10.0.1.1:5000"]


@pytest.mark.requires("nftrace", "drop_reasons", "conntrack")
def test_a_masqueraded_packet_shot_at_tc_egress_keeps_its_snat_hop_and_its_drop(target, router, bpf_objects):
    """Nothing leaves p1 to show the masquerade; the drop carries the source SNAT
    wrote, which the lab finds in the conntrack entry's reply tuple."""
    journey = shot_at_p1_egress(target, router, bpf_objects, 61, MASQUERADE_ON_P1)
    assert egress_part(journey) == [
        ("NF_POSTROUTING", "ip nat postrouting", "ACCEPT"), ("NF_POSTROUTING", "nf_nat_packet", "SNAT"),
        ("TC_EGRESS", "p1", "SHOT")]
    assert nat_rewrites(journey) == ["saddr 10.0.0.2:5001 -> 10.0.1.1:5001"]
    assert (journey.drop.reason, journey.drop.stage) == ("TC_EGRESS", "TC_EGRESS")
    assert [j for j in target.journeys() if j.drop is not None] == [journey]


@pytest.mark.requires("nftrace")
def test_an_answer_crosses_tc_egress_of_the_port_it_leaves(target, hosts, bpf_objects):
    """The echo reply, not the request, crosses p0's egress: the hop is in the
    reply's journey, the request's child."""
    h0 = hosts[0]
    target.sh("nft -f -", stdin=POSTROUTING)
    attach(target, h0.port.name, "egress", bpf_objects["tc_drop_udp"])
    target.send(h0.port, h0.to_dut(id=55) / ICMP(type=8, id=7, seq=1) / b"ping")
    reply = h0.from_dut(src=h0.dut_ip, dst=h0.ip, ttl=64, flags=0) / ICMP(type=0, id=7, seq=1) / b"ping"
    target.expect(h0.port, icmp_socket_mask(reply))
    request = journey_of(target, 55)
    assert "TC_EGRESS" not in request.stages
    assert [egress_part(child) for child in request.children] == \
        [[("NF_POSTROUTING", "ip t postrouting", "ACCEPT"), ("TC_EGRESS", "p0", "OK"), ("NIC_TX", "p0", "XMIT")]]


def test_tc_egress_redirect_leaves_by_the_port_it_names(target, router, bpf_objects):
    h0, h1, h2 = router
    attach(target, h1.port.name, "egress", bpf_objects["tc_redirect"])
    target.send(h0.port, redirected(target, h0, 56, h1.ip, out_of=h2.port.name))
    got = IP(target.frame_left(h2.port, "the forwarded datagram, redirected at p1's egress")[14:])
    assert (got.dst, got.ttl) == (h1.ip, 63)
    target.expect_nothing()
    journey = journey_of(target, 56)
    assert [(h.stage, h.where, h.verdict) for h in journey.hops if h.stage in ("TC_EGRESS", "NIC_TX")] == \
        [("TC_EGRESS", "p1", "REDIRECT"), ("NIC_TX", "p2", "XMIT")]


def redirected_at_ingress_into(target, hosts, bpf_objects, egress_program: str, ident: int):
    """The journey of a datagram p0's ingress program redirects out of p1, whose
    egress runs `egress_program`; nothing may leave."""
    h0, h1 = hosts[0], hosts[1]
    attach(target, h0.port.name, "ingress", bpf_objects["tc_redirect"])
    attach(target, h1.port.name, "egress", bpf_objects[egress_program])
    target.send(h0.port, redirected(target, h0, ident, h1.ip, out_of=h1.port.name))
    target.expect_nothing()
    return journey_of(target, ident)


@pytest.mark.requires("drop_reasons")
def test_tc_ingress_redirect_then_the_egress_program_of_the_port_it_names(target, hosts, bpf_objects):
    """bpf_redirect() at p0's ingress hands the frame to p1's dev_queue_xmit, so
    p1's egress program runs on it (and drops it) instead of IP seeing it."""
    journey = redirected_at_ingress_into(target, hosts, bpf_objects, "tc_drop_udp", 57)
    assert tc_hops(journey) == [("TC_INGRESS", "p0", "REDIRECT"), ("TC_EGRESS", "p1", "SHOT")]
    assert journey.drop.stage == "TC_EGRESS"


@pytest.mark.requires("drop_reasons")
def test_an_egress_program_redirecting_to_its_own_port_is_stopped_at_the_recursion_limit(target, router, bpf_objects):
    """__bpf_tx_skb() nests dev_queue_xmit() at most XMIT_RECURSION_LIMIT (8) levels
    deep: p1's program runs 10 times, then the skb is freed in __bpf_redirect."""
    h0, h1 = router[0], router[1]
    attach(target, h1.port.name, "egress", bpf_objects["tc_redirect"])
    target.send(h0.port, redirected(target, h0, 58, h1.ip, out_of=h1.port.name))
    target.expect_nothing()
    assert [(d.reason, d.stage, d.location) for d in target.drops()] == \
        [("NOT_SPECIFIED", "TC_EGRESS", "__bpf_redirect")]
    assert bpfmaps.run_count(target, h1.port.name, "tc/egress") == 10
    journey = journey_of(target, 58)
    assert set(tc_hops(journey)) == {("TC_EGRESS", "p1", "REDIRECT")}
    assert journey.drop.stage == "TC_EGRESS"


@pytest.mark.requires("drop_reasons")
@pytest.mark.parametrize(("direction", "stage"), [("ingress", "TC_INGRESS"), ("egress", "TC_EGRESS")])
def test_a_redirect_to_no_device_ends_at_the_tc_hop_that_redirected(target, router, bpf_objects, direction, stage):
    """skb_do_redirect() frees what it cannot send anywhere, whichever direction's
    program redirected: the journey ends with that hop's REDIRECT and the drop at
    its stage (the lab's hop from the counters and the drop, its stage from
    skb->tc_at_ingress)."""
    h0, h1 = router[0], router[1]
    attach(target, (h0 if direction == "ingress" else h1).port.name, direction, bpf_objects["tc_redirect"])
    target.send(h0.port, redirected(target, h0, 59, h1.ip, out_of=None))
    target.expect_nothing()
    journey = journey_of(target, 59)
    assert tc_hops(journey) == [(stage, "p0" if direction == "ingress" else "p1", "REDIRECT")]
    assert (journey.drop.reason, journey.drop.stage, journey.drop.location) == \
        ("NOT_SPECIFIED", stage, "skb_do_redirect")


@pytest.mark.requires("drop_reasons")
def test_an_ingress_redirect_into_a_looping_egress_is_dropped_at_tc_egress(target, hosts, bpf_objects):
    """p0's ingress program redirects out of p1, whose egress program redirects to
    p1 again: the recursion limit stops p1's redirect, so the drop is TC egress's
    (dev_queue_xmit() cleared skb->tc_at_ingress), not the ingress program's."""
    journey = redirected_at_ingress_into(target, hosts, bpf_objects, "tc_redirect", 60)
    assert tc_hops(journey)[-1] == ("TC_EGRESS", "p1", "REDIRECT")
    assert (journey.drop.reason, journey.drop.stage, journey.drop.location) == \
        ("NOT_SPECIFIED", "TC_EGRESS", "__bpf_redirect")
