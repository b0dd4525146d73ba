"""TCP's socket (include/linux/tcp.h struct tcp_sock, include/net/inet_connection_sock.h,
include/net/sock.h), the TCP states and include/net/tcp.h's sequence arithmetic:
what every tcp_* module imports. The socket calls are tcp.py's (net/ipv4/tcp.c).

`TcpSock` flattens struct sock, inet_sock, inet_connection_sock and tcp_sock into
one object whose fields keep the kernel's names (sk_rcvbuf, icsk_ack.ato,
rx_opt.snd_wscale, snd_una, rcv_nxt...). `family` is sk_family (AF_INET or
AF_INET6: the socket the application opened) and `icsk_af_ops` the network
protocol it talks (include/net/inet_connection_sock.h struct
inet_connection_sock_af_ops: ipv4_specific in tcp_ipv4.py, ipv6_specific and
ipv6_mapped in ipv6/tcp_ipv6.py); the addresses are that protocol's: integers
over IPv4 (an AF_INET6 socket's v4-mapped connection too), 16 bytes over IPv6. Sequence numbers are u32 and compared
with before()/after() as include/net/tcp.h does. `TcpSkb` is an skb on a TCP
queue with its struct tcp_skb_cb; `RequestSock` is struct tcp_request_sock, a
connection in the listener's SYN queue. Times are the namespace clock's seconds.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.mockkernel.clock import Timer
from harness.mockkernel.core.snmp import SNMP4_TCP_LIST
from harness.mockkernel.ipv4.inet_hashtables import inet_put_port, inet_unhash
from harness.mockkernel.ipv4.tcp_states import (TCP_CLOSE, TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED,
                                                TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_LISTEN,
                                                TCP_NEW_SYN_RECV, TCP_SYN_RECV, TCP_SYN_SENT, TCP_TIME_WAIT,
                                                TcpState)
from harness.mockkernel.wire.ipv4 import ip_str
from harness.mockkernel.wire.ipv6 import addr_str

AF_INET, AF_INET6 = 2, 10


TCP_MIB_ATTEMPTFAILS = SNMP4_TCP_LIST.index("AttemptFails")
TCP_MIB_ESTABRESETS = SNMP4_TCP_LIST.index("EstabResets")
TCP_MIB_CURRESTAB = SNMP4_TCP_LIST.index("CurrEstab")
# sk_userlocks: SO_SNDBUF / SO_RCVBUF fixed the buffer (no autotuning); bind() chose the port
SOCK_SNDBUF_LOCK, SOCK_RCVBUF_LOCK, SOCK_BINDPORT_LOCK = 1, 2, 8
TCP_INIT_CWND = 10

# sk->sk_shutdown bits (include/net/sock.h)
RCV_SHUTDOWN, SEND_SHUTDOWN = 1, 2
SHUTDOWN_MASK = RCV_SHUTDOWN | SEND_SHUTDOWN

# icsk_ack.pending bits (include/net/inet_connection_sock.h enum inet_csk_ack_state_t)
ICSK_ACK_SCHED, ICSK_ACK_TIMER, ICSK_ACK_PUSHED, ICSK_ACK_PUSHED2, ICSK_ACK_NOW = 1, 2, 4, 8, 16

# icsk_pending: which event the retransmit timer stands for (ICSK_TIME_*)
ICSK_TIME_RETRANS, ICSK_TIME_DACK, ICSK_TIME_PROBE0, ICSK_TIME_LOSS_PROBE, ICSK_TIME_REO_TIMEOUT = 1, 2, 3, 5, 6

# TCP_SKB_CB(skb)->sacked bits (include/net/tcp.h)
TCPCB_SACKED_ACKED, TCPCB_SACKED_RETRANS, TCPCB_LOST, TCPCB_EVER_RETRANS = 0x01, 0x02, 0x04, 0x80


def before(seq1: int, seq2: int) -> bool:
    """include/net/tcp.h before(): seq1 precedes seq2 modulo 2**32."""
    return ((seq1 - seq2) & 0xFFFFFFFF) >= 0x80000000


def after(seq1: int, seq2: int) -> bool:
    return before(seq2, seq1)


def between(seq1: int, seq2: int, seq3: int) -> bool:
    """seq2 <= seq1 <= seq3 modulo 2**32."""
    return ((seq3 - seq2) & 0xFFFFFFFF) >= ((seq1 - seq2) & 0xFFFFFFFF)


@dataclass(slots=True)
class TcpSkb:
    """An skb on a TCP queue and its struct tcp_skb_cb: [seq, end_seq) (SYN and
    FIN count one each), the flags, the payload, and what the sender tracks."""

    seq: int
    end_seq: int
    tcp_flags: int
    data: bytes = b""
    sacked: int = 0  # TCPCB_* bits
    skb_mstamp: float = 0.0  # when it was last sent
    first_tx_mstamp: float = 0.0
    delivered_mstamp: float = 0.0
    tx_delivered: int = 0  # tp->delivered when it was sent (tcp_rate_skb_sent())
    tx_app_limited: bool = False  # the application had nothing more to send when it left
    retrans_count: int = 0
    truesize: int = 0  # what it charges to sk_rmem_alloc / sk_wmem_queued
    tailroom: int = 0  # a received skb's skb_tailroom(): room for later segments' bytes


@dataclass(slots=True)
class TcpOptionsReceived:
    """struct tcp_options_received (tp->rx_opt)."""

    ts_recent_stamp: float = 0.0  # when ts_recent was last updated
    ts_recent: int = 0  # the peer's TSval to echo
    rcv_tsval: int = 0  # the last segment's TSval
    rcv_tsecr: int = 0  # and its TSecr
    saw_tstamp: bool = False  # the last segment had a timestamp
    tstamp_ok: bool = False  # timestamps were negotiated
    dsack: bool = False  # a D-SACK is to be sent
    wscale_ok: bool = False
    sack_ok: bool = False
    snd_wscale: int = 0  # the peer's window scale: shift of the windows it sends
    rcv_wscale: int = 0  # ours: shift of the windows we send
    num_sacks: int = 0  # SACK blocks in selective_acks
    user_mss: int = 0  # TCP_MAXSEG
    mss_clamp: int = 0  # the peer's MSS option, capped by user_mss


@dataclass(slots=True)
class IcskAck:
    """inet_connection_sock.icsk_ack: delayed-ACK state."""

    pending: int = 0  # ICSK_ACK_* bits
    quick: int = 0  # ACKs still to send in quickack mode
    pingpong: int = 0  # interactive session: delay ACKs
    retry: int = 0
    ato: float = 0.0  # the delayed-ACK timeout
    lrcv_flowlabel: int = 0
    timeout: float = 0.0  # when the delayed ACK is due
    lrcvtime: float = 0.0  # when data was last received
    last_seg_size: int = 0
    rcv_mss: int = 0  # the peer's MSS as guessed from what it sends


@dataclass(slots=True)
class RcvRttEst:
    """tp->rcv_rtt_est: receiver-side RTT for autotuning."""

    rtt_us: int = 0
    seq: int = 0
    time: float = 0.0


@dataclass(slots=True)
class RcvqSpace:
    """tp->rcvq_space: what tcp_rcv_space_adjust() measures per RTT."""

    space: int = 0
    seq: int = 0
    time: float = 0.0


@dataclass(slots=True)
class TcpRack:
    """struct tcp_rack (include/linux/tcp.h): RACK's view of the most recently
    sent segment that was delivered."""

    mstamp: float = 0.0  # when that segment was (last) sent
    rtt_us: int = 0  # its RTT
    end_seq: int = 0
    reo_wnd_steps: int = 1
    advanced: bool = False  # mstamp moved on this ACK


@dataclass(eq=False, repr=False)
class TcpSock:
    """struct sock + inet_sock + inet_connection_sock + tcp_sock."""

    net: object
    state: TcpState = TCP_CLOSE  # sk_state
    family: int = AF_INET  # sk_family
    sk_prot: object | None = None  # struct proto: tcp_prot or tcpv6_prot (its connect())
    icsk_af_ops: object | None = None  # the network protocol's calls (ipv4_specific, ipv6_specific, ipv6_mapped)
    ipv6only: bool = False  # IPV6_V6ONLY (sk_ipv6only): an AF_INET6 socket that takes no IPv4
    sk_txhash: int = 0  # the flow's hash: an IPv6 socket's flow label comes from it (ip6_make_flowlabel())
    mtu_info: int = 0  # the MTU of the last packet too big (tcp_v6_err())
    # inet_sock: addresses (ints over IPv4, 16 bytes over IPv6) and ports (host order)
    saddr: int | bytes = 0  # inet_saddr / np->saddr
    rcv_saddr: int | bytes = 0  # inet_rcv_saddr / sk_v6_rcv_saddr: the bound address
    daddr: int | bytes = 0
    sport: int = 0  # inet_sport
    dport: int = 0
    dst: object | None = None  # sk_dst_cache: the route (ipv4/route.py Rtable)
    # send sequence space
    snd_una: int = 0
    snd_nxt: int = 0
    snd_wnd: int = 0  # the peer's window, scaled
    max_window: int = 0
    snd_wl1: int = 0  # the seq of the segment that last updated snd_wnd
    snd_up: int = 0
    write_seq: int = 0  # the end of what the application wrote
    pushed_seq: int = 0
    notsent_lowat: int = 0
    # receive sequence space
    rcv_nxt: int = 0
    rcv_wnd: int = 0  # the window we advertised
    rcv_wup: int = 0  # rcv_nxt when rcv_wnd was last advertised
    copied_seq: int = 0  # the head of unread data
    rcv_ssthresh: int = 0
    window_clamp: int = 0
    rcv_tstamp: float = 0.0  # when the last ACK was received
    lsndtime: float = 0.0  # when data was last sent
    rcv_rtt_est: RcvRttEst = field(default_factory=RcvRttEst)
    rcvq_space: RcvqSpace = field(default_factory=RcvqSpace)
    rx_opt: TcpOptionsReceived = field(default_factory=TcpOptionsReceived)
    selective_acks: list = field(default_factory=list)  # the SACK blocks we send: [start, end) pairs
    duplicate_sack: list = field(default_factory=list)  # the D-SACK block to send first
    tsoffset: int = 0  # added to our clock in TSval (secure_tcp_ts_off())
    pred_flags: tuple[int, int] | None = None  # header prediction: (header length, window field), or off
    compressed_ack: int = 0  # duplicate ACKs held back while out-of-order data arrives
    compressed_ack_rcv_nxt: int = 0
    dup_ack_counter: int = 0  # duplicate ACKs sent at once for compressed_ack_rcv_nxt (3 at most)
    compressed_ack_timer: Timer | None = None
    last_oow_ack_time: float | None = None  # the last answer to an out-of-window segment
    rcv_rtt_last_tsecr: int = 0
    linger2: int = 0  # TCP_LINGER2: seconds in FIN_WAIT2 for an orphan, 0: tcp_fin_timeout
    keepalive_time: int = 0  # TCP_KEEPIDLE seconds, 0: tcp_keepalive_time (keepalive_time_when())
    keepalive_intvl: int = 0  # TCP_KEEPINTVL seconds, 0: tcp_keepalive_intvl (keepalive_intvl_when())
    keepalive_probes: int = 0  # TCP_KEEPCNT, 0: tcp_keepalive_probes (keepalive_probes())
    # segment sizes
    mss_cache: int = 0  # the current send MSS
    advmss: int = 0  # the MSS we advertise
    icsk_pmtu_cookie: int = 0
    # congestion control and RTT (A2's, tcp_output.py/tcp_recovery.py/tcp_cong.py)
    snd_cwnd: int = 10  # TCP_INIT_CWND
    snd_cwnd_cnt: int = 0
    snd_cwnd_stamp: float = 0.0
    snd_ssthresh: int = 0x7FFFFFFF  # TCP_INFINITE_SSTHRESH
    prior_ssthresh: int = 0
    high_seq: int = 0
    srtt_us: int = 0  # smoothed RTT << 3
    mdev_us: int = 0
    mdev_max_us: int = 0
    rttvar_us: int = 0
    rtt_seq: int = 0
    rto: float = 1.0  # icsk_rto, TCP_TIMEOUT_INIT
    backoff: int = 0  # icsk_backoff
    retransmits: int = 0  # icsk_retransmits
    probes_out: int = 0  # icsk_probes_out
    total_retrans: int = 0
    packets_out: int = 0
    sacked_out: int = 0
    lost_out: int = 0
    retrans_out: int = 0
    delivered: int = 0
    bytes_acked: int = 0
    bytes_received: int = 0
    segs_in: int = 0
    segs_out: int = 0
    data_segs_in: int = 0
    data_segs_out: int = 0
    icsk_ca_state: int = 0  # TCP_CA_Open
    icsk_ca_ops: object | None = None  # struct tcp_congestion_ops (tcp_cong.py)
    ca_priv: object | None = None  # inet_csk_ca(sk): the module's private state
    snd_cwnd_clamp: int = 0xFFFFFFFF
    prior_cwnd: int = 0  # cwnd when the last reduction began (what undo restores)
    is_cwnd_limited: bool = False  # cwnd was the limit in the last window (tcp_cwnd_validate())
    max_packets_out: int = 0
    # the send side's own (tcp_output.py, tcp_recovery.py, tcp_timer.py)
    inet_id: int = 0  # the IP ID of the next segment (inet_sk(sk)->inet_id)
    tos: int = 0  # inet->tos
    tcp_header_len: int = 20  # the header and the options every segment carries (32 with timestamps)
    scaling_ratio: int = 128  # tp->scaling_ratio: window per 256 bytes of buffer (TCP_DEFAULT_SCALING_RATIO)
    snd_sml: int = 0  # the end of the last small segment sent (tcp_minshall_update(), Nagle)
    retrans_stamp: float = 0.0  # when the first retransmission of this episode was sent (0: none)
    undo_marker: int = 0
    undo_retrans: int = -1
    lost: int = 0  # tp->lost: segments ever marked lost
    reordering: int = 3  # sysctl_tcp_reordering, copied at tcp_init_sock()
    reord_seen: int = 0
    tlp_high_seq: int = 0  # snd_nxt when a tail loss probe went out (0: none outstanding)
    tlp_retrans: bool = False  # that probe was a retransmission
    frto: bool = False  # F-RTO (RFC 5682) runs on this loss episode
    rack: TcpRack = field(default_factory=TcpRack)
    rtt_min: int = 0xFFFFFFFF  # tcp_min_rtt(), us: the windowed minimum RTT (~0 until a sample)
    rtt_min_stamp: float = 0.0
    bytes_sent: int = 0  # payload sent, retransmissions included
    bytes_retrans: int = 0
    dsack_dups: int = 0  # D-SACK blocks received
    sk_pacing_rate: int = 0xFFFFFFFFFFFFFFFF  # bytes/s (~0: unlimited until tcp_update_pacing_rate())
    sk_max_pacing_rate: int = 0xFFFFFFFFFFFFFFFF  # SO_MAX_PACING_RATE
    app_limited: int = 0xFFFFFFFF  # tp->app_limited: delivered + in flight when the application went idle
    rate_app_limited: bool = True  # the last delivery sample was application-limited
    prr_delivered: int = 0
    prr_out: int = 0
    cwnd_usage_seq: int = 0
    highest_sack: int | None = None  # the end_seq of the highest SACKed segment (tcp_highest_sack_seq())
    icsk_syn_retries: int = 0  # TCP_SYNCNT (0: tcp_syn_retries)
    icsk_probes_tstamp: float = 0.0
    sk_nospace: bool = False  # SOCK_NOSPACE: a writer found the send buffer full
    # queues: TcpSkb each, in sequence order
    write_queue: deque = field(default_factory=deque)  # not yet sent
    rtx_queue: deque = field(default_factory=deque)  # sent, not yet acknowledged (an rb-tree in the kernel)
    out_of_order_queue: list = field(default_factory=list)  # received beyond rcv_nxt, sorted by seq
    receive_queue: deque = field(default_factory=deque)  # in order, not yet read
    # struct sock: buffers and accounting
    sk_rcvbuf: int = 0
    sk_sndbuf: int = 0
    sk_userlocks: int = 0  # SOCK_RCVBUF_LOCK / SOCK_SNDBUF_LOCK / SOCK_BINDPORT_LOCK
    sk_reuse: bool = False  # SO_REUSEADDR
    sk_wmem_queued: int = 0
    rmem_alloc: int = 0  # sk_rmem_alloc
    sk_forward_alloc: int = 0
    sk_drops: int = 0
    nonagle: int = 0  # TCP_NAGLE_OFF (TCP_NODELAY) / TCP_NAGLE_CORK / TCP_NAGLE_PUSH bits
    linger: tuple[bool, int] = (False, 0)  # SO_LINGER: (l_onoff, l_linger)
    err: int = 0  # sk_err: SO_ERROR
    err_soft: int = 0
    shutdown: int = 0  # sk_shutdown: RCV_SHUTDOWN | SEND_SHUTDOWN
    done: bool = False  # SOCK_DEAD: the application has closed it
    sock_done: bool = False  # SOCK_DONE: the peer's FIN came
    connecting: bool = False  # sock->state SS_CONNECTING: connect() started and not yet reported
    keepalive: bool = False  # SOCK_KEEPOPEN
    # inet_connection_sock
    icsk_ack: IcskAck = field(default_factory=IcskAck)
    icsk_pending: int = 0  # ICSK_TIME_* the retransmit timer is armed for
    icsk_timeout: float = 0.0
    # the timers, made by tcp_init_xmit_timers() (tcp_timer.py, inet_csk_init_xmit_timers())
    icsk_retransmit_timer: Timer | None = None
    icsk_delack_timer: Timer | None = None
    sk_timer: Timer | None = None  # keepalive; FIN_WAIT2 on an orphan
    # listener: the SYN queue (request socks by (raddr, rport)) and the accept queue
    sk_max_ack_backlog: int = 0
    syn_queue: dict = field(default_factory=dict)  # icsk_accept_queue's qlen, by (raddr, rport)
    accept_queue: deque = field(default_factory=deque)  # established children waiting for accept()
    parent: TcpSock | None = None  # the listener a child waits in the accept queue of
    last_synq_overflow: float | None = None  # when a SYN cookie was last sent (tcp_synq_overflow())

    def __repr__(self) -> str:
        return (f"TcpSock({self.state.name} {sock_addr_str(self.rcv_saddr)}:{self.sport}"
                f" -> {sock_addr_str(self.daddr)}:{self.dport})")


def sock_addr_str(addr: int | bytes) -> str:
    """An address of a socket's protocol: dotted quad, or IPv6 in brackets."""
    return f"[{addr_str(addr)}]" if addr.__class__ is bytes else ip_str(addr)


@dataclass(eq=False)
class RequestSock:
    """struct tcp_request_sock: a connection in a listener's SYN queue, after
    the SYN and before the ACK that completes it."""

    listener: TcpSock
    ir_loc_addr: int | bytes
    ir_rmt_addr: int | bytes
    ir_num: int  # the local port
    ir_rmt_port: int
    rcv_isn: int  # the peer's ISN
    snt_isn: int  # ours
    mss: int  # the peer's MSS option (536 without one)
    rsk_rcv_wnd: int = 0
    rsk_window_clamp: int = 0
    snd_wscale: int = 0
    rcv_wscale: int = 0
    wscale_ok: bool = False
    tstamp_ok: bool = False
    sack_ok: bool = False
    ts_recent: int = 0
    ts_off: int = 0
    snt_synack: float | None = None  # when the last SYN-ACK was sent
    snt_tsval_first: int = 0  # the TSval of the first SYN-ACK and of the last (tcp_make_synack() sets them)
    snt_tsval_last: int = 0
    cookie_tsval: int | None = None  # the SYN-ACK's TSval (before ts_off), options in its low bits
    acked: bool = False  # the handshake's ACK came while the accept queue was full
    num_retrans: int = 0
    num_timeout: int = 0
    tos: int = 0
    txhash: int = 0  # the SYN-ACK's flow hash (net_tx_rndhash()), its IPv6 flow label
    rsk_timer: Timer | None = None  # SYN-ACK retransmits (reqsk_timer_handler())
    cookie_ts: bool = False  # answered with a SYN cookie: no state kept (syncookies.py)
    last_oow_ack_time: float | None = None
    rsk_ops: object | None = None  # tcp_request_sock_ops: how to answer for it (tcp_ipv4.py, ipv6/tcp_ipv6.py)
    state: TcpState = TCP_NEW_SYN_RECV


@dataclass(eq=False)
class TimewaitSock:
    """struct tcp_timewait_sock: what stays of a closed connection in TIME_WAIT
    (or an orphan's FIN_WAIT2, tw_substate) in the established table."""

    net: object
    tw_substate: TcpState
    rcv_saddr: int | bytes
    sport: int
    daddr: int | bytes
    dport: int
    tw_rcv_nxt: int
    tw_snd_nxt: int
    tw_rcv_wnd: int
    tw_rcv_wscale: int
    tw_ts_recent: int
    tw_ts_recent_stamp: float | None  # None: the connection did not use timestamps
    tw_ts_offset: int
    tw_entry_stamp: float  # when it entered (true) TIME_WAIT
    sk_reuse: bool
    family: int = AF_INET  # tw_family: the closed socket's sk_family
    ipv6only: bool = False  # tw_ipv6only
    tw_txhash: int = 0  # the connection's sk_txhash: its TIME_WAIT ACKs keep its IPv6 flow label
    tw_tclass: int = 0
    tw_timer: Timer | None = None
    last_oow_ack_time: float | None = None
    state: TcpState = TCP_TIME_WAIT  # sk_state of every inet_timewait_sock


@dataclass(frozen=True)
class InetConnectionSockAfOps:
    """struct inet_connection_sock_af_ops: what TCP calls of the network
    protocol a socket talks (`family` is that protocol's)."""

    name: str
    family: int
    net_header_len: int  # sizeof(struct iphdr) or sizeof(struct ipv6hdr): what the MSS leaves for it
    queue_xmit: Callable  # (sk, segment, why, summary, gso_size, gso_segs) -> 0 or errno
    rebuild_header: Callable  # (sk) -> the socket's route, or an errno
    conn_request: Callable  # (listener, cb): a SYN to a listener
    syn_recv_sock: Callable  # (listener, cb, req) -> the child of a completed handshake, or None


@dataclass(frozen=True)
class Proto:
    """struct proto: the socket calls that differ by family (tcp_prot, tcpv6_prot)."""

    name: str
    family: int
    af_ops: InetConnectionSockAfOps  # what init() (tcp_v4_init_sock(), tcp_v6_init_sock()) sets
    connect: Callable  # (sk, daddr, dport)
    any_addr: int | bytes  # INADDR_ANY or in6addr_any: the addresses of a new socket


def tcp_clock_ms(net) -> int:
    """tcp_clock_ms(): the millisecond clock TSval counts in (before tsoffset)."""
    return int(net.clock.now * 1000) & 0xFFFFFFFF


# new_state[]: the state close()/shutdown() moves to, and whether a FIN is to be sent (TCP_ACTION_FIN)
_NEW_STATE = {TCP_ESTABLISHED: (TCP_FIN_WAIT1, True), TCP_SYN_SENT: (TCP_CLOSE, False),
              TCP_SYN_RECV: (TCP_FIN_WAIT1, True), TCP_FIN_WAIT1: (TCP_FIN_WAIT1, False),
              TCP_FIN_WAIT2: (TCP_FIN_WAIT2, False), TCP_TIME_WAIT: (TCP_CLOSE, False),
              TCP_CLOSE: (TCP_CLOSE, False), TCP_CLOSE_WAIT: (TCP_LAST_ACK, True),
              TCP_LAST_ACK: (TCP_LAST_ACK, False), TCP_LISTEN: (TCP_CLOSE, False),
              TCP_CLOSING: (TCP_CLOSING, False), TCP_NEW_SYN_RECV: (TCP_CLOSE, False)}


def tcp_close_state(sk: TcpSock) -> bool:
    """net/ipv4/tcp.c tcp_close_state(): move to the closing state; True when
    a FIN is to be sent."""
    state, send_fin = _NEW_STATE[sk.state]
    tcp_set_state(sk, state)
    return send_fin


def tcp_set_state(sk: TcpSock, state: TcpState) -> None:
    """net/ipv4/tcp.c tcp_set_state(): CurrEstab counts ESTABLISHED and
    CLOSE_WAIT sockets; CLOSE from either is an EstabReset and unhashes the
    socket, which gives its port back unless bind() chose it."""
    oldstate = sk.state
    mib = sk.net.mib.tcp_statistics
    if state == TCP_ESTABLISHED:
        if oldstate != TCP_ESTABLISHED:
            mib[TCP_MIB_CURRESTAB] += 1
    elif state == TCP_CLOSE_WAIT:
        if oldstate == TCP_SYN_RECV:
            mib[TCP_MIB_CURRESTAB] += 1
    else:
        if state == TCP_CLOSE:
            if oldstate in (TCP_CLOSE_WAIT, TCP_ESTABLISHED):
                mib[TCP_MIB_ESTABRESETS] += 1
            hashinfo = sk.net.tcp_hashinfo
            inet_unhash(hashinfo, sk)
            if not sk.sk_userlocks & SOCK_BINDPORT_LOCK:
                inet_put_port(hashinfo, sk)
        if oldstate in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
            mib[TCP_MIB_CURRESTAB] -= 1
    sk.state = state


def tcp_done(sk: TcpSock) -> None:
    """net/ipv4/tcp.c tcp_done(): the connection is over. An attempt that had
    not finished counts as AttemptFails; the timers stop; an orphan is freed
    (inet_csk_destroy_sock(): its port goes back too)."""
    if sk.state in (TCP_SYN_SENT, TCP_SYN_RECV):
        sk.net.mib.tcp_statistics[TCP_MIB_ATTEMPTFAILS] += 1
    tcp_set_state(sk, TCP_CLOSE)
    for timer in (sk.icsk_retransmit_timer, sk.icsk_delack_timer, sk.sk_timer, sk.compressed_ack_timer):
        if timer is not None:
            timer.del_timer()  # tcp_clear_xmit_timers()
    sk.icsk_pending = 0
    sk.icsk_ack.pending = 0
    sk.shutdown = SHUTDOWN_MASK
    if sk.done:
        inet_put_port(sk.net.tcp_hashinfo, sk)


def inet_csk_reqsk_queue_drop(sk_listener: TcpSock, req: RequestSock) -> bool:
    """The request leaves the listener's SYN queue and the established table
    (its ACK came, the SYN-ACK timer gave up, or a RST killed it); False if
    it had already left."""
    if req.rsk_timer is not None:
        req.rsk_timer.del_timer()
    key = (req.ir_rmt_addr, req.ir_rmt_port)
    if sk_listener.syn_queue.get(key) is not req:
        return False
    del sk_listener.syn_queue[key]
    ehash = sk_listener.net.tcp_hashinfo.ehash
    ehash_key = (req.ir_loc_addr, req.ir_num, req.ir_rmt_addr, req.ir_rmt_port)
    if ehash.get(ehash_key) is req:
        del ehash[ehash_key]
    return True
