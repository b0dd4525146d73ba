"""TCP connection tracking through a forwarding DUT (nf_conntrack_proto_tcp.c):
states and timeouts, window checks, be_liberal, tcp_loose, RST and FIN, TCP
options (window scale, SACK_PERM, SACK blocks, malformed lengths), table
exhaustion, and a masqueraded port clash.

h0 (10.0.0.2:40000) opens connections to h1 (10.0.1.2:80); the DUT forwards
between p0 and p1 and drops what conntrack calls invalid.
"""
from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, TCP

from harness.journey import CtEntry
from harness.testing import counted

pytestmark = pytest.mark.requires("nftables", "conntrack")

DROP_INVALID = """
table ip t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state invalid counter drop
    }
}
"""
CLIENT_ISN, SERVER_ISN = 1000, 5000
SPORT, DPORT = 40000, 80


def _tcp_entries(target) -> list:
    return [e for e in target.conntrack() if e.proto == "tcp"]


def _client_tcp(window: int = 64240, **fields) -> TCP:
    return TCP(sport=SPORT, dport=DPORT, window=window, **fields)


def _server_tcp(window: int = 65160, **fields) -> TCP:
    return TCP(sport=DPORT, dport=SPORT, window=window, **fields)


def _from_client(target, h0, h1, ip_id: int, payload: bytes = b"", **tcp) -> None:
    """h0 sends a segment to h1; the DUT forwards it unchanged but for the TTL."""
    segment = _client_tcp(**tcp) / payload
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=ip_id) / segment)
    target.expect(h1.port, h1.from_dut(src=h0.ip, dst=h1.ip, id=ip_id, ttl=63) / segment)


def _from_server(target, h0, h1, ip_id: int, payload: bytes = b"", **tcp) -> None:
    segment = _server_tcp(**tcp) / payload
    target.send(h1.port, h1.to_dut(dst=h0.ip, id=ip_id) / segment)
    target.expect(h0.port, h0.from_dut(src=h1.ip, dst=h0.ip, id=ip_id, ttl=63) / segment)


def _syn_and_syn_ack(target, h0, h1, client_options=(), server_options=(), **fields) -> None:
    """The first two segments of the handshake, the SYNs carrying the given options."""
    _from_client(target, h0, h1, 1, flags="S", seq=CLIENT_ISN, options=list(client_options), **fields)
    _from_server(target, h0, h1, 2, flags="SA", seq=SERVER_ISN, ack=CLIENT_ISN + 1, options=list(server_options),
                 **fields)


def _handshake(target, h0, h1, client_options=(), server_options=(), **fields) -> None:
    _syn_and_syn_ack(target, h0, h1, client_options, server_options, **fields)
    _from_client(target, h0, h1, 3, flags="A", seq=CLIENT_ISN + 1, ack=SERVER_ISN + 1, **fields)


def test_the_handshake_goes_syn_sent_syn_recv_established_and_assured_with_each_states_timeout(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=DROP_INVALID)
    _from_client(target, h0, h1, 1, flags="S", seq=CLIENT_ISN)
    [syn_sent] = _tcp_entries(target)
    _from_server(target, h0, h1, 2, flags="SA", seq=SERVER_ISN, ack=CLIENT_ISN + 1)
    [syn_recv] = _tcp_entries(target)
    _from_client(target, h0, h1, 3, flags="A", seq=CLIENT_ISN + 1, ack=SERVER_ISN + 1)
    [established] = _tcp_entries(target)
    assert [(e.state, "seen-reply" in e.status, "assured" in e.status)
            for e in (syn_sent, syn_recv, established)] == \
        [("SYN_SENT", False, False), ("SYN_RECV", True, False), ("ESTABLISHED", True, True)]
    # nf_conntrack_tcp_timeout_syn_sent 120, _syn_recv 60, _established 5 days (whole seconds left)
    assert 115 <= syn_sent.timeout <= 120 and 55 <= syn_recv.timeout <= 60
    assert 431995 <= established.timeout <= 432000
    assert (established.original, established.reply) == \
        ((h0.ip, h1.ip, SPORT, DPORT), (h1.ip, h0.ip, DPORT, SPORT))
    assert counted(target, "invalid") == 0


def test_a_segment_beyond_the_receivers_window_is_invalid_and_dropped(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=DROP_INVALID)
    _handshake(target, h0, h1)
    # far over td_maxend: SEQ is over the upper bound of the receiver's window
    far = h0.to_dut(dst=h1.ip, id=4) / TCP(sport=SPORT, dport=DPORT, flags="PA", seq=CLIENT_ISN + 1 + 10_000_000,
                                         ack=SERVER_ISN + 1, window=64240) / b"late"
    target.send(h0.port, far)
    target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("NETFILTER_DROP", "NF_FORWARD")]
    assert counted(target, "invalid") == 1
    assert [e.state for e in _tcp_entries(target)] == ["ESTABLISHED"]


def test_be_liberal_lets_the_out_of_window_segment_through(target, router):
    h0, h1 = router[0], router[1]
    target.sh("sysctl -w net.netfilter.nf_conntrack_tcp_be_liberal=1")
    target.sh("nft -f -", stdin=DROP_INVALID)
    _handshake(target, h0, h1)
    _from_client(target, h0, h1, 4, flags="PA", seq=CLIENT_ISN + 1 + 10_000_000, ack=SERVER_ISN + 1)
    assert counted(target, "invalid") == 0


def test_without_tcp_loose_a_mid_stream_ack_is_invalid(target, router):
    h0, h1 = router[0], router[1]
    target.sh("sysctl -w net.netfilter.nf_conntrack_tcp_loose=0")
    target.sh("nft -f -", stdin=DROP_INVALID)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=5) / TCP(sport=SPORT, dport=DPORT, flags="A", seq=77, ack=88))
    target.expect_nothing()
    assert [(d.reason, d.stage) for d in target.drops()] == [("NETFILTER_DROP", "NF_FORWARD")]
    assert _tcp_entries(target) == []


def test_with_tcp_loose_a_mid_stream_ack_is_picked_up_as_established_with_a_short_timeout(target, router):
    h0, h1 = router[0], router[1]
    target.sh("sysctl -w net.netfilter.nf_conntrack_tcp_loose=1")
    target.sh("nft -f -", stdin=DROP_INVALID)
    _from_client(target, h0, h1, 5, flags="A", seq=77, ack=88)
    [entry] = _tcp_entries(target)
    assert (entry.state, "seen-reply" in entry.status, "assured" in entry.status) == ("ESTABLISHED", False, False)
    # no reply seen yet: nf_conntrack_tcp_timeout_unacknowledged (300 s), not 5 days
    assert 295 <= entry.timeout <= 300
    # the answer is seen (SEEN_REPLY is set after the tracker ran); the next segment assures it
    _from_server(target, h0, h1, 6, flags="A", seq=88, ack=77)
    [answered] = _tcp_entries(target)
    _from_client(target, h0, h1, 7, flags="A", seq=77, ack=88)
    [entry] = _tcp_entries(target)
    assert ("seen-reply" in answered.status, "assured" in answered.status) == (True, False)
    assert "assured" in entry.status


def test_an_in_window_rst_closes_the_entry_which_expires_after_the_close_timeout(target, router):
    h0, h1 = router[0], router[1]
    target.sh("sysctl -w net.netfilter.nf_conntrack_tcp_timeout_close=2")
    target.sh("nft -f -", stdin=DROP_INVALID)
    _handshake(target, h0, h1)
    _from_client(target, h0, h1, 4, flags="R", seq=CLIENT_ISN + 1)
    [entry] = _tcp_entries(target)
    assert entry.state == "CLOSE" and entry.timeout <= 2
    target.wait(3)
    assert _tcp_entries(target) == []


def test_an_rst_before_any_reply_deletes_the_entry_at_once(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=DROP_INVALID)
    _from_client(target, h0, h1, 1, flags="S", seq=CLIENT_ISN)
    # the server's port is closed: its RST is the only reply
    _from_server(target, h0, h1, 2, flags="RA", seq=0, ack=CLIENT_ISN + 1)
    assert _tcp_entries(target) == []


def test_the_fin_handshake_ends_in_time_wait(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=DROP_INVALID)
    _handshake(target, h0, h1)
    states = []
    _from_client(target, h0, h1, 4, flags="FA", seq=CLIENT_ISN + 1, ack=SERVER_ISN + 1)
    states.append(_tcp_entries(target)[0].state)
    _from_server(target, h0, h1, 5, flags="A", seq=SERVER_ISN + 1, ack=CLIENT_ISN + 2)
    states.append(_tcp_entries(target)[0].state)
    _from_server(target, h0, h1, 6, flags="FA", seq=SERVER_ISN + 1, ack=CLIENT_ISN + 2)
    states.append(_tcp_entries(target)[0].state)
    _from_client(target, h0, h1, 7, flags="A", seq=CLIENT_ISN + 2, ack=SERVER_ISN + 2)
    [entry] = _tcp_entries(target)
    assert states + [entry.state] == ["FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT"]
    assert 115 <= entry.timeout <= 120  # nf_conntrack_tcp_timeout_time_wait
    assert counted(target, "invalid") == 0


def _fill_table(target, assured: bool) -> int:
    """Fill the DUT's table up to nf_conntrack_max with UDP entries (assured ones
    cannot be early-dropped); the max is read, as a netns cannot write it."""
    limit = int(target.sh("sysctl -n net.netfilter.nf_conntrack_max"))
    count = int(target.sh("sysctl -n net.netfilter.nf_conntrack_count"))
    status = frozenset({"assured", "seen-reply"}) if assured else frozenset()
    target.conntrack_create(
        CtEntry("udp", "", (f"198.18.{i >> 16}.{(i >> 8) & 0xFF}", "198.19.0.1", 1024 + (i & 0xFF), 53),
                ("198.19.0.1", f"198.18.{i >> 16}.{(i >> 8) & 0xFF}", 53, 1024 + (i & 0xFF)), status, 0, 600)
        for i in range(limit - count))
    assert int(target.sh("sysctl -n net.netfilter.nf_conntrack_count")) == limit
    return limit


def test_a_table_full_of_assured_entries_drops_a_new_connections_first_packet(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=DROP_INVALID)
    limit = _fill_table(target, assured=True)
    try:
        target.send(h0.port, h0.to_dut(dst=h1.ip, id=8) / TCP(sport=SPORT, dport=DPORT, flags="S", seq=1))
        target.expect_nothing()
        # nf_conntrack_in() returns NF_DROP: nf_hook_slow() frees it at conntrack's PREROUTING hook
        assert [(d.reason, d.stage, d.location) for d in target.drops()] == [
            ("NETFILTER_DROP", "NF_PREROUTING", "nf_hook_slow")]
        assert int(target.sh("sysctl -n net.netfilter.nf_conntrack_count")) == limit
    finally:
        target.sh("conntrack -F")


def test_a_table_full_of_unreplied_entries_early_drops_one_for_a_new_connection(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=DROP_INVALID)
    limit = _fill_table(target, assured=False)
    try:
        _from_client(target, h0, h1, 9, flags="S", seq=1)
        assert int(target.sh("sysctl -n net.netfilter.nf_conntrack_count")) <= limit
        assert target.sh(f"conntrack -L -p tcp --dport {DPORT}").startswith("tcp ")
    finally:
        target.sh("conntrack -F")


def test_masquerade_gives_the_second_of_two_clashing_connections_another_port(target, router):
    h0, h1, h2 = router
    target.sh("nft -f -", stdin="""
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "p1" masquerade
    }
}
""")
    sent = []
    for host, ip_id in ((h0, 11), (h2, 12)):
        target.send(host.port, host.to_dut(dst=h1.ip, id=ip_id) / TCP(sport=SPORT, dport=DPORT, flags="S", seq=1))
        sent.append(IP(target.frame_left(h1.port, f"the masqueraded SYN from {host.ip}")[14:]))
    first, second = sent
    assert (first.src, first[TCP].sport) == (h1.dut_ip, SPORT)
    assert second.src == h1.dut_ip and second[TCP].sport != SPORT and 1024 <= second[TCP].sport <= 65535
    entries = {e.original[0]: e for e in _tcp_entries(target)}
    assert entries[h0.ip].reply == (h1.ip, h1.dut_ip, DPORT, SPORT)
    assert entries[h2.ip].reply == (h1.ip, h1.dut_ip, DPORT, second[TCP].sport)
    assert "snat" in entries[h2.ip].status


# TCP options (tcp_options(), tcp_sack()). A SACK block is read only when the
# segment's receiver sent SACK_PERM in its SYN; its highest right edge then
# stands for the ACK in the "ACK is over upper bound" check (INVALID) and the
# "ACK under lower bound" one (ignored: passes with its entry, changing nothing).
SACK_PERM = [("SAckOK", b"")]
NOP = b"\x01"


def _sack(*blocks: tuple[int, int]) -> list:
    return [("NOP", None), ("NOP", None), ("SAck", tuple(edge % 2**32 for block in blocks for edge in block))]


def _sends(target, src, dst, ip_id: int, segment) -> int:
    """Host `src` sends `segment` (from its TCP layer on) to host `dst`: how many
    frames the DUT forwarded."""
    target.send(src.port, src.to_dut(dst=dst.ip, id=ip_id) / segment)
    return len(target.collect(dst.port))


@pytest.mark.parametrize("client_perm, server_perm, sack_read", [
    (True, True, True), (False, True, True), (True, False, False), (False, False, False)],
    ids=["both", "server-only", "client-only", "neither"])
def test_a_sack_block_past_what_the_server_sent_is_invalid_when_the_server_permitted_sack(
        target, router, client_perm, server_perm, sack_read):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=DROP_INVALID)
    _syn_and_syn_ack(target, h0, h1, SACK_PERM if client_perm else (), SACK_PERM if server_perm else ())
    # the server has sent only its SYN (td_end SERVER_ISN + 1): a block up to
    # SERVER_ISN + 101 acknowledges data not seen yet. Only the receiver's
    # SACK_PERM counts, not the sender's.
    sacked = _client_tcp(flags="A", seq=CLIENT_ISN + 1, ack=SERVER_ISN + 1,
                         options=_sack((SERVER_ISN + 51, SERVER_ISN + 101)))
    forwarded = _sends(target, h0, h1, 3, sacked)
    after_sack = (forwarded, counted(target, "invalid"), _tcp_entries(target)[0].state)
    # the same ACK without the option completes the handshake
    _from_client(target, h0, h1, 4, flags="A", seq=CLIENT_ISN + 1, ack=SERVER_ISN + 1)
    [entry] = _tcp_entries(target)
    assert after_sack == ((0, 1, "SYN_RECV") if sack_read else (1, 0, "ESTABLISHED"))
    assert (entry.state, "assured" in entry.status) == ("ESTABLISHED", True)


def test_a_sack_block_may_reach_the_last_byte_the_receiver_sent_but_not_one_past_it(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=DROP_INVALID)
    _handshake(target, h0, h1, SACK_PERM, SACK_PERM)
    _from_server(target, h0, h1, 4, b"x" * 100, flags="PA", seq=SERVER_ISN + 1, ack=CLIENT_ISN + 1)
    # the first 50 bytes lost, the block ends at the server's td_end, then one past it
    forwarded = [_sends(target, h0, h1, ip_id, _client_tcp(flags="A", seq=CLIENT_ISN + 1, ack=SERVER_ISN + 1,
                                                           options=_sack((SERVER_ISN + 51, right))))
                 for ip_id, right in ((5, SERVER_ISN + 101), (6, SERVER_ISN + 102))]
    assert (forwarded, counted(target, "invalid")) == ([1, 0], 1)


def test_a_sack_block_lifts_an_ack_too_old_for_the_window_so_a_fin_counts(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=DROP_INVALID)
    _handshake(target, h0, h1, SACK_PERM, SACK_PERM)
    # 70000 below the server's td_end is under MAXACKWINDOW (66000): the FIN is
    # ignored, it passes with its entry (not INVALID) but closes nothing
    stale_ack = (SERVER_ISN + 1 - 70000) % 2**32
    _from_client(target, h0, h1, 4, flags="FA", seq=CLIENT_ISN + 1, ack=stale_ack)
    ignored = _tcp_entries(target)[0].state
    # a block up to td_end makes `sack` current: the same FIN is in window
    _from_client(target, h0, h1, 5, flags="FA", seq=CLIENT_ISN + 1, ack=stale_ack,
                 options=_sack((SERVER_ISN + 1 - 10, SERVER_ISN + 1)))
    [entry] = _tcp_entries(target)
    assert (ignored, entry.state, counted(target, "invalid")) == ("ESTABLISHED", "FIN_WAIT", 0)


def _raw_sack(right: int) -> bytes:
    """A SACK option (kind 5, 10 bytes) of one block ending at `right`."""
    return bytes((5, 10)) + struct.pack("!II", (right - 50) % 2**32, right % 2**32)


# option bytes before, around or instead of a SACK block past what the server
# sent; whether tcp_sack() reaches it (then the ACK is INVALID)
PAST = SERVER_ISN + 101
OPTION_LAYOUTS = {
    "well-formed": (NOP * 2 + _raw_sack(PAST), True),
    "after-a-timestamp": (NOP * 2 + bytes((8, 10)) + bytes(8) + NOP * 2 + _raw_sack(PAST), True),
    "after-an-unknown-option": (bytes((254, 4, 0, 0)) + NOP * 2 + _raw_sack(PAST), True),
    "after-a-sack-not-2-plus-8n-long": (bytes((5, 12)) + bytes(10) + NOP * 2 + _raw_sack(PAST), True),
    "not-2-plus-8n-long": (bytes((5, 14)) + _raw_sack(PAST)[2:] + bytes(4) + NOP * 2, False),
    "longer-than-the-header": (NOP * 2 + bytes((5, 18)) + _raw_sack(PAST)[2:], False),
    "after-an-option-of-length-1": (bytes((254, 1)) + NOP * 4 + _raw_sack(PAST), False),
    "after-an-option-of-length-0": (bytes((254, 0)) + NOP * 4 + _raw_sack(PAST), False),
    "after-end-of-options": (bytes((0,)) + NOP * 5 + _raw_sack(PAST), False),
}


@pytest.mark.parametrize("options, sack_read", list(OPTION_LAYOUTS.values()), ids=list(OPTION_LAYOUTS))
def test_the_sack_parser_stops_at_a_malformed_option_length_and_skips_misshapen_sack_options(
        target, router, options, sack_read):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=DROP_INVALID)
    _syn_and_syn_ack(target, h0, h1, SACK_PERM, SACK_PERM)
    assert len(options) % 4 == 0
    # the option bytes written as they are (scapy would mend their lengths)
    segment = _client_tcp(flags="A", seq=CLIENT_ISN + 1, ack=SERVER_ISN + 1, dataofs=5 + len(options) // 4) / options
    forwarded = _sends(target, h0, h1, 3, segment)
    assert (forwarded, counted(target, "invalid")) == ((0, 1) if sack_read else (1, 0))


@pytest.mark.parametrize("client_wscale, server_wscale, in_window", [(7, 7, True), (7, None, False),
                                                                      (None, 7, False)])
def test_window_scaling_from_the_syn_options_widens_the_window_only_when_both_syns_carry_it(
        target, router, client_wscale, server_wscale, in_window):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=DROP_INVALID)
    _handshake(target, h0, h1, [("WScale", client_wscale)] if client_wscale else (),
               [("WScale", server_wscale)] if server_wscale else ())
    # the server's first window after the SYNs: 65160, or 65160 << 7 = 8340480
    _from_server(target, h0, h1, 4, flags="A", seq=SERVER_ISN + 1, ack=CLIENT_ISN + 1)
    ahead = _client_tcp(flags="PA", seq=CLIENT_ISN + 1 + 1_000_000, ack=SERVER_ISN + 1) / b"data"
    forwarded = _sends(target, h0, h1, 5, ahead)
    assert (forwarded, counted(target, "invalid")) == ((1, 0) if in_window else (0, 1))


def test_a_window_scale_above_14_counts_as_14(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=DROP_INVALID)
    _handshake(target, h0, h1, [("WScale", 15)], [("WScale", 15)], window=1000)
    # the server's window: 1000 << 14 = 16384000 (1000 << 15 would be 32768000)
    _from_server(target, h0, h1, 4, flags="A", seq=SERVER_ISN + 1, ack=CLIENT_ISN + 1, window=1000)
    # 40000000 ahead overshoots a 16384000 window by more than the window: INVALID
    # (a 32768000 window would let it pass, ignored, as "bytes more than expected")
    ahead = _client_tcp(flags="PA", seq=CLIENT_ISN + 1 + 40_000_000, ack=SERVER_ISN + 1, window=1000) / b"data"
    assert (_sends(target, h0, h1, 5, ahead), counted(target, "invalid")) == (0, 1)


def test_a_segment_a_little_past_the_window_is_ignored_not_invalid_and_its_ack_is_then_in_window(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=DROP_INVALID)
    _handshake(target, h0, h1)
    # the server's SYN/ACK opened 65160 bytes from CLIENT_ISN + 1: this one starts
    # just past that and overshoots by less than the window (Linux 6.1 and later)
    past = CLIENT_ISN + 1 + 65160 + 1
    _from_client(target, h0, h1, 4, b"y" * 100, flags="PA", seq=past, ack=SERVER_ISN + 1)
    # its td_end was kept, so the server acknowledging it is not "ACK over upper bound"
    _from_server(target, h0, h1, 5, flags="A", seq=SERVER_ISN + 1, ack=past + 100)
    [entry] = _tcp_entries(target)
    assert (entry.state, counted(target, "invalid")) == ("ESTABLISHED", 0)


def test_an_old_retransmitted_fin_passes_with_its_entry_but_does_not_close_it(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=DROP_INVALID)
    _handshake(target, h0, h1)
    # ending more than the receiver's largest window (65160) before td_end: "SEQ is
    # under lower bound", ignored (before Linux 6.1 it was INVALID)
    _from_client(target, h0, h1, 4, flags="FA", seq=(CLIENT_ISN + 1 - 100_000) % 2**32, ack=SERVER_ISN + 1)
    ignored = _tcp_entries(target)[0].state
    _from_client(target, h0, h1, 5, flags="FA", seq=CLIENT_ISN + 1, ack=SERVER_ISN + 1)
    [entry] = _tcp_entries(target)
    assert (ignored, entry.state, counted(target, "invalid")) == ("ESTABLISHED", "FIN_WAIT", 0)


@pytest.mark.parametrize("second_syn_options, sack_read", [([], True), ([("MSS", 1460)], False)],
                         ids=["no-options", "mss-only"])
def test_a_new_syn_without_options_keeps_the_first_syns_sack_perm_and_one_with_other_options_clears_it(
        target, router, second_syn_options, sack_read):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=DROP_INVALID)
    _from_client(target, h0, h1, 1, flags="S", seq=CLIENT_ISN, options=SACK_PERM)
    # the client starts over with a higher sequence number: tcp_in_window()
    # re-initializes its side from this SYN, tcp_options() only if it has options
    restart = CLIENT_ISN + 1000
    _from_client(target, h0, h1, 2, flags="S", seq=restart, options=second_syn_options)
    _from_server(target, h0, h1, 3, flags="SA", seq=SERVER_ISN, ack=restart + 1, options=SACK_PERM)
    _from_client(target, h0, h1, 4, flags="A", seq=restart + 1, ack=SERVER_ISN + 1)
    # the server SACKs data the client has not sent
    sacked = _server_tcp(flags="A", seq=SERVER_ISN + 1, ack=restart + 1, options=_sack((restart + 51, restart + 101)))
    forwarded = _sends(target, h1, h0, 5, sacked)
    assert (forwarded, counted(target, "invalid")) == ((0, 1) if sack_read else (1, 0))


def test_window_scale_and_sack_perm_options_of_the_wrong_length_are_not_taken(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=DROP_INVALID)
    _from_client(target, h0, h1, 1, flags="S", seq=CLIENT_ISN, options=[("WScale", 7)] + SACK_PERM)
    # the SYN/ACK's options, as written: window scale 7 in four bytes, SACK_PERM
    # in three, a NOP; tcp_options() walks past both without taking them
    misshapen = bytes((3, 4, 7, 0)) + bytes((4, 3, 0)) + NOP
    _from_server(target, h0, h1, 2, misshapen, flags="SA", seq=SERVER_ISN, ack=CLIENT_ISN + 1,
                 dataofs=5 + len(misshapen) // 4)
    _from_client(target, h0, h1, 3, flags="A", seq=CLIENT_ISN + 1, ack=SERVER_ISN + 1)
    _from_server(target, h0, h1, 4, flags="A", seq=SERVER_ISN + 1, ack=CLIENT_ISN + 1)
    # unscaled, the server's window is 65160: 1000000 ahead is out of it
    ahead = _client_tcp(flags="PA", seq=CLIENT_ISN + 1 + 1_000_000, ack=SERVER_ISN + 1) / b"data"
    # without the server's SACK_PERM a block past its data is not read
    sacked = _client_tcp(flags="A", seq=CLIENT_ISN + 1, ack=SERVER_ISN + 1,
                         options=_sack((SERVER_ISN + 51, SERVER_ISN + 101)))
    assert [_sends(target, h0, h1, 5, ahead), _sends(target, h0, h1, 6, sacked)] == [0, 1]


COUNT_INVALID = """
table ip t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state invalid counter
    }
}
"""


def test_conntrack_itself_does_not_drop_an_invalid_segment_it_goes_on_without_its_entry(target, router):
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=COUNT_INVALID)
    _handshake(target, h0, h1, SACK_PERM, SACK_PERM)
    # tcp_in_window() says INVALID, nf_conntrack_tcp_packet() returns -NF_ACCEPT:
    # the segment is forwarded as `ct state invalid`, the entry left as it was
    _from_client(target, h0, h1, 4, flags="FA", seq=CLIENT_ISN + 1, ack=SERVER_ISN + 1,
                 options=_sack((SERVER_ISN + 51, SERVER_ISN + 101)))
    [entry] = _tcp_entries(target)
    assert (counted(target, "invalid"), entry.state) == (1, "ESTABLISHED")
