"""IPv6 extension headers on receive (net/ipv6/exthdrs.c): the hop-by-hop
header (ipv6_parse_hopopts(), from ipv6_rcv before PREROUTING), and, as
next-header handlers of local delivery (ipv6_exthdrs_init()), destination
options (ipv6_destopt_rcv()), the routing header (ipv6_rthdr_rcv()) and no
next header (dst_discard).

ip6_parse_tlv() walks the options: at most 7 bytes of padding in a row and
PadN all zeroes, at most max_{hbh,dst}_opts_number (8) other options, the
last one ending the header; a breach is IP_INHDR. An option the kernel does
not know is handled by its type's two top bits (ip6_tlvopt_unknown()): 00
skipped, 01 dropped, 10 answered with parameter problem (unrecognized
option, pointing at it), 11 the same unless the destination is multicast;
all three drops are UNHANDLED_PROTO. Router alert must be 2 bytes long; the
jumbo payload option is checked as ipv6_hop_jumbo() checks it (a frame of
the mock never carries a jumbogram); CALIPSO fails validation without a
configured DOI. A routing header with segments left is processed only for
the types the kernel routes (none here: segment routing and RPL are off by
default, type 2 needs MIP6): any other is a parameter problem pointing at
its type field; with none left it is skipped.
Left out: IOAM data (ignored while ioam6_enabled is 0, the default), Mobile
IPv6 (home address option, type 2 routing header), segment routing.
"""
from __future__ import annotations

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.skbuff import PACKET_HOST, SkBuff, kfree_skb
from harness.mockkernel.wire.icmpv6 import ICMPV6_HDR_FIELD, ICMPV6_PARAMPROB, ICMPV6_UNK_OPTION
from harness.mockkernel.ipv6.protocol import inet6_add_protocol
from harness.mockkernel.wire.ipv6 import (DADDR_FIELD, IPV6_HLEN, IPV6_MAXPLEN, IPV6_TLV_JUMBO, IPV6_TLV_PAD1,
                                          IPV6_TLV_PADN, IPV6_TLV_ROUTERALERT, NEXTHDR_DEST, NEXTHDR_NONE,
                                          NEXTHDR_ROUTING, RT_SEGMENTS_LEFT, RT_TYPE, TLV_ACTION_REPORT,
                                          TLV_ACTION_REPORT_UNICAST, TLV_ACTION_SKIP, TLV_DATA, TLV_LEN, TLV_TYPE,
                                          Ipv6Packet, exthdr_len, jumbo_payload_len, tlv_action)

IPV6_TLV_CALIPSO, IPV6_TLV_IOAM = 0x07, 0x31
IP6_DEFAULT_MAX_OPTS_CNT = 8  # max_hbh_opts_number, max_dst_opts_number
# every option and routing header drop is L4's, the stage the lab gives their locations
# (ip6_parse_tlv, ip6_tlvopt_unknown) whether the header came before or after PREROUTING
EXTHDR_STAGE = Stage.L4


def icmpv6_param_prob_reason(skb: SkBuff, code: int, pos: int, reason: DropReason, stage: Stage,
                             location: str) -> bool:
    """icmpv6_param_prob_reason(): the parameter problem, then the drop, which
    the lab sees in the caller it is inlined into (`location`)."""
    skb.net.ipv6.icmpv6_send(skb, ICMPV6_PARAMPROB, code, pos)
    kfree_skb(skb, reason, stage, location)
    return False


def ip6_tlvopt_unknown(skb: SkBuff, optoff: int) -> bool:
    """An option of unknown type, by its two top bits; True to skip it."""
    action = tlv_action(skb.buf[skb.network_header + optoff + TLV_TYPE])
    if action == TLV_ACTION_SKIP:
        return True
    daddr = DADDR_FIELD.unpack_from(skb.buf, skb.network_header)[0]
    if action == TLV_ACTION_REPORT or (action == TLV_ACTION_REPORT_UNICAST and daddr[0] != 0xFF):
        return icmpv6_param_prob_reason(skb, ICMPV6_UNK_OPTION, optoff, DropReason.UNHANDLED_PROTO, EXTHDR_STAGE,
                                        "ip6_tlvopt_unknown")
    kfree_skb(skb, DropReason.UNHANDLED_PROTO, EXTHDR_STAGE, "ip6_tlvopt_unknown")
    return False


def _hop_jumbo(skb: SkBuff, optoff: int) -> bool:
    """ipv6_hop_jumbo(): 4 bytes at 4n+2, a length over 65535, payload_len 0."""
    buf, nh = skb.buf, skb.network_header
    if buf[nh + optoff + TLV_LEN] != 4 or optoff & 3 != 2:
        kfree_skb(skb, DropReason.IP_INHDR, EXTHDR_STAGE, "ip6_parse_tlv")
        return False
    if jumbo_payload_len(buf, nh + optoff) <= IPV6_MAXPLEN:
        return icmpv6_param_prob_reason(skb, ICMPV6_HDR_FIELD, optoff + TLV_DATA, DropReason.IP_INHDR,
                                        EXTHDR_STAGE, "ip6_parse_tlv")
    if Ipv6Packet(buf, nh).payload_len:
        return icmpv6_param_prob_reason(skb, ICMPV6_HDR_FIELD, optoff, DropReason.IP_INHDR, EXTHDR_STAGE,
                                        "ip6_parse_tlv")
    kfree_skb(skb, DropReason.PKT_TOO_SMALL, EXTHDR_STAGE, "ip6_parse_tlv")  # no frame here is that long
    return False


def ip6_parse_tlv(hopbyhop: bool, skb: SkBuff, max_count: int) -> bool:
    """True when every option of the header at transport_header passes; else
    the packet has been freed."""
    buf, nh = skb.buf, skb.network_header
    off = skb.transport_header - nh
    length = exthdr_len(buf, skb.transport_header, 0) - 2
    off += 2
    tlv_count = padlen = 0
    while length > 0:
        opt = buf[nh + off]
        if opt == IPV6_TLV_PAD1:
            padlen += 1
            if padlen > 7:
                break
            off += 1
            length -= 1
            continue
        if length < 2:
            break
        optlen = buf[nh + off + TLV_LEN] + TLV_DATA
        if optlen > length:
            break
        if opt == IPV6_TLV_PADN:
            padlen += optlen
            if padlen > 7 or any(buf[nh + off + TLV_DATA:nh + off + optlen]):
                break
        else:
            tlv_count += 1
            if tlv_count > max_count:
                break
            if not _known_option(hopbyhop, skb, opt, off):
                return False
            padlen = 0
        off += optlen
        length -= optlen
    else:
        if length == 0:
            return True
    kfree_skb(skb, DropReason.IP_INHDR, EXTHDR_STAGE, "ip6_parse_tlv")
    return False


def _known_option(hopbyhop: bool, skb: SkBuff, opt: int, off: int) -> bool:
    buf, nh = skb.buf, skb.network_header
    if hopbyhop and opt == IPV6_TLV_ROUTERALERT:
        if buf[nh + off + TLV_LEN] == 2:
            return True
        kfree_skb(skb, DropReason.IP_INHDR, EXTHDR_STAGE, "ip6_parse_tlv")
        return False
    if hopbyhop and opt == IPV6_TLV_JUMBO:
        return _hop_jumbo(skb, off)
    if hopbyhop and opt == IPV6_TLV_IOAM:
        if off & 3:
            kfree_skb(skb, DropReason.IP_INHDR, EXTHDR_STAGE, "ip6_parse_tlv")
            return False
        return True
    if hopbyhop and opt == IPV6_TLV_CALIPSO:
        kfree_skb(skb, DropReason.IP_INHDR, EXTHDR_STAGE, "ip6_parse_tlv")
        return False
    return ip6_tlvopt_unknown(skb, off)


def _pull_exthdr(skb: SkBuff) -> int:
    """pskb_may_pull() of 8 bytes, then of the whole header: its length, 0 when cut short."""
    th = skb.transport_header
    if skb.tail - th < 8:
        return 0
    extlen = exthdr_len(skb.buf, th, 0)
    return extlen if skb.tail - th >= extlen else 0


def ipv6_parse_hopopts(skb: SkBuff) -> bool:
    """The hop-by-hop header right after the fixed header; True to go on."""
    extlen = _pull_exthdr(skb)
    if not extlen:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.IP_RCV, "ipv6_parse_hopopts")
        return False
    if not ip6_parse_tlv(True, skb, IP6_DEFAULT_MAX_OPTS_CNT):
        return False
    skb.transport_header += extlen
    skb.cb["nhoff"] = IPV6_HLEN
    return True


def ipv6_destopt_rcv(skb: SkBuff) -> bool:
    """Destination options: True to resubmit past them."""
    extlen = _pull_exthdr(skb)
    if not extlen:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, EXTHDR_STAGE, "ipv6_destopt_rcv")
        return False
    dst1 = skb.transport_header - skb.network_header
    if not ip6_parse_tlv(False, skb, IP6_DEFAULT_MAX_OPTS_CNT):
        return False
    skb.transport_header += extlen
    skb.cb["nhoff"] = dst1
    return True


def ipv6_rthdr_rcv(skb: SkBuff) -> bool:
    """The routing header: with no segments left skipped (True); else a
    parameter problem at its type, as no type is routed here."""
    extlen = _pull_exthdr(skb)
    if not extlen:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, EXTHDR_STAGE, "ipv6_rthdr_rcv")
        return False
    buf, nh, th = skb.buf, skb.network_header, skb.transport_header
    if DADDR_FIELD.unpack_from(buf, nh)[0][0] == 0xFF or skb.pkt_type != PACKET_HOST:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, EXTHDR_STAGE, "ipv6_rthdr_rcv")
        return False
    if buf[th + RT_SEGMENTS_LEFT] == 0:
        skb.cb["nhoff"] = th - nh
        skb.transport_header += extlen
        return True
    return icmpv6_param_prob_reason(skb, ICMPV6_HDR_FIELD, th - nh + RT_TYPE, DropReason.NOT_SPECIFIED,
                                    EXTHDR_STAGE, "ipv6_rthdr_rcv")


def nodata_rcv(skb: SkBuff) -> bool:
    """NEXTHDR_NONE: nothing follows (dst_discard)."""
    kfree_skb(skb, DropReason.NOT_SPECIFIED, EXTHDR_STAGE, "dst_discard_out")
    return False



def ipv6_exthdrs_init() -> None:
    inet6_add_protocol(ipv6_rthdr_rcv, NEXTHDR_ROUTING)
    inet6_add_protocol(ipv6_destopt_rcv, NEXTHDR_DEST)
    inet6_add_protocol(nodata_rcv, NEXTHDR_NONE)
