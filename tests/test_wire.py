"""The header views of harness/mockkernel/wire: each check_len() refuses what
the kernel's receive function refuses of that header, with a typed error
naming the field, and the fields and checksums read what the bytes say.
Packets are written out literally (made once with scapy, checksums included)."""
from __future__ import annotations

import ast
import pathlib

import pytest

import harness
from harness.mockkernel.wire import Malformed, Truncated, WireError, arp, ethernet, icmp, ipv4, summarize_frame, tcp, udp

# IPv4 10.0.0.2 > 10.0.1.2, id 1, DF, ttl 64, UDP 1000 > 53 carrying "abcd"
IPV4_UDP = bytes.fromhex("4500002000014000401125c90a0000020a000102" "03e80035000c21ef61626364")
# IPv4 10.0.0.2 > 10.0.1.2, TCP SYN 1000 > 80, seq 1, window 64240, options
# MSS 1460, SACK_PERM, timestamp (1, 0), NOP, window scale 7
IPV4_TCP_SYN = bytes.fromhex("4500003c00014000400625b80a0000020a000102"
                             "03e800500000000100000000a002faf033d20000"
                             "020405b40402080a000000010000000001030307")
# IPv4 10.0.0.2 > 10.0.1.2, ICMP echo request id 0x1234 seq 1, "ping"
IPV4_ICMP_ECHO = bytes.fromhex("4500002000010000400165d90a0000020a000102" "080006fa1234000170696e67")
# who-has 10.0.0.1 tell 10.0.0.2, from 02:00:00:00:00:01
ETHER_ARP_REQUEST = bytes.fromhex("ffffffffffff020000000001 0806"
                                  "0001080006040001020000000001 0a000002 000000000000 0a000001")


def _edit(packet: bytes, offset: int, value: bytes) -> bytearray:
    buf = bytearray(packet)
    buf[offset:offset + len(value)] = value
    return buf


def test_errors_are_typed_value_errors_that_name_the_field():
    err = Truncated("tot_len", "short")
    assert isinstance(err, WireError) and isinstance(err, ValueError)
    assert (err.field, str(err)) == ("tot_len", "short")
    assert not issubclass(Malformed, Truncated) and issubclass(Malformed, WireError)


# ----------------------------------------------------------------- Ethernet, 802.1Q

def test_ethernet_header_needs_14_bytes():
    ethernet.check_len(ETHER_ARP_REQUEST, 0, 14)
    with pytest.raises(Truncated) as err:
        ethernet.check_len(ETHER_ARP_REQUEST, 0, 13)
    assert err.value.field is None


def test_ethernet_fields_and_header_write():
    frame = ethernet.EthernetFrame(bytearray(ETHER_ARP_REQUEST))
    assert (frame.dst, frame.src, frame.ethertype) == (b"\xff" * 6, bytes.fromhex("020000000001"), 0x0806)
    assert ethernet.ethertype(ETHER_ARP_REQUEST, 0) == 0x0806
    buf = bytearray(16)
    ethernet.write_header(buf, 2, bytes.fromhex("020000000002"), bytes.fromhex("020000000001"), 0x0800)
    assert buf == bytes.fromhex("0000" "020000000002" "020000000001" "0800")


def test_vlan_tag_fields_and_length():
    tag = ethernet.VlanTag(bytearray.fromhex("a0640800"), 0).check_len()
    assert (tag.pcp, tag.dei, tag.vid, tag.encapsulated_proto) == (5, False, 100, 0x0800)
    assert ethernet.vlan_tag(5, False, 100, 0x0800) == bytes.fromhex("a0640800")
    assert ethernet.vlan_tag(0, True, 4094, 0x86DD) == bytes.fromhex("1ffe86dd")
    with pytest.raises(Truncated):
        ethernet.VlanTag(bytearray.fromhex("a06408"), 0).check_len()


# ----------------------------------------------------------------------------- ARP

def test_arp_fields_of_a_request():
    packet = arp.ArpPacket(bytearray(ETHER_ARP_REQUEST), 14).check_len()
    assert packet.fields() == (1, 0x0800, 6, 4, 1, bytes.fromhex("020000000001"), bytes([10, 0, 0, 2]),
                               bytes(6), bytes([10, 0, 0, 1]))
    assert arp.build(1, bytes.fromhex("020000000001"), bytes([10, 0, 0, 2]), bytes(6),
                     bytes([10, 0, 0, 1])) == ETHER_ARP_REQUEST[14:]


@pytest.mark.parametrize("offset, value, error, field", [
    (4, b"\x08", Malformed, "hln"),  # not an Ethernet address
    (5, b"\x10", Malformed, "pln"),  # not an IPv4 address
])
def test_arp_check_len_refuses_other_address_lengths(offset, value, error, field):
    with pytest.raises(error) as err:
        arp.check_len(_edit(ETHER_ARP_REQUEST[14:], offset, value), 0, 28)
    assert err.value.field == field


def test_arp_needs_28_bytes_for_ethernet_ipv4():
    with pytest.raises(Truncated):
        arp.check_len(ETHER_ARP_REQUEST, 14, 14 + 27)


# ---------------------------------------------------------------------------- IPv4

def test_ipv4_check_len_returns_header_length_and_tot_len():
    assert ipv4.check_len(IPV4_UDP, 0, 32) == (20, 32)
    assert ipv4.check_len(IPV4_UDP + b"pad", 0, 35) == (20, 32)  # Ethernet padding is the caller's to trim


@pytest.mark.parametrize("packet, end, error, field", [
    (IPV4_UDP, 19, Truncated, None),                               # under 20 bytes
    (_edit(IPV4_UDP, 0, b"\x44"), 32, Malformed, "ihl"),           # IHL 4
    (_edit(IPV4_UDP, 0, b"\x65"), 32, Malformed, "version"),       # version 6
    (_edit(IPV4_UDP, 0, b"\x46"), 22, Truncated, "ihl"),           # IHL 6, 22 bytes there
    (IPV4_UDP, 30, Truncated, "tot_len"),                          # tot_len 32, 30 bytes there
    (_edit(IPV4_UDP, 2, b"\x00\x10"), 32, Malformed, "tot_len"),   # tot_len 16 < 20
])
def test_ipv4_check_len_refuses_what_ip_rcv_core_refuses(packet, end, error, field):
    with pytest.raises(error) as err:
        ipv4.check_len(packet, 0, end)
    assert err.value.field == field


def test_ipv4_header_checksum():
    assert ipv4.checksum_ok(IPV4_UDP, 0, 20)
    assert not ipv4.checksum_ok(_edit(IPV4_UDP, 8, b"\x3f"), 0, 20)
    buf = _edit(IPV4_UDP, 10, b"\x00\x00")
    ipv4.fill_checksum(buf, 0)
    assert buf[10:12] == b"\x25\xc9"
    assert ipv4.build_header(0x0A000002, 0x0A000102, 17, 12, ttl=64, ident=1, frag_off=ipv4.IP_DF) == IPV4_UDP[:20]


def test_ipv4_fields():
    (ver_ihl, tos, tot_len, ident, frag_off, ttl, protocol, check, saddr, daddr) = ipv4.unpack(IPV4_UDP, 0)
    assert (ver_ihl, tos, tot_len, ident, frag_off, ttl, protocol, check) == (0x45, 0, 32, 1, 0x4000, 64, 17, 0x25C9)
    assert (saddr, daddr) == (0x0A000002, 0x0A000102)
    assert ipv4.TUPLE_FIELDS.unpack_from(IPV4_UDP, 0) == (0x45, 17, 0x0A000002, 0x0A000102)
    assert ipv4.NAT_FIELDS.unpack_from(IPV4_UDP, 0) == (0x45, 0x4000, 17, 0x25C9, 0x0A000002, 0x0A000102)
    iph = ipv4.Ipv4Packet(bytearray(IPV4_UDP), 0)
    assert (iph.header_len, iph.payload_offset, iph.saddr_bytes) == (20, 20, bytes([10, 0, 0, 2]))
    assert iph.summary() == "10.0.0.2 > 10.0.1.2 udp id=1 ttl=64 DF len=32"


# ----------------------------------------------------------------------------- UDP

def test_udp_check_len_returns_dest_and_len():
    assert udp.check_len(IPV4_UDP, 20, 32) == (53, 12)


@pytest.mark.parametrize("packet, end, error, field", [
    (IPV4_UDP, 27, Truncated, None),                              # 7 bytes of header
    (_edit(IPV4_UDP, 24, b"\x00\x14"), 32, Truncated, "len"),     # len 20, 12 bytes there
    (_edit(IPV4_UDP, 24, b"\x00\x04"), 32, Malformed, "len"),     # len 4 < 8
])
def test_udp_check_len_refuses_what_udp4_lib_rcv_refuses(packet, end, error, field):
    with pytest.raises(error) as err:
        udp.check_len(packet, 20, end)
    assert err.value.field == field


def test_udp_checksum_with_the_pseudo_header():
    assert udp.checksum_ok(IPV4_UDP, 0, 20, 12)
    assert not udp.checksum_ok(_edit(IPV4_UDP, 28, b"x"), 0, 20, 12)
    assert udp.checksum_ok(_edit(IPV4_UDP, 26, b"\x00\x00"), 0, 20, 12)  # zero: none sent
    assert ipv4.pseudo_header_sum(IPV4_UDP, 0, 17, 12) == 0x0A00 + 0x0002 + 0x0A00 + 0x0102 + 17 + 12
    assert udp.build(bytes([10, 0, 0, 2]), bytes([10, 0, 1, 2]), 1000, 53, b"abcd") == IPV4_UDP[20:]
    datagram = udp.UdpDatagram(bytearray(IPV4_UDP), 20)
    assert (datagram.sport, datagram.dport, datagram.length, datagram.check) == (1000, 53, 12, 0x21EF)


# ---------------------------------------------------------------------------- ICMP

def test_icmp_header_fields_length_and_checksum():
    message = icmp.IcmpMessage(bytearray(IPV4_ICMP_ECHO), 20).check_len(32)
    assert (message.type, message.code, message.checksum, message.echo_id) == (8, 0, 0x06FA, 0x1234)
    assert message.checksum_ok(32)
    assert icmp.build(8, 0, 0x12340001, b"ping") == IPV4_ICMP_ECHO[20:]
    with pytest.raises(Truncated):
        icmp.check_len(IPV4_ICMP_ECHO, 20, 27)


# ----------------------------------------------------------------------------- TCP

def test_tcp_check_len_returns_the_header_length():
    assert tcp.check_len(IPV4_TCP_SYN, 20, 60) == 40


@pytest.mark.parametrize("packet, end, error, field", [
    (IPV4_TCP_SYN, 39, Truncated, None),                       # 19 bytes of header
    (_edit(IPV4_TCP_SYN, 32, b"\x40"), 60, Malformed, "doff"),  # data offset 4
    (IPV4_TCP_SYN, 56, Truncated, "doff"),                     # data offset 10, 36 bytes there
])
def test_tcp_check_len_refuses_what_tcp_v4_rcv_refuses(packet, end, error, field):
    with pytest.raises(error) as err:
        tcp.check_len(packet, 20, end)
    assert err.value.field == field


def test_tcp_fields_and_checksum():
    segment = tcp.TcpSegment(bytearray(IPV4_TCP_SYN), 20).check_len(60)
    assert (segment.sport, segment.dport, segment.seq, segment.ack_seq) == (1000, 80, 1, 0)
    assert (segment.header_len, segment.flags, segment.window, segment.check) == (40, tcp.TCPHDR_SYN, 64240, 0x33D2)
    assert tcp.SEGMENT_FIELDS.unpack_from(IPV4_TCP_SYN, 20) == (1, 0, 0xA0, 0x02, 64240)
    assert tcp.checksum_ok(IPV4_TCP_SYN, 0, 20, 60)
    assert not tcp.checksum_ok(_edit(IPV4_TCP_SYN, 34, b"\xfa\xf1"), 0, 20, 60)
    assert tcp.build(0x0A000102, 0x0A000002, 80, 1000, 0, 2, tcp.TCPHDR_RST | tcp.TCPHDR_ACK) == \
        bytes.fromhex("005003e800000000000000025014000096930000")


def test_tcp_options_of_a_linux_syn():
    assert list(tcp.options(IPV4_TCP_SYN, 20, 40)) == [
        (tcp.TCPOPT_MSS, 40, 4), (tcp.TCPOPT_SACK_PERM, 44, 2), (tcp.TCPOPT_TIMESTAMP, 46, 10),
        (tcp.TCPOPT_WINDOW, 57, 3)]
    assert tcp.option_byte(IPV4_TCP_SYN, 57) == 7


@pytest.mark.parametrize("options, walked", [
    (b"\x01\x00\x03\x03\x07\x00\x00\x00", []),                     # EOL ends the list
    (b"\x03\x01\x07\x00\x02\x04\x05\xb4", []),                     # length 1: silly, stop
    (b"\x01\x01\x01\x01\x01\x01\x02\x04", []),                     # MSS whose length runs past the header
    (b"\x01\x01\x01\x01\x01\x01\x01\x03", []),                     # a kind with no room for its length
    (b"\x04\x02\x01\x01\x03\x03\x02\x00", [(4, 20, 2), (3, 24, 3)]),
])
def test_tcp_options_stop_where_the_kernel_parsers_stop(options, walked):
    header = bytes.fromhex("03e800500000000100000000" "70020000" "00000000") + options
    assert list(tcp.options(header, 0, 28)) == walked


def test_tcp_sack_blocks_and_the_aligned_timestamp_fast_path():
    sack = bytes(20) + bytes.fromhex("0101050a" "00000064" "000000c8")
    assert list(tcp.sack_right_edges(sack, 22, 10)) == [200]
    aligned = bytes(20) + bytes.fromhex("0101080a" "00000001" "00000000")
    assert tcp.only_aligned_timestamp(aligned, 0, 32)
    assert not tcp.only_aligned_timestamp(sack, 0, 32)


# ----------------------------------------------------------------- frame summaries

@pytest.mark.parametrize("frame, text", [
    (bytes.fromhex("020000000002020000000001 0800") + IPV4_UDP,
     "02:00:00:00:00:01 > 02:00:00:00:00:02 IPv4 10.0.0.2 > 10.0.1.2 udp id=1 ttl=64 DF len=32"),
    (ETHER_ARP_REQUEST, "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff ARP request 10.0.0.1 tell 10.0.0.2"),
    (bytes.fromhex("ffffffffffff02000000000186dd60"), "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff ethertype 0x86dd len=15"),
    (bytes(13), "runt frame of 13 bytes"),
])
def test_summarize_frame(frame, text):
    assert summarize_frame(bytearray(frame), 0) == text


# ------------------------------------------- wire/ is the only place headers are parsed

HARNESS = pathlib.Path(harness.__file__).parent
STRUCT_CALLS = {"Struct", "pack", "unpack", "pack_into", "unpack_from", "calcsize", "iter_unpack"}
# names the harness gives packet bytes: indexing them at a literal offset is parsing a header by hand
PACKET_BUFFERS = {"buf", "frame", "network", "transport", "packet", "ip", "segment"}
# network-order struct formats outside wire/ that are not packet headers
NOT_HEADERS = {
    ("drivers/nfnetlink.py", "!H"): "netlink attribute values (ports, NLA_F_NET_BYTEORDER)",
    ("drivers/nfnetlink.py", "!I"): "netlink attribute values (timeouts, status, mark)",
    ("drivers/nfnetlink.py", "!Q"): "netlink attribute values (counters)",
    ("drivers/nftrace.py", "!i"): "NFTA_VERDICT_CODE, a netlink attribute",
    ("drivers/trex_standin/rpc.py", ">II"): "TRex's RPC compression header (trex_rpc_zip.cpp)",
    ("mockkernel/bpf/helpers.py", ">I"): "struct bpf_fib_lookup's addresses, in a program's own memory",
    ("mockkernel/netfilter/nft_exprs.py", "!B"): "nft_payload loads at the base + offset a rule names",
    ("mockkernel/netfilter/nft_exprs.py", "!H"): "nft_payload loads at the base + offset a rule names",
    ("mockkernel/netfilter/nft_exprs.py", "!I"): "nft_payload loads at the base + offset a rule names",
}


def _literal_offset(node: ast.AST | None) -> bool:
    """A non-zero int literal, or something plus one: a field offset written as a number."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int) and node.value != 0
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and \
        any(isinstance(side, ast.Constant) and isinstance(side.value, int) for side in (node.left, node.right))


def _header_parsing(rel: str, source: str) -> list[str]:
    """What in the module `rel` (its path under harness/) parses a header by hand."""
    found = []
    for node in ast.walk(ast.parse(source, rel)):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) and node.args[0].value[:1] in ("!", ">"):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in STRUCT_CALLS and (rel, node.args[0].value) not in NOT_HEADERS:
                found.append(f"{rel}:{node.lineno}: network-order struct format {node.args[0].value!r}")
        elif isinstance(node, ast.Subscript) and _packet_buffer(node):
            start = node.slice.lower if isinstance(node.slice, ast.Slice) else node.slice
            if _literal_offset(start):
                found.append(f"{rel}:{node.lineno}: {ast.unparse(node)} reads packet bytes at a literal offset")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.RShift)) \
                and isinstance(node.left, ast.Subscript) and _packet_buffer(node.left) \
                and isinstance(node.right, ast.Constant):
            found.append(f"{rel}:{node.lineno}: {ast.unparse(node)} decodes a packet field's bits by hand")
    return found


def _packet_buffer(node: ast.Subscript) -> bool:
    value = node.value
    return (value.attr if isinstance(value, ast.Attribute) else getattr(value, "id", "")) in PACKET_BUFFERS


# they break frames on purpose (the fuzzer, the differential runner's malformed
# frames): a corruption is a byte at an offset, not a field a view names
FRAME_BREAKERS = ("fuzz/", "diff/")


def test_no_module_outside_wire_parses_a_header():
    """Issue 9: header fields are read and written through wire/'s views, by
    named offsets and the views' Structs, never by numbers at the call site."""
    modules = {path.relative_to(HARNESS).as_posix(): path for path in sorted(HARNESS.rglob("*.py"))}
    found = [line for rel, path in modules.items() if not rel.startswith(("mockkernel/wire/", *FRAME_BREAKERS))
             for line in _header_parsing(rel, path.read_text())]
    assert found == []


def test_the_header_scan_finds_hand_parsing():
    source = ('import struct\nIPHDR = struct.Struct("!BBHHHBBHII")\n'
              'def ttl(buf, frame, nh):\n    return buf[nh + 8], frame[12:14], buf[nh + TTL], frame[:64], struct.pack("<I", 1)\n'
              'def ihl(buf, nh):\n    return (buf[nh] & 0x0F) * 4, buf[nh] >> 4, buf[nh] & mask\n')
    assert sorted(_header_parsing("mockkernel/ipv4/sample.py", source)) == [
        "mockkernel/ipv4/sample.py:2: network-order struct format '!BBHHHBBHII'",
        "mockkernel/ipv4/sample.py:4: buf[nh + 8] reads packet bytes at a literal offset",
        "mockkernel/ipv4/sample.py:4: frame[12:14] reads packet bytes at a literal offset",
        "mockkernel/ipv4/sample.py:6: buf[nh] & 15 decodes a packet field's bits by hand",
        "mockkernel/ipv4/sample.py:6: buf[nh] >> 4 decodes a packet field's bits by hand"]


def test_tcp_options_are_written_in_tcp_options_write_order():
    """MSS, SACK-permitted riding in the timestamp's NOPs, NOP + window scale:
    the 20 bytes of a Linux SYN (net/ipv4/tcp_output.c tcp_options_write())."""
    syn = tcp.write_options(tcp.OutOptions(mss=1460, ws=10, sack_ok=True, ts=(5, 0)))
    assert syn == bytes.fromhex("020405b4" "0402080a" "00000005" "00000000" "0103030a")
    assert tcp.write_options(tcp.OutOptions(mss=1460, ws=7, sack_ok=True)) == bytes.fromhex(
        "020405b4" "01010402" "01030307")
    established = tcp.write_options(tcp.OutOptions(ts=(1, 2), sack_blocks=((10, 20), (30, 40), (50, 60))))
    assert established[:16] == bytes.fromhex("0101080a" "00000001" "00000002" "0101051a")


def test_tcp_options_parse_back_into_their_values_and_order():
    raw = tcp.write_options(tcp.OutOptions(mss=1448, ws=7, sack_ok=True, ts=(9, 8), sack_blocks=((1, 2),)))
    parsed = tcp.parse_options(bytearray(bytes(tcp.TCP_HLEN) + raw), 0, tcp.TCP_HLEN + len(raw))
    assert parsed == tcp.TcpOptions(kinds=[tcp.TCPOPT_MSS, tcp.TCPOPT_SACK_PERM, tcp.TCPOPT_TIMESTAMP,
                                           tcp.TCPOPT_WINDOW, tcp.TCPOPT_SACK],
                                    mss=1448, wscale=7, sack_perm=True, ts=(9, 8), sack_blocks=[(1, 2)])


def test_tcp_build_segment_checksum_verifies_against_the_pseudo_header():
    saddr, daddr = 0x0A000001, 0x0A000002
    segment = tcp.build_segment(saddr, daddr, 40000, 80, 1, 2, tcp.TCPHDR_ACK | tcp.TCPHDR_PSH, 512,
                                tcp.write_options(tcp.OutOptions(ts=(3, 4))), b"hello")
    packet = ipv4.build_header(saddr, daddr, ipv4.IPPROTO_TCP, len(segment)) + segment
    assert tcp.checksum_ok(packet, 0, ipv4.IPV4_MIN_HLEN, len(packet))
    assert tcp.TcpSegment(packet, ipv4.IPV4_MIN_HLEN).window == 512
