"""Egress qdiscs on both targets: tbf holding packets over its burst and the watchdog
releasing them at the rate, a pfifo's limit dropping as tbf's inner qdisc, and the
counters `tc -s qdisc` prints, byte for byte as tc 6.1 prints them on the lab.

Kinds this kernel lacks (netem) skip on the lab with that reason.
Frames of 1000 bytes (qdisc_pkt_len() counts from the MAC header) are forwarded
from h0 to h1 and queue on p1. Rates are slow enough that the lab's real time
cannot blur which packets a moment holds: at 4kbit one frame takes 2 s of tokens.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import UDP

from harness.target import CommandError
from harness.testing import drops

pytestmark = pytest.mark.requires("tc")


def frames(h0, h1, count: int) -> list:
    return [h0.to_dut(dst=h1.ip, id=i) / UDP(sport=1, dport=7) / bytes(958) for i in range(count)]


def forwarded(h0, h1, i: int):
    return h1.from_dut(src=h0.ip, dst=h1.ip, id=i, ttl=63) / UDP(sport=1, dport=7) / bytes(958)


def test_tbf_sends_its_burst_at_once_and_the_rest_when_the_tokens_refill(target, router):
    h0, h1 = router[0], router[1]
    target.sh(f"tc qdisc add dev {h1.port.name} root handle 1: tbf rate 4kbit burst 2000 limit 3000")
    target.send(h0.port, frames(h0, h1, 3))
    target.expect(h1.port, forwarded(h0, h1, 0))
    target.expect(h1.port, forwarded(h0, h1, 1))
    target.expect_nothing([h1.port])
    assert target.sh(f"tc -s qdisc show dev {h1.port.name}") == (
        "qdisc tbf 1: root refcnt 3 rate 4Kbit burst 2000b lat 2s \n"
        " Sent 2000 bytes 2 pkt (dropped 0, overlimits 1 requeues 0) \n"
        " backlog 1000b 1p requeues 0\n")
    target.wait(3.0)  # 500 bytes/s: the third frame's 1000 bytes of tokens are there after 2 s
    target.expect(h1.port, forwarded(h0, h1, 2))
    assert target.sh(f"tc -s qdisc show dev {h1.port.name}") == (
        "qdisc tbf 1: root refcnt 3 rate 4Kbit burst 2000b lat 2s \n"
        " Sent 3000 bytes 3 pkt (dropped 0, overlimits 1 requeues 0) \n"
        " backlog 0b 0p requeues 0\n")
    assert drops(target) == []


def test_a_pfifo_under_tbf_drops_what_exceeds_its_limit(target, router):
    h0, h1 = router[0], router[1]
    target.sh(f"tc qdisc add dev {h1.port.name} root handle 1: tbf rate 4kbit burst 1000 limit 100000")
    target.sh(f"tc qdisc add dev {h1.port.name} parent 1:1 handle 10: pfifo limit 2")
    target.send(h0.port, frames(h0, h1, 5))
    target.expect(h1.port, forwarded(h0, h1, 0))
    target.expect_nothing([h1.port])
    assert drops(target) == [("QDISC_DROP", "QDISC", "__dev_queue_xmit")] * 2
    # every enqueue runs the qdisc: the four after the first find no tokens (overlimits)
    assert target.sh(f"tc -s qdisc show dev {h1.port.name}") == (
        "qdisc tbf 1: root refcnt 3 rate 4Kbit burst 1000b lat 198s \n"
        " Sent 1000 bytes 1 pkt (dropped 2, overlimits 4 requeues 0) \n"
        " backlog 2000b 2p requeues 0\n"
        "qdisc pfifo 10: parent 1:1 limit 2p\n"
        " Sent 1000 bytes 1 pkt (dropped 2, overlimits 0 requeues 0) \n"
        " backlog 2000b 2p requeues 0\n")


def test_a_pfifo_root_passes_everything_and_counts_it(target, router):
    h0, h1 = router[0], router[1]
    target.sh(f"tc qdisc add dev {h1.port.name} root handle 1: pfifo limit 1")
    target.send(h0.port, frames(h0, h1, 3))
    for i in range(3):
        target.expect(h1.port, forwarded(h0, h1, i))
    assert target.sh(f"tc -s qdisc show dev {h1.port.name}") == (
        "qdisc pfifo 1: root refcnt 3 limit 1p\n"
        " Sent 3000 bytes 3 pkt (dropped 0, overlimits 0 requeues 0) \n"
        " backlog 0b 0p requeues 0\n")


def class_counters(listing: str) -> dict[str, str]:
    """`tc -s class show`: each class id's first statistics line."""
    lines = listing.splitlines()
    return {line.split()[2]: lines[i + 1] for i, line in enumerate(lines) if line.startswith("class ")}


@pytest.mark.requires("nftables")
def test_htb_puts_a_packet_in_the_class_its_priority_names_else_the_default_or_the_direct_queue(target, router):
    h0, h1 = router[0], router[1]
    dev = h1.port.name
    target.sh(f"tc qdisc add dev {dev} root handle 1: htb default 20")
    target.sh(f"tc class add dev {dev} parent 1: classid 1:1 htb rate 100mbit burst 100k cburst 100k")
    for minor in (10, 20):
        target.sh(f"tc class add dev {dev} parent 1:1 classid 1:{minor} htb rate 50mbit ceil 100mbit "
                  "burst 100k cburst 100k")
    target.sh("nft -f -", stdin="table ip t {\n chain post {\n type filter hook postrouting priority 0;\n"
                                "  udp dport 10 meta priority set 1:10\n"
                                "  udp dport 11 meta priority set 1:0\n }\n}\n")
    ports = {0: 10, 1: 10, 2: 7, 3: 7, 4: 7, 5: 11}
    target.send(h0.port, [h0.to_dut(dst=h1.ip, id=i) / UDP(sport=1, dport=port) / bytes(958)
                          for i, port in ports.items()])
    target.wait(0.01)
    for i, port in ports.items():
        target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=i, ttl=63) / UDP(sport=1, dport=port) /
                      bytes(958))
    assert class_counters(target.sh(f"tc -s class show dev {dev}")) == {
        "1:1": " Sent 5000 bytes 5 pkt (dropped 0, overlimits 0 requeues 0) ",
        "1:10": " Sent 2000 bytes 2 pkt (dropped 0, overlimits 0 requeues 0) ",
        "1:20": " Sent 3000 bytes 3 pkt (dropped 0, overlimits 0 requeues 0) ",
    }
    assert target.sh(f"tc -s qdisc show dev {dev}") == (
        "qdisc htb 1: root refcnt 3 r2q 10 default 0x20 direct_packets_stat 1 direct_qlen 1000\n"
        " Sent 6000 bytes 6 pkt (dropped 0, overlimits 0 requeues 0) \n"
        " backlog 0b 0p requeues 0\n")


def add_root_qdisc(target, dev: str, spec: str) -> None:
    """`tc qdisc add dev DEV root SPEC`, or skip when the kernel lacks the kind (the lab's
    6.18 has no netem or fq_codel: CONFIG_NET_SCH_* unset)."""
    try:
        target.sh(f"tc qdisc add dev {dev} root {spec}")
    except CommandError as err:
        if "Specified qdisc kind is unknown" not in str(err):
            raise
        pytest.skip(f"{spec.split()[2]} is not built into this kernel")


def test_netem_holds_a_forwarded_packet_for_its_delay(target, router):
    h0, h1 = router[0], router[1]
    add_root_qdisc(target, h1.port.name, "handle 1: netem delay 500ms")
    target.send(h0.port, frames(h0, h1, 1))
    target.expect_nothing([h1.port])
    target.wait(0.6)
    target.expect(h1.port, forwarded(h0, h1, 0))
    assert target.sh(f"tc -s qdisc show dev {h1.port.name}") == (
        "qdisc netem 1: root refcnt 3 limit 1000 delay 500ms\n"
        " Sent 1000 bytes 1 pkt (dropped 0, overlimits 0 requeues 0) \n"
        " backlog 0b 0p requeues 0\n")
