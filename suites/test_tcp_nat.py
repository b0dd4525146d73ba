"""NAT and conntrack with real TCP endpoints: a socket on the DUT talking to a tester
host written frame by frame (tcp_segments.Peer), through DNAT to the DUT itself
(redirect in PREROUTING), the DUT's own connections DNATed in OUTPUT and SNATed in
POSTROUTING (replies un-NATed by conntrack before they reach the socket), and the
conntrack states such a connection goes through from its SYN to its last ACK.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether

from harness.target import TcpState
from tcp_segments import Peer, next_segment, syn_mask

pytestmark = pytest.mark.requires("nftables", "conntrack")

SERVER_OPTIONS = [("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]


def _syn_from_dut(target, host, sport: int, dport: int, src: str | None = None) -> TCP:
    """The SYN of connect() leaving towards `host` (Linux's, with timestamps)."""
    syn = host.from_dut(src=src or host.dut_ip, dst=host.ip, ttl=64, flags="DF") / \
        TCP(sport=sport, dport=dport, flags="S", window=64240,
            options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (0, 0)), ("NOP", None), ("WScale", 10)])
    return Ether(target.expect(host.port, syn_mask(syn, tsval_offset=14 + 20 + 20 + 4 + 2 + 2)))[TCP]


def _ct(target) -> list[tuple]:
    return [(e.state, e.original, e.reply, "assured" in e.status) for e in target.conntrack() if e.proto == "tcp"]


def test_a_connection_redirected_to_a_local_port_is_accepted_there_and_answered_from_the_port_it_asked(
        target, hosts):
    """h0 connects to the DUT's port 80; `redirect to :8080` in PREROUTING takes it to
    the listener on 8080, whose SYN-ACK and data leave from port 80 again (conntrack
    reverses the DNAT on output)."""
    h0 = hosts[0]
    target.sh("nft -f -", stdin="table ip nat {\n chain pre {\n  type nat hook prerouting priority dstnat;\n"
                                "  tcp dport 80 redirect to :8080\n }\n}\n")
    listener = target.socket("tcp", (h0.dut_ip, 8080))
    listener.listen(8)
    peer = Peer(h0, 40000, 80)
    peer.connect(target)
    conn, address = listener.accept()
    assert address == (h0.ip, 40000)
    peer.send(target, "PA", b"to port 80")
    peer.expect(target, "A")
    assert conn.recv(100) == b"to port 80"
    conn.send(b"from port 80")
    peer.expect(target, "PA", b"from port 80")
    assert _ct(target) == [("ESTABLISHED", (h0.ip, h0.dut_ip, 40000, 80), (h0.dut_ip, h0.ip, 8080, 40000), True)]


def test_the_duts_own_connection_dnated_in_output_reaches_the_new_address_and_its_replies_the_socket(target, hosts):
    """connect() to 10.0.9.9:80, routed via h0; `dnat to 10.0.1.2:8080` in OUTPUT sends
    the SYN to h1 instead (rerouted, ip_route_me_harder(): out of p1, still from p0's
    address, which the route to the original destination chose); h1's SYN-ACK is
    un-DNATed and completes the socket's handshake."""
    h0, h1 = hosts[0], hosts[1]
    target.sh(f"ip route add 10.0.9.0/24 via {h0.ip}")
    target.sh("nft -f -", stdin="table ip nat {\n chain out {\n  type nat hook output priority -100;\n"
                                f"  ip daddr 10.0.9.9 tcp dport 80 dnat to {h1.ip}:8080\n }}\n}}\n")
    sock = target.socket("tcp", (h0.dut_ip, 50000))
    with pytest.raises(BlockingIOError):
        sock.connect(("10.0.9.9", 80))
    syn = _syn_from_dut(target, h1, 50000, 8080, src=h0.dut_ip)
    target.send(h1.port, h1.to_dut(dst=h0.dut_ip, flags="DF") /
                TCP(sport=8080, dport=50000, flags="SA", seq=7000, ack=syn.seq + 1, window=65535,
                    options=SERVER_OPTIONS))
    ack = Ether(target.frame_left(h1.port, "the ACK of the SYN-ACK"))[TCP]
    assert (ack.flags, ack.seq, ack.ack) == ("A", syn.seq + 1, 7001)
    assert sock.wait("connected", 1.0) and sock.info().state == TcpState.TCP_ESTABLISHED
    assert _ct(target) == [("ESTABLISHED", (h0.dut_ip, "10.0.9.9", 50000, 80), (h1.ip, h0.dut_ip, 8080, 50000),
                            True)]


def test_the_duts_own_connection_snated_in_postrouting_and_its_conntrack_states_to_the_last_ack(target, hosts):
    """`snat to 10.0.1.100` in POSTROUTING: the SYN leaves from 10.0.1.100 (its port kept),
    h1's replies to 10.0.1.100 are un-SNATed before routing and reach the socket. The
    entry goes SYN_SENT, ESTABLISHED (assured), FIN_WAIT after the DUT's FIN, and
    TIME_WAIT once h1's FIN and the DUT's last ACK passed (nf_conntrack_proto_tcp.c's
    state table)."""
    h1 = hosts[1]
    target.sh("nft -f -", stdin="table ip nat {\n chain post {\n  type nat hook postrouting priority srcnat;\n"
                                "  oif p1 tcp dport 80 snat to 10.0.1.100\n }\n}\n")
    sock = target.socket("tcp", (h1.dut_ip, 50000))
    with pytest.raises(BlockingIOError):
        sock.connect((h1.ip, 80))
    syn = _syn_from_dut(target, h1, 50000, 80, src="10.0.1.100")
    original, reply = (h1.dut_ip, h1.ip, 50000, 80), (h1.ip, "10.0.1.100", 80, 50000)
    states = [_ct(target)]

    def from_h1(flags: str, seq: int, ack: int, payload: bytes = b"", **tcp) -> None:
        tcp = {"window": 502, **tcp}
        target.send(h1.port, h1.to_dut(dst="10.0.1.100", flags="DF") /
                    TCP(sport=80, dport=50000, flags=flags, seq=seq, ack=ack, **tcp) / payload)

    from_h1("SA", 7000, syn.seq + 1, window=65535, options=SERVER_OPTIONS)
    target.frame_left(h1.port, "the ACK of the SYN-ACK")
    assert sock.wait("connected", 1.0)
    from_h1("PA", 7001, syn.seq + 1, b"hello")
    target.frame_left(h1.port, "the ACK of the data")
    assert sock.recv(100) == b"hello"
    states.append(_ct(target))
    sock.close()
    fin = next_segment(target, h1, "the DUT's FIN")
    assert (fin["IP"].src, fin[TCP].flags, fin[TCP].seq) == ("10.0.1.100", "FA", syn.seq + 1)
    states.append(_ct(target))
    from_h1("FA", 7006, syn.seq + 2)
    target.frame_left(h1.port, "the last ACK")
    states.append(_ct(target))
    assert states == [[("SYN_SENT", original, reply, False)], [("ESTABLISHED", original, reply, True)],
                      [("FIN_WAIT", original, reply, True)], [("TIME_WAIT", original, reply, True)]]
