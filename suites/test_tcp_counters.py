"""TCP's counters as `nstat -az` reads them (/proc/net/snmp Tcp, /proc/net/netstat
TcpExt), raised where the kernel raises them: a full accept queue
(net/ipv4/tcp_input.c tcp_conn_request(): LINUX_MIB_LISTENOVERFLOWS and
tcp_listendrop()), a full SYN queue answered with a cookie
(tcp_syn_flood_action(), cookie_v4_init_sequence(); the cookie's ACK in
cookie_v4_check()), a close with unread data (tcp_close():
LINUX_MIB_TCPABORTONCLOSE) and data arriving after the close
(tcp_rcv_state_process(): LINUX_MIB_TCPABORTONDATA). h0's segments are written out; the DUT listens on
p0's address."""
from __future__ import annotations

from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether


def nstat(target, *names: str) -> dict[str, int]:
    """The absolute values of the named counters (nstat -az: zeros too, no history)."""
    lines = target.sh(f"nstat -az {' '.join(names)}").splitlines()[1:]
    return {name: int(value) for name, value, _ in (line.split() for line in lines)}


def _syn(h0, sport: int):
    return h0.to_dut() / TCP(sport=sport, dport=8080, flags="S", seq=1000, window=65535, options=[("MSS", 1460)])


def _answer(target, h0) -> TCP | None:
    left = target.next_frame(h0.port, target.now() + 0.5)
    return None if left is None else Ether(left[0])[TCP]


def _connect(target, h0, sport: int) -> TCP:
    """A completed handshake from h0:sport; the DUT's SYN-ACK."""
    target.send(h0.port, _syn(h0, sport))
    synack = _answer(target, h0)
    assert synack is not None and synack.flags == "SA"
    target.send(h0.port, h0.to_dut() / TCP(sport=sport, dport=8080, flags="A", seq=1001, ack=synack.seq + 1,
                                           window=65535), flush=False)
    return synack


def test_a_syn_to_a_full_accept_queue_is_dropped_and_counted_as_overflow_and_drop(target, hosts):
    h0 = hosts[0]
    target.socket("tcp", (h0.dut_ip, 8080)).listen(1)
    before = nstat(target, "TcpExtListenOverflows", "TcpExtListenDrops", "TcpPassiveOpens")
    _connect(target, h0, 41000)
    _connect(target, h0, 41001)  # sk_acceptq_is_full() is ack_backlog > backlog: a second child still fits
    target.send(h0.port, _syn(h0, 41002), flush=False)
    assert _answer(target, h0) is None, "the third SYN is dropped unanswered"
    after = nstat(target, "TcpExtListenOverflows", "TcpExtListenDrops", "TcpPassiveOpens")
    assert {name: after[name] - before[name] for name in after} == {
        "TcpExtListenOverflows": 1, "TcpExtListenDrops": 1, "TcpPassiveOpens": 2}


def test_a_full_syn_queue_answers_with_a_cookie_which_the_ack_redeems(target, hosts):
    h0 = hosts[0]
    target.sh("sysctl -w net.ipv4.tcp_syncookies=1")
    target.socket("tcp", (h0.dut_ip, 8080)).listen(1)
    names = ("TcpExtSyncookiesSent", "TcpExtSyncookiesRecv", "TcpExtSyncookiesFailed", "TcpExtTCPReqQFullDoCookies")
    before = nstat(target, *names)
    for sport in (42000, 42001):  # inet_csk_reqsk_queue_is_full(): more requests than the backlog
        target.send(h0.port, _syn(h0, sport))
        assert _answer(target, h0).flags == "SA"
    synack = _connect(target, h0, 42002)  # answered with a cookie
    assert _answer(target, h0) is None, "the cookie's ACK makes the connection without an answer"
    after = nstat(target, *names)
    assert {name: after[name] - before[name] for name in names} == {
        "TcpExtSyncookiesSent": 1, "TcpExtSyncookiesRecv": 1, "TcpExtSyncookiesFailed": 0,
        "TcpExtTCPReqQFullDoCookies": 1}
    assert synack.options[0] == ("MSS", 1460), "the cookie encodes the MSS it answers with"


def _established(target, h0, sport: int, data: bytes = b""):
    """An accepted connection from h0:sport, `data` received and acknowledged; (socket, SYN-ACK)."""
    listener = target.socket("tcp", (h0.dut_ip, 8080))
    listener.listen(1)
    synack = _connect(target, h0, sport)
    if data:
        target.send(h0.port, h0.to_dut() / TCP(sport=sport, dport=8080, flags="PA", seq=1001, ack=synack.seq + 1,
                                               window=65535) / data, flush=False)
        assert _answer(target, h0).ack == 1001 + len(data)
    return listener.accept()[0], synack


def test_closing_with_unread_data_resets_the_connection_and_counts_abort_on_close(target, hosts):
    h0 = hosts[0]
    conn, synack = _established(target, h0, 43000, b"unread")
    before = nstat(target, "TcpExtTCPAbortOnClose", "TcpExtTCPAbortOnData", "TcpOutRsts")
    conn.close()
    rst = _answer(target, h0)
    assert (rst.flags, rst.seq, rst.ack) == ("RA", synack.seq + 1, 1007)
    after = nstat(target, "TcpExtTCPAbortOnClose", "TcpExtTCPAbortOnData", "TcpOutRsts")
    assert {name: after[name] - before[name] for name in after} == {
        "TcpExtTCPAbortOnClose": 1, "TcpExtTCPAbortOnData": 0, "TcpOutRsts": 1}


def test_data_after_the_application_closed_resets_and_counts_abort_on_data(target, hosts):
    h0 = hosts[0]
    conn, synack = _established(target, h0, 43001)
    conn.close()
    fin = _answer(target, h0)
    assert (fin.flags, fin.seq) == ("FA", synack.seq + 1)
    before = nstat(target, "TcpExtTCPAbortOnClose", "TcpExtTCPAbortOnData", "TcpOutRsts")
    target.send(h0.port, h0.to_dut() / TCP(sport=43001, dport=8080, flags="PA", seq=1001, ack=synack.seq + 2,
                                           window=65535) / b"late", flush=False)
    rst = _answer(target, h0)
    assert (rst.flags, rst.seq) == ("R", synack.seq + 2)
    after = nstat(target, "TcpExtTCPAbortOnClose", "TcpExtTCPAbortOnData", "TcpOutRsts")
    assert {name: after[name] - before[name] for name in after} == {
        "TcpExtTCPAbortOnClose": 0, "TcpExtTCPAbortOnData": 1, "TcpOutRsts": 1}
