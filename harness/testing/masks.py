"""Masks for the frames Linux sends with fields a test cannot predict, each with its reason."""
from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from harness.packets import Mask


def socket_datagram_mask(frame) -> Mask:
    """A UDP or ping socket's datagram: IP_PMTUDISC_WANT sets DF when it fits
    the MTU but also ignore_df, so ip_select_ident_segs() takes the ID from the
    hashed generator rather than 0."""
    return Mask(frame).ignore(IP, "id", "IP_PMTUDISC_WANT sets ignore_df: ID from Linux's hashed generator") \
        .ignore(IP, "chksum", "covers the unpredictable IP ID")


def icmp_socket_mask(frame) -> Mask:
    """ICMP errors and echo replies are sent by the kernel's ICMP socket without
    DF, so their IP ID comes from the hashed per-destination generator."""
    return Mask(frame).ignore(IP, "id", "ICMP sent without DF: IP ID from Linux's hashed generator") \
        .ignore(IP, "chksum", "covers the unpredictable IP ID")


def icmp_timestamp_reply_mask(frame) -> Mask:
    """A timestamp reply (icmp_timestamp()) carries the time it was answered, in
    milliseconds since midnight UTC, as receive and transmit time: the mock's
    clock is virtual. Its IP ID as icmp_socket_mask()'s."""
    return icmp_socket_mask(frame).ignore(ICMP, "ts_rx", "the time the DUT answered (ms since midnight UTC)") \
        .ignore(ICMP, "ts_tx", "the time the DUT answered (ms since midnight UTC)") \
        .ignore(ICMP, "chksum", "covers the times")


def quoted(frame) -> bytes:
    """The IP packet inside `frame`, as an ICMP error quotes it (up to 548 bytes)."""
    return bytes(frame[IP])[:548]


def auto_flowlabel_mask(frame) -> Mask:
    """What the DUT sends from its own sockets over IPv6 (ICMPv6 errors and echo
    replies, UDP) carries an automatic flow label (net.ipv6.auto_flowlabels 1,
    ip6_make_flowlabel()): the flow's hash under a key drawn at boot."""
    return Mask(frame).ignore(IPv6, "fl", "auto_flowlabels: the flow's hash under a random key")


def quoted6(frame) -> bytes:
    """The IPv6 packet inside `frame`, as an ICMPv6 error quotes it (up to 1232 bytes)."""
    return bytes(frame[IPv6])[:1232]


def syn_ack_mask(frame) -> Mask:
    """A listener's SYN-ACK (tcp_v4_send_synack()/tcp_v6_send_synack()): its sequence
    number is the ISN, secure_tcp_seq()/secure_tcpv6_seq(): a keyed hash of the 4-tuple
    and a clock; over IPv6 also its automatic flow label."""
    mask = Mask(frame).ignore(TCP, "seq", "the ISN: secure_tcp_seq(), a keyed hash of the 4-tuple and a clock") \
        .ignore(TCP, "chksum", "covers the ISN")
    return mask.ignore(IPv6, "fl", "auto_flowlabels: the flow's hash under a random key") \
        if IPv6 in Ether(mask.expected) else mask
