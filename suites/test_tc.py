"""TC: clsact + cls_bpf attached with `tc filter add dev X ingress|egress bpf da obj F sec S`
on both targets; where TC runs against XDP, the netdev ingress hook and netfilter, and
what its verdicts and marks do to the packet. Drop reasons and locations are the ones
the real kernel (6.18) reports."""
from __future__ import annotations

import json

import pytest
from scapy.layers.inet import ICMP, IP, UDP

from harness.testing import counted_in_chain, drops, icmp_socket_mask

pytestmark = pytest.mark.requires("tc")


def attach(target, port, direction: str, obj) -> None:
    target.sh(f"tc qdisc add dev {port.name} clsact")
    target.sh(f"tc filter add dev {port.name} {direction} bpf da obj {obj} sec tc")


@pytest.mark.requires("nftables")
def test_tc_ingress_shot_drops_before_prerouting_and_ok_passes(target, hosts, bpf_objects):
    h0 = hosts[0]
    target.sh("nft -f -", stdin="table ip t {\n chain pre {\n type filter hook prerouting priority -300;\n"
                                "  udp dport 5353 counter\n }\n}\n")
    attach(target, h0.port, "ingress", bpf_objects["tc_drop_udp"])
    sock = target.socket("udp", (h0.dut_ip, 5353))
    target.send(h0.port, h0.to_dut(id=1) / UDP(sport=1, dport=5353) / b"never")
    target.expect_nothing()
    assert sock.recv_all() == []
    assert drops(target) == [("TC_INGRESS", "TC_INGRESS", "__netif_receive_skb_core")]
    assert counted_in_chain(target, "pre") == 0
    request = h0.to_dut(id=2) / ICMP(type=8, id=7, seq=1) / b"ping"
    target.send(h0.port, request)
    reply = h0.from_dut(src=h0.dut_ip, dst=h0.ip, ttl=64, flags=0) / ICMP(type=0, id=7, seq=1) / b"ping"
    target.expect(h0.port, icmp_socket_mask(reply))


@pytest.mark.requires("nftables")
def test_tc_egress_shot_drops_a_forwarded_packet_after_postrouting(target, router, bpf_objects):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin="table ip t {\n chain post {\n type filter hook postrouting priority 0;\n"
                                "  udp dport 7 counter\n }\n}\n")
    attach(target, h1.port, "egress", bpf_objects["tc_drop_udp"])
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=3) / UDP(sport=1, dport=7) / b"x")
    target.expect_nothing()
    assert drops(target) == [("TC_EGRESS", "TC_EGRESS", "__dev_queue_xmit")]
    assert counted_in_chain(target, "post") == 1


@pytest.mark.requires("xdp")
def test_native_xdp_runs_before_tc_ingress(target, hosts, bpf_objects):
    h0 = hosts[0]
    target.sh(f"ip link set dev {h0.port.name} xdp obj {bpf_objects['xdp_drop_udp']} sec xdp")
    attach(target, h0.port, "ingress", bpf_objects["tc_drop_udp"])
    target.send(h0.port, h0.to_dut(id=4) / UDP(sport=1, dport=5353) / b"x")
    target.expect_nothing()
    assert drops(target) == [("NOT_SPECIFIED", "XDP", "veth_xdp_rcv_skb")]


@pytest.mark.requires("journey.xdp", "journey.tc", "nftrace")
def test_the_journey_crosses_xdp_then_tc_then_netdev_ingress_then_prerouting(target, hosts, bpf_objects):
    h0 = hosts[0]
    target.sh(f"ip link set dev {h0.port.name} xdpgeneric obj {bpf_objects['xdp_pass']} sec xdp")
    attach(target, h0.port, "ingress", bpf_objects["tc_set_mark"])
    target.sh("nft -f -", stdin=f'table netdev nd {{\n chain in {{\n type filter hook ingress device "{h0.port.name}" '
                                'priority 0;\n  counter\n }\n}\n'
                                "table ip t {\n chain pre {\n type filter hook prerouting priority 0;\n"
                                "  meta mark 0x2a counter\n }\n}\n")
    target.send(h0.port, h0.to_dut(id=5) / ICMP(type=8, id=7, seq=1) / b"ping")
    stages = [s for s in target.journeys()[0].stages if s in ("XDP", "TC_INGRESS", "NF_INGRESS", "NF_PREROUTING")]
    assert stages == ["XDP", "TC_INGRESS", "NF_INGRESS", "NF_PREROUTING"]
    assert counted_in_chain(target, "pre") == 1


@pytest.mark.requires("xdp")
def test_generic_xdp_drop_frees_the_skb_in_do_xdp_generic(target, hosts, bpf_objects):
    h0 = hosts[0]
    target.sh(f"ip link set dev {h0.port.name} xdpgeneric obj {bpf_objects['xdp_drop_udp']} sec xdp")
    assert " xdpgeneric qdisc " in target.sh(f"ip link show dev {h0.port.name}")
    target.send(h0.port, h0.to_dut(id=6) / UDP(sport=1, dport=5353) / b"x")
    target.expect_nothing()
    assert drops(target) == [("NOT_SPECIFIED", "XDP", "do_xdp_generic")]


@pytest.mark.requires("nftables")
def test_netdev_ingress_chain_drops_on_its_device_only_and_after_tc(target, hosts, bpf_objects):
    h0, h2 = hosts[0], hosts[2]
    target.sh("nft -f -", stdin=f'table netdev nd {{\n chain in {{\n type filter hook ingress device "{h2.port.name}" '
                                'priority 0;\n  udp dport 7 counter drop\n }\n}\n')
    target.send(h2.port, h2.to_dut(id=7) / UDP(sport=1, dport=7) / b"x")
    target.send(h0.port, h0.to_dut(id=8) / UDP(sport=1, dport=7) / b"x")
    assert drops(target) == [("NETFILTER_DROP", "NF_INGRESS", "nft_do_chain"), ("NO_SOCKET", "L4", "__udp4_lib_rcv")]
    assert counted_in_chain(target, "in") == 1
    attach(target, h2.port, "ingress", bpf_objects["tc_drop_udp"])
    target.send(h2.port, h2.to_dut(id=9) / UDP(sport=1, dport=7) / b"x")
    assert drops(target)[2:] == [("TC_INGRESS", "TC_INGRESS", "__netif_receive_skb_core")]
    assert counted_in_chain(target, "in") == 1


def test_a_mark_set_at_tc_ingress_selects_the_fwmark_routing_table(target, router, bpf_objects):
    h0, h2 = router[0], router[2]
    target.sh("ip rule add fwmark 0x2a lookup 100")
    target.sh(f"ip route add 10.9.9.0/24 via {h2.ip} dev {h2.port.name} table 100")
    attach(target, h0.port, "ingress", bpf_objects["tc_set_mark"])
    target.send(h0.port, h0.to_dut(dst="10.9.9.9", id=10, ttl=9) / UDP(sport=1, dport=9) / b"marked")
    got = IP(target.frame_left(h2.port, "the marked datagram, routed by the fwmark table")[14:])
    assert (got.dst, got.ttl, bytes(got[UDP].payload)) == ("10.9.9.9", 8, b"marked")


def _verdict_packet(h, action: int, id: int):
    return h.to_dut(id=id) / UDP(sport=1, dport=5355) / bytes([action & 0xFF, 0])


@pytest.mark.parametrize("action", [0, -1, 3], ids=["OK", "UNSPEC", "PIPE"])
def test_tc_verdicts_that_let_the_packet_continue(target, hosts, bpf_objects, action):
    h0 = hosts[0]
    attach(target, h0.port, "ingress", bpf_objects["tc_verdict"])
    sock = target.socket("udp", (h0.dut_ip, 5355))
    target.send(h0.port, _verdict_packet(h0, action, 11))
    assert sock.recv()[1] == (h0.ip, 1)


@pytest.mark.parametrize("action", [4, 8], ids=["STOLEN", "TRAP"])
def test_tc_stolen_and_trap_consume_the_packet_without_a_drop(target, hosts, bpf_objects, action):
    h0 = hosts[0]
    attach(target, h0.port, "ingress", bpf_objects["tc_verdict"])
    sock = target.socket("udp", (h0.dut_ip, 5355))
    target.send(h0.port, _verdict_packet(h0, action, 12))
    target.expect_nothing()
    assert sock.recv_all() == []
    assert drops(target) == []


def test_bpf_redirect_sends_the_frame_out_of_another_port_unchanged(target, hosts, bpf_objects):
    h0, h1 = hosts[0], hosts[1]
    ifindex = json.loads(target.sh(f"ip -j link show dev {h1.port.name}"))[0]["ifindex"]
    attach(target, h0.port, "ingress", bpf_objects["tc_redirect"])
    frame = h0.to_dut(id=13) / UDP(sport=1, dport=9) / bytes([ifindex, 0])
    target.send(h0.port, frame)
    assert target.frame_left(h1.port, "the frame, redirected unchanged") == bytes(frame)
    assert drops(target) == []


def unused_ifindex(target) -> int:
    """An ifindex no device of the DUT has."""
    return max(link["ifindex"] for link in json.loads(target.sh("ip -j link show"))) + 1


@pytest.mark.requires("drop_reasons")
@pytest.mark.parametrize(("direction", "stage"), [("ingress", "TC_INGRESS"), ("egress", "TC_EGRESS")])
def test_a_redirect_to_no_device_is_freed_in_skb_do_redirect_at_the_direction_that_redirected(
        target, router, bpf_objects, direction, stage):
    """skb_do_redirect() (net/core/filter.c) finds no device with the ifindex and
    frees the skb, called from sch_handle_ingress() or sch_handle_egress() alike:
    the lab tells the direction by skb->tc_at_ingress."""
    h0, h1 = router[0], router[1]
    attach(target, h0.port if direction == "ingress" else h1.port, direction, bpf_objects["tc_redirect"])
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=14) / UDP(sport=1, dport=9) / bytes([unused_ifindex(target), 0]))
    target.expect_nothing()
    assert drops(target) == [("NOT_SPECIFIED", stage, "skb_do_redirect")]


@pytest.mark.requires("drop_reasons")
@pytest.mark.parametrize(("flags", "drop", "counter"), [
    (0, ("QDISC_DROP", "QDISC", "__dev_queue_xmit"), "tx_dropped"),
    (1, ("NOT_SPECIFIED", "NIC_RX", "__dev_forward_skb2"), "rx_dropped"),
], ids=["out-of", "into"])
def test_a_redirect_to_a_down_port_is_dropped_by_the_path_it_enters(target, hosts, bpf_objects, flags, drop, counter):
    """A down device keeps its ifindex, so skb_do_redirect() hands the skb on:
    out of it, __dev_queue_xmit() finds the noop qdisc (noop_enqueue() counts
    tx_dropped); into it, __dev_forward_skb2() refuses a device not IFF_UP."""
    h0, h2 = hosts[0], hosts[2]
    link = json.loads(target.sh(f"ip -s -j link show dev {h2.port.name}"))[0]
    direction = "tx" if counter == "tx_dropped" else "rx"
    target.sh(f"ip link set dev {h2.port.name} down")
    attach(target, h0.port, "ingress", bpf_objects["tc_redirect"])
    target.send(h0.port, h0.to_dut(id=15) / UDP(sport=1, dport=9) / bytes([link["ifindex"], flags]))
    target.expect_nothing()
    assert drops(target) == [drop]
    stats = json.loads(target.sh(f"ip -s -j link show dev {h2.port.name}"))[0]["stats64"]
    # a lab DUT's NIC has counted since it came up: the one drop is what this adds
    assert stats[direction]["dropped"] - link["stats64"][direction]["dropped"] == 1


@pytest.mark.requires("journey.xdp", "journey.tc", "nftrace")
def test_journeys_show_xdp_then_tc_ingress_before_netfilter_or_the_tc_drop(target, hosts, bpf_objects):
    """What both targets observe: the lab from program run counts and the
    clsact drop counter, the mock hop by hop."""
    h0 = hosts[0]
    target.sh("nft add table ip t")
    target.sh("nft add chain ip t pre { type filter hook prerouting priority 0 ; }")
    target.sh(f"ip link set dev {h0.port.name} xdp obj {bpf_objects['xdp_pass']} sec xdp")
    attach(target, h0.port, "ingress", bpf_objects["tc_drop_udp"])
    target.send(h0.port, h0.to_dut(id=41) / ICMP(type=8, id=7, seq=1) / b"passes")
    target.collect(h0.port)
    target.send(h0.port, h0.to_dut(id=42) / UDP(sport=1, dport=7) / b"shot")
    target.expect_nothing()
    passed, shot = (next(j for j in target.journeys() if f" id={ident} " in str(j.packet)) for ident in (41, 42))
    seen = [(h.stage, h.where) for h in passed.hops if h.stage in ("XDP", "TC_INGRESS", "NF_PREROUTING")]
    assert seen[:3] == [("XDP", h0.port.name), ("TC_INGRESS", h0.port.name), ("NF_PREROUTING", "ip t pre")]
    assert [(h.stage, h.verdict) for h in shot.hops if h.stage in ("XDP", "TC_INGRESS")] == \
        [("XDP", "PASS"), ("TC_INGRESS", "SHOT")]
    assert (shot.drop.reason, shot.drop.stage) == ("TC_INGRESS", "TC_INGRESS")
    assert not [h for h in shot.hops if h.stage.startswith("NF_")]
