"""The packetdrill script language: tokens as lexer.l makes them, the grammar of
parser.y's subset, errors naming the line and the token, and the TCP frames the
runner builds and reads (checked against scapy's own encoding)."""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from harness.packetdrill import ScriptSyntaxError, parse
from harness.packetdrill.lexer import tokenize
from harness.packetdrill.script import (
    TCPOPT_MSS,
    TCPOPT_NOP,
    TCPOPT_SACK,
    TCPOPT_SACK_PERM,
    TCPOPT_TIMESTAMP,
    TCPOPT_WINDOW,
    Addressing,
    Command,
    Segment,
    TcpOption,
    TimeKind,
)
from harness.packetdrill.segment import MalformedFrame, WireSegment

PASSIVE_OPEN = """\
// a passive open, then 1000 bytes each way
--tolerance_usecs=10000
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0  bind(3, ..., ...) = 0
+0  listen(3, 1) = 0

+0  < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>
+0  > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 7>
+.1 < . 1:1(0) ack 1 win 257
+0  accept(3, ..., ...) = 4
/* the server writes first */
+0  write(4, ..., 1000) = 1000
+0  > P. 1:1001(1000) ack 1
"""


def tokens(text: str) -> list[tuple[str, str]]:
    return [(t.kind, t.text) for t in tokenize(text)][:-1]


def syntax_error(text: str) -> ScriptSyntaxError:
    with pytest.raises(ScriptSyntaxError) as info:
        parse(text, "t.pkt")
    return info.value


# lexer ---------------------------------------------------------------------------------

def test_a_keyword_is_its_own_token_but_a_longer_word_containing_it_is_a_word():
    assert tokens("ack acked sackOK sack TS") == [
        ("ACK", "ack"), ("WORD", "acked"), ("SACKOK", "sackOK"), ("SACK", "sack"), ("TIMESTAMP", "TS")]


def test_the_longest_match_wins_an_address_over_a_float_and_hex_over_a_word():
    assert tokens("10.0.0.1 0.100 .5 0x1F 8080 -1") == [
        ("IPV4_ADDR", "10.0.0.1"), ("FLOAT", "0.100"), ("FLOAT", ".5"), ("HEX_INTEGER", "0x1F"),
        ("INTEGER", "8080"), ("INTEGER", "-1")]


def test_a_sequence_range_is_not_an_ipv6_address():
    assert tokens("1:1001(1000)") == [("INTEGER", "1"), (":", ":"), ("INTEGER", "1001"), ("(", "("),
                                      ("INTEGER", "1000"), (")", ")")]


def test_flags_ellipsis_options_and_backquotes_tokenize_as_packetdrill_does():
    assert tokens("S. ... --bind_port `sysctl -q a=1`") == [
        ("WORD", "S"), (".", "."), ("ELLIPSIS", "..."), ("OPTION", "--bind_port"),
        ("BACK_QUOTED", "`sysctl -q a=1`")]


def test_comments_are_skipped_and_lines_still_counted():
    found = tokenize("// one\n/* two\nthree */ 0\n+1 // four\n")
    assert [(t.text, t.line, t.column) for t in found] == [
        ("0", 3, 10), ("+", 4, 1), ("1", 4, 2), ("end of file", 5, 1)]


def test_an_unterminated_string_is_an_error_naming_its_line():
    with pytest.raises(ScriptSyntaxError, match=r"t\.pkt:2: unterminated .* at `\"`"):
        tokenize('0 close(3) = 0\n"abc\n', "t.pkt")


# the grammar ---------------------------------------------------------------------------

def test_a_passive_open_parses_into_timed_syscalls_and_segments():
    script = parse(PASSIVE_OPEN, "open.pkt")
    assert script.config.tolerance_usecs == 10000
    assert script.addressing == Addressing("p0", "10.0.0.1", "10.0.0.2")
    assert [(e.line, e.time.kind, e.time.usecs) for e in script.events] == [
        (3, TimeKind.ABSOLUTE, 0), (4, TimeKind.RELATIVE, 0), (5, TimeKind.RELATIVE, 0),
        (6, TimeKind.RELATIVE, 0), (8, TimeKind.RELATIVE, 0), (9, TimeKind.RELATIVE, 0),
        (10, TimeKind.RELATIVE, 100000), (11, TimeKind.RELATIVE, 0), (13, TimeKind.RELATIVE, 0),
        (14, TimeKind.RELATIVE, 0)]
    syn = script.events[4].action
    assert syn == Segment(True, "S", 0, 0, None, 32792, (
        TcpOption(TCPOPT_MSS, 1000), TcpOption(TCPOPT_SACK_PERM), TcpOption(TCPOPT_NOP), TcpOption(TCPOPT_NOP),
        TcpOption(TCPOPT_NOP), TcpOption(TCPOPT_WINDOW, 7)))
    synack = script.events[5].action
    assert (synack.inbound, synack.flags, synack.ack, synack.window) == (False, "S.", 1, None)
    data = script.events[9].action
    assert (data.flags, data.seq, data.payload, data.ack, data.options) == ("P.", 1, 1000, 1, ())
    setsockopt = script.events[1].action
    assert (setsockopt.name, [a.kind for a in setsockopt.args], setsockopt.args[3].items[0].value) == \
        ("setsockopt", ["int", "int", "int", "list", "int"], 1)


def test_ranges_any_time_and_options_wildcard_belong_to_outbound_segments():
    script = parse("0 > S 0:0(0) <...>\n0.1~0.3 > . 1:1(0) ack 1\n+0.1~+0.2 > . 1:1(0) ack 1 win 100\n"
                   "* > R 1:1(0)\n")
    times = [e.time for e in script.events]
    assert [(t.kind, t.usecs, t.end_usecs) for t in times] == [
        (TimeKind.ABSOLUTE, 0, None), (TimeKind.ABSOLUTE_RANGE, 100000, 300000),
        (TimeKind.RELATIVE_RANGE, 100000, 200000), (TimeKind.ANY, 0, None)]
    assert script.events[0].action.options is None
    assert script.events[3].action.ack is None


def test_sack_blocks_timestamps_and_explicit_ports():
    segment = parse("0 < 40001>8080 . 1:1(0) ack 1 win 100 <nop,nop,sack 1001:2001 3001:4001>\n"
                    "+0 < . 1:1(0) ack 1 win 100 <nop,nop,TS val 700 ecr 100>\n").events
    sack, ts = segment[0].action, segment[1].action
    assert (sack.src_port, sack.dst_port) == (40001, 8080)
    assert sack.options[2] == TcpOption(TCPOPT_SACK, blocks=((1001, 2001), (3001, 4001)))
    assert ts.options[2] == TcpOption(TCPOPT_TIMESTAMP, val=700, ecr=100)


def test_a_blocking_call_an_errno_a_note_and_flags_ored_together():
    events = parse("0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n"
                   "+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)\n"
                   "+0...0.2 read(3, ..., 100) = 100\n"
                   "+0 setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0\n").events
    fcntl, connect, read, linger = (e.action for e in events)
    assert fcntl.args[2].kind == "or" and [i.value for i in fcntl.args[2].items] == [2, 0o4000]
    assert (connect.result.value, connect.errno, connect.end_usecs) == (-1, "EINPROGRESS", None)
    assert read.end_usecs == 200000
    assert linger.args[3].kind == "linger" and [i.value for i in linger.args[3].items] == [1, 0]


def test_init_and_cleanup_commands_and_timed_commands():
    script = parse("`sysctl -q net.ipv4.tcp_syncookies=2`\n0 `ip route`\n+0 close(3) = 0\n`sysctl -q x=1`\n")
    assert script.init_command == Command("sysctl -q net.ipv4.tcp_syncookies=2")
    assert script.events[0].action == Command("ip route")
    assert script.cleanup_command == Command("sysctl -q x=1")


def test_the_header_comment_moves_the_script_to_another_port():
    script = parse("// packet-journey: port=p1\n0 close(3) = 0\n")
    assert script.addressing == Addressing("p1", "10.0.1.1", "10.0.1.2")
    custom = parse("// packet-journey: port=p2 local=192.168.0.1 remote=192.0.2.1\n0 close(3) = 0\n")
    assert custom.addressing == Addressing("p2", "192.168.0.1", "192.0.2.1")


# errors name the line and the token ----------------------------------------------------

@pytest.mark.parametrize("text, line, token, message", [
    ("0 close(3) = 0\n+0 < . 1:1001(100) ack 1 win 10\n", 2, "1",
     "inconsistent TCP sequence numbers and payload size"),
    ("0 < . 1:1(0) ack 1\n", 1, "end of file", "window must be specified for inbound packets"),
    ("0 < . 1:1(0) ack 1 win 10 <...>\n", 1, "...", "<...> for TCP options can only be used with outbound"),
    ("0 < udp (100)\n", 1, "udp", "not supported by the harness: UDP packets"),
    ("0 < [ect0] S 0:0(0) win 10\n", 1, "[", "not supported by the harness: IP-level info"),
    ("0 > S 0:0(0) <mss 1460,FO abcd>\n", 1, "FO", "not supported by the harness: TCP Fast Open"),
    ("0 %{ print(1) }%\n", 1, "%{ print(1) }%", "not supported by the harness: code snippets"),
    ("0 close(3) = 0\n\n+0 poll([], 0, 0) = 0\n", 3, "poll", "system call poll() is not supported"),
    ("0 setsockopt(3, SOL_SOCKET, SO_FOO, [1], 4) = 0\n", 1, "SO_FOO", "unknown symbol"),
    ("0 close(3) = -1 EWHATEVER\n", 1, "EWHATEVER", "unknown errno name"),
    ("0 > Z 0:0(0)\n", 1, "Z", "Invalid TCP flag: 'Z'"),
    ("0 > SU 0:0(0)\n", 1, "SU", "not supported by the harness: the URG flag"),
    ("0 > . 1:1(0) ack 1 urg 5\n", 1, "urg", "not supported by the harness: urgent data"),
    ("--mtu=1000\n0 close(3) = 0\n", 1, "--mtu", "option --mtu is not supported"),
    ("0 close(3) = 0\n* close(4) = 0\n", 2, "*", "event time <star> can only be used with outbound packets"),
    ("0 close(3) = 0\n0.1~0.2 < . 1:1(0) ack 1 win 1\n", 2, "0.1", "event time range can only be used"),
    ("0 > . 1:1(0) ack 1\n0.2~0.1 > . 1:1(0) ack 1\n", 2, "0.1", "time range is backwards"),
    ("0 < S 0:0(0) win 10 <mss 1460,sackOK>\n", 1, ">", "2 excess bytes"),
    ("0 close(3, 4) = 0\n", 1, "close", "close() takes 1 arguments, not 2"),
    ("0 close(3) = 0\n+0 > S 0:0(0) ack\n", 2, "end of file", "expected TCP ack sequence number"),
    ("0 > . 1:1(0) win 5\n", 1, "end of file", "an ACK segment needs `ack N`"),
    ("0 close(3) = 0 4\n", 1, "end of file", "expected a packet"),
])
def test_a_script_error_names_the_line_and_the_token(text, line, token, message):
    error = syntax_error(text)
    assert (error.line, error.token) == (line, token)
    assert message in str(error)
    assert str(error).startswith(f"t.pkt:{line}: ")


def test_the_first_event_is_at_time_zero_and_absolute_time_never_goes_back():
    assert "first event should be at time 0" in str(syntax_error("0.1 close(3) = 0\n"))
    error = syntax_error("0 close(3) = 0\n0.5 close(4) = 0\n0.2 close(5) = 0\n")
    assert error.line == 3 and "time goes backward in script from 500000 usec to 200000 usec" in str(error)


def test_a_header_with_an_unknown_port_or_key_is_an_error():
    assert "no DUT port 'p7'" in str(syntax_error("// packet-journey: port=p7\n0 close(3) = 0\n"))
    assert syntax_error("// x\n// packet-journey: dut=1\n0 close(3) = 0\n").line == 2


# frames --------------------------------------------------------------------------------

def test_an_inbound_frame_keeps_the_scripts_option_order_and_checksums_both_headers():
    segment = WireSegment("10.0.0.2", "10.0.0.1", 50000, 8080, 1000, 2000, 0x18, 257,
                          (TcpOption(TCPOPT_MSS, 1000), TcpOption(TCPOPT_SACK_PERM), TcpOption(TCPOPT_NOP),
                           TcpOption(TCPOPT_NOP), TcpOption(TCPOPT_NOP), TcpOption(TCPOPT_WINDOW, 7)), bytes(10))
    frame = Ether(segment.frame("02:00:00:00:01:01", "02:00:00:00:00:01"))
    assert (frame[IP].ttl, frame[IP].id, int(frame[IP].flags), frame[IP].tos) == (255, 0, 0, 0)
    assert frame[TCP].options == [("MSS", 1000), ("SAckOK", b""), ("NOP", None), ("NOP", None), ("NOP", None),
                                  ("WScale", 7)]
    assert bytes(frame[TCP].payload) == bytes(10)
    assert WireSegment.parse(bytes(frame)) == segment


def test_an_outbound_frame_reads_back_with_its_options_in_order():
    frame = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(
        sport=8080, dport=50000, seq=5, ack=6, flags="SA", window=64240,
        options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (100, 0)), ("NOP", None), ("WScale", 7)]))
    segment = WireSegment.parse(frame)
    assert segment.options[1] == TcpOption(TCPOPT_SACK_PERM)
    assert (segment.sport, segment.dport, segment.seq, segment.ack, segment.window) == (8080, 50000, 5, 6, 64240)
    assert segment.describe() == "8080>50000 S. 5:5(0) ack 6 win 64240 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>"


def test_an_outbound_frame_with_a_bad_checksum_is_refused():
    good = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2)
    with pytest.raises(MalformedFrame, match="bad outbound TCP checksum"):
        WireSegment.parse(bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, chksum=7)))
    with pytest.raises(MalformedFrame, match="bad outbound IP checksum"):
        WireSegment.parse(bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2", chksum=7) / TCP(sport=1, dport=2)))
    assert WireSegment.parse(bytes(good)).sport == 1


def test_frames_other_than_tcp_over_ipv4_are_not_segments():
    from scapy.layers.inet import UDP
    from scapy.layers.l2 import ARP
    assert WireSegment.parse(bytes(Ether() / ARP())) is None
    assert WireSegment.parse(bytes(Ether() / IP() / UDP())) is None
