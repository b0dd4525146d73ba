"""nft_payload's set operation: `ip daddr set 10.0.0.1`, `ip ecn set ce`, `ip6
flowlabel set 1`, `udp dport set 53`, ... (net/netfilter/nft_payload.c
nft_payload_set_eval(); nftables evaluate.c stmt_evaluate_payload() and
netlink_linearize.c netlink_gen_payload_stmt()).

What nft sends: the bytes the field spans (a field off byte boundaries is
written as its bytes with the other bits kept, `(old & ~mask) ^ value`), and
where the header has a checksum (src/proto.c checksum_key: ip, tcp, udp, icmp,
icmpv6, igmp) its offset, NFT_PAYLOAD_CSUM_INET, with an odd number of bytes
grown to an even one (one byte before, if the field starts at an odd offset,
else after) because the kernel's checksum helpers sum 16-bit words. A network
header field of the transport checksum's pseudo-header (proto.c pseudohdr: the
addresses, ip protocol / ip6 nexthdr, the length) carries
NFT_PAYLOAD_L4CSUM_PSEUDOHDR.

What the kernel does with it: a transport header field needs the transport
header of a first fragment (else NFT_BREAK). The header's checksum is updated
incrementally with the old and new bytes (nft_payload_csum_inet(),
nft_csum_replace(): a result of 0 is written as CSUM_MANGLED_0, 0xFFFF) -- a
UDP datagram without a checksum (0) gets one that does not verify -- and with
the pseudo-header flag the transport checksum too (nft_payload_l4csum_update():
TCP's, UDP's unless it is 0, UDP-Lite's, ICMPv6's; none in a non-first
fragment); then the bytes are stored. Left out: CHECKSUM_PARTIAL and
CHECKSUM_COMPLETE packets (the mock's checksums are always complete in the
header), SCTP's CRC32c (NFT_PAYLOAD_CSUM_SCTP: setting an SCTP field is not
modelled).

A VLAN tag held out of band (skb->vlan_tci) is written
as nft_payload_set_vlan() writes it: the TCI's two bytes become the tag's
TCI, a field after the tag is written where it lies in the frame, 4 bytes
before its offset in the tagged header (vlan_hlen); anything else at the
tag's place breaks the rule.
"""
from __future__ import annotations

from harness.mockkernel.netfilter.nft_exprs import NFT_BREAK, CompileCtx, Field, Payload, PrintCtx, Stmt
from harness.mockkernel.netfilter.nft_payload_raw import RawPayload, inner_offset
from harness.mockkernel.wire import ipv4, tcp, udp
from harness.mockkernel.wire.checksum import csum_replace
from harness.mockkernel.wire.udplite import IPPROTO_UDPLITE

IPPROTO_ICMPV6 = 58

CSUM_MANGLED_0 = 0xFFFF
# src/proto.c: the offset of each header's checksum_key field (NFT_PAYLOAD_CSUM_INET)
CHECKSUM_OFFSET = {"ip": ipv4.CHECK, "tcp": tcp.CHECK, "udp": udp.CHECK, "icmp": 2, "icmpv6": 2, "igmp": 2}
# src/proto.c pseudohdr: the network header fields the transport checksum covers
PSEUDO_HEADER = {("ip", "saddr"), ("ip", "daddr"), ("ip", "protocol"), ("ip", "length"),
                 ("ip6", "saddr"), ("ip6", "daddr"), ("ip6", "nexthdr"), ("ip6", "length")}
# nft_payload_l4csum_offset(): where each transport protocol keeps the checksum the pseudo-header is in
L4_CHECKSUM = {ipv4.IPPROTO_TCP: tcp.CHECK, ipv4.IPPROTO_UDP: udp.CHECK, IPPROTO_UDPLITE: udp.CHECK,
               IPPROTO_ICMPV6: 2}
CHECKSUM_LEN = 2
NOT_SETTABLE = ("sctp", "th")  # CRC32c; no header of its own
VLAN_PROTO_OFFSET, VLAN_TCI_OFFSET, VLAN_HLEN = 12, 14, 4  # struct vlan_ethhdr


def _u16(buf, at: int) -> int:
    return int.from_bytes(buf[at:at + CHECKSUM_LEN], "big")


def nft_csum_replace(buf, at: int, old: int, new: int, size: int) -> None:
    """nft_csum_replace() of the 16-bit checksum at `at`: `size` bytes it covers went from `old` to `new`."""
    check = csum_replace(_u16(buf, at), old, new, size) or CSUM_MANGLED_0
    buf[at:at + 2] = check.to_bytes(2, "big")


class PayloadSet(Stmt):
    """`PROTO FIELD set VALUE`: nft_payload_set_eval() of a constant."""

    may_change_packet = True
    writes_payload = True  # its field's dependency is left out of the listing as a match's is (_killed_bases())

    def __init__(self, fld: Field, value: int, loc=None, checksums: bool = True):
        self.fld, self.value, self.loc = fld, value, loc
        self.checksums = checksums  # False: written as a raw payload (csum_type 0), listed as the field
        self.lhs = Payload((fld,))  # what the statement writes: its protocol dependency is the field's

    def text(self, pctx: PrintCtx) -> str:
        return f"{self.lhs.text(pctx)} set {self.fld.dtype.format(self.value)}"

    def written_bytes(self) -> tuple[int, int, int, int]:
        """(offset, bytes, mask, value) of what is written, as nft sends it: the
        bytes the field spans, grown to an even number where a checksum is
        updated; `mask` the bits of the field in them, `value` shifted in place."""
        fld = self.fld
        mask_bits = fld.mask if fld.mask else (1 << fld.bits) - 1
        offset, size = fld.offset, (mask_bits.bit_length() + 7) // 8 if fld.mask else fld.bits // 8
        mask, value = mask_bits, (self.value << fld.shift) & mask_bits
        if self.checksums and fld.proto in CHECKSUM_OFFSET and size % 2:
            if offset % 2:
                offset -= 1  # prefer a 16-bit aligned fetch
            else:
                mask, value = mask << 8, value << 8
            size += 1
        return offset, size, mask, value

    def compile(self, ctx: CompileCtx):
        offset, size, mask, value = self.written_bytes()
        payload = self.lhs
        keep = ((1 << 8 * size) - 1) ^ mask
        csum_at = CHECKSUM_OFFSET.get(self.fld.proto) if self.checksums else None
        pseudo = self.checksums and (self.fld.proto, self.fld.name) in PSEUDO_HEADER

        def payload_set(pkt):
            if payload.link:
                skb = pkt.skb
                start = skb.mac_header
                if skb.vlan_proto and offset + size > VLAN_PROTO_OFFSET:  # nft_payload_need_vlan_adjust()
                    if offset == VLAN_TCI_OFFSET and size == 2:
                        skb.vlan_tci = (skb.vlan_tci & keep) ^ value
                        return None
                    if offset < VLAN_TCI_OFFSET + 2:
                        return NFT_BREAK
                    start -= VLAN_HLEN
            elif payload.transport:
                if pkt.thoff < 0 or pkt.fragoff:
                    return NFT_BREAK
                start = pkt.thoff
            else:
                start = pkt.nh
            buf, at = pkt.buf, start + offset
            if at + size > pkt.end or csum_at is not None and start + csum_at + 2 > pkt.end:
                return NFT_BREAK
            old = int.from_bytes(buf[at:at + size], "big")
            new = (old & keep) ^ value
            if csum_at is not None:
                nft_csum_replace(buf, start + csum_at, old, new, size)
            if pseudo:
                l4_checksum_update(pkt, old, new, size)
            buf[at:at + size] = new.to_bytes(size, "big")
        return payload_set


class RawPayloadSet(Stmt):
    """`@BASE,OFFSET,LEN set VALUE` on byte boundaries: nft_payload_set_eval() with
    no checksum (nft sends csum_type 0: a raw field names no protocol). Where the
    rule's protocols name the field at that place, evaluate_rule() makes it
    that field's PayloadSet (`arp daddr ether set ...`), as nft lists it."""

    may_change_packet = True

    def __init__(self, raw: RawPayload, value: int, loc=None):
        self.lhs, self.value, self.loc = raw, value, loc

    def text(self, pctx: PrintCtx) -> str:
        return f"{self.lhs.text(pctx)} set {self.lhs.dtype.format(self.value)}"

    def json(self, pctx: PrintCtx) -> list[dict]:
        return [{"mangle": {"key": self.lhs.json(pctx), "value": self.lhs.dtype.json_value(self.value)}}]

    def as_field(self, field: Payload) -> PayloadSet:
        """The field's set statement as nft lists it; the kernel still writes no checksum."""
        stmt = PayloadSet(field.field, self.value, loc=self.loc, checksums=False)
        stmt.span = self.span
        return stmt

    def compile(self, ctx: CompileCtx):
        base, offset, size, value = self.lhs.base, self.lhs.offset // 8, self.lhs.bits // 8, self.value

        def raw_payload_set(pkt):
            if base == "ll":
                start = pkt.skb.mac_header
            elif base == "nh":
                start = pkt.nh
            elif base == "th":
                if pkt.thoff < 0 or pkt.fragoff:
                    return NFT_BREAK
                start = pkt.thoff
            else:
                start = inner_offset(pkt)
                if start is None:
                    return NFT_BREAK
            at = start + offset
            if at + size > pkt.end:
                return NFT_BREAK
            pkt.buf[at:at + size] = value.to_bytes(size, "big")
        return raw_payload_set


def l4_checksum_update(pkt, old: int, new: int, size: int) -> None:
    """nft_payload_l4csum_update(): the transport checksum over the pseudo-header."""
    check = L4_CHECKSUM.get(pkt.tprot)
    if check is None or pkt.fragoff or pkt.thoff < 0 or pkt.thoff + check + 2 > pkt.end:
        return
    at = pkt.thoff + check
    if pkt.tprot == ipv4.IPPROTO_UDP and not _u16(pkt.buf, at):  # nft_payload_udp_checksum(): none sent
        return
    nft_csum_replace(pkt.buf, at, old, new, size)
