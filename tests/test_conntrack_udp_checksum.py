"""nf_conntrack_proto_udp.c udp_error(): at PREROUTING, with nf_conntrack_checksum on, a
UDP datagram whose checksum does not verify (nf_checksum() against the pseudo-header of
the packet's own addresses) is INVALID and makes no entry; a zero checksum is none sent."""
from __future__ import annotations

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6ExtHdrRouting

from harness.mockkernel.target import MockTarget
from harness.testing import ipv6_on, plan_hosts6, plan_router

TRACK = "table inet t {\n\tchain c {\n\t\ttype filter hook prerouting priority 0;\n\t\tct state new counter\n\t}\n}\n"


@pytest.fixture
def target():
    target = MockTarget()
    yield target
    target.close()


@pytest.mark.parametrize("chksum, tracked", [(None, True), (0x1234, False), (0, True)])
def test_an_ipv4_datagram_with_a_bad_checksum_makes_no_entry_and_one_without_a_checksum_does(target, chksum,
                                                                                           tracked):
    h0 = plan_router(target)[0]
    target.sh(["nft", "-f", "-"], stdin=TRACK)
    target.send(h0.port, h0.to_dut(dst="10.0.1.2") / UDP(sport=1024, dport=53, chksum=chksum) / b"abc")
    assert bool(target.conntrack()) == tracked


def test_a_routing_headers_final_destination_is_not_the_pseudo_headers_so_the_datagram_is_invalid(target):
    """scapy sums a datagram behind a routing header for its final destination; nf_checksum()
    takes the header's current one (seed 22, scenario 578: no entry on the kernel)."""
    ipv6_on(target)
    h2 = plan_hosts6(target)[2]
    target.sh(["nft", "-f", "-"], stdin=TRACK)
    target.send(h2.port, h2.to_dut6(hlim=2) / IPv6ExtHdrRouting(type=0, segleft=1, addresses=["2001:db8:2::2"])
                / UDP(sport=546, dport=53))
    assert target.sh("conntrack -L -f ipv6") == ""
    target.send(h2.port, h2.to_dut6() / UDP(sport=546, dport=53))
    assert "udp" in target.sh("conntrack -L -f ipv6")


@pytest.mark.parametrize("datagram, why", [
    (UDP(sport=1024, dport=53, chksum=0x1234) / b"abc", "udp: bad checksum"),
    (UDP(sport=1024, dport=53, len=100) / b"abc", "udp: truncated/malformed packet"),
])
def test_the_invalid_verdict_names_what_udp_error_logs(target, datagram, why):
    """udp_error()'s udp_error_log() names each refusal apart: "truncated/malformed
    packet" for the length, "bad checksum" for the sum."""
    h0 = plan_router(target)[0]
    target.sh(["nft", "-f", "-"], stdin=TRACK)
    target.send(h0.port, h0.to_dut(dst="10.0.1.2") / datagram)
    verdicts = [(h.verdict, str(h.summary)) for j in target.journeys() for h in j.hops if h.where == "nf_conntrack_in"]
    assert verdicts == [("INVALID", why)]
