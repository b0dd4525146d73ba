"""Hash-based load spreading, as iptables-nft sends it (nft_compat): the HMARK
target (libxt_HMARK.c; net/netfilter/xt_HMARK.c) and the cluster match
(libxt_cluster.c; net/netfilter/xt_cluster.c). Both hash with the kernel's
jhash (include/linux/jhash.h, nft_hash.py) and scale the hash with
reciprocal_scale(), so a mark or a node is the one the kernel picks.

Left out: a connection's master (ct->master: the mock runs no conntrack
helpers, so none has one).
"""
from __future__ import annotations

import socket

from harness.mockkernel.core.skbuff import PACKET_HOST, PACKET_MULTICAST
from harness.mockkernel.ipv6.exthdrs_core import IP6_FH_F_AUTH, IP6_FH_F_FRAG, ipv6_find_hdr
from harness.mockkernel.netfilter.nf_conntrack import UNTRACKED
from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exprs import Stmt
from harness.mockkernel.netfilter.iptables import prefix_length
from harness.mockkernel.netfilter.nft_hash import jhash_1word, jhash_3words, reciprocal_scale
from harness.mockkernel.netfilter.xt_matches import XtMatch, kernel_refusal
from harness.mockkernel.netfilter.xt_options import XtOpt, c_strtoul, usage_error
from harness.mockkernel.netfilter.xt_targets import XtTarget
from harness.mockkernel.wire import icmp, icmpv6, ipv6
from harness.mockkernel.wire.dccp import IPPROTO_DCCP
from harness.mockkernel.wire.ipsec import AH_SPI, ESP_SPI, IPPROTO_AH, IPPROTO_ESP
from harness.mockkernel.wire.ipv4 import (IP_MF, IP_OFFSET, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP,
                                          IPV4_MIN_HLEN, Ipv4Packet)
from harness.mockkernel.wire.ipv6 import IPPROTO_ICMPV6, IPV6_HLEN, Ipv6Packet
from harness.mockkernel.wire.sctp import IPPROTO_SCTP
from harness.mockkernel.wire.udp import PORTS
from harness.mockkernel.wire.udplite import IPPROTO_UDPLITE

M32 = 0xFFFFFFFF
# proto_ports_offset() (include/linux/skbuff.h): where a protocol's ports (or SPI) start
PORTS_OFFSET = {IPPROTO_TCP: 0, IPPROTO_UDP: 0, IPPROTO_DCCP: 0, IPPROTO_ESP: ESP_SPI, IPPROTO_SCTP: 0,
                IPPROTO_UDPLITE: 0, IPPROTO_AH: AH_SPI}
# --hmark-tuple's words, in the order hmark_parse() tries them, and the option each stands for
TUPLE_WORDS = (("ct", "ct"), ("src", "--hmark-src-prefix"), ("dst", "--hmark-dst-prefix"),
               ("sport", "--hmark-sport-mask"), ("dport", "--hmark-dport-mask"), ("proto", "--hmark-proto-mask"),
               ("spi", "--hmark-spi-mask"))
PKT_OPTIONS = ("--hmark-src-prefix", "--hmark-dst-prefix", "--hmark-spi-mask", "--hmark-sport-mask",
               "--hmark-dport-mask", "--hmark-proto-mask", "--hmark-sport", "--hmark-dport", "--hmark-spi")


def _prefix_mask(plen: int, bits: int) -> int:
    ones = (1 << bits) - 1
    return (ones << (bits - plen)) & ones


class HmarkTarget(XtTarget):
    """-j HMARK: skb->mark from a hash of the packet's (or its connection's)
    addresses, ports and protocol, each masked as told.

    hmark_tg_v4() (hmark_tg_v6() alike, an IPv6 address folded to 32 bits
    by XOR-ing its masked words, hmark_addr6_mask()): the tuple from the
    packet (hmark_pkt_set_htuple_ipv4(): an ICMP error's quoted header
    instead of its own, no ports for ICMP or a fragment) or, with `--hmark-tuple ct`, from the packet's connection
    (hmark_ct_set_htuple(): the original source, the reply's source as the
    destination, their ports; no connection: the mark is left alone); ports
    (or an ESP/AH SPI's halves) masked, OR-ed with the set value and put
    larger first (hmark_swap_ports()); then hmark_hash(): jhash_3words() of
    the smaller address, the larger and the ports with --hmark-rnd, XOR the
    masked protocol, reciprocal_scale() into --hmark-mod, plus --hmark-offset.
    hmark_tg_check() takes no conntrack reference (nf_ct_netns_get()): with
    nothing else tracking, `ct` finds no connection."""

    name = "HMARK"
    OPTIONS = tuple(XtOpt((name,)) for name in (
        "--hmark-tuple", "--hmark-src-prefix", "--hmark-dst-prefix", "--hmark-sport-mask", "--hmark-dport-mask",
        "--hmark-spi-mask", "--hmark-sport", "--hmark-dport", "--hmark-spi", "--hmark-proto-mask", "--hmark-rnd",
        "--hmark-mod", "--hmark-offset"))

    def __init__(self, name: str = "", family=None, goto: bool = False) -> None:
        super().__init__(name, family, goto)
        self.src_plen = self.dst_plen = 0
        self.port_mask = [0, 0]  # port_mask.p16 src, dst (an SPI mask's halves)
        self.port_set = [0, 0]
        self.proto_mask = self.rnd = self.mod = self.offset = 0

    def parse(self, option: str, value: str | None, invert: bool, rule) -> None:
        """HMARK_parse(); each value's type as its xt_option_entry says. The
        options given (`given`, "ct" for XT_HMARK_CT) are info->flags."""
        if option == "--hmark-tuple":
            self._parse_tuple(value)
        elif option in ("--hmark-src-prefix", "--hmark-dst-prefix"):
            setattr(self, "src_plen" if option == "--hmark-src-prefix" else "dst_plen", self._plen(option, value))
        elif option in ("--hmark-sport-mask", "--hmark-dport-mask", "--hmark-sport", "--hmark-dport"):
            pair = self.port_mask if option.endswith("-mask") else self.port_set
            pair[0 if "-sport" in option else 1] = self.uint(option, value, 0, 0xFFFF)
        elif option in ("--hmark-spi-mask", "--hmark-spi"):
            spi = self.uint(option, value, 0, M32)
            pair = self.port_mask if option == "--hmark-spi-mask" else self.port_set
            pair[:] = [spi >> 16, spi & 0xFFFF]  # the SPI's bytes over port_mask.p16 src, dst
        elif option == "--hmark-proto-mask":
            self.proto_mask = self.uint(option, value, 0, 0xFFFF)
        elif option == "--hmark-rnd":
            self.rnd = self.uint(option, value, 0, M32)
        elif option == "--hmark-mod":
            self.mod = self.uint(option, value, 1, M32)
        elif option == "--hmark-offset":
            self.offset = self.uint(option, value, 0, M32)

    def _plen(self, option: str, value: str) -> int:
        """xtopt_parse_plen() for XTTYPE_PLENMASK: a prefix length up to the
        family's bits, else a numeric address read as a netmask
        (getaddrinfo(AI_NUMERICHOST), so inet_aton()'s forms: `33` is
        0.0.0.33); a mask that is no prefix (xtables_ipmask_to_cidr() -1)
        leaves xtopt_parse_plenmask() all ones."""
        family = self.family
        bits = family.bits
        number = c_strtoul(value)
        if number is not None and number <= bits:
            return number
        af = socket.AF_INET6 if family.nft_family == "ip6" else socket.AF_INET
        try:
            infos = socket.getaddrinfo(value, None, af, flags=socket.AI_NUMERICHOST)
        except (socket.gaierror, UnicodeError, ValueError):
            raise self.error(f'bad value for option "{option}", neither a valid network mask nor valid CIDR '
                             f'(0-{bits}).\n') from None
        plen = prefix_length(int(family.address(infos[0][4][0].split("%")[0])), bits)
        return bits if plen is None else plen

    def _parse_tuple(self, value: str) -> None:
        """hmark_parse_type(): comma-separated words, each any leading part
        of a name (strncasecmp() over the word's length), case ignored. Each
        counts as the option it stands for (its xflags bit): that option
        given afterwards is refused as given twice."""
        words = value.split(",")
        for i, word in enumerate(words):
            rest = ",".join(words[i:])
            if not word and i == len(words) - 1:
                raise usage_error('"--hmark-tuple" requires a list of types with no spaces, e.g. '
                                  'src,dst,sport,dport,proto')
            found = next((option for name, option in TUPLE_WORDS if word and name.startswith(word.lower())), None)
            if found is None:
                raise usage_error(f'Bad type "{rest}"')
            self.given.add(found)
            if found in ("--hmark-src-prefix", "--hmark-dst-prefix"):
                setattr(self, "src_plen" if found == "--hmark-src-prefix" else "dst_plen", self.family.bits)
            elif found in ("--hmark-sport-mask", "--hmark-dport-mask"):
                self.port_mask[0 if found == "--hmark-sport-mask" else 1] = 0xFFFF
            elif found == "--hmark-spi-mask":
                self.port_mask[:] = [0xFFFF, 0xFFFF]
            elif found == "--hmark-proto-mask":
                self.proto_mask = 0xFFFF

    def check(self, rule) -> None:
        """HMARK_check()."""
        given = self.given
        if "--hmark-mod" not in given:
            raise usage_error("--hmark-mod is mandatory")
        if "--hmark-rnd" not in given:
            raise usage_error("--hmark-rnd is mandatory")
        if "--hmark-spi-mask" in given and ("--hmark-sport-mask" in given or "--hmark-dport-mask" in given):
            raise usage_error("you cannot use --hmark-spi-mask and --hmark-?port-mask,at the same time")
        if not any(option in given for option in PKT_OPTIONS) and "ct" not in given:
            raise usage_error("you have to specify --hmark-tuple at least")

    def rule_check(self, rule, table: str, chain: str, builtin: bool) -> None:
        """hmark_tg_check(): --hmark-spi (a set SPI) with a set port."""
        if "--hmark-spi" in self.given and ("--hmark-sport" in self.given or "--hmark-dport" in self.given):
            raise kernel_refusal(chain)

    def save_options(self) -> str:
        """HMARK_ip4_save(), HMARK_ip6_save()."""
        flags, out = self.given, ""
        if "--hmark-src-prefix" in flags:
            out += f" --hmark-src-prefix {self.src_plen}"
        if "--hmark-dst-prefix" in flags:
            out += f" --hmark-dst-prefix {self.dst_plen}"
        (mask_src, mask_dst), (set_src, set_dst) = self.port_mask, self.port_set
        for option, text in (("--hmark-sport-mask", f"0x{mask_src:04x}"), ("--hmark-dport-mask", f"0x{mask_dst:04x}"),
                             ("--hmark-spi-mask", f"0x{mask_src << 16 | mask_dst:08x}"),
                             ("--hmark-sport", f"0x{set_src:04x}"), ("--hmark-dport", f"0x{set_dst:04x}"),
                             ("--hmark-spi", f"0x{set_src << 16 | set_dst:08x}"),
                             ("--hmark-proto-mask", f"0x{self.proto_mask:02x}"), ("--hmark-rnd", f"0x{self.rnd:08x}"),
                             ("--hmark-mod", str(self.mod)), ("--hmark-offset", str(self.offset))):
            if option in flags:
                out += f" {option} {text}"
        return out + (" --hmark-tuple ct" if "ct" in flags else "")

    def listing(self) -> str:
        """HMARK_ip4_print(), HMARK_ip6_print() (their trailing space kept)."""
        flags = self.given
        out = "HMARK "
        out += f"mod {self.mod} " if "--hmark-mod" in flags else ""
        out += f"+ 0x{self.offset:x} " if "--hmark-offset" in flags else ""
        out += "ct, " if "ct" in flags else ""
        v6 = self.family.nft_family == "ip6"
        for option, label, plen in (("--hmark-src-prefix", "src-prefix", self.src_plen),
                                    ("--hmark-dst-prefix", "dst-prefix", self.dst_plen)):
            if option in flags:  # HMARK_ip6_print(): xtables_ip6mask_to_numeric() + 1, "" for /128
                out += f"{label} {'' if v6 and plen == 128 else plen} "
        (mask_src, mask_dst), (set_src, set_dst) = self.port_mask, self.port_set
        for option, text in (("--hmark-sport-mask", f"sport-mask 0x{mask_src:x}"),
                             ("--hmark-dport-mask", f"dport-mask 0x{mask_dst:x}"),
                             ("--hmark-spi-mask", f"spi-mask 0x{mask_src << 16 | mask_dst:x}"),
                             ("--hmark-sport", f"sport 0x{set_src:x}"), ("--hmark-dport", f"dport 0x{set_dst:x}"),
                             ("--hmark-spi", f"spi 0x{set_src << 16 | set_dst:x}"),
                             ("--hmark-proto-mask", f"proto-mask 0x{self.proto_mask:x}"),
                             ("--hmark-rnd", f"rnd 0x{self.rnd:x}")):
            if option in flags:
                out += text + " "
        return out

    def stmts(self, rule) -> list[Stmt]:
        bits = self.family.bits
        info = HmarkInfo(_prefix_mask(self.src_plen, bits), _prefix_mask(self.dst_plen, bits), tuple(self.port_mask),
                         tuple(self.port_set), self.proto_mask, self.rnd, self.mod, self.offset)
        set_htuple = hmark_ct_set_htuple if "ct" in self.given else \
            hmark_pkt_set_htuple_ipv6 if bits == 128 else hmark_pkt_set_htuple_ipv4

        def build(ctx):
            where = ctx.chain_id

            def hmark_tg(pkt):
                htuple = set_htuple(pkt, info)
                if htuple is None:
                    return None
                skb = pkt.skb
                skb.mark = mark = hmark_hash(htuple, info)
                skb.net.tracer.hop(skb, pkt.state.stage, where, "HMARK", f"mark 0x{mark:x}")
                return None
            return hmark_tg
        return [XtCompat("target", "HMARK", None, build, may_change_packet=True)]


class HmarkInfo:
    """struct xt_hmark_info as the kernel reads it: masks as host-order ints."""

    __slots__ = ("src_mask", "dst_mask", "port_mask", "port_set", "proto_mask", "rnd", "mod", "offset")

    def __init__(self, src_mask, dst_mask, port_mask, port_set, proto_mask, rnd, mod, offset) -> None:
        self.src_mask, self.dst_mask, self.port_mask, self.port_set = src_mask, dst_mask, port_mask, port_set
        self.proto_mask, self.rnd, self.mod, self.offset = proto_mask, rnd, mod, offset


def hmark_swap_ports(first: int, second: int, info: HmarkInfo) -> int:
    """hmark_swap_ports(): each half masked and OR-ed with its set value, the
    larger in the high 16 bits."""
    src = (first & info.port_mask[0]) | info.port_set[0]
    dst = (second & info.port_mask[1]) | info.port_set[1]
    return (dst << 16 | src) if dst > src else (src << 16 | dst)


def hmark_ct_set_htuple(pkt, info: HmarkInfo) -> tuple | None:
    """hmark_ct_set_htuple(): (src, dst, ports, proto) of the packet's
    connection, None without one (nf_ct_get() NULL, untracked too)."""
    ct = pkt.skb.nfct
    if ct is None or ct is UNTRACKED:
        return None
    original, reply = ct.original, ct.reply
    ports = 0
    if original.proto != IPPROTO_ICMP:
        ports = hmark_swap_ports(original.sport, reply.sport, info)
    src, dst = original.src, reply.src
    if src.__class__ is bytes:  # AF_INET6: hmark_addr_mask()
        return hmark_addr6_mask(src, info.src_mask), hmark_addr6_mask(dst, info.dst_mask), ports, original.proto
    return src & info.src_mask, dst & info.dst_mask, ports, original.proto


def hmark_pkt_set_htuple_ipv4(pkt, info: HmarkInfo) -> tuple | None:
    """hmark_pkt_set_htuple_ipv4(): from the IP header, or an ICMP error's
    quoted one (get_inner_hdr(); None when that header is cut short); the
    ports (hmark_set_tuple_ports(): proto_ports_offset(), none when fewer
    than 4 bytes remain) unless ICMP or a fragment."""
    buf, end, nhoff = pkt.buf, pkt.end, pkt.nh
    header = Ipv4Packet(buf, nhoff)
    if header.protocol == IPPROTO_ICMP:
        icmp_off = nhoff + header.header_len
        if icmp_off + icmp.ICMP_HLEN <= end and icmp.IcmpMessage(buf, icmp_off).type in icmp.ERROR_TYPES:
            nhoff = icmp_off + icmp.ICMP_HLEN
            if nhoff + IPV4_MIN_HLEN > end:
                return None
            header = Ipv4Packet(buf, nhoff)
    src, dst, proto = header.saddr & info.src_mask, header.daddr & info.dst_mask, header.protocol
    ports = 0
    offset = PORTS_OFFSET.get(proto)
    if offset is not None and not header.frag_off & (IP_MF | IP_OFFSET):
        at = nhoff + header.header_len + offset
        if at + PORTS.size <= end:
            ports = hmark_swap_ports(*PORTS.unpack_from(buf, at), info)
    return src, dst, ports, proto


def hmark_addr6_mask(addr: bytes, mask: int) -> int:
    """hmark_addr6_mask(): the four masked 32-bit words XOR-ed together."""
    masked = int.from_bytes(addr, "big") & mask
    return ((masked >> 96) ^ (masked >> 64) ^ (masked >> 32) ^ masked) & M32


def hmark_pkt_set_htuple_ipv6(pkt, info: HmarkInfo) -> tuple | None:
    """hmark_pkt_set_htuple_ipv6(): the upper-layer header ipv6_find_hdr()
    finds (stopping at AH, whose SPI stands for ports; none found: the
    all-zeros tuple); an ICMPv6 error (type 1..127, get_inner6_hdr()) is
    hashed as the packet it quotes (None when that is cut short or not IPv6);
    no ports for ICMPv6 or behind a fragment header."""
    buf, end = pkt.buf, pkt.end
    header = Ipv6Packet(buf, pkt.nh)
    nexthdr, nhoff, _, flags = ipv6_find_hdr(buf, pkt.nh, end, -1, IP6_FH_F_AUTH)
    if nexthdr < 0:
        return 0, 0, 0, 0
    if not flags & IP6_FH_F_FRAG and nexthdr == IPPROTO_ICMPV6 and nhoff + icmpv6.ICMPV6_HLEN <= end and \
            0 < icmpv6.Icmpv6Message(buf, nhoff).type < icmpv6.ICMPV6_INFOMSG_MASK:
        inner = nhoff + icmpv6.ICMPV6_HLEN
        if inner + IPV6_HLEN > end:
            return None
        header = Ipv6Packet(buf, inner)
        if header.version != 6:  # ipv6_find_hdr() from an offset: -EBADMSG
            return None
        nexthdr, nhoff, _, flags = ipv6_find_hdr(buf, inner, end, -1, IP6_FH_F_AUTH)
        if nexthdr < 0:
            return None
    src, dst = hmark_addr6_mask(header.saddr, info.src_mask), hmark_addr6_mask(header.daddr, info.dst_mask)
    ports = 0
    offset = PORTS_OFFSET.get(nexthdr)
    if offset is not None and not flags & IP6_FH_F_FRAG and nhoff + offset + PORTS.size <= end:
        ports = hmark_swap_ports(*PORTS.unpack_from(buf, nhoff + offset), info)
    return src, dst, ports, nexthdr


def hmark_hash(htuple: tuple, info: HmarkInfo) -> int:
    """hmark_hash(): endian-independent, the same on every node of a cluster."""
    src, dst, ports, proto = htuple
    if dst < src:
        src, dst = dst, src
    value = jhash_3words(src, dst, ports, info.rnd) ^ (proto & info.proto_mask)
    return (reciprocal_scale(value, info.mod) + info.offset) & M32


XT_CLUSTER_NODES_MAX = 32


class ClusterMatch(XtMatch):
    """-m cluster: whether this node handles the packet's connection.

    xt_cluster_mt(): first a packet sent to a unicast address but received as
    PACKET_MULTICAST (the cluster's shared multicast MAC) becomes
    PACKET_HOST; then no connection (untracked too): no match, `!` or not;
    else reciprocal_scale() of jhash_1word() over the original direction's
    source address (the __be32 as an x86 u32; of an IPv6 one only the first
    32 bits: xt_cluster_hash_ipv6() gives jhash2() NF_CT_TUPLE_L3SIZE /
    sizeof(__u32) words, and NF_CT_TUPLE_L3SIZE already counts words, 4, so
    one; jhash2() of one word is jhash_1word()) with --cluster-hash-seed
    into --cluster-total-nodes picks a node (xt_cluster_hash()), and the
    match is whether that node's bit is in the local node mask.
    xt_cluster_mt_checkentry() takes a conntrack reference (nf_ct_netns_get())."""

    name = "cluster"
    OPTIONS = (XtOpt(("--cluster-total-nodes",), mandatory=True),
               XtOpt(("--cluster-local-node",), invert=True, excl=("--cluster-local-nodemask",)),
               XtOpt(("--cluster-local-nodemask",), invert=True, excl=("--cluster-local-node",)),
               XtOpt(("--cluster-hash-seed",), mandatory=True))

    def __init__(self) -> None:
        super().__init__()
        self.total_nodes = self.node_mask = self.hash_seed = 0
        self.invert = False

    def parse(self, option: str, value: str, invert: bool, rule) -> None:
        """cluster_parse(): the node numbers and the mask 1..32."""
        if option == "--cluster-hash-seed":
            self.hash_seed = self.uint(option, value, 0, M32)
            return
        number = self.uint(option, value, 1, XT_CLUSTER_NODES_MAX)
        if option == "--cluster-total-nodes":
            self.total_nodes = number
            return
        self.node_mask = 1 << (number - 1) if option == "--cluster-local-node" else number
        self.invert = self.invert or invert

    def check(self, rule) -> None:
        """cluster_check()."""
        given = self.given
        for local, text in (("--cluster-local-node", "`--cluster-local-node' must be <= `--cluster-total-nodes'"),
                            ("--cluster-local-nodemask", "`--cluster-local-nodemask' too big for "
                                                         "`--cluster-total-nodes'")):
            if {"--cluster-total-nodes", local, "--cluster-hash-seed"} <= given:
                if self.node_mask >= 1 << self.total_nodes:
                    raise usage_error(f"cluster match: {text}")
                break
        else:
            if "--cluster-local-node" not in given and "--cluster-local-nodemask" not in given:
                raise usage_error("cluster match: `--cluster-local-node' or`--cluster-local-nodemask' is missing")

    def save(self) -> str:
        return (f"-m cluster {'! ' if self.invert else ''}--cluster-local-nodemask 0x{self.node_mask:08x} "
                f"--cluster-total-nodes {self.total_nodes} --cluster-hash-seed 0x{self.hash_seed:08x}")

    def listing(self) -> str:
        return (f"cluster {'!' if self.invert else ''}node_mask=0x{self.node_mask:08x} "
                f"total_nodes={self.total_nodes} hash_seed=0x{self.hash_seed:08x}")

    def xlate(self) -> str:
        """cluster_xlate(): a single node by its number (node 1 and 2 by
        their mask), several as a set of bit positions."""
        mask, head = self.node_mask, f"jhash ct original saddr mod {self.total_nodes} seed 0x{self.hash_seed:08x}"
        if not mask & (mask - 1):
            return f"{head} eq {mask if mask <= 2 else mask.bit_length()} meta pkttype set host"
        nodes = ", ".join(str(node) for node in range(32) if mask & 1 << node)
        return f"{head} {{ {nodes} }} meta pkttype set host"

    def stmts(self, rule) -> list[Stmt]:
        total, mask, seed, invert = self.total_nodes, self.node_mask, self.hash_seed, self.invert
        v6 = rule.family.nft_family == "ip6"

        def build(ctx):
            def xt_cluster_mt(pkt) -> bool:
                skb = pkt.skb
                if skb.pkt_type == PACKET_MULTICAST:
                    multicast = ipv6.is_multicast(Ipv6Packet(pkt.buf, pkt.nh).daddr) if v6 else \
                        ipv4_is_multicast(Ipv4Packet(pkt.buf, pkt.nh).daddr)
                    if not multicast:
                        skb.pkt_type = PACKET_HOST
                ct = skb.nfct
                if ct is None or ct is UNTRACKED:
                    return False
                src = ct.original.src
                # the first 32 bits as x86 loads them: xt_cluster_hash_ipv4()'s __be32, or the
                # one word xt_cluster_hash_ipv6()'s jhash2() takes (NF_CT_TUPLE_L3SIZE / sizeof(u32))
                first = src[:4] if src.__class__ is bytes else src.to_bytes(4, "big")
                node = reciprocal_scale(jhash_1word(int.from_bytes(first, "little"), seed), total)
                return bool(1 << node & mask) != invert
            return xt_cluster_mt
        return [XtCompat("match", "cluster", self.xlate(), build, needs_conntrack=True, may_change_packet=True)]


def ipv4_is_multicast(addr: int) -> bool:
    """include/linux/in.h ipv4_is_multicast(): 224.0.0.0/4."""
    return addr & 0xF0000000 == 0xE0000000


HASH_TARGETS = {"HMARK": HmarkTarget}
HASH_MATCHES = {"cluster": ClusterMatch}
