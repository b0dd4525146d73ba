"""Netfilter journeys of the real kernel, from nf_tables trace events (nftrace).

The harness keeps two tables of its own in the DUT namespace, both named pj_trace:
`table netdev pj_trace`, whose ingress chain on the DUT ports (p0..p2) at the
lowest priority there is sets `meta nftrace set 1` on every IPv4 packet coming in
from the tester ports before any netdev ingress chain of the test runs, and
`table ip pj_trace`, whose chains at priority -350 (before raw -300 and conntrack
-200) set it on every packet entering PREROUTING (from the ports or `lo`) or
OUTPUT (sent by the DUT). From then on nf_tables reports each chain the packet
runs through (net/netfilter/nf_tables_trace.c): a netlink NFT_MSG_TRACE message for
every rule that matched (with its handle and verdict) and for a base chain's
policy; the first message of each base chain carries the packet's headers as that
chain saw them, so NAT rewrites show in the next chain's headers. A reader thread
collects the messages (`NftTrace`); `journeys()` turns them into hops with the rule
texts of `nft -a list ruleset`, in the mock's format (nf_tables_core.py, nf_nat.py):

    Hop(stage, "<family> <table> <chain>", verdict, "rule <handle>: <rule text>" | "policy")

one per base chain a packet crossed, with the verdict that ended it (ACCEPT, DROP,
QUEUE) and the rule that gave it ("chain <name> rule <handle>: ..." when that rule is
in a regular chain); before it, one per jump or goto (where = the chain of the
jumping rule, verdict JUMP or GOTO). Rule texts are nft's stateless ones (`nft -s`:
`counter` without its values). A NAT rewrite is a hop of its own where the next
chain shows it, as the mock's nf_nat_packet() records it:

    Hop("NF_PREROUTING", "nf_nat_packet", "DNAT", "daddr 10.0.0.1:8080 -> 10.0.1.2:80")

(SNAT; UN-DNAT and UN-SNAT for replies: the conntrack direction comes from the trace,
which carries it on chains after conntrack since 6.16, else from the conntrack
table). A rewrite after the packet's last chain (SNAT, a reply's un-DNAT, both in
POSTROUTING) is read from the packet's conntrack entry (ctnetlink: the table, and the
entries destroyed since the trace was last cleared, from NFNLGRP_CONNTRACK_DESTROY: an
entry whose only reply was a RST is killed at once, tcp_packet()'s nf_ct_kill_acct(),
before any dump could read it), once its frame
shows that it left the DUT (paired by IP ID, length and protocol): nf_nat_packet()
rewrites the packet to the inverse of the other direction's tuple, so the reply
tuple is what netfilter made of the original direction and vice versa. The frame
itself is not netfilter's work alone: a TC egress program runs after POSTROUTING
and may rewrite it again (tc_nat after a masquerade: netfilter's 10.0.1.1 leaves
as 10.0.1.77). Only where the table cannot be read, or has no entry for the packet
(untracked, or deleted since), is the rewrite taken from the frame, TC's rewrites
included. A packet dropped after POSTROUTING (TC egress, the qdisc) left no frame,
but its drop (kfree_skb.py) carries the headers NAT gave it: when they are the
ones its entry translates it to, the rewrite is shown and the drop is the
packet's. A packet that comes back in on `lo` shows it in its next chain.

Trace ids are not unique: nft_trace_init() (6.18) hashes the skb's address, its
flow hash (skb_get_hash_net(), computed once and kept in the skb) and skb_iif
with a boot-time siphash key, so a packet that reuses a freed skb gets its
predecessor's id. Within one pass through __netif_receive_skb_core() those three
do not change, so a packet's netdev ingress and IPv4 messages share one id (seen
on the lab). Every packet from a port starts in the netdev pj_trace, which starts
a new packet; the ip pj_trace's prerouting chain continues the packet of its id
that has crossed only netdev ingress so far, and otherwise (a packet on `lo`, or
sent by the DUT) starts one. A packet the DUT sends to itself is traced again
when it comes back in on `lo` (with a new id: its input interface changed) and
stays one journey. Packets the kernel sends in answer (ICMP errors, echo replies,
TCP resets) become children of the packet that caused them, as on the mock.

The pj_trace tables are the harness's: they are left out of journeys, counters
and of every `nft` listing the test sees. A test's `nft flush ruleset` deletes
them; the harness sees the deletion in the ruleset notifications
(NFNLGRP_NFTABLES) and adds the deleted tables back before `sh()` returns, so no
packet of the test goes untraced. Watching for the deletion, rather than
rewriting the test's `flush ruleset`, catches it in every form (a file that
starts with it, `nft delete table`, iptables-nft-restore) and costs nothing
unless it happened.
"""
from __future__ import annotations

import errno
import json
import os
import re
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

from harness.drivers import nfnetlink as nl
from harness.drivers.kfree_skb import KfreeSkbEvent
from harness.drivers.netns import NetnsLab
from harness.journey import CtEntry, Drop, Hop, Journey, RuleCounter, Stage
from harness.mockkernel.wire import ethernet, udp
from harness.mockkernel.wire import icmp as wire_icmp
from harness.mockkernel.wire.ethernet import ETH_HLEN, ETH_P_IP
from harness.mockkernel.wire.icmp import ICMP_ECHO, ICMP_ECHOREPLY
from harness.mockkernel.wire.ipv4 import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPV4_MIN_HLEN, Ipv4Packet
from harness.mockkernel.wire.tcp import TCPHDR_RST, TcpSegment
from harness.target import PORTS, CommandError, TargetError

TRACE_TABLE = "pj_trace"
TRACE_DEVICES = ", ".join(f'"{port.name}"' for port in PORTS)
# One table per family, each put back on its own when a test deletes it.
# The netdev chain runs first of all ingress chains (INT_MIN) and marks IPv4 only:
# ARP and IPv6 come in on the ports too. Bound to the ports, it never sees the
# kfree_skb sentinel, which is sent on `lo`.
def _ip_trace_table(came_in: str = "", goes_out: str = "") -> str:
    return f"""table ip {TRACE_TABLE} {{
    chain pre {{
        type filter hook prerouting priority -350; policy accept;
        iif "lo" ip saddr 127.0.0.1 ip protocol 253 accept
        {came_in}meta nftrace set 1
    }}
    chain out {{
        type filter hook output priority -350; policy accept;
        {goes_out}meta nftrace set 1
    }}
}}
"""


TRACE_RULESETS = {
    "netdev": f"""table netdev {TRACE_TABLE} {{
    chain in {{
        type filter hook ingress devices = {{ {TRACE_DEVICES} }} priority -2147483648; policy accept;
        meta protocol ip meta nftrace set 1
    }}
}}
""",
    "ip": _ip_trace_table(),
}
# Where the DUT's namespace carries other traffic too (a lab DUT's management, HereLab),
# only packets that came in on, or leave through, a port or lo (the test's local
# traffic) are traced: a traced SSH session would trace its own replies, and show
# in the test's journeys.
LAB_DEVICES = f'{TRACE_DEVICES}, "lo"'
LAB_TRACE_RULESETS = {
    "netdev": TRACE_RULESETS["netdev"],
    "ip": _ip_trace_table(f"iifname {{ {LAB_DEVICES} }} ", f"oifname {{ {LAB_DEVICES} }} "),
}
# (The `lo` rule keeps the kfree_skb sentinel out, should it ever reach PREROUTING:
# today it is dropped OTHERHOST before any hook.)

NFNLGRP_CONNTRACK_DESTROY, NFNLGRP_NFTABLES, NFNLGRP_NFTRACE = 3, 7, 9
IPCTNL_MSG_CT_DELETE = 2
NFT_MSG_DELTABLE, NFT_MSG_NEWGEN, NFT_MSG_TRACE = 2, 15, 17
NFTA_TABLE_NAME = 1
NFTA_TRACE_TABLE, NFTA_TRACE_CHAIN, NFTA_TRACE_RULE_HANDLE, NFTA_TRACE_TYPE = 1, 2, 3, 4
NFTA_TRACE_VERDICT, NFTA_TRACE_ID, NFTA_TRACE_NETWORK_HEADER = 5, 6, 8
NFTA_TRACE_TRANSPORT_HEADER, NFTA_TRACE_IIF, NFTA_TRACE_POLICY = 9, 10, 16
NFTA_TRACE_CT_DIRECTION = 19  # since 6.16 (IP_CT_DIR_ORIGINAL 0, IP_CT_DIR_REPLY 1)
NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN = 1, 2
NFT_TRACETYPE_POLICY, NFT_TRACETYPE_RULE = 1, 3  # 2 is RETURN
NF_VERDICT_MASK = 0xFF
# netfilter verdicts (NF_*) and nf_tables' own (NFT_*, negative)
VERDICTS = {0: "DROP", 1: "ACCEPT", 2: "STOLEN", 3: "QUEUE", 4: "REPEAT", 5: "STOP",
            -1: "CONTINUE", -2: "BREAK", -3: "JUMP", -4: "GOTO", -5: "RETURN"}
FINAL_VERDICTS = frozenset({"ACCEPT", "DROP", "STOLEN", "QUEUE", "REPEAT", "STOP"})
HOOK_STAGES = {"ingress": Stage.NF_INGRESS, "egress": Stage.NF_EGRESS, "prerouting": Stage.NF_PREROUTING, "input": Stage.NF_INPUT,
               "forward": Stage.NF_FORWARD, "output": Stage.NF_OUTPUT, "postrouting": Stage.NF_POSTROUTING}
TRACE_FAMILY_PATTERN = f"(?:{'|'.join(TRACE_RULESETS)})"
TRACE_CHAIN_STAGES = {("netdev", "in"): Stage.NF_INGRESS, ("ip", "pre"): Stage.NF_PREROUTING,
                      ("ip", "out"): Stage.NF_OUTPUT}
# Where NAT rewrites (nf_nat_ipv4_ops): destinations at PREROUTING and OUTPUT,
# sources at POSTROUTING and INPUT; named by the direction of the packet.
NAT_MANIPS = (("daddr", frozenset({Stage.NF_PREROUTING, Stage.NF_OUTPUT}), ("DNAT", "UN-SNAT")),
              ("saddr", frozenset({Stage.NF_POSTROUTING, Stage.NF_INPUT}), ("SNAT", "UN-DNAT")))
LOOPBACK_IFINDEX = 1  # lo is ifindex 1 in every namespace
# a rule's payload statement writing what a drop's packet line shows (KfreeSkbEvent.summary()):
# `ip daddr set 10.0.2.2`, `ip ttl set 1` (a value nft lists as a literal; other sources are left)
HEADER_WRITE = re.compile(r"\bip (saddr|daddr|ttl|id) set (\d+(?:\.\d+){3}|\d+)(?=\s|$)")
# drops past the INPUT hook: where a local packet's NAT after its last chain was INPUT's
LOCAL_DELIVERY = frozenset({Stage.L4, Stage.SOCKET})
TRACE_RCVBUF = 32 << 20
RULESET_RCVBUF = 4 << 20
CT_DESTROY_RCVBUF = 4 << 20
COUNTER = re.compile(r"\bcounter packets (\d+) bytes (\d+)")
QUOTA_USED = re.compile(r"(\bquota (?:over |until )?\d+ \w*bytes) used \d+ \w*bytes")
HANDLE = re.compile(r" # handle (\d+)$")
# a trace message carries the transport header's first 20 bytes: an ICMP
# error's quoted IP header up to its checksum
TRACED_TRANSPORT_LEN = 20


# the ruleset as nft lists it ------------------------------------------------------

def is_trace_table(family: str, table: str) -> bool:
    return table == TRACE_TABLE and family in TRACE_RULESETS


class Rule(NamedTuple):
    text: str  # as `nft -s` lists it (no counter values, no quota use), without the handle
    packets: int | None
    bytes: int | None


@dataclass
class Chain:
    family: str
    table: str
    name: str
    hook: str = ""  # "" for a regular chain
    type: str = ""
    rules: dict[int, Rule] = field(default_factory=dict)  # by handle, in listing order

    @property
    def where(self) -> str:
        return f"{self.family} {self.table} {self.name}"


def rule_text(listed: str) -> str:
    """A rule of `nft -a list` as `nft -s list` prints it, less its handle."""
    return QUOTA_USED.sub(r"\1", COUNTER.sub("counter", HANDLE.sub("", listed))).strip()


def parse_ruleset(listing: str) -> dict[tuple[str, str, str], Chain]:
    """The chains of `nft -a list ruleset`, by (family, table, chain), pj_trace's left out.
    Sets, maps, flowtables and named objects are skipped: their blocks close at the
    same depth as a chain's."""
    chains: dict[tuple[str, str, str], Chain] = {}
    table: tuple[str, str] | None = None
    chain: Chain | None = None
    in_other_block = False
    for line in listing.splitlines():
        depth = len(line) - len(line.lstrip("\t"))
        text = line.strip()
        if depth == 0 and text.startswith("table "):
            family, name = text.split()[1:3]
            table = (family, name.strip('"'))
        elif depth == 0 and text == "}":
            table = None
        elif table is None or is_trace_table(*table):
            continue
        elif depth == 1:
            if text == "}":
                chain, in_other_block = None, False
            elif text.startswith("chain "):
                chain = Chain(*table, text.split()[1].strip('"'))
                chains[(chain.family, chain.table, chain.name)] = chain
            elif "{" in text:  # a set, map, flowtable or named object
                in_other_block = True
        elif chain is None or in_other_block or depth != 2:
            continue
        elif match := re.match(r"type (\w+) hook (\w+)", text):
            chain.type, chain.hook = match.groups()
        elif match := HANDLE.search(text):
            counter = COUNTER.search(text)
            chain.rules[int(match.group(1))] = Rule(
                rule_text(text), int(counter.group(1)) if counter else None,
                int(counter.group(2)) if counter else None)
    return chains


def rule_counters(chains: dict[tuple[str, str, str], Chain]) -> list[RuleCounter]:
    return [RuleCounter(c.family, c.table, c.name, rule.text, rule.packets, rule.bytes)
            for c in chains.values() for rule in c.rules.values() if rule.packets is not None]


def hide_trace_table(argv: Sequence[str], output: str) -> str:
    """`nft` output as the test's ruleset alone would give it: pj_trace left out of
    listings (text or JSON) and of `nft list hooks`, in both families."""
    if not output or TRACE_TABLE not in output:
        return output
    if "-j" in argv or "--json" in argv:
        listing = json.loads(output)
        listing["nftables"] = [item for item in listing.get("nftables", []) if not _is_trace_object(item)]
        return json.dumps(listing) + "\n"
    lines, skipping = [], False
    for line in output.splitlines(keepends=True):
        if skipping:
            skipping = line.rstrip("\n") != "}"
        elif re.match(rf"table {TRACE_FAMILY_PATTERN} {TRACE_TABLE}\b", line):
            skipping = line.split("#")[0].rstrip().endswith("{")
        elif not re.search(rf"\bchain {TRACE_FAMILY_PATTERN} {TRACE_TABLE} ", line):
            lines.append(line)
    return "".join(lines)


def _is_trace_object(item: dict) -> bool:
    kind, body = next(iter(item.items()))
    if not isinstance(body, dict):
        return False
    return is_trace_table(body.get("family"), body.get("name") if kind == "table" else body.get("table"))


# packets as the trace shows them --------------------------------------------------

@dataclass(frozen=True)
class Ipv4Header:
    """The IPv4 header and up to 20 bytes of transport header of a trace message."""

    network: bytes
    transport: bytes

    @classmethod
    def from_frame(cls, frame: bytes) -> Ipv4Header | None:
        """The IPv4 header of an Ethernet frame, None for anything else (an IHL under 5,
        which an XDP program may send out unchecked, gives no header either)."""
        if len(frame) < ETH_HLEN + IPV4_MIN_HLEN or ethernet.ethertype(frame, 0) != ETH_P_IP:
            return None
        iph = Ipv4Packet(frame, ETH_HLEN)
        if iph.version != 4 or iph.ihl < 5:
            return None
        th = iph.payload_offset
        return cls(frame[ETH_HLEN:th], frame[th:th + TRACED_TRANSPORT_LEN])

    @property
    def ip(self) -> Ipv4Packet:
        return Ipv4Packet(self.network, 0)

    @property
    def saddr(self) -> str:
        return socket.inet_ntoa(self.ip.saddr_bytes)

    @property
    def daddr(self) -> str:
        return socket.inet_ntoa(self.ip.daddr_bytes)

    @property
    def protocol(self) -> int:
        return self.ip.protocol

    @property
    def fields(self) -> tuple[int, int, int, int]:
        """tot_len, id, frag_off, ttl."""
        ip = self.ip
        return ip.tot_len, ip.id, ip.frag_off, ip.ttl

    @property
    def ports(self) -> tuple[int, int] | None:
        if self.protocol in (IPPROTO_TCP, IPPROTO_UDP) and len(self.transport) >= udp.PORTS.size:
            return udp.PORTS.unpack_from(self.transport)  # TCP's ports are where UDP's are
        return None

    @property
    def icmp(self) -> tuple[int, int, int] | None:
        """ICMP type, code and (for echo) id."""
        if self.protocol != IPPROTO_ICMP or len(self.transport) < wire_icmp.ICMP_HLEN:
            return None
        message = wire_icmp.IcmpMessage(self.transport, 0)
        return message.type, message.code, message.echo_id

    def quoted(self) -> tuple[int, int, int] | None:
        """An ICMP error's quoted header, as far as the trace carries it: tot_len, id,
        protocol (its first 12 bytes, after the 8-byte ICMP header)."""
        message = self.icmp
        if message is None or message[0] not in wire_icmp.ERROR_TYPES:
            return None
        if len(self.transport) < TRACED_TRANSPORT_LEN:
            return None
        inner = Ipv4Packet(self.transport, wire_icmp.QUOTED)
        return inner.tot_len, inner.id, inner.protocol

    def summary(self) -> str:
        """The packet line kfree_skb.py gives a drop, so drops match by it."""
        tot_len, ident, frag_off, ttl = self.fields
        return KfreeSkbEvent(0, 0, "", ETH_P_IP, tot_len, self.saddr, self.daddr, self.protocol,
                             ident, ttl, tot_len, frag_off).summary()

    def with_ends(self, saddr: str, daddr: str, ports: tuple[int, int]) -> Ipv4Header:
        """This header with the addresses and (TCP, UDP) ports NAT writes; the
        checksums are left as they were."""
        network = bytearray(self.network)
        ip = Ipv4Packet(network, 0)
        ip.saddr, ip.daddr = (int.from_bytes(socket.inet_aton(addr), "big") for addr in (saddr, daddr))
        transport = bytearray(self.transport)
        if self.ports is not None:
            udp.PORTS.pack_into(transport, 0, *ports)
        return Ipv4Header(bytes(network), bytes(transport))

    def with_fields(self, writes: Iterable[tuple[str, str]]) -> Ipv4Header:
        """This header with each (field, value) written in turn: `saddr`/`daddr` (a
        dotted quad), `ttl`, `id`; the checksums are left as they were."""
        network = bytearray(self.network)
        ip = Ipv4Packet(network, 0)
        for name, value in writes:
            if name in ("saddr", "daddr"):
                setattr(ip, name, int.from_bytes(socket.inet_aton(value), "big"))
            elif name == "ttl":
                ip.ttl = int(value) & 0xFF
            else:
                ip.id = int(value) & 0xFFFF
        return Ipv4Header(bytes(network), self.transport)

    def endpoint(self, address: str) -> str:
        """`10.0.1.2:80`: the address (`saddr` or `daddr`) and, for TCP and UDP, port
        that NAT rewrites, as the mock's nf_nat_packet() hop shows them."""
        if self.ports is None:
            return self.saddr if address == "saddr" else self.daddr
        if address == "saddr":
            return f"{self.saddr}:{self.ports[0]}"
        return f"{self.daddr}:{self.ports[1]}"


class TraceEvent(NamedTuple):
    """One NFT_MSG_TRACE message, its rule resolved against the ruleset of the time."""

    family: str
    table: str
    chain: str
    kind: int               # NFT_TRACETYPE_*
    verdict: str            # VERDICTS name; a policy's for NFT_TRACETYPE_POLICY
    target: str             # the chain of a jump or goto
    trace_id: int
    header: Ipv4Header | None  # on a base chain's first message
    iif: int
    ct_direction: int | None  # on chains after conntrack, kernels 6.16+
    rule: Rule | None
    handle: int
    base: Chain | None      # the chain as listed (None: not in the listing)

    @property
    def is_trace_table(self) -> bool:
        return is_trace_table(self.family, self.table)

    @property
    def trace_stage(self) -> str | None:
        """The stage of a pj_trace chain; None for the test's chains."""
        return TRACE_CHAIN_STAGES.get((self.family, self.chain)) if self.is_trace_table else None

    def rule_summary(self) -> str:
        return f"rule {self.handle}: {self.rule.text if self.rule else '(no longer listed)'}"


def _verdict_name(code: int) -> str:
    if code >= 0:
        code &= NF_VERDICT_MASK  # NF_QUEUE carries the queue number above
    return VERDICTS.get(code, str(code))


def parse_trace(family: int, attrs: dict[int, memoryview],
                chains: dict[tuple[str, str, str], Chain]) -> TraceEvent:
    family_name = nl.FAMILIES.get(family, str(family))
    table, chain = nl.string(attrs[NFTA_TRACE_TABLE]), nl.string(attrs[NFTA_TRACE_CHAIN])
    kind = nl.be32(attrs[NFTA_TRACE_TYPE])
    verdict, target = "", ""
    if kind == NFT_TRACETYPE_POLICY:
        verdict = _verdict_name(nl.be32(attrs[NFTA_TRACE_POLICY]))
    elif NFTA_TRACE_VERDICT in attrs:
        nested = nl.attributes(attrs[NFTA_TRACE_VERDICT])
        verdict = _verdict_name(struct.unpack("!i", nested[NFTA_VERDICT_CODE])[0])
        target = nl.string(nested[NFTA_VERDICT_CHAIN]) if NFTA_VERDICT_CHAIN in nested else ""
    header = None
    if NFTA_TRACE_NETWORK_HEADER in attrs:
        # a netdev chain sees a frame before ip_rcv_core() checks it: its network header
        # may be shorter than an IPv4 header; the fields it lacks read as 0
        header = Ipv4Header(bytes(attrs[NFTA_TRACE_NETWORK_HEADER]).ljust(IPV4_MIN_HLEN, b"\0"),
                            bytes(attrs.get(NFTA_TRACE_TRANSPORT_HEADER, b"")))
    handle = nl.be64(attrs[NFTA_TRACE_RULE_HANDLE]) if NFTA_TRACE_RULE_HANDLE in attrs else 0
    listed = chains.get((family_name, table, chain))
    return TraceEvent(family_name, table, chain, kind, verdict, target, nl.be32(attrs[NFTA_TRACE_ID]),
                      header, nl.be32(attrs[NFTA_TRACE_IIF]) if NFTA_TRACE_IIF in attrs else 0,
                      attrs[NFTA_TRACE_CT_DIRECTION][0] if NFTA_TRACE_CT_DIRECTION in attrs else None,
                      listed.rules.get(handle) if listed and handle else None, handle, listed)


# packets and their journeys -------------------------------------------------------

@dataclass(eq=False)
class Traversal:
    """One base chain run (pj_trace's too): its messages; the first has the headers."""

    events: list[TraceEvent]

    @property
    def header(self) -> Ipv4Header:
        return self.events[0].header

    @property
    def hidden(self) -> bool:
        return self.events[0].is_trace_table

    @property
    def chain(self) -> Chain:
        first = self.events[0]
        return first.base or _unlisted_chain(first)

    @property
    def stage(self) -> str:
        if self.hidden:
            return self.events[0].trace_stage
        hook = self.chain.hook
        return HOOK_STAGES.get(hook, hook.upper() or "NF")

    @property
    def ct_direction(self) -> int | None:
        return next((e.ct_direction for e in self.events if e.ct_direction is not None), None)

    def endpoints_set(self) -> set[str]:
        """The packet's ends ("saddr", "daddr") a rule that matched in it rewrote with a
        payload statement (`ip daddr set ...`, `udp dport set ...`): that change is the
        rule's, not NAT's."""
        texts = [e.rule.text for e in self.events if e.kind == NFT_TRACETYPE_RULE and e.rule is not None]
        return {address for address, port in (("saddr", "sport"), ("daddr", "dport"))
                if any(f"{address} set " in text or f"{port} set " in text for text in texts)}

    def rewritten(self) -> Ipv4Header | None:
        """The header as the payload statements of its rules that ran left it (None if
        none wrote what a drop's packet line shows): a trace message carries the
        headers of the chain's first message only (nf_tables_trace.c
        nft_trace_notify(): `if (!info->packet_dumped)`), while kfree_skb sees the
        packet as it is when freed, `ip daddr set` and `ip ttl set` included."""
        writes = [match.groups() for e in self.events if e.kind == NFT_TRACETYPE_RULE and e.rule is not None
                  for match in HEADER_WRITE.finditer(e.rule.text)]
        return self.header.with_fields(writes) if writes else None

    def hops(self) -> list[Hop]:
        """Its jumps and gotos, then the base chain with the verdict that ended it."""
        stage, base = self.stage, self.chain
        hops = [Hop(stage, f"{e.family} {e.table} {e.chain}", e.verdict, e.rule_summary())
                for e in self.events if e.verdict in ("JUMP", "GOTO")]
        decisive = [e for e in self.events if e.kind == NFT_TRACETYPE_POLICY or e.verdict in FINAL_VERDICTS]
        last = decisive[-1] if decisive else self.events[-1]
        if last.kind == NFT_TRACETYPE_POLICY:
            summary = "policy"
        elif last.chain != base.name:
            summary = f"chain {last.chain} {last.rule_summary()}"
        else:
            summary = last.rule_summary()
        hops.append(Hop(stage, base.where, last.verdict, summary))
        return hops


@dataclass(eq=False)
class TracedPacket:
    traversals: list[Traversal]
    sent_by_dut: bool
    looped_back: bool = False  # came back in on lo
    journey: Journey | None = None
    past_postrouting: Ipv4Header | None = None  # as POSTROUTING's NAT left it, if it got that far
    past_stage: str = Stage.NF_POSTROUTING  # where that NAT was: INPUT's for a packet dropped on local delivery

    @property
    def first(self) -> Ipv4Header:
        return self.traversals[0].header

    @property
    def last(self) -> Ipv4Header:
        return self.traversals[-1].header

    @property
    def headers(self) -> list[Ipv4Header]:
        """Every header it was seen with, and had after a rule's payload statement."""
        seen = [header for traversal in self.traversals
                for header in (traversal.header, traversal.rewritten()) if header is not None]
        return seen + ([self.past_postrouting] if self.past_postrouting is not None else [])

    def continues_at(self, event: TraceEvent) -> bool:
        """Whether pj_trace's `event` (of this packet's id) is this packet going on:
        from netdev ingress, where it came in, into PREROUTING."""
        return (event.trace_stage == "NF_PREROUTING"
                and all(traversal.stage == "NF_INGRESS" for traversal in self.traversals))

    def hops(self, conntrack: Conntrack) -> list[Hop]:
        """Its chains' hops and the NAT rewrites between them and after the last
        one (`past_postrouting`). A rewrite is named by the conntrack direction its
        chains reported, else by the entry's tuple the packet before it matches."""
        traced = next((t.ct_direction for t in self.traversals if t.ct_direction is not None), None)
        sightings = [(t.header, t.stage) for t in self.traversals]
        if self.past_postrouting is not None:
            sightings.append((self.past_postrouting, self.past_stage))
        hops: list[Hop] = []
        set_by_rules: set[str] = set()
        for i, traversal in enumerate(self.traversals):
            if i:  # a chain's first message may come from a rule that rewrote the packet already
                hops += self._nat_hops(sightings[i - 1], sightings[i], traced, conntrack,
                                       set_by_rules | traversal.endpoints_set())
            if not traversal.hidden:
                hops += traversal.hops()
            set_by_rules = traversal.endpoints_set()
        if self.past_postrouting is not None:
            hops += self._nat_hops(sightings[-2], sightings[-1], traced, conntrack, set_by_rules)
        return hops

    @staticmethod
    def _nat_hops(before: tuple[Ipv4Header, str], after: tuple[Ipv4Header, str], traced: int | None,
                  conntrack: Conntrack, set_by_rules: set[str]) -> list[Hop]:
        if before[0].endpoint("saddr") == after[0].endpoint("saddr") and \
                before[0].endpoint("daddr") == after[0].endpoint("daddr"):
            return []
        direction = traced if traced is not None else conntrack.direction(before[0])
        return nat_hops(*before, *after, direction or 0, set_by_rules)

    def left_as(self, frame: Ipv4Header) -> bool:
        """Whether `frame`, seen leaving a DUT port, is this packet: the same IP ID,
        length and protocol, its TTL the same or one less (forwarded past its last
        chain), at most one end rewritten."""
        last = self.last
        (tot_len, ident, frag_off, ttl), (w_len, w_ident, w_frag, w_ttl) = last.fields, frame.fields
        return ((tot_len, ident, frag_off, last.protocol) == (w_len, w_ident, w_frag, frame.protocol)
                and ttl - w_ttl in (0, 1)
                and (last.endpoint("saddr") == frame.endpoint("saddr")
                     or last.endpoint("daddr") == frame.endpoint("daddr")))


def nat_hops(before: Ipv4Header, before_stage: str, after: Ipv4Header, after_stage: str,
             direction: int, set_by_rules: frozenset[str] | set[str] = frozenset()) -> list[Hop]:
    """The NAT rewrites between two sightings of a packet: at the stage of `before`
    if that manip happens there, else at `after`'s if it happens there, else (a
    source rewritten between OUTPUT and the packet's way back in on lo) at
    POSTROUTING; an ICMP error's rewrite is nf_nat_icmp_reply_translation()'s,
    named by its manip. An end a rule set (`set_by_rules`, Traversal.endpoints_set())
    is no NAT rewrite."""
    hops = []
    icmp = before.icmp
    error = icmp is not None and icmp[0] in wire_icmp.ERROR_TYPES
    for address, stages, names in NAT_MANIPS:
        old, new = before.endpoint(address), after.endpoint(address)
        if old != new and address not in set_by_rules:
            stage = before_stage if before_stage in stages else after_stage if after_stage in stages \
                else Stage.NF_POSTROUTING
            if error:  # an ICMP error of a NATed connection: named by its manip, as the kernel's function does
                hops.append(Hop(stage, "nf_nat_icmp_reply_translation", "DNAT" if address == "daddr" else "SNAT",
                                f"{address} {old} -> {new}"))
            else:
                hops.append(Hop(stage, "nf_nat_packet", names[direction], f"{address} {old} -> {new}"))
    return hops


def _unlisted_chain(event: TraceEvent) -> Chain:
    """A chain gone from the ruleset before its messages were read."""
    return Chain(event.family, event.table, event.chain)


def group_packets(events: list[TraceEvent]) -> list[TracedPacket]:
    """The traced packets in the order they entered, their messages grouped by trace
    id: a pj_trace message starts a new packet unless it is the prerouting of a
    packet that came in through netdev ingress (ids repeat, see the module doc)."""
    packets: list[TracedPacket] = []
    by_id: dict[int, TracedPacket] = {}
    for event in events:
        packet = by_id.get(event.trace_id)
        if event.header is not None:
            if event.is_trace_table and not (packet is not None and packet.continues_at(event)):
                packet = _looped_back(packets, event) or _new_packet(packets, event)
                by_id[event.trace_id] = packet
            elif packet is None:  # its pj_trace messages came before the last reset
                packet = by_id[event.trace_id] = _new_packet(packets, event)
            packet.traversals.append(Traversal([event]))
        elif packet is not None and not (event.kind == NFT_TRACETYPE_RULE and not event.handle):
            packet.traversals[-1].events.append(event)  # a message without a handle ends a chain
    return packets


def _new_packet(packets: list[TracedPacket], event: TraceEvent) -> TracedPacket:
    packet = TracedPacket([], sent_by_dut=event.trace_stage == "NF_OUTPUT")
    packets.append(packet)
    return packet


def _looped_back(packets: list[TracedPacket], event: TraceEvent) -> TracedPacket | None:
    """The DUT's own packet coming back in on `lo` (its IP ID, length and TTL as it
    left; POSTROUTING may have rewritten its addresses)."""
    if event.iif != LOOPBACK_IFINDEX:
        return None
    for packet in reversed(packets):
        if (packet.sent_by_dut and not packet.looped_back
                and (packet.last.fields, packet.last.protocol) == (event.header.fields, event.header.protocol)):
            packet.looped_back = True
            return packet
    return None


def cause_of(packet: TracedPacket, earlier: list[TracedPacket]) -> TracedPacket | None:
    """The packet the DUT answered with `packet` (an ICMP error, an echo reply, a
    TCP reset): the latest earlier one that fits, or None."""
    answers = _answers(packet.first) if packet.sent_by_dut else None
    if answers is None:
        return None
    return next((other for other in reversed(earlier) if any(answers(t.header) for t in other.traversals)), None)


def _answers(answer: Ipv4Header) -> Callable[[Ipv4Header], bool] | None:
    """What `answer` can be an answer to, if it is an answer at all."""
    if (quoted := answer.quoted()) is not None:
        return lambda other: ((other.fields[0], other.fields[1], other.protocol) == quoted
                              and other.saddr == answer.daddr)
    back = (answer.daddr, answer.saddr)
    if answer.icmp and answer.icmp[0] == ICMP_ECHOREPLY:
        return lambda other: (other.icmp is not None and other.icmp[0] == ICMP_ECHO
                              and other.icmp[2] == answer.icmp[2] and (other.saddr, other.daddr) == back)
    if answer.ports and answer.protocol == IPPROTO_TCP and TcpSegment(answer.transport, 0).flags & TCPHDR_RST:
        return lambda other: (other.protocol == IPPROTO_TCP and other.ports == answer.ports[::-1]
                              and (other.saddr, other.daddr) == back)
    return None


def build_journeys(events: list[TraceEvent], drops: list[Drop], frames_out: list[bytes],
                   conntrack: Conntrack | None = None) -> list[Journey]:
    """Journeys of the traced packets, answers nested under their causes, each drop
    attached to its packet; drops of untraced packets follow as journeys of their own.
    `frames_out` are the Ethernet frames that left the DUT's ports, in order;
    `conntrack` the DUT's table, which names the conntrack direction of a packet
    where its trace did not (no chain after conntrack saw it) and the NAT done
    after its last chain (none given: no table, the frames say)."""
    conntrack = conntrack or Conntrack()
    packets = group_packets(events)
    on_the_wire = _frames_of(packets, frames_out)
    dropped = {drop.packet: drop.stage for drop in drops}
    top: list[Journey] = []
    for i, packet in enumerate(packets):
        packet.past_postrouting = _past_postrouting(packet, on_the_wire.get(i), conntrack, dropped)
        if i not in on_the_wire and packet.past_postrouting is not None \
                and dropped.get(packet.past_postrouting.summary()) in LOCAL_DELIVERY:
            packet.past_stage = Stage.NF_INPUT
        packet.journey = Journey(packet=packet.first.summary(), hops=packet.hops(conntrack))
        cause = cause_of(packet, packets[:i])
        if cause is not None:
            cause.journey.children.append(packet.journey)
        else:
            top.append(packet.journey)
    unmatched = [drop for drop in drops if not _attach(drop, packets)]
    return top + [Journey(packet=drop.packet, drop=drop) for drop in unmatched]


class Conntrack:
    """The DUT's conntrack table as the journeys need it, dumped once when first
    asked (a dump walks the host's whole table); `dump` None: no table to read."""

    def __init__(self, dump: Callable[[], list[CtEntry]] | None = None) -> None:
        self._dump = dump
        self._entries: list[CtEntry] | None = None

    def find(self, header: Ipv4Header) -> tuple[CtEntry, int] | None:
        if self._entries is None:
            self._entries = self._dump() if self._dump is not None else []
        return entry_of(self._entries, header)

    def direction(self, header: Ipv4Header) -> int | None:
        found = self.find(header)
        return found[1] if found is not None else None

    def translated(self, header: Ipv4Header) -> Ipv4Header | None:
        """The packet as netfilter's NAT leaves it, None without an entry."""
        found = self.find(header)
        return nat_target(header, *found) if found is not None else None


def entry_of(entries: list[CtEntry], header: Ipv4Header) -> tuple[CtEntry, int] | None:
    """The conntrack entry of a packet and its direction, IP_CT_DIR_ORIGINAL (0) or
    IP_CT_DIR_REPLY (1): the tuple the packet matches, as nf_conntrack_in() finds it,
    else the entry whose NAT the packet is part way through or past (each end as
    its tuple has it or as NAT writes it: a DNAT'd packet in POSTROUTING). TCP and
    UDP match an entry of their protocol by addresses and ports, an ICMP echo or
    echo reply an ICMP entry by addresses and id, anything else (an ICMP error is
    RELATED to the entry of the packet it quotes) any entry by addresses. None if
    no entry fits."""
    for part_translated in (False, True):
        for entry in entries:
            for direction, (this, other) in enumerate(((entry.original, entry.reply), (entry.reply, entry.original))):
                if _fits(header, entry.proto, this, other if part_translated else None):
                    return entry, direction
    return None


def _fits(header: Ipv4Header, proto: str, this: tuple[str, str, int, int],
          other: tuple[str, str, int, int] | None) -> bool:
    """Whether each end of `header` is `this` tuple's or, given `other`, the one NAT
    writes: the other tuple's, swapped."""
    sources, destinations = {(this[0], this[2])}, {(this[1], this[3])}
    if other is not None:
        sources.add((other[1], other[3]))
        destinations.add((other[0], other[2]))
    if (ports := header.ports) is not None:
        return (proto == nl.IP_PROTOCOL_NAMES.get(header.protocol)
                and (header.saddr, ports[0]) in sources and (header.daddr, ports[1]) in destinations)
    if header.saddr not in {addr for addr, _ in sources} or header.daddr not in {addr for addr, _ in destinations}:
        return False
    if (icmp := header.icmp) is not None and icmp[0] in (ICMP_ECHO, ICMP_ECHOREPLY):
        ids = {this[2]} if other is None else {this[2], other[2]}  # an ICMP tuple's id stands for its ports
        return proto == "icmp" and icmp[2] in ids
    return True


def nat_target(header: Ipv4Header, entry: CtEntry, direction: int) -> Ipv4Header:
    """nf_nat_packet(): a packet of `direction` is rewritten to the inverse of the
    other direction's tuple (its source that tuple's destination, and ports alike)."""
    src, dst, sport, dport = entry.reply if direction == 0 else entry.original
    return header.with_ends(dst, src, (dport, sport))


def _past_postrouting(packet: TracedPacket, frame: Ipv4Header | None, conntrack: Conntrack,
                      dropped: dict[str, str]) -> Ipv4Header | None:
    """The packet as POSTROUTING's NAT left it, where it is known to have got that
    far: its frame left the DUT (what netfilter wrote is its conntrack entry's, the
    frame's where it has none), or it was dropped later (TC egress, the qdisc) with
    the headers its entry translates it to. (A packet dropped on local delivery
    with those headers got them from INPUT's NAT: its source, nf_nat_ipv4_fn() at
    NF_INET_LOCAL_IN, for a connection SNATed there; `dropped`: drop stages by
    the headers each drop saw.)"""
    if frame is None and not dropped:
        return None
    translated = conntrack.translated(packet.last)
    if frame is not None:
        return translated or frame
    if translated is not None and translated != packet.last and translated.summary() in dropped:
        return translated
    return None


def _frames_of(packets: list[TracedPacket], frames_out: list[bytes]) -> dict[int, Ipv4Header]:
    """Each packet's frame on the wire (by packet index), paired in order: packets
    and frames both come in the order the kernel handled them."""
    headers = [header for frame in frames_out if (header := Ipv4Header.from_frame(frame)) is not None]
    paired: dict[int, Ipv4Header] = {}
    for i, packet in enumerate(packets):
        match = next((j for j, header in enumerate(headers) if packet.left_as(header)), None)
        if match is not None:
            paired[i] = headers.pop(match)
    return paired


def _attach(drop: Drop, packets: list[TracedPacket]) -> bool:
    """Give `drop` to the first packet without one whose headers match it: a
    NETFILTER_DROP to the packet a rule dropped at that hook, else (conntrack's own
    drops) to one no rule dropped; any other reason to one no rule dropped."""
    def rule_drop_stage(journey: Journey) -> str | None:
        return next((hop.stage for hop in journey.hops if hop.verdict == "DROP"), None)

    unclaimed = [packet.journey for packet in packets if packet.journey.drop is None
                 and any(header.summary() == drop.packet for header in packet.headers)]
    for stage in ([drop.stage, None] if drop.reason == "NETFILTER_DROP" else [None]):
        journey = next((j for j in unclaimed if rule_drop_stage(j) == stage), None)
        if journey is not None:
            journey.drop = drop
            return True
    return False


# the lab's tracer -----------------------------------------------------------------

class NftTrace:
    """nftrace in one lab's DUT namespace: the pj_trace tables kept in place, trace
    messages collected by a reader thread, rule texts looked up when messages are read."""

    def __init__(self, lab: NetnsLab):
        self.lab = lab
        self.rulesets = TRACE_RULESETS if lab.owns_namespace else LAB_TRACE_RULESETS
        self._ruleset_socket = nl.open_socket(lab, (NFNLGRP_NFTABLES,), RULESET_RCVBUF)
        self._ruleset_socket.setblocking(False)
        self._trace_socket = nl.open_socket(lab, (NFNLGRP_NFTRACE,), TRACE_RCVBUF)
        self._trace_socket.setblocking(False)
        self._ct_destroy_socket = nl.open_socket(lab, (NFNLGRP_CONNTRACK_DESTROY,), CT_DESTROY_RCVBUF)
        self._ct_destroy_socket.setblocking(False)
        self._destroyed: list[CtEntry] = []     # conntrack entries destroyed since the last clear()
        self._lock = threading.Lock()
        self._unread: list[bytes] = []          # datagrams not yet parsed
        self._events: list[TraceEvent] = []
        self._lost = 0                          # ENOBUFS: the kernel dropped messages
        self._chains: dict[tuple[str, str, str], Chain] | None = None  # None: to list again
        self._wake, self._wake_writer = os.pipe()
        self._closed = False
        self._install(self.rulesets)
        self._reader = threading.Thread(target=self._read, name="nftrace reader", daemon=True)
        self._reader.start()

    # ruleset ---------------------------------------------------------------------
    def _install(self, families: Iterable[str]) -> None:
        self.lab.run(self.lab.dut, ["nft", "-f", "-"], "".join(self.rulesets[family] for family in families))
        self._ruleset_changes()

    def _ruleset_changes(self) -> set[str]:
        """Read the ruleset notifications; the families whose pj_trace was deleted."""
        datagrams, overflowed = _drain(self._ruleset_socket)
        if overflowed:  # notifications were lost: look at the ruleset itself
            self._chains = None
            return {family for family in TRACE_RULESETS if not self._installed(family)}
        deleted = set()
        for datagram in datagrams:
            for subsystem, message, body in nl.messages(datagram):
                if subsystem != nl.NFNL_SUBSYS_NFTABLES:
                    continue
                if message == NFT_MSG_NEWGEN:
                    self._chains = None
                elif message == NFT_MSG_DELTABLE:
                    family = nl.FAMILIES.get(nl.family_of(body), "")
                    name = nl.body_attributes(body).get(NFTA_TABLE_NAME)
                    if name is not None and is_trace_table(family, nl.string(name)):
                        deleted.add(family)
        return deleted

    def _installed(self, family: str) -> bool:
        try:
            self.lab.run(self.lab.dut, ["nft", "list", "table", family, TRACE_TABLE])
        except CommandError:
            return False
        return True

    def before_ruleset_command(self) -> None:
        """Read what was traced so far against the ruleset it ran through."""
        self._ruleset_changes()
        self._parse_unread()

    def after_ruleset_command(self) -> None:
        """Put back the pj_trace tables the command deleted (`nft flush ruleset`)."""
        if deleted := self._ruleset_changes():
            self._install(deleted)

    @contextmanager
    def untraced(self) -> Iterator[None]:
        """Trace nothing while the block runs (a traffic run: tracing costs the kernel a
        netlink message per chain and rule each packet crosses): the pj_trace tables
        are deleted, and put back after."""
        self.before_ruleset_command()
        self.lab.run(self.lab.dut, ["nft", "-f", "-"],
                     "".join(f"delete table {family} {TRACE_TABLE}\n" for family in TRACE_RULESETS))
        self._ruleset_changes()
        try:
            yield
        finally:
            self._install(self.rulesets)

    def chains(self) -> dict[tuple[str, str, str], Chain]:
        if self._chains is None:
            self._chains = parse_ruleset(self.lab.run(self.lab.dut, ["nft", "-a", "list", "ruleset"]))
        return self._chains

    # trace messages --------------------------------------------------------------
    def _read(self) -> None:
        while not self._closed:
            ready, _, _ = select.select([self._trace_socket, self._wake], [], [])
            if self._trace_socket in ready:
                with self._lock:
                    self._drain_trace_socket()

    def _drain_trace_socket(self) -> None:
        """With the lock held, so messages keep their order."""
        while True:
            try:
                self._unread.append(self._trace_socket.recv(nl.RECV_SIZE))
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self._lost += 1

    def _parse_unread(self) -> None:
        with self._lock:
            self._drain_trace_socket()
            unread, self._unread = self._unread, []
        if not unread:
            return
        chains = self.chains()
        for datagram in unread:
            for subsystem, message, body in nl.messages(datagram):
                if (subsystem, message) == (nl.NFNL_SUBSYS_NFTABLES, NFT_MSG_TRACE):
                    self._events.append(parse_trace(nl.family_of(body), nl.body_attributes(body), chains))

    def journeys(self, drops: list[Drop], frames_out: list[bytes],
                 conntrack: Callable[[], list[CtEntry]] | None) -> list[Journey]:
        """Journeys of everything traced up to now (the caller synced the DUT first),
        `frames_out` the frames that left the DUT since the trace was last cleared,
        `conntrack` reads the DUT's conntrack table (None: the DUT cannot)."""
        self._ruleset_changes()
        self._parse_unread()
        if self._lost:
            raise TargetError(f"the nft trace lost messages ({self._lost} overflows of its "
                              f"{TRACE_RCVBUF >> 20} MiB socket buffer): too many packets were "
                              "traced between two looks; reset() the target between bursts")
        destroyed = self._destroyed_entries()
        table = None if conntrack is None else (lambda: conntrack() + destroyed)
        return build_journeys(self._events, drops, frames_out, Conntrack(table))

    def _destroyed_entries(self) -> list[CtEntry]:
        """The IPv4 entries ctnetlink reported destroyed since the last clear(), oldest
        first (an overflowed socket loses some: the journeys then lack their NAT names)."""
        datagrams, _ = _drain(self._ct_destroy_socket)
        for datagram in datagrams:
            for subsystem, message, body in nl.messages(datagram):
                if (subsystem, message) == (nl.NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE) \
                        and nl.family_of(body) == socket.AF_INET:
                    self._destroyed.append(nl.ct_entry(nl.body_attributes(body)))
        return self._destroyed

    def clear(self) -> None:
        with self._lock:
            self._drain_trace_socket()
            self._unread.clear()
        self._events.clear()
        self._lost = 0
        _drain(self._ct_destroy_socket)
        self._destroyed = []

    def close(self) -> None:
        """The sockets close with the lab. The tables go with its namespace, or where
        the namespace outlives the lab (a DUT's own) are deleted here: `add` first,
        so that a table the test deleted last does not fail the batch."""
        if self._closed:
            return
        self._closed = True
        os.write(self._wake_writer, b"x")
        self._reader.join()
        os.close(self._wake)
        os.close(self._wake_writer)
        if not self.lab.owns_namespace:
            self.lab.run(self.lab.dut, ["nft", "-f", "-"], "".join(
                f"add table {family} {TRACE_TABLE}\ndelete table {family} {TRACE_TABLE}\n" for family in TRACE_RULESETS))


def _drain(sock: socket.socket) -> tuple[list[bytes], bool]:
    """The datagrams queued on a non-blocking socket, and whether the kernel had to
    drop some (ENOBUFS)."""
    datagrams, overflowed = [], False
    while True:
        try:
            datagrams.append(sock.recv(nl.RECV_SIZE))
        except BlockingIOError:
            return datagrams, overflowed
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            overflowed = True
