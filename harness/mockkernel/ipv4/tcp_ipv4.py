"""TCP over IPv4 (net/ipv4/tcp_ipv4.c): receive and demultiplex, listeners,
connect(), and the resets and ACKs the per-namespace control socket sends.

tcp_v4_rcv(): a segment not sent to this host's link-layer address (pkt_type
multicast or broadcast) is discarded first (NOT_SPECIFIED). A header shorter
than 20 bytes is dropped (PKT_TOO_SMALL for doff < 5), a bad checksum is
TCP_CSUM without an answer. The socket is looked up by 4-tuple in the
established table (established sockets, request socks in NEW_SYN_RECV and
TIME_WAIT socks), then among the listeners (__inet_lookup_listener()). With
none the segment takes the no_tcp_socket path: answered with a RST (never a RST
to a RST, nor to a segment whose route is not RTN_LOCAL, as
tcp_v4_send_reset() refuses a multicast or broadcast one) and dropped with
NO_SOCKET. The RST and the ACKs for TIME_WAIT and request socks come from the
per-netns control socket (IP_PMTUDISC_DO: DF, IP ID 0) with the default TTL.

A listener answers a SYN with a SYN-ACK from a request sock in its SYN queue
(tcp_conn_request()): with the SYN queue over the listen backlog, a SYN cookie
(tcp_syncookies 1, always with 2) or a drop (TCPReqQFullDrop); with the accept
queue over the backlog the SYN is dropped (ListenOverflows, ListenDrops);
without syncookies the last quarter of tcp_max_syn_backlog is refused too. The
backlog is listen()'s, capped by net.core.somaxconn; a queue is full past
backlog + 1 entries, as sk_acceptq_is_full() compares with `>`. An ACK to a
listener with no request sock is checked as a SYN cookie (syncookies.py), else
answered with a RST (TCP_FLAGS). Dropped SYNs are consumed, not kfree_skb'd,
as conn_request's result is ignored since 6.10.
SNMP: InSegs for a segment to this host (InErrs and InCsumErrors for a bad
checksum), OutSegs and OutRsts for each RST, OutSegs for each control ACK.
The listener of an IPv4 segment may be an AF_INET6 socket that takes IPv4
(inet_hashtables.py): its icsk_af_ops (ipv6/tcp_ipv6.py) answer the SYN
through tcp_v4_conn_request() and make a v4-mapped child. ipv4_specific is
this family's struct inet_connection_sock_af_ops, tcp_prot its struct proto.
"""
from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.skbuff import PACKET_HOST, SkBuff, alloc_skb, kfree_skb
from harness.mockkernel.core.snmp import (SNMP4_NET_LIST, TCP_MIB_CSUMERRORS, TCP_MIB_INERRS, TCP_MIB_INSEGS,
                                          TCP_MIB_OUTRSTS, TCP_MIB_OUTSEGS)
from harness.mockkernel.core.sysctl import (CtlTable, proc_dointvec, proc_dointvec_jiffies, proc_dointvec_minmax,
                                            proc_dointvec_ms_jiffies, proc_dou8vec_minmax, proc_douintvec_minmax,
                                            proc_doulongvec_minmax)
from harness.mockkernel.ipv4 import ip_options, ip_output, route, syncookies, tcp_output, tcp_timer
from harness.mockkernel.ipv4.inet_hashtables import (InetHashinfo, __inet_lookup_established,
                                                     __inet_lookup_listener, inet_bind_hash, inet_ehash_insert,
                                                     inet_hash_connect, secure_tcp_ts_off)
from harness.mockkernel.ipv4.tcp_input import TcpCb, tcp_parse_options, tcp_rcv_established, tcp_rcv_state_process
from harness.mockkernel.ipv4.tcp_minisocks import (LINUX_MIB_LISTENOVERFLOWS, TcpTwStatus, inet_twsk_deschedule_put,
                                                   sk_acceptq_is_full, tcp_check_req, tcp_create_openreq_child,
                                                   tcp_fin_wait2_timeout, tcp_listendrop, tcp_timewait_state_process)
from harness.mockkernel.ipv4.tcp_output import TCP_MSS_DEFAULT
from harness.mockkernel.ipv4.tcp_sock import (AF_INET, TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN, TCP_NEW_SYN_RECV,
                                              TCP_SYN_SENT, TCP_TIME_WAIT, InetConnectionSockAfOps, Proto,
                                              RequestSock, TcpOptionsReceived, TcpSock, inet_csk_reqsk_queue_drop,
                                              tcp_clock_ms, tcp_set_state)
from harness.mockkernel.net import RTN_LOCAL
from harness.mockkernel.netfilter.core import nf_ct_attach
from harness.mockkernel.wire import Malformed, WireError, tcp
from harness.mockkernel.wire.ipv4 import IP_DF, IPPROTO_TCP, Ipv4Packet, build_header
from harness.mockkernel.wire.ipv4 import fill_checksum as fill_header_checksum
from harness.mockkernel.wire.tcp import TCPHDR_ACK, TCPHDR_FIN, TCPHDR_RST, TCPHDR_SYN

LINUX_MIB_TIMEWAITRECYCLED = SNMP4_NET_LIST.index("TWRecycled")

# net/ipv4/sysctl_net_ipv4.c ipv4_net_table and net/core/sysctl_net_core.c: the entries the
# receive side reads (tcp_output.py registers those both sides read), with this machine's
# defaults in a fresh namespace (Linux 6.18)
TCP_IPV4_SYSCTLS = {
    "net.core.somaxconn": CtlTable(4096, proc_dointvec_minmax, 0),
    "net.ipv4.tcp_max_syn_backlog": CtlTable(2048, proc_dointvec),
    "net.ipv4.tcp_syncookies": CtlTable(1, proc_dou8vec_minmax),
    "net.ipv4.tcp_abort_on_overflow": CtlTable(0, proc_dou8vec_minmax),
    "net.ipv4.tcp_fin_timeout": CtlTable(60, proc_dointvec_jiffies),
    "net.ipv4.tcp_tw_reuse": CtlTable(2, proc_dou8vec_minmax, 0, 2),
    "net.ipv4.tcp_tw_reuse_delay": CtlTable(1000, proc_douintvec_minmax, 1, 60000),
    "net.ipv4.tcp_max_tw_buckets": CtlTable(131072, proc_dointvec),
    "net.ipv4.tcp_rfc1337": CtlTable(0, proc_dou8vec_minmax),
    "net.ipv4.tcp_dsack": CtlTable(1, proc_dou8vec_minmax),
    "net.ipv4.tcp_moderate_rcvbuf": CtlTable(1, proc_dou8vec_minmax),
    "net.ipv4.tcp_app_win": CtlTable(31, proc_dou8vec_minmax, 0, 31),
    "net.ipv4.tcp_invalid_ratelimit": CtlTable(500, proc_dointvec_ms_jiffies),
    "net.ipv4.tcp_pingpong_thresh": CtlTable(1, proc_dou8vec_minmax, 1),
    "net.ipv4.tcp_comp_sack_nr": CtlTable(44, proc_dou8vec_minmax, 0, 255),
    "net.ipv4.tcp_comp_sack_delay_ns": CtlTable(1000000, proc_doulongvec_minmax),
}


def tcp_v4_init_net(net) -> None:
    """tcp_sk_init(): the namespace's TCP tables and the receive side's sysctls."""
    net.sysctl.register(TCP_IPV4_SYSCTLS)
    net.tcp_hashinfo = InetHashinfo()
    tcp_timer.register_fin_wait2_timeout(tcp_fin_wait2_timeout)


@dataclass(frozen=True)
class TcpRcvFamily:
    """What tcp_v4_rcv() and tcp_v6_rcv() (the kernel's two copies of one
    receive path) do differently: the checksum's pseudo-header, the addresses,
    the listener lookup, SYN cookies, the control socket's RST and TIME_WAIT
    ACK, and the names journeys and drop reasons give."""

    rcv: str  # "tcp_v4_rcv"
    do_rcv: str  # "tcp_v4_do_rcv"
    checksum_ok: Callable  # (buf, nh, th, end)
    addresses: Callable  # (buf, nh) -> (saddr, daddr)
    lookup_listener: Callable  # (hashinfo, daddr, dport) -> listener or None
    cookie_check: Callable  # (listener, cb) -> the listener, a cookie's child, or None when dropped
    send_reset: Callable  # (skb): the control socket's RST answering it
    timewait_ack: Callable  # (tw, skb): the ACK a TIME_WAIT sock answers with


def tcp_v4_rcv(skb: SkBuff) -> None:
    tcp_rcv(skb, TCP_V4_RCV)


def tcp_rcv(skb: SkBuff, family: TcpRcvFamily) -> None:
    """A header cut short is NOT_SPECIFIED, a data offset under 5 PKT_TOO_SMALL."""
    buf, th, end = skb.buf, skb.data, skb.tail
    if skb.pkt_type != PACKET_HOST:
        return kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.L4, family.rcv)
    net = skb.net
    mib = net.mib.tcp_statistics
    mib[TCP_MIB_INSEGS] += 1
    try:
        tcp.check_len(buf, th, end)
    except WireError as err:
        return kfree_skb(skb, DropReason.PKT_TOO_SMALL if isinstance(err, Malformed) else DropReason.NOT_SPECIFIED,
                         Stage.L4, family.rcv)
    nh = skb.network_header
    if not family.checksum_ok(buf, nh, th, end):
        mib[TCP_MIB_CSUMERRORS] += 1
        mib[TCP_MIB_INERRS] += 1
        return kfree_skb(skb, DropReason.TCP_CSUM, Stage.L4, family.rcv)
    saddr, daddr = family.addresses(buf, nh)
    sport, dport = tcp.PORTS.unpack_from(buf, th)
    hashinfo = net.tcp_hashinfo
    sk = __inet_lookup_established(hashinfo, saddr, sport, daddr, dport)
    if sk is None:
        sk = family.lookup_listener(hashinfo, daddr, dport)
        if sk is None:
            return _no_tcp_socket(skb, dport, family)
    cb = TcpCb(skb, th, end)
    net.tracer.hop(skb, Stage.L4, family.rcv, "", f"dport {dport} {sk.state.name}")
    state = sk.state
    if state == TCP_TIME_WAIT:
        return _do_time_wait(sk, cb, family)
    if state == TCP_NEW_SYN_RECV:
        return _new_syn_recv(sk, cb, family)
    tcp_segs_in(sk, cb)
    tcp_do_rcv(sk, cb, family)


def tcp_segs_in(sk: TcpSock, cb: TcpCb) -> None:
    """include/net/tcp.h tcp_segs_in(): every segment, and those with data."""
    sk.segs_in += 1
    if cb.data_len:
        sk.data_segs_in += 1


def _no_tcp_socket(skb: SkBuff, dport: int, family: TcpRcvFamily) -> None:
    skb.net.tracer.hop(skb, Stage.L4, family.rcv, "", f"dport {dport} no socket")
    family.send_reset(skb)
    kfree_skb(skb, DropReason.NO_SOCKET, Stage.L4, family.rcv)


def tcp_do_rcv(sk: TcpSock, cb: TcpCb, family: TcpRcvFamily) -> None:
    """tcp_v4_do_rcv(), tcp_v6_do_rcv()."""
    if sk.state == TCP_ESTABLISHED:
        return tcp_rcv_established(sk, cb)
    if sk.state == TCP_LISTEN:
        nsk = family.cookie_check(sk, cb)
        if nsk is None:
            return
        if nsk is not sk:
            return tcp_child_process(sk, nsk, cb, family)
        reason = tcp_listen_rcv(sk, cb)
    else:
        reason = tcp_rcv_state_process(sk, cb)
    if reason is not None:
        family.send_reset(cb.skb)
        kfree_skb(cb.skb, reason, Stage.SOCKET, family.do_rcv)


def tcp_listen_rcv(sk: TcpSock, cb: TcpCb) -> DropReason | None:
    """tcp_rcv_state_process() for TCP_LISTEN: an ACK is answered with a RST,
    a RST and anything but a SYN are dropped, a SYN goes to conn_request."""
    flags = cb.tcp_flags
    if flags & TCPHDR_ACK:
        return DropReason.TCP_FLAGS
    if flags & TCPHDR_RST:
        kfree_skb(cb.skb, DropReason.TCP_RESET, Stage.SOCKET, "tcp_rcv_state_process")
        return None
    if flags & TCPHDR_SYN and not flags & TCPHDR_FIN:
        sk.icsk_af_ops.conn_request(sk, cb)
        return None
    kfree_skb(cb.skb, DropReason.TCP_FLAGS, Stage.SOCKET, "tcp_rcv_state_process")
    return None


def _new_syn_recv(req: RequestSock, cb: TcpCb, family: TcpRcvFamily) -> None:
    listener = req.listener
    if listener.state != TCP_LISTEN:
        # the listener closed: the request goes, and the segment finds no socket
        inet_csk_reqsk_queue_drop(listener, req)
        return _no_tcp_socket(cb.skb, req.ir_num, family)
    opt = TcpOptionsReceived(tstamp_ok=req.tstamp_ok)
    if cb.doff > 20:
        tcp_parse_options(listener.net, cb, opt, False)
    nsk, reason = tcp_check_req(listener, cb, req, opt)
    if nsk is None:
        kfree_skb(cb.skb, reason, Stage.SOCKET, "tcp_check_req")
        return
    if nsk is listener:
        reason = tcp_listen_rcv(listener, cb)
        if reason is not None:
            family.send_reset(cb.skb)
            kfree_skb(cb.skb, reason, Stage.SOCKET, family.do_rcv)
        return
    tcp_child_process(listener, nsk, cb, family)


def tcp_child_process(parent: TcpSock, child: TcpSock, cb: TcpCb, family: TcpRcvFamily) -> None:
    """The handshake's ACK, on the child it created."""
    tcp_segs_in(child, cb)
    parent.net.tracer.hop(cb.skb, Stage.SOCKET, f"tcp {parent.sport}", "CHILD", "tcp_child_process")
    reason = tcp_rcv_state_process(child, cb)
    if reason is not None:
        family.send_reset(cb.skb)
        kfree_skb(cb.skb, reason, Stage.SOCKET, family.rcv)


def _do_time_wait(tw, cb: TcpCb, family: TcpRcvFamily) -> None:
    net = tw.net
    opt = TcpOptionsReceived(tstamp_ok=tw.tw_ts_recent_stamp is not None)
    if cb.doff > 20 and tw.tw_ts_recent_stamp is not None:
        tcp_parse_options(net, cb, opt, True)
        if opt.saw_tstamp and opt.rcv_tsecr:
            opt.rcv_tsecr = (opt.rcv_tsecr - tw.tw_ts_offset) & 0xFFFFFFFF
    status, isn, reason = tcp_timewait_state_process(tw, cb, opt)
    skb = cb.skb
    if status is TcpTwStatus.TCP_TW_SYN:
        daddr = family.addresses(skb.buf, skb.network_header)[1]
        listener = family.lookup_listener(net.tcp_hashinfo, daddr, tcp.PORTS.unpack_from(skb.buf, cb.th)[1])
        if listener is not None:
            inet_twsk_deschedule_put(tw)
            return listener.icsk_af_ops.conn_request(listener, cb, tw_isn=isn)
        status = TcpTwStatus.TCP_TW_ACK  # no listener: the TIME_WAIT sock answers it
    if status is TcpTwStatus.TCP_TW_ACK:
        family.timewait_ack(tw, skb)
    elif status is TcpTwStatus.TCP_TW_RST:
        family.send_reset(skb)
        inet_twsk_deschedule_put(tw)
    kfree_skb(skb, reason, Stage.SOCKET, family.rcv)  # discard_it: even what TIME_WAIT handled


def tcp_v4_timewait_ack(tw, skb: SkBuff) -> None:
    tsval = (tcp_clock_ms(tw.net) + tw.tw_ts_offset) & 0xFFFFFFFF
    tcp_v4_send_ack(skb, tw.tw_snd_nxt, tw.tw_rcv_nxt, tw.tw_rcv_wnd >> tw.tw_rcv_wscale, tsval,
                    tw.tw_ts_recent, tos=0, why="tcp_v4_timewait_ack")


def tcp_v4_conn_request(sk: TcpSock, cb: TcpCb, tw_isn: int = 0) -> None:
    """A SYN to a broadcast or multicast address is dropped."""
    dst = cb.skb.dst
    if dst.is_broadcast or dst.is_multicast:
        return tcp_listendrop(sk)
    tcp_conn_request(sk, cb, TCP_REQUEST_SOCK_OPS, tw_isn)


def tcp_conn_request(sk: TcpSock, cb: TcpCb, rsk_ops, tw_isn: int = 0) -> None:
    """net/ipv4/tcp_input.c tcp_conn_request() with the family's request ops
    (tcp_request_sock_ipv4_ops, tcp_request_sock_ipv6_ops): a request sock,
    its SYN-ACK, and the SYN queue."""
    net = sk.net
    skb = cb.skb
    sysctl = net.sysctl.values
    want_cookie = False
    if not tw_isn:
        syncookies_mode = sysctl["net.ipv4.tcp_syncookies"]
        if syncookies_mode == 2 or len(sk.syn_queue) > sk.sk_max_ack_backlog:
            want_cookie = syncookies.tcp_syn_flood_action(sk)
            if not want_cookie:
                return tcp_listendrop(sk)
    if sk_acceptq_is_full(sk):
        net.mib.net_statistics[LINUX_MIB_LISTENOVERFLOWS] += 1
        return tcp_listendrop(sk)
    saddr, daddr = rsk_ops.addresses(skb.buf, skb.network_header)
    opt = TcpOptionsReceived(mss_clamp=rsk_ops.mss_clamp, user_mss=sk.rx_opt.user_mss)
    tcp_parse_options(net, cb, opt, False)
    if want_cookie and not opt.saw_tstamp:
        opt.sack_ok = opt.wscale_ok = False  # tcp_clear_options(): without a timestamp to carry them
        opt.snd_wscale = 0
    sport, dport = tcp.PORTS.unpack_from(skb.buf, cb.th)
    req = RequestSock(sk, daddr, saddr, dport, sport, cb.seq, 0, opt.mss_clamp,
                      snd_wscale=opt.snd_wscale, wscale_ok=opt.wscale_ok, tstamp_ok=opt.saw_tstamp,
                      sack_ok=opt.sack_ok, ts_recent=opt.rcv_tsval if opt.saw_tstamp else 0,
                      tos=rsk_ops.dsfield(skb.buf, skb.network_header), rsk_ops=rsk_ops)
    dst = rsk_ops.route_req(net, req)
    if isinstance(dst, int):
        return tcp_listendrop(sk)
    if opt.saw_tstamp:
        req.ts_off = secure_tcp_ts_off(net, daddr, saddr)
    isn = tw_isn
    if not want_cookie and not tw_isn:
        max_syn_backlog = sysctl["net.ipv4.tcp_max_syn_backlog"]
        if not sysctl["net.ipv4.tcp_syncookies"] and max_syn_backlog - len(sk.syn_queue) < max_syn_backlog >> 2:
            return tcp_listendrop(sk)  # the last quarter is kept for peers proven alive (none are, here)
        isn = net.random.getrandbits(32)
    if want_cookie:
        isn = rsk_ops.cookie_init_seq(sk, cb, req)
    req.snt_isn = isn
    tcp_output.tcp_openreq_init_rwin(req, sk, dst)
    if not want_cookie:
        sk.syn_queue[(req.ir_rmt_addr, req.ir_rmt_port)] = req  # inet_csk_reqsk_queue_hash_add()
        inet_ehash_insert(net.tcp_hashinfo, (req.ir_loc_addr, req.ir_num, req.ir_rmt_addr, req.ir_rmt_port), req)
    net.tracer.hop(skb, Stage.SOCKET, f"tcp {sk.sport}", "SYN_COOKIE" if want_cookie else "SYN_QUEUED",
                   f"syn queue {len(sk.syn_queue)}/{sk.sk_max_ack_backlog}")
    rsk_ops.send_synack(sk, req)
    if not want_cookie:
        tcp_timer.reqsk_timer_start(req)


def tcp_v4_send_synack(sk: TcpSock, req: RequestSock) -> int:
    """The SYN-ACK as ip_build_and_send_pkt() sends it (DF, IP ID 0, the
    request's TOS, the default TTL); EHOSTUNREACH without a route back (OutNoRoutes)."""
    net = sk.net
    rt = tcp_v4_route_req(net, req)
    if isinstance(rt, int):
        net.mib.ip_statistics[ip_output.IPSTATS_MIB_OUTNOROUTES] += 1
        return errno.EHOSTUNREACH
    segment, summary = tcp_output.tcp_make_synack(sk, req, rt)
    header = build_header(req.ir_loc_addr, req.ir_rmt_addr, IPPROTO_TCP, len(segment),
                          ttl=net.sysctl.values["net.ipv4.ip_default_ttl"], tos=req.tos, ident=0, frag_off=IP_DF)
    ip_output.ip_local_out(tcp_output.tcp_skb_xmit_start(net, header + segment, len(header), rt, summary))
    return 0


def tcp_v4_syn_recv_sock(sk: TcpSock, cb: TcpCb, req: RequestSock) -> TcpSock | None:
    """The child socket for a completed handshake; None with the accept queue
    full (ListenOverflows, ListenDrops)."""
    net = sk.net
    if sk_acceptq_is_full(sk):
        net.mib.net_statistics[LINUX_MIB_LISTENOVERFLOWS] += 1
        tcp_listendrop(sk)
        return None
    dst = route.ip_route_output(net, req.ir_rmt_addr, req.ir_loc_addr)
    if isinstance(dst, int):
        tcp_listendrop(sk)
        return None
    child = tcp_create_openreq_child(sk, req, cb)
    child.saddr = child.rcv_saddr = req.ir_loc_addr
    child.daddr = req.ir_rmt_addr
    return tcp_child_routed(net, sk, child, dst)


def tcp_child_routed(net, sk: TcpSock, child: TcpSock, dst) -> TcpSock:
    """What tcp_v4_syn_recv_sock() and tcp_v6_syn_recv_sock() both end with: the
    child's MSS from its route, then hashed in the established table and on the
    listener's port (__inet_inherit_port())."""
    child.dst = dst
    tcp_output.tcp_sync_mss(child, dst.dst_mtu())
    child.advmss = tcp_output.tcp_mss_clamp(child, tcp_output.dst_metric_advmss(dst))
    tcp_output.tcp_initialize_rcv_mss(child)
    hashinfo = net.tcp_hashinfo
    inet_ehash_insert(hashinfo, (child.rcv_saddr, child.sport, child.daddr, child.dport), child)
    inet_bind_hash(hashinfo, child, sk.sport)
    return child


def tcp_v4_reqsk_send_ack(sk: TcpSock, cb: TcpCb, req: RequestSock) -> None:
    tsval = (tcp_clock_ms(sk.net) + req.ts_off) & 0xFFFFFFFF
    tcp_v4_send_ack(cb.skb, (req.snt_isn + 1) & 0xFFFFFFFF, (req.rcv_isn + 1) & 0xFFFFFFFF,
                    req.rsk_rcv_wnd >> req.rcv_wscale, tsval, req.ts_recent if req.tstamp_ok else 0,
                    tos=req.tos & ~0x03, why="tcp_v4_reqsk_send_ack")


def tcp_v4_reqsk_send_reset(sk: TcpSock, cb: TcpCb) -> None:
    tcp_v4_send_reset(cb.skb)


def _ipv4_addresses(buf: bytearray, nh: int) -> tuple[int, int]:
    iph = Ipv4Packet(buf, nh)
    return iph.saddr, iph.daddr


def _ipv4_tos(buf: bytearray, nh: int) -> int:
    return Ipv4Packet(buf, nh).tos


def tcp_v4_route_req(net, req: RequestSock):
    return route.ip_route_output(net, req.ir_rmt_addr, req.ir_loc_addr)


# tcp_request_sock_ops + tcp_request_sock_ipv4_ops: how a request of this family is made and answered
TCP_REQUEST_SOCK_OPS = SimpleNamespace(family=AF_INET, mss_clamp=TCP_MSS_DEFAULT, addresses=_ipv4_addresses,
                                       dsfield=_ipv4_tos, route_req=tcp_v4_route_req,
                                       msstab=syncookies.MSSTAB, cookie_init_seq=syncookies.cookie_init_sequence,
                                       cookie_check="cookie_v4_check",
                                       send_synack=tcp_v4_send_synack, send_ack=tcp_v4_reqsk_send_ack,
                                       send_reset=tcp_v4_reqsk_send_reset, rtx_synack=tcp_timer.tcp_rtx_synack)


def tcp_v4_send_reset(skb: SkBuff) -> None:
    """The RST answering `skb` (none to a RST, nor off a local route), with
    the segment's TOS."""
    if tcp.TcpSegment(skb.buf, Ipv4Packet(skb.buf, skb.network_header).payload_offset).flags & TCPHDR_RST:
        return
    if skb.dst.type is not RTN_LOCAL:
        return
    mib = skb.net.mib.tcp_statistics
    mib[TCP_MIB_OUTSEGS] += 1  # tcp_v4_send_reset()'s, not nft reject's (nf_send_reset())
    mib[TCP_MIB_OUTRSTS] += 1
    options = ip_options.ip_options_echo_skb(skb)
    if options is None:
        return
    send_reset(skb, tos=Ipv4Packet(skb.buf, skb.network_header).tos & ~0x03, why="tcp_v4_send_reset",
               options=options)


def tcp_v4_send_ack(skb: SkBuff, seq: int, ack: int, win: int, tsval: int, tsecr: int, tos: int, why: str) -> None:
    """An ACK from the control socket (TIME_WAIT, request socks): NOP, NOP,
    timestamp when there is an echo to send."""
    net = skb.net
    iph = Ipv4Packet(skb.buf, skb.network_header)
    sport, dport = tcp.PORTS.unpack_from(skb.buf, iph.payload_offset)
    options = tcp.write_options(tcp.OutOptions(ts=(tsval, tsecr))) if tsecr else b""
    segment = tcp.build_segment(iph.daddr, iph.saddr, dport, sport, seq, ack, TCPHDR_ACK, min(win, 65535), options)
    net.mib.tcp_statistics[TCP_MIB_OUTSEGS] += 1
    options = ip_options.ip_options_echo_skb(skb)
    if options is not None:
        _send_ctl(skb, iph.daddr, iph.saddr, segment, tos, why, options)


def reset_segment(buf: bytearray, th: int, end: int) -> tuple[int, int, int]:
    """(seq, ack_seq, flags) of the RST answering the segment buf[th:end]:
    acknowledge what it sent, or take the sequence number it acknowledged."""
    _, _, seq, ack_seq, doff, flags, _, _, _ = tcp.unpack(buf, th)
    if flags & TCPHDR_ACK:
        return ack_seq, 0, TCPHDR_RST
    payload = end - th - tcp.DATA_OFFSET_LEN[doff]
    return 0, (seq + payload + bool(flags & TCPHDR_SYN) + bool(flags & TCPHDR_FIN)) & 0xFFFFFFFF, \
        TCPHDR_RST | TCPHDR_ACK


def send_reset(skb: SkBuff, tos: int, why: str, options: ip_options.IpOptions = ip_options.NO_OPTIONS,
               unrouted: str = "", attach: bool = False) -> None:
    """A RST back to the sender of `skb`, routed and sent as a local packet,
    with `options` (ip_send_unicast_reply()'s echo of the segment's; none for
    nf_send_reset(), whose nf_reject_iphdr_put() writes a bare header).
    `unrouted`: the function that, finding no route, frees the RST it built
    (nf_send_reset()); without one nothing is built (ip_send_unicast_reply()).
    `attach`: the RST takes skb's conntrack entry (nf_send_reset()'s nf_ct_attach())."""
    nh = skb.network_header
    iph = Ipv4Packet(skb.buf, nh)
    th = iph.payload_offset
    sport, dport = tcp.PORTS.unpack_from(skb.buf, th)
    seq, ack_seq, flags = reset_segment(skb.buf, th, nh + iph.tot_len)
    saddr, daddr = iph.daddr, iph.saddr
    _send_ctl(skb, saddr, daddr, tcp.build(saddr, daddr, dport, sport, seq, ack_seq, flags), tos, why, options,
              unrouted, attach)


def _send_ctl(skb: SkBuff, saddr: int, daddr: int, segment: bytes, tos: int, why: str,
              options: ip_options.IpOptions, unrouted: str = "", attach: bool = False) -> None:
    """ip_send_unicast_reply() on the namespace's control socket: the options
    __ip_options_echo() gave it go into the header, this host's address and time
    filled in (__ip_make_skb()'s ip_options_build()). With `unrouted` the packet
    is built first and freed there (NOT_SPECIFIED) when no route goes back."""
    net = skb.net
    out = route.ip_route_output(net, daddr, saddr)
    if out.__class__ is int and not unrouted:
        return
    header = build_header(saddr, daddr, IPPROTO_TCP, len(segment), ttl=net.sysctl.values["net.ipv4.ip_default_ttl"],
                          tos=tos, ident=0, frag_off=IP_DF, options=options.data)
    if options.optlen:
        ip_options.ip_options_build(header, options, saddr, net.clock.now)
        fill_header_checksum(header, 0)
    reply = alloc_skb(header + segment)
    reply.net = net
    reply.network_header, reply.transport_header = reply.data, reply.data + len(header)
    if attach:
        nf_ct_attach(reply, skb)
    net.tracer.start(reply, f"{why}: {Ipv4Packet(reply.buf, reply.data).summary()}", parent=skb)
    if out.__class__ is int:
        return kfree_skb(reply, DropReason.NOT_SPECIFIED, Stage.ROUTING, unrouted)
    reply.dst, reply.dev = out, out.dev
    ip_output.ip_local_out(reply)


def tcp_v4_connect(sk: TcpSock, daddr: int, dport: int) -> None:
    """connect(): route, source address and port, ISN and timestamp offset,
    then the SYN (tcp_connect()). Raises OSError with the kernel's errno."""
    net = sk.net
    if sk.state != TCP_CLOSE:
        raise OSError(errno.EISCONN if sk.state != TCP_SYN_SENT else errno.EALREADY,
                      "connect: the socket is already connected or connecting")
    if not dport:
        raise OSError(errno.ECONNREFUSED, "connect: port 0")
    rt = route.ip_route_output(net, daddr, sk.rcv_saddr)
    if isinstance(rt, int):
        raise OSError(rt, f"connect: no route to {daddr:#x}")
    if rt.is_broadcast or rt.is_multicast:
        raise OSError(errno.ENETUNREACH, "connect: a broadcast or multicast destination")
    if not sk.saddr:
        sk.saddr = sk.rcv_saddr = rt.prefsrc
    daddr = rt.daddr  # `daddr = fl4->daddr`: connect() to 0.0.0.0 connects to the source (ip_route_output())
    sk.daddr, sk.dport = daddr, dport
    sk.rx_opt.mss_clamp = TCP_MSS_DEFAULT
    tcp_set_state(sk, TCP_SYN_SENT)
    err, tw = inet_hash_connect(net, sk)
    if err:
        tcp_set_state(sk, TCP_CLOSE)
        sk.daddr = sk.dport = 0
        raise OSError(err, "connect: no free local port for this destination")
    if tw is not None:
        sk.write_seq = (tw.tw_snd_nxt + 65535 + 2) & 0xFFFFFFFF or 1
        sk.rx_opt.ts_recent, sk.rx_opt.ts_recent_stamp = tw.tw_ts_recent, tw.tw_ts_recent_stamp
        inet_twsk_deschedule_put(tw)
        net.mib.net_statistics[LINUX_MIB_TIMEWAITRECYCLED] += 1
    inet_ehash_insert(net.tcp_hashinfo, (sk.rcv_saddr, sk.sport, sk.daddr, sk.dport), sk)
    sk.dst = rt
    if not sk.write_seq:
        sk.write_seq = net.random.getrandbits(32)
    sk.tsoffset = secure_tcp_ts_off(net, sk.saddr, daddr)
    tcp_output.tcp_connect(sk)


def inet_sk_rebuild_header(sk: TcpSock):
    """The route of a connected socket that has none (ip_route_output_ports()): an Rtable or an errno."""
    return route.ip_route_output(sk.net, sk.daddr, sk.saddr)


def _tcp_v4_cookie_check(listener: TcpSock, cb: TcpCb) -> TcpSock | None:
    return syncookies.tcp_cookie_check(listener, cb, TCP_REQUEST_SOCK_OPS)


TCP_V4_RCV = TcpRcvFamily("tcp_v4_rcv", "tcp_v4_do_rcv", tcp.checksum_ok, _ipv4_addresses, __inet_lookup_listener,
                          _tcp_v4_cookie_check, tcp_v4_send_reset, tcp_v4_timewait_ack)
IPV4_SPECIFIC = InetConnectionSockAfOps("ipv4_specific", AF_INET, 20, tcp_output.ip_queue_xmit,
                                        inet_sk_rebuild_header, tcp_v4_conn_request, tcp_v4_syn_recv_sock)
TCP_PROT = Proto("TCP", AF_INET, IPV4_SPECIFIC, tcp_v4_connect, 0)
