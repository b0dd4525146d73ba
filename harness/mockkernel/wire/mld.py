"""Multicast listener reports (RFC 2710 MLDv1, RFC 3810 MLDv2; include/net/mld.h).

A node sends them on its own when it joins a group (net/ipv6/mcast.c): an
IPv6 header, a hop-by-hop header with the router alert option (RFC 3810 5),
then the ICMPv6 report. The mock sends no MLD of its own (the bridge snoops what
it forwards: bridge/br_multicast.py); is_mld_report() lets the netns lab's
capture leave them out.
"""
from __future__ import annotations

import struct

from harness.mockkernel.wire.errors import Truncated
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


MLD_MSG_LEN = 24  # struct mld_msg: type, code, csum, maxdelay, reserved, mca
MLD2_QUERY_LEN = 28  # struct mld2_query without its sources
MLD2_REPORT_LEN = 8  # struct mld2_report without its records
MLD2_GREC_LEN = 20  # struct mld2_grec without its sources
MLD_MSG = struct.Struct("!BxxxH2x16s")  # type, maxdelay, mca
MLD2_NGREC_FIELD = struct.Struct("!6xH")
MLD2_GREC = struct.Struct("!BxH16s")  # type, nsrcs, mca
MLD2_QUERY_MRC = struct.Struct("!4xH")  # mld2q_mrc
# MLDv2 group record types (include/net/mld.h), as IGMPv3's
MLD2_MODE_IS_INCLUDE, MLD2_CHANGE_TO_INCLUDE = 1, 3


def mld2_records(buf: bytearray, off: int, end: int):
    """(record type, group, number of sources) of each record of the MLDv2 report
    at `off`, as br_ip6_multicast_mld2_report() walks them; Truncated where one is cut short."""
    length = MLD2_REPORT_LEN
    for _ in range(MLD2_NGREC_FIELD.unpack_from(buf, off)[0]):
        length += MLD2_GREC_LEN
        if off + length > end:
            raise Truncated(None, "MLDv2 group record cut short")
        grec_type, nsrcs, group = MLD2_GREC.unpack_from(buf, off + length - MLD2_GREC_LEN)
        length += nsrcs * 16
        if off + length > end:
            raise Truncated(None, "MLDv2 group record sources cut short")
        yield grec_type, group, nsrcs
