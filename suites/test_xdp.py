"""XDP: the same clang-built objects attached with `ip link set dev X xdp obj F sec S`
on both targets; what each verdict does to the packet."""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP

from harness.target import CommandError
from harness.testing import icmp_socket_mask

pytestmark = pytest.mark.requires("xdp")


def test_xdp_drop_udp_drops_udp_before_the_stack_and_passes_the_rest(target, hosts, bpf_objects):
    h0 = hosts[0]
    target.sh(f"ip link set dev {h0.port.name} xdp obj {bpf_objects['xdp_drop_udp']} sec xdp")
    sock = target.socket("udp", (h0.dut_ip, 5353))
    target.send(h0.port, h0.to_dut(id=1) / UDP(sport=1, dport=5353) / b"never")
    target.expect_nothing()
    assert sock.recv_all() == []
    # veth frees the skb it already had, without a specific reason, in its XDP path
    assert [(d.reason, d.stage, d.location) for d in target.drops()] == \
        [("NOT_SPECIFIED", "XDP", "veth_xdp_rcv_skb")]
    request = h0.to_dut(id=2) / ICMP(type=8, id=7, seq=1) / b"ping"
    target.send(h0.port, request)
    reply = h0.from_dut(src=h0.dut_ip, dst=h0.ip, ttl=64, flags=0) / ICMP(type=0, id=7, seq=1) / b"ping"
    target.expect(h0.port, icmp_socket_mask(reply))


def test_xdp_tx_reflects_the_rewritten_frame_out_of_the_same_port(target, hosts, bpf_objects):
    h1 = hosts[1]
    target.sh(f"ip link set dev {h1.port.name} xdp obj {bpf_objects['xdp_tx_reflector']} sec xdp")
    target.send(h1.port, h1.to_dut(id=3, ttl=9) / UDP(sport=1111, dport=2222) / b"mirror")
    got = IP(target.frame_left(h1.port, "the frame, reflected by XDP_TX")[14:])
    assert (got.src, got.dst, got.ttl, got[UDP].sport, got[UDP].dport, bytes(got[UDP].payload)) == \
        (h1.dut_ip, h1.ip, 64, 2222, 1111, b"mirror")


def test_xdp_off_detaches_the_program(target, hosts, bpf_objects):
    h0 = hosts[0]
    target.sh(f"ip link set dev {h0.port.name} xdp obj {bpf_objects['xdp_drop_udp']} sec xdp")
    target.sh(f"ip link set dev {h0.port.name} xdp off")
    sock = target.socket("udp", (h0.dut_ip, 5354))
    target.send(h0.port, h0.to_dut(id=4) / UDP(sport=1, dport=5354) / b"again")
    assert sock.recv() == (b"again", (h0.ip, 1))


def test_xdp_obj_without_sec_loads_section_prog_and_refuses_an_object_without_it(target, hosts, bpf_objects):
    """iproute2's XDP section defaults to "prog" (bpf_prog_to_default_section(),
    lib/bpf_legacy.c), not the object's first program: xdp_pass.o has only
    SEC("xdp"), so libbpf's loader refuses it (load_bpf_object(), lib/bpf_libbpf.c),
    status 255, and the port keeps no program."""
    h0 = hosts[0]
    with pytest.raises(CommandError, match="object file doesn't contain sec prog") as refused:
        target.sh(f"ip link set dev {h0.port.name} xdp obj {bpf_objects['xdp_pass']}")
    assert refused.value.returncode == 255
    assert " xdp" not in target.sh(f"ip link show dev {h0.port.name}")
