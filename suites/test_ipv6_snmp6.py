"""/proc/net/snmp6 and nstat's Ip6/Icmp6/Udp6 counters (net/ipv6/proc.c) as
the kernel counts them where ip6_input.c, ip6_output.c, icmp.c and udp.c do,
after single packets on a router DUT. The expected deltas were read on the
real kernel (6.18, netns lab).

A DUT with IPv6 on sends MLD reports of its own (the mock models no MLD), so
the counters an MLD report moves (Ip6OutRequests, OutTransmits, OutOctets,
the OutMcast pair, Icmp6OutMsgs, Icmp6OutMLDv2Reports, Icmp6OutType143) are
left out here; tests/test_mock_snmp6.py pins them on the mock."""
from __future__ import annotations

from socket import AF_INET6

from scapy.layers.inet import UDP
from scapy.layers.inet6 import ICMPv6EchoRequest

PAYLOAD = b"packet-journey"  # 40 + 8 + 14 = 62 bytes of IPv6
MLD_MOVES = ("Ip6OutRequests", "Ip6OutTransmits", "Ip6OutOctets", "Ip6OutMcastPkts", "Ip6OutMcastOctets",
             "Icmp6OutMsgs", "Icmp6OutMLDv2Reports", "Icmp6OutType143")


def snmp6(target) -> dict[str, int]:
    lines = target.sh("cat /proc/net/snmp6").splitlines()
    return {name: int(value) for name, value in (line.split() for line in lines)}


def moved(target, before: dict[str, int]) -> dict[str, int]:
    """The counters that moved since `before`, but those MLD moves too."""
    after = snmp6(target)
    return {name: value - before.get(name, 0) for name, value in after.items()
            if value != before.get(name, 0) and name not in MLD_MOVES}


def test_a_forwarded_packet_counts_in_and_forwarded_with_its_ecn_class(target, router6):
    h0, h1 = router6[0], router6[1]
    before = snmp6(target)
    target.send(h0.port, h0.to_dut6(dst=h1.ip6) / UDP(sport=1, dport=2) / PAYLOAD)
    target.send(h0.port, h0.to_dut6(dst=h1.ip6, tc=3) / UDP(sport=1, dport=2) / PAYLOAD)
    target.collect(h1.port)
    assert moved(target, before) == {"Ip6InReceives": 2, "Ip6InOctets": 124, "Ip6InNoECTPkts": 1, "Ip6InCEPkts": 1,
                                     "Ip6OutForwDatagrams": 2}


def test_forwarding_errors_count_where_ip6_forward_drops(target, router6):
    """Hop limit: InHdrErrors; too big: OutForwDatagrams (counted before the
    MTU check), InTooBigErrors and FragFails; each answered with its ICMPv6 error."""
    h0, h1 = router6[0], router6[1]
    target.sh(f"ip link set {h1.port.name} mtu 1280")
    before = snmp6(target)
    target.send(h0.port, h0.to_dut6(dst=h1.ip6, hlim=1) / UDP(sport=1, dport=2) / PAYLOAD)
    target.send(h0.port, h0.to_dut6(dst=h1.ip6) / UDP(sport=1, dport=2) / (b"x" * 1300))
    target.collect(h0.port)
    assert moved(target, before) == {
        "Ip6InReceives": 2, "Ip6InOctets": 62 + 1348, "Ip6InNoECTPkts": 2, "Ip6InHdrErrors": 1,
        "Ip6OutForwDatagrams": 1, "Ip6InTooBigErrors": 1, "Ip6FragFails": 1,
        "Icmp6OutTimeExcds": 1, "Icmp6OutType3": 1, "Icmp6OutPktTooBigs": 1, "Icmp6OutType2": 1}


def test_no_route_and_an_unknown_next_header_count_their_errors(target, router6):
    h0 = router6[0]
    before = snmp6(target)
    target.send(h0.port, h0.to_dut6(dst="2001:db8:99::7") / UDP(sport=1, dport=2) / PAYLOAD)
    target.send(h0.port, h0.to_dut6(nh=200) / PAYLOAD)
    target.collect(h0.port)
    assert moved(target, before) == {
        "Ip6InReceives": 2, "Ip6InOctets": 62 + 54, "Ip6InNoECTPkts": 2, "Ip6InNoRoutes": 1,
        "Ip6InUnknownProtos": 1, "Icmp6OutDestUnreachs": 1, "Icmp6OutType1": 1, "Icmp6OutParmProblems": 1,
        "Icmp6OutType4": 1}


def test_local_delivery_counts_in_delivers_and_the_udp6_and_icmp6_mibs(target, router6):
    """InDelivers after the protocol's handler, whatever it did; a datagram
    counts Udp6InDatagrams only once the application reads it; a multicast
    datagram nobody listens to is IgnoredMulti."""
    h0 = router6[0]
    sock = target.socket("udp", ("::", 5000), family=AF_INET6)
    before = snmp6(target)
    target.send(h0.port, h0.to_dut6() / UDP(sport=1, dport=9) / PAYLOAD)
    target.send(h0.port, h0.to_dut6() / UDP(sport=1, dport=9, chksum=0x1234) / PAYLOAD)
    target.send(h0.port, h0.to_dut6(dst="ff02::1") / UDP(sport=1, dport=9) / PAYLOAD)
    target.send(h0.port, h0.to_dut6() / ICMPv6EchoRequest(id=1, seq=1, data=PAYLOAD))
    target.send(h0.port, h0.to_dut6() / UDP(sport=1, dport=5000) / PAYLOAD)
    assert sock.recv() == (PAYLOAD, (h0.ip6, 1))
    target.collect(h0.port)
    assert moved(target, before) == {
        "Ip6InReceives": 5, "Ip6InOctets": 5 * 62, "Ip6InNoECTPkts": 5, "Ip6InDelivers": 5,
        "Ip6InMcastPkts": 1, "Ip6InMcastOctets": 62,
        "Udp6NoPorts": 1, "Udp6InErrors": 1, "Udp6InCsumErrors": 1, "Udp6IgnoredMulti": 1, "Udp6InDatagrams": 1,
        "Icmp6InMsgs": 1, "Icmp6InEchos": 1, "Icmp6InType128": 1, "Icmp6OutEchoReplies": 1, "Icmp6OutType129": 1,
        "Icmp6OutDestUnreachs": 1, "Icmp6OutType1": 1}


def test_nstat_shows_the_ipv6_counters_by_their_snmp6_names(target, router6):
    """nstat reads /proc/net/snmp6 as name/value lines (load_snmp6()), the per-type ones too."""
    h0 = router6[0]
    target.send(h0.port, h0.to_dut6() / ICMPv6EchoRequest(id=1, seq=1, data=PAYLOAD))
    target.collect(h0.port)
    lines = target.sh("nstat -a Ip6In* Icmp6In*").splitlines()
    assert lines[0] == "#kernel"
    assert {name: int(value) for name, value, _ in (line.split() for line in lines[1:])} == {
        "Ip6InReceives": 1, "Ip6InDelivers": 1, "Ip6InOctets": 62, "Ip6InNoECTPkts": 1, "Icmp6InMsgs": 1,
        "Icmp6InEchos": 1, "Icmp6InType128": 1}
