"""nf_ip_checksum() (net/netfilter/utils.c) for IPv4 packets the DUT received.

A frame from a veth comes CHECKSUM_NONE: nf_ip_checksum() then sums everything
from skb->data, which at the IP hooks is the network header, plus the
pseudo-header for TCP and UDP (__skb_checksum_complete()). A valid IPv4 header
adds nothing (its own checksum cancels it), but one whose options
ip_rcv_options() wrote into (a record route or timestamp slot, its pointer:
ip_options_compile() leaves the header checksum stale until
ip_forward_options()) makes every such sum fail after PREROUTING.
The sum taken is kept (ip_summed CHECKSUM_COMPLETE, csum_valid): at PREROUTING
and INPUT a later call trusts a sum that verified, at other hooks any
CHECKSUM_COMPLETE packet passes; ip_forward()'s skb_forward_csum() makes a
forwarded packet CHECKSUM_NONE again, but leaves csum_valid, which
skb_csum_unnecessary() reads. Conntrack's UDP and ICMP sums at PREROUTING
(udp_error(), nf_conntrack_icmpv4_error()) are kept unevaluated
(csum_valid None): over a header still valid there they verify as the
transport sum does, which NAT keeps consistent; the one who needs it computes it.
"""
from __future__ import annotations

from harness.mockkernel.core.skbuff import SkBuff
from harness.mockkernel.netfilter.core import NF_INET_LOCAL_IN, NF_INET_PRE_ROUTING
from harness.mockkernel.wire import ipv4
from harness.mockkernel.wire.checksum import checksum
from harness.mockkernel.wire.ipv4 import IPPROTO_TCP, IPPROTO_UDP, Ipv4Packet


def _sum_ok(skb: SkBuff, start: int) -> bool:
    """The packet's bytes from `start` to its end verify, with the pseudo-header
    of a TCP or UDP packet."""
    buf, nh = skb.buf, skb.network_header
    iph = Ipv4Packet(buf, nh)
    protocol = iph.protocol
    end = min(nh + iph.tot_len, skb.tail)
    initial = ipv4.pseudo_header_sum(buf, nh, protocol, end - iph.payload_offset) \
        if protocol in (IPPROTO_TCP, IPPROTO_UDP) else 0
    return checksum(memoryview(buf)[start:end], initial) == 0


def skb_csum_unnecessary(skb: SkBuff) -> bool:
    """skb_csum_unnecessary() of a received packet: a sum that verified already."""
    if skb.csum_valid is None:
        skb.csum_valid = _sum_ok(skb, Ipv4Packet(skb.buf, skb.network_header).payload_offset)
    return skb.csum_valid


def nf_ip_checksum(skb: SkBuff, hook: int) -> bool:
    """nf_ip_checksum(skb, hook, ip_hdrlen(skb), protocol) == 0: whether the packet's
    sum verifies, as the kernel computes it for a received IPv4 packet."""
    if skb.csum_complete and (hook not in (NF_INET_PRE_ROUTING, NF_INET_LOCAL_IN) or skb_csum_unnecessary(skb)):
        return True
    ok = _sum_ok(skb, skb.network_header)
    skb.csum_complete, skb.csum_valid = True, ok
    return ok


def csum_kept_by_conntrack(skb: SkBuff) -> None:
    """Conntrack's sum of a UDP datagram or ICMP message at PREROUTING, kept to be
    evaluated when asked (module doc)."""
    skb.csum_complete, skb.csum_valid = True, None
