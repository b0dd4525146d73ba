"""The socket API and the target's clock: TcpInfo read from struct tcp_info, capture
times on the netns lab, and next_frame() firing the mock's timers in virtual time.

The real kernel's tests need root (the netns lab); they skip without it. Struct
offsets are hand-written from include/uapi/linux/tcp.h, never taken from the parser.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from harness.drivers.dut import SCM_TIMESTAMPNS, NetnsTarget, _captured_at
from harness.drivers.dutside import tcp_info_of
from harness.mockkernel.target import MockTarget
from harness.target import PORTS, TargetError, TcpState

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "ethtool", "sysctl", "ss")),
    reason="the netns lab needs root, iproute2, ethtool and procps")

P0, P1 = PORTS[0], PORTS[1]
H0_IP, P0_IP = "10.0.0.2", "10.0.0.1"
TCP_INFO_BYTES = 280  # sizeof(struct tcp_info) on Linux 6.18


def _tcp_info(**at_offset: tuple[int, str, int]) -> bytes:
    """A struct tcp_info of zeros with the given (offset, format, value) fields set."""
    raw = bytearray(TCP_INFO_BYTES)
    for offset, fmt, value in at_offset.values():
        struct.pack_into("=" + fmt, raw, offset, value)
    return bytes(raw)


def _never_asked() -> tuple[int, int]:
    raise AssertionError("tcp_ioctl() refuses SIOCINQ/SIOCOUTQ on a listener: it must not be asked")


def test_a_listeners_recv_q_and_send_q_are_its_accept_queue_and_backlog_as_tcp_get_info_aliases_them():
    raw = _tcp_info(state=(0, "B", 10), unacked=(24, "I", 3), sacked=(28, "I", 128), cwnd=(80, "I", 10))
    info = tcp_info_of(raw, _never_asked)
    assert (info.state, info.recv_q, info.send_q, info.cwnd) == (TcpState.TCP_LISTEN, 3, 128, 10)


def test_each_tcp_info_field_is_read_at_its_offset_in_struct_tcp_info_and_the_queues_from_the_ioctls():
    raw = _tcp_info(state=(0, "B", 1), rto=(8, "I", 204000), snd_mss=(16, "I", 1448), unacked=(24, "I", 7),
                    sacked=(28, "I", 2), lost=(32, "I", 1), retrans=(36, "I", 3), rtt=(68, "I", 1234),
                    rttvar=(72, "I", 617), ssthresh=(76, "I", 21), cwnd=(80, "I", 33), total_retrans=(100, "I", 9),
                    bytes_acked=(120, "Q", 2**33 + 5), bytes_received=(128, "Q", 4096), delivered=(192, "I", 44),
                    snd_wnd=(228, "I", 65535), rcv_wnd=(232, "I", 64240))
    info = tcp_info_of(raw, lambda: (11, 22))
    assert (info.state, info.recv_q, info.send_q) == (TcpState.TCP_ESTABLISHED, 11, 22)
    assert (info.rto_ms, info.mss, info.unacked, info.sacked, info.lost, info.retrans) == (204, 1448, 7, 2, 1, 3)
    assert (info.rtt_us, info.rttvar_us, info.ssthresh, info.cwnd, info.total_retrans) == (1234, 617, 21, 33, 9)
    assert (info.bytes_acked, info.bytes_received, info.delivered) == (2**33 + 5, 4096, 44)
    assert (info.snd_wnd, info.rcv_wnd) == (65535, 64240)


def test_a_tcp_info_shorter_than_tcpi_rcv_wnd_names_the_kernel_version_it_needs():
    with pytest.raises(TargetError, match=r"predates tcpi_rcv_wnd \(Linux 6.2\)"):
        tcp_info_of(bytes(232), _never_asked)


def test_a_capture_time_moves_from_the_realtime_clock_to_the_monotonic_one():
    realtime_ahead = 1_700_000_000_000_000_000 - 5_000_000_000  # realtime 1.7e9 s when monotonic was 5 s
    ancillary = [(socket.SOL_SOCKET, SCM_TIMESTAMPNS, struct.pack("@qq", 1_700_000_000, 250_000_000))]
    assert _captured_at(ancillary, realtime_ahead) == 5.25


def test_a_frame_without_its_capture_time_is_an_error_naming_so_timestampns():
    with pytest.raises(TargetError, match="SO_TIMESTAMPNS"):
        _captured_at([], 0)


# the mock's virtual time --------------------------------------------------------------

def _router(target) -> None:
    for port in PORTS:
        target.sh(f"ip addr add 10.0.{port.index}.1/24 dev {port.name}")
    target.sh(f"ip neigh replace {H0_IP} lladdr {P0.peer_mac} dev p0 nud permanent")
    target.sh("sysctl -w net.ipv4.ip_forward=1")


def _who_has(port, ip: str) -> bytes:
    return bytes(Ether(src=port.mac, dst="ff:ff:ff:ff:ff:ff") /
                 ARP(op=1, hwsrc=port.mac, psrc=f"10.0.{port.index}.1", hwdst="00:00:00:00:00:00", pdst=ip))


def test_next_frame_on_the_mock_fires_the_arp_retransmit_timer_and_stamps_each_request_with_its_expiry():
    """An unresolved next hop: Linux solicits at once, then every retrans_time (1 s),
    mcast_solicit (3) requests in all (neigh_timer_handler())."""
    target = MockTarget()
    _router(target)
    target.wait(10)
    target.send(P0.name, Ether(src=P0.peer_mac, dst=P0.mac) / IP(src=H0_IP, dst="10.0.1.50") / UDP(dport=9))
    requests = [target.next_frame(P1.name, until=20) for _ in range(3)]
    assert requests == [(_who_has(P1, "10.0.1.50"), 10.0), (_who_has(P1, "10.0.1.50"), 11.0),
                        (_who_has(P1, "10.0.1.50"), 12.0)]
    assert target.now() == 12.0  # time stopped at the frame, not at `until`


def test_next_frame_on_the_mock_returns_none_at_until_with_time_standing_there():
    target = MockTarget()
    assert target.next_frame(P0.name, until=2.5) is None
    assert target.now() == 2.5


def test_frames_a_timer_sends_during_wait_keep_the_timers_time_and_other_ports_frames_stay_queued():
    target = MockTarget()
    _router(target)
    target.send(P0.name, Ether(src=P0.peer_mac, dst=P0.mac) / IP(src=H0_IP, dst="10.0.1.50") / UDP(dport=9))
    target.wait(5)
    times = [target.next_frame(P1.name, until=5)[1] for _ in range(3)]
    assert times == [0.0, 1.0, 2.0]
    # after the last request (3 s) the queued packet fails: ICMP host unreachable to h0
    frame, when = target.next_frame(P0.name, until=5)
    assert (Ether(frame)[IP].proto, when) == (1, 3.0)


# the real kernel ----------------------------------------------------------------------

@pytest.fixture
def dut():
    target = NetnsTarget()
    yield target
    target.close()


def _addressed(target) -> None:
    target.sh(f"ip addr add {P0_IP}/24 dev p0")
    target.sh(f"ip neigh replace {H0_IP} lladdr {P0.peer_mac} dev p0 nud permanent")


def _from_h0(**tcp) -> Ether:
    return Ether(src=P0.peer_mac, dst=P0.mac) / IP(src=H0_IP, dst=P0_IP) / TCP(**tcp)


def _ss(target, port: int) -> tuple[int, int, dict[str, str]]:
    """`ss -tinH` of the DUT's connection on local `port`: Recv-Q, Send-Q and the info fields."""
    out = target.lab.run(target.lab.dut, ["ss", "-tinH", "state", "established", f"( sport = :{port} )"])
    first, details = out.split("\n", 1)
    columns = first.split()
    fields = dict(re.findall(r"(\w+):(\S+)", details))
    return int(columns[0]), int(columns[1]), fields


@needs_root
def test_info_on_the_netns_lab_says_what_ss_tin_says_of_the_same_connection(dut):
    _addressed(dut)
    listener = dut.socket("tcp", (P0_IP, 8080))
    listener.listen(4)
    dut.send("p0", _from_h0(sport=40000, dport=8080, flags="S", seq=1000, window=65535, options=[("MSS", 1400)]))
    synack = Ether(dut.next_frame("p0", dut.now() + 5)[0])[TCP]
    dut.send("p0", _from_h0(sport=40000, dport=8080, flags="A", seq=1001, ack=synack.seq + 1, window=65535)
             / (b"x" * 300))
    conn, peer = listener.accept()
    assert peer == (H0_IP, 40000)
    assert conn.send(b"y" * 500) == 500  # never acknowledged: in flight
    dut.next_frame("p0", dut.now() + 5)
    info = conn.info()
    recv_q, send_q, fields = _ss(dut, 8080)
    assert (info.state, info.recv_q, info.send_q) == (TcpState.TCP_ESTABLISHED, recv_q, send_q) == \
        (TcpState.TCP_ESTABLISHED, 300, 500)
    assert (info.mss, info.cwnd, info.rto_ms) == (int(fields["mss"]), int(fields["cwnd"]), int(fields["rto"]))
    assert f"{info.rtt_us / 1000:g}/{info.rttvar_us / 1000:g}" == fields["rtt"]
    assert (info.bytes_received, info.unacked) == (int(fields["bytes_received"]), int(fields["unacked"])) == (300, 1)


@needs_root
def test_capture_times_on_the_netns_lab_are_on_the_clock_of_now_between_the_send_and_the_read(dut):
    _addressed(dut)
    dut.socket("tcp", (P0_IP, 8080)).listen(1)
    before = dut.now()
    dut.send("p0", _from_h0(sport=40000, dport=8080, flags="S", seq=1, window=65535))
    frame, left = dut.next_frame("p0", before + 5)
    assert Ether(frame)[TCP].flags == "SA"
    assert before < left < dut.now()


@needs_root
def test_next_frame_on_the_netns_lab_returns_none_once_until_has_passed(dut):
    until = dut.now() + 0.2
    assert dut.next_frame("p0", until) is None
    assert dut.now() >= until


def test_send_without_flush_keeps_the_frames_that_left_before_for_next_frame():
    target = MockTarget()
    _router(target)
    to_h1 = Ether(src=P0.peer_mac, dst=P0.mac) / IP(src=H0_IP, dst="10.0.1.50") / UDP(dport=9)
    target.send(P0.name, to_h1)
    target.send(P0.name, to_h1, flush=False)  # queued behind the same resolution: nothing new leaves
    assert target.next_frame(P1.name, until=0) == (_who_has(P1, "10.0.1.50"), 0.0)
    target.send(P0.name, to_h1)
    assert target.next_frame(P1.name, until=0) is None


@needs_root
def test_the_tests_tcp_sockets_go_at_its_end_without_a_segment_on_the_wire(dut):
    """An established connection, one left in the accept queue, a listener and a
    connect() in progress: closing the DUT side sends no FIN or RST (they are released
    in repair mode), so a lab's capture, which runs across tests, gets nothing."""
    _addressed(dut)
    listener = dut.socket("tcp", (P0_IP, 8080))
    listener.listen(4)
    for sport in (40000, 40001):
        dut.send("p0", _from_h0(sport=sport, dport=8080, flags="S", seq=1, window=65535))
        synack = Ether(dut.next_frame("p0", dut.now() + 5)[0])[TCP]
        dut.send("p0", _from_h0(sport=sport, dport=8080, flags="A", seq=2, ack=synack.seq + 1, window=65535))
    listener.accept()
    with pytest.raises(BlockingIOError):
        dut.socket("tcp").connect((H0_IP, 80))
    dut.next_frame("p0", dut.now() + 5)  # its SYN
    dut.side.close()
    assert dut.next_frame("p0", dut.now() + 0.5) is None
    assert dut.lab.run(dut.lab.dut, ["ss", "-tanH"]) == ""


def test_a_socket_wait_on_the_mock_advances_virtual_time_only_as_long_as_it_waits():
    target = MockTarget()
    _router(target)
    listener = target.socket("tcp", (P0_IP, 8080))
    listener.listen(1)
    assert not listener.wait("readable", 0.5)
    assert target.now() == 0.5
    target.send(P0.name, Ether(src=P0.peer_mac, dst=P0.mac) / IP(src=H0_IP, dst=P0_IP) /
                TCP(sport=40000, dport=8080, flags="S", seq=1, window=65535))
    synack = Ether(target.next_frame(P0.name, until=0.5)[0])[TCP]
    target.send(P0.name, Ether(src=P0.peer_mac, dst=P0.mac) / IP(src=H0_IP, dst=P0_IP) /
                TCP(sport=40000, dport=8080, flags="A", seq=2, ack=synack.seq + 1, window=65535))
    assert listener.wait("readable", 5) and target.now() == 0.5



@pytest.mark.parametrize("kind", ["mock", pytest.param("dut", marks=needs_root)])
def test_a_stream_socket_refuses_an_unknown_wait_and_any_call_once_closed(kind):
    target = MockTarget() if kind == "mock" else NetnsTarget()
    try:
        sock = target.socket("tcp")
        with pytest.raises(TargetError, match="not 'closed'"):
            sock.wait("closed", 0)
        sock.close()
        sock.close()
        for call in (lambda: sock.recv(1), lambda: sock.wait("readable", 0), lambda: sock.listen(1)):
            with pytest.raises(OSError) as closed:
                call()
            assert closed.value.errno == 9  # EBADF
    finally:
        target.close()
