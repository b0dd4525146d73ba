"""nft_exthdr's TCP options: `tcp option maxseg size|length` matches, `tcp option
maxseg exists|missing`, and `tcp option maxseg size set V` (net/netfilter/nft_exthdr.c,
nft_exthdr_tcp_eval() and nft_exthdr_tcp_set_eval(); nftables src/tcpopt.c).

Both walk the options as nft_exthdr does, which is not tcp_parse_options()
(wire/tcp.py exthdr_option(): an EOL does not end the walk); the first option
of the kind is the one. An option running past the header, or too short for
the field, breaks the rule (NFT_BREAK); so does a packet that is not TCP, a
non-first fragment, or a header not all there. A load finds nothing in
a header without the option (the rule breaks; `exists` is 0 instead).

The set statement writes the MSS only when that lowers it ("increase can cause
connection to stall"), on any segment that carries the option, SYN or not: a
rule restricts it to SYNs with `tcp flags syn`. The TCP checksum is updated
incrementally with the old and new 16 bits as they lie
(inet_proto_csum_replace2()), which is right only for a field at an even
offset: an MSS option after a single NOP leaves with a checksum the receiver
refuses, on Linux as here. Left out: options other than maxseg, raw `tcp option
@kind,off,len`, `reset` (option stripping), 4-byte fields.
"""
from __future__ import annotations

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_exprs import NFT_BREAK, CompileCtx, PrintCtx, Selector, Stmt
from harness.mockkernel.wire import tcp
from harness.mockkernel.wire.ipv4 import IPPROTO_TCP

# nftables src/tcpopt.c: the options nft names, their kind, and their fields as (offset, bytes, type)
TCP_OPTIONS = {"maxseg": (tcp.TCPOPT_MSS, {"size": (2, 2, types.length16), "length": (1, 1, types.ttl)})}
OPTION_ALIASES = {"mss": "maxseg"}  # scanner.l: both words are the MSS token


def nft_tcp_option(pkt, kind: int, need: int) -> int | None:
    """nft_tcp_header_pointer() and the option walk: where in pkt.buf the first
    option of `kind` starts, tcp.OPTION_ABSENT, or None when the rule breaks."""
    thoff = pkt.thoff
    if pkt.tprot != IPPROTO_TCP or pkt.fragoff or thoff < 0 or thoff + tcp.TCP_HLEN > pkt.end:
        return None
    hdrlen = tcp.DATA_OFFSET_LEN[pkt.buf[thoff + tcp.DOFF]]
    if hdrlen < tcp.TCP_HLEN or thoff + hdrlen > pkt.end:
        return None
    return tcp.exthdr_option(pkt.buf, thoff, hdrlen, kind, need)


class TcpOption(Selector):
    """`tcp option NAME FIELD` (exthdr load tcpopt), or `tcp option NAME` with no
    field: whether the option is there (NFT_EXTHDR_F_PRESENT, `exists`/`missing`)."""

    def __init__(self, name: str, field: str | None):
        self.name, self.field = name, field
        self.kind, fields = TCP_OPTIONS[name]
        if field is None:
            self.offset, self.size, self.dtype = 0, 1, types.boolean
        else:
            self.offset, self.size, self.dtype = fields[field]

    def text(self, pctx: PrintCtx) -> str:
        return f"tcp option {self.name}" + (f" {self.field}" if self.field else "")

    def load(self, ctx: CompileCtx):
        kind, offset, size, need = self.kind, self.offset, self.size, self.offset + self.size
        if self.field is None:
            def tcp_option_present(pkt):
                at = nft_tcp_option(pkt, kind, need)
                return 0 if at is None or at == tcp.OPTION_ABSENT else 1
            return tcp_option_present

        def tcp_option_field(pkt):
            at = nft_tcp_option(pkt, kind, need)
            if at is None or at == tcp.OPTION_ABSENT:
                return None
            return tcp.option_field(pkt.buf, at, offset, size)
        return tcp_option_field


class TcpOptionSet(Stmt):
    """`tcp option maxseg size set V`: nft_exthdr_tcp_set_eval() of a 2-byte
    field from a constant or a load (`rt mtu`)."""

    may_change_packet = True

    def __init__(self, option: TcpOption, value, loc=None):
        self.option, self.value, self.loc = option, value, loc  # value: int or a Selector

    def text(self, pctx: PrintCtx) -> str:
        value = self.value.text(pctx) if isinstance(self.value, Selector) else self.option.dtype.format(self.value)
        return f"{self.option.text(pctx)} set {value}"

    def compile(self, ctx: CompileCtx):
        option = self.option
        kind, offset, need = option.kind, option.offset, option.offset + option.size
        only_lower = kind == tcp.TCPOPT_MSS
        load = self.value.load(ctx) if isinstance(self.value, Selector) else (lambda pkt, v=self.value: v)

        def tcp_option_set(pkt):
            new = load(pkt)
            if new is None:  # the source expression broke the rule first
                return NFT_BREAK
            at = nft_tcp_option(pkt, kind, need)
            if at is None:
                return NFT_BREAK
            if at == tcp.OPTION_ABSENT:
                return None
            old = tcp.option_field(pkt.buf, at, offset, 2)
            if old == new or only_lower and old <= new:
                return None
            tcp.replace_u16(pkt.buf, pkt.thoff, at + offset, new)
        return tcp_option_set
