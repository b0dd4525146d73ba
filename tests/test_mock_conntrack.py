"""The mock's conntrack beyond the cross-target suites: the TCP tracker's corners
(window scaling, retransmissions, reopening), nf_conntrack_max with early drop on
a writable max (a whole DUT), and the conntrack front end's commands and errors."""
from __future__ import annotations

import pytest
from scapy.layers.inet import TCP, UDP

from harness.journey import CtEntry
from harness.mockkernel.target import MockTarget
from harness.target import CommandError, TargetError

FORWARD_INVALID_DROP = """
table ip t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state invalid counter drop
    }
}
"""
H0, H1 = "10.0.0.2", "10.0.1.2"


@pytest.fixture
def dut() -> MockTarget:
    target = MockTarget()
    for i in range(3):
        target.sh(f"ip addr add 10.0.{i}.1/24 dev p{i}")
        target.sh(f"ip neigh replace 10.0.{i}.2 lladdr 02:00:00:00:01:0{i + 1} dev p{i} nud permanent")
    target.sh("sysctl -w net.ipv4.ip_forward=1")
    target.sh("nft -f -", stdin=FORWARD_INVALID_DROP)
    return target


def _client(dut: MockTarget, sport: int = 40000, **tcp) -> int:
    """h0 -> h1 through the DUT: how many frames left p1."""
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether
    dut.send("p0", Ether(src="02:00:00:00:01:01", dst="02:00:00:00:00:01") / IP(src=H0, dst=H1) /
             TCP(sport=sport, dport=80, **tcp))
    return len(dut.collect("p1"))


def _server(dut: MockTarget, dport: int = 40000, **tcp) -> int:
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether
    dut.send("p1", Ether(src="02:00:00:00:01:02", dst="02:00:00:00:00:02") / IP(src=H1, dst=H0) /
             TCP(sport=80, dport=dport, **tcp))
    return len(dut.collect("p0"))


def _handshake(dut: MockTarget, client_opts=(), server_opts=(), window: int = 1000) -> None:
    assert _client(dut, flags="S", seq=100, window=window, options=list(client_opts)) == 1
    assert _server(dut, flags="SA", seq=500, ack=101, window=window, options=list(server_opts)) == 1
    assert _client(dut, flags="A", seq=101, ack=501, window=window) == 1


def _state(dut: MockTarget) -> str:
    return [e.state for e in dut.conntrack() if e.proto == "tcp"][0]


def test_window_scaling_counts_only_when_both_syns_carry_the_option(dut):
    # window 1000 << 7 = 128000: a segment 100000 bytes ahead is inside only when scaled
    _handshake(dut, client_opts=[("WScale", 7)], server_opts=[("WScale", 7)])
    assert _server(dut, flags="A", seq=501, ack=101, window=1000) == 1  # the receiver's window, scaled
    assert _client(dut, flags="PA", seq=101 + 100000, ack=501, window=1000) == 1


def test_without_the_servers_window_scale_option_the_same_segment_is_invalid(dut):
    _handshake(dut, client_opts=[("WScale", 7)])
    assert _server(dut, flags="A", seq=501, ack=101, window=1000) == 1
    assert _client(dut, flags="PA", seq=101 + 100000, ack=501, window=1000) == 0
    assert [(d.reason, d.stage) for d in dut.drops()] == [("NETFILTER_DROP", "NF_FORWARD")]


def test_an_ack_for_data_not_seen_yet_is_invalid(dut):
    _handshake(dut)
    assert _client(dut, flags="A", seq=101, ack=501 + 5000, window=1000) == 0


def test_retransmissions_beyond_max_retrans_shorten_the_timeout(dut):
    dut.sh("sysctl -w net.netfilter.nf_conntrack_tcp_max_retrans=2")
    dut.sh("sysctl -w net.netfilter.nf_conntrack_tcp_timeout_max_retrans=40")
    _handshake(dut)
    for _ in range(3):  # the same segment: the first sets last_*, two more are retransmissions
        assert _client(dut, flags="PA", seq=101, ack=501, window=1000) == 1
    [entry] = [e for e in dut.conntrack() if e.proto == "tcp"]
    assert entry.state == "ESTABLISHED" and entry.timeout == 40


def test_a_syn_on_a_time_wait_entry_starts_a_new_connection(dut):
    _handshake(dut)
    _client(dut, flags="FA", seq=101, ack=501, window=1000)
    _server(dut, flags="FA", seq=501, ack=102, window=1000)
    _client(dut, flags="A", seq=102, ack=502, window=1000)
    assert _state(dut) == "TIME_WAIT"
    assert _client(dut, flags="S", seq=9000, window=1000) == 1
    [entry] = [e for e in dut.conntrack() if e.proto == "tcp"]
    assert (entry.state, "seen-reply" in entry.status) == ("SYN_SENT", False)


def test_a_syn_ack_from_the_client_is_invalid(dut):
    assert _client(dut, flags="S", seq=100, window=1000) == 1
    assert _client(dut, flags="SA", seq=100, ack=1, window=1000) == 0


def test_entries_expire_in_virtual_time(dut):
    _handshake(dut)
    dut.sh("sysctl -w net.netfilter.nf_conntrack_tcp_timeout_established=50")
    assert _client(dut, flags="A", seq=101, ack=501, window=1000) == 1
    dut.wait(49)
    assert _state(dut) == "ESTABLISHED"
    dut.wait(1)
    assert dut.conntrack() == []


def _udp(dut: MockTarget, sport: int) -> int:
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether
    dut.send("p0", Ether(src="02:00:00:00:01:01", dst="02:00:00:00:00:01") / IP(src=H0, dst=H1) /
             UDP(sport=sport, dport=53))
    return len(dut.collect("p1"))


def test_a_full_table_early_drops_the_unassured_entries_of_a_bucket_and_counts_them(dut):
    dut.sh("sysctl -w net.netfilter.nf_conntrack_max=3")
    dut.sh("sysctl -w net.netfilter.nf_conntrack_buckets=1")  # one bucket: every entry is in the scan
    for sport in (1, 2, 3, 4):
        assert _udp(dut, sport) == 1
    # early_drop_list() kills every unassured entry of the first bucket that has one
    assert [e.original[2] for e in dut.conntrack()] == [4]
    assert dut.sh("sysctl -n net.netfilter.nf_conntrack_count") == "1\n"
    assert "early_drop=3" in dut.sh("conntrack -S")


def test_a_full_table_of_assured_entries_drops_the_packet_at_conntrack(dut):
    dut.sh("sysctl -w net.netfilter.nf_conntrack_max=2")
    dut.conntrack_create(CtEntry("udp", "", ("1.1.1.1", "2.2.2.2", p, 53), ("2.2.2.2", "1.1.1.1", 53, p),
                                 frozenset({"assured", "seen-reply"}), 0, 100) for p in (1, 2))
    assert _udp(dut, 9) == 0
    assert [(d.reason, d.stage) for d in dut.drops()] == [("NETFILTER_DROP", "NF_PREROUTING")]
    assert "drop=1" in dut.sh("conntrack -S")
    with pytest.raises(TargetError, match="Cannot allocate memory"):
        dut.conntrack_create([CtEntry("udp", "", ("1.1.1.1", "2.2.2.2", 3, 53), ("2.2.2.2", "1.1.1.1", 53, 3),
                                      frozenset(), 0, 100)])


def test_conntrack_commands_list_filter_count_create_and_delete(dut):
    dut.sh("conntrack -I -p tcp -s 1.1.1.1 -d 2.2.2.2 --sport 10 --dport 80 -t 100 --state ESTABLISHED "
           "-u ASSURED,SEEN_REPLY -m 5")
    dut.sh("conntrack -I -p udp -s 1.1.1.3 -d 2.2.2.2 --sport 10 --dport 53 -t 50")
    assert dut.sh("conntrack -L -p tcp --state ESTABLISHED") == (
        "tcp      6 100 ESTABLISHED src=1.1.1.1 dst=2.2.2.2 sport=10 dport=80 src=2.2.2.2 dst=1.1.1.1 "
        "sport=80 dport=10 [ASSURED] mark=5 use=1\n")
    assert dut.sh("conntrack -L -m 0").startswith("udp      17 50 src=1.1.1.3")
    assert dut.sh("conntrack -C") == "2\n"
    assert dut.sh("conntrack -D -p udp").count("\n") == 1
    assert dut.sh("conntrack -L -s 9.9.9.9") == ""


@pytest.mark.parametrize("command, message, status", [
    ("conntrack -L --state ESTABLISHED", "unknown option `--state'", 2),
    ("conntrack -L -p udp --state ESTABLISHED", "unknown option `--state'", 2),
    ("conntrack -C -p tcp", "Illegal option `--protonum' with this command", 2),
    ("conntrack -D -s 9.9.9.9", "0 flow entries have been deleted.", 1),
    ("conntrack -I -p tcp -s 1.1.1.1 -d 2.2.2.2 --sport 1 --dport 2 -t 5",
     "You need to supply the `--state' option for this command", 2),
    ("conntrack -X", "unknown option `-X'", 2),
])
def test_conntrack_errors_are_the_tools(dut, command, message, status):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(".", r"\.")) as err:
        dut.sh(command)
    assert err.value.returncode == status


def test_creating_an_existing_entry_fails_as_the_tool_says(dut):
    command = "conntrack -I -p udp -s 1.1.1.3 -d 2.2.2.2 --sport 10 --dport 53 -t 50"
    dut.sh(command)
    with pytest.raises(CommandError, match="Such conntrack exists, try -U to update"):
        dut.sh(command)


def _conntrack_hops(dut: MockTarget) -> list[tuple[str, str]]:
    """(verdict, why) of nf_conntrack_in for the last packet sent."""
    return [(hop.verdict, hop.summary) for hop in dut.journeys()[-1].hops if hop.where == "nf_conntrack_in"]


def test_a_sack_block_past_the_receivers_data_is_reported_as_ack_over_the_upper_bound(dut):
    _handshake(dut, client_opts=[("SAckOK", b"")], server_opts=[("SAckOK", b"")])
    # the server sent only its SYN: td_end 501, so the bound is 502
    assert _client(dut, flags="A", seq=101, ack=501, window=1000,
                   options=[("NOP", None), ("NOP", None), ("SAck", (520, 600))]) == 0
    assert _conntrack_hops(dut) == [("INVALID", "ACK is over upper bound 502 (ACKed data not seen yet)")]


def test_an_ack_with_only_the_timestamp_option_is_in_window_with_sack_permitted(dut):
    _handshake(dut, client_opts=[("SAckOK", b"")], server_opts=[("SAckOK", b"")])
    # NOP, NOP, timestamp: tcp_sack()'s fast path, as valid as a bare ACK
    assert _client(dut, flags="A", seq=101, ack=501, window=1000,
                   options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 0))]) == 1
    assert _state(dut) == "ESTABLISHED"
