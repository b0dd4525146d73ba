"""`ss` on the mock (cmd/ss.py over ipv4/inet_diag.py): sockets put in the
namespace's TCP tables by hand (and one the kernel's socket calls made), and
the text iproute2 6.1's ss prints for them, written out: the layouts are those
the real ss printed on this machine for sockets in the same states."""
from __future__ import annotations

from socket import AF_INET
from types import SimpleNamespace

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from harness.mockkernel.ipv4 import tcp
from harness.mockkernel.ipv4.tcp_sock import (TCP_ESTABLISHED, TCP_LISTEN, TCP_SYN_SENT, TCP_TIME_WAIT, TcpSock)
from harness.mockkernel.core.snmp import SNMP4_TCP_LIST
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.target import MockTarget, sh
from harness.target import CommandError

LOOPBACK, ANY = 0x7F000001, 0


def _kernel(*socks) -> Kernel:
    """A DUT whose TCP tables hold `socks`: listeners by port, the others by 4-tuple."""
    k = Kernel()
    listening, ehash = {}, {}
    for sk in socks:
        if sk.state == TCP_LISTEN:
            listening.setdefault(sk.sport, []).append(sk)
        else:
            ehash[(sk.rcv_saddr, sk.sport, sk.daddr, sk.dport)] = sk
    k.tcp_hashinfo = SimpleNamespace(listening=listening, ehash=ehash)
    return k


def _listener(k_net, addr: int, port: int, backlog: int, queued: int = 0) -> TcpSock:
    sk = TcpSock(k_net, TCP_LISTEN, rcv_saddr=addr, saddr=addr, sport=port, sk_max_ack_backlog=backlog,
                 sk_rcvbuf=131072, sk_sndbuf=16384)
    sk.accept_queue.extend(object() for _ in range(queued))
    return sk


def _time_wait(port: int):
    return SimpleNamespace(state=TCP_TIME_WAIT, tw_substate=TCP_TIME_WAIT, family=AF_INET, rcv_saddr=LOOPBACK,
                           sport=port, daddr=LOOPBACK, dport=5000)


def test_listeners_show_their_accept_queue_and_backlog_in_the_queue_columns():
    k = _kernel()
    k.tcp_hashinfo.listening = {5000: [_listener(k, LOOPBACK, 5000, 8, queued=1)],
                                5001: [_listener(k, ANY, 5001, 3)]}
    assert sh(k, "ss -tln".split()) == (
        "State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n"
        "LISTEN 1      8          127.0.0.1:5000      0.0.0.0:*          \n"
        "LISTEN 0      3            0.0.0.0:5001      0.0.0.0:*          \n")


def _syn_sent(k) -> TcpSock:
    return TcpSock(k, TCP_SYN_SENT, rcv_saddr=0x0A630002, saddr=0x0A630002, sport=60378, daddr=0x0A630001,
                   dport=80, write_seq=1001, snd_una=1000, snd_nxt=1001)


def test_all_states_share_the_columns_the_longest_field_makes():
    k = _kernel()
    k.tcp_hashinfo.listening = {5000: [_listener(k, LOOPBACK, 5000, 8)]}
    k.tcp_hashinfo.ehash = {1: _time_wait(52646), 2: _syn_sent(k)}
    assert sh(k, "ss -tan".split()) == (
        "State     Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess\n"
        "LISTEN    0      8          127.0.0.1:5000       0.0.0.0:*          \n"
        "TIME-WAIT 0      0          127.0.0.1:52646    127.0.0.1:5000       \n"
        "SYN-SENT  0      1          10.99.0.2:60378    10.99.0.1:80         \n")


def test_the_default_shows_connected_sockets_and_one_state_drops_the_state_column():
    k = _kernel()
    k.tcp_hashinfo.listening = {5000: [_listener(k, LOOPBACK, 5000, 8)]}
    k.tcp_hashinfo.ehash = {1: _time_wait(52646), 2: _syn_sent(k)}
    assert sh(k, "ss -tn".split()) == (
        "State    Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess\n"
        "SYN-SENT 0      1          10.99.0.2:60378    10.99.0.1:80         \n")
    assert sh(k, "ss -tin state time-wait".split()) == (
        "Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess\n"
        "0      0          127.0.0.1:52646    127.0.0.1:5000\n\t     \n")
    assert sh(k, "ss -tHn state syn-sent".split()) == "0      1      10.99.0.2:60378 10.99.0.1:80\n"
    assert sh(k, "ss -tn state closing".split()) == "Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n"
    assert sh(k, "ss -tHn state closing".split()) == ""
    assert sh(k, "ss -tn exclude all".split()) == sh(k, "ss -tn".split())  # no state left: the default


def _established(k) -> TcpSock:
    """A connection 0.3 s after it last sent and received, as tcp_get_info() reads it."""
    sk = TcpSock(k, TCP_ESTABLISHED, rcv_saddr=LOOPBACK, saddr=LOOPBACK, sport=46726, daddr=LOOPBACK, dport=5000,
                 snd_una=3001, snd_nxt=3001, write_seq=3001, rcv_nxt=701, copied_seq=1, mss_cache=1448,
                 advmss=1460, icsk_pmtu_cookie=1500, srtt_us=21 << 3, mdev_us=12 << 2, rto=0.204,
                 bytes_acked=3001, bytes_received=700, segs_out=3, segs_in=2, data_segs_out=1, delivered=2,
                 rcv_ssthresh=65495, snd_wnd=100352, lsndtime=9.7, rcv_tstamp=9.7, sk_rcvbuf=131072,
                 sk_sndbuf=87040, rmem_alloc=3832, sk_forward_alloc=264)
    sk.rcvq_space.space = 65495
    sk.icsk_ack.ato, sk.icsk_ack.rcv_mss, sk.icsk_ack.lrcvtime = 0.04, 536, 9.7
    sk.rx_opt.wscale_ok, sk.rx_opt.snd_wscale, sk.rx_opt.rcv_wscale = True, 7, 9
    sk.icsk_ca_ops = SimpleNamespace(name="cubic")
    return sk


def test_info_prints_tcp_get_info_fields_that_are_set_in_ss_order():
    k = _kernel()
    k.tcp_hashinfo.ehash = {1: _established(k)}
    k.clock.advance(10.0)
    # send: cwnd 10 * mss 1448 * 8 bits over 21 us; last*: (2500 - 2425) jiffies of 4 ms
    details = ("\t cubic wscale:7,9 rto:204 rtt:0.021/0.012 ato:40 mss:1448 pmtu:1500 rcvmss:536 advmss:1460 "
               "cwnd:10 bytes_acked:3001 bytes_received:700 segs_out:3 segs_in:2 data_segs_out:1 "
               "send 5516190476bps lastsnd:300 lastrcv:300 lastack:300 delivered:2 app_limited rcv_space:65495 "
               "rcv_ssthresh:65495 snd_wnd:100352")
    assert sh(k, "ss -tin".split()) == (
        "State Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess\n"
        "ESTAB 700    0          127.0.0.1:46726    127.0.0.1:5000\n" + details + "\n")
    assert "send 5.52Gbps " in sh(k, "ss -ti".split())
    memory = "\t skmem:(r3832,rb131072,t0,tb87040,f264,w0,o0,bl0,d0)"
    assert sh(k, "ss -tnm".split()).splitlines()[2] == memory
    assert sh(k, "ss -tinm".split()).splitlines()[2] == memory + details[1:]


def test_a_listener_shows_its_congestion_control_and_cwnd_only():
    k = _kernel()
    listener = _listener(k, LOOPBACK, 5000, 8)
    listener.icsk_ca_ops = SimpleNamespace(name="cubic")
    k.tcp_hashinfo.listening = {5000: [listener]}
    assert sh(k, "ss -tlinm".split()) == (
        "State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n"
        "LISTEN 0      8          127.0.0.1:5000      0.0.0.0:*   \n"
        "\t skmem:(r0,rb131072,t0,tb16384,f0,w0,o0,bl0,d0) cubic cwnd:10\n")


def test_ports_are_service_names_without_n():
    k = _kernel(_syn_sent(Kernel()))
    assert sh(k, "ss -t".split()).splitlines()[1].split()[-1] == "10.99.0.1:http"


@pytest.mark.parametrize("argv, message", [
    ("ss -tq", "ss: invalid option -- 'q'\nUsage: ss [ OPTIONS ]\n"),
    ("ss --bogus", "ss: unrecognized option '--bogus'\nUsage: ss [ OPTIONS ]\n"),
    ("ss -tn state foo", "ss: wrong state name: foo"),
    ("ss -tn state", 'Command line is not complete. Try option "help"'),
])
def test_what_ss_does_not_know_is_its_own_error_with_status_255(argv, message):
    with pytest.raises(CommandError) as info:
        sh(_kernel(), argv.split())
    assert info.value.returncode == 255
    assert str(info.value).split("failed: ", 1)[1].startswith(message)


@pytest.mark.parametrize("argv, named", [("ss -tp", "ss -p"), ("ss -to", "ss -o"), ("ss -u", "ss -u"),
                                         ("ss --tos -t", "ss --tos"), ("ss -tn sport = :80", "sport = :80"),
                                         ("ss -n", "ss without -t")])
def test_what_ss_knows_but_the_mock_does_not_model_is_named(argv, named):
    with pytest.raises(CommandError, match="not modelled") as info:
        sh(_kernel(), argv.split())
    assert named in str(info.value)


def test_summary_counts_the_namespaces_tables_and_current_established():
    k = _kernel()
    k.tcp_hashinfo.listening = {5000: [_listener(k, LOOPBACK, 5000, 8)]}
    k.tcp_hashinfo.ehash = {1: _time_wait(52646), 2: _established(k)}
    k.mib.tcp_statistics[SNMP4_TCP_LIST.index("CurrEstab")] = 1
    assert sh(k, "ss -s".split()) == (
        "Total: 2\n"
        "TCP:   3 (estab 1, closed 1, orphaned 0, timewait 1)\n\n"
        "Transport Total     IP        IPv6\n"
        "RAW\t  0         0         0        \n"
        "UDP\t  0         0         0        \n"
        "TCP\t  2         2         0        \n"
        "INET\t  2         2         0        \n"
        "FRAG\t  0         0         0        \n\n")


def test_a_request_sock_of_the_kernels_own_tables_is_listed_as_syn_recv():
    """A listener made with the socket calls and a SYN from h0: the request sock
    tcp_conn_request() put in the established table shows as SYN-RECV."""
    target = MockTarget()
    port = target.ports[0]
    target.sh("ip addr add 10.0.0.1/24 dev p0")
    target.sh(f"ip neigh replace 10.0.0.2 lladdr {port.peer_mac} dev p0 nud permanent")
    listener = tcp.tcp_sock_create(target.kernel)
    tcp.inet_bind(listener, 0x0A000001, 8080)
    tcp.inet_listen(listener, 5)
    target.send(port, Ether(src=port.peer_mac, dst=port.mac) / IP(src="10.0.0.2", dst="10.0.0.1")
                / TCP(sport=40000, dport=8080, flags="S", seq=1000, window=65535, options=[("MSS", 1400)]))
    assert target.sh("ss -tan state syn-recv") == (
        "Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
        "0      0           10.0.0.1:8080     10.0.0.2:40000       \n")
