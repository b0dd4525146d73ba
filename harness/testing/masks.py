"""Masks for the frames Linux sends with fields a test cannot predict, each with its reason."""
from __future__ import annotations

from scapy.layers.inet import IP

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


def quoted(frame) -> bytes:
    """The IP packet inside `frame`, as an ICMP error quotes it (up to 548 bytes)."""
    return bytes(frame[IP])[:548]
