"""The DUT as a TCP endpoint: a socket of an application on the DUT (target.socket("tcp"))
talking to a tester host written frame by frame (tcp_segments.Peer).

The handshake both ways with Linux's SYN and SYN-ACK, data and its ACKs, resets for a
closed port and from `reject with tcp reset`, a refused connect(), the receive buffer
closing the window without losing a byte, the send buffer refusing more than it holds,
a full accept queue, out-of-order segments reassembled, and TIME_WAIT taken over by a
new connection.
"""
from __future__ import annotations

import socket

import pytest
from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether

from harness.packets import Mask
from harness.testing import drops
from tcp_segments import (INITIAL_WINDOW, SYN_ACK_OPTIONS, SYN_OPTIONS, Peer, next_segment, socket_segment_mask,
                          syn_mask)
from harness.target import TcpState

DUT_PORT, PEER_PORT = 8080, 40000


@pytest.fixture
def h0(hosts):
    return hosts[0]


def _listener(target, h0, backlog: int = 8, **buffers):
    listener = target.socket("tcp", (h0.dut_ip, DUT_PORT), **buffers)
    listener.listen(backlog)
    return listener


def _accepted(target, h0, syn_ack=(), **buffers):
    """A connection from h0 the DUT's listener accepted (`syn_ack`: the window and
    options of its SYN-ACK, default Linux's): the socket and the peer."""
    listener = _listener(target, h0, **buffers)
    peer = Peer(h0, PEER_PORT, DUT_PORT)
    peer.connect(target, *syn_ack)
    conn, address = listener.accept()
    assert address == (h0.ip, PEER_PORT)
    return conn, peer


def test_a_listener_answers_a_syn_with_linuxs_syn_ack_and_accepts_the_connection_with_its_data(target, h0):
    listener = _listener(target, h0)
    peer = Peer(h0, PEER_PORT, DUT_PORT)
    peer.connect(target)
    assert (listener.info().state, listener.info().recv_q, listener.info().send_q) == (TcpState.TCP_LISTEN, 1, 8)
    peer.send(target, "PA", b"hello")
    peer.expect(target, "A")  # quick ACK mode: the first data is acknowledged at once
    conn, address = listener.accept()
    assert address == (h0.ip, PEER_PORT) and conn.recv(100) == b"hello"
    assert conn.send(b"world") == 5
    peer.expect(target, "PA", b"world")
    info = conn.info()
    assert (info.state, info.recv_q, info.send_q, info.mss, info.bytes_received) == \
        (TcpState.TCP_ESTABLISHED, 0, 5, 1460, 5)
    peer.send(target, "A")
    target.expect_nothing()  # acknowledged: no retransmission
    assert (conn.info().send_q, conn.info().bytes_acked) == (0, 5)


def test_connect_sends_linuxs_syn_and_the_syn_ack_completes_the_handshake(target, h0):
    sock = target.socket("tcp", (h0.dut_ip, 50000))
    with pytest.raises(BlockingIOError) as in_progress:
        sock.connect((h0.ip, 80))
    assert in_progress.value.errno == 115  # EINPROGRESS
    assert sock.info().state == TcpState.TCP_SYN_SENT
    syn = h0.from_dut(src=h0.dut_ip, dst=h0.ip, ttl=64, flags="DF") / \
        TCP(sport=50000, dport=80, flags="S", window=INITIAL_WINDOW,
            options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (0, 0)), ("NOP", None), ("WScale", 10)])
    got = Ether(target.expect(h0.port, syn_mask(syn, tsval_offset=14 + 20 + 20 + 4 + 2 + 2)))
    server = Peer(h0, 80, 50000, seq=7000, ack=got[TCP].seq + 1)
    server.send(target, "SA", options=SYN_OPTIONS, window=65535)
    server.expect(target, "A")
    assert sock.wait("connected", 1.0)
    info = sock.info()
    assert (info.state, info.mss, info.snd_wnd, info.cwnd) == (TcpState.TCP_ESTABLISHED, 1460, 65535, 10)


def test_data_the_dut_sends_is_cut_to_the_mss_the_peer_offered_and_pushed_at_its_end(target, h0):
    """3000 bytes to a peer offering MSS 1460: 1460, 1460 and 80 bytes, PSH on the last
    (tcp_push() marks the end of the write; the segments of one GSO burst carry the
    PSH of their last only, tcp_gso_segment(), which bursts end where is not asserted)."""
    conn, peer = _accepted(target, h0)
    assert conn.send(b"x" * 3000) == 3000
    segments = [Ether(target.next_frame(h0.port, target.now() + 1.0)[0])[TCP] for _ in range(3)]
    assert [(segment.seq - peer.ack, len(segment.payload), "A" in segment.flags) for segment in segments] == \
        [(0, 1460, True), (1460, 1460, True), (2920, 80, True)]
    assert "P" in segments[-1].flags
    assert (conn.info().unacked, conn.info().send_q) == (3, 3000)
    peer.send(target, "A", ack=peer.ack + 3000)
    assert (conn.info().unacked, conn.info().send_q, conn.info().bytes_acked) == (0, 0, 3000)


def test_a_syn_to_a_closed_port_and_one_refused_by_reject_with_tcp_reset_both_get_rst_ack(target, h0):
    """tcp_v4_send_reset() and nf_send_reset() write the same reset: IP ID 0, DF, TTL 64,
    seq 0 and the SYN's sequence + 1 acknowledged, window 0; the listener behind the
    reject rule never sees the SYN."""
    target.sh("nft -f -", stdin="table ip f {\n chain in {\n  type filter hook input priority 0;\n"
                                "  tcp dport 8081 counter reject with tcp reset\n }\n}\n")
    behind_reject = target.socket("tcp", (h0.dut_ip, 8081))
    behind_reject.listen(8)
    for dport in (8081, 9999):
        peer = Peer(h0, PEER_PORT, dport)
        peer.send(target, "S", options=SYN_OPTIONS, window=INITIAL_WINDOW)
        target.expect(h0.port, h0.from_dut(src=h0.dut_ip, dst=h0.ip, ttl=64, flags="DF", id=0) /
                      TCP(sport=dport, dport=PEER_PORT, flags="RA", seq=0, ack=peer.seq, window=0))
    assert behind_reject.info().recv_q == 0
    assert [reason for reason, _, _ in drops(target)] == ["NETFILTER_DROP", "NO_SOCKET"]


def test_a_connect_answered_with_a_reset_is_refused(target, h0):
    sock = target.socket("tcp", (h0.dut_ip, 50000))
    with pytest.raises(BlockingIOError):
        sock.connect((h0.ip, 9))
    syn = Ether(target.frame_left(h0.port, "the SYN of connect()"))[TCP]
    Peer(h0, 9, 50000, seq=0).send(target, "RA", ack=syn.seq + 1, window=0)
    with pytest.raises(ConnectionRefusedError):
        sock.wait("connected", 1.0)
    assert sock.info().state == TcpState.TCP_CLOSE
    target.expect_nothing()


# SO_RCVBUF 2048 (sk_rcvbuf 4096 once doubled): tcp_select_initial_window() offers half
# of it (2048) rounded down to the MSS, 1460, and window scale 0: the space it scales
# for is clamped to that window.
SMALL_WINDOW_SYN_ACK = (1460, [*SYN_ACK_OPTIONS[:-1], ("WScale", 0)])


def test_a_full_receive_buffer_closes_the_window_and_loses_nothing(target, h0):
    """The peer sends what each ACK offers, one segment per ACK (at once or delayed, within
    TCP_DELACK_MAX), until the window is closed; the application then reads every byte in
    order and the DUT reopens the window."""
    conn, peer = _accepted(target, h0, syn_ack=SMALL_WINDOW_SYN_ACK, rcvbuf=2048)
    sent, offered = b"", None
    for n in range(64):
        got = next_segment(target, h0, "an ACK", within=1.0) if n else None
        offered = got[TCP].window if got else 1460
        if offered == 0:
            break
        chunk = bytes([65 + n % 26]) * min(offered, 500)
        peer.send(target, "PA", chunk)
        sent += chunk
    assert offered == 0
    received = b""
    while conn.wait("readable", 0):
        received += conn.recv(65536)
        if conn.info().recv_q == 0:
            break
    assert received == sent
    update = Ether(target.frame_left(h0.port, "the window update"))[TCP]
    assert (update.flags, update.ack, update.window > 0) == ("A", peer.seq, True)


def test_a_full_send_buffer_takes_no_more_until_the_peer_acknowledges(target, h0):
    """SO_SNDBUF 4608: send() stops taking bytes long before the 1 MB offered (EAGAIN;
    tcp_sendmsg_locked() fills the queue's last skb up to its size goal before it checks
    sk_stream_memory_free()), and the socket is writable again once the peer acknowledged
    what was sent."""
    conn, peer = _accepted(target, h0, sndbuf=4608)
    taken = 0
    with pytest.raises(BlockingIOError):
        while taken < 1 << 20:
            taken += conn.send(b"y" * 1000)
    assert 0 < taken < 128 * 1024
    assert not conn.wait("writable", 0)
    assert conn.info().send_q == taken
    sent_up_to = peer.ack
    while not conn.wait("writable", 0) and sent_up_to - peer.ack < taken:
        sent = [Ether(frame)[TCP] for frame in target.collect(h0.port)]
        sent_up_to = max(segment.seq + len(segment.payload) for segment in sent)
        peer.send(target, "A", ack=sent_up_to)
    assert conn.wait("writable", 0)


def _listen_overflows(target) -> list[tuple[str, int]]:
    counters = target.sh("nstat -az TcpExtListenOverflows TcpExtListenDrops")
    return [(name, int(value)) for name, value, *_ in (line.split() for line in counters.splitlines()[1:])]


def test_a_full_backlog_answers_with_a_syncookie_then_drops_what_the_accept_queue_cannot_hold(target, h0):
    """listen(1). Three SYNs: the first two get Linux's SYN-ACK; the third finds the SYN
    queue fuller than the backlog (inet_csk_reqsk_queue_is_full()) and gets a SYN cookie
    (tcp_syncookies 1): MSS alone, no timestamp to carry SACK and window scale. The
    three ACKs: the accept queue takes two (sk_acceptq_is_full(): more than the
    backlog), the cookie's valid ACK overflows it (LISTENOVERFLOWS, LISTENDROPS) and is
    dropped without an answer; a fourth SYN meets the full accept queue and is dropped."""
    listener = _listener(target, h0, backlog=1)
    peers = [Peer(h0, PEER_PORT + n, DUT_PORT) for n in range(3)]
    peers[0].syn(target)
    peers[1].syn(target)
    peers[2].syn(target, options=[("MSS", 1460)])
    for peer in peers:
        peer.send(target, "A")
    target.expect_nothing()
    assert (listener.info().recv_q, listener.info().send_q) == (2, 1)
    assert _listen_overflows(target) == [("TcpExtListenOverflows", 1), ("TcpExtListenDrops", 1)]
    Peer(h0, PEER_PORT + 3, DUT_PORT).send(target, "S", options=SYN_OPTIONS, window=INITIAL_WINDOW)
    target.expect_nothing()
    assert _listen_overflows(target) == [("TcpExtListenOverflows", 2), ("TcpExtListenDrops", 2)]
    assert [listener.accept()[1] for _ in range(2)] == [(h0.ip, PEER_PORT), (h0.ip, PEER_PORT + 1)]
    with pytest.raises(BlockingIOError):
        listener.accept()


def _held_mask(frame) -> Mask:
    """An ACK while the DUT holds received data: its window is less the memory that data
    took (the skbs' truesize, which the driver's buffers decide)."""
    return socket_segment_mask(frame).ignore(TCP, "window", "less the truesize of the data held, the driver's") \
        .ignore(TCP, "chksum", "covers the window")


def test_out_of_order_segments_are_held_with_a_sack_and_delivered_in_order(target, h0):
    """A segment past a hole is queued out of order and acknowledged at once with the
    hole's start and a SACK block for it (tcp_data_queue_ofo(), tcp_sack_new_ofo_skb());
    the segment that fills the hole delivers both, in order, acknowledged at once."""
    conn, peer = _accepted(target, h0)
    first, second = b"a" * 100, b"b" * 100
    start = peer.seq
    peer.send(target, "PA", second, seq=start + 100)
    target.expect(h0.port, _held_mask(peer.from_dut("A", ack=start, options=[
        ("NOP", None), ("NOP", None), ("SAck", (start + 100, start + 200))])))
    with pytest.raises(BlockingIOError):
        conn.recv(1000)
    peer.seq = start
    peer.send(target, "PA", first)
    peer.seq = start + 200
    target.expect(h0.port, _held_mask(peer.from_dut("A")))
    assert conn.recv(1000) == first + second


def _time_wait(target, h0, sock) -> int:
    """`sock` connects to h0:80 with timestamps, closes first, and h0 acknowledges its
    FIN with its own: the DUT's end waits in TIME_WAIT. Returns the sequence number
    after the DUT's FIN (tw_snd_nxt)."""
    with pytest.raises(BlockingIOError):
        sock.connect((h0.ip, 80))
    syn = Ether(target.frame_left(h0.port, "the SYN"))[TCP]
    tsval = dict(syn.options)["Timestamp"][0]
    server = Peer(h0, 80, syn.sport, seq=7000, ack=syn.seq + 1)
    server.send(target, "SA", options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, tsval)), ("NOP", None),
                                       ("WScale", 7)], window=65535)
    target.frame_left(h0.port, "the ACK of the SYN-ACK")
    sock.close()
    fin = next_segment(target, h0, "the DUT's FIN")[TCP]
    server.send(target, "FA", ack=fin.seq + 1, options=[("NOP", None), ("NOP", None), ("Timestamp", (2, tsval))])
    target.frame_left(h0.port, "the last ACK")
    return fin.seq + 1


def _reusing_syn(target, h0, sock, tw_snd_nxt: int) -> None:
    """connect() took over the TIME_WAIT: its SYN starts past anything the old
    connection sent (tcp_twsk_unique(): tw_snd_nxt + 65535 + 2)."""
    with pytest.raises(BlockingIOError):
        sock.connect((h0.ip, 80))
    reused = Ether(target.frame_left(h0.port, "the SYN reusing TIME_WAIT"))[TCP]
    assert (reused.sport, reused.flags, reused.seq) == (50000, "S", (tw_snd_nxt + 65535 + 2) & 0xFFFFFFFF)


def test_a_connect_from_a_bound_port_takes_over_time_wait_at_once_whatever_tcp_tw_reuse_says(target, h0):
    """bind() chose the port: __inet_hash_connect() checks the 4-tuple with no TIME_WAIT
    to hand back (twp NULL), and tcp_twsk_unique() lets a connection that had timestamps
    be reused at once, tcp_tw_reuse 2 (loopback only) notwithstanding."""
    sockets = []
    for _ in range(2):
        sock = target.socket("tcp")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((h0.dut_ip, 50000))
        sockets.append(sock)
        if len(sockets) == 1:
            tw_snd_nxt = _time_wait(target, h0, sock)
    _reusing_syn(target, h0, sockets[1], tw_snd_nxt)


def test_an_ephemeral_port_in_time_wait_is_reused_only_with_tcp_tw_reuse_1_and_a_second_after(target, h0):
    """One ephemeral port (ip_local_port_range 50000 50000), in TIME_WAIT: connect()
    finds no port (EADDRNOTAVAIL) while tcp_tw_reuse is 2 (loopback only); with 1 it
    takes the TIME_WAIT over once tcp_tw_reuse_delay (1000 ms) passed since the last
    timestamp it saw."""
    target.sh(["sysctl", "-w", "net.ipv4.ip_local_port_range=50000\t50000"])
    tw_snd_nxt = _time_wait(target, h0, target.socket("tcp"))
    again = target.socket("tcp")
    with pytest.raises(OSError) as no_port:
        again.connect((h0.ip, 80))
    assert no_port.value.errno == 99  # EADDRNOTAVAIL
    target.sh("sysctl -w net.ipv4.tcp_tw_reuse=1")
    target.wait(1.1)
    _reusing_syn(target, h0, again, tw_snd_nxt)


def _skmem_rmem_and_rcv_ssthresh(target) -> tuple[int, int]:
    """sk_rmem_alloc (skmem's r) and rcv_ssthresh of the one connection, from `ss -tmi`."""
    ss = target.sh("ss -tmi state established")
    return int(ss.split("skmem:(r", 1)[1].split(",", 1)[0]), int(ss.split("rcv_ssthresh:", 1)[1].split()[0])


@pytest.mark.parametrize("payload, rmem, rcv_ssthresh, window", [
    (186, 832, 64076, 63),  # frame 240 in a head of 16 + 240: skb_small_head_cache's 576 + the sk_buff's 256
    (187, 1280, 64076, 63),  # kmalloc-1024; both shorter than rcv_mss (536): scaling_ratio stays 128
    (634, 1280, 64240, 63),  # 634 * 256 / 1280: ratio 126, window_clamp 64512, rcv_ssthresh up to rcv_wnd
    (635, 2304, 35840, 63),  # kmalloc-2048: ratio 70, window_clamp and rcv_ssthresh 35840 (the window never shrinks)
    (1460, 2304, 67160, 66),  # ratio 162: rcv_ssthresh 64240, then tcp_grow_window()'s 2 * advmss, offered at once
])
def test_a_segment_is_charged_its_slab_size_and_its_share_of_it_scales_the_window(target, h0, payload, rmem,
                                                                                  rcv_ssthresh, window):
    """skb->truesize of a frame the tester sent is the slab object kmalloc_reserve() gave
    the head packet_snd() asked for (16 bytes reserved + the frame) plus the sk_buff;
    tcp_measure_rcv_mss() makes payload / truesize the scaling_ratio, which sets
    window_clamp and so rcv_ssthresh (values measured on the netns lab, 6.18)."""
    conn, peer = _accepted(target, h0)
    peer.send(target, "PA", b"x" * payload)
    peer.expect(target, "A", window=window)  # quick ACK mode
    assert _skmem_rmem_and_rcv_ssthresh(target) == (rmem, rcv_ssthresh)


def test_small_segments_are_copied_into_the_room_left_in_the_last_skb_and_cost_nothing_more(target, h0):
    """tcp_try_coalesce(): a 100-byte segment fits the 100 bytes a 154-byte frame leaves
    of its 256-byte head (data from offset 2), so ten take five skbs (r 5 x 832) and
    TcpExtTCPRcvCoalesce counts the other five."""
    conn, peer = _accepted(target, h0)
    for n in range(10):
        peer.send(target, "PA", bytes([65 + n]) * 100)
        peer.expect(target, "A")
    assert _skmem_rmem_and_rcv_ssthresh(target)[0] == 5 * 832
    assert target.sh("nstat -az TcpExtTCPRcvCoalesce").splitlines()[1].split()[:2] == ["TcpExtTCPRcvCoalesce", "5"]
    assert conn.recv(4000) == b"".join(bytes([65 + n]) * 100 for n in range(10))
