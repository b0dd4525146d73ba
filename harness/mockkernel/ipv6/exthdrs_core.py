"""Walking IPv6 extension headers (net/ipv6/exthdrs_core.c): ipv6_ext_hdr(),
ipv6_skip_exthdr(), ipv6_find_hdr(), on the frame's bytes (skb_header_pointer()
reads within `end`; a header cut short is the kernel's failure value).
Netfilter (nf_tables pktinfo, exthdr, conntrack) and ICMPv6 share them."""
from __future__ import annotations

import errno

from harness.mockkernel.wire.ipv6 import (EXTENSION_HEADERS, FRAG_HLEN, IPV6_HLEN, NEXTHDR, NEXTHDR_AUTH,
                                          NEXTHDR_FRAGMENT, NEXTHDR_NONE, NEXTHDR_ROUTING, OPT_NEXTHDR,
                                          RT_SEGMENTS_LEFT, exthdr_len, frag_off_field)

# ipv6_find_hdr() flags (include/linux/ipv6.h)
IP6_FH_F_FRAG, IP6_FH_F_AUTH, IP6_FH_F_SKIP_RH = 1 << 0, 1 << 1, 1 << 2


def ipv6_ext_hdr(nexthdr: int) -> bool:
    return nexthdr in EXTENSION_HEADERS


def ipv6_skip_exthdr(buf: bytearray, start: int, nexthdr: int, end: int) -> tuple[int, int, int]:
    """(offset of the first non-extension header or -1, its nexthdr, the last
    fragment header's frag_off field): stops at a non-first fragment, whose
    payload is no header; -1 for NEXTHDR_NONE or a header cut short."""
    frag_off = 0
    while nexthdr in EXTENSION_HEADERS:
        if nexthdr == NEXTHDR_NONE or start + 2 > end:
            return -1, nexthdr, frag_off
        if nexthdr == NEXTHDR_FRAGMENT:
            if start + 4 > end:
                return -1, nexthdr, frag_off
            frag_off = frag_off_field(buf, start)
            if frag_off & ~0x7:
                break
            hdrlen = FRAG_HLEN
        else:
            hdrlen = exthdr_len(buf, start, nexthdr)
        nexthdr = buf[start + OPT_NEXTHDR]
        start += hdrlen
    return start, nexthdr, frag_off


def ipv6_find_hdr(buf: bytearray, nh: int, end: int, target: int, flags: int = 0) -> tuple[int, int, int, int]:
    """(nexthdr of the header found or -errno, its offset, the fragment
    offset, flags): the header `target` (or, target < 0, the last one, the
    upper-layer header) of the packet whose IPv6 header is at `nh`. -ENOENT
    when absent (or behind a non-first fragment), -EBADMSG when cut short.
    IP6_FH_F_SKIP_RH passes over routing headers with no segments left,
    IP6_FH_F_AUTH stops at AH for target < 0; IP6_FH_F_FRAG is set in the
    returned flags when a fragment header was crossed."""
    start, nexthdr, fragoff = nh + IPV6_HLEN, buf[nh + NEXTHDR], 0
    while True:
        found = nexthdr == target
        if nexthdr not in EXTENSION_HEADERS or nexthdr == NEXTHDR_NONE:
            if target < 0 or found:
                break
            return -errno.ENOENT, start, fragoff, flags
        if start + 2 > end:
            return -errno.EBADMSG, start, fragoff, flags
        if nexthdr == NEXTHDR_ROUTING:
            if start + 4 > end:
                return -errno.EBADMSG, start, fragoff, flags
            if flags & IP6_FH_F_SKIP_RH and buf[start + RT_SEGMENTS_LEFT] == 0:
                found = False
        if nexthdr == NEXTHDR_FRAGMENT:
            flags |= IP6_FH_F_FRAG
            if start + 4 > end:
                return -errno.EBADMSG, start, fragoff, flags
            frag_off = frag_off_field(buf, start) & ~0x7
            if frag_off:
                following = buf[start + OPT_NEXTHDR]
                if target < 0 and (following not in EXTENSION_HEADERS or following == NEXTHDR_NONE):
                    return following, 0, frag_off, flags  # returns before *offset is set
                if not found:
                    return -errno.ENOENT, start, fragoff, flags
                fragoff = frag_off
                break
            hdrlen = FRAG_HLEN
        elif nexthdr == NEXTHDR_AUTH:
            if flags & IP6_FH_F_AUTH and target < 0:
                break
            hdrlen = exthdr_len(buf, start, nexthdr)
        else:
            hdrlen = exthdr_len(buf, start, nexthdr)
        if found:
            break
        nexthdr = buf[start + OPT_NEXTHDR]
        start += hdrlen
    return nexthdr, start, fragoff, flags
