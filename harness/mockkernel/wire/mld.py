"""Multicast listener reports (RFC 2710 MLDv1, RFC 3810 MLDv2; include/net/mld.h).

A node sends them on its own when it joins a group (net/ipv6/mcast.c): an
IPv6 header, a hop-by-hop header with the router alert option (RFC 3810 5),
then the ICMPv6 report. The mock models no MLD; is_mld_report() lets the netns
lab's capture leave them out.
"""
from __future__ import annotations

from harness.mockkernel.wire.ethernet import ETH_HLEN, ETH_P_IPV6, HEADER as ETH_HEADER
from harness.mockkernel.wire.ipv6 import IPV6_HLEN, NEXTHDR, NEXTHDR_HOP, IPPROTO_ICMPV6, Ipv6OptHeader
from harness.mockkernel.wire.icmpv6 import ICMPV6_MGM_REDUCTION, ICMPV6_MGM_REPORT, ICMPV6_MLD2_REPORT, TYPE

MLD_REPORT_TYPES = frozenset({ICMPV6_MGM_REPORT, ICMPV6_MGM_REDUCTION, ICMPV6_MLD2_REPORT})


def is_mld_report(frame: bytes) -> bool:
    """An Ethernet frame carrying an MLD report or done."""
    if len(frame) < ETH_HLEN + IPV6_HLEN + 8 or ETH_HEADER.unpack_from(frame)[2] != ETH_P_IPV6:
        return False
    if frame[ETH_HLEN + NEXTHDR] != NEXTHDR_HOP:
        return False
    hop_by_hop = Ipv6OptHeader(bytearray(frame), ETH_HLEN + IPV6_HLEN)
    icmp = hop_by_hop.off + hop_by_hop.length
    return hop_by_hop.nexthdr == IPPROTO_ICMPV6 and icmp < len(frame) and frame[icmp + TYPE] in MLD_REPORT_TYPES
