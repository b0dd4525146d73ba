"""nf_tables expressions: what a rule does, compiled once for the datapath.

The kernel runs a rule as a list of expressions over registers (nft_payload,
nft_meta, nft_ct, nft_fib, nft_bitwise, nft_cmp, nft_range, nft_lookup,
nft_immediate, nft_counter, nft_limit, nft_log, nft_nat, nft_masq, nft_redir,
nft_reject_ipv4, nft_reject_inet, nft_notrack; net/netfilter/, and for IPv6
nft_fib_ipv6.c, nft_exthdr.c's ipv6 loads in nft_exthdr.py). An IPv6 packet's
pktinfo (its transport header past the extension headers) is
nft_set_pktinfo_ipv6()'s. Here each statement of a rule is one object that
knows
- `compile(ctx)`: a closure `f(pkt) -> None | verdict` built once per commit
  that reads the packet's bytes in place (None: go on with the next
  expression; NFT_BREAK: the rule does not match; else a verdict code, with
  a jump target left in `pkt.jump`);
- `text(pctx)`: how `nft list` prints it (nftables src/statement.c,
  expression.c, after netlink_delinearize.c's postprocessing).
`rule_text()` prints a whole rule the way nft 1.0.6 delinearizes it: implicit
protocol dependencies (`meta l4proto tcp` before `tcp dport`) are left out,
and `th` fields are named after the protocol matched before them.
"""
from __future__ import annotations

import copy
import struct
from dataclasses import dataclass, field

from harness.mockkernel.core.skbuff import SkBuff
from harness.mockkernel.ipv4 import route
from harness.mockkernel.ipv6.exthdrs_core import ipv6_find_hdr
from harness.mockkernel.ipv6 import route as route6
from harness.mockkernel.ipv6.ip6_fib import RTF_ANYCAST, RTF_LOCAL, RTF_REJECT
from harness.mockkernel.net import (RT_TABLE_LOCAL, RTN_ANYCAST, RTN_BROADCAST, RTN_LOCAL, RTN_MULTICAST,
                                    RTN_UNICAST, RTN_UNREACHABLE)
from harness.mockkernel.netfilter import nf_nat, nf_reject
from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.core import (NF_ACCEPT, NF_DROP, NF_QUEUE, NF_STOLEN, NF_INET_FORWARD,
                                               NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT, NFPROTO_IPV4, NFPROTO_IPV6,
                                               NFPROTO_NETDEV, NF_INET_POST_ROUTING, NF_INET_PRE_ROUTING)
from harness.mockkernel.netfilter.nf_conntrack import IP_CT_IS_REPLY, IP_CT_UNTRACKED, UNTRACKED, ct_direction
from harness.mockkernel.netfilter.nf_nat_range import NatRange
from harness.mockkernel.netfilter.nft_set import CATCHALL, NftSet, format_elements, lookup_fn
from harness.mockkernel.wire import ipv4
from harness.mockkernel.wire.arp import ARPHRD_ETHER
from harness.mockkernel.wire import ipv6 as ipv6_wire
from harness.mockkernel.wire.ethernet import ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, ETHERTYPE
from harness.mockkernel.wire.ipv4 import HEADER_LEN, IP_OFFSET, PKTINFO_FIELDS
from harness.mockkernel.wire.ipv6 import IPV6_HLEN, Ipv6Packet

# include/uapi/linux/netfilter/nf_tables.h enum nft_verdicts
NFT_CONTINUE, NFT_BREAK, NFT_JUMP, NFT_GOTO, NFT_RETURN = -1, -2, -3, -4, -5
VERDICT_CODES = {"accept": NF_ACCEPT, "drop": NF_DROP, "continue": NFT_CONTINUE, "return": NFT_RETURN,
                 "jump": NFT_JUMP, "goto": NFT_GOTO}
VERDICT_NAMES = {NF_ACCEPT: "ACCEPT", NF_DROP: "DROP", NF_STOLEN: "STOLEN", NF_QUEUE: "QUEUE", NFT_JUMP: "JUMP",
                 NFT_GOTO: "GOTO", NFT_RETURN: "RETURN", NFT_CONTINUE: "CONTINUE"}
L4PROTOS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}


_pktinfo_fields = PKTINFO_FIELDS.unpack_from  # bound once: a pktinfo is built for every chain a packet runs


class NftPktinfo:
    """struct nft_pktinfo: the packet as a chain sees it. `thoff` is -1 when
    there is no transport header to read (neither IPv4 nor IPv6), which makes
    every transport-header load fail; `fragoff` is the fragment offset, which
    only the loads nft_payload_eval() makes refuse (see payload_loader).
    An IPv6 packet's transport header is where ipv6_find_hdr() finds it
    (nft_set_pktinfo_ipv6()); a non-first fragment's thoff is 0 there, the
    network header (the kernel leaves it unset)."""

    __slots__ = ("skb", "state", "buf", "nh", "thoff", "fragoff", "tprot", "end", "jump")

    def __init__(self, skb: SkBuff, state) -> None:
        self.skb, self.state, self.jump = skb, state, None
        buf = self.buf = skb.buf
        nh = self.nh = skb.network_header
        self.end = skb.tail
        if skb.protocol not in (ETH_P_IP, 0):
            if skb.protocol == ETH_P_IPV6 and state.pf in (NFPROTO_IPV6, NFPROTO_NETDEV):
                self._set_ipv6()
                return
            self.tprot, self.thoff, self.fragoff = None, -1, 0  # nft_set_pktinfo_unspec()
            return
        ver_ihl, frag_off, self.tprot = _pktinfo_fields(buf, nh)
        if ver_ihl >> 4 != 4:
            self.tprot, self.thoff, self.fragoff = None, -1, 0
            return
        self.fragoff = frag_off & IP_OFFSET
        self.thoff = nh + HEADER_LEN[ver_ihl]

    def _set_ipv6(self) -> None:
        """__nft_set_pktinfo_ipv6_validate(): version 6, a payload length the
        packet holds, an upper-layer header ipv6_find_hdr() finds; else unspec."""
        buf, nh = self.buf, self.nh
        if nh + IPV6_HLEN > self.end:
            self.tprot, self.thoff, self.fragoff = None, -1, 0
            return
        header = Ipv6Packet(buf, nh)
        if header.version == 6 and header.payload_len + IPV6_HLEN <= self.end - nh:
            tprot, thoff, fragoff, _ = ipv6_find_hdr(buf, nh, self.end, -1)
            if tprot >= 0:  # a non-first fragment: the kernel leaves thoff 0, the network header
                self.tprot, self.thoff, self.fragoff = tprot, nh if fragoff else thoff, fragoff
                return
        self.tprot, self.thoff, self.fragoff = None, -1, 0


@dataclass
class CompileCtx:
    """What compiling a rule may refer to."""

    net: object
    family: str
    chain_id: str  # "<family> <table> <chain>", for journey hops
    chains: dict  # name -> runtime chain (jump targets)


@dataclass
class PrintCtx:
    """nft's protocol context while printing a rule: the transport protocol a
    previous match established names `th` fields."""

    l4: str | None = None
    now: float = 0.0
    stateless: bool = False  # `nft -s`: counters without their values
    family: str = "ip"


# ---------------------------------------------------------------- selectors

@dataclass(frozen=True)
class Field:
    """A header field template (nftables src/proto.c)."""

    proto: str  # ip, tcp, udp, icmp, th
    name: str
    offset: int  # bytes from the header start
    bits: int
    dtype: types.Datatype
    mask: int = 0  # sub-byte fields: the bits of the loaded byte
    shift: int = 0

    def __deepcopy__(self, memo):
        return self

    @property
    def byte_aligned(self) -> bool:
        return not self.mask and self.bits % 8 == 0


def _fields(proto: str, *specs) -> dict[str, Field]:
    """Field templates; a plain integer field narrower than 32 bits takes its
    own width, the range nft checks its values against (evaluate.c
    expr_evaluate_integer(): "Value 16 exceeds valid range 0-15")."""
    return {spec[0]: Field(proto, *_sized(spec)) for spec in specs}


def _sized(spec: tuple) -> tuple:
    name, offset, bits, dtype = spec[:4]
    if dtype is types.integer and bits < dtype.size:
        dtype = types.IntegerType("integer", bits, "integer")
    return (name, offset, bits, dtype) + tuple(spec[4:])


PAYLOAD_FIELDS = {
    "ip": _fields("ip", ("version", 0, 4, types.integer, 0xF0, 4), ("hdrlength", 0, 4, types.integer, 0x0F, 0),
                  ("dscp", 1, 6, types.dscp, 0xFC, 2), ("ecn", 1, 2, types.ecn, 0x03, 0),
                  ("length", 2, 16, types.length16), ("id", 4, 16, types.length16),
                  ("frag-off", 6, 16, types.length16), ("ttl", 8, 8, types.ttl),
                  ("protocol", 9, 8, types.inet_proto), ("checksum", 10, 16, types.length16),
                  ("saddr", 12, 32, types.ipv4_addr), ("daddr", 16, 32, types.ipv4_addr)),
    "ip6": _fields("ip6", ("version", 0, 4, types.integer, 0xF0, 4),
                   ("dscp", 0, 6, types.dscp, 0x0FC0, 6), ("ecn", 1, 2, types.ecn, 0x30, 4),
                   ("flowlabel", 1, 20, types.integer, 0x0FFFFF, 0), ("length", 4, 16, types.length16),
                   ("nexthdr", 6, 8, types.inet_proto), ("hoplimit", 7, 8, types.ttl),
                   ("saddr", 8, 128, types.ipv6_addr), ("daddr", 24, 128, types.ipv6_addr)),
    "tcp": _fields("tcp", ("sport", 0, 16, types.inet_service), ("dport", 2, 16, types.inet_service),
                   ("sequence", 4, 32, types.integer), ("ackseq", 8, 32, types.integer),
                   ("doff", 12, 4, types.integer, 0xF0, 4), ("flags", 13, 8, types.tcp_flag),
                   ("window", 14, 16, types.length16), ("checksum", 16, 16, types.length16),
                   ("urgptr", 18, 16, types.length16)),
    "udp": _fields("udp", ("sport", 0, 16, types.inet_service), ("dport", 2, 16, types.inet_service),
                   ("length", 4, 16, types.length16), ("checksum", 6, 16, types.length16)),
    "icmp": _fields("icmp", ("type", 0, 8, types.icmp_type), ("code", 1, 8, types.icmp_code),
                    ("checksum", 2, 16, types.length16), ("id", 4, 16, types.length16),
                    ("sequence", 6, 16, types.length16), ("gateway", 4, 32, types.integer),
                    ("mtu", 6, 16, types.length16)),
    "icmpv6": _fields("icmpv6", ("type", 0, 8, types.icmpv6_type), ("code", 1, 8, types.icmpv6_code),
                      ("checksum", 2, 16, types.length16), ("parameter-problem", 4, 32, types.integer),
                      ("mtu", 4, 32, types.integer), ("id", 4, 16, types.length16),
                      ("sequence", 6, 16, types.length16), ("max-delay", 4, 16, types.length16)),
    "th": _fields("th", ("sport", 0, 16, types.inet_service), ("dport", 2, 16, types.inet_service)),
}
# the link-layer header (NFT_PAYLOAD_LL_HEADER, src/proto.c proto_eth and proto_vlan):
# offsets from the MAC header; the 802.1Q tag follows the MAC addresses, its TCI
# fields are masks of its first two bytes (a `mask` wider than a byte loads two)
LINK_PROTOS = ("ether", "vlan")
PAYLOAD_FIELDS["ether"] = _fields("ether", ("daddr", 0, 48, types.ether_addr), ("saddr", 6, 48, types.ether_addr),
                                  ("type", 12, 16, types.ethertype))
PAYLOAD_FIELDS["vlan"] = _fields("vlan", ("pcp", 14, 3, types.IntegerType("integer", 3, "integer"), 0xE0, 5),
                                 ("dei", 14, 1, types.IntegerType("integer", 1, "integer"), 0x10, 4),
                                 ("id", 14, 12, types.IntegerType("integer", 12, "integer"), 0x0FFF, 0),
                                 ("type", 16, 16, types.ethertype))
PAYLOAD_FIELDS["vlan"]["cfi"] = PAYLOAD_FIELDS["vlan"]["dei"]  # the bit's old name; nft lists it as dei
# src/proto.c proto_arp: the ARP header at the network header, its Ethernet/IPv4 addresses after it
PAYLOAD_FIELDS["arp"] = _fields("arp", ("htype", 0, 16, types.length16), ("ptype", 2, 16, types.ethertype),
                                ("hlen", 4, 8, types.ttl), ("plen", 5, 8, types.ttl),
                                ("operation", 6, 16, types.arp_op), ("saddr ether", 8, 48, types.ether_addr),
                                ("saddr ip", 14, 32, types.ipv4_addr), ("daddr ether", 18, 48, types.ether_addr),
                                ("daddr ip", 24, 32, types.ipv4_addr))
NETWORK_PROTOS = ("ip", "ip6", "arp")
ETHER_TYPE = PAYLOAD_FIELDS["ether"]["type"]
VLAN_TYPE = PAYLOAD_FIELDS["vlan"]["type"]
ETH_P_8021AD = 0x88A8
FIELD_ALIASES = {("icmpv6", "param-problem"): "parameter-problem"}  # the token, and proto.c's field name
# proto.c's echo fields (icmp_dep ICMP_ECHO / ICMP6_ECHO): nft matches the echo types before them
ECHO_FIELDS = {("icmp", "id"), ("icmp", "sequence"), ("icmpv6", "id"), ("icmpv6", "sequence")}
ECHO_TYPES = {"icmp": (0, 8), "icmpv6": (128, 129)}
# proto.c's icmp_dep of each field and payload.c icmp_dep_to_type(): the type a field needs
# (ICMP_ECHO, ICMP_REDIRECT, ICMP_DEST_UNREACH; ICMP6_ECHO_REQUEST, ICMP6_PACKET_TOO_BIG,
# MLD_LISTENER_QUERY, ICMP6_PARAM_PROB)
ICMP_DEP_TYPES = {("icmp", "id"): 8, ("icmp", "sequence"): 8, ("icmp", "gateway"): 5, ("icmp", "mtu"): 3,
                  ("icmpv6", "id"): 128, ("icmpv6", "sequence"): 128, ("icmpv6", "mtu"): 2,
                  ("icmpv6", "max-delay"): 130, ("icmpv6", "parameter-problem"): 4}


def icmp_th_dep_type(proto: str, icmp_type: int) -> int:
    """The type payload.c payload_expr_pctx_update() keeps for a match of it:
    an echo reply counts as the echo request."""
    return {("icmp", 0): 8, ("icmpv6", 129): 128}.get((proto, icmp_type), icmp_type)


def register_payload_protocol(proto: str, number: int, fields: dict[str, Field]) -> None:
    """A transport header nft names (a src/proto.c proto_desc of
    PROTO_BASE_TRANSPORT_HDR): its fields, and the protocol number the
    `meta l4proto` dependency nft puts before them matches."""
    PAYLOAD_FIELDS[proto] = fields
    L4PROTOS[proto] = number


class Selector:
    """The left-hand side of a match: something loaded into a register."""

    dtype: types.Datatype
    is_binop = False  # nft_bitwise over a load (nft_bitwise.py): nft prints `==` after it

    def __deepcopy__(self, memo):  # selectors hold no state
        return self

    def loaded(self) -> "Selector":
        """What is loaded from the packet, under any bitwise operations on it."""
        return self

    def text(self, pctx: PrintCtx) -> str:
        raise NotImplementedError

    def load(self, ctx: CompileCtx):
        """A closure pkt -> int (or str), or None when the load fails (NFT_BREAK)."""
        raise NotImplementedError


class Payload(Selector):
    """nft_payload: one field, or adjacent fields merged into one load."""

    def __init__(self, fields: tuple[Field, ...]):
        self.fields = fields
        first = fields[0]
        self.proto, self.offset = first.proto, first.offset
        self.bits = sum(f.bits for f in fields)
        self.dtype = first.dtype if len(fields) == 1 else types.IntegerType("integer", self.bits, "integer")
        self.link = first.proto in LINK_PROTOS
        self.transport = not self.link and first.proto not in NETWORK_PROTOS
        self.base = 0 if self.link else 2 if self.transport else 1  # enum nft_payload_bases

    @property
    def field(self) -> Field:
        return self.fields[0]

    def proto_name(self, pctx: PrintCtx) -> str:
        if self.proto == "th" and pctx.l4 in ("tcp", "udp"):
            return pctx.l4
        return self.proto

    def text(self, pctx: PrintCtx) -> str:
        return f"{self.proto_name(pctx)} {self.field.name}"

    def load(self, ctx: CompileCtx):
        off, nbytes, fld = self.offset, (self.bits + 7) // 8, self.field
        mask, shift = fld.mask, fld.shift
        if self.link:
            return link_loader(off, (mask.bit_length() + 7) // 8 if mask else nbytes, mask, shift)
        if self.proto == "arp":
            return arp_loader(off, nbytes)
        if mask and not self.transport and mask <= 0xFF:
            def load_bits(pkt):
                return (pkt.buf[pkt.nh + off] & mask) >> shift if pkt.tprot is not None else None
            return load_bits
        if mask:  # nft_payload of the bytes the field spans, then nft_bitwise
            load = payload_loader(self.transport, off, (mask.bit_length() + 7) // 8)

            def load_masked(pkt):
                value = load(pkt)
                return None if value is None else (value & mask) >> shift
            return load_masked
        return payload_loader(self.transport, off, nbytes)


# nft_payload loads of 1, 2 or 4 bytes (nearly every field) are one struct
# load each: a slice and int.from_bytes() cost about three times as much
_UINT_UNPACK = {1: struct.Struct("!B").unpack_from, 2: struct.Struct("!H").unpack_from,
                4: struct.Struct("!I").unpack_from}


def payload_fast(off: int, nbytes: int) -> bool:
    """nft_payload_select_ops() picks nft_payload_fast_ops for a load of 1, 2
    or 4 bytes aligned to its size. nft_payload_fast_eval() reads a
    transport header without checking the fragment offset (seen on the lab:
    `udp dport 53` matches a non-first fragment's first bytes);
    nft_payload_eval() refuses it."""
    return nbytes in (1, 2, 4) and off % nbytes == 0


def payload_loader(transport: bool, off: int, nbytes: int):
    """nft_payload_eval() (or _fast_eval()) of `nbytes` at `off` of the
    network or the transport header, as a big-endian integer; None when that
    header is not there (a non-first fragment's, unless the load is fast) or
    the packet ends before the bytes do."""
    unpack = _UINT_UNPACK.get(nbytes)
    if unpack is None:
        return _payload_bytes_loader(transport, off, nbytes)
    if transport:
        refuses_fragments = not payload_fast(off, nbytes)

        def load_th(pkt):
            start = pkt.thoff + off
            if pkt.thoff < 0 or start + nbytes > pkt.end or refuses_fragments and pkt.fragoff:
                return None
            return unpack(pkt.buf, start)[0]
        return load_th

    def load_nh(pkt):
        start = pkt.nh + off
        if pkt.tprot is None or start + nbytes > pkt.end:  # a truncated header, at netdev ingress
            return None
        return unpack(pkt.buf, start)[0]
    return load_nh


def link_bytes(pkt, off: int, nbytes: int) -> bytes | None:
    """nft_payload_eval() at NFT_PAYLOAD_LL_HEADER: `nbytes` at `off` of the MAC
    header (the bridge family's frames keep it in front of the network header),
    None when the frame ends before them. A VLAN tag held out of band
    (skb->vlan_proto, vlan_tci: taken off as the frame was received) is shown
    where it was in the frame, after the MAC addresses, as
    nft_payload_copy_vlan() shows it."""
    skb = pkt.skb
    start = skb.mac_header + off
    if skb.vlan_proto:
        tag = skb.vlan_proto.to_bytes(2, "big") + skb.vlan_tci.to_bytes(2, "big")
        addresses_end = skb.mac_header + ETHERTYPE
        tagged = bytes(pkt.buf[skb.mac_header:addresses_end]) + tag + bytes(pkt.buf[addresses_end:pkt.end])
        return tagged[off:off + nbytes] if off + nbytes <= len(tagged) else None
    return None if start + nbytes > pkt.end else bytes(pkt.buf[start:start + nbytes])


def link_loader(off: int, nbytes: int, mask: int = 0, shift: int = 0):
    """link_bytes() as a big-endian integer, masked and shifted for a TCI field."""
    def load_ll(pkt):
        loaded = link_bytes(pkt, off, nbytes)
        if loaded is None:
            return None
        value = int.from_bytes(loaded, "big")
        return (value & mask) >> shift if mask else value
    return load_ll


def arp_loader(off: int, nbytes: int):
    """nft_payload_eval() at NFT_PAYLOAD_NETWORK_HEADER for an ARP header: an
    ARP packet has no transport protocol (nft_set_pktinfo_unspec()), and the
    network header load does not ask for one; None past the packet's end."""
    def load_arp(pkt):
        start = pkt.nh + off
        if start + nbytes > pkt.end:
            return None
        return int.from_bytes(pkt.buf[start:start + nbytes], "big")
    return load_arp


def _payload_bytes_loader(transport: bool, off: int, nbytes: int):
    """payload_loader() for other sizes (IPv6 addresses, 3 merged bytes): never fast."""
    if transport:
        def load_th_bytes(pkt):
            start = pkt.thoff + off
            if pkt.thoff < 0 or pkt.fragoff or start + nbytes > pkt.end:
                return None
            return int.from_bytes(pkt.buf[start:start + nbytes], "big")
        return load_th_bytes

    def load_nh_bytes(pkt):
        start = pkt.nh + off
        return None if pkt.tprot is None else int.from_bytes(pkt.buf[start:start + nbytes], "big")
    return load_nh_bytes


class Meta(Selector):
    """nft_meta: packet metadata (net/netfilter/nft_meta.c)."""

    UNQUALIFIED = ("iif", "oif", "iifname", "oifname")
    TYPES = {"mark": types.mark, "l4proto": types.inet_proto, "nfproto": types.nfproto,
             "protocol": types.ethertype, "pkttype": types.pkttype, "iif": types.integer,
             "oif": types.integer, "iifname": types.ifname, "oifname": types.ifname,
             "length": types.integer, "nftrace": types.integer, "priority": types.classid}

    def __init__(self, key: str, dtype: types.Datatype | None = None):
        self.key, self.dtype = key, dtype or self.TYPES[key]  # iif/oif: the namespace's devices

    def text(self, pctx: PrintCtx) -> str:
        return self.key if self.key in self.UNQUALIFIED else f"meta {self.key}"

    def load(self, ctx: CompileCtx):
        return getattr(self, f"_load_{self.key}")(ctx)

    @staticmethod
    def _load_mark(ctx):
        return lambda pkt: pkt.skb.mark

    @staticmethod
    def _load_priority(ctx):
        return lambda pkt: pkt.skb.priority

    @staticmethod
    def _load_l4proto(ctx):
        return lambda pkt: pkt.tprot

    @staticmethod
    def _load_nfproto(ctx):
        return lambda pkt: pkt.state.pf

    @staticmethod
    def _load_protocol(ctx):
        return lambda pkt: pkt.skb.protocol or ETH_P_IP

    @staticmethod
    def _load_pkttype(ctx):
        return lambda pkt: pkt.skb.pkt_type

    @staticmethod
    def _load_length(ctx):
        return lambda pkt: pkt.end - pkt.nh

    @staticmethod
    def _load_iif(ctx):
        return lambda pkt: pkt.state.in_dev.ifindex if pkt.state.in_dev is not None else 0

    @staticmethod
    def _load_oif(ctx):
        return lambda pkt: pkt.state.out_dev.ifindex if pkt.state.out_dev is not None else 0

    @staticmethod
    def _load_iifname(ctx):
        return lambda pkt: pkt.state.in_dev.name if pkt.state.in_dev is not None else ""

    @staticmethod
    def _load_oifname(ctx):
        return lambda pkt: pkt.state.out_dev.name if pkt.state.out_dev is not None else ""


class MetaBridge(Meta):
    """nft_meta_bridge.c's keys (ibrname, obrname: the bridge of the input or
    output port; ibrpvid, ibrvproto: its PVID and VLAN protocol). The lab's
    kernel is built without CONFIG_NFT_BRIDGE_META, so nft_meta_get_init()
    refuses them with EOPNOTSUPP in every family; so does the mock kernel
    (nf_tables.py), and they are never compiled."""

    TYPES = {"ibrname": types.ifname, "obrname": types.ifname, "ibrpvid": types.length16,
             "ibrvproto": types.ethertype}


def ct_state_bits(pkt) -> int:
    """NF_CT_STATE_BIT(ctinfo), or the invalid/untracked bits (nft_ct_get_eval)."""
    skb = pkt.skb
    ct = skb.nfct
    if ct is None:
        return 1
    if ct is UNTRACKED:
        return 64
    return 1 << (skb.ctinfo % IP_CT_IS_REPLY + 1)


def _tracked(skb: SkBuff):
    ct = skb.nfct
    return None if ct is None or ct is UNTRACKED else ct


class Ct(Selector):
    """nft_ct: the packet's conntrack entry (net/netfilter/nft_ct.c)."""

    TYPES = {"state": types.ct_state, "status": types.ct_status, "mark": types.mark,
             "direction": types.ct_dir}

    def __init__(self, key: str):
        self.key, self.dtype = key, self.TYPES[key]

    def text(self, pctx: PrintCtx) -> str:
        return f"ct {self.key}"

    def load(self, ctx: CompileCtx):
        if self.key == "state":
            return ct_state_bits
        if self.key == "direction":
            return lambda pkt: None if _tracked(pkt.skb) is None else ct_direction(pkt.skb.ctinfo)
        attr = self.key

        def load_ct(pkt):
            ct = _tracked(pkt.skb)
            return None if ct is None else getattr(ct, attr)
        return load_ct


class CtAddr(Ct):
    """nft_ct's NFT_CT_SRC_IP/DST_IP/SRC_IP6/DST_IP6 (NFT_CT_SRC/DST, the key
    nft puts for `ct original saddr` in an ip or ip6 table, loads the same): an
    address of the entry's tuple in one direction; an entry of the other family
    breaks the rule (nft_ct_get_eval() checks nf_ct_l3num()). `bare_loc` is
    where `ct original saddr` was written without ip or ip6 (NFT_CT_SRC/DST)."""

    bare_loc = None

    def __init__(self, direction: str, family: str, field: str):
        self.key = f"{direction} {family} {field}"
        self.direction, self.family, self.field = direction, family, field
        self.dtype = types.ipv4_addr if family == "ip" else types.ipv6_addr

    def text(self, pctx: PrintCtx) -> str:
        return f"ct {self.key}"

    def ct_json(self) -> dict:
        key = f"{self.family} {self.field}" if self.bare_loc is None else self.field  # json.c: the template's name
        return {"key": key, "dir": self.direction}

    def load(self, ctx: CompileCtx):
        reply, source, ipv4 = self.direction == "reply", self.field == "saddr", self.family == "ip"

        def load_addr(pkt):
            ct = _tracked(pkt.skb)
            if ct is None:
                return None
            t = ct.reply if reply else ct.original
            addr = t.src if source else t.dst
            if (addr.__class__ is int) != ipv4:
                return None
            return addr if ipv4 else int.from_bytes(addr, "big")
        return load_addr


# net/netfilter/nft_fib.c nft_fib_validate() (this kernel, 6.18): the hooks a fib lookup may run at,
# by its result; an address type by the device flag
FIB_OIF_HOOKS = frozenset({"prerouting", "input", "forward"})
FIB_TYPE_HOOKS = {"iif": frozenset({"prerouting", "input", "forward"}),
                  "oif": frozenset({"output", "postrouting", "forward"}),
                  None: frozenset({"prerouting", "input", "forward", "output", "postrouting"})}


def fib_refused(stmt: "Stmt", family: str, hook: str) -> bool:
    """nft_fib_validate(): a fib lookup in a chain at a hook it cannot run at
    (`fib daddr . oif type local` in prerouting) is refused with EOPNOTSUPP."""
    if family not in ("ip", "ip6", "inet"):
        return False
    for part in selector_parts(stmt):
        if isinstance(part, Fib):
            if part.result in ("oif", "oifname"):
                hooks = FIB_OIF_HOOKS
            else:
                hooks = FIB_TYPE_HOOKS["iif" if "iif" in part.flags else "oif" if "oif" in part.flags else None]
            if hook not in hooks:
                return True
    return False


class Fib(Selector):
    """nft_fib (net/netfilter/nft_fib.c, nft_fib_ipv4.c, nft_fib_ipv6.c): a FIB
    lookup for the packet's source or destination (`flags`, in
    NFTA_FIB_F_* bit order), giving the route's type, output device or its
    name (`result`); with `present` only whether a device was found
    (`fib saddr . iif oif missing`). nft_fib_inet_eval() picks the IPv4 or
    IPv6 lookup by the hook's family. IPv4's `fib saddr|daddr type` is
    inet_dev_addr_type(): broadcast, multicast, else the local table's type,
    else unicast, an RTN_* number as fib_addrtype's symbols are."""

    def __init__(self, flags: tuple, result: str = "type", dtype: types.Datatype = types.fib_addrtype,
                 present: bool = False):
        self.flags, self.result, self.dtype, self.present = flags, result, dtype, present

    @property
    def addr(self) -> str:
        return "saddr" if "saddr" in self.flags else "daddr"

    def text(self, pctx: PrintCtx) -> str:
        return f"fib {' . '.join(self.flags)} {self.result}"

    def load(self, ctx: CompileCtx):
        fib4 = self._fib4_type(ctx) if self.result == "type" else self._fib4_eval(ctx)
        fib6 = self._fib6_type(ctx) if self.result == "type" else self._fib6_eval(ctx)

        def fib_eval(pkt):  # nft_fib_inet_eval(): by the hook's family
            return fib4(pkt) if pkt.state.pf == NFPROTO_IPV4 else fib6(pkt)
        return fib_eval

    def _store(self):
        """nft_fib_store_result(): the device's index or name, or with
        `present` whether there is one."""
        if self.present:
            return lambda dev: int(dev is not None and dev.ifindex != 0)
        if self.result == "oifname":
            return lambda dev: dev.name if dev is not None else ""
        return lambda dev: dev.ifindex if dev is not None else 0

    def _fib4_type(self, ctx: CompileCtx):
        """nft_fib4_eval_type(): inet_dev_addr_type() of the address, on the
        input or output device when `iif` or `oif` is given."""
        field, net = (ipv4.DADDR_FIELD if self.addr == "daddr" else ipv4.SADDR_FIELD), ctx.net
        on_iif, on_oif = "iif" in self.flags, "oif" in self.flags

        def fib_type(pkt):
            if pkt.tprot is None:
                return None
            addr = field.unpack_from(pkt.buf, pkt.nh)[0]
            if route.is_lbcast(addr):
                return RTN_BROADCAST
            if route.is_multicast(addr):
                return RTN_MULTICAST
            dev = pkt.state.in_dev if on_iif else pkt.state.out_dev if on_oif else None
            local = route.fib_table_lookup(net, RT_TABLE_LOCAL, addr, dev.ifindex if dev is not None else None)
            return local.type if local is not None else RTN_UNICAST
        return fib_type

    def _fib4_eval(self, ctx: CompileCtx):
        """nft_fib4_eval(): fib_lookup() towards the address (from the other
        one, unless that is no unicast source), the route's device, or with
        `iif`/`oif` that device if the route leaves through it; a packet
        received on loopback at prerouting finds its input device, a source
        0.0.0.0 to a broadcast or link-local multicast address the receiving
        one, a local route none."""
        net, store, use_daddr = ctx.net, self._store(), self.addr == "daddr"
        on_iif, on_oif, use_mark = "iif" in self.flags, "oif" in self.flags, "mark" in self.flags

        def fib4_eval(pkt):
            state = pkt.state
            want = state.in_dev if on_iif else state.out_dev if on_oif else None
            if state.hook == NF_INET_PRE_ROUTING and state.in_dev is not None and state.in_dev.is_loopback:
                return store(state.in_dev)
            if pkt.tprot is None:
                return None
            tos, saddr, daddr = ipv4.ROUTE_FIELDS.unpack_from(pkt.buf, pkt.nh)
            if route.is_zeronet(saddr) and (route.is_lbcast(daddr) or route.is_local_multicast(daddr)):
                return store(pkt.skb.dev)
            iif = route.LOOPBACK_IFINDEX
            if use_daddr:
                dst, src = daddr, saddr
            else:
                if state.hook == NF_INET_FORWARD and on_iif:
                    iif = state.out_dev.ifindex
                dst, src = saddr, daddr
            if route.is_multicast(src) or route.is_lbcast(src) or route.is_zeronet(src):
                src = 0
            res = route.fib_lookup(net, dst, src, iif, None, pkt.skb.mark if use_mark else 0, tos & ipv4.IPTOS_TOS_MASK)
            if res.__class__ is int or res.type == RTN_LOCAL:
                return store(None)
            found = net.devices.get(res.route.oif) if res.route.oif is not None else None
            if want is not None:
                found = want if found is want else None
            return store(found)
        return fib4_eval

    def _fib6_lookup(self, net, pkt, dev):
        """nft_fib6_flowi_init() and the route lookup: towards the destination
        (`daddr`) or the source; a link-local address only out of `dev` (the
        flags' device, else the packet's). The route, or None."""
        if pkt.nh + IPV6_HLEN > pkt.end:
            return None
        saddr, daddr = ipv6_wire.ADDRS.unpack_from(pkt.buf, pkt.nh)
        towards = daddr if "daddr" in self.flags else saddr
        if ipv6_wire.ipv6_addr_type(towards) & ipv6_wire.IPV6_ADDR_LINKLOCAL:
            f6i = route6.fib6_lookup(net, towards, (dev or pkt.skb.dev).ifindex, True)
        else:
            f6i = route6.fib6_lookup(net, towards)
        return None if f6i.__class__ is int else (f6i, towards)

    def _fib6_eval(self, ctx: CompileCtx):
        """nft_fib6_eval(): the route's device, none for a reject, anycast or
        local route (or a failed lookup), with `iif`/`oif` that device if the
        route leaves through it; a packet received on loopback at prerouting
        finds its input device."""
        net, store = ctx.net, self._store()
        on_iif, on_oif = "iif" in self.flags, "oif" in self.flags

        def fib6_eval(pkt):
            state = pkt.state
            want = state.in_dev if on_iif else state.out_dev if on_oif else None
            if state.hook == NF_INET_PRE_ROUTING and state.in_dev is not None and state.in_dev.is_loopback:
                return store(state.in_dev)
            found = self._fib6_lookup(net, pkt, want)
            if found is None or found[0].flags & (RTF_REJECT | RTF_ANYCAST | RTF_LOCAL):
                return store(None)
            dev = net.devices.get(found[0].ifindex)
            if want is not None:
                dev = want if dev is want else None
            return store(dev)
        return fib6_eval

    def _fib6_type(self, ctx: CompileCtx):
        """__nft_fib6_eval_type(): the route's type (local on the flags'
        device when it holds the address), reject routes' by their error,
        else by the address: multicast, unicast."""
        net = ctx.net
        on_iif, on_oif = "iif" in self.flags, "oif" in self.flags

        def fib6_type(pkt):
            state = pkt.state
            dev = state.in_dev if on_iif else state.out_dev if on_oif else None
            found = self._fib6_lookup(net, pkt, dev)
            if found is None:
                return RTN_UNREACHABLE
            f6i, towards = found
            if f6i.flags & RTF_REJECT:
                return f6i.type
            if f6i.type is RTN_LOCAL and (dev is None or f6i.ifindex == dev.ifindex):
                return RTN_LOCAL
            if f6i.flags & RTF_ANYCAST:
                return RTN_ANYCAST
            kind = ipv6_wire.ipv6_addr_type(towards)
            return RTN_MULTICAST if kind & ipv6_wire.IPV6_ADDR_MULTICAST else \
                RTN_UNICAST if kind & ipv6_wire.IPV6_ADDR_UNICAST else 0
        return fib6_type


def reads_conntrack(lhs: Selector) -> bool:
    """A ct key, alone or in a concatenation: nft_ct_get_init() takes conntrack (nf_ct_netns_get())."""
    return any(isinstance(part.loaded(), Ct) for part in (lhs.parts if isinstance(lhs, Concat) else (lhs,)))


class Concat(Selector):
    """`a . b`: a concatenation, looked up as a tuple."""

    def __init__(self, parts: list[Selector]):
        self.parts = parts
        self.dtype = None

    def text(self, pctx: PrintCtx) -> str:
        return " . ".join(p.text(pctx) for p in self.parts)

    def load(self, ctx: CompileCtx):
        loads = [p.load(ctx) for p in self.parts]

        def load_concat(pkt):
            key = tuple(load(pkt) for load in loads)
            return None if None in key else key
        return load_concat


# --------------------------------------------------------------- right sides

@dataclass
class Value:
    value: object


@dataclass
class Range:
    low: int
    high: int


@dataclass
class Prefix:
    addr: int
    plen: int

    def mask(self, bits: int) -> int:
        return ((1 << bits) - 1) ^ ((1 << (bits - self.plen)) - 1)


@dataclass
class SetRef:
    set: NftSet | None  # anonymous set object, or the named set once bound
    name: str | None = None  # named sets: `@name`
    loc: object = field(default=None, compare=False)
    written: int = 0  # anonymous sets: elements as written
    one_range: bool = False  # anonymous sets: one element, written as a range (kept one if its ends are equal)


class MapExpr(Selector):
    """`key map { k : v, ... }` or `key map @m`: nft_lookup with a destination
    register, the value a statement sets or NATs to. A key the map lacks
    gets the catch-all element's data, if the map has one, else makes the
    rule break (nft_lookup_eval(): NFT_BREAK): `load()` gives None then.
    `wants` are the data types the statement takes, `dtype` the map's own
    (known once a named map is bound)."""

    def __init__(self, key: Selector, ref: SetRef, wants: tuple, loc=None, key_loc=None):
        self.key, self.ref, self.wants, self.loc, self.key_loc = key, ref, wants, loc, key_loc
        self.dtype = ref.set.data_type if ref.set is not None else None

    def __deepcopy__(self, memo):  # the reference is bound per ruleset copy, unlike a plain selector
        clone = copy.copy(self)
        memo[id(self)] = clone
        clone.ref = copy.deepcopy(self.ref, memo)
        return clone

    @property
    def key_type(self) -> types.Datatype:
        key = self.key
        return types.type_of([p.dtype for p in key.parts]) if isinstance(key, Concat) else key.dtype

    def text(self, pctx: PrintCtx) -> str:
        target = f"@{self.ref.name}" if self.ref.name else format_elements(self.ref.set, pctx.now)
        return f"{self.key.text(pctx)} map {target}"

    def lookup(self, ctx: CompileCtx, data_fn=lambda data: data):
        """pkt -> data_fn(the data the packet's key finds), None on a miss."""
        load, lookup = self.key.load(ctx), lookup_fn(self.ref.set, ctx.net.clock, data_fn)

        def map_lookup(pkt):
            key = load(pkt)
            return None if key is None else lookup(key)
        return map_lookup

    def load(self, ctx: CompileCtx):
        return self.lookup(ctx)


# --------------------------------------------------------------- statements

class Stmt:
    """One statement of a rule. A statement of its own module may also have
    `json(pctx)`, its `nft -j` objects (nft_json calls it)."""

    terminal = False  # a verdict: nothing after it runs
    needs_conntrack = False
    conntrack_family: str | None = None  # the family whose conntrack it takes, when not its table's
    uses_synproxy = False  # its init registers the SYN proxy's hooks (nft_synproxy_do_init())
    may_change_packet = False  # after it the packet or its metadata may differ (it writes, or jumps to what may)
    loc = None  # where it was written, for errors found later
    span = None  # the whole statement as written

    def text(self, pctx: PrintCtx) -> str:
        raise NotImplementedError

    def maps(self) -> list[MapExpr]:
        """The map lookups whose data the statement uses."""
        return []

    def compile(self, ctx: CompileCtx):
        raise NotImplementedError

    def kernel_refusal(self, family: str) -> str | None:
        """The errno text the expression's init refuses it with (nft_*_init()), None: accepted."""
        return None

    def hook_refusal(self, family: str, hook: str, chain_type: str) -> str | None:
        """The errno text its validate() refuses it with in a base chain at `hook`."""
        return None

    @property
    def validates(self) -> bool:
        """Whether the expression has a validate() op (hook_refusal() of its own)."""
        return type(self).hook_refusal is not Stmt.hook_refusal


class Match(Stmt):
    """A relational expression: nft_cmp, nft_range, nft_bitwise + nft_cmp, nft_lookup.

    op: "==" / "!=" / "<" / ">" / "<=" / ">=", "implicit" (as written without
    an operator: equality, or for bitmask types "any of these bits"), or "!"
    (none of these bits). `mask` is `lhs & mask`."""

    def __init__(self, lhs: Selector, op: str, rhs, mask: int | None = None, loc=None):
        self.lhs, self.op, self.rhs, self.mask, self.loc = lhs, op, rhs, mask, loc
        self.needs_conntrack = reads_conntrack(lhs)

    @property
    def is_flags(self) -> bool:
        """Bits tested for being set (implicit on a bitmask type) or clear ("!")."""
        return self.lhs.dtype is not None and self.lhs.dtype.bitmask and self.op in ("implicit", "!") \
            and isinstance(self.rhs, Value)

    @property
    def negated(self) -> bool:
        return self.op == "!="

    # -- listing

    def text(self, pctx: PrintCtx) -> str:
        if isinstance(self.lhs, Payload) and len(self.lhs.fields) > 1:
            return self._merged_text(pctx)
        lhs, dtype, rhs = self.lhs.text(pctx), self.lhs.dtype, self.rhs
        if self.mask is not None:
            return self._masked_text(lhs, dtype)
        if isinstance(rhs, SetRef):
            target = f"@{rhs.name}" if rhs.name else format_elements(rhs.set, pctx.now)
            return f"{lhs} != {target}" if self.negated else f"{lhs} {target}"
        if isinstance(rhs, Range):
            value = f"{dtype.format_numeric(rhs.low)}-{dtype.format_numeric(rhs.high)}"
        elif isinstance(rhs, Prefix):
            value = f"{dtype.format(rhs.addr)}/{rhs.plen}"
        elif dtype.bitmask and self.op in ("==", "!="):  # a plain compare: symbolic_constant_print()
            value = dtype.format_symbol(rhs.value)
        else:
            value = dtype.format(rhs.value)
        if self.op == "!":
            return f"{lhs} ! {value}"
        if self.op == "==" and dtype.bitmask or self.op in ("==", "implicit") and self.lhs.is_binop:
            return f"{lhs} == {value}"
        if self.op in ("implicit", "=="):
            return f"{lhs} {value}"
        return f"{lhs} {self.op} {value}"

    def _masked_text(self, lhs: str, dtype) -> str:
        """`x & m op v` as netlink_delinearize prints it: for bitmask types
        `x ! m` (v == 0, ==), `x m` (v == 0, !=), `x [!= ]v / m` (several bits)."""
        value = self.rhs.value if isinstance(self.rhs, Value) else None
        if dtype.bitmask and value == 0:
            return f"{lhs} {'! ' if self.op == '==' else ''}{dtype.format(self.mask)}"
        if dtype.bitmask and value is not None and self.mask & (self.mask - 1):
            op = "!= " if self.op == "!=" else ""
            return f"{lhs} {op}{dtype.format(value)} / {dtype.format(self.mask)}"
        mask_text = dtype.format(self.mask)
        if dtype.bitmask and "," in mask_text:
            mask_text = "(" + mask_text.replace(",", " | ") + ")"
        target = format_elements(self.rhs.set, 0.0) if isinstance(self.rhs, SetRef) else dtype.format(value)
        op = "==" if self.op in ("implicit", "==") else self.op
        return f"{lhs} & {mask_text} {op} {target}"

    def _merged_text(self, pctx: PrintCtx) -> str:
        """A merged load prints as its fields again, or raw (`@th,0,32 0x...`)
        when no protocol names the transport header."""
        payload, value = self.lhs, self.rhs.value
        op = "!= " if self.op == "!=" else ""
        if payload.proto == "th" and pctx.l4 not in ("tcp", "udp"):
            return f"@th,{payload.offset * 8},{payload.bits} {op}0x{value:x}"
        proto, parts, remaining = payload.proto_name(pctx), [], payload.bits
        for fld in payload.fields:
            remaining -= fld.bits
            part = (value >> remaining) & ((1 << fld.bits) - 1)
            parts.append(f"{proto} {fld.name} {op}{fld.dtype.format(part)}")
        return " ".join(parts)

    # -- datapath

    def compile(self, ctx: CompileCtx):
        rhs = self.rhs
        if isinstance(rhs, SetRef):
            return self._compile_lookup(ctx)
        if isinstance(self.lhs, Payload) and self.lhs.field.byte_aligned and self.mask is None \
                and isinstance(rhs, Value) and self.op in ("==", "!=", "implicit") \
                and not self.lhs.dtype.bitmask:
            return self._compile_payload_cmp()
        load = self.lhs.load(ctx)
        if self.is_flags and self.op != "!" and self.mask is None:
            bits = rhs.value

            def match_any_bit(pkt):  # `ct state new,established`: one call less than a test
                value = load(pkt)
                return None if value is not None and value & bits else NFT_BREAK
            return match_any_bit
        if self.mask is None and not self.is_flags and isinstance(self.lhs, (Payload, Meta)):  # integer loads
            keys = accepted_keys(self)
            if keys is not None and keys.spans is not None and len(keys.spans) == 1:
                low, high = keys.spans[0]

                def match_span(pkt):  # ==, a prefix, a range, <, >: one test, one call less
                    value = load(pkt)
                    return None if value is not None and low <= value <= high else NFT_BREAK
                return match_span
        test = self._test()

        def match(pkt):
            value = load(pkt)
            return None if value is not None and test(value) else NFT_BREAK
        return match

    def _test(self):
        """The comparison on the loaded value (nft_bitwise, nft_cmp, nft_range)."""
        rhs, op = self.rhs, self.op
        if self.mask is not None:
            mask, want = self.mask, rhs.value
            if op == "!=":
                return lambda v: v & mask != want
            return lambda v: v & mask == want
        if self.is_flags:
            bits = rhs.value
            return (lambda v: not v & bits) if op == "!" else (lambda v: bool(v & bits))
        if isinstance(rhs, Range):
            low, high = rhs.low, rhs.high
            if op == "!=":
                return lambda v: not low <= v <= high
            return lambda v: low <= v <= high
        if isinstance(rhs, Prefix):
            mask, want = rhs.mask(self.lhs.dtype.size), rhs.addr
            if op == "!=":
                return lambda v: v & mask != want
            return lambda v: v & mask == want
        want = rhs.value
        if isinstance(want, str) and want.endswith("*"):
            stem = want[:-1]
            return (lambda v: not v.startswith(stem)) if op == "!=" else (lambda v: v.startswith(stem))
        return {"==": lambda v: v == want, "implicit": lambda v: v == want, "!=": lambda v: v != want,
                "<": lambda v: v < want, ">": lambda v: v > want, "<=": lambda v: v <= want,
                ">=": lambda v: v >= want}[op]

    def _compile_payload_cmp(self):
        """nft_payload + nft_cmp on whole bytes: one slice compare."""
        payload = self.lhs
        off, nbytes = payload.offset, payload.bits // 8
        want = self.rhs.value.to_bytes(nbytes, "big")
        equal = self.op != "!="
        if payload.link:
            def match_ll(pkt):
                loaded = link_bytes(pkt, off, nbytes)
                return None if loaded is not None and (loaded == want) is equal else NFT_BREAK
            return match_ll
        if payload.transport:
            refuses_fragments = not payload_fast(off, nbytes)

            def match_th(pkt):
                start = pkt.thoff + off
                if pkt.thoff < 0 or start + nbytes > pkt.end or refuses_fragments and pkt.fragoff:
                    return NFT_BREAK
                return None if (pkt.buf[start:start + nbytes] == want) is equal else NFT_BREAK
            return match_th
        if payload.proto == "arp":
            def match_arp(pkt):  # an ARP header loads whatever the pktinfo (arp_loader())
                start = pkt.nh + off
                if start + nbytes > pkt.end:
                    return NFT_BREAK
                return None if (pkt.buf[start:start + nbytes] == want) is equal else NFT_BREAK
            return match_arp

        def match_nh(pkt):
            start = pkt.nh + off
            if pkt.tprot is None or start + nbytes > pkt.end:  # the load fails: no match, `!=` neither
                return NFT_BREAK
            return None if (pkt.buf[start:start + nbytes] == want) is equal else NFT_BREAK
        return match_nh

    def _compile_lookup(self, ctx: CompileCtx):
        """nft_lookup: the key (masked, if `& m`) in a set; `!=` inverts."""
        load, lookup, mask = self.lhs.load(ctx), lookup_fn(self.rhs.set, ctx.net.clock), self.mask
        found_is_match = not self.negated

        def match(pkt):
            key = load(pkt)
            if key is None:
                return NFT_BREAK
            if mask is not None:
                key &= mask
            return None if (lookup(key) is not None) is found_is_match else NFT_BREAK
        return match


INDEXABLE_META = ("l4proto", "mark", "iifname", "oifname", "iif", "oif", "pkttype", "protocol", "nfproto")


ABOVE_EVERY_KEY = 1 << 128  # no load gives more (the widest is an IPv6 address)


@dataclass(frozen=True)
class IndexKeys:
    """The values of a field that a match accepts: `spans`, sorted disjoint
    inclusive (low, high) integer ranges (None for an interface name), and
    `points`, the same values one by one when the match is an equality with
    one value or a set's elements (None for a prefix, a range or a negation)."""

    spans: tuple | None
    points: frozenset | None = None


def index_key(stmt: Stmt) -> tuple | None:
    """(field, IndexKeys) when a chain can be indexed by a statement: a
    whole-byte payload field or a meta key compared with a value, a prefix,
    a range, or looked up in a set whose elements do not expire, negated or not."""
    if not isinstance(stmt, Match) or stmt.mask is not None or stmt.is_flags:
        return None
    lhs = stmt.lhs
    if isinstance(lhs, Payload) and not lhs.link and all(f.byte_aligned for f in lhs.fields):
        index_field = ("arp" if lhs.proto == "arp" else "payload", lhs.transport, lhs.offset, lhs.bits // 8)
    elif isinstance(lhs, Meta) and lhs.key in INDEXABLE_META:
        index_field = ("meta", lhs.key)
    else:
        return None
    keys = accepted_keys(stmt)
    return None if keys is None else (index_field, keys)


def accepted_keys(stmt: Match) -> IndexKeys | None:
    """The values a match without a mask or flag test accepts, as IndexKeys
    (None when they cannot be told: a set whose elements expire, `"p*"`)."""
    rhs = stmt.rhs
    if isinstance(rhs, Value):
        return _value_keys(stmt.op, rhs.value)
    if isinstance(rhs, SetRef):
        return _set_keys(rhs.set, stmt.negated)
    if isinstance(rhs, Range):
        spans = ((rhs.low, rhs.high),) if rhs.low <= rhs.high else ()
    else:  # a prefix: v & mask == addr holds for none when addr has host bits
        host = (1 << (stmt.lhs.dtype.size - rhs.plen)) - 1
        spans = () if rhs.addr & host else ((rhs.addr, rhs.addr | host),)
    return IndexKeys(_complement(spans) if stmt.negated else spans)


def _value_keys(op: str, value) -> IndexKeys | None:
    if isinstance(value, str):  # an interface name: equality only, and not a wildcard (`"p*"`)
        if op in ("==", "implicit") and not value.endswith("*"):
            return IndexKeys(None, frozenset((value,)))
        return None
    if op in ("==", "implicit"):
        return IndexKeys(((value, value),), frozenset((value,)))
    spans = {"!=": _complement(((value, value),)), "<": ((0, value - 1),), "<=": ((0, value),),
             ">": ((value + 1, ABOVE_EVERY_KEY),), ">=": ((value, ABOVE_EVERY_KEY),)}[op]
    return IndexKeys(tuple((low, high) for low, high in spans if low <= high))


def _set_keys(nset: NftSet | None, negated: bool) -> IndexKeys | None:
    """A set's elements as IndexKeys; none for a set whose elements expire in
    virtual time (a lookup then depends on when), or whose keys are names."""
    if nset is None or "timeout" in nset.flags:
        return None
    elements = [e for e in nset.elements if e.key is not CATCHALL]
    if len(elements) < len(nset.elements):  # the catch-all: every key finds it
        spans = ((0, ABOVE_EVERY_KEY),)
    elif nset.interval:
        spans = _union((e.key, e.high) for e in elements)
    elif all(isinstance(e.key, int) for e in elements):
        spans = _union((e.key, e.key) for e in elements)
        if not negated:
            return IndexKeys(spans, frozenset(e.key for e in elements))
    else:
        return None if negated else IndexKeys(None, frozenset(e.key for e in elements))
    return IndexKeys(_complement(spans) if negated else spans)


def _union(ranges) -> tuple:
    """Sorted inclusive ranges, overlapping and adjacent ones joined."""
    out: list[list[int]] = []
    for low, high in sorted(ranges):
        if out and low <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], high)
        else:
            out.append([low, high])
    return tuple(map(tuple, out))


def _complement(spans: tuple) -> tuple:
    """The values from 0 to ABOVE_EVERY_KEY that sorted disjoint `spans` leave out."""
    out, low = [], 0
    for start, end in spans:
        if start > low:
            out.append((low, start - 1))
        low = end + 1
    if low <= ABOVE_EVERY_KEY:
        out.append((low, ABOVE_EVERY_KEY))
    return tuple(out)


def index_loader(index_field: tuple, ctx: CompileCtx):
    """The load for an index field: the value the match compares (payload
    bytes as a big-endian integer)."""
    if index_field[0] == "meta":
        return Meta(index_field[1]).load(ctx)
    kind, transport, off, nbytes = index_field
    return arp_loader(off, nbytes) if kind == "arp" else payload_loader(transport, off, nbytes)


def payload_mergeable(stmt: Stmt) -> bool:
    """payload_try_merge(): payload == value (or !=) on whole bytes."""
    return isinstance(stmt, Match) and isinstance(stmt.lhs, Payload) and stmt.mask is None \
        and isinstance(stmt.rhs, Value) and stmt.op in ("==", "!=", "implicit") \
        and all(f.byte_aligned for f in stmt.lhs.fields)


def payload_merge(stmts: list[Stmt]) -> list[Stmt]:
    """nftables 1.0.6 payload_try_merge(): payload matches on adjacent bytes of
    one header are joined into one load of up to 32 bits, in header order, at
    the first one's place (a statement of another kind ends a run only once
    two candidates were seen, as that version does). Listing prints the merged
    load split into fields again; the datapath compares the joined value."""
    out = list(stmts)
    run: list[Match] = []
    for stmt in stmts + [None]:
        if stmt is not None and payload_mergeable(stmt):
            run.append(stmt)
            continue
        if isinstance(stmt, (Match, VerdictMap)):
            continue  # another expression: skipped, the run goes on
        if len(run) > 1:
            _merge_run(out, run)
            run = []
    return out


def _merge_run(out: list[Stmt], run: list[Match]) -> None:
    run = sorted(run, key=lambda m: (m.lhs.base, m.lhs.offset))
    last = run[0]
    for this in run[1:]:
        a, b = last.lhs, this.lhs
        same_op = (last.op == "!=") == (this.op == "!=")
        if a.base != b.base or a.offset + a.bits // 8 != b.offset or not _merge_width_ok(a.bits, b.bits, a.link) \
                or not same_op or a.proto != b.proto:
            last = this
            continue
        merged = Match(Payload(a.fields + b.fields), last.op, Value(last.rhs.value << b.bits | this.rhs.value),
                       loc=last.loc)
        # the statement carrying the upper protocol (`ip protocol`) keeps its place, and a
        # link-layer merge goes where its last field was (seen on the lab: `ether saddr X
        # counter ether type ip` lists `counter ether saddr X ether type ip`)
        keep, drop = (this, last) if b.field.name == "protocol" or a.link else (last, this)
        out[out.index(keep)] = merged
        out.remove(drop)
        last = merged


def _merge_width_ok(bits_a: int, bits_b: int, link: bool) -> bool:
    """payload_can_merge()'s width rule (src/payload.c): at most one register
    (128 bits); past 32 bits only for the link-layer header (never a fast
    load) or when a part is wider than 32 bits already (`ip saddr . daddr`
    stay two loads; `ether saddr . type` and `arp saddr ip . daddr ether` merge)."""
    total = bits_a + bits_b
    return total <= 32 or total <= 128 and (link or bits_a > 32 or bits_b > 32)


class Verdict(Stmt):
    """nft_immediate of a verdict."""

    terminal = True

    def __init__(self, kind: str, chain: str | None = None, loc=None):
        self.kind, self.chain, self.loc = kind, chain, loc
        self.code = VERDICT_CODES[kind]
        self.terminal = kind != "continue"
        self.may_change_packet = kind == "jump"  # the chain jumped to may, and this one goes on after

    def text(self, pctx: PrintCtx) -> str:
        return f"{self.kind} {self.chain}" if self.chain else self.kind

    def __str__(self) -> str:  # as map data
        return self.text(PrintCtx())

    def compile(self, ctx: CompileCtx):
        code = self.code
        if self.chain is None:
            return lambda pkt: code
        target = ctx.chains[self.chain]

        def jump(pkt):
            pkt.jump = target
            return code
        return jump


class VerdictMap(Stmt):
    """`expr vmap { key : verdict }`: nft_lookup into a verdict map. Not a
    terminal statement to nft (stmt_evaluate_verdict() marks only a verdict
    other than continue): `... vmap { ... } counter` is taken."""

    may_change_packet = True

    def __init__(self, lhs: Selector, ref: SetRef, loc=None):
        self.lhs, self.ref, self.loc = lhs, ref, loc
        self.needs_conntrack = reads_conntrack(lhs)

    def text(self, pctx: PrintCtx) -> str:
        target = f"@{self.ref.name}" if self.ref.name else format_elements(self.ref.set, pctx.now)
        return f"{self.lhs.text(pctx)} vmap {target}"

    def compile(self, ctx: CompileCtx):
        load = self.lhs.load(ctx)
        lookup = lookup_fn(self.ref.set, ctx.net.clock,
                           lambda v: (v.code, ctx.chains[v.chain] if v.chain else None))

        def vmap(pkt):
            key = load(pkt)
            hit = lookup(key) if key is not None else None
            if hit is None:
                return NFT_BREAK
            pkt.jump = hit[1]
            return hit[0]
        return vmap


class Counter(Stmt):
    """nft_counter: packets and bytes (the IP datagram's length)."""

    def __init__(self, packets: int = 0, bytes_: int = 0):
        self.packets, self.bytes = packets, bytes_

    def text(self, pctx: PrintCtx) -> str:
        return "counter" if pctx.stateless else f"counter packets {self.packets} bytes {self.bytes}"

    def compile(self, ctx: CompileCtx):
        def count(pkt):
            self.packets += 1
            self.bytes += pkt.end - pkt.nh
        return count


LIMIT_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
BYTE_UNITS = {"bytes": 1, "kbytes": 1024, "mbytes": 1024 * 1024}
DATA_UNITS = ("bytes", "kbytes", "mbytes")  # nftables src/statement.c data_unit[]
EOVERFLOW = "Value too large for defined data type"
U64_MAX = (1 << 64) - 1


def get_rate(byte_rate: int) -> tuple[int, str]:
    """nftables src/statement.c get_rate(): bytes in the largest unit that divides them."""
    unit = 0
    while byte_rate and unit < len(DATA_UNITS) - 1 and byte_rate % 1024 == 0:
        byte_rate //= 1024
        unit += 1
    return byte_rate, DATA_UNITS[unit]


class Limit(Stmt):
    """nft_limit: a token bucket in virtual time (nanoseconds of rate);
    matches while under the rate (`over`: while above it). Burst defaults
    to 5 packets (nft's NFT_LIMIT_PKT_BURST_DEFAULT), 0 for byte limits.
    nft_limit_init() sizes the bucket as `burst` packets, or for bytes as
    unit * (rate + burst) / rate: a unit's worth of rate plus the burst, and
    refuses with EOVERFLOW what does not fit in 64 bits. nft sends byte rates
    as bytes and prints them in the largest unit that divides them
    (limit_stmt_print(), limit_stmt_json())."""

    def __init__(self, rate: int, unit: str, burst: int | None, over: bool, byte_unit: str | None = None,
                 burst_unit: str | None = None):
        self.rate, self.unit, self.over, self.byte_unit = rate, unit, over, byte_unit
        self.burst_unit = burst_unit
        self.burst = burst if burst is not None else (0 if byte_unit else 5)
        self.tokens = self.last = None

    def _bytes(self) -> tuple[int, int]:
        """The rate and burst in bytes, as nft sends them."""
        return self.rate * BYTE_UNITS[self.byte_unit], self.burst * BYTE_UNITS[self.burst_unit or "bytes"]

    def text(self, pctx: PrintCtx) -> str:
        over = "over " if self.over else ""
        if self.byte_unit:
            rate, burst = self._bytes()
            text = "limit rate %s%d %s/%s" % (over, *get_rate(rate), self.unit)
            return text + (" burst %d %s" % get_rate(burst) if burst else "")
        burst = f" burst {self.burst} packets" if self.burst != 5 else ""
        return f"limit rate {over}{self.rate}/{self.unit}{burst}"

    def json(self, pctx: PrintCtx) -> list[dict]:
        out = {"rate": self.rate, "burst": self.burst, "per": self.unit}
        if self.byte_unit:
            (rate, rate_unit), (burst, burst_unit) = (get_rate(b) for b in self._bytes())
            out.update(rate=rate, burst=burst)
        if self.over:
            out["inv"] = True
        if self.byte_unit:
            out.update(rate_unit=rate_unit, burst_unit=burst_unit)
        return [{"limit": out}]

    def kernel_refusal(self, family: str) -> str | None:
        """nft_limit_init()'s EOVERFLOW checks."""
        nsecs = LIMIT_UNITS[self.unit] * 1_000_000_000
        rate, burst = self._bytes() if self.byte_unit else (self.rate, self.burst)
        if rate == 0:
            return "Invalid argument"
        tokens = nsecs * (rate + burst) if self.byte_unit else nsecs // rate * burst
        if rate > U64_MAX or burst > 0xFFFFFFFF or rate + burst > U64_MAX or tokens > U64_MAX:
            return EOVERFLOW  # NFTA_LIMIT_BURST is 32 bits
        return None

    def compile(self, ctx: CompileCtx):
        clock = ctx.net.clock
        nsecs = LIMIT_UNITS[self.unit] * 1_000_000_000
        rate = self.rate * BYTE_UNITS.get(self.byte_unit, 1)
        burst = self.burst * BYTE_UNITS.get(self.burst_unit or "bytes", 1) if self.byte_unit else self.burst
        tokens_max = nsecs // rate * burst if not self.byte_unit else nsecs * (rate + burst) // rate
        per_packet = None if self.byte_unit else nsecs // rate
        if self.tokens is None:
            self.tokens, self.last = tokens_max, int(clock.now * 1e9)
        under, over = (None, NFT_BREAK) if not self.over else (NFT_BREAK, None)

        def limit(pkt):
            now = int(clock.now * 1e9)
            tokens = min(self.tokens + now - self.last, tokens_max)
            self.last = now
            cost = per_packet if per_packet is not None else nsecs * (pkt.end - pkt.nh) // rate
            if tokens - cost >= 0:
                self.tokens = tokens - cost
                return under
            self.tokens = tokens
            return over
        return limit


# include/uapi/linux/netfilter/nf_log.h
NF_LOG_TCPSEQ, NF_LOG_TCPOPT, NF_LOG_IPOPT, NF_LOG_UID, NF_LOG_MACDECODE = 0x01, 0x02, 0x04, 0x08, 0x20
NF_LOG_MASK = 0x2F


class Log(Stmt):
    """nft_log: the journey records a LOG hop with the prefix (the kernel
    writes it to the kernel log, to nfnetlink_log's `group`, or for level
    audit to the audit log; nft_log_eval(), nft_log_eval_audit()).
    Printed as statement.c log_stmt_print() prints it."""

    LEVELS = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug", "audit")

    def __init__(self, prefix: str | None = None, level: str | None = None):
        self.prefix, self.level = prefix, level
        self.group = self.snaplen = self.qthreshold = None
        self.logflags = 0

    def text(self, pctx: PrintCtx) -> str:
        parts = ["log"]
        if self.prefix is not None:
            parts.append(f'prefix "{self.prefix}"')
        for word, value in (("group", self.group), ("snaplen", self.snaplen), ("queue-threshold", self.qthreshold)):
            if value is not None:
                parts.append(f"{word} {value}")
        if self.level not in (None, "warn"):
            parts.append(f"level {self.level}")
        flags = self.logflags
        if flags & NF_LOG_MASK == NF_LOG_MASK:
            parts.append("flags all")
            return " ".join(parts)
        if flags & (NF_LOG_TCPSEQ | NF_LOG_TCPOPT):
            tcp = [name for bit, name in ((NF_LOG_TCPSEQ, "sequence"), (NF_LOG_TCPOPT, "options")) if flags & bit]
            parts.append("flags tcp " + ",".join(tcp))
        parts += [f"flags {name}" for bit, name in ((NF_LOG_IPOPT, "ip options"), (NF_LOG_UID, "skuid"),
                                                    (NF_LOG_MACDECODE, "ether")) if flags & bit]
        return " ".join(parts)

    def json(self, pctx: PrintCtx) -> list[dict]:
        """json.c log_stmt_json()."""
        out = {}
        if self.prefix is not None:
            out["prefix"] = self.prefix
        for word, value in (("group", self.group), ("snaplen", self.snaplen), ("queue-threshold", self.qthreshold)):
            if value is not None:
                out[word] = value
        if self.level not in (None, "warn"):
            out["level"] = self.level
        flags = self.logflags
        if flags & NF_LOG_MASK == NF_LOG_MASK:
            names = ["all"]
        else:
            names = [name for bit, name in ((NF_LOG_TCPSEQ, "tcp sequence"), (NF_LOG_TCPOPT, "tcp options"),
                                            (NF_LOG_IPOPT, "ip options"), (NF_LOG_UID, "skuid"),
                                            (NF_LOG_MACDECODE, "ether")) if flags & bit]
        if names:
            out["flags"] = names if len(names) > 1 else names[0]
        return [{"log": out or None}]

    def compile(self, ctx: CompileCtx):
        where, prefix = ctx.chain_id, self.prefix or ""
        if self.group is not None:
            prefix = f"{prefix} (nflog group {self.group})".lstrip()

        def log(pkt):
            skb = pkt.skb
            skb.net.tracer.hop(skb, pkt.state.stage, where, "LOG", prefix)
        return log


class MetaSet(Stmt):
    """nft_meta set: `meta mark set V` (or from `ct mark`), `meta nftrace set 1`,
    `meta priority set X:Y` (skb->priority: a qdisc class, sched/sch_htb.py);
    `keep` keeps those bits of the old mark (iptables' MARK --set-xmark)."""

    may_change_packet = True

    def __init__(self, key: str, value, loc=None, keep: int = 0):
        self.key, self.value, self.loc, self.keep = key, value, loc, keep  # value: int or a Selector
        # `meta mark set ct mark`: the ct expression's init takes conntrack (nft_ct_get_init()),
        # which brings nf_defrag_ipv4 with it
        self.needs_conntrack = isinstance(value, Selector) and not isinstance(value, MapExpr) \
            and reads_conntrack(value)

    def text(self, pctx: PrintCtx) -> str:
        value = self.value.text(pctx) if isinstance(self.value, Selector) else Meta(self.key).dtype.format(self.value)
        return f"meta {self.key} set {value}"

    def maps(self) -> list[MapExpr]:
        return [self.value] if isinstance(self.value, MapExpr) else []

    def compile(self, ctx: CompileCtx):
        if self.key == "nftrace":  # the mock traces every packet
            return lambda pkt: None
        if self.key == "priority" and not isinstance(self.value, Selector):
            priority = self.value

            def set_priority(pkt):
                pkt.skb.priority = priority
            return set_priority
        if isinstance(self.value, Selector):
            load = self.value.load(ctx)

            def set_mark_from(pkt):
                value = load(pkt)
                if value is None:
                    return NFT_BREAK
                pkt.skb.mark = value
            return set_mark_from
        value, keep = self.value, self.keep

        def set_mark(pkt):
            pkt.skb.mark = (pkt.skb.mark & keep) ^ value
        return set_mark


class CtSet(Stmt):
    """nft_ct set: `ct mark set V` (or from `meta mark`)."""

    needs_conntrack = True

    def __init__(self, key: str, value, loc=None):
        self.key, self.value, self.loc = key, value, loc

    def text(self, pctx: PrintCtx) -> str:
        value = self.value.text(pctx) if isinstance(self.value, Selector) else types.mark.format(self.value)
        return f"ct {self.key} set {value}"

    def maps(self) -> list[MapExpr]:
        return [self.value] if isinstance(self.value, MapExpr) else []

    def compile(self, ctx: CompileCtx):
        load = self.value.load(ctx) if isinstance(self.value, Selector) else (lambda pkt, v=self.value: v)
        # a map's lookup is an expression of its own before nft_ct_set: its miss breaks the rule
        miss = NFT_BREAK if isinstance(self.value, MapExpr) else None

        def set_ct_mark(pkt):
            value = load(pkt)
            if value is None:
                return miss
            ct = _tracked(pkt.skb)
            if ct is not None:
                ct.mark = value
        return set_ct_mark


class Notrack(Stmt):
    """nft_notrack: the packet skips conntrack (only before it, at -300)."""

    def text(self, pctx: PrintCtx) -> str:
        return "notrack"

    def compile(self, ctx: CompileCtx):
        def notrack(pkt):
            skb = pkt.skb
            if skb.nfct is None:
                skb.nfct, skb.ctinfo = UNTRACKED, IP_CT_UNTRACKED
        return notrack


class Reject(Stmt):
    """nft_reject_ipv4, nft_reject_ipv6, nft_reject_inet: an ICMP or ICMPv6
    unreachable (`kind` icmp, icmpv6; icmpx: the inet family's code, mapped
    to the packet's protocol by nft_reject_icmp_code() and
    nft_reject_icmpv6_code()) or a TCP RST goes back, then the packet is
    dropped. The parser leaves `kind` None for a bare `reject` until the
    rule's network protocol is known."""

    terminal = True
    # nft_reject_icmp_code(), nft_reject_icmpv6_code(): icmpx codes -> ICMP, ICMPv6 unreachable codes
    ICMPX_TO_ICMP = {0: 0, 1: 3, 2: 1, 3: 13}
    ICMPX_TO_ICMPV6 = {0: 0, 1: 4, 2: 3, 3: 1}
    CODE_TYPES = {"icmp": types.icmp_code, "icmpv6": types.icmpv6_code, "icmpx": types.icmpx_code}
    QUIET_CODES = {"icmp": 3, "icmpv6": 4, "icmpx": 1}  # port unreachable: `reject` alone

    def __init__(self, kind: str | None = None, code: int | None = None, loc=None, code_loc=None, keyword_loc=None):
        self.kind, self.code, self.loc, self.code_loc, self.keyword_loc = kind, code, loc, code_loc, keyword_loc

    def text(self, pctx: PrintCtx) -> str:
        """reject_stmt_print(): an inet, bridge or netdev table names icmp and
        icmpv6 rejects in full (stmt_reject_postprocess()'s verbose_print)."""
        if self.kind == "tcp reset":
            return "reject with tcp reset"
        if self.code == self.QUIET_CODES[self.kind] and (self.kind == "icmpx" or pctx.family in ("ip", "ip6")):
            return "reject"
        return f"reject with {self.kind} {self.CODE_TYPES[self.kind].format(self.code)}"

    def compile(self, ctx: CompileCtx):
        """nft_reject_ipv4 / _ipv6 in their tables; nft_reject_inet (and
        netdev's) by the packet's family."""
        reject4, reject6 = self._reject4(), self._reject6()
        if ctx.family == "ip":
            return reject4
        if ctx.family == "ip6":
            return reject6

        def reject_inet(pkt):
            ipv6_packet = pkt.state.pf == NFPROTO_IPV6 or pkt.skb.protocol == ETH_P_IPV6
            return reject6(pkt) if ipv6_packet else reject4(pkt)
        return reject_inet

    def _reject4(self):
        if self.kind == "tcp reset":
            def reject_tcp(pkt):
                nf_reject.send_reset(pkt.skb, pkt.state.hook)
                return NF_DROP
            return reject_tcp
        code = self.ICMPX_TO_ICMP[self.code] if self.kind == "icmpx" else self.code

        def reject_icmp(pkt):
            nf_reject.send_unreach(pkt.skb, code, pkt.state.hook)
            return NF_DROP
        return reject_icmp

    def _reject6(self):
        if self.kind == "tcp reset":
            def reject_tcp6(pkt):
                nf_reject.send_reset6(pkt.skb)
                return NF_DROP
            return reject_tcp6
        code = self.ICMPX_TO_ICMPV6[self.code] if self.kind == "icmpx" else self.code

        def reject_icmpv6(pkt):
            nf_reject.send_unreach6(pkt.skb, code, pkt.state.hook)
            return NF_DROP
        return reject_icmpv6


# what a NAT map's data may be: an address, an address and a port, an address range, an address
# range and a port range (nft's interval concatenation: NFTA_NAT_REG_ADDR_MAX and REG_PROTO_MAX
# follow the minima in the registers)
NAT_DATA_TYPES = (types.ipv4_addr, types.ConcatType([types.ipv4_addr, types.inet_service]),
                  types.IntervalType(types.ipv4_addr),
                  types.ConcatType([types.IntervalType(types.ipv4_addr), types.IntervalType(types.inet_service)]))
NAT_DATA_TYPES6 = (types.ipv6_addr, types.ConcatType([types.ipv6_addr, types.inet_service]),
                   types.IntervalType(types.ipv6_addr),
                   types.ConcatType([types.IntervalType(types.ipv6_addr), types.IntervalType(types.inet_service)]))
NAT_HOOKS = {"snat": (NF_INET_POST_ROUTING, NF_INET_LOCAL_IN), "dnat": (NF_INET_PRE_ROUTING, NF_INET_LOCAL_OUT),
             "masquerade": (NF_INET_POST_ROUTING,), "redirect": (NF_INET_PRE_ROUTING, NF_INET_LOCAL_OUT)}


class Nat(Stmt):
    """nft_nat / nft_masq / nft_redir: bind the connection's NAT and accept.

    kind: snat, dnat, masquerade, redirect. Addresses and ports are inclusive
    ranges (None: not given), IPv4 or IPv6 addresses (`addr_type`); flags:
    random, fully-random, persistent, and prefix (NF_NAT_RANGE_NETMAP:
    nft_nat_setup_netmap() keeps the host part of the packet's address and
    takes the network part from the range, `snat ip6 prefix to ...`).
    `addr_map` gives the address (or `address . port`, a concatenated map's
    data) from a map, `port_map` redirect's or masquerade's port: nft puts
    the looked-up value in the registers nft_nat_eval() reads."""

    terminal = True
    may_change_packet = True
    needs_conntrack = True
    port_error = None  # a port nft's evaluation refuses, once the transport protocol is checked

    def __init__(self, kind: str, family: str | None = None, addr: tuple | None = None,
                 ports: tuple | None = None, flags: tuple = (), loc=None, port_loc=None,
                 addr_map: MapExpr | None = None, port_map: MapExpr | None = None, prefix: bool = False,
                 prefix_len: int | None = None):
        self.kind, self.family, self.addr, self.ports, self.flags = kind, family, addr, ports, flags
        self.prefix, self.prefix_len = prefix, prefix_len  # `prefix to`; an address written as ADDR/LEN
        self.loc, self.port_loc, self.addr_map, self.port_map = loc, port_loc, addr_map, port_map
        self.written_addr_type = types.ipv4_addr

    @property
    def addr_type(self) -> types.Datatype:
        """The addresses' type: a map's data names it (once a named map is bound)."""
        if self.addr_map is not None:
            return types.ipv6_addr if "ipv6_addr" in self.addr_map.dtype.name.split() else types.ipv4_addr
        return self.written_addr_type

    @addr_type.setter
    def addr_type(self, dtype: types.Datatype) -> None:
        self.written_addr_type = dtype

    def resolve_addresses(self, family: str, parse) -> None:
        """The address tokens as the addresses of `family` (ip, ip6):
        `parse(token, type)` reads one."""
        self.written_addr_type = types.ipv6_addr if family == "ip6" else types.ipv4_addr
        self.addr = tuple(parse(tok, self.addr_type) for tok in self.addr)
        if self.prefix_len is not None:  # ADDR/LEN: the block's first and last address
            host = (1 << (self.addr_type.size - self.prefix_len)) - 1
            self.addr = (self.addr[0] & ~host, self.addr[0] | host)

    def maps(self) -> list[MapExpr]:
        return [m for m in (self.addr_map, self.port_map) if m is not None]

    @property
    def conntrack_family(self) -> str | None:
        """snat and dnat take the conntrack of their NAT family (nft_nat_init():
        nf_ct_netns_get(ctx->net, family), family from NFTA_NAT_FAMILY), so an inet
        table's `dnat ip6 to ...` turns on IPv6's alone; masquerade and redirect take
        their table's (nft_masq_init(), nft_redir_init(): ctx->family)."""
        return self.family if self.kind in ("snat", "dnat") and self.family in ("ip", "ip6") else None

    def shown_family(self, pctx: PrintCtx) -> str | None:
        """The family nft lists (netlink_parse_nat()): an inet table's, or in
        any table for a map giving address and port (STMT_NAT_F_CONCAT) or
        an address range (STMT_NAT_F_INTERVAL)."""
        if self.addr_map is not None and isinstance(self.addr_map.dtype, (types.ConcatType, types.IntervalType)):
            return self.family or pctx.family
        return self.family if pctx.family == "inet" else None

    def text(self, pctx: PrintCtx) -> str:
        parts = [self.kind]
        family = self.shown_family(pctx)
        if family:
            parts.append(family)
        target = ""
        if self.addr_map is not None:
            target = self.addr_map.text(pctx)
        elif self.addr and self.addr_type is types.ipv6_addr and self.ports:
            low, high = (f"[{self.addr_type.format(a)}]" for a in self.addr)  # nat_stmt_print(): before a port
            target = low if low == high else f"{low}-{high}"
        elif self.addr:  # range_expr_to_prefix(): an aligned block lists as a prefix
            target = types.range_text(self.addr_type, *self.addr)
        if self.port_map is not None:
            target += f":{self.port_map.text(pctx)}"
        elif self.ports:
            low, high = self.ports
            target += f":{low}" if low == high else f":{low}-{high}"
        if self.prefix:
            parts.append("prefix")
        if target:
            parts.append(f"to {target}")
        if self.flags:
            parts.append(",".join(f for f in ("random", "fully-random", "persistent") if f in self.flags))
        return " ".join(parts)

    def nat_range(self, addr: tuple | None = None, ports: tuple | None = None) -> NatRange:
        """struct nf_nat_range2 from the statement's own ranges, or from the
        values a map gave."""
        addr, ports = addr or self.addr, ports or self.ports
        flags = set(self.flags)
        low_addr = high_addr = low_port = high_port = 0
        if addr:
            low_addr, high_addr = addr
            if self.addr_type is types.ipv6_addr:  # a connection's IPv6 addresses are 16 bytes
                low_addr, high_addr = low_addr.to_bytes(16, "big"), high_addr.to_bytes(16, "big")
            flags.add("map-ips")
        if ports:
            low_port, high_port = ports
            flags.add("proto-specified")
        return NatRange(low_addr, high_addr, low_port, high_port, frozenset(flags))

    def mapped_range(self, data) -> NatRange:
        """The range for one map value: an address, `address . port`, an
        address range, or a port."""
        if self.port_map is not None:
            return self.nat_range(ports=(data, data))
        if isinstance(self.addr_map.dtype, types.IntervalType):
            return self.nat_range(data)
        if isinstance(self.addr_map.dtype, types.ConcatType):
            if isinstance(self.addr_map.dtype.parts[0], types.IntervalType):  # ranges: (low, high) each
                return self.nat_range(data[0], data[1])
            return self.nat_range((data[0], data[0]), (data[1], data[1]))
        return self.nat_range((data, data))

    def compile(self, ctx: CompileCtx):
        apply = self._binder()
        if self.prefix:
            apply = _netmap(apply, self.kind == "snat")
        if ctx.family == "inet" and self.family is not None:
            apply = _of_family(apply, NFPROTO_IPV6 if self.family == "ip6" else NFPROTO_IPV4)
        from_map = next(iter(self.maps()), None)
        if from_map is None:
            rng = self.nat_range()
            return lambda pkt: apply(pkt, rng)
        ranges = from_map.lookup(ctx, self.mapped_range)  # one NatRange per element, made at commit

        def nat_from_map(pkt):
            rng = ranges(pkt)
            return NFT_BREAK if rng is None else apply(pkt, rng)
        return nat_from_map

    def _binder(self):
        """What the NAT expression does with its range: f(pkt, range) -> verdict
        (nft_masq_inet_eval(), nft_redir_inet_eval(): by the hook's family)."""
        if self.kind == "masquerade":
            def masquerade(pkt, rng):
                if pkt.state.pf == NFPROTO_IPV6:
                    return nf_nat.nf_nat_masquerade_ipv6(pkt.skb, rng, pkt.state.out_dev)
                return nf_nat.nf_nat_masquerade_ipv4(pkt.skb, rng, pkt.state.out_dev)
            return masquerade
        if self.kind == "redirect":
            def redirect(pkt, rng):
                if pkt.state.pf == NFPROTO_IPV6:
                    return nf_nat.nf_nat_redirect_ipv6(pkt.skb, rng, pkt.state.hook)
                return nf_nat.nf_nat_redirect_ipv4(pkt.skb, rng, pkt.state.hook)
            return redirect
        manip = nf_nat.NF_NAT_MANIP_SRC if self.kind == "snat" else nf_nat.NF_NAT_MANIP_DST
        return lambda pkt, rng: nf_nat.nf_nat_setup_info(pkt.skb, pkt.skb.nfct, rng, manip)


def _netmap(apply, source: bool):
    """nft_nat_setup_netmap(): the packet's source (snat) or destination
    address, its bits where the range's ends differ kept, the others the
    range's; that one address is the range."""
    def netmap(pkt, rng):
        buf, nh = pkt.buf, pkt.nh
        if pkt.state.pf == NFPROTO_IPV6:
            addr = ipv6_wire.ADDRS.unpack_from(buf, nh)[0 if source else 1]
            low, high = int.from_bytes(rng.min_addr, "big"), int.from_bytes(rng.max_addr, "big")
            keep = low ^ high
            new = ((int.from_bytes(addr, "big") & keep) | (low & ~keep)).to_bytes(16, "big")
        else:
            header = ipv4.Ipv4Packet(buf, nh)
            keep = rng.min_addr ^ rng.max_addr
            new = ((header.saddr if source else header.daddr) & keep) | (rng.min_addr & ~keep)
        return apply(pkt, NatRange(new, new, rng.min_port, rng.max_port, rng.flags))
    return netmap


def _of_family(apply, pf: int):
    """nft_nat_inet_eval(): an inet table's `snat ip6 to ...` binds only that
    family's packets; others go on past it (NFT_CONTINUE)."""
    def nat_of_family(pkt, rng):
        return apply(pkt, rng) if pkt.state.pf == pf else None
    return nat_of_family


class Xt(Stmt):
    """nft_compat: an iptables extension run inside a rule (iptables-nft's
    xt matches and targets). It prints as nft prints its translation; the
    datapath runs the equivalent statement (or nothing, for `-m comment`)."""

    def __init__(self, translation: str, inner: Stmt | None = None):
        self.translation, self.inner = translation, inner
        self.terminal = inner is not None and inner.terminal
        self.needs_conntrack = inner is not None and inner.needs_conntrack
        self.may_change_packet = inner is not None and inner.may_change_packet

    def text(self, pctx: PrintCtx) -> str:
        return self.translation

    def compile(self, ctx: CompileCtx):
        return self.inner.compile(ctx) if self.inner is not None else None


@dataclass
class Comment:
    """A rule's `comment "..."` (userdata, not an expression)."""

    text: str
    loc: object = field(default=None, compare=False)


# ------------------------------------------------------------------ listing

def dependency_base(stmt: Stmt) -> str | None:
    """A match that can be a protocol dependency: "network" (meta nfproto /
    meta protocol) or "transport" (meta l4proto / ip protocol), equality on
    one value (payload_dependency_store()); "icmp" an `icmp type` of a
    non-echo type (payload_dependency_store_icmp_type())."""
    if not isinstance(stmt, Match) or stmt.op not in ("==", "implicit") or stmt.mask is not None \
            or not isinstance(stmt.rhs, Value):
        return None
    lhs = stmt.lhs
    if isinstance(lhs, Payload) and lhs.proto in ECHO_TYPES and len(lhs.fields) == 1 and lhs.field.name == "type":
        return None if icmp_th_dep_type(lhs.proto, stmt.rhs.value) in ECHO_TYPES[lhs.proto] else "icmp"
    if isinstance(lhs, Meta) and lhs.key in ("nfproto", "protocol"):
        return "network"
    if isinstance(lhs, Meta) and lhs.key == "iiftype" and stmt.rhs.value == ARPHRD_ETHER:
        return "ll"  # payload_get_get_ll_hdr()'s dependency of an ether field in ip, ip6, inet tables
    if isinstance(lhs, Payload) and lhs.fields == (ETHER_TYPE,):  # the bridge family's link layer
        return "link" if stmt.rhs.value == ETH_P_8021Q else "network"
    if isinstance(lhs, Payload) and lhs.fields == (VLAN_TYPE,) and stmt.rhs.value not in (ETH_P_8021Q, ETH_P_8021AD):
        return "network"  # the innermost tag's protocol: what an ip/ip6 field depends on
    if (isinstance(lhs, Meta) and lhs.key == "l4proto") or \
            (isinstance(lhs, Payload) and lhs.fields[0] in NEXT_PROTOCOL_FIELDS and len(lhs.fields) == 1):
        return "transport"
    return None


NEXT_PROTOCOL_FIELDS = (PAYLOAD_FIELDS["ip"]["protocol"], PAYLOAD_FIELDS["ip6"]["nexthdr"])
# payload_may_dependency_kill(): families whose header-field dependencies nft keeps in the listing
KEEP_HEADER_DEPENDENCY = ("inet", "netdev", "bridge")


def l4_name(proto: int) -> str:
    """A transport protocol number as nft's header keywords name it (58: icmpv6)."""
    return "icmpv6" if proto == L4PROTOS["icmpv6"] else types.inet_proto.format(proto)


def selector_parts(stmt: Stmt) -> list:
    """What a statement loads from the packet: its left side's parts and
    its maps' keys' parts."""
    parts = []
    for selector in [getattr(stmt, "lhs", None)] + [m.key for m in stmt.maps()]:
        parts += selector.parts if isinstance(selector, Concat) else [selector]
    return [part if part is None else part.loaded() for part in parts]


def _killed_bases(stmt: Stmt, pctx: PrintCtx) -> set[str]:
    """The dependencies a statement's header fields make redundant; a NAT
    statement's port map does not (rule_parse_postprocess() resets the
    dependencies before it: `ip protocol 6 redirect to :tcp dport map ...`)."""
    bases = set()
    parts = selector_parts(stmt)
    if isinstance(stmt, Nat) and stmt.port_map is not None:
        key = stmt.addr_map.key if stmt.addr_map is not None else None
        parts = [] if key is None else key.parts if isinstance(key, Concat) else [key]
    for part in parts:
        if isinstance(part, Payload) and part.link:
            bases.add("ll")
            # nft keeps `ether type 8021q` before a `vlan type` match, not before `vlan type set`
            if part.proto == "vlan" and (part.field.name != "type" or getattr(stmt, "writes_payload", False)):
                bases.add("link")
            continue
        if isinstance(part, Payload) and not part.transport or getattr(part, "nexthdr", None) is not None:
            bases.add("network")  # an IP header field, or an IPv6 extension header's
        elif isinstance(part, Payload) and (part.proto in L4PROTOS or part.proto == "th" and pctx.l4 in ("tcp", "udp")):
            bases.add("transport")
    if isinstance(stmt, Reject) and stmt.kind in ("icmp", "icmpv6") and pctx.family not in ("ip", "ip6"):
        bases.add("network")  # stmt_reject_postprocess() releases the nfproto (meta protocol) dependency
    return bases


def delinearize(stmts: list[Stmt], pctx: PrintCtx) -> list[tuple[Stmt, PrintCtx]]:
    """The statements `nft list` shows, each with the protocol context it is
    printed in (netlink_delinearize.c rule_parse_postprocess): a protocol
    match an upper-layer field depends on is left out."""
    shown: list[tuple[Stmt, PrintCtx] | None] = []
    deps: dict[str, int] = {}
    l4 = None
    for stmt in _split_link_merges(stmts):
        ctx = PrintCtx(l4, pctx.now, pctx.stateless, pctx.family)
        if isinstance(stmt, Reject) and stmt.kind == "tcp reset" and "transport" in deps \
                and pctx.family in ("ip", "ip6"):
            shown[deps.pop("transport")] = None  # stmt_reject_postprocess()
        if "network" in deps and _meta_may_dependency_kill(shown[deps["network"]][0], stmt, pctx.family):
            shown[deps.pop("network")] = None
        if "icmp" in deps and _icmp_dependency_kill(shown[deps["icmp"]][0], stmt):
            shown[deps.pop("icmp")] = None
        for killed in _killed_bases(stmt, ctx) & deps.keys():
            dep = shown[deps[killed]][0]
            if killed == "transport" and isinstance(dep.lhs, Payload) and pctx.family in KEEP_HEADER_DEPENDENCY:
                del deps[killed]  # `ip protocol tcp` before `tcp dport` stays
                continue
            shown[deps.pop(killed)] = None
        if not isinstance(stmt, (Match, VerdictMap)):
            deps.clear()
        shown.append((stmt, ctx))
        base = dependency_base(stmt)
        if base:
            deps[base] = len(shown) - 1
            if base == "transport":
                l4 = l4_name(stmt.rhs.value)
    return _merged_ranges([item for item in shown if item is not None])


# the operators of two relationals in a row that nft lists as one range, and the range's
RANGE_MERGES = {(">=", "<="): "==", ("<", ">"): "!="}


def _merged_ranges(shown: list[tuple[Stmt, PrintCtx]]) -> list[tuple[Stmt, PrintCtx]]:
    """netlink_delinearize.c stmt_expr_postprocess(): a relational `>=` followed by `<=`
    lists as one range, `<` followed by `>` as a negated one (expr_may_merge_range(),
    expr_postprocess_range()). nft 1.0.6 compares only the kinds of the two left-hand
    expressions (payload, meta, ct...), not which field they load, so `ip ttl < 3 ip
    length > 100` lists as `ip length != 3-100`: the second's field and type, the
    first's value as its low end. Listing only: the rule still matches as written."""
    out: list[tuple[Stmt, PrintCtx]] = []
    for stmt, ctx in shown:
        prev = out[-1][0] if out else None
        op = RANGE_MERGES.get((prev.op, stmt.op)) if _plain_relational(prev) and _plain_relational(stmt) else None
        if op is not None and type(prev.lhs) is type(stmt.lhs):
            out[-1] = (Match(stmt.lhs, op, Range(prev.rhs.value, stmt.rhs.value), loc=stmt.loc), ctx)
            continue
        out.append((stmt, ctx))
    return out


def _plain_relational(stmt: Stmt | None) -> bool:
    return isinstance(stmt, Match) and stmt.mask is None and isinstance(stmt.rhs, Value) \
        and isinstance(stmt.rhs.value, int) and stmt.op in ("<", ">", "<=", ">=")


def _icmp_dependency_kill(dep: Stmt, stmt: Stmt) -> bool:
    """payload.c payload_may_dependency_kill_icmp(): `icmp type
    destination-unreachable` before `icmp mtu` is the field's own dependency."""
    return any(isinstance(part, Payload) and part.proto == dep.lhs.proto
               and ICMP_DEP_TYPES.get((part.proto, part.field.name)) == dep.rhs.value
               for part in selector_parts(stmt))


NFPROTO_OF_ETHERTYPE = {ETH_P_IP: NFPROTO_IPV4, ETH_P_IPV6: NFPROTO_IPV6}
NFPROTO_OF_FAMILY = {"ip": NFPROTO_IPV4, "ip6": NFPROTO_IPV6}
NFPROTO_OF_ICMP = {L4PROTOS["icmp"]: NFPROTO_IPV4, L4PROTOS["icmpv6"]: NFPROTO_IPV6}


def _meta_may_dependency_kill(dep: Stmt, stmt: Stmt, family: str) -> bool:
    """netlink_delinearize.c ct_meta_common_postprocess() and
    meta_may_dependency_kill(): a `meta l4proto` match (network base) makes the
    network protocol match before it redundant in an ip or ip6 table when that
    is the table's own protocol (`meta protocol ip udp dport 67` lists as `udp
    dport 67`); in inet, netdev and bridge only when it is icmp or icmpv6 of
    that IP version (`meta nfproto ipv4 icmpv6 type ...` keeps it)."""
    bare_ct = isinstance(stmt, Match) and isinstance(stmt.lhs, CtAddr) and stmt.lhs.bare_loc is not None \
        and stmt.op in ("==", "implicit")  # NFT_CT_SRC/DST: a network-base ct key, no l4proto
    if not bare_ct and not (isinstance(stmt, Match) and isinstance(stmt.lhs, Meta) and stmt.lhs.key == "l4proto"
                            and dependency_base(stmt) == "transport"):
        return False
    lhs = dep.lhs
    if isinstance(lhs, Meta) and lhs.key == "nfproto":
        nfproto = dep.rhs.value
    elif isinstance(lhs, Meta) and lhs.key == "protocol" or isinstance(lhs, Payload) and lhs.fields == (ETHER_TYPE,):
        nfproto = NFPROTO_OF_ETHERTYPE.get(dep.rhs.value, 0)
    else:
        return True
    if family in NFPROTO_OF_FAMILY:
        return NFPROTO_OF_FAMILY[family] == nfproto
    if family not in KEEP_HEADER_DEPENDENCY or bare_ct:
        return True
    icmp_nfproto = NFPROTO_OF_ICMP.get(stmt.rhs.value)
    return icmp_nfproto is not None and not (nfproto in NFPROTO_OF_ICMP.values() and nfproto != icmp_nfproto)


def _split_link_merges(stmts: list[Stmt]) -> list[Stmt]:
    """netlink_delinearize.c payload_match_expand(): a merged load of the link-layer
    header is its fields again before dependencies are looked at, so the
    `ether type 8021q` merged into `ether saddr` still goes before `vlan id`."""
    out = []
    for stmt in stmts:
        if isinstance(stmt, Match) and isinstance(stmt.lhs, Payload) and stmt.lhs.link and len(stmt.lhs.fields) > 1:
            remaining = stmt.lhs.bits
            for fld in stmt.lhs.fields:
                remaining -= fld.bits
                part = Value((stmt.rhs.value >> remaining) & ((1 << fld.bits) - 1))
                out.append(Match(Payload((fld,)), stmt.op, part, loc=stmt.loc))
        else:
            out.append(stmt)
    return out


def rule_text(stmts: list[Stmt], comment: Comment | None, pctx: PrintCtx) -> str:
    """A rule as `nft list` prints it."""
    texts = [stmt.text(ctx) for stmt, ctx in delinearize(stmts, pctx)]
    if comment is not None:
        texts.append(f'comment "{comment.text}"')
    return " ".join(texts)
