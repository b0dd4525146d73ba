"""TCP header view (include/uapi/linux/tcp.h, struct tcphdr) and its options.

check_len() checks what tcp_v4_rcv() checks of the header itself (20 bytes,
data offset >= 5, the data offset's bytes there). options() walks the option
list as the kernel's parsers do (tcp_parse_options(), nf_conntrack's
tcp_options() and tcp_sack()); parse_options() reads their values into
`TcpOptions`. `OutOptions` is struct tcp_out_options and write_options() lays
it out as net/ipv4/tcp_output.c tcp_options_write() does: MSS, then the
timestamp (its two NOPs carry SACK-permitted when both are sent), SACK-permitted
alone behind two NOPs, NOP + window scale, then NOP NOP + SACK blocks.
build_segment() makes a whole segment with its checksum, over the IPv4
pseudo-header for addresses given as integers, the IPv6 one (RFC 8200 8.1)
for 16-byte addresses.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from harness.mockkernel.wire import ipv4, ipv6
from harness.mockkernel.wire.checksum import checksum, csum_replace
from harness.mockkernel.wire.errors import Malformed, Truncated
from harness.mockkernel.wire.ipv4 import IPPROTO_TCP
from harness.mockkernel.wire.view import HeaderView

TCPHDR_FIN, TCPHDR_SYN, TCPHDR_RST, TCPHDR_PSH, TCPHDR_ACK, TCPHDR_URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
TCPHDR_ECE, TCPHDR_CWR = 0x40, 0x80

TCP_HLEN = 20
# field offsets of struct tcphdr (data offset: the high nibble of DOFF's byte)
SOURCE, DEST, SEQ, ACK_SEQ, DOFF, FLAGS, WINDOW, CHECK, URG_PTR, OPTIONS = 0, 2, 4, 8, 12, 13, 14, 16, 18, 20
HEADER = struct.Struct("!HHIIBBHHH")  # source, dest, seq, ack_seq, doff << 4, flags, window, check, urg_ptr
unpack = HEADER.unpack_from
PORTS = struct.Struct("!HH")  # source, dest
OPT_KIND, OPT_LEN = 0, 1  # an option's kind and length bytes
SEGMENT_FIELDS = struct.Struct("!4xIIBBH")  # seq, ack_seq, doff << 4, flags, window: what conntrack reads
# the header length in bytes for each value of the data offset's byte
DATA_OFFSET_LEN = tuple((byte >> 4) * 4 for byte in range(256))
_U16, _U32 = struct.Struct("!H"), struct.Struct("!I")
_TS_VALUES = struct.Struct("!II")  # a timestamp's (tsval, tsecr), a SACK block's (start, end)

TCPOPT_EOL, TCPOPT_NOP, TCPOPT_MSS, TCPOPT_WINDOW, TCPOPT_SACK_PERM, TCPOPT_SACK, TCPOPT_TIMESTAMP = \
    0, 1, 2, 3, 4, 5, 8
TCPOLEN_MSS, TCPOLEN_WINDOW, TCPOLEN_SACK_PERM, TCPOLEN_TIMESTAMP = 4, 3, 2, 10
TCPOLEN_SACK_BASE, TCPOLEN_SACK_PERBLOCK = 2, 8
MAX_TCP_OPTION_SPACE = 40
# what each option takes once aligned to 32 bits (include/net/tcp.h TCPOLEN_*_ALIGNED)
TCPOLEN_MSS_ALIGNED, TCPOLEN_WSCALE_ALIGNED, TCPOLEN_SACKPERM_ALIGNED, TCPOLEN_SACK_BASE_ALIGNED = 4, 4, 4, 4
# NOP, NOP, timestamp of 10 bytes: what nearly every Linux segment carries
TCPOLEN_TSTAMP_ALIGNED, TCPOPT_TSTAMP_WORD = 12, 0x0101080A


def check_len(buf: bytearray, off: int, end: int) -> int:
    """The header length (doff * 4) of the segment at `off` after
    tcp_v4_rcv()'s checks: 20 bytes there, data offset >= 5, its bytes there."""
    available = end - off
    if available < TCP_HLEN:
        raise Truncated(None, f"TCP header needs {TCP_HLEN} bytes, have {available}")
    doff = DATA_OFFSET_LEN[buf[off + DOFF]]
    if doff < TCP_HLEN:
        raise Malformed("doff", f"TCP data offset {doff // 4} is under 5")
    if available < doff:
        raise Truncated("doff", f"TCP data offset says {doff} header bytes, have {available}")
    return doff


def checksum_ok(buf: bytearray, nh: int, off: int, end: int) -> bool:
    """The segment `off`..`end` against the pseudo-header of the IPv4 header at `nh`."""
    return not checksum(memoryview(buf)[off:end], ipv4.pseudo_header_sum(buf, nh, IPPROTO_TCP, end - off))


def options(buf: bytearray, off: int, doff: int):
    """(kind, offset, size) of each option of the header at `off` whose length
    is `doff`, as the kernel's loops walk them: stop at EOL, at a kind with no
    room for a length, at a length under 2 ("silly options") or past the
    header ("don't parse partial options"); NOPs are stepped over."""
    ptr, end = off + OPTIONS, off + doff
    while ptr < end:
        kind = buf[ptr]
        if kind == TCPOPT_EOL:
            return
        if kind == TCPOPT_NOP:
            ptr += 1
            continue
        if end - ptr < 2:
            return
        size = buf[ptr + 1]
        if size < 2 or size > end - ptr:
            return
        yield kind, ptr, size
        ptr += size


OPTION_ABSENT = -1  # exthdr_option(): the header has no option of that kind


def exthdr_option(buf: bytearray, off: int, doff: int, kind: int, need: int) -> int | None:
    """Where the first option of `kind` starts, as nf_tables' exthdr walks the
    options (net/netfilter/nft_exthdr.c): from byte 20 while a kind and a length
    fit, a kind of EOL or NOP or a length of 0 counting as one byte (an EOL does
    not end it). OPTION_ABSENT when there is none; None when it runs past the
    header or is shorter than `need` bytes (the field's offset + length)."""
    i = TCP_HLEN
    while i < doff - 1:
        ptr = off + i
        size = 1 if buf[ptr] <= TCPOPT_NOP or buf[ptr + 1] == 0 else buf[ptr + 1]
        if buf[ptr] == kind:
            return None if i + size > doff or need > size else ptr
        i += size
    return OPTION_ABSENT


def mss_option(buf: bytearray, off: int, doff: int) -> int | None:
    """The MSS option's value as xt_tcpmss.c tcpmss_mt() finds it: the first
    option of kind 2 and length 4 with 4 bytes left; None without one."""
    i = TCP_HLEN
    while i < doff:
        ptr = off + i
        if buf[ptr] == TCPOPT_MSS and doff - i >= TCPOLEN_MSS and buf[ptr + 1] == TCPOLEN_MSS:
            return _U16.unpack_from(buf, ptr + 2)[0]
        i += 1 if buf[ptr] < 2 or i + 1 >= doff else buf[ptr + 1] or 1
    return None


def strip_options(buf: bytearray, off: int, doff: int, kinds) -> None:
    """xt_TCPOPTSTRIP.c tcpoptstrip_mangle_packet(): every option whose kind is
    in `kinds` becomes NOPs, the checksum patched word by word; the walk (a
    kind of EOL or NOP, or a length of 0, one byte) stops at an option
    running past the header."""
    i = TCP_HLEN
    while i < doff - 1:
        ptr = off + i
        size = 1 if buf[ptr] <= TCPOPT_NOP or buf[ptr + 1] == 0 else buf[ptr + 1]
        if i + size > doff:
            break
        if buf[ptr] in kinds:
            for word in range(i & ~1, i + size, 2):
                new = bytearray(buf[off + word:off + word + 2])
                for k in (0, 1):
                    if i <= word + k < i + size:
                        new[k] = TCPOPT_NOP
                replace_u16(buf, off, off + word, _U16.unpack(new)[0])
        i += size


def set_ecn_flags(buf: bytearray, off: int, ece: int | None, cwr: int | None) -> None:
    """ipt_ECN.c set_ect_tcp(): ECE and CWR set as given (None: left), the
    checksum patched over the data offset and flags word, only when they change."""
    old = _U16.unpack_from(buf, off + DOFF)[0]
    new = old
    for value, bit in ((ece, TCPHDR_ECE), (cwr, TCPHDR_CWR)):
        if value is not None:
            new = new | bit if value else new & ~bit
    if new != old:
        replace_u16(buf, off, off + DOFF, new)


def option_field(buf: bytearray, ptr: int, offset: int, size: int) -> int:
    """The big-endian field of `size` bytes `offset` bytes into the option at `ptr`."""
    return int.from_bytes(buf[ptr + offset:ptr + offset + size], "big")


def replace_u16(buf: bytearray, off: int, at: int, new: int) -> None:
    """Write 16 bits at `at` in the segment at `off` and update its checksum
    with them as they lie (inet_proto_csum_replace2()): right for an even
    offset into the segment, not for an odd one."""
    old = _U16.unpack_from(buf, at)[0]
    _U16.pack_into(buf, at, new)
    _U16.pack_into(buf, off + CHECK, csum_replace(_U16.unpack_from(buf, off + CHECK)[0], old, new, 2))


def replace_u32(buf: bytearray, off: int, at: int, new: int) -> None:
    """Write 32 bits at `at` in the segment at `off` and update its checksum
    (inet_proto_csum_replace4()), as replace_u16() does for 16."""
    old = _U32.unpack_from(buf, at)[0]
    _U32.pack_into(buf, at, new)
    _U16.pack_into(buf, off + CHECK, csum_replace(_U16.unpack_from(buf, off + CHECK)[0], old, new, 4))


def sack_block(buf: bytearray, at: int) -> tuple[int, int]:
    """The (start, end) of the SACK block at `at`."""
    return _TS_VALUES.unpack_from(buf, at)


def option_byte(buf: bytearray, ptr: int) -> int:
    """The one-byte value of an option at `ptr` (the window scale's shift)."""
    return buf[ptr + 2]


def sack_right_edges(buf: bytearray, ptr: int, size: int):
    """The right edge of each block of the SACK option at `ptr`."""
    for block in range(ptr + TCPOLEN_SACK_BASE, ptr + size, TCPOLEN_SACK_PERBLOCK):
        yield _U32.unpack_from(buf, block + 4)[0]


def only_aligned_timestamp(buf: bytearray, off: int, doff: int) -> bool:
    """The fast path of tcp_sack()/tcp_parse_aligned_timestamp(): the options
    are NOP, NOP, timestamp and nothing else."""
    return doff == TCP_HLEN + TCPOLEN_TSTAMP_ALIGNED and _U32.unpack_from(buf, off + OPTIONS)[0] == TCPOPT_TSTAMP_WORD


def aligned_timestamp(buf: bytearray, off: int) -> tuple[int, int]:
    """(TSval, TSecr) of a header whose options only_aligned_timestamp() accepted
    (tcp_parse_aligned_timestamp())."""
    return _TS_VALUES.unpack_from(buf, off + OPTIONS + 4)


class TcpSegment(HeaderView):
    __slots__ = ()
    _check = staticmethod(check_len)

    @property
    def sport(self) -> int:
        return _U16.unpack_from(self.buf, self.off + SOURCE)[0]

    @property
    def dport(self) -> int:
        return _U16.unpack_from(self.buf, self.off + DEST)[0]

    @property
    def seq(self) -> int:
        return _U32.unpack_from(self.buf, self.off + SEQ)[0]

    @property
    def ack_seq(self) -> int:
        return _U32.unpack_from(self.buf, self.off + ACK_SEQ)[0]

    @property
    def header_len(self) -> int:
        return DATA_OFFSET_LEN[self.buf[self.off + DOFF]]

    @property
    def flags(self) -> int:
        return self.buf[self.off + FLAGS]

    @property
    def window(self) -> int:
        return _U16.unpack_from(self.buf, self.off + WINDOW)[0]

    @property
    def check(self) -> int:
        return _U16.unpack_from(self.buf, self.off + CHECK)[0]

    def options(self):
        return options(self.buf, self.off, self.header_len)


@dataclass(slots=True)
class OutOptions:
    """struct tcp_out_options: what tcp_syn_options(), tcp_synack_options() and
    tcp_established_options() chose (None: the option is not sent)."""

    mss: int | None = None
    ws: int | None = None  # our window scale shift
    sack_ok: bool = False  # OPTION_SACK_ADVERTISE
    ts: tuple[int, int] | None = None  # (tsval, tsecr)
    sack_blocks: tuple[tuple[int, int], ...] = ()  # [start, end) each


_TS_WITH_SACK_PERM = (TCPOPT_SACK_PERM << 24) | (TCPOLEN_SACK_PERM << 16) | (TCPOPT_TIMESTAMP << 8) | TCPOLEN_TIMESTAMP
_TS_WITH_NOPS = (TCPOPT_NOP << 24) | (TCPOPT_NOP << 16) | (TCPOPT_TIMESTAMP << 8) | TCPOLEN_TIMESTAMP
_SACK_PERM_WITH_NOPS = (TCPOPT_NOP << 24) | (TCPOPT_NOP << 16) | (TCPOPT_SACK_PERM << 8) | TCPOLEN_SACK_PERM
_WORDS = tuple(struct.Struct(f"!{n}I") for n in range(11))


def write_options(opts: OutOptions) -> bytes:
    """tcp_options_write(): the option bytes, a multiple of 4."""
    words = []
    if opts.mss is not None:
        words.append((TCPOPT_MSS << 24) | (TCPOLEN_MSS << 16) | opts.mss)
    if opts.ts is not None:
        words += (_TS_WITH_SACK_PERM if opts.sack_ok else _TS_WITH_NOPS, *opts.ts)
    elif opts.sack_ok:
        words.append(_SACK_PERM_WITH_NOPS)
    if opts.ws is not None:
        words.append((TCPOPT_NOP << 24) | (TCPOPT_WINDOW << 16) | (TCPOLEN_WINDOW << 8) | opts.ws)
    if opts.sack_blocks:
        words.append((TCPOPT_NOP << 24) | (TCPOPT_NOP << 16) | (TCPOPT_SACK << 8)
                     | (TCPOLEN_SACK_BASE + len(opts.sack_blocks) * TCPOLEN_SACK_PERBLOCK))
        for start, end in opts.sack_blocks:
            words += (start, end)
    return _WORDS[len(words)].pack(*words)


def timestamp_options(tsval: int, tsecr: int) -> bytes:
    """NOP, NOP, timestamp: write_options() of the timestamps alone."""
    return _WORDS[3].pack(_TS_WITH_NOPS, tsval, tsecr)


@dataclass(slots=True)
class TcpOptions:
    """The values tcp_parse_options() reads, and the kinds in the order they came."""

    kinds: list[int] = field(default_factory=list)
    mss: int | None = None
    wscale: int | None = None
    sack_perm: bool = False
    ts: tuple[int, int] | None = None  # (tsval, tsecr)
    sack_blocks: list[tuple[int, int]] = field(default_factory=list)


_OPTION_SIZES = {TCPOPT_MSS: TCPOLEN_MSS, TCPOPT_WINDOW: TCPOLEN_WINDOW, TCPOPT_SACK_PERM: TCPOLEN_SACK_PERM,
                 TCPOPT_TIMESTAMP: TCPOLEN_TIMESTAMP}


def parse_options(buf: bytearray, off: int, doff: int) -> TcpOptions:
    """tcp_parse_options(): an option of a known kind with the wrong length is
    skipped, as the kernel skips it; a SACK option needs a whole number of blocks."""
    parsed = TcpOptions()
    for kind, ptr, size in options(buf, off, doff):
        parsed.kinds.append(kind)
        if _OPTION_SIZES.get(kind, size) != size:
            continue
        if kind == TCPOPT_MSS:
            parsed.mss = _U16.unpack_from(buf, ptr + 2)[0]
        elif kind == TCPOPT_WINDOW:
            parsed.wscale = buf[ptr + 2]
        elif kind == TCPOPT_SACK_PERM:
            parsed.sack_perm = True
        elif kind == TCPOPT_TIMESTAMP:
            parsed.ts = _TS_VALUES.unpack_from(buf, ptr + 2)
        elif kind == TCPOPT_SACK and size >= TCPOLEN_SACK_BASE + TCPOLEN_SACK_PERBLOCK \
                and not (size - TCPOLEN_SACK_BASE) % TCPOLEN_SACK_PERBLOCK:
            parsed.sack_blocks = [_TS_VALUES.unpack_from(buf, block)
                                  for block in range(ptr + TCPOLEN_SACK_BASE, ptr + size, TCPOLEN_SACK_PERBLOCK)]
    return parsed


def build_segment(saddr: int | bytes, daddr: int | bytes, sport: int, dport: int, seq: int, ack_seq: int, flags: int,
                  window: int, options: bytes = b"", payload: bytes = b"") -> bytearray:
    """A segment with `options` (a multiple of 4 bytes) and `payload`, its checksum filled in."""
    hlen = TCP_HLEN + len(options)
    segment = bytearray(HEADER.pack(sport, dport, seq, ack_seq, (hlen // 4) << 4, flags, window, 0, 0))
    segment += options
    segment += payload
    _U16.pack_into(segment, CHECK, checksum(segment, _pseudo_sum(saddr, daddr, len(segment))))
    return segment


def _pseudo_sum(saddr: int | bytes, daddr: int | bytes, length: int) -> int:
    """csum_tcpudp_nofold() from IPv4 addresses as integers (their 16-bit words
    summed), csum_ipv6_magic() from 16-byte IPv6 addresses."""
    if saddr.__class__ is bytes:
        return ipv6.addrs_pseudo_header_sum(saddr, daddr, IPPROTO_TCP, length)
    words = (saddr >> 16) + (saddr & 0xFFFF) + (daddr >> 16) + (daddr & 0xFFFF) + IPPROTO_TCP + length
    return 0xFFFF - checksum(b"", words)


def build(saddr: int | bytes, daddr: int | bytes, sport: int, dport: int, seq: int, ack_seq: int,
          flags: int) -> bytes:
    """A segment without options or data, its checksum filled in."""
    return bytes(build_segment(saddr, daddr, sport, dport, seq, ack_seq, flags, 0))


def gso_segments(buf: bytearray, nh: int, th: int, end: int, gso_size: int) -> list[bytearray]:
    """The IP packets the TCP packet buf[nh:end] is cut into, `gso_size`
    payload bytes each (tcp_gso_segment(), inet_gso_segment() or
    ipv6_gso_segment()): each with its own seq, length and TCP checksum, and
    over IPv4 its IP ID (+1 per segment) and header checksum; CWR only on the
    first, FIN and PSH only on the last."""
    iphlen = th - nh
    headers = bytes(buf[nh:th + DATA_OFFSET_LEN[buf[th + DOFF]]])
    tcphlen = len(headers) - iphlen
    payload_start = nh + len(headers)
    payload_len = end - payload_start
    is_ipv4 = buf[nh] >> 4 == 4
    ident = _U16.unpack_from(buf, nh + ipv4.ID)[0] if is_ipv4 else 0
    seq = _U32.unpack_from(buf, th + SEQ)[0]
    flags = buf[th + FLAGS]
    packets = []
    for offset in range(0, payload_len, gso_size):
        piece = buf[payload_start + offset:payload_start + min(offset + gso_size, payload_len)]
        packet = bytearray(headers) + piece
        if is_ipv4:
            _U16.pack_into(packet, ipv4.TOT_LEN, len(packet))
            _U16.pack_into(packet, ipv4.ID, (ident + offset // gso_size) & 0xFFFF)
            ipv4.fill_checksum(packet, 0)
            pseudo = ipv4.pseudo_header_sum(packet, 0, IPPROTO_TCP, tcphlen + len(piece))
        else:
            _U16.pack_into(packet, ipv6.PAYLOAD_LEN, len(packet) - ipv6.IPV6_HLEN)
            pseudo = ipv6.pseudo_header_sum(packet, 0, IPPROTO_TCP, tcphlen + len(piece))
        seg_flags = flags if offset + gso_size >= payload_len else flags & ~(TCPHDR_FIN | TCPHDR_PSH)
        packet[iphlen + FLAGS] = seg_flags & ~TCPHDR_CWR if offset else seg_flags
        _U32.pack_into(packet, iphlen + SEQ, (seq + offset) & 0xFFFFFFFF)
        _U16.pack_into(packet, iphlen + CHECK, 0)
        _U16.pack_into(packet, iphlen + CHECK, checksum(memoryview(packet)[iphlen:], pseudo))
        packets.append(packet)
    return packets


class GroSegment(NamedTuple):
    """What tcp_gro_receive() and inet_gro_receive() compare of a TCPv4 packet:
    `flow` (addresses, protocol, ports) picks the held skb, `match` (TOS, TTL,
    ack_seq, flags but CWR/FIN/PSH, the options' bytes) must be equal to merge."""

    flow: tuple
    match: tuple
    seq: int
    payload_len: int
    flags: int
    ident: int
    df: bool
    header_len: int  # IP + TCP headers


def gro_segment(buf: bytearray, nh: int, end: int) -> GroSegment | None:
    """The packet at `nh` as GRO sees it; None for one it hands up as is
    (inet_gro_receive(): not TCP, IP options, a fragment, tot_len not the
    packet's length, a bad IP checksum; tcp4_gro_receive(): a short header
    or a bad checksum)."""
    if end - nh < ipv4.IPV4_MIN_HLEN + TCP_HLEN:
        return None
    version_ihl, tos, tot_len, ident, frag_off, ttl, protocol, _, saddr, daddr = ipv4.unpack(buf, nh)
    th = nh + ipv4.IPV4_MIN_HLEN
    if (version_ihl != 0x45 or protocol != IPPROTO_TCP or tot_len != end - nh or frag_off & ~ipv4.IP_DF
            or not ipv4.checksum_ok(buf, nh, ipv4.IPV4_MIN_HLEN)):
        return None
    doff = DATA_OFFSET_LEN[buf[th + DOFF]]
    if doff < TCP_HLEN or th + doff > end or not checksum_ok(buf, nh, th, end):
        return None
    sport, dport, seq, ack_seq, _, flags, _, _, _ = HEADER.unpack_from(buf, th)
    return GroSegment((saddr, daddr, sport, dport),
                      (tos, ttl, ack_seq, flags & ~(TCPHDR_CWR | TCPHDR_FIN | TCPHDR_PSH), bytes(buf[th + TCP_HLEN:th + doff])),
                      seq, end - th - doff, flags, ident, bool(frag_off & ipv4.IP_DF), ipv4.IPV4_MIN_HLEN + doff)


def gro_complete(headers: bytes, payload: bytes, extra_flags: int) -> bytearray:
    """inet_gro_complete() + tcp4_gro_complete(): the first packet's headers
    over the merged payload, tot_len and both checksums new, the FIN and PSH
    of the merged segments added to the flags."""
    packet = bytearray(headers) + payload
    _U16.pack_into(packet, ipv4.TOT_LEN, len(packet))
    ipv4.fill_checksum(packet, 0)
    th = ipv4.IPV4_MIN_HLEN
    packet[th + FLAGS] |= extra_flags
    _U16.pack_into(packet, th + CHECK, 0)
    _U16.pack_into(packet, th + CHECK, checksum(
        memoryview(packet)[th:], ipv4.pseudo_header_sum(packet, 0, IPPROTO_TCP, len(packet) - th)))
    return packet
