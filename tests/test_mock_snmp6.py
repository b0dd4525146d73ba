"""The mock's /proc/net/snmp6 on what the cross-target suite leaves out (the
counters a lab DUT's own MLD reports move too): the kernel's values for the
same packets, read once on the netns lab (6.18) with no MLD in the window,
and where snmp6_seq_show() prints the per-type ICMPv6 lines."""
from __future__ import annotations

from scapy.layers.inet import UDP
from scapy.layers.inet6 import ICMPv6EchoRequest

from harness.mockkernel.target import MockTarget
from harness.testing.plan import IPV6_FORWARD_ON, ipv6_on, plan_hosts6

PAYLOAD = b"packet-journey"


def _router():
    target = MockTarget()
    ipv6_on(target)
    hosts = plan_hosts6(target)
    target.sh(IPV6_FORWARD_ON)
    return target, hosts


def _snmp6(target) -> dict[str, int]:
    lines = target.sh("cat /proc/net/snmp6").splitlines()
    return {name: int(value) for name, value in (line.split() for line in lines)}


def test_an_icmpv6_error_counts_as_a_local_packet_sent():
    """Time exceeded for a 62-byte packet: 40 + 8 + 62 = 110 bytes out, one request, one transmit."""
    target, (h0, h1, _) = _router()
    target.send(h0.port, h0.to_dut6(dst=h1.ip6, hlim=1) / UDP(sport=1, dport=2) / PAYLOAD)
    counters = _snmp6(target)
    assert {name: counters[name] for name in ("Ip6OutRequests", "Ip6OutTransmits", "Ip6OutOctets", "Icmp6OutMsgs",
                                              "Icmp6OutTimeExcds")} == {
        "Ip6OutRequests": 1, "Ip6OutTransmits": 1, "Ip6OutOctets": 110, "Icmp6OutMsgs": 1, "Icmp6OutTimeExcds": 1}


def test_a_forwarded_packet_is_transmitted_but_never_requested():
    target, (h0, h1, _) = _router()
    target.send(h0.port, h0.to_dut6(dst=h1.ip6) / UDP(sport=1, dport=2) / PAYLOAD)
    counters = _snmp6(target)
    assert (counters["Ip6OutRequests"], counters["Ip6OutTransmits"], counters["Ip6OutOctets"]) == (0, 1, 62)


def test_per_type_lines_follow_the_named_ones_in_then_out():
    target, (h0, _, _) = _router()
    target.send(h0.port, h0.to_dut6() / ICMPv6EchoRequest(id=1, seq=1, data=PAYLOAD))
    names = [line.split()[0] for line in target.sh("cat /proc/net/snmp6").splitlines()]
    at = names.index("Icmp6OutMLDv2Reports")
    assert names[at + 1:at + 4] == ["Icmp6InType128", "Icmp6OutType129", "Udp6InDatagrams"]
    assert "UdpLite6IgnoredMulti" not in names and names[-1] == "UdpLite6MemErrors"
