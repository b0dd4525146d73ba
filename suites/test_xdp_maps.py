"""XDP programs driven and read through their maps with bpftool, as operators do,
on both targets: an LPM blocklist filled from user space, per-protocol counters
read back, a devmap redirect, IPIP encapsulation with bpf_xdp_adjust_head, and
the XDP hop in the packet's journey."""
from __future__ import annotations

import json
import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from harness import bpfmaps
from harness.bpfmaps import lpm_key, u32, u64
from harness.target import CommandError

pytestmark = [pytest.mark.requires("xdp"), pytest.mark.requires("bpftool")]

IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP = 1, 6, 17


def attach(target, port, obj, section="xdp"):
    target.sh(f"ip link set dev {port} xdp obj {obj} sec {section}")


def ifindex(target, port) -> int:
    return json.loads(target.sh(f"ip -j link show dev {port}"))[0]["ifindex"]


def test_blocklist_filled_with_bpftool_drops_listed_sources_and_counts_per_prefix(target, hosts, bpf_objects):
    h0 = hosts[0]
    attach(target, "p0", bpf_objects["xdp_blocklist"])
    blocklist = bpfmaps.map_of(target, "p0", "blocklist")
    blocklist.update(lpm_key("10.0.0.2", 32), u64(0), "noexist")
    blocklist.update(lpm_key("10.0.0.16", 28), u64(0), "noexist")
    with pytest.raises(CommandError, match="update failed: File exists"):
        blocklist.update(lpm_key("10.0.0.2", 32), u64(0), "noexist")
    sock = target.socket("udp", (h0.dut_ip, 7000))
    for ident, source in enumerate(("10.0.0.2", "10.0.0.20", "10.0.0.3", "10.0.0.31")):
        target.send(h0.port, h0.to_dut(src=source, id=ident + 1) / UDP(sport=1000 + ident, dport=7000) / (b"x" * 18))
    assert [addr for _, (addr, _) in sock.recv_all()] == ["10.0.0.3"]
    assert blocklist.values() == {lpm_key("10.0.0.2", 32): u64(1), lpm_key("10.0.0.16", 28): u64(2)}
    # BTF describes the key: bpftool prints the struct's fields (addr as the u32 in memory)
    formatted = [entry.formatted for entry in blocklist.dump()]
    assert sorted((f["key"]["prefixlen"], f["key"]["addr"], f["value"]) for f in formatted) == \
        [(28, struct.unpack("<I", bytes([10, 0, 0, 16]))[0], 2), (32, struct.unpack("<I", bytes([10, 0, 0, 2]))[0], 1)]
    assert blocklist.lookup(lpm_key("10.0.0.17", 32)) == u64(2)  # the longest matching prefix
    blocklist.delete(lpm_key("10.0.0.2", 32))
    target.send(h0.port, h0.to_dut(id=9) / UDP(sport=1009, dport=7000) / (b"x" * 18))
    assert sock.recv() == (b"x" * 18, (h0.ip, 1009))


def test_counters_read_through_bpftool_equal_the_frames_sent(target, hosts, bpf_objects):
    h1 = hosts[1]
    attach(target, "p1", bpf_objects["xdp_counters"])
    frames = [h1.to_dut(id=i) / UDP(sport=5000 + i, dport=9) / (b"u" * (20 + i)) for i in range(3)]
    frames += [h1.to_dut(id=10 + i) / ICMP(type=8, id=3, seq=i) / (b"p" * 30) for i in range(2)]
    frames += [h1.to_dut(id=20) / TCP(sport=4000, dport=9, flags="S") / (b"t" * 10)]
    target.send(h1.port, frames)
    target.collect(h1.port)  # the DUT's answers (echo replies, RST, port unreachable)
    sent = {proto: [len(f) for f in frames if f[IP].proto == proto] for proto in (IPPROTO_UDP, IPPROTO_ICMP,
                                                                                 IPPROTO_TCP)}
    per_cpu = bpfmaps.map_of(target, "p1", "proto_stats")
    shared = bpfmaps.map_of(target, "p1", "proto_packets")
    for proto, lengths in sent.items():
        packets, nbytes = struct.unpack("<QQ", bpfmaps.sum_percpu(per_cpu.lookup(u32(proto))))
        assert (proto, packets, nbytes) == (proto, len(lengths), sum(lengths))
        assert shared.lookup(u32(proto)) == u64(len(lengths))
    # every other protocol's counters are zero, on every CPU
    others = {key for key, value in per_cpu.values().items() if value != bytes(16)}
    assert others == {u32(p) for p in sent}
    assert bpfmaps.run_count(target, "p1") == len(frames)


@pytest.mark.requires("journey.xdp")
def test_journey_of_a_frame_xdp_drops_ends_at_its_xdp_hop(target, hosts, bpf_objects):
    h0 = hosts[0]
    target.sh("nft add table ip t")
    target.sh("nft add chain ip t pre { type filter hook prerouting priority 0 ; }")
    attach(target, "p0", bpf_objects["xdp_drop_udp"])
    target.send(h0.port, h0.to_dut(id=31) / UDP(sport=1, dport=5) / b"dropped")
    [dropped] = [j for j in target.journeys() if journey_id(j) == 31]
    assert ("XDP", "p0", "DROP") in [(h.stage, h.where, h.verdict) for h in dropped.hops]
    assert not [h for h in dropped.hops if h.stage.startswith("NF_")]
    assert (dropped.drop.reason, dropped.drop.stage) == ("NOT_SPECIFIED", "XDP")


@pytest.mark.requires("journey.xdp", "nftrace")
def test_xdp_pass_hop_comes_before_the_netfilter_hops(target, hosts, bpf_objects):
    h0 = hosts[0]
    target.sh("nft add table ip t")
    target.sh("nft add chain ip t pre { type filter hook prerouting priority 0 ; }")
    attach(target, "p0", bpf_objects["xdp_drop_udp"])
    target.send(h0.port, h0.to_dut(id=32) / ICMP(type=8, id=4, seq=1) / b"passes")
    target.collect(h0.port)
    [passed] = [j for j in target.journeys() if journey_id(j) == 32]
    stages = [(h.stage, h.where, h.verdict) for h in passed.hops]
    assert ("XDP", "p0", "PASS") in stages
    assert stages.index(("XDP", "p0", "PASS")) < [s for s, _, _ in stages].index("NF_PREROUTING")


def journey_id(journey) -> int:
    """The IP ID in a journey's packet line (both targets print `id=N`)."""
    text = str(journey.packet)
    return int(text.split(" id=")[1].split()[0]) if " id=" in text else -1


def redirect_through_a_devmap(target, hosts, bpf_objects):
    """xdp_redirect_devmap on p0 with its tx_port map sending p0's frames to p1, and
    a frame sent on p0: the map and the frame."""
    h0 = hosts[0]
    attach(target, "p0", bpf_objects["xdp_redirect_devmap"])
    tx_port = bpfmaps.map_of(target, "p0", "tx_port")
    tx_port.update(u32(ifindex(target, "p0")), u32(ifindex(target, "p1")))
    frame = Ether(src=h0.mac, dst="02:00:00:00:09:09") / IP(src=h0.ip, dst="10.0.9.9", id=41) / \
        UDP(sport=41, dport=42) / b"redirected"
    target.send(h0.port, frame)
    return tx_port, frame


def test_redirect_through_a_devmap_filled_with_bpftool_sends_the_frame_out_of_the_other_port(target, hosts,
                                                                                             bpf_objects):
    h0, h1 = hosts[0], hosts[1]
    tx_port, frame = redirect_through_a_devmap(target, hosts, bpf_objects)
    assert target.frame_left(h1.port, "the frame, redirected through the devmap") == bytes(frame)
    target.expect_nothing([h0.port])
    # the map as bpftool dumps it: one entry, devmaps have no BTF-formatted values
    assert [(e.key, e.value, e.formatted) for e in tx_port.dump()] == \
        [(u32(ifindex(target, "p0")), u32(ifindex(target, "p1")), None)]


@pytest.mark.requires("journey.xdp")
def test_a_devmap_redirect_s_journey_is_the_xdp_redirect_then_the_transmit_on_the_other_port(target, hosts,
                                                                                            bpf_objects):
    redirect_through_a_devmap(target, hosts, bpf_objects)
    target.collect(hosts[1].port)
    hops = [(h.stage, h.where, h.verdict) for j in target.journeys() for h in j.hops]
    assert ("XDP", "p0", "REDIRECT") in hops and ("NIC_TX", "p1", "XMIT") in hops


def test_adjust_head_encapsulates_in_ipip_and_the_stack_forwards_the_outer_packet(target, router, bpf_objects):
    h0, h1 = router[0], router[1]
    target.sh(f"ip route add 10.99.0.0/24 via {h1.ip} dev p1")
    attach(target, "p0", bpf_objects["xdp_adjust"], "xdp")
    inner = IP(src=h0.ip, dst="10.0.2.2", id=51, ttl=17) / UDP(sport=51, dport=52) / b"tunnelled"
    target.send(h0.port, Ether(src=h0.mac, dst=h0.port.mac) / inner)
    # the outer header as xdp_ipip_encap writes it (tos 0, id 0, DF, ttl 64, IPIP,
    # 10.99.0.1 > 10.99.0.2), then forwarded: ttl 63, new MACs; the inner packet untouched
    outer = Ether(src=h1.port.mac, dst=h1.mac) / IP(src="10.99.0.1", dst="10.99.0.2", proto=4, id=0,
                                                     flags="DF", tos=0, ttl=63) / bytes(inner)
    assert target.frame_left(h1.port, "the encapsulated packet, forwarded") == bytes(outer)
