"""Software GSO for TCP over IPv4 (net/core/gso.c skb_gso_segment(),
net/ipv4/af_inet.c inet_gso_segment(), net/ipv4/tcp_offload.c tcp_gso_segment(),
net/core/dev.c validate_xmit_skb(), netif_skb_features()).

A GSO skb reaches the driver whole when the device can segment it itself
(TSO); otherwise validate_xmit_skb() cuts it here, after the qdisc, into
gso_size-byte segments (wire/tcp.py gso_segments(): seq, IP ID, tot_len,
checksums and flags per segment), the link-layer header copied in front of
each, as skb_segment() copies the headers.
"""
from __future__ import annotations

from harness.mockkernel.wire import tcp


def netif_needs_gso(dev) -> bool:
    """!skb_gso_ok(): the device has no TSO in its effective features. TSO
    needs scatter-gather and checksum offload (netdev_fix_features() drops it
    with `ethtool -K tx off` or `sg off`) and GSO on (the lab: with tx on but
    gso or tso off the frames leave MSS-sized)."""
    features = dev.features
    return not (features["tcp-segmentation-offload"] and features["tx-checksumming"]
                and features["scatter-gather"] and features["generic-segmentation-offload"])


def skb_gso_segment(skb) -> list[bytes]:
    """The frames (link-layer header on) the GSO skb `skb` becomes on the wire."""
    buf, nh = skb.buf, skb.network_header
    link_header = bytes(buf[skb.data:nh])
    return [link_header + packet for packet in tcp.gso_segments(buf, nh, skb.transport_header, skb.tail,
                                                                skb.gso_size)]
