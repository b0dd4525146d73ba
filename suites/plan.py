"""The suites' addressing plan and the helpers that write expected frames.

    host h0 10.0.0.2 --- t0 | p0 10.0.0.1 ┐
    host h1 10.0.1.2 --- t1 | p1 10.0.1.1 ├ DUT
    host h2 10.0.2.2 --- t2 | p2 10.0.2.1 ┘

Expected frames are written out literally from this plan: what Linux must send,
not what the code under test computes. At the end, the readings suites compare:
drops and rule counters, in the same shape on every target.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from harness.packets import Mask
from harness.target import Port


@dataclass(frozen=True)
class Host:
    """A host on the wire of `port`, in the subnet 10.0.<index>.0/24."""

    port: Port

    @property
    def ip(self) -> str:
        return f"10.0.{self.port.index}.2"

    @property
    def dut_ip(self) -> str:
        return f"10.0.{self.port.index}.1"

    @property
    def mac(self) -> str:
        return self.port.peer_mac

    def to_dut(self, **ip_fields) -> Ether:
        """Ether/IP from this host to the DUT's MAC; IP fields default to host -> DUT."""
        fields = {"src": self.ip, "dst": self.dut_ip, **ip_fields}
        return Ether(src=self.mac, dst=self.port.mac) / IP(**fields)

    def from_dut(self, **ip_fields) -> Ether:
        """Ether/IP as the DUT sends it to this host."""
        return Ether(src=self.port.mac, dst=self.mac) / IP(**ip_fields)

    def icmp_error(self, icmp_type: int, code: int, about, **icmp_fields) -> Mask:
        """The ICMP error Linux sends this host about the IP packet in `about`:
        from the DUT's address on this port (the route back picks it), TOS
        precedence internetcontrol (0xC0), TTL 64, no DF, quoting the packet."""
        reply = self.from_dut(src=self.dut_ip, dst=self.ip, tos=0xC0, ttl=64, flags=0) / \
            ICMP(type=icmp_type, code=code, **icmp_fields) / quoted(about)
        return icmp_socket_mask(reply)


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


# what suites read back -------------------------------------------------------------

COMMENT = re.compile(r'comment "([^"]*)"$')


def drops(target) -> list[tuple[str, str, str]]:
    """Every drop so far as (reason, stage, location), in order."""
    return [(d.reason, d.stage, d.location) for d in target.drops()]


def counted(target, needle: str) -> int:
    """Packets counted by the counter rules whose text holds `needle`."""
    return sum(c.packets for c in target.counters() if needle in c.rule)


def counted_in_chain(target, chain: str) -> int:
    """Packets counted by the counter rules of `chain`."""
    return sum(c.packets for c in target.counters() if c.chain == chain)


def counted_by_comment(target) -> dict[str, int]:
    """Packets counted so far by each counter rule, by the rule's comment."""
    return {m.group(1): c.packets for c in target.counters() if (m := COMMENT.search(c.rule))}
