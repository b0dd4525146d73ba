"""The packetdrill runner against a scripted DUT on virtual time: what it maps (the
DUT's ISN, acks, SACK blocks, TS ecr), what it checks (fields, options, payload
length, times exactly on virtual time), how it runs blocking calls, and how it says
what went wrong. The fake DUT answers with frames written here with scapy, so each
expectation is independent of the runner's own codec."""
from __future__ import annotations

import errno

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from harness.packetdrill import ScriptFailure, ScriptSyntaxError, parse, run_script
from harness.target import PORTS

P0 = PORTS[0]
DUT_ISN = 3_000_000_000     # the fake DUT's initial sequence number
DUT_TSVAL = 777_000          # and its TS clock


def from_dut(sport: int, dport: int, flags: str, seq: int, ack: int = 0, window: int = 500, options=(),
             payload: int = 0) -> bytes:
    return bytes(Ether(src=P0.mac, dst=P0.peer_mac) / IP(src="10.0.0.1", dst="10.0.0.2")
                 / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=window, options=list(options))
                 / bytes(payload))


class FakeSocket:
    """A socket whose calls the test arranges: `recv_from` is when data becomes readable."""

    def __init__(self, dut: "FakeDut"):
        self.dut = dut
        self.calls: list[tuple] = []

    def bind(self, addr):
        self.calls.append(("bind", addr))

    def listen(self, backlog):
        self.calls.append(("listen", backlog))

    def accept(self):
        return FakeSocket(self.dut), ("10.0.0.2", 50000)

    def recv(self, size):
        if self.dut.clock < self.dut.readable_at:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        return bytes(min(size, 100))

    def send(self, data):
        for time, frame in self.dut.on_write(self.dut.clock, len(data)):
            self.dut.later(time, frame)
        return len(data)

    def close(self):
        raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")


class FakeDut:
    """A target on virtual time whose answers to inbound frames the test scripts."""

    name = "fake"
    capabilities = frozenset({"virtual_time"})

    def __init__(self, on_frame=lambda now, frame: [], on_write=lambda now, length: [], readable_at=0.0):
        self.clock = 100.0
        self.on_frame, self.on_write, self.readable_at = on_frame, on_write, readable_at
        self.departures: list[tuple[float, bytes]] = []
        self.received: list[tuple[float, bytes]] = []
        self.commands: list[list[str]] = []

    def later(self, time: float, frame: bytes) -> None:
        self.departures.append((time, frame))
        self.departures.sort(key=lambda departure: departure[0])

    def port(self, name):
        return P0

    def sh(self, argv):
        self.commands.append(list(argv) if not isinstance(argv, str) else argv.split())
        return ""

    def now(self) -> float:
        return self.clock

    def send(self, port, frame: bytes, flush: bool = True) -> None:
        assert not flush, "the runner keeps what left the DUT queued"
        self.received.append((self.clock, frame))
        for time, out in self.on_frame(self.clock, Ether(frame)):
            self.later(time, out)

    def next_frame(self, port, until: float):
        if self.departures and self.departures[0][0] <= until:
            time, frame = self.departures.pop(0)
            self.clock = max(self.clock, time)
            return frame, time
        self.clock = max(self.clock, until)
        return None

    def socket(self, proto):
        return FakeSocket(self)

    def journeys(self):
        return []


LISTEN = """\
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  bind(3, ..., ...) = 0
+0  listen(3, 1) = 0
+0  < S 0:0(0) win 65535 <mss 1000,sackOK,TS val 100 ecr 0,nop,wscale 7>
"""


def synack_at(delay: float, window: int = 500):
    """A DUT that answers a SYN with a SYN-ACK (its ISN, its TS val) after `delay`."""
    def on_frame(now, frame):
        if frame[TCP].flags == "S":
            return [(now + delay, from_dut(8080, frame[TCP].sport, "SA", DUT_ISN, frame[TCP].seq + 1, window,
                                           [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (DUT_TSVAL, 100)),
                                            ("NOP", None), ("WScale", 7)]))]
        return []
    return on_frame


def run(text: str, dut: FakeDut) -> FakeDut:
    run_script(dut, parse(text, "t.pkt"))
    return dut


def failure(text: str, dut: FakeDut) -> str:
    with pytest.raises(ScriptFailure) as info:
        run(text, dut)
    return str(info.value)


def test_the_dut_isn_is_remapped_to_the_scripts_and_inbound_acks_and_ts_ecr_back_to_live():
    dut = run(LISTEN + "+0 > S. 0:0(0) ack 1 win 500 <mss 1460,sackOK,TS val 5 ecr 100,nop,wscale 7>\n"
                       "+.1 < . 1:1(0) ack 1 win 1024 <nop,nop,TS val 200 ecr 5>\n", FakeDut(synack_at(0.0)))
    ack = Ether(dut.received[-1][1])[TCP]
    assert (ack.seq, ack.ack) == (1, DUT_ISN + 1)
    assert dict(ack.options)["Timestamp"] == (200, DUT_TSVAL)
    assert dut.received[-1][0] == pytest.approx(100.1)
    assert dut.commands[:2] == [["ip", "addr", "add", "10.0.0.1/24", "dev", "p0"],
                                ["ip", "neigh", "replace", "10.0.0.2", "lladdr", P0.peer_mac, "dev", "p0", "nud",
                                 "permanent"]]


def test_inbound_sack_blocks_are_moved_by_the_dut_isn():
    dut = run(LISTEN + "+0 > S. 0:0(0) ack 1 <...>\n"
                       "+0 < . 1:1(0) ack 1 win 10 <nop,nop,sack 1001:2001>\n", FakeDut(synack_at(0.0)))
    assert dict(Ether(dut.received[-1][1])[TCP].options)["SAck"] == (DUT_ISN + 1001, DUT_ISN + 2001)


def test_an_unknown_ts_ecr_cannot_be_mapped():
    message = failure(LISTEN + "+0 > S. 0:0(0) ack 1 <...>\n+0 < . 1:1(0) ack 1 win 10 <nop,nop,TS val 2 ecr 9>\n",
                      FakeDut(synack_at(0.0)))
    assert "t.pkt:6: error handling inbound packet: unable to infer live TS ecr for script TS ecr 9" in message


def test_a_wrong_window_names_the_line_the_field_and_both_segments():
    message = failure(LISTEN + "+0 > S. 0:0(0) ack 1 win 600 <...>\n", FakeDut(synack_at(0.0)))
    assert message.splitlines()[:3] == [
        "t.pkt:5: error handling outbound packet: live packet field tcp_window: expected: 600 vs actual: 500",
        "script packet:  0.000000 > S. 0:0(0) ack 1 win 600 <...>",
        "actual packet:  0.000000 8080>50000 S. 0:0(0) ack 1 win 500 "
        "<mss 1460,sackOK,TS val 777000 ecr 100,nop,wscale 7>"]


def test_options_must_come_in_the_scripts_order_with_the_scripts_values():
    assert "bad outbound TCP options" in failure(LISTEN + "+0 > S. 0:0(0) ack 1 <mss 1460,nop,wscale 7>\n",
                                                 FakeDut(synack_at(0.0)))
    assert "bad value in outbound TCP option (kind=2): expected: mss 1000 actual: mss 1460" in failure(
        LISTEN + "+0 > S. 0:0(0) ack 1 <mss 1000,sackOK,TS val 1 ecr 100,nop,wscale 7>\n", FakeDut(synack_at(0.0)))
    assert "bad value in outbound TCP option TS ecr: expected: 99 actual: 100" in failure(
        LISTEN + "+0 > S. 0:0(0) ack 1 <mss 1460,sackOK,TS val 1 ecr 99,nop,wscale 7>\n", FakeDut(synack_at(0.0)))


def test_virtual_time_is_checked_exactly():
    run(LISTEN + "+.3 > S. 0:0(0) ack 1 <...>\n", FakeDut(synack_at(0.3)))
    message = failure(LISTEN + "+.3 > S. 0:0(0) ack 1 <...>\n", FakeDut(synack_at(0.301)))
    assert "timing error: expected outbound packet at 0.300000 sec but happened at 0.301000 sec; " \
           "tolerance 0.000000 sec" in message
    run(LISTEN + "+.2~+.4 > S. 0:0(0) ack 1 <...>\n", FakeDut(synack_at(0.301)))
    run(LISTEN + "* > S. 0:0(0) ack 1 <...>\n", FakeDut(synack_at(5.0)))


def test_nothing_leaving_is_reported_with_the_deadline():
    message = failure(LISTEN + "+.3 > S. 0:0(0) ack 1 <...>\n", FakeDut())
    assert "expected outbound packet at 0.300000 sec, but nothing left p0 for 10.0.0.2 by 2.300000 sec" in message


def established(on_write):
    return FakeDut(synack_at(0.0), on_write)


ESTABLISHED = LISTEN + "+0 > S. 0:0(0) ack 1 <...>\n+0 < . 1:1(0) ack 1 win 10\n+0 accept(3, ..., ...) = 4\n"


def data(*pieces):
    """A DUT that sends a write as `pieces` of (seq, length, flags), all at once."""
    return lambda now, length: [(now, from_dut(8080, 50000, flags, DUT_ISN + seq, 1, payload=size))
                                for seq, size, flags in pieces]


def test_consecutive_segments_join_into_the_scripts_larger_one():
    run(ESTABLISHED + "+0 write(4, ..., 3000) = 3000\n+0 > P. 1:3001(3000) ack 1\n",
        established(data((1, 1000, "A"), (1001, 1000, "PA"), (2001, 1000, "PA"))))
    message = failure(ESTABLISHED + "+0 write(4, ..., 3000) = 3000\n+0 > P. 1:3001(3000) ack 1\n",
                      established(data((1, 1000, "A"), (1501, 1000, "PA"), (2501, 500, "PA"))))
    assert "is not its continuation" in message
    message = failure(ESTABLISHED + "+0 write(4, ..., 1000) = 1000\n+0 > P. 1:1001(1000) ack 1\n",
                      established(data((1, 600, "PA"))))
    assert "live packet payload: expected 1000 bytes vs actual 600 bytes" in message


def test_a_segment_of_another_connection_is_not_the_expected_one():
    on_frame = synack_at(0.0)

    def two_ports(now, frame):
        return on_frame(now, frame) + [(now, from_dut(8080, 40001, "SA", 1, 1))]
    message = failure(LISTEN + "+0 > S. 0:0(0) ack 1 <...>\n+0 > S. 0:0(0) ack 1 <...>\n", FakeDut(two_ports))
    assert "t.pkt:6: error handling outbound packet: packet is not for expected socket: 8080>40001 S." in message


def test_a_blocking_read_returns_at_its_time_while_the_script_goes_on():
    script = ESTABLISHED + "+0...0.5 read(4, ..., 100) = 100\n+.2 < . 1:1(0) ack 1 win 10\n"
    run(script, FakeDut(synack_at(0.0), readable_at=100.5))
    message = failure(script, FakeDut(synack_at(0.0), readable_at=100.6))
    assert "t.pkt:8: error handling system call: timing error: expected system call return at 0.500000 sec " \
           "but happened at 0.600000 sec" in message
    assert "exiting while a blocking system call is in progress" in failure(
        script, FakeDut(synack_at(0.0), readable_at=200.0))


def test_a_call_that_would_block_without_dots_fails_and_a_nonblocking_one_returns_eagain():
    assert "read() blocks, but the script expects it to return at once" in failure(
        ESTABLISHED + "+0 read(4, ..., 100) = 100\n", FakeDut(synack_at(0.0), readable_at=101.0))
    run(ESTABLISHED + "+0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n"
                      "+0 read(4, ..., 100) = -1 EAGAIN (Resource temporarily unavailable)\n",
        FakeDut(synack_at(0.0), readable_at=101.0))


def test_a_result_or_errno_other_than_the_scripts_fails():
    assert "Expected result 0 but got -1 with errno 104 (Connection reset by peer)" in failure(
        ESTABLISHED + "+0 close(4) = 0\n", FakeDut(synack_at(0.0)))
    assert "Expected errno 32 (Broken pipe) but got 104 (Connection reset by peer)" in failure(
        ESTABLISHED + "+0 close(4) = -1 EPIPE\n", FakeDut(synack_at(0.0)))


def test_a_command_runs_only_the_listed_programs():
    dut = run("0 `sysctl -q net.ipv4.tcp_syncookies=2; ip route`\n", FakeDut())
    assert dut.commands[-2:] == [["sysctl", "-q", "net.ipv4.tcp_syncookies=2"], ["ip", "route"]]
    with pytest.raises(ScriptSyntaxError, match=r"t\.pkt:1: a command line runs only sysctl, ip, nft, tc .* at `rm`"):
        run("0 `rm -rf /tmp/x`\n", FakeDut())


def test_the_header_comment_moves_the_addresses():
    dut = run("// packet-journey: port=p0 local=192.168.0.1 remote=192.0.2.1\n0 < S 0:0(0) win 1\n", FakeDut())
    assert ["ip", "route", "add", "192.0.2.1/32", "dev", "p0"] in dut.commands
    sent = Ether(dut.received[-1][1])[IP]
    assert (sent.src, sent.dst, sent.ttl) == ("192.0.2.1", "192.168.0.1", 255)


class RealTimeDut(FakeDut):
    """A DUT on real time (no virtual_time capability) whose send() takes `send_seconds`."""

    capabilities = frozenset()

    def __init__(self, on_frame, send_seconds: float):
        super().__init__(on_frame)
        self.send_seconds = send_seconds

    def send(self, port, frame: bytes, flush: bool = True) -> None:
        self.clock += self.send_seconds
        super().send(port, frame, flush)


@pytest.fixture
def no_calibration(monkeypatch):
    """The start-up sleeps measure this machine's load; these tests fix the lateness."""
    monkeypatch.setattr("harness.packetdrill.runner.SchedulingDelay.calibrate", lambda self: None)


def test_real_time_tolerance_is_packetdrills_widened_by_twice_the_runners_lateness(no_calibration):
    """The SYN went in 3 ms late (send() took that long): 4 ms + 2 * 3 ms."""
    run(LISTEN + "+0 > S. 0:0(0) ack 1 <...>\n", RealTimeDut(synack_at(0.0095), send_seconds=0.003))
    message = failure(LISTEN + "+0 > S. 0:0(0) ack 1 <...>\n", RealTimeDut(synack_at(0.0105), send_seconds=0.003))
    assert "expected outbound packet at 0.003000 sec but happened at 0.013500 sec; tolerance 0.010000 sec" \
        in message


def test_real_time_tolerance_grows_with_the_time_since_the_previous_event(no_calibration):
    run(LISTEN + "+1 > S. 0:0(0) ack 1 <...>\n", RealTimeDut(synack_at(1.12), send_seconds=0.0))
    assert "tolerance 0.125000 sec" in failure(LISTEN + "+1 > S. 0:0(0) ack 1 <...>\n",
                                                RealTimeDut(synack_at(1.13), send_seconds=0.0))
