"""The mock's TCP receive side and state machine (tcp_ipv4.py, tcp_input.py,
tcp_minisocks.py, syncookies.py, tcp.py): what the kernel does with each
segment, the drop reason it gives, the counters it raises and the state the
socket ends in. Expected values are written from net/ipv4/tcp_input.c,
tcp_ipv4.c, tcp_minisocks.c and syncookies.c (Linux 6.18), not computed by the
model; C's packetdrill scripts check the segments on the wire against the real
kernel."""
from __future__ import annotations

import errno
import select
import socket
import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from harness.dropreason import DropReason
from harness.mockkernel.core.snmp import SNMP4_NET_LIST, SNMP4_TCP_LIST
from harness.mockkernel.ipv4 import tcp as T
from harness.mockkernel.ipv4.tcp_states import (TCP_CLOSE, TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED,
                                                TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_SYN_RECV,
                                                TCP_TIME_WAIT)
from harness.mockkernel.net import ip_to_int
from harness.mockkernel.target import MockTarget

DUT, PEER = "10.0.0.1", "10.0.0.2"
DUT_MAC, PEER_MAC = "02:00:00:00:00:01", "02:00:00:00:01:01"
PORT, PEER_PORT = 8080, 40000
ISN = 1000  # the peer's


@pytest.fixture
def target():
    target = MockTarget()
    target.sh(f"ip addr add {DUT}/24 dev p0")
    target.sh(f"ip neigh replace {PEER} lladdr {PEER_MAC} dev p0 nud permanent")
    yield target
    target.close()


class Peer:
    """The host on t0: sends segments to the DUT and reads what comes back."""

    def __init__(self, target: MockTarget, port: int = PEER_PORT) -> None:
        self.target, self.port = target, port
        self.seq = ISN + 1
        self.ack = 0

    def send(self, flags: str, seq: int | None = None, ack: int | None = None, data: bytes = b"",
             window: int = 1024, options=()) -> list[TCP]:
        segment = TCP(sport=self.port, dport=PORT, flags=flags, seq=self.seq if seq is None else seq,
                      ack=self.ack if ack is None else ack, window=window, options=list(options))
        frame = Ether(src=PEER_MAC, dst=DUT_MAC) / IP(src=PEER, dst=DUT) / segment
        if data:
            frame = frame / Raw(data)
        self.target.send("p0", bytes(frame))
        return self.replies()

    def replies(self) -> list[TCP]:
        return [Ether(frame)[TCP] for frame in self.target._receive(0)["p0"].frames]

    def handshake(self, options=()) -> TCP:
        """SYN, SYN-ACK, ACK; the SYN-ACK."""
        (synack,) = self.send("S", seq=ISN, ack=0, window=65535, options=options)
        self.ack = synack.seq + 1
        assert self.send("A") == []
        return synack


def listener(target: MockTarget, backlog: int = 5):
    sk = T.tcp_sock_create(target.kernel)
    T.inet_bind(sk, 0, PORT)
    T.inet_listen(sk, backlog)
    return sk


def established(target: MockTarget, options=()):
    """An accepted connection with the peer, and the peer."""
    sk = listener(target)
    peer = Peer(target)
    peer.handshake(options)
    return T.inet_accept(sk), peer


def net_mib(target: MockTarget, name: str) -> int:
    return target.kernel.mib.net_statistics[SNMP4_NET_LIST.index(name)]


def tcp_mib(target: MockTarget, name: str) -> int:
    return target.kernel.mib.tcp_statistics[SNMP4_TCP_LIST.index(name)]


def last_drop(target: MockTarget) -> DropReason:
    return target.drops()[-1].reason


def test_syn_to_a_listener_is_answered_with_syn_ack_and_the_ack_queues_an_established_child(target):
    sk = listener(target)
    peer = Peer(target)
    (synack,) = peer.send("S", seq=ISN, ack=0)
    assert synack.flags == "SA" and synack.ack == ISN + 1
    assert T.tcp_get_info(sk).recv_q == 0
    assert peer.send("A", ack=synack.seq + 1) == []
    assert T.tcp_get_info(sk).recv_q == 1  # ss: the accept queue
    child = T.inet_accept(sk)
    assert child.state == TCP_ESTABLISHED and (child.dport, child.sport) == (PEER_PORT, PORT)
    assert tcp_mib(target, "PassiveOpens") == 1 and tcp_mib(target, "CurrEstab") == 1
    assert target.drops() == []


def test_listen_backlog_is_capped_by_somaxconn_and_accept_with_nothing_queued_would_block(target):
    target.sh("sysctl -w net.core.somaxconn=3")
    sk = listener(target, backlog=100)
    assert T.tcp_get_info(sk).send_q == 3
    with pytest.raises(BlockingIOError):
        T.inet_accept(sk)


def test_a_second_bind_to_a_port_in_use_is_eaddrinuse_unless_both_reuse_and_neither_listens(target):
    first = T.tcp_sock_create(target.kernel)
    T.inet_bind(first, 0, 9000)
    second = T.tcp_sock_create(target.kernel)
    with pytest.raises(OSError) as refused:
        T.inet_bind(second, 0, 9000)
    assert refused.value.errno == errno.EADDRINUSE
    reusing = [T.tcp_sock_create(target.kernel) for _ in range(2)]
    for sk in reusing:
        T.do_tcp_setsockopt(sk, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        T.inet_bind(sk, 0, 9001)
    T.inet_listen(reusing[0], 1)
    with pytest.raises(OSError) as busy:
        T.inet_listen(reusing[1], 1)
    assert busy.value.errno == errno.EADDRINUSE


def _fill_accept_queue(target):
    """listen(1): A queued, B's and C's SYNs answered; B's ACK fills the queue
    (full is more than the backlog); C's ACK and SYN-ACK."""
    sk = listener(target, backlog=1)
    Peer(target, 40001).handshake()
    second, third = Peer(target, 40002), Peer(target, 40003)
    (synack2,) = second.send("S", seq=ISN, ack=0)
    (synack3,) = third.send("S", seq=ISN, ack=0)
    assert second.send("A", ack=synack2.seq + 1) == []
    return sk, third, third.send("A", ack=synack3.seq + 1), synack3


def test_ack_of_a_handshake_into_a_full_accept_queue_is_dropped_and_counted_without_a_reset(target):
    sk, third, answer, _ = _fill_accept_queue(target)
    assert answer == []
    assert last_drop(target) == DropReason.TCP_LISTEN_OVERFLOW
    assert (net_mib(target, "ListenOverflows"), net_mib(target, "ListenDrops")) == (1, 1)
    assert len(sk.accept_queue) == 2 and len(sk.syn_queue) == 1  # the request stays, its ACK remembered


def test_a_syn_meeting_a_full_accept_queue_is_dropped_and_counted(target):
    _fill_accept_queue(target)
    assert Peer(target, 40004).send("S", seq=ISN, ack=0) == []
    assert (net_mib(target, "ListenOverflows"), net_mib(target, "ListenDrops")) == (2, 2)


def test_with_tcp_abort_on_overflow_the_ack_into_a_full_accept_queue_is_reset(target):
    target.sh("sysctl -w net.ipv4.tcp_abort_on_overflow=1")
    sk, third, answer, synack = _fill_accept_queue(target)
    (rst,) = answer
    assert rst.flags == "R" and rst.seq == synack.seq + 1
    assert net_mib(target, "EmbryonicRsts") == 1 and sk.syn_queue == {}


def test_syn_past_a_full_syn_queue_gets_a_cookie_whose_ack_makes_the_connection(target):
    sk = listener(target, backlog=0)
    Peer(target, 40001).send("S", seq=ISN, ack=0)
    cookie_peer = Peer(target, 40002)
    (synack,) = cookie_peer.send("S", seq=ISN, ack=0, options=[("MSS", 1400)])
    assert (net_mib(target, "SyncookiesSent"), net_mib(target, "TCPReqQFullDoCookies")) == (1, 1)
    assert dict(synack.options) == {"MSS": 1460}  # ours; without timestamps a cookie carries no wscale, no SACK
    assert len(sk.syn_queue) == 1  # a cookie keeps no request
    assert cookie_peer.send("A", ack=synack.seq + 1) == []
    assert net_mib(target, "SyncookiesRecv") == 1
    child = T.inet_accept(sk)
    assert child.state == TCP_ESTABLISHED
    assert child.rx_opt.mss_clamp == 1300  # msstab's largest entry not above the peer's 1400


def test_without_syncookies_a_syn_past_a_full_syn_queue_is_dropped(target):
    target.sh("sysctl -w net.ipv4.tcp_syncookies=0")
    listener(target, backlog=0)
    Peer(target, 40001).send("S", seq=ISN, ack=0)
    assert Peer(target, 40002).send("S", seq=ISN, ack=0) == []
    assert (net_mib(target, "TCPReqQFullDrop"), net_mib(target, "ListenDrops")) == (1, 1)


def test_an_ack_with_a_bad_cookie_after_an_overflow_counts_syncookies_failed_and_is_reset(target):
    listener(target, backlog=0)
    Peer(target, 40001).send("S", seq=ISN, ack=0)
    Peer(target, 40002).send("S", seq=ISN, ack=0)
    (rst,) = Peer(target, 40003).send("A", ack=12345)
    assert rst.flags == "R" and rst.seq == 12345
    assert net_mib(target, "SyncookiesFailed") == 1 and last_drop(target) == DropReason.TCP_FLAGS


def test_an_ack_to_a_listener_that_never_overflowed_is_reset_with_tcp_flags(target):
    listener(target)
    (rst,) = Peer(target).send("A", ack=777)
    assert rst.flags == "R" and rst.seq == 777
    assert last_drop(target) == DropReason.TCP_FLAGS and net_mib(target, "SyncookiesFailed") == 0


def test_out_of_order_data_is_acked_at_once_with_a_sack_block_and_read_in_order_once_the_hole_fills(target):
    sk, peer = established(target, options=[("SAckOK", b"")])
    start = peer.seq
    (dupack,) = peer.send("PA", seq=start + 100, data=b"b" * 100)
    assert dupack.ack == start and dict(dupack.options)["SAck"] == (start + 100, start + 200)
    assert net_mib(target, "TCPOFOQueue") == 1
    (ack,) = peer.send("PA", seq=start, data=b"a" * 100)
    assert ack.ack == start + 200 and "SAck" not in dict(ack.options)
    assert T.tcp_recvmsg(sk, 1000) == b"a" * 100 + b"b" * 100


def test_data_already_received_is_dropped_as_old_data_and_answered_with_a_dsack(target):
    sk, peer = established(target, options=[("SAckOK", b"")])
    start = peer.seq
    peer.send("PA", seq=start, data=b"x" * 100)
    (dup,) = peer.send("PA", seq=start, data=b"x" * 100)
    assert last_drop(target) == DropReason.TCP_OLD_DATA
    assert dup.ack == start + 100 and dict(dup.options)["SAck"] == (start, start + 100)
    assert net_mib(target, "TCPDSACKOldSent") == 1


def test_a_segment_past_the_window_gets_a_duplicate_ack_and_tcp_invalid_sequence(target):
    sk, peer = established(target)
    (dup,) = peer.send("PA", seq=peer.seq + 10_000_000, data=b"x")
    assert dup.ack == peer.seq
    assert last_drop(target) == DropReason.TCP_INVALID_SEQUENCE and net_mib(target, "BeyondWindow") == 1


def test_a_rst_at_rcv_nxt_resets_the_connection_and_recv_reports_econnreset(target):
    sk, peer = established(target)
    assert peer.send("R") == []
    assert sk.state == TCP_CLOSE and tcp_mib(target, "EstabResets") == 1
    with pytest.raises(OSError) as reset:
        T.tcp_recvmsg(sk, 10)
    assert reset.value.errno == errno.ECONNRESET
    assert T.tcp_recvmsg(sk, 10) == b""  # the error is reported once


def test_a_rst_in_the_window_but_not_at_rcv_nxt_draws_a_challenge_ack(target):
    sk, peer = established(target)
    (challenge,) = peer.send("R", seq=peer.seq + 5)
    assert challenge.flags == "A" and challenge.ack == peer.seq
    assert sk.state == TCP_ESTABLISHED and last_drop(target) == DropReason.TCP_RESET
    assert net_mib(target, "TCPChallengeACK") == 1


def test_a_syn_on_an_established_connection_draws_a_challenge_ack_and_tcp_invalid_syn(target):
    sk, peer = established(target)
    (challenge,) = peer.send("S", seq=peer.seq + 5)
    assert challenge.flags == "A" and challenge.ack == peer.seq
    assert last_drop(target) == DropReason.TCP_INVALID_SYN and net_mib(target, "TCPSYNChallenge") == 1


def test_an_ack_of_unsent_data_drops_the_segment_and_draws_one_rate_limited_challenge_ack(target):
    sk, peer = established(target)
    (challenge,) = peer.send("PA", ack=peer.ack + 4000, data=b"x" * 100)
    assert challenge.flags == "A" and (challenge.seq, challenge.ack) == (peer.ack, peer.seq)
    assert last_drop(target) == DropReason.TCP_ACK_UNSENT_DATA and not sk.receive_queue
    assert peer.send("PA", ack=peer.ack + 4000, data=b"x" * 100) == []  # within tcp_invalid_ratelimit (500 ms)
    assert (net_mib(target, "TCPChallengeACK"), net_mib(target, "TCPACKSkippedChallenge")) == (1, 1)


def test_an_older_timestamp_fails_paws_with_a_duplicate_ack(target):
    sk, peer = established(target, options=[("Timestamp", (5000, 0))])
    peer.send("PA", data=b"x", options=[("Timestamp", (5001, 0))])
    peer.seq += 1
    (dup,) = peer.send("PA", data=b"y", options=[("Timestamp", (4000, 0))])
    assert dup.ack == peer.seq
    assert last_drop(target) == DropReason.TCP_RFC7323_PAWS and net_mib(target, "PAWSEstab") == 1


def test_the_peers_fin_brings_close_wait_eof_and_close_then_last_ack_until_our_fin_is_acked(target):
    sk, peer = established(target)
    assert peer.send("FA") == [] and sk.state == TCP_CLOSE_WAIT
    target.wait(0.04)  # pingpong mode from the FIN on: the delayed-ACK timer ACKs it
    (ack,) = peer.replies()
    assert ack.ack == peer.seq + 1
    assert T.tcp_recvmsg(sk, 10) == b""
    peer.seq += 1
    T.tcp_close(sk)
    (fin,) = peer.replies()
    assert fin.flags == "FA" and sk.state == TCP_LAST_ACK
    assert peer.send("A", ack=fin.seq + 1) == []
    assert sk.state == TCP_CLOSE and tcp_mib(target, "CurrEstab") == 0


def test_active_close_waits_in_fin_wait2_then_time_wait_for_60_seconds(target):
    sk, peer = established(target)
    T.tcp_close(sk)
    (fin,) = peer.replies()
    assert sk.state == TCP_FIN_WAIT1
    peer.send("A", ack=fin.seq + 1)
    tw = target.kernel.tcp_hashinfo.ehash[(ip_to_int(DUT), PORT, ip_to_int(PEER), PEER_PORT)]
    assert tw.state == TCP_TIME_WAIT and tw.tw_substate == TCP_FIN_WAIT2  # an orphan's FIN_WAIT2
    (ack,) = peer.send("FA", ack=fin.seq + 1)
    assert ack.ack == peer.seq + 1 and tw.tw_substate == TCP_TIME_WAIT
    peer.seq += 1
    (again,) = peer.send("FA", seq=peer.seq - 1, ack=fin.seq + 1)  # the FIN retransmitted: ACKed again
    assert again.ack == peer.seq
    target.wait(59.9)
    assert target.kernel.tcp_hashinfo.ehash and net_mib(target, "TW") == 1  # counted when it started
    target.wait(0.2)
    assert not target.kernel.tcp_hashinfo.ehash


def test_time_wait_lets_a_syn_with_a_higher_sequence_number_open_a_new_connection(target):
    listening = listener(target)
    peer = Peer(target)
    peer.handshake()
    sk = T.inet_accept(listening)
    T.tcp_close(sk)
    (fin,) = peer.replies()
    peer.send("FA", ack=fin.seq + 1)
    (synack,) = peer.send("S", seq=peer.seq + 100_000, ack=0)
    assert synack.flags == "SA" and synack.seq == (fin.seq + 1 + 65535 + 2) & 0xFFFFFFFF


def test_simultaneous_close_goes_through_closing_to_time_wait(target):
    sk, peer = established(target)
    T.tcp_close(sk)
    (fin,) = peer.replies()
    (ack,) = peer.send("FA")  # the peer's FIN crosses ours
    assert ack.ack == peer.seq + 1 and sk.state == TCP_CLOSING
    peer.seq += 1
    peer.send("A", ack=fin.seq + 1)
    assert target.kernel.tcp_hashinfo.ehash[(ip_to_int(DUT), PORT, ip_to_int(PEER), PEER_PORT)].state \
        == TCP_TIME_WAIT


def test_close_with_unread_data_resets_the_connection(target):
    sk, peer = established(target)
    peer.send("PA", data=b"unread")
    T.tcp_close(sk)
    (rst,) = peer.replies()
    assert rst.flags == "RA" and net_mib(target, "TCPAbortOnClose") == 1


def test_close_with_so_linger_zero_resets_instead_of_the_fin(target):
    sk, peer = established(target)
    T.do_tcp_setsockopt(sk, socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    T.tcp_close(sk)
    (rst,) = peer.replies()
    assert rst.flags == "RA" and net_mib(target, "TCPAbortOnData") == 1


def test_connect_sends_a_syn_and_the_syn_ack_establishes_it(target):
    sk = T.tcp_sock_create(target.kernel)
    with pytest.raises(BlockingIOError) as started:
        T.inet_stream_connect(sk, ip_to_int(PEER), 80)
    assert started.value.errno == errno.EINPROGRESS
    (syn,) = Peer(target).replies()
    assert syn.flags == "S" and syn.dport == 80 and syn.sport % 2 == 0  # connect() takes even ports first
    peer = Peer(target, 80)
    peer.target.send("p0", bytes(Ether(src=PEER_MAC, dst=DUT_MAC) / IP(src=PEER, dst=DUT) /
                                 TCP(sport=80, dport=syn.sport, flags="SA", seq=5000, ack=syn.seq + 1, window=1000)))
    (ack,) = peer.replies()
    assert ack.flags == "A" and ack.ack == 5001 and sk.state == TCP_ESTABLISHED
    assert T.inet_stream_connect(sk, ip_to_int(PEER), 80) is None
    with pytest.raises(OSError) as connected:
        T.inet_stream_connect(sk, ip_to_int(PEER), 80)
    assert connected.value.errno == errno.EISCONN
    assert tcp_mib(target, "ActiveOpens") == 1


def test_a_rst_answering_the_syn_refuses_the_connection(target):
    sk = T.tcp_sock_create(target.kernel)
    with pytest.raises(BlockingIOError):
        T.inet_stream_connect(sk, ip_to_int(PEER), 80)
    (syn,) = Peer(target).replies()
    target.send("p0", bytes(Ether(src=PEER_MAC, dst=DUT_MAC) / IP(src=PEER, dst=DUT) /
                           TCP(sport=80, dport=syn.sport, flags="RA", seq=0, ack=syn.seq + 1)))
    assert sk.state == TCP_CLOSE and tcp_mib(target, "AttemptFails") == 1
    with pytest.raises(OSError) as refused:
        T.inet_stream_connect(sk, ip_to_int(PEER), 80)
    assert refused.value.errno == errno.ECONNREFUSED


def test_crossed_syns_are_a_simultaneous_open_answered_with_a_syn_ack(target):
    sk = T.tcp_sock_create(target.kernel)
    with pytest.raises(BlockingIOError):
        T.inet_stream_connect(sk, ip_to_int(PEER), 80)
    (syn,) = Peer(target).replies()
    target.send("p0", bytes(Ether(src=PEER_MAC, dst=DUT_MAC) / IP(src=PEER, dst=DUT) /
                           TCP(sport=80, dport=syn.sport, flags="S", seq=7000, window=1000)))
    (synack,) = Peer(target).replies()
    assert synack.flags == "SA" and synack.seq == syn.seq and synack.ack == 7001 and sk.state == TCP_SYN_RECV


def test_a_zero_window_drops_in_order_data_with_tcp_zerowindow(target):
    sk, peer = established(target)
    sk.rcv_wnd, sk.rcv_wup = 0, sk.rcv_nxt  # the window last advertised closed
    peer.send("PA", data=b"x")
    assert last_drop(target) == DropReason.TCP_ZEROWINDOW and net_mib(target, "TCPZeroWindowDrop") == 1


def test_shutdown_write_sends_the_fin_and_the_peers_ack_leaves_fin_wait2_on_the_open_socket(target):
    sk, peer = established(target)
    T.tcp_shutdown(sk, socket.SHUT_WR)
    (fin,) = peer.replies()
    assert fin.flags == "FA" and sk.state == TCP_FIN_WAIT1
    peer.send("A", ack=fin.seq + 1)
    assert sk.state == TCP_FIN_WAIT2  # not an orphan: no timer ends it
    peer.send("PA", ack=fin.seq + 1, data=b"still")
    assert T.tcp_recvmsg(sk, 10) == b"still"
    with pytest.raises(OSError) as shut:
        T.tcp_sendmsg(sk, b"x")
    assert shut.value.errno == errno.EPIPE


def _time_wait_after_active_open(target):
    """From the only local port 50000: connect, handshake with timestamps, close on
    both sides, our side in TIME_WAIT; (the peer, our FIN's segment)."""
    target.sh("sysctl -w net.ipv4.ip_local_port_range='50000 50000'")
    sk = T.tcp_sock_create(target.kernel)
    with pytest.raises(BlockingIOError):
        T.inet_stream_connect(sk, ip_to_int(PEER), 80)
    peer = Peer(target, 80)
    (syn,) = peer.replies()
    tsval = dict(syn.options)["Timestamp"][0]
    target.send("p0", bytes(Ether(src=PEER_MAC, dst=DUT_MAC) / IP(src=PEER, dst=DUT) /
                           TCP(sport=80, dport=50000, flags="SA", seq=5000, ack=syn.seq + 1, window=1000,
                               options=[("Timestamp", (100, tsval))])))
    peer.replies()
    T.tcp_close(sk)
    (fin,) = peer.replies()
    target.send("p0", bytes(Ether(src=PEER_MAC, dst=DUT_MAC) / IP(src=PEER, dst=DUT) /
                           TCP(sport=80, dport=50000, flags="FA", seq=5001, ack=fin.seq + 1, window=1000,
                               options=[("NOP", None), ("NOP", None), ("Timestamp", (101, tsval))])))
    peer.replies()
    assert target.kernel.tcp_hashinfo.ehash[(ip_to_int(DUT), 50000, ip_to_int(PEER), 80)].state == TCP_TIME_WAIT
    return peer, fin


def test_connect_does_not_take_over_a_time_wait_to_a_remote_address_with_the_default_tcp_tw_reuse(target):
    _time_wait_after_active_open(target)
    with pytest.raises(OSError) as busy:
        T.inet_stream_connect(T.tcp_sock_create(target.kernel), ip_to_int(PEER), 80)
    assert busy.value.errno == errno.EADDRNOTAVAIL


def test_tcp_tw_reuse_1_lets_connect_take_over_a_time_wait_after_tcp_tw_reuse_delay(target):
    peer, fin = _time_wait_after_active_open(target)
    target.sh("sysctl -w net.ipv4.tcp_tw_reuse=1")
    with pytest.raises(OSError) as early:
        T.inet_stream_connect(T.tcp_sock_create(target.kernel), ip_to_int(PEER), 80)
    assert early.value.errno == errno.EADDRNOTAVAIL
    target.wait(1.01)
    with pytest.raises(BlockingIOError):
        T.inet_stream_connect(T.tcp_sock_create(target.kernel), ip_to_int(PEER), 80)
    (syn,) = peer.replies()
    assert syn.sport == 50000 and syn.seq == (fin.seq + 1 + 65535 + 2) & 0xFFFFFFFF
    assert (net_mib(target, "TWRecycled"), net_mib(target, "TW"), net_mib(target, "TWKilled")) == (1, 1, 0)


@pytest.mark.parametrize("old_reuse, new_reuse, refused", [(False, True, True), (True, False, True),
                                                           (True, True, False)])
def test_a_time_wait_holds_its_port_against_bind_unless_both_sockets_set_so_reuseaddr(target, old_reuse,
                                                                                        new_reuse, refused):
    listening = T.tcp_sock_create(target.kernel)
    T.do_tcp_setsockopt(listening, socket.SOL_SOCKET, socket.SO_REUSEADDR, int(old_reuse))
    T.inet_bind(listening, 0, PORT)
    T.inet_listen(listening, 1)
    peer = Peer(target)
    peer.handshake()
    sk = T.inet_accept(listening)
    T.tcp_close(sk)
    (fin,) = peer.replies()
    peer.send("FA", ack=fin.seq + 1)  # the child (SO_REUSEADDR from the listener) is in TIME_WAIT
    T.tcp_close(listening)
    again = T.tcp_sock_create(target.kernel)
    T.do_tcp_setsockopt(again, socket.SOL_SOCKET, socket.SO_REUSEADDR, int(new_reuse))
    if refused:
        with pytest.raises(OSError) as busy:
            T.inet_bind(again, 0, PORT)
        assert busy.value.errno == errno.EADDRINUSE
    else:
        T.inet_bind(again, 0, PORT)
        T.inet_listen(again, 1)


def _cookie_handshake(target, tsecr_of):
    """listen(0) with one request queued; a SYN with timestamps, window scale 7 and
    SACK-permitted gets a cookie; the ACK echoes tsecr_of(SYN-ACK's TSval). The child."""
    sk = listener(target, backlog=0)
    Peer(target, 40001).send("S", seq=ISN, ack=0)
    peer = Peer(target, 40002)
    (synack,) = peer.send("S", seq=ISN, ack=0, options=[("MSS", 1460), ("SAckOK", b""),
                                                        ("Timestamp", (900, 0)), ("WScale", 7)])
    assert net_mib(target, "SyncookiesSent") == 1
    tsval = dict(synack.options)["Timestamp"][0]
    peer.send("A", ack=synack.seq + 1, options=[("NOP", None), ("NOP", None), ("Timestamp", (901, tsecr_of(tsval)))])
    return T.inet_accept(sk)


def test_a_cookie_ack_echoing_the_timestamp_gives_back_window_scale_and_sack(target):
    child = _cookie_handshake(target, lambda tsval: tsval)
    assert child.rx_opt.wscale_ok and child.rx_opt.snd_wscale == 7 and child.rx_opt.sack_ok
    assert child.rx_opt.tstamp_ok and child.rx_opt.mss_clamp == 1460


def test_a_cookie_ack_whose_echo_says_no_window_scale_gets_none(target):
    # the cookie's TSval ends in 0x17 (wscale 7, SACK 0x10); 8 more makes the wscale bits 0xf: none
    child = _cookie_handshake(target, lambda tsval: (tsval + 8) & 0xFFFFFFFF)
    assert not child.rx_opt.wscale_ok and child.rx_opt.snd_wscale == 0 and child.rx_opt.sack_ok


def test_header_prediction_takes_in_order_data_after_the_first_and_acks_that_only_advance(target):
    sk, peer = established(target)
    peer.send("PA", data=b"a" * 100)  # the slow path: no pages reserved for the socket yet
    peer.seq += 100
    peer.send("PA", data=b"b" * 100)
    peer.seq += 100
    assert net_mib(target, "TCPHPHits") == 1
    T.tcp_sendmsg(sk, b"x" * 10)
    peer.replies()
    peer.send("A", ack=peer.ack + 10)
    peer.send("A", ack=peer.ack + 10)  # the same ACK again: a duplicate, not predicted progress
    assert (net_mib(target, "TCPHPAcks"), net_mib(target, "TCPPureAcks")) == (1, 2)  # 2: with the handshake's


def test_a_hole_turns_header_prediction_off_until_it_fills(target):
    sk, peer = established(target)
    start = peer.seq
    peer.send("PA", seq=start, data=b"a" * 100)
    peer.send("PA", seq=start + 200, data=b"c" * 100)
    peer.send("PA", seq=start + 100, data=b"b" * 100)
    assert net_mib(target, "TCPHPHits") == 0
    peer.send("PA", seq=start + 300, data=b"d" * 100)
    assert net_mib(target, "TCPHPHits") == 1
    assert T.tcp_recvmsg(sk, 1000) == b"a" * 100 + b"b" * 100 + b"c" * 100 + b"d" * 100


def _read_a_fast_flow(target, sk, peer, synack_tsval: int) -> None:
    """The peer sends 20 full segments 10 ms after the handshake, echoing the
    SYN-ACK's TSval (a 10 ms receiver RTT sample); the application reads them all."""
    target.wait(0.01)
    for _ in range(20):
        peer.send("A", data=b"d" * 1448, options=[("NOP", None), ("NOP", None), ("Timestamp", (6000, synack_tsval))])
        peer.seq += 1448
    while True:
        try:
            T.tcp_recvmsg(sk, 1 << 20)
        except BlockingIOError:
            break


def test_reading_faster_than_the_buffer_lets_autotuning_grow_sk_rcvbuf(target):
    target.wait(1.0)  # a TSval clock past 0: an echo of 0 is no echo
    listening = listener(target)
    peer = Peer(target)
    synack = peer.handshake(options=[("MSS", 1460), ("Timestamp", (5000, 0))])
    sk = T.inet_accept(listening)
    assert sk.sk_rcvbuf == 131072  # tcp_rmem[1]
    _read_a_fast_flow(target, sk, peer, dict(synack.options)["Timestamp"][0])
    assert sk.sk_rcvbuf > 131072 and sk.rcvq_space.space == 20 * 1448


def test_so_rcvbuf_stops_autotuning(target):
    target.wait(1.0)
    listening = listener(target)
    T.do_tcp_setsockopt(listening, socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    peer = Peer(target)
    synack = peer.handshake(options=[("MSS", 1460), ("Timestamp", (5000, 0))])
    sk = T.inet_accept(listening)
    _read_a_fast_flow(target, sk, peer, dict(synack.options)["Timestamp"][0])
    assert sk.sk_rcvbuf == 131072  # SO_RCVBUF's 65536, doubled, and no more


def test_tcp_linger2_minus_one_resets_an_orphan_instead_of_waiting_in_fin_wait2(target):
    sk, peer = established(target)
    T.do_tcp_setsockopt(sk, socket.IPPROTO_TCP, socket.TCP_LINGER2, -1)
    T.tcp_close(sk)
    (fin,) = peer.replies()
    (rst,) = peer.send("A", ack=fin.seq + 1)  # our FIN acknowledged: FIN_WAIT2 is refused
    assert rst.flags == "R" and sk.state == TCP_CLOSE
    assert not target.kernel.tcp_hashinfo.ehash and net_mib(target, "TCPAbortOnData") == 1


def test_the_child_counts_the_handshakes_ack_with_its_data_as_a_data_segment(target):
    listening = listener(target)
    peer = Peer(target)
    (synack,) = peer.send("S", seq=ISN, ack=0)
    peer.send("PA", ack=synack.seq + 1, data=b"p" * 300)  # the ACK completing the handshake carries data
    child = T.inet_accept(listening)
    assert (child.segs_in, child.data_segs_in, child.bytes_received) == (2, 1, 300)
    assert child.window_clamp == 65536 - 1460 == child.rcv_ssthresh  # tcp_app_win keeps a segment's room


def test_without_syncookies_the_last_quarter_of_tcp_max_syn_backlog_is_refused(target):
    # measured on the netns lab: 7 of 10 SYNs answered, ListenDrops 3, TCPReqQFullDrop 0
    target.sh("sysctl -w net.ipv4.tcp_syncookies=0")
    target.sh("sysctl -w net.ipv4.tcp_max_syn_backlog=8")
    listener(target, backlog=100)
    answered = [len(Peer(target, 41000 + n).send("S", seq=ISN, ack=0)) for n in range(10)]
    assert answered == [1] * 7 + [0] * 3
    assert (net_mib(target, "ListenDrops"), net_mib(target, "TCPReqQFullDrop")) == (3, 0)


def test_a_rst_kills_a_time_wait_unless_tcp_rfc1337(target):
    # measured on the netns lab: the RST is not answered, the next ACK reaches the listener (RST)
    sk, peer = established(target)
    T.tcp_close(sk)
    (fin,) = peer.replies()
    peer.send("FA", ack=fin.seq + 1)
    peer.seq += 1
    assert peer.send("R", ack=0) == []
    (rst,) = peer.send("A", ack=fin.seq + 1)
    assert rst.flags == "R" and last_drop(target) == DropReason.TCP_FLAGS
    assert not target.kernel.tcp_hashinfo.ehash


def test_with_tcp_rfc1337_a_time_wait_survives_a_rst(target):
    target.sh("sysctl -w net.ipv4.tcp_rfc1337=1")
    sk, peer = established(target)
    T.tcp_close(sk)
    (fin,) = peer.replies()
    peer.send("FA", ack=fin.seq + 1)
    peer.seq += 1
    peer.send("R", ack=0)
    assert target.kernel.tcp_hashinfo.ehash[(ip_to_int(DUT), PORT, ip_to_int(PEER), PEER_PORT)].state \
        == TCP_TIME_WAIT


def test_poll_says_writable_only_while_the_send_queue_is_under_two_thirds_of_sk_sndbuf(target):
    sk, peer = established(target)
    sk.sk_sndbuf = 30000
    sk.sk_wmem_queued = 20000  # free 10000 = half of what is queued: still writable
    assert T.tcp_poll(sk) & select.EPOLLOUT
    sk.sk_wmem_queued = 20001
    assert not T.tcp_poll(sk) & select.EPOLLOUT


def test_duplicate_acks_past_the_third_for_one_hole_are_compressed_into_one(target):
    # measured on the netns lab with the same six segments: five ACKs, the last for segments 5 and 6,
    # and TCPAckCompressed 0 (the one held back is the one finally sent)
    sk, peer = established(target, options=[("SAckOK", b"")])
    start = peer.seq
    frames = [Ether(src=PEER_MAC, dst=DUT_MAC) / IP(src=PEER, dst=DUT) /
              TCP(sport=PEER_PORT, dport=PORT, flags="PA", seq=start + 100 * (2 * n + 1), ack=peer.ack, window=1024) /
              Raw(b"o" * 100) for n in range(6)]
    target.send("p0", [bytes(frame) for frame in frames])
    target.wait(0.01)
    acks = peer.replies()
    assert [ack.ack for ack in acks] == [start] * 5
    assert dict(acks[-1].options)["SAck"] == (start + 1100, start + 1200, start + 900, start + 1000,
                                              start + 700, start + 800, start + 500, start + 600)
    assert net_mib(target, "TCPAckCompressed") == 0


@pytest.mark.parametrize("name, limit", [(socket.TCP_KEEPIDLE, 32767), (socket.TCP_KEEPINTVL, 32767),
                                         (socket.TCP_KEEPCNT, 127)])
def test_keepalive_options_refuse_values_outside_their_range_and_read_back_the_sysctl_until_set(target, name, limit):
    sk, _ = established(target)
    sysctl_default = {socket.TCP_KEEPIDLE: 7200, socket.TCP_KEEPINTVL: 75, socket.TCP_KEEPCNT: 9}[name]
    assert T.do_tcp_getsockopt(sk, socket.IPPROTO_TCP, name) == sysctl_default
    for bad in (0, limit + 1):
        with pytest.raises(OSError) as refused:
            T.do_tcp_setsockopt(sk, socket.IPPROTO_TCP, name, bad)
        assert refused.value.errno == errno.EINVAL
    T.do_tcp_setsockopt(sk, socket.IPPROTO_TCP, name, limit)
    assert T.do_tcp_getsockopt(sk, socket.IPPROTO_TCP, name) == limit


def test_keepcnt_resets_after_that_many_unanswered_probes(target):
    sk, peer = established(target)
    T.do_tcp_setsockopt(sk, socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name in (socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT):
        T.do_tcp_setsockopt(sk, socket.IPPROTO_TCP, name, 2)
    target.wait(6.5)  # probes at 2 s and 4 s go unanswered; at 6 s the third expiry resets
    flags = [segment.flags for segment in peer.replies()]
    assert flags == ["A", "A", "RA"] and sk.state == TCP_CLOSE and sk.err == errno.ETIMEDOUT
