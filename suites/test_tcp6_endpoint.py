"""The DUT as a TCP endpoint over IPv6: an AF_INET6 socket of an application on the
DUT talking to a tester host written frame by frame (tcp_segments.Peer6).

The handshake both ways with Linux's SYN and SYN-ACK over IPv6 (MSS the MTU less
60), data and its ACKs, the RST for a closed port, the close that leaves TIME_WAIT
as ss lists it, packet too big lowering the connection's MSS, /proc/net/tcp6, and
the dual-stack listener: an AF_INET6 socket on :: takes IPv4 connections
(v4-mapped peers) unless IPV6_V6ONLY.
"""
from __future__ import annotations

import socket
from socket import AF_INET6

import pytest
from scapy.layers.inet import TCP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6PacketTooBig, IPv6
from scapy.layers.l2 import Ether

from harness.target import TcpState
from harness.testing import drops, quoted6
from tcp_segments import INITIAL_WINDOW, INITIAL_WINDOW6, SYN_OPTIONS, Peer, Peer6, flowlabel_mask

DUT_PORT, PEER_PORT = 8080, 40000


def _listener(target, address: str, backlog: int = 8):
    listener = target.socket("tcp", (address, DUT_PORT), family=AF_INET6)
    listener.listen(backlog)
    return listener


def _accepted(target, h0):
    """A connection from h0 the DUT's listener on its IPv6 address accepted: the socket and the peer."""
    listener = _listener(target, h0.dut_ip6)
    peer = Peer6(h0, PEER_PORT, DUT_PORT)
    peer.connect(target)
    conn, address = listener.accept()
    assert address == (h0.ip6, PEER_PORT)
    return conn, peer


def test_a_listener_answers_a_syn_with_linuxs_syn_ack_mss_1440_and_accepts_the_connection(target, hosts6):
    """tcp_v6_conn_request(): the SYN-ACK offers the route's advmss (1500 - 40 - 20) and a
    window of whole MSS; data is acknowledged at once (quick ACK) and answered."""
    h0 = hosts6[0]
    listener = _listener(target, h0.dut_ip6)
    peer = Peer6(h0, PEER_PORT, DUT_PORT)
    peer.connect(target)
    assert (listener.info().state, listener.info().recv_q, listener.info().send_q) == (TcpState.TCP_LISTEN, 1, 8)
    peer.send(target, "PA", b"hello")
    peer.expect(target, "A")
    conn, address = listener.accept()
    assert address == (h0.ip6, PEER_PORT) and conn.recv(100) == b"hello"
    assert conn.send(b"world") == 5
    peer.expect(target, "PA", b"world")
    info = conn.info()
    assert (info.state, info.recv_q, info.send_q, info.mss, info.bytes_received) == \
        (TcpState.TCP_ESTABLISHED, 0, 5, 1440, 5)
    peer.send(target, "A")
    target.expect_nothing()
    assert (conn.info().send_q, conn.info().bytes_acked) == (0, 5)
    assert drops(target) == []


def test_connect_sends_linuxs_syn_over_ipv6_and_the_syn_ack_completes_the_handshake(target, hosts6):
    """tcp_v6_connect(): MSS 1440, SACK, timestamps, window scale 10, hop limit 64,
    the flow label of the connection's random hash."""
    h0 = hosts6[0]
    sock = target.socket("tcp", (h0.dut_ip6, 50000), family=AF_INET6)
    with pytest.raises(BlockingIOError) as in_progress:
        sock.connect((h0.ip6, 80))
    assert in_progress.value.errno == 115  # EINPROGRESS
    assert sock.info().state == TcpState.TCP_SYN_SENT
    syn = h0.from_dut6(src=h0.dut_ip6, dst=h0.ip6, hlim=64) / \
        TCP(sport=50000, dport=80, flags="S", window=INITIAL_WINDOW6,
            options=[("MSS", 1440), ("SAckOK", b""), ("Timestamp", (0, 0)), ("NOP", None), ("WScale", 10)])
    mask = flowlabel_mask(syn).ignore(TCP, "seq", "the ISN: secure_tcpv6_seq()") \
        .ignore(TCP, "chksum", "covers the ISN and TSval") \
        .ignore_bytes(14 + 40 + 20 + 4 + 2 + 2, 4, "TSval: the ms clock plus a random offset per connection")
    got = Ether(target.expect(h0.port, mask))
    server = Peer6(h0, 80, 50000, seq=7000, ack=got[TCP].seq + 1)
    server.send(target, "SA", options=SYN_OPTIONS, window=65535)
    server.expect(target, "A")
    assert sock.wait("connected", 1.0)
    info = sock.info()
    assert (info.state, info.mss, info.snd_wnd, info.cwnd) == (TcpState.TCP_ESTABLISHED, 1440, 65535, 10)


def test_a_syn_to_a_closed_port_gets_rst_ack_with_its_traffic_class(target, hosts6):
    """tcp_v6_send_reset(): seq 0, the SYN acknowledged, window 0, hop limit 64 and the
    SYN's traffic class less ECN (ipv6_get_dsfield()); the segment is NO_SOCKET."""
    h0 = hosts6[0]
    syn = h0.to_dut6(tc=0x22) / TCP(sport=PEER_PORT, dport=9999, flags="S", seq=1000, window=INITIAL_WINDOW,
                                    options=SYN_OPTIONS)
    target.send(h0.port, syn)
    target.expect(h0.port, flowlabel_mask(h0.from_dut6(src=h0.dut_ip6, dst=h0.ip6, hlim=64, tc=0x20) /
                                          TCP(sport=9999, dport=PEER_PORT, flags="RA", seq=0, ack=1001, window=0)))
    target.expect_nothing()
    assert drops(target) == [("NO_SOCKET", "L4", "tcp_v6_rcv")]


def test_data_both_ways_then_the_duts_close_leaves_time_wait_as_ss_lists_it(target, hosts6):
    """The DUT closes first: its FIN, the peer's FIN acknowledged, TIME_WAIT; `ss -6 -tan`
    prints the connection's addresses in brackets."""
    h0 = hosts6[0]
    conn, peer = _accepted(target, h0)
    peer.send(target, "PA", b"ping")
    peer.expect(target, "A")
    assert conn.recv(10) == b"ping"
    conn.send(b"pong")
    peer.expect(target, "PA", b"pong")
    peer.send(target, "A")
    assert _ss_rows(target, "ss -6 -tanH state established") == \
        [["0", "0", f"[{h0.dut_ip6}]:{DUT_PORT}", f"[{h0.ip6}]:{PEER_PORT}"]]
    conn.close()
    peer.expect(target, "FA")
    peer.send(target, "FA")
    target.expect(h0.port, flowlabel_mask(peer.from_dut("A")))
    assert conn_state_rows(target) == [["TIME-WAIT", "0", "0", f"[{h0.dut_ip6}]:{DUT_PORT}",
                                        f"[{h0.ip6}]:{PEER_PORT}"]]


def _ss_rows(target, command: str) -> list[list[str]]:
    return [line.split() for line in target.sh(command).splitlines()]


def conn_state_rows(target) -> list[list[str]]:
    """The IPv6 TCP sockets but the listener (`ss -6 -tanH`: all states, no header)."""
    return [row for row in _ss_rows(target, "ss -6 -tanH") if row[0] != "LISTEN"]


def test_ss_lists_a_dual_stack_listener_as_star_and_a_v6only_one_in_brackets(target, hosts6, hosts):
    """inet_addr_print(): :: is `*` for a socket that takes IPv4 too, `[::]` for an
    IPV6_V6ONLY one; an address it is bound to in brackets; IPv4 sockets first."""
    h0 = hosts6[0]
    _listener(target, "::")
    v6only = target.socket("tcp", family=AF_INET6)
    v6only.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    v6only.bind(("::", 8081))
    v6only.listen(8)
    target.socket("tcp", (h0.dut_ip6, 8082), family=AF_INET6).listen(8)
    target.socket("tcp", (h0.dut_ip, 8083)).listen(8)
    assert sorted(_ss_rows(target, "ss -tlnH")[1:]) == sorted([
        ["LISTEN", "0", "8", "*:8080", "*:*"], ["LISTEN", "0", "8", "[::]:8081", "[::]:*"],
        ["LISTEN", "0", "8", f"[{h0.dut_ip6}]:8082", "[::]:*"]])
    assert _ss_rows(target, "ss -tlnH")[0] == ["LISTEN", "0", "8", f"{h0.dut_ip}:8083", "0.0.0.0:*"]
    assert [row[3] for row in _ss_rows(target, "ss -4 -tlnH")] == [f"{h0.dut_ip}:8083"]


def test_a_dual_stack_listener_accepts_ipv4_with_a_v4_mapped_peer(target, hosts6, hosts):
    """An AF_INET6 socket on [::]:8080 takes an IPv4 SYN (tcp_v6_conn_request() hands it
    to tcp_v4_conn_request()): Linux's IPv4 SYN-ACK, MSS 1460, and accept() gives the
    peer as ::ffff:10.0.0.2; ss lists the connection under IPv6, v4-mapped."""
    h0 = hosts6[0]
    listener = _listener(target, "::")
    peer = Peer(h0, PEER_PORT, DUT_PORT)
    peer.connect(target)
    conn, address = listener.accept()
    assert address == (f"::ffff:{h0.ip}", PEER_PORT)
    assert conn.info().mss == 1460
    peer.send(target, "PA", b"over ipv4")
    peer.expect(target, "A")
    assert conn.recv(100) == b"over ipv4"
    assert _ss_rows(target, "ss -6 -tnH") == \
        [["ESTAB", "0", "0", f"[::ffff:{h0.dut_ip}]:{DUT_PORT}", f"[::ffff:{h0.ip}]:{PEER_PORT}"]]
    assert _ss_rows(target, "ss -4 -tnH") == []


def test_an_ipv6_only_listener_refuses_ipv4_with_a_reset(target, hosts6, hosts):
    """IPV6_V6ONLY: no IPv4 lookup finds the listener (compute_score()), so the IPv4 SYN
    is NO_SOCKET and answered by tcp_v4_send_reset()."""
    h0 = hosts6[0]
    listener = target.socket("tcp", family=AF_INET6)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    assert listener.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    listener.bind(("::", DUT_PORT))
    listener.listen(8)
    peer = Peer(h0, PEER_PORT, DUT_PORT)
    peer.send(target, "S", options=SYN_OPTIONS, window=INITIAL_WINDOW)
    target.expect(h0.port, h0.from_dut(src=h0.dut_ip, dst=h0.ip, ttl=64, flags="DF", id=0) /
                  TCP(sport=DUT_PORT, dport=PEER_PORT, flags="RA", seq=0, ack=peer.seq, window=0))
    assert drops(target) == [("NO_SOCKET", "L4", "tcp_v4_rcv")]


def test_binding_ipv4_and_a_dual_stack_ipv6_socket_to_one_port_conflicts_unless_v6only(target, hosts6):
    """inet_rcv_saddr_equal(): [::] overlaps 0.0.0.0 (EADDRINUSE) unless IPV6_V6ONLY."""
    target.socket("tcp", ("0.0.0.0", DUT_PORT)).listen(8)
    with pytest.raises(OSError) as in_use:
        target.socket("tcp", ("::", DUT_PORT), family=AF_INET6)
    assert in_use.value.errno == 98  # EADDRINUSE
    v6only = target.socket("tcp", family=AF_INET6)
    v6only.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    v6only.bind(("::", DUT_PORT))
    v6only.listen(8)


def test_packet_too_big_lowers_the_mss_and_what_no_longer_fits_goes_again_cut_to_it(target, hosts6):
    """3000 bytes leave as 1440 + 1440 + 120; a router's packet too big (MTU 1400) about
    the first: tcp_v6_err() -> tcp_v6_mtu_reduced(): the MSS is 1340 and what was sent
    in 1440-byte segments is lost and goes again at once in pieces of at most 1340
    (tcp_simple_retransmit()), from the first unacknowledged byte on. The kernel re-cuts
    the whole burst (1340, 1340, 320: one GSO skb); the mock's retransmission queue
    keeps it MSS by MSS and re-cuts each 1440 (1340 + 100): both are asserted as what
    they share. New data then leaves in 1340-byte segments."""
    h0 = hosts6[0]
    conn, peer = _accepted(target, h0)
    conn.send(b"x" * 3000)
    sent = [Ether(target.next_frame(h0.port, target.now() + 1.0)[0]) for _ in range(3)]
    assert [len(segment[TCP].payload) for segment in sent] == [1440, 1440, 120]
    target.send(h0.port, Ether(src=h0.mac, dst=h0.port.mac) / IPv6(src="2001:db8::99", dst=h0.dut_ip6) /
                ICMPv6PacketTooBig(mtu=1400) / quoted6(sent[0])[:1232 - 8 - 40])
    again = [(segment.seq - peer.ack, len(segment.payload))
             for segment in (Ether(frame)[TCP] for frame in target.collect(h0.port))]
    assert again[0] == (0, 1340) and all(length <= 1340 for _, length in again)
    assert [start for start, _ in again] == sorted(start for start, _ in again)
    assert set(range(2880)) <= {byte for start, length in again for byte in range(start, start + length)}
    assert conn.info().mss == 1340
    peer.send(target, "A", ack=peer.ack + 3000)
    peer.ack += 3000
    assert conn.info().send_q == 0
    conn.send(b"y" * 2000)
    assert [len(Ether(target.next_frame(h0.port, target.now() + 1.0)[0])[TCP].payload) for _ in range(2)] == \
        [1340, 660]


def test_proc_net_tcp6_lists_the_listener_the_connection_and_the_request_as_tcp6_seq_show(target, hosts6):
    """get_tcp6_sock(), get_openreq6(): the listener first, then the established table
    (in its hash order: the rows are told apart by state); each address as four %08X
    host-order words, the
    port in hex; the listener's accept queue and the connection's unread bytes in
    rx_queue; the listener's RTO (1 s: 100 clock ticks); the request's SYN-ACK timer
    (tr 1, at most 1 s); the connection's ato (40 ms: 4), quick ACKs left << 1 (15: 30), cwnd 10 and ssthresh -1
    (initial slow start). Left out: inode, reference count, pointer and the RTO, which
    the handshake's real RTT moves."""
    h0 = hosts6[0]
    _listener(target, "::")
    peer = Peer6(h0, PEER_PORT, DUT_PORT)
    peer.connect(target)
    peer.send(target, "PA", b"hello")
    peer.expect(target, "A")
    Peer6(h0, PEER_PORT + 1, DUT_PORT).syn(target)
    header, *rows = (line.split() for line in target.sh("cat /proc/net/tcp6").splitlines())
    assert header == ["sl", "local_address", "remote_address", "st", "tx_queue", "rx_queue", "tr", "tm->when",
                      "retrnsmt", "uid", "timeout", "inode"]
    dut, host = "B80D0120000000000000000001000000", "B80D0120000000000000000002000000"
    assert [row[0] for row in rows] == ["0:", "1:", "2:"]
    listener, connection, request = (next(row[1:] for row in rows if row[3] == state) for state in ("0A", "01", "03"))
    assert listener[:8] + listener[11:] == [f"{'0' * 32}:1F90", f"{'0' * 32}:0000", "0A",
                                            "00000000:00000001", "00:00000000", "00000000", "0", "0",
                                            "100", "0", "0", "10", "0"]
    assert connection[:8] + connection[12:] == [f"{dut}:1F90", f"{host}:9C40", "01", "00000000:00000005",
                                                "00:00000000", "00000000", "0", "0", "4", "30", "10", "-1"]
    assert request[:4] + request[5:10] == [f"{dut}:1F90", f"{host}:9C41", "03", "00000000:00000000",
                                           "00000000", "0", "0", "0", "0"]
    assert request[4].startswith("01:") and 0 < int(request[4][3:], 16) <= 100


def _tcp_mib(target, *names: str) -> dict[str, int]:
    """The Tcp line's counters in /proc/net/snmp, by name."""
    lines = [line.split() for line in target.sh("cat /proc/net/snmp").splitlines() if line.startswith("Tcp:")]
    return {name: int(value) for name, value in zip(lines[0][1:], lines[1][1:]) if name in names}


def test_tcp_counters_are_shared_by_both_families(target, hosts6, hosts):
    """TCP's MIB is one per namespace, not per family (tcp_statistics; /proc/net/snmp6
    has no Tcp6 line): an IPv6 and an IPv4 connection to the dual-stack listener are two
    PassiveOpens and two CurrEstab, the IPv6 RST to a closed port an OutRsts."""
    h0 = hosts6[0]
    listener = _listener(target, "::")
    Peer6(h0, PEER_PORT, DUT_PORT).connect(target)
    Peer(h0, PEER_PORT + 1, DUT_PORT).connect(target)
    Peer6(h0, PEER_PORT + 2, 9999).send(target, "S", options=SYN_OPTIONS, window=INITIAL_WINDOW)
    target.frame_left(h0.port, "the RST")
    assert listener.info().recv_q == 2
    assert _tcp_mib(target, "PassiveOpens", "CurrEstab", "OutRsts", "AttemptFails") == \
        {"PassiveOpens": 2, "CurrEstab": 2, "OutRsts": 1, "AttemptFails": 0}


def test_with_syncookies_2_an_ipv6_syn_gets_a_cookie_whose_ack_makes_the_connection(target, hosts6):
    """tcp_syncookies 2: cookie_v6_init_sequence() for every SYN, no request sock kept;
    a SYN without timestamps leaves the cookie nothing to carry SACK and window scale
    in, so the SYN-ACK offers MSS alone; the ACK's cookie (cookie_v6_check()) makes the
    child, with the msstab6 entry for the peer's 1460 (1440). SyncookiesSent and
    SyncookiesRecv count it."""
    h0 = hosts6[0]
    target.sh("sysctl -w net.ipv4.tcp_syncookies=2")
    listener = _listener(target, h0.dut_ip6)
    peer = Peer6(h0, PEER_PORT, DUT_PORT, window=64000)  # no window scale: the peer's windows are as sent
    peer.connect(target, window=INITIAL_WINDOW6, options=[("MSS", 1440)])
    conn, address = listener.accept()
    assert address == (h0.ip6, PEER_PORT)
    assert conn.info().mss == 1440
    peer.send(target, "PA", b"cookie")
    peer.expect(target, "A", window=INITIAL_WINDOW6 - 6)  # unscaled: less the 6 bytes held
    assert conn.recv(10) == b"cookie"
    netstat = [line.split() for line in target.sh("cat /proc/net/netstat").splitlines() if line.startswith("TcpExt:")]
    counters = dict(zip(netstat[0][1:], map(int, netstat[1][1:])))
    assert (counters["SyncookiesSent"], counters["SyncookiesRecv"], counters["SyncookiesFailed"]) == (1, 1, 0)


def test_ss_summary_counts_ipv6_sockets_in_the_ipv6_column(target, hosts6, hosts):
    """print_summary(): sockstat's TCP inuse is tcp_prot's (AF_INET sockets), sockstat6's
    TCP6 tcpv6_prot's: a dual-stack listener and its IPv6 connection are IPv6, the
    IPv4 listener IP."""
    h0 = hosts6[0]
    _listener(target, "::")
    target.socket("tcp", (h0.dut_ip, 8081)).listen(8)
    Peer6(h0, PEER_PORT, DUT_PORT).connect(target)
    rows = {line.split("\t")[0]: line.split()[1:] for line in target.sh("ss -s").splitlines() if "\t" in line}
    assert rows["TCP"] == ["3", "1", "2"]


def test_a_connect_to_a_v4_mapped_address_goes_over_ipv4(target, hosts6, hosts):
    """tcp_v6_connect() to ::ffff:10.0.0.2: ipv6_mapped and tcp_v4_connect(), so the SYN
    is Linux's IPv4 one (MSS 1460, DF); the handshake completes the AF_INET6 socket."""
    h0 = hosts6[0]
    sock = target.socket("tcp", family=AF_INET6)
    with pytest.raises(BlockingIOError):
        sock.connect((f"::ffff:{h0.ip}", 80))
    syn = Ether(target.frame_left(h0.port, "the SYN"))
    assert (syn[TCP].dport, syn[TCP].flags, dict(syn[TCP].options)["MSS"], syn.type) == (80, "S", 1460, 0x0800)
    server = Peer(h0, 80, syn[TCP].sport, seq=7000, ack=syn[TCP].seq + 1)
    server.send(target, "SA", options=SYN_OPTIONS, window=65535)
    server.expect(target, "A")
    assert sock.wait("connected", 1.0)
    assert (sock.info().state, sock.info().mss) == (TcpState.TCP_ESTABLISHED, 1460)


def test_time_wait_answers_a_retransmitted_fin_with_an_ack_from_the_time_wait_sock(target, hosts6):
    """tcp_timewait_state_process() -> tcp_v6_timewait_ack(): the peer's FIN again (its
    ACK lost) is acknowledged at the connection's sequence numbers and window, with the
    connection's flow label (the TIME_WAIT sock keeps its hash)."""
    h0 = hosts6[0]
    conn, peer = _accepted(target, h0)
    conn.close()
    fin = Ether(peer.expect(target, "FA"))
    peer.send(target, "FA")
    target.expect(h0.port, flowlabel_mask(peer.from_dut("A")))
    peer.seq -= 1
    peer.send(target, "FA")
    again = Ether(target.expect(h0.port, flowlabel_mask(peer.from_dut("A"))))
    target.expect_nothing()
    assert again[IPv6].fl == fin[IPv6].fl  # tw_txhash: the connection's flow label


def test_a_destination_unreachable_about_the_syn_fails_the_connect_with_its_errno(target, hosts6):
    """tcp_v6_err() for a socket in SYN_SENT: any error ends the handshake
    (tcp_done_with_error()), here no route (code 0) as ENETUNREACH, even though
    icmpv6_err_convert() calls it not fatal; nothing is retransmitted."""
    h0 = hosts6[0]
    sock = target.socket("tcp", (h0.dut_ip6, 50000), family=AF_INET6)
    with pytest.raises(BlockingIOError):
        sock.connect((h0.ip6, 80))
    syn = Ether(target.frame_left(h0.port, "the SYN"))
    target.send(h0.port, Ether(src=h0.mac, dst=h0.port.mac) / IPv6(src=h0.ip6, dst=h0.dut_ip6) /
                ICMPv6DestUnreach(code=0) / quoted6(syn))
    with pytest.raises(OSError) as refused:
        sock.wait("connected", 1.0)
    assert refused.value.errno == 101  # ENETUNREACH
    assert sock.info().state == TcpState.TCP_CLOSE
    target.expect_nothing()


def test_ss_info_of_an_ipv6_connection_shows_its_mss_pmtu_and_windows(target, hosts6):
    """`ss -6 -tmi` (tcp_get_info() over sock_diag): the send buffer tcp_sndbuf_expand()
    sized for MSS 1440, pmtu 1500, advmss 1440, the peer's window and the receive side's
    rcv_space (10 MSS) and rcv_ssthresh; the fields the handshake's real RTT moves are
    left out."""
    h0 = hosts6[0]
    _listener(target, "::")
    Peer6(h0, PEER_PORT, DUT_PORT).connect(target)
    details = target.sh("ss -6 -tmiH").splitlines()[1].split()
    wanted = ("skmem:", "wscale:", "mss:", "pmtu:", "rcvmss:", "advmss:", "cwnd:", "rcv_space:", "rcv_ssthresh:",
              "snd_wnd:")
    assert [field for field in details if field.startswith(wanted)] == [
        "skmem:(r0,rb131072,t0,tb46080,f0,w0,o0,bl0,d0)", "wscale:7,10", "mss:1440", "pmtu:1500", "rcvmss:536",
        "advmss:1440", "cwnd:10", "rcv_space:14400", "rcv_ssthresh:64096", "snd_wnd:64256"]
