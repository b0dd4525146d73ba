"""TCP's socket calls (net/ipv4/tcp.c, af_inet.c inet_stream_ops): what an
application's non-blocking socket does, on top of the receive side
(tcp_ipv4.py, tcp_input.py) and the send side (tcp_output.py).

A call that would block raises BlockingIOError (EAGAIN, or EINPROGRESS from
connect()); errors are OSError with the kernel's errno, the socket's pending
error (sk_err: ECONNREFUSED, ECONNRESET, EPIPE, ETIMEDOUT) first, as
sock_error() reports and clears it. close() with unread data resets the
connection (TCPAbortOnClose), with SO_LINGER 0 too (TCPAbortOnData), else sends
the FIN; an orphan left in FIN_WAIT2 lives tcp_fin_timeout. listen()'s backlog
is capped by net.core.somaxconn. SO_RCVBUF and SO_SNDBUF double the value
asked for, up to net.core.rmem_max/wmem_max, and stop autotuning.
"""
from __future__ import annotations

import errno
import select
import socket
import struct

from harness.mockkernel.core.snmp import SNMP4_NET_LIST
from harness.mockkernel.core.sysctl import SOCK_MIN_RCVBUF, SOCK_MIN_SNDBUF
from harness.mockkernel.ipv4 import route, tcp_cong, tcp_output, tcp_timer
from harness.mockkernel.ipv4.inet_hashtables import inet_bind_conflict, inet_csk_get_port, inet_hash
from harness.mockkernel.ipv4.tcp_input import LINUX_MIB_TCPABORTONDATA, sk_mem_uncharge, tcp_rcv_space_adjust
from harness.mockkernel.ipv4.tcp_ipv4 import TCP_PROT, tcp_v4_connect  # noqa: F401 - benchmarks and tests connect with it
from harness.mockkernel.ipv4.tcp_minisocks import TCP_TIMEWAIT_LEN, tcp_fin_time, tcp_time_wait
from harness.mockkernel.ipv4.tcp_output import (MAX_TCP_WINDOW, TCP_MIN_MSS, TCP_MSS_DEFAULT, TCP_NAGLE_OFF,
                                                TCP_NAGLE_PUSH)
from harness.mockkernel.ipv4.tcp_sock import (AF_INET6, ICSK_ACK_PUSHED, ICSK_ACK_PUSHED2, ICSK_ACK_SCHED, RCV_SHUTDOWN,
                                              SEND_SHUTDOWN, SHUTDOWN_MASK, SOCK_BINDPORT_LOCK, SOCK_RCVBUF_LOCK,
                                              SOCK_SNDBUF_LOCK, TCP_CLOSE, TCP_CLOSE_WAIT, TCP_CLOSING,
                                              TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK,
                                              TCP_LISTEN, TCP_SYN_RECV, TCP_SYN_SENT, Proto, TcpSock,
                                              inet_csk_reqsk_queue_drop, tcp_close_state, tcp_done, tcp_set_state)
from harness.mockkernel.net import RTN_LOCAL
from harness.target import TcpInfo

LINUX_MIB_TCPABORTONCLOSE = SNMP4_NET_LIST.index("TCPAbortOnClose")
LINUX_MIB_TCPABORTONLINGER = SNMP4_NET_LIST.index("TCPAbortOnLinger")
TCP_FIN_TIMEOUT_MAX = 120  # seconds: the most TCP_LINGER2 takes
MAX_TCP_KEEPIDLE = 32767  # seconds: the most TCP_KEEPIDLE takes (include/net/tcp.h)
MAX_TCP_KEEPINTVL = 32767
MAX_TCP_KEEPCNT = 127


def tcp_sock_create(net, prot: Proto = TCP_PROT) -> TcpSock:
    """socket(AF_INET, SOCK_STREAM) (or AF_INET6 with tcpv6_prot) + tcp_init_sock():
    buffers from tcp_rmem[1] and tcp_wmem[1], MSS 536 until a route says more,
    the default congestion control; the family's icsk_af_ops (prot->init())."""
    sysctl = net.sysctl.values
    sk = TcpSock(net, family=prot.family, sk_prot=prot, icsk_af_ops=prot.af_ops, saddr=prot.any_addr,
                 rcv_saddr=prot.any_addr, daddr=prot.any_addr,
                 sk_rcvbuf=sysctl["net.ipv4.tcp_rmem"][1], sk_sndbuf=sysctl["net.ipv4.tcp_wmem"][1],
                 mss_cache=TCP_MSS_DEFAULT)
    sk.rx_opt.mss_clamp = TCP_MSS_DEFAULT
    sk.reordering = sysctl["net.ipv4.tcp_reordering"]
    tcp_timer.tcp_init_xmit_timers(sk)
    tcp_cong.tcp_assign_congestion_control(sk)
    return sk


def _sock_error(sk: TcpSock) -> int:
    """sock_error(): the pending error, cleared by reading it."""
    err, sk.err = sk.err, 0
    return err


def _raise(err: int, what: str) -> None:
    raise OSError(err, f"{what}: {errno.errorcode.get(err, err)}")


def inet_bind(sk: TcpSock, addr: int, port: int) -> None:
    """bind(): a local address (or 0.0.0.0) and a port free on it."""
    net = sk.net
    if addr:
        rt = route.ip_route_output(net, addr)
        if isinstance(rt, int) or rt.type is not RTN_LOCAL:
            _raise(errno.EADDRNOTAVAIL, f"bind: {addr:#x} is not a local address")
    if sk.state != TCP_CLOSE or sk.sport:
        _raise(errno.EINVAL, "bind: the socket is already bound")
    sk.rcv_saddr = sk.saddr = addr
    err = inet_csk_get_port(net, sk, port)
    if err:
        sk.rcv_saddr = sk.saddr = 0
        _raise(err, f"bind: port {port}")
    if port:
        sk.sk_userlocks |= SOCK_BINDPORT_LOCK


def inet_listen(sk: TcpSock, backlog: int) -> None:
    """listen(): the backlog capped by somaxconn (a negative one is somaxconn);
    an unbound socket takes a free port."""
    net = sk.net
    somaxconn = net.sysctl.values["net.core.somaxconn"]
    backlog = somaxconn if backlog < 0 or backlog > somaxconn else backlog
    if sk.state not in (TCP_CLOSE, TCP_LISTEN) or sk.dport:
        _raise(errno.EINVAL, "listen: the socket is connected")
    sk.sk_max_ack_backlog = backlog
    if sk.state == TCP_LISTEN:
        return
    if not sk.sport:
        err = inet_csk_get_port(net, sk, 0)
        if err:
            _raise(errno.EAGAIN, "listen: no free port")
    sk.state = TCP_LISTEN  # inet_sk_state_store() first: the conflict check sees a listener
    if inet_bind_conflict(net.tcp_hashinfo, sk, sk.sport):
        sk.state = TCP_CLOSE
        _raise(errno.EADDRINUSE, f"listen: port {sk.sport} is in use")
    inet_hash(net.tcp_hashinfo, sk)


def inet_accept(sk: TcpSock) -> TcpSock:
    """accept(): the oldest established child (whatever became of it since)."""
    if sk.state != TCP_LISTEN:
        _raise(errno.EINVAL, "accept: the socket is not listening")
    if not sk.accept_queue:
        raise BlockingIOError(errno.EAGAIN, "accept: no connection is waiting")
    child = sk.accept_queue.popleft()
    child.parent = None
    return child


def inet_stream_connect(sk: TcpSock, daddr: int, dport: int) -> None:
    """__inet_stream_connect() for a non-blocking socket: EINPROGRESS while
    the handshake runs (EALREADY when asked again), 0 once it is established
    (then EISCONN), its error when it failed."""
    state = sk.state
    if state == TCP_SYN_SENT or (state == TCP_SYN_RECV and sk.connecting):
        raise BlockingIOError(errno.EALREADY, "connect: the handshake is running")
    if sk.connecting:
        sk.connecting = False
        err = _sock_error(sk)
        if err:
            _raise(err, "connect")
        if state in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
            return
    if state != TCP_CLOSE:
        _raise(errno.EISCONN, "connect: the socket is connected")
    err = _sock_error(sk)
    if err:
        _raise(err, "connect")
    sk.sk_prot.connect(sk, daddr, dport)
    sk.connecting = True
    raise BlockingIOError(errno.EINPROGRESS, "connect: the handshake is running")


def tcp_sendmsg(sk: TcpSock, data: bytes) -> int:
    """send(): what fits the send buffer; EAGAIN when nothing does, EAGAIN too
    while the handshake runs; EPIPE (or the pending error) after the end."""
    if sk.err or sk.shutdown & SEND_SHUTDOWN:
        _raise(_sock_error(sk) or errno.EPIPE, "send")
    if sk.state not in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
        if sk.state in (TCP_SYN_SENT, TCP_SYN_RECV):
            raise BlockingIOError(errno.EAGAIN, "send: the handshake is running")
        _raise(errno.EPIPE, "send")
    if not data:
        return 0
    return tcp_output.tcp_sendmsg_locked(sk, data)


def tcp_recvmsg(sk: TcpSock, size: int) -> bytes:
    """recv(): up to `size` bytes in order; b"" at the peer's FIN or after a
    reset was reported; EAGAIN when nothing is there yet."""
    if sk.state == TCP_LISTEN:
        _raise(errno.ENOTCONN, "recv: the socket listens")
    chunks = []
    copied = 0
    queue = sk.receive_queue
    while queue and copied < size:
        segment = queue[0]
        offset = (sk.copied_seq - segment.seq) & 0xFFFFFFFF
        take = min(size - copied, len(segment.data) - offset)
        if take > 0:
            chunks.append(segment.data[offset:offset + take])
            copied += take
            sk.copied_seq = (sk.copied_seq + take) & 0xFFFFFFFF
        if offset + max(take, 0) >= len(segment.data):
            queue.popleft()
            sk_mem_uncharge(sk, segment.truesize)
            if segment.tcp_flags & 0x01:  # the FIN: the stream ends here
                sk.copied_seq = (sk.copied_seq + 1) & 0xFFFFFFFF
                break
    if copied:
        tcp_rcv_space_adjust(sk)
        tcp_cleanup_rbuf(sk, copied)
        return b"".join(chunks)
    if sk.sock_done:
        return b""
    if sk.err:
        _raise(_sock_error(sk), "recv")
    if sk.shutdown & RCV_SHUTDOWN:
        return b""
    if sk.state == TCP_CLOSE:
        _raise(errno.ENOTCONN, "recv: the socket is not connected")
    raise BlockingIOError(errno.EAGAIN, "recv: no data yet")


def tcp_cleanup_rbuf(sk: TcpSock, copied: int) -> None:
    """After a read: ACK now if a delayed ACK is owed for more than a segment,
    or the read emptied a buffer that held a pushed short segment, or the
    window can now open to twice what is left of it."""
    icsk_ack = sk.icsk_ack
    time_to_ack = False
    if icsk_ack.pending & ICSK_ACK_SCHED:
        pingpong = icsk_ack.pingpong >= sk.net.sysctl.values["net.ipv4.tcp_pingpong_thresh"]
        if ((sk.rcv_nxt - sk.rcv_wup) & 0xFFFFFFFF > icsk_ack.rcv_mss
                or (copied > 0 and (icsk_ack.pending & ICSK_ACK_PUSHED2
                                    or (icsk_ack.pending & ICSK_ACK_PUSHED and not pingpong))
                    and not sk.rmem_alloc)):
            time_to_ack = True
    if copied > 0 and not time_to_ack and not sk.shutdown & RCV_SHUTDOWN:
        rcv_window_now = tcp_output.tcp_receive_window(sk)
        if 2 * rcv_window_now <= sk.window_clamp:
            new_window = tcp_output.__tcp_select_window(sk)
            if new_window and new_window >= 2 * rcv_window_now:
                time_to_ack = True
    if time_to_ack:
        tcp_output.tcp_send_ack(sk)


def tcp_shutdown(sk: TcpSock, how: int) -> None:
    """shutdown(): SHUT_RD stops reads, SHUT_WR sends the FIN; ENOTCONN
    unconnected. A connect still running is cancelled."""
    if how not in (socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR):
        _raise(errno.EINVAL, f"shutdown: how {how}")
    mask = how + 1  # RCV_SHUTDOWN, SEND_SHUTDOWN or both
    state = sk.state
    if state == TCP_LISTEN:
        if mask & RCV_SHUTDOWN:
            tcp_disconnect(sk)
        return
    if state == TCP_SYN_SENT:
        tcp_disconnect(sk)
        return
    sk.shutdown |= mask
    if mask & SEND_SHUTDOWN and state in (TCP_ESTABLISHED, TCP_SYN_RECV, TCP_CLOSE_WAIT):
        if tcp_close_state(sk):
            tcp_output.tcp_send_fin(sk)
    if state == TCP_CLOSE:
        _raise(errno.ENOTCONN, "shutdown: the socket is not connected")


def _need_reset(state) -> bool:
    return state in (TCP_ESTABLISHED, TCP_CLOSE_WAIT, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_SYN_RECV)


def tcp_disconnect(sk: TcpSock) -> None:
    """tcp_disconnect(): back to CLOSE, a RST to a synchronized peer."""
    old_state = sk.state
    if old_state != TCP_CLOSE:
        tcp_set_state(sk, TCP_CLOSE)
    if old_state == TCP_LISTEN:
        inet_csk_listen_stop(sk)
    elif _need_reset(old_state) or (sk.snd_nxt != sk.write_seq and old_state in (TCP_CLOSING, TCP_LAST_ACK)):
        tcp_output.tcp_send_active_reset(sk)
        sk.err = errno.ECONNRESET
    elif old_state == TCP_SYN_SENT:
        sk.err = errno.ECONNRESET
    tcp_timer.tcp_clear_xmit_timers(sk)
    if sk.compressed_ack_timer is not None:
        sk.compressed_ack_timer.del_timer()
    sk.compressed_ack = 0
    sk.receive_queue.clear()
    sk.out_of_order_queue.clear()
    sk.write_queue.clear()
    sk.rtx_queue.clear()
    sk.rmem_alloc = sk.sk_wmem_queued = 0
    sk.packets_out = sk.sacked_out = sk.lost_out = sk.retrans_out = 0
    sk.shutdown = 0
    sk.daddr = sk.dport = 0


def inet_csk_listen_stop(sk: TcpSock) -> None:
    """The accept queue's children are reset and freed, the SYN queue dropped."""
    while sk.accept_queue:
        child = sk.accept_queue.popleft()
        tcp_disconnect(child)
        child.done = True
        tcp_done(child)
    for req in list(sk.syn_queue.values()):
        inet_csk_reqsk_queue_drop(sk, req)


def tcp_close(sk: TcpSock) -> None:
    """close() (__tcp_close() with no linger time to wait)."""
    net = sk.net
    sk.shutdown = SHUTDOWN_MASK
    if sk.state == TCP_LISTEN:
        tcp_set_state(sk, TCP_CLOSE)
        inet_csk_listen_stop(sk)
    else:
        data_was_unread = sum(len(segment.data) for segment in sk.receive_queue)
        sk.receive_queue.clear()
        sk.rmem_alloc = sum(segment.truesize for segment in sk.out_of_order_queue)
        if sk.state == TCP_CLOSE:
            pass
        elif data_was_unread:
            net.mib.net_statistics[LINUX_MIB_TCPABORTONCLOSE] += 1
            tcp_set_state(sk, TCP_CLOSE)
            tcp_output.tcp_send_active_reset(sk)
        elif sk.linger[0] and not sk.linger[1]:
            tcp_disconnect(sk)
            net.mib.net_statistics[LINUX_MIB_TCPABORTONDATA] += 1
        elif tcp_close_state(sk):
            tcp_output.tcp_send_fin(sk)
    sk.done = True  # sock_orphan(): SOCK_DEAD
    if sk.state == TCP_FIN_WAIT2 and sk.linger2 < 0:
        tcp_set_state(sk, TCP_CLOSE)  # TCP_LINGER2 -1: no FIN_WAIT2 for an orphan
        tcp_output.tcp_send_active_reset(sk)
        net.mib.net_statistics[LINUX_MIB_TCPABORTONLINGER] += 1
    elif sk.state == TCP_FIN_WAIT2:
        tmo = tcp_fin_time(sk)
        if tmo > TCP_TIMEWAIT_LEN:
            sk.sk_timer.mod_timer(net.clock.now + tmo - TCP_TIMEWAIT_LEN)
        else:
            tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)
            return
    if sk.state == TCP_CLOSE:
        tcp_done(sk)


def tcp_sock_set_keepidle(sk: TcpSock, val: int) -> None:
    """TCP_KEEPIDLE: on a keepalive socket the timer moves to the new idle
    time counted from the last segment received (tcp_sock_set_keepidle_locked())."""
    if val < 1 or val > MAX_TCP_KEEPIDLE:
        _raise(errno.EINVAL, f"setsockopt: TCP_KEEPIDLE {val} is outside 1..{MAX_TCP_KEEPIDLE}")
    sk.keepalive_time = val
    if sk.keepalive and sk.state not in (TCP_CLOSE, TCP_LISTEN):
        tcp_timer.inet_csk_reset_keepalive_timer(sk, max(val - tcp_timer.keepalive_time_elapsed(sk), 0.0))


def do_tcp_setsockopt(sk: TcpSock, level: int, name: int, value: int | bytes) -> None:
    net = sk.net
    sysctl = net.sysctl.values
    if level == socket.SOL_SOCKET:
        if name == socket.SO_RCVBUF:
            sk.sk_userlocks |= SOCK_RCVBUF_LOCK
            sk.sk_rcvbuf = max(min(int(value), sysctl["net.core.rmem_max"]) * 2, SOCK_MIN_RCVBUF)
        elif name == socket.SO_SNDBUF:
            sk.sk_userlocks |= SOCK_SNDBUF_LOCK
            sk.sk_sndbuf = max(min(int(value), sysctl["net.core.wmem_max"]) * 2, SOCK_MIN_SNDBUF)
            tcp_output.tcp_check_space(sk)
        elif name == socket.SO_REUSEADDR:
            sk.sk_reuse = bool(value)
        elif name == socket.SO_KEEPALIVE:
            tcp_timer.tcp_set_keepalive(sk, bool(value))
            sk.keepalive = bool(value)
        elif name == socket.SO_LINGER:
            onoff, seconds = struct.unpack("ii", value)
            sk.linger = (bool(onoff), seconds)
        else:
            _raise(errno.ENOPROTOOPT, f"setsockopt: SOL_SOCKET option {name} is not modelled")
        return
    if level == socket.IPPROTO_IPV6 and sk.family == AF_INET6:
        return do_ipv6_setsockopt(sk, name, value)
    if level != socket.IPPROTO_TCP:
        _raise(errno.ENOPROTOOPT, f"setsockopt: level {level} is not modelled")
    if name == socket.TCP_CONGESTION:
        tcp_cong.tcp_set_congestion_control(sk, bytes(value).rstrip(b"\0").decode() if isinstance(value, bytes)
                                            else str(value))
        return
    val = int(value) if not isinstance(value, bytes) else struct.unpack("i", value[:4])[0]
    if name == socket.TCP_NODELAY:
        if val:
            sk.nonagle |= TCP_NAGLE_OFF | TCP_NAGLE_PUSH
            tcp_output.tcp_push_pending_frames(sk)
        else:
            sk.nonagle &= ~TCP_NAGLE_OFF
    elif name == socket.TCP_MAXSEG:
        if val and (val < TCP_MIN_MSS or val > MAX_TCP_WINDOW):
            _raise(errno.EINVAL, f"setsockopt: TCP_MAXSEG {val}")
        sk.rx_opt.user_mss = val
    elif name == socket.TCP_LINGER2:
        sk.linger2 = -1 if val < 0 else min(val, TCP_FIN_TIMEOUT_MAX)
    elif name == socket.TCP_KEEPIDLE:
        tcp_sock_set_keepidle(sk, val)
    elif name == socket.TCP_KEEPINTVL:
        if val < 1 or val > MAX_TCP_KEEPINTVL:
            _raise(errno.EINVAL, f"setsockopt: TCP_KEEPINTVL {val} is outside 1..{MAX_TCP_KEEPINTVL}")
        sk.keepalive_intvl = val
    elif name == socket.TCP_KEEPCNT:
        if val < 1 or val > MAX_TCP_KEEPCNT:
            _raise(errno.EINVAL, f"setsockopt: TCP_KEEPCNT {val} is outside 1..{MAX_TCP_KEEPCNT}")
        sk.keepalive_probes = val
    elif name == socket.TCP_QUICKACK:
        if val:
            sk.icsk_ack.pingpong = 0
            if sk.icsk_ack.pending & ICSK_ACK_SCHED:
                tcp_output.tcp_send_ack(sk)
        else:
            sk.icsk_ack.pingpong = sysctl["net.ipv4.tcp_pingpong_thresh"]
    else:
        _raise(errno.ENOPROTOOPT, f"setsockopt: TCP option {name} is not modelled")


def do_ipv6_setsockopt(sk: TcpSock, name: int, value: int | bytes) -> None:
    """net/ipv6/ipv6_sockglue.c do_ipv6_setsockopt(): IPV6_V6ONLY, only before
    the socket has a port (EINVAL after)."""
    if name != socket.IPV6_V6ONLY:
        _raise(errno.ENOPROTOOPT, f"setsockopt: IPPROTO_IPV6 option {name} is not modelled")
    if sk.sport:
        _raise(errno.EINVAL, "setsockopt: IPV6_V6ONLY on a bound socket")
    sk.ipv6only = bool(int(value) if not isinstance(value, bytes) else struct.unpack("i", value[:4])[0])


def do_tcp_getsockopt(sk: TcpSock, level: int, name: int) -> int:
    if level == socket.SOL_SOCKET:
        if name == socket.SO_ERROR:
            return _sock_error(sk)
        if name == socket.SO_RCVBUF:
            return sk.sk_rcvbuf
        if name == socket.SO_SNDBUF:
            return sk.sk_sndbuf
        if name == socket.SO_REUSEADDR:
            return int(sk.sk_reuse)
        if name == socket.SO_KEEPALIVE:
            return int(sk.keepalive)
        if name == socket.SO_TYPE:
            return socket.SOCK_STREAM
        if name == socket.SO_ACCEPTCONN:
            return int(sk.state == TCP_LISTEN)
        _raise(errno.ENOPROTOOPT, f"getsockopt: SOL_SOCKET option {name} is not modelled")
    if level == socket.IPPROTO_IPV6 and sk.family == AF_INET6 and name == socket.IPV6_V6ONLY:
        return int(sk.ipv6only)
    if level != socket.IPPROTO_TCP:
        _raise(errno.ENOPROTOOPT, f"getsockopt: level {level} is not modelled")
    if name == socket.TCP_NODELAY:
        return int(bool(sk.nonagle & TCP_NAGLE_OFF))
    if name == socket.TCP_MAXSEG:
        if sk.rx_opt.user_mss and sk.state in (TCP_CLOSE, TCP_LISTEN):
            return sk.rx_opt.user_mss
        return sk.mss_cache
    if name == socket.TCP_LINGER2:
        return sk.linger2 if sk.linger2 else sk.net.sysctl.values["net.ipv4.tcp_fin_timeout"]
    if name == socket.TCP_QUICKACK:
        return int(sk.icsk_ack.pingpong < sk.net.sysctl.values["net.ipv4.tcp_pingpong_thresh"])
    if name == socket.TCP_KEEPIDLE:
        return int(tcp_timer.keepalive_time_when(sk))
    if name == socket.TCP_KEEPINTVL:
        return int(tcp_timer.keepalive_intvl_when(sk))
    if name == socket.TCP_KEEPCNT:
        return tcp_timer.keepalive_probes(sk)
    _raise(errno.ENOPROTOOPT, f"getsockopt: TCP option {name} is not modelled")


def tcp_inq(sk: TcpSock) -> int:
    """SIOCINQ: bytes to read, the FIN not counted."""
    if sk.state in (TCP_SYN_SENT, TCP_SYN_RECV):
        return 0
    answ = (sk.rcv_nxt - sk.copied_seq) & 0xFFFFFFFF
    if answ and sk.sock_done:
        answ -= 1
    return answ


def tcp_get_info(sk: TcpSock) -> TcpInfo:
    """getsockopt(TCP_INFO) with SIOCINQ/SIOCOUTQ, as ss -tin shows them."""
    if sk.state == TCP_LISTEN:
        backlog = len(sk.accept_queue)
        return TcpInfo(sk.state, backlog, sk.sk_max_ack_backlog, sk.snd_cwnd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                       sk.sk_max_ack_backlog, backlog, 0, 0, 0)
    synchronizing = sk.state in (TCP_SYN_SENT, TCP_SYN_RECV)
    send_q = 0 if synchronizing else (sk.write_seq - sk.snd_una) & 0xFFFFFFFF
    return TcpInfo(sk.state, tcp_inq(sk), send_q, sk.snd_cwnd, sk.snd_ssthresh, sk.srtt_us >> 3, sk.mdev_us >> 2,
                   int(sk.rto * 1000), sk.mss_cache, sk.rcv_wnd, sk.snd_wnd, sk.retrans_out, sk.total_retrans,
                   sk.lost_out, sk.sacked_out, sk.packets_out, sk.delivered, sk.bytes_acked, sk.bytes_received)


def sk_stream_is_writeable(sk: TcpSock) -> bool:
    """__sk_stream_is_writeable(sk, 1): free space of at least half what is
    queued (the queue under 2/3 of sk_sndbuf), and the unsent bytes, doubled,
    under tcp_notsent_lowat."""
    queued = sk.sk_wmem_queued
    if sk.sk_sndbuf - queued < queued >> 1 or queued >= sk.sk_sndbuf:
        return False
    lowat = sk.notsent_lowat or sk.net.sysctl.values["net.ipv4.tcp_notsent_lowat"]
    return ((sk.write_seq - sk.snd_nxt) & 0xFFFFFFFF) << 1 < lowat


def tcp_poll(sk: TcpSock) -> int:
    """EPOLL* bits: IN for data, a FIN or a waiting connection; OUT while the
    send buffer has room; HUP when both directions are shut or closed; ERR
    with a pending error."""
    state = sk.state
    if state == TCP_LISTEN:
        return select.EPOLLIN | select.EPOLLRDNORM if sk.accept_queue else 0
    mask = 0
    if sk.shutdown == SHUTDOWN_MASK or state == TCP_CLOSE:
        mask |= select.EPOLLHUP
    if sk.shutdown & RCV_SHUTDOWN:
        mask |= select.EPOLLIN | select.EPOLLRDNORM | select.EPOLLRDHUP
    if state not in (TCP_SYN_SENT, TCP_SYN_RECV):
        if tcp_inq(sk) or sk.receive_queue:
            mask |= select.EPOLLIN | select.EPOLLRDNORM
        if sk.shutdown & SEND_SHUTDOWN or sk_stream_is_writeable(sk):
            mask |= select.EPOLLOUT | select.EPOLLWRNORM
    if sk.err:
        mask |= select.EPOLLERR
    return mask
