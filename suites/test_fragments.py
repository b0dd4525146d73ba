"""Reassembly on local delivery (ip_defrag) and local fragmentation (ip_fragment)."""
from __future__ import annotations

from scapy.layers.inet import IP, UDP


DATAGRAM = bytes(range(256)) * 8  # 2048 bytes of UDP payload


def _fragments(host, dport: int, ident: int):
    """The UDP datagram split into fragments of 800, 800 and the rest."""
    whole = bytes(UDP(sport=4444, dport=dport) / DATAGRAM)
    udp = bytes(IP(src=host.ip, dst=host.dut_ip, proto=17) / whole)[20:]
    frags = []
    for offset in (0, 800, 1600):
        chunk = udp[offset:offset + 800]
        more = offset + 800 < len(udp)
        frags.append(host.to_dut(id=ident, proto=17, flags="MF" if more else 0, frag=offset // 8) / chunk)
    return frags


def test_fragments_in_any_order_are_reassembled_for_the_socket(target, hosts):
    h0 = hosts[0]
    sock = target.socket("udp", (h0.dut_ip, 8000))
    first, middle, last = _fragments(h0, 8000, ident=0x4321)
    target.send(h0.port, [last, first, middle])
    assert sock.recv() == (DATAGRAM, (h0.ip, 4444))
    target.expect_nothing()
    assert target.drops() == []


def test_duplicate_fragment_is_dropped_and_the_datagram_still_completes(target, hosts):
    h0 = hosts[0]
    sock = target.socket("udp", (h0.dut_ip, 8001))
    first, middle, last = _fragments(h0, 8001, ident=0x1111)
    target.send(h0.port, [first, first, middle, last])
    assert sock.recv() == (DATAGRAM, (h0.ip, 4444))
    assert [(d.reason, d.stage) for d in target.drops()] == [("DUP_FRAG", "IP_DEFRAG")]


def test_incomplete_datagram_expires_with_time_exceeded_after_ipfrag_time(target, hosts):
    h0 = hosts[0]
    target.socket("udp", (h0.dut_ip, 8002))
    target.sh("sysctl -w net.ipv4.ipfrag_time=1")
    first, _, last = _fragments(h0, 8002, ident=0x2222)
    target.send(h0.port, [first, last])
    target.expect_nothing()
    target.wait(1.5)
    # ip_expire(): the first fragment arrived, so its sender hears about it
    target.expect(h0.port, h0.icmp_error(11, 1, first))
    drops = sorted((d.reason, d.stage, d.location) for d in target.drops())
    assert drops == [("FRAG_REASM_TIMEOUT", "IP_DEFRAG", "inet_frag_rbtree_purge"),
                     ("FRAG_REASM_TIMEOUT", "IP_DEFRAG", "ip_expire")]


def test_large_udp_datagram_from_a_socket_leaves_in_fragments_without_df(target, hosts):
    h1 = hosts[1]
    sock = target.socket("udp", (h1.dut_ip, 9000))
    sock.sendto(DATAGRAM, (h1.ip, 9001))
    udp = bytes(IP(src=h1.dut_ip, dst=h1.ip, proto=17) / UDP(sport=9000, dport=9001) / DATAGRAM)[20:]
    frames = target.frames_left(h1.port, 2, "the datagram in two fragments")
    ids = {IP(f[14:]).id for f in frames}
    assert len(ids) == 1, "fragments of one datagram share its IP ID"
    for frame, (offset, more) in zip(frames, ((0, True), (1480, False))):
        ip = IP(frame[14:])
        assert (ip.flags.MF, ip.flags.DF, ip.frag * 8, ip.ttl) == (more, False, offset, 64)
        assert bytes(ip.payload) == udp[offset:offset + 1480]
