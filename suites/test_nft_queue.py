"""Queueing to userspace (NF_QUEUE: nft's `queue`, nft_queue.c; iptables' `-j NFQUEUE`,
xt_NFQUEUE.c) with no program on the queue: nf_queue() frees the packet
(NOT_SPECIFIED, at nf_queue), or with bypass the hook goes on with its next entry
(another chain at a higher priority runs, the rest of the queueing chain does not).
The netns lab's 6.18 has no nft_queue (CONFIG_NFT_QUEUE unset: the rule is refused
with ENOENT), so its nft cases run on the mock only and skip on the lab naming the
module; xt_NFQUEUE is built in there, and its cases run on both targets."""
from __future__ import annotations

import pytest
from scapy.layers.inet import UDP

from harness.testing import counted_in_chain

pytestmark = pytest.mark.requires("nftables")


def queue_drops(target) -> list[tuple[str, str]]:
    """(reason, location) of each drop: the lab's tracer places a netfilter drop at its hook
    by the call chain it prints for NETFILTER_DROP only, so nf_queue's stage is the mock's alone."""
    return [(d.reason, d.location) for d in target.drops()]

def two_input_chains(target, queueing: str) -> None:
    """Chain `q` (priority 0) queues UDP port 7 then counts; chain `later` (priority 10) counts."""
    target.sh("nft -f -", stdin="table ip t {\n chain q {\n type filter hook input priority 0;\n"
                                f"  udp dport 7 {queueing}\n  udp dport 7 counter\n }}\n"
                                " chain later {\n type filter hook input priority 10;\n  udp dport 7 counter\n }\n}\n")


@pytest.mark.requires("nft_queue")
def test_queue_with_no_program_on_it_frees_the_packet_in_nf_queue(target, hosts):
    h0 = hosts[0]
    two_input_chains(target, "queue num 3")
    sock = target.socket("udp", (h0.dut_ip, 7))
    target.send(h0.port, h0.to_dut(id=1) / UDP(sport=1, dport=7) / b"queued")
    assert sock.recv_all() == []
    assert queue_drops(target) == [("NOT_SPECIFIED", "nf_queue")]
    assert (counted_in_chain(target, "q"), counted_in_chain(target, "later")) == (0, 0)


@pytest.mark.requires("nft_queue")
def test_queue_bypass_with_no_program_goes_on_to_the_hooks_next_chain(target, hosts):
    h0 = hosts[0]
    two_input_chains(target, "queue flags bypass,fanout to 3-4")
    sock = target.socket("udp", (h0.dut_ip, 7))
    target.send(h0.port, h0.to_dut(id=2) / UDP(sport=1, dport=7) / b"bypassed")
    assert sock.recv()[0] == b"bypassed"
    assert (counted_in_chain(target, "q"), counted_in_chain(target, "later")) == (0, 1)


@pytest.mark.requires("nft_queue")
def test_queue_to_a_map_queues_by_the_packets_key_and_a_missing_key_breaks_the_rule(target, hosts):
    h0 = hosts[0]
    two_input_chains(target, "queue to udp sport map { 1 : 5, 2 : 6 }")
    sock = target.socket("udp", (h0.dut_ip, 7))
    target.send(h0.port, h0.to_dut(id=3) / UDP(sport=1, dport=7) / b"one")
    target.send(h0.port, h0.to_dut(id=4) / UDP(sport=3, dport=7) / b"three")
    assert [data for data, _ in sock.recv_all()] == [b"three"]
    assert queue_drops(target) == [("NOT_SPECIFIED", "nf_queue")]
    assert (counted_in_chain(target, "q"), counted_in_chain(target, "later")) == (1, 1)


def test_iptables_nfqueue_with_no_program_frees_the_packet_and_bypass_goes_on(target, hosts):
    h0 = hosts[0]
    target.sh("iptables -A INPUT -p udp --dport 7 -j NFQUEUE --queue-num 3")
    target.sh("iptables -A INPUT -p udp --dport 8 -j NFQUEUE --queue-num 3 --queue-bypass")
    target.sh("iptables -A INPUT -p udp -j DROP")  # the rest of INPUT never sees a bypassed packet
    sock7, sock8 = target.socket("udp", (h0.dut_ip, 7)), target.socket("udp", (h0.dut_ip, 8))
    target.send(h0.port, h0.to_dut(id=5) / UDP(sport=1, dport=7) / b"seven")
    target.send(h0.port, h0.to_dut(id=6) / UDP(sport=1, dport=8) / b"eight")
    assert sock7.recv_all() == []
    assert sock8.recv()[0] == b"eight"
    assert queue_drops(target) == [("NOT_SPECIFIED", "nf_queue")]
