"""Hypothesis strategies for hostile frames: what a wire can carry into a DUT port.

Each frame is built from the suites' addressing plan (harness/testing/plan.py: host
hN 10.0.N.2 / 2001:db8:N::2 on the wire of pN, the DUT 10.0.N.1) so that it gets
past the early checks and reaches the code that parses deeper, then corrupted in
the fields the kernel validates: the IPv4 IHL, total length, checksum and fragment
fields (ip_rcv_core(), ip_defrag()), IPv6 payload length and extension-header chains
(ipv6_rcv(), ipv6_frag_rcv()), TCP data offsets and options (tcp_v4_rcv(),
tcp_parse_options()), UDP lengths (__udp4_lib_rcv()), ICMP errors quoting garbage
(icmp_unreach(), icmpv6_notify()), ARP fields (arp_rcv()), VLAN tags; then cut or
padded to any length from 0 to 9,216 bytes, bits flipped at random.

A drawn case is a list of (port index, frame bytes) and virtual-time waits (a
float): fragment trains arrive overlapping, out of order, duplicated or
unfinished, and waits let reassembly and conntrack timers fire between them.
The checksums are computed here, independently of the mock (RFC 1071).
"""
from __future__ import annotations

import struct

from hypothesis import strategies as st

from harness.target import PORTS

MAX_FRAME = 9216
ETH_P_IP, ETH_P_IPV6, ETH_P_ARP, ETH_P_8021Q, ETH_P_8021AD = 0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6, IPPROTO_GRE, IPPROTO_SCTP = 1, 6, 17, 58, 47, 132
IPV6_HOPOPTS, IPV6_ROUTING, IPV6_FRAGMENT, IPV6_DSTOPTS, IPV6_NONXT = 0, 43, 44, 60, 59


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def ones_complement(data: bytes, initial: int = 0) -> int:
    """The Internet checksum of `data` (RFC 1071), folded and inverted."""
    if len(data) % 2:
        data += b"\0"
    total = initial + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


PORT_INDEXES = st.integers(0, len(PORTS) - 1)


def _ip4(port: int, host: int) -> bytes:
    return bytes((10, 0, port, host))


def _ip6(port: int, host: int) -> bytes:
    return bytes.fromhex(f"20010db8{port:04x}{0:016x}{host:04x}")


ADDR4 = st.one_of(
    st.builds(_ip4, st.integers(0, 3), st.sampled_from([1, 2, 3, 255, 0])),
    st.sampled_from([bytes(4), b"\xff" * 4, bytes((127, 0, 0, 1)), bytes((224, 0, 0, 1)), bytes((239, 1, 2, 3)),
                     bytes((169, 254, 1, 1)), bytes((198, 18, 0, 1)), bytes((240, 0, 0, 1))]),
    st.binary(min_size=4, max_size=4))
ADDR6 = st.one_of(
    st.builds(_ip6, st.integers(0, 3), st.sampled_from([1, 2, 3])),
    st.sampled_from([bytes(16), bytes(15) + b"\1", bytes.fromhex("ff020000000000000000000000000001"),
                     bytes.fromhex("ff0200000000000000000001ff000001"), bytes.fromhex("fe80000000000000000000fffe000001"),
                     bytes.fromhex("00000000000000000000ffff0a000002")]),
    st.binary(min_size=16, max_size=16))
L4PORTS = st.one_of(st.sampled_from([0, 22, 53, 80, 443, 8080, 33434, 65535]), st.integers(0, 65535))


@st.composite
def tcp_options(draw) -> bytes:
    """TCP options as tcp_parse_options() walks them: well-formed, truncated, with
    lengths of 0, 1 or past the header, and unknown kinds."""
    opts = b""
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 8, 19, 28, 29, 30, 34, 253, 254, 255]))
        if kind in (0, 1):
            opts += bytes((kind,))
            continue
        size = {2: 4, 3: 3, 4: 2, 8: 10, 19: 18, 28: 4, 34: 2}.get(kind, 6)
        length = draw(st.one_of(st.just(size), st.integers(0, 40)))
        opts += bytes((kind, length)) + draw(st.binary(min_size=0, max_size=max(0, length - 2)))
    return opts


def _l4_checksum(pseudo: int, segment: bytearray, off: int, corrupt: int | None) -> None:
    check = ones_complement(bytes(segment), pseudo) if corrupt is None else corrupt
    segment[off:off + 2] = struct.pack("!H", check)


@st.composite
def tcp_segment(draw, payload_max: int = 64) -> tuple[bytearray, int]:
    opts = draw(tcp_options())
    opts += b"\0" * (-len(opts) % 4)
    # the data offset is 4 bits: options past 40 bytes are left in the payload
    doff = draw(st.one_of(st.just(min(15, 5 + len(opts) // 4)), st.integers(0, 15)))
    flags = draw(st.one_of(st.sampled_from([0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x01, 0x00, 0x3F, 0x29]),
                           st.integers(0, 0xFFF)))
    seg = bytearray(struct.pack("!HHIIHHHH", draw(L4PORTS), draw(L4PORTS), draw(st.integers(0, 2**32 - 1)),
                                draw(st.integers(0, 2**32 - 1)), (doff << 12) | flags, draw(st.integers(0, 65535)),
                                0, draw(st.integers(0, 65535))))
    seg += opts + draw(st.binary(max_size=payload_max))
    return seg, 16


@st.composite
def udp_datagram(draw, payload_max: int = 64) -> tuple[bytearray, int]:
    payload = draw(st.binary(max_size=payload_max))
    length = draw(st.one_of(st.just(8 + len(payload)), st.integers(0, 65535)))
    return bytearray(struct.pack("!HHHH", draw(L4PORTS), draw(L4PORTS), length, 0)) + payload, 6


@st.composite
def icmp_message(draw, depth: int = 0) -> tuple[bytearray, int]:
    """ICMP echo and errors; an error quotes an IPv4 header and 8 bytes that may be
    garbage, truncated, or a whole (nested, once) hostile packet."""
    icmp_type = draw(st.sampled_from([0, 3, 4, 5, 8, 11, 12, 13, 14, 17, 18, 255]))
    code = draw(st.one_of(st.sampled_from([0, 1, 3, 4, 13]), st.integers(0, 255)))
    rest = draw(st.binary(min_size=4, max_size=4))
    if icmp_type in (3, 4, 5, 11, 12):
        quoted = draw(st.one_of(st.binary(max_size=40), ipv4_packet(depth=depth + 1) if depth == 0 else st.binary()))
        body = bytes(quoted)[:draw(st.integers(0, 576))]
    else:
        body = draw(st.binary(max_size=56))
    return bytearray(bytes((icmp_type, code, 0, 0)) + rest + body), 2


@st.composite
def ipv4_packet(draw, depth: int = 0) -> bytes:
    proto = draw(st.one_of(st.sampled_from([IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP]),
                           st.sampled_from([IPPROTO_GRE, IPPROTO_SCTP, 2, 4, 41, 50, 255]), st.integers(0, 255)))
    saddr, daddr = draw(ADDR4), draw(ADDR4)
    if proto == IPPROTO_TCP:
        l4, check_off = draw(tcp_segment())
    elif proto == IPPROTO_UDP:
        l4, check_off = draw(udp_datagram())
    elif proto == IPPROTO_ICMP and depth == 0:
        l4, check_off = draw(icmp_message(depth))
    else:
        l4, check_off = bytearray(draw(st.binary(max_size=64))), None
    if check_off is not None:
        pseudo = 0 if proto == IPPROTO_ICMP else _sum16(saddr + daddr + struct.pack("!HH", proto, len(l4)))
        _l4_checksum(pseudo, l4, check_off, draw(st.one_of(st.none(), st.integers(0, 65535))))
    options = draw(st.one_of(st.just(b""), st.binary(max_size=40),
                             st.sampled_from([b"\x01\x01\x01\x00", b"\x94\x04\x00\x00", b"\x07\x07\x04" + bytes(5),
                                              b"\x83\x03\x04\x00", b"\x44\x0c\x05\x00" + bytes(8), b"\x00\x00\x00\x00"])))
    options += b"\0" * (-len(options) % 4)
    ihl = draw(st.one_of(st.just(5 + len(options) // 4), st.integers(0, 15)))
    version = draw(st.one_of(st.just(4), st.integers(0, 15)))
    total = draw(st.one_of(st.just(20 + len(options) + len(l4)), st.integers(0, 65535)))
    frag = draw(st.one_of(st.just(0x4000), st.just(0), st.integers(0, 0xFFFF)))
    ttl = draw(st.sampled_from([64, 1, 0, 255, 2]))
    header = bytearray(struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, draw(st.integers(0, 255)), total,
                                   draw(st.integers(0, 65535)), frag, ttl, proto, 0, saddr, daddr)) + options
    check = draw(st.one_of(st.none(), st.integers(0, 65535)))
    header[10:12] = struct.pack("!H", ones_complement(bytes(header)) if check is None else check)
    return bytes(header + l4)


@st.composite
def ipv6_ext_chain(draw, final: int) -> tuple[bytes, int]:
    """Extension headers (hop-by-hop, routing, fragment, destination options, bad
    lengths, loops of the same header) before `final`; returns (bytes, first nexthdr)."""
    kinds = draw(st.lists(st.sampled_from([IPV6_HOPOPTS, IPV6_ROUTING, IPV6_FRAGMENT, IPV6_DSTOPTS]), max_size=4))
    chain, nexthdr = b"", final
    for kind in reversed(kinds):
        if kind == IPV6_FRAGMENT:
            ext = struct.pack("!BBHI", nexthdr, 0, draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 2**32 - 1)))
        else:
            hdrlen = draw(st.one_of(st.just(0), st.integers(0, 255)))
            body = draw(st.binary(min_size=6, max_size=6 + 8 * min(hdrlen, 4)))
            ext = bytes((nexthdr, hdrlen)) + body
        chain, nexthdr = ext + chain, kind
    return chain, nexthdr


@st.composite
def icmpv6_message(draw) -> bytearray:
    icmp_type = draw(st.sampled_from([1, 2, 3, 4, 128, 129, 130, 133, 134, 135, 136, 137, 143, 255]))
    body = draw(st.one_of(st.binary(max_size=64), ipv6_packet(depth=1) if icmp_type < 128 else st.binary(max_size=8)))
    return bytearray(bytes((icmp_type, draw(st.integers(0, 255)), 0, 0)) + draw(st.binary(min_size=4, max_size=4))
                     + bytes(body)[:1232])


@st.composite
def ipv6_packet(draw, depth: int = 0) -> bytes:
    final = draw(st.one_of(st.sampled_from([IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6, IPV6_NONXT]), st.integers(0, 255)))
    saddr, daddr = draw(ADDR6), draw(ADDR6)
    if final == IPPROTO_TCP:
        l4, check_off = draw(tcp_segment())
    elif final == IPPROTO_UDP:
        l4, check_off = draw(udp_datagram())
    elif final == IPPROTO_ICMPV6 and depth == 0:
        l4, check_off = draw(icmpv6_message()), 2
    else:
        l4, check_off = bytearray(draw(st.binary(max_size=32))), None
    if check_off is not None:
        pseudo = _sum16(saddr + daddr + struct.pack("!IxxxB", len(l4), final))
        _l4_checksum(pseudo, l4, check_off, draw(st.one_of(st.none(), st.integers(0, 65535))))
    chain, nexthdr = draw(ipv6_ext_chain(final))
    plen = draw(st.one_of(st.just(len(chain) + len(l4)), st.integers(0, 65535)))
    version = draw(st.one_of(st.just(6), st.integers(0, 15)))
    hlim = draw(st.sampled_from([64, 255, 1, 0]))
    header = struct.pack("!IHBB16s16s", (version << 28) | draw(st.integers(0, 0xFFFFF)), plen, nexthdr, hlim,
                         saddr, daddr)
    return header + chain + bytes(l4)


@st.composite
def arp_packet(draw) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", draw(st.one_of(st.just(1), st.integers(0, 65535))),
                       draw(st.one_of(st.just(ETH_P_IP), st.integers(0, 65535))),
                       draw(st.one_of(st.just(6), st.integers(0, 255))), draw(st.one_of(st.just(4), st.integers(0, 255))),
                       draw(st.sampled_from([1, 2, 0, 3, 8, 9, 65535])), draw(st.binary(min_size=6, max_size=6)),
                       draw(ADDR4), draw(st.binary(min_size=6, max_size=6)), draw(ADDR4)) + draw(st.binary(max_size=18))


@st.composite
def fragments(draw, port: int) -> list:
    """An IPv4 or IPv6 datagram cut into fragments, the train shuffled, overlapped,
    duplicated, with a fragment missing or oversized offsets (ip_defrag(), nf_ct_frag6_gather())."""
    v6 = draw(st.booleans())
    src, dst = (_ip6, ADDR6) if v6 else (_ip4, ADDR4)
    saddr, daddr = src(port, 2), draw(st.one_of(st.just(src(draw(st.integers(0, 2)), draw(st.sampled_from([1, 2])))), dst))
    proto = draw(st.sampled_from([IPPROTO_UDP, IPPROTO_TCP, IPPROTO_ICMPV6 if v6 else IPPROTO_ICMP]))
    payload = draw(st.binary(min_size=8, max_size=3000))
    ident = draw(st.integers(0, 0xFFFF))
    pieces = []
    for _ in range(draw(st.integers(1, 6))):
        start = draw(st.integers(0, len(payload))) & ~7
        end = draw(st.integers(start, min(len(payload), start + 1480)))
        more = draw(st.booleans()) if end < len(payload) else draw(st.booleans()) and draw(st.booleans())
        offset = draw(st.one_of(st.just(start), st.integers(0, 8191 * 8))) // 8
        pieces.append((offset, more, payload[start:end]))
    frames = []
    for offset, more, data in draw(st.permutations(pieces)):
        if v6:
            frag = struct.pack("!BBHI", proto, 0, (offset << 3) | more, ident)
            packet = struct.pack("!IHBB16s16s", 6 << 28, len(frag) + len(data), IPV6_FRAGMENT, 64, saddr, daddr)
            packet += frag + data
        else:
            header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(data), ident, (more << 13) | offset,
                                           64, proto, 0, saddr, daddr))
            header[10:12] = struct.pack("!H", ones_complement(bytes(header)))
            packet = bytes(header) + data
        frames.append(ether(port, ETH_P_IPV6 if v6 else ETH_P_IP, packet))
    return frames


def ether(port: int, ethertype: int, payload: bytes, dst: bytes | None = None, src: bytes | None = None) -> bytes:
    p = PORTS[port]
    return (dst or mac(p.mac)) + (src or mac(p.peer_mac)) + struct.pack("!H", ethertype) + payload


@st.composite
def l2_frame(draw, port: int) -> bytes:
    """One frame into `port`: an Ethernet header (to the port's MAC, broadcast,
    multicast or anyone; VLAN tags, stacked or not) over IPv4, IPv6, ARP or bytes."""
    kind = draw(st.sampled_from(["ipv4", "ipv4", "ipv6", "ipv6", "arp", "raw"]))
    if kind == "ipv4":
        ethertype, payload = ETH_P_IP, draw(ipv4_packet())
    elif kind == "ipv6":
        ethertype, payload = ETH_P_IPV6, draw(ipv6_packet())
    elif kind == "arp":
        ethertype, payload = ETH_P_ARP, draw(arp_packet())
    else:
        ethertype, payload = draw(st.integers(0, 65535)), draw(st.binary(max_size=64))
    dst = draw(st.one_of(st.none(), st.sampled_from([b"\xff" * 6, mac("01:00:5e:00:00:01"), mac("33:33:00:00:00:01"),
                                                    mac("01:80:c2:00:00:00"), mac("02:00:00:00:00:03")]),
                         st.binary(min_size=6, max_size=6)))
    header = b""
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        header += struct.pack("!HH", draw(st.sampled_from([ETH_P_8021Q, ETH_P_8021AD])), draw(st.integers(0, 0xFFFF)))
    frame = ether(port, ethertype, payload, dst=dst)
    return frame[:12] + header + frame[12:]


@st.composite
def corrupt(draw, frame: bytes) -> bytes:
    """`frame` as the wire delivers it: whole, cut short, padded to any length up to
    9,216 bytes, or with a few bytes overwritten."""
    how = draw(st.sampled_from(["whole", "whole", "cut", "pad", "flip"]))
    if how == "cut":
        return frame[:draw(st.integers(0, len(frame)))]
    if how == "pad":
        length = draw(st.integers(len(frame), MAX_FRAME))
        return frame + draw(st.sampled_from([b"\0", b"\xff", b"\x45"])) * (length - len(frame))
    if how == "flip" and frame:
        data = bytearray(frame)
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    return frame


@st.composite
def frame_cases(draw) -> list:
    """A case for the datapath: (port, frame) pairs and waits (seconds of virtual time)."""
    case: list = []
    for _ in range(draw(st.integers(1, 4))):
        port = draw(PORT_INDEXES)
        what = draw(st.sampled_from(["frame", "frame", "frame", "fragments", "bytes", "wait"]))
        if what == "frame":
            case.append((port, draw(corrupt(draw(l2_frame(port))))))
        elif what == "fragments":
            case += [(port, f) for f in draw(fragments(port))]
        elif what == "bytes":
            case.append((port, draw(st.binary(max_size=draw(st.sampled_from([14, 64, 1514, MAX_FRAME]))))))
        else:
            case.append(draw(st.sampled_from([0.5, 1.0, 31.0, 121.0])))
    return case
