"""ip_rcv_core(): malformed IPv4 headers are dropped in the kernel's order, with its reasons."""
from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.testing import Host


def _frame(host: Host, mutate) -> bytes:
    """A valid UDP datagram to the DUT, its IP header then changed by `mutate`
    (which may change the checksum itself; otherwise it is recomputed)."""
    frame = bytearray(bytes(host.to_dut(id=31337) / UDP(sport=9, dport=9) / (b"z" * 32)))
    fix_checksum = mutate(frame)
    if fix_checksum:
        frame[24:26] = b"\0\0"
        frame[24:26] = struct.pack("!H", _csum(frame[14:14 + (frame[14] & 0x0F) * 4]))
    return bytes(frame)


def _csum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def truncate_to_19_bytes(f):
    del f[14 + 19:]
    return False


def ihl_4(f):
    f[14] = 0x44
    return True


def version_6(f):
    f[14] = 0x65
    return True


def ihl_beyond_packet(f):
    f[14] = 0x4F  # 60-byte header in a 60-byte packet... then cut it to 40
    del f[14 + 40:]
    return False


def bad_header_checksum(f):
    f[24] ^= 0xFF
    return False


def tot_len_beyond_frame(f):
    f[16:18] = struct.pack("!H", 1000)
    return True


def tot_len_below_header(f):
    f[16:18] = struct.pack("!H", 16)
    return True


def tot_len_beyond_frame_and_bad_checksum(f):
    f[16:18] = struct.pack("!H", 1000)
    return False  # the checksum no longer matches: ip_rcv_core() checks it before tot_len


def tot_len_below_header_and_bad_checksum(f):
    f[16:18] = struct.pack("!H", 16)
    return False


@pytest.mark.parametrize(("mutate", "reason"), [
    (truncate_to_19_bytes, "IP_INHDR"),
    (ihl_4, "IP_INHDR"),
    (version_6, "IP_INHDR"),
    (ihl_beyond_packet, "IP_INHDR"),
    (bad_header_checksum, "IP_CSUM"),
    (tot_len_beyond_frame, "PKT_TOO_SMALL"),
    (tot_len_below_header, "IP_INHDR"),
    (tot_len_beyond_frame_and_bad_checksum, "IP_CSUM"),
    (tot_len_below_header_and_bad_checksum, "IP_CSUM"),
])
def test_malformed_header_is_dropped_in_ip_rcv_with_the_kernels_reason(target, hosts, mutate, reason):
    h0 = hosts[0]
    target.send(h0.port, _frame(h0, mutate))
    target.expect_nothing()
    drops = target.drops()
    assert [(d.reason, d.stage) for d in drops] == [(reason, "IP_RCV")]


def test_frame_for_another_mac_is_otherhost(target, hosts):
    h0 = hosts[0]
    frame = Ether(src=h0.mac, dst="02:00:00:00:99:99") / IP(src=h0.ip, dst=h0.dut_ip) / UDP(dport=9)
    target.send(h0.port, frame)
    target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("OTHERHOST", "IP_RCV")]


def test_ethernet_padding_past_tot_len_is_trimmed_before_delivery(target, hosts):
    h0 = hosts[0]
    sock = target.socket("udp", (h0.dut_ip, 4000))
    frame = bytes(h0.to_dut() / UDP(sport=5, dport=4000) / b"hi") + b"\xee" * 16
    target.send(h0.port, frame)
    data, source = sock.recv()
    assert (data, source) == (b"hi", (h0.ip, 5))
    assert target.drops() == []
