"""TCP over IPv6 (net/ipv6/tcp_ipv6.c, net/ipv6/inet6_connection_sock.c,
net/ipv6/inet6_hashtables.c, net/ipv6/af_inet6.c inet6_bind()).

tcp_v6_rcv() is ipv4/tcp_ipv4.py's receive path with this family's parts
(TCP_V6_RCV): the checksum over the IPv6 pseudo-header, the sockets'
16-byte addresses, inet6_lookup_listener() (AF_INET6 listeners only), and
the control socket's replies (tcp_v6_send_response(): a RST to a segment no
socket takes, the ACKs of TIME_WAIT and request socks) with the route's hop
limit, the segment's traffic class (less ECN) and an automatic flow label
(the flow's hash; a TIME_WAIT sock's and a request's keep their
connection's). A SYN to a listener makes a request sock (tcp_conn_request()
with tcp_request_sock_ipv6_ops: MSS 1220 without an option); its SYN-ACK and
every segment of an established socket leave through ip6_xmit(): traffic
class 0, the route's hop limit, the flow label ip6_make_flowlabel() derives
from the socket's sk_txhash (auto_flowlabels 1: random per connection). The
MSS is the MTU less 60 (ipv6_specific.net_header_len 40), the advertised one
ip6_default_advmss() (at least net.ipv6.route.min_adv_mss, 1220).

An AF_INET6 socket bound to :: takes IPv4 too unless IPV6_V6ONLY: an IPv4 SYN
reaches it through tcp_v4_rcv() (its compute_score() ranks AF_INET listeners
first), tcp_v6_conn_request() hands it to tcp_v4_conn_request(), and
tcp_v6_syn_recv_sock() makes the child with tcp_v4_syn_recv_sock() and gives
it ipv6_mapped: IPv4 on the wire, v4-mapped addresses (::ffff:a.b.c.d) in
accept(), getsockname() and ss. connect() to a v4-mapped address does the
same through tcp_v4_connect().

tcp_v6_err(): ICMPv6 packet too big (of at least 1280) about a segment of a
connection (in its window: between snd_una and snd_nxt) lowers its route's
MTU (ip6_rt_update_pmtu(): the RTF_CACHE clone with the new MTU) and
tcp_v6_mtu_reduced() re-syncs the MSS and retransmits what no longer fits
(tcp_simple_retransmit()). Any other error ends a connection in its
handshake with the errno icmpv6_err_convert() gives (connect() fails with
it), is a soft error of an established one, and drops a request sock when
it is fatal (tcp_req_err()).

/proc/net/tcp6 lists the AF_INET6 sockets as tcp6_seq_show() prints them.
SYN cookies work as over IPv4 (syncookies.py), with msstab6. Left out: the
PMTU exception shared with other sockets and its expiry
(net.ipv6.route.mtu_expires: it stays the socket's), a new sk_txhash after a
timeout (sk_rethink_txhash()), the socket's hash as the flow label of a RST it
causes (here the flow's), flow label reflection, IPV6_TCLASS, extension
headers on sent segments, scope ids, RFC 6069's RTO revert.
"""
from __future__ import annotations

import dataclasses
import errno
from types import SimpleNamespace

from harness.journey import Stage
from harness.mockkernel.core.skbuff import SkBuff, alloc_skb
from harness.mockkernel.core.snmp import TCP_MIB_OUTRSTS, TCP_MIB_OUTSEGS
from harness.mockkernel.ipv4 import route as route4
from harness.mockkernel.ipv4 import syncookies, tcp_output, tcp_timer
from harness.mockkernel.ipv4.inet_diag import HZ, jiffies
from harness.mockkernel.ipv4.inet_hashtables import (AF_INET6, inet6_lookup_listener, inet_csk_get_port,
                                                     inet_ehash_insert, inet_hash_connect, inet_sk_rcv_saddr,
                                                     ipv6_addr_v4mapped, secure_tcp_ts_off, v4mapped)
from harness.mockkernel.ipv4.tcp_input import TcpCb
from harness.mockkernel.ipv4.tcp_ipv4 import (IPV4_SPECIFIC, TcpRcvFamily, reset_segment, tcp_child_routed,
                                              tcp_conn_request, tcp_rcv, tcp_v4_conn_request, tcp_v4_connect,
                                              tcp_v4_syn_recv_sock)
from harness.mockkernel.ipv4.tcp_minisocks import (LINUX_MIB_LISTENOVERFLOWS, inet_twsk_deschedule_put,
                                                   sk_acceptq_is_full, tcp_create_openreq_child, tcp_listendrop)
from harness.mockkernel.ipv4.tcp_recovery import TCP_INFINITE_SSTHRESH, tcp_simple_retransmit
from harness.mockkernel.ipv4.tcp_sock import (ICSK_TIME_LOSS_PROBE, ICSK_TIME_PROBE0, ICSK_TIME_REO_TIMEOUT,
                                              ICSK_TIME_RETRANS, SOCK_BINDPORT_LOCK, TCP_CLOSE, TCP_LISTEN,
                                              TCP_NEW_SYN_RECV, TCP_SYN_RECV, TCP_SYN_SENT, TCP_TIME_WAIT,
                                              InetConnectionSockAfOps, Proto, RequestSock, TcpSock, before,
                                              inet_csk_reqsk_queue_drop, tcp_clock_ms, tcp_done, tcp_set_state)
from harness.mockkernel.ipv6 import addrconf, ip6_output
from harness.mockkernel.ipv6.icmp import ip6_make_flowlabel
from harness.mockkernel.ipv6.protocol import inet6_add_protocol
from harness.mockkernel.ipv6.route import Rt6Info
from harness.mockkernel.net import RTN_LOCAL
from harness.mockkernel.wire import ipv6, tcp
from harness.mockkernel.wire.checksum import checksum
from harness.mockkernel.wire.ethernet import ETH_P_IP
from harness.mockkernel.wire.icmpv6 import ICMPV6_DEST_UNREACH, ICMPV6_PARAMPROB, ICMPV6_PKT_TOOBIG, ICMPV6_TIME_EXCEED
from harness.mockkernel.wire.ipv6 import (ADDRS, IPV6_ADDR_LINKLOCAL, IPV6_ADDR_MULTICAST, IPV6_HLEN, IPV6_MIN_MTU,
                                          NEXTHDR_TCP)
from harness.mockkernel.wire.tcp import TCP_HLEN, TCPHDR_ACK, TCPHDR_RST

# tcp_request_sock_ipv6_ops.mss_clamp and tcp_v6_connect()'s: the MSS of a peer that offers none
TCP_V6_MSS_CLAMP = IPV6_MIN_MTU - TCP_HLEN - IPV6_HLEN
IP6_RT_MIN_ADVMSS = IPV6_MIN_MTU - TCP_HLEN - IPV6_HLEN  # net.ipv6.route.min_adv_mss
IPV6_MAXPLEN = 65535
IPV6_FLOWLABEL_MASK = 0xFFFFF
# net/ipv6/icmp.c tab_unreach[]: destination unreachable codes 0-6, their errno and whether it is fatal
TAB_UNREACH = ((errno.ENETUNREACH, False), (errno.EACCES, True), (errno.EHOSTUNREACH, False),
               (errno.EHOSTUNREACH, False), (errno.ECONNREFUSED, True), (errno.EACCES, True), (errno.EACCES, True))


@dataclasses.dataclass(eq=False)
class Inet6Dst:
    """sk_dst_cache of an IPv6 socket: the route a lookup gave, or once a
    packet too big lowered its MTU the RTF_CACHE clone that carries it."""

    rt: Rt6Info

    @property
    def dev(self):
        return self.rt.dev

    def dst_mtu(self) -> int:
        return ip6_output.ip6_dst_mtu(self.rt)

    @property
    def advmss(self) -> int:
        """ip6_default_advmss(): the MTU less 60, at least min_adv_mss."""
        mss = max(self.dst_mtu() - IPV6_HLEN - TCP_HLEN, IP6_RT_MIN_ADVMSS)
        return IPV6_MAXPLEN if mss > IPV6_MAXPLEN - TCP_HLEN else mss


def rol32(word: int, shift: int) -> int:
    return ((word << shift) | (word >> (32 - shift))) & 0xFFFFFFFF


def flowlabel_of_hash(txhash: int) -> int:
    """ip6_make_flowlabel() with auto_flowlabels 1 from the skb's hash (the socket's sk_txhash)."""
    return rol32(txhash, 16) & IPV6_FLOWLABEL_MASK


def net_tx_rndhash(net) -> int:
    return net.random.getrandbits(32) or 1


def inet6_csk_route_socket(sk: TcpSock) -> Inet6Dst | int:
    """ipv6_specific.rebuild_header(): the route to the peer, or an errno."""
    looked_up = ip6_output.ip6_dst_lookup(sk.net, sk.daddr, sk.saddr)
    if looked_up.__class__ is int:
        return looked_up
    return Inet6Dst(looked_up[0])


def ip6_xmit_header(saddr: bytes, daddr: bytes, length: int, rt: Rt6Info, tclass: int, txhash: int) -> bytearray:
    """ip6_xmit()'s header for a TCP segment: the route's hop limit, the flow label of the hash."""
    return ipv6.build_header(saddr, daddr, NEXTHDR_TCP, length, ip6_output.ip6_dst_hoplimit(rt), tclass,
                             flowlabel_of_hash(txhash))


def inet6_csk_xmit(sk: TcpSock, segment: bytearray, why: str, summary, gso_size: int = 0, gso_segs: int = 1) -> int:
    """ipv6_specific.queue_xmit(): ip6_xmit() of a connected socket's segment;
    EHOSTUNREACH (or the route's error) when there is no route."""
    net = sk.net
    dst = sk.dst
    if dst is None:
        dst = inet6_csk_route_socket(sk)
        if dst.__class__ is int:
            return dst
        sk.dst = dst
    header = ip6_xmit_header(sk.saddr, sk.daddr, len(segment), dst.rt, sk.tos, sk.sk_txhash)
    skb = tcp_output.tcp_skb_xmit_start(net, header + segment, IPV6_HLEN, dst.rt, summary, sk)
    skb.gso_size, skb.gso_segs = gso_size, gso_segs if gso_size else 0
    ip6_output.ip6_local_out(skb)
    return 0


# --- receive

def tcp_v6_rcv(skb: SkBuff) -> bool:
    """The handler of next header 6 (never resubmits)."""
    tcp_rcv(skb, TCP_V6_RCV)
    return False


def tcp_v6_checksum_ok(buf: bytearray, nh: int, th: int, end: int) -> bool:
    return not checksum(memoryview(buf)[th:end], ipv6.pseudo_header_sum(buf, nh, NEXTHDR_TCP, end - th))


def _ipv6_addresses(buf: bytearray, nh: int) -> tuple[bytes, bytes]:
    return ADDRS.unpack_from(buf, nh)


def _ipv6_dsfield(buf: bytearray, nh: int) -> int:
    return ipv6.Ipv6Packet(buf, nh).tclass


def tcp_v6_cookie_check(listener: TcpSock, cb: TcpCb) -> TcpSock | None:
    return syncookies.tcp_cookie_check(listener, cb, TCP6_REQUEST_SOCK_OPS)


def tcp_v6_conn_request(sk: TcpSock, cb: TcpCb, tw_isn: int = 0) -> None:
    """An IPv4 SYN to a dual-stack listener is IPv4's; an IPv6 one to a
    destination that is not local unicast, or from a v4-mapped source, is dropped."""
    skb = cb.skb
    if skb.protocol == ETH_P_IP:
        return tcp_v4_conn_request(sk, cb, tw_isn)
    if skb.dst.type is not RTN_LOCAL:
        return tcp_listendrop(sk)
    if ipv6_addr_v4mapped(ADDRS.unpack_from(skb.buf, skb.network_header)[0]):
        return None
    tcp_conn_request(sk, cb, TCP6_REQUEST_SOCK_OPS, tw_isn)


def tcp_v6_route_req(net, req: RequestSock) -> Inet6Dst | int:
    """inet6_csk_route_req(): the route back to the peer, from the address the SYN came to."""
    looked_up = ip6_output.ip6_dst_lookup(net, req.ir_rmt_addr, req.ir_loc_addr)
    return looked_up if looked_up.__class__ is int else Inet6Dst(looked_up[0])


def tcp_v6_send_synack(sk: TcpSock, req: RequestSock) -> int:
    """ip6_xmit() of the SYN-ACK: the listener's traffic class (0), the
    request's own flow hash."""
    net = sk.net
    dst = tcp_v6_route_req(net, req)
    if dst.__class__ is int:
        return dst
    if not req.txhash:
        req.txhash = net_tx_rndhash(net)
    segment, summary = tcp_output.tcp_make_synack(sk, req, dst)
    header = ip6_xmit_header(req.ir_loc_addr, req.ir_rmt_addr, len(segment), dst.rt, 0, req.txhash)
    ip6_output.ip6_local_out(tcp_output.tcp_skb_xmit_start(net, header + segment, IPV6_HLEN, dst.rt, summary))
    return 0


def tcp_v6_syn_recv_sock(sk: TcpSock, cb: TcpCb, req: RequestSock) -> TcpSock | None:
    """The child of a completed handshake: over IPv4 (a dual-stack listener's)
    tcp_v4_syn_recv_sock()'s, then ipv6_mapped and its MSS synced again;
    over IPv6 its route, MSS and advertised MSS, hashed and holding the port.
    None with the accept queue full (ListenOverflows, ListenDrops)."""
    if cb.skb.protocol == ETH_P_IP:
        child = tcp_v4_syn_recv_sock(sk, cb, req)
        if child is not None:
            child.icsk_af_ops = IPV6_MAPPED
            tcp_output.tcp_sync_mss(child, child.icsk_pmtu_cookie)
        return child
    net = sk.net
    if sk_acceptq_is_full(sk):
        net.mib.net_statistics[LINUX_MIB_LISTENOVERFLOWS] += 1
        tcp_listendrop(sk)
        return None
    dst = tcp_v6_route_req(net, req)
    if dst.__class__ is int:
        tcp_listendrop(sk)
        return None
    child = tcp_create_openreq_child(sk, req, cb)
    child.sk_txhash = req.txhash
    return tcp_child_routed(net, sk, child, dst)


# --- the control socket's replies

def tcp_v6_send_response(skb: SkBuff, seq: int, ack: int, win: int, tsval: int, tsecr: int, rst: bool,
                         tclass: int, txhash: int, why: str) -> None:
    """tcp_v6_send_response() from net->ipv6.tcp_sk: the ports and addresses
    of `skb` swapped, a timestamp when there is an echo, ACK unless a RST
    answers an ACK; the route's hop limit, `tclass` less ECN, the flow label
    of `txhash` (a socket's) or of the flow."""
    net, buf, nh = skb.net, skb.buf, skb.network_header
    saddr, daddr = ADDRS.unpack_from(buf, nh)
    th = skb.transport_header
    sport, dport = tcp.PORTS.unpack_from(buf, th)
    flags = TCPHDR_RST if rst else 0
    if not rst or not buf[th + tcp.FLAGS] & TCPHDR_ACK:
        flags |= TCPHDR_ACK
    options = tcp.timestamp_options(tsval, tsecr) if tsecr else b""
    segment = tcp.build_segment(daddr, saddr, dport, sport, seq, ack if flags & TCPHDR_ACK else 0, flags, win,
                                options)
    looked_up = ip6_output.ip6_dst_lookup(net, saddr, daddr)
    if looked_up.__class__ is int:
        return
    rt = looked_up[0]
    flowlabel = flowlabel_of_hash(txhash) if txhash else ip6_make_flowlabel(net, daddr, saddr, NEXTHDR_TCP, 0)
    header = ipv6.build_header(daddr, saddr, NEXTHDR_TCP, len(segment), ip6_output.ip6_dst_hoplimit(rt),
                               tclass & ~0x03, flowlabel)
    reply = alloc_skb(header + segment)
    reply.net, reply.dst, reply.dev = net, rt, rt.dev
    reply.network_header, reply.transport_header = reply.data, reply.data + IPV6_HLEN
    mib = net.mib.tcp_statistics
    mib[TCP_MIB_OUTSEGS] += 1
    if rst:
        mib[TCP_MIB_OUTRSTS] += 1
    net.tracer.start(reply, f"{why}: {ipv6.Ipv6Packet(reply.buf, reply.data).summary()}", parent=skb)
    ip6_output.ip6_local_out(reply)


def tcp_v6_send_reset(skb: SkBuff, txhash: int = 0) -> None:
    """The RST answering `skb` (none to a RST, nor off a route that is not
    local unicast), with its traffic class."""
    buf = skb.buf
    if buf[skb.transport_header + tcp.FLAGS] & TCPHDR_RST or skb.dst.type is not RTN_LOCAL:
        return
    seq, ack_seq, _ = reset_segment(buf, skb.transport_header, skb.tail)
    tcp_v6_send_response(skb, seq, ack_seq, 0, 0, 0, True, _ipv6_dsfield(buf, skb.network_header), txhash,
                         "tcp_v6_send_reset")


def tcp_v6_reqsk_send_reset(sk: TcpSock, cb: TcpCb) -> None:
    tcp_v6_send_reset(cb.skb)


def tcp_v6_timewait_ack(tw, skb: SkBuff) -> None:
    tsval = (tcp_clock_ms(tw.net) + tw.tw_ts_offset) & 0xFFFFFFFF
    tcp_v6_send_response(skb, tw.tw_snd_nxt, tw.tw_rcv_nxt, tw.tw_rcv_wnd >> tw.tw_rcv_wscale, tsval,
                         tw.tw_ts_recent, False, tw.tw_tclass, tw.tw_txhash, "tcp_v6_timewait_ack")


def tcp_v6_reqsk_send_ack(sk: TcpSock, cb: TcpCb, req: RequestSock) -> None:
    tsval = (tcp_clock_ms(sk.net) + req.ts_off) & 0xFFFFFFFF
    skb = cb.skb
    tcp_v6_send_response(skb, (req.snt_isn + 1) & 0xFFFFFFFF, (req.rcv_isn + 1) & 0xFFFFFFFF,
                         min(req.rsk_rcv_wnd >> req.rcv_wscale, 65535), tsval,
                         req.ts_recent if req.tstamp_ok else 0, False, _ipv6_dsfield(skb.buf, skb.network_header),
                         req.txhash, "tcp_v6_reqsk_send_ack")


# --- bind() and connect()

def inet6_bind(sk: TcpSock, addr: bytes, port: int) -> None:
    """__inet6_bind(): a multicast address is EINVAL; a v4-mapped one must be
    a local IPv4 address (or 0.0.0.0) and the socket not IPV6_V6ONLY (EINVAL);
    another one a local, not tentative, IPv6 address (EADDRNOTAVAIL), and a
    link-local one needs a scope id (EINVAL: none is given here); bound to
    a specific IPv6 address the socket takes no IPv4 (sk_ipv6only). Then a
    port free on the address, as inet_bind() takes it."""
    net = sk.net
    addr_type = ipv6.ipv6_addr_type(addr)
    if addr_type & IPV6_ADDR_MULTICAST:
        raise OSError(errno.EINVAL, "bind: a multicast address")
    if ipv6_addr_v4mapped(addr):
        if sk.ipv6only:
            raise OSError(errno.EINVAL, "bind: a v4-mapped address on an IPV6_V6ONLY socket")
        v4addr = int.from_bytes(addr[12:], "big")
        if v4addr and not _ipv4_is_local(net, v4addr):
            raise OSError(errno.EADDRNOTAVAIL, f"bind: {ipv6.addr_str(addr)} is not a local address")
    elif addr != ipv6.ANY:
        if addr_type & IPV6_ADDR_LINKLOCAL:
            raise OSError(errno.EINVAL, "bind: a link-local address needs a scope id")
        if not addrconf.ipv6_chk_addr(net, addr):
            raise OSError(errno.EADDRNOTAVAIL, f"bind: {ipv6.addr_str(addr)} is not a local address")
    if sk.state != TCP_CLOSE or sk.sport:
        raise OSError(errno.EINVAL, "bind: the socket is already bound")
    sk.rcv_saddr = sk.saddr = addr
    err = inet_csk_get_port(net, sk, port)
    if err:
        sk.rcv_saddr = sk.saddr = ipv6.ANY
        raise OSError(err, f"bind: port {port}: {errno.errorcode[err]}")
    if addr != ipv6.ANY and not ipv6_addr_v4mapped(addr):
        sk.ipv6only = True
    if port:
        sk.sk_userlocks |= SOCK_BINDPORT_LOCK


def _ipv4_is_local(net, addr: int) -> bool:
    rt = route4.ip_route_output(net, addr)
    return not isinstance(rt, int) and rt.type is RTN_LOCAL


# --- connect()

def tcp_v6_connect(sk: TcpSock, daddr: bytes, dport: int) -> None:
    """connect(): :: means ::1; a multicast peer is ENETUNREACH; a v4-mapped
    one goes through tcp_v4_connect() with ipv6_mapped (ENETUNREACH on an
    IPV6_V6ONLY socket); else the route and source address, a local port,
    the ISN, the timestamp offset and sk_txhash, then the SYN with MSS
    clamped to 1220 until the peer offers one."""
    net = sk.net
    if sk.state != TCP_CLOSE:
        raise OSError(errno.EISCONN if sk.state != TCP_SYN_SENT else errno.EALREADY,
                      "connect: the socket is already connected or connecting")
    if daddr == ipv6.ANY:
        daddr = ipv6.LOOPBACK
    if ipv6.ipv6_addr_type(daddr) & IPV6_ADDR_MULTICAST:
        raise OSError(errno.ENETUNREACH, "connect: a multicast destination")
    if ipv6_addr_v4mapped(daddr):
        if sk.ipv6only:
            raise OSError(errno.ENETUNREACH, "connect: a v4-mapped destination on an IPV6_V6ONLY socket")
        sk.saddr = sk.rcv_saddr = inet_sk_rcv_saddr(sk)
        sk.icsk_af_ops = IPV6_MAPPED
        try:
            tcp_v4_connect(sk, int.from_bytes(daddr[12:], "big"), dport)
        except OSError:
            sk.icsk_af_ops = IPV6_SPECIFIC
            raise
        return
    if not dport:
        raise OSError(errno.ECONNREFUSED, "connect: port 0")
    looked_up = ip6_output.ip6_dst_lookup(net, daddr, sk.rcv_saddr if sk.rcv_saddr != ipv6.ANY else None)
    if looked_up.__class__ is int:
        raise OSError(looked_up, f"connect: no route to {ipv6.addr_str(daddr)}")
    rt, saddr = looked_up
    sk.saddr = sk.rcv_saddr = saddr
    sk.daddr, sk.dport = daddr, dport
    sk.rx_opt.mss_clamp = TCP_V6_MSS_CLAMP
    tcp_set_state(sk, TCP_SYN_SENT)
    err, tw = inet_hash_connect(net, sk)
    if err:
        tcp_set_state(sk, TCP_CLOSE)
        sk.daddr, sk.dport = ipv6.ANY, 0
        raise OSError(err, "connect: no free local port for this destination")
    if tw is not None:
        sk.write_seq = (tw.tw_snd_nxt + 65535 + 2) & 0xFFFFFFFF or 1
        sk.rx_opt.ts_recent, sk.rx_opt.ts_recent_stamp = tw.tw_ts_recent, tw.tw_ts_recent_stamp
        inet_twsk_deschedule_put(tw)
    inet_ehash_insert(net.tcp_hashinfo, (sk.rcv_saddr, sk.sport, sk.daddr, sk.dport), sk)
    sk.dst = Inet6Dst(rt)
    sk.sk_txhash = net_tx_rndhash(net)  # sk_set_txhash()
    if not sk.write_seq:
        sk.write_seq = net.random.getrandbits(32)
    sk.tsoffset = secure_tcp_ts_off(net, sk.saddr, daddr)
    tcp_output.tcp_connect(sk)


# --- ICMPv6 errors

def tcp_v6_err(skb: SkBuff, icmp_type: int, code: int, info: int, offset: int) -> None:
    """The error about the segment quoted at `offset` of skb.data (its IPv6
    header at skb.data), for the socket that sent it: a request sock goes
    when the error is fatal (tcp_req_err()); a packet too big under 1280 is
    ignored; any other error ends a connection still in its handshake
    (tcp_done_with_error(): connect() fails with it) and is a soft error of
    an established one (no IPV6_RECVERR here)."""
    net, buf = skb.net, skb.buf
    quoted = skb.data
    saddr, daddr = ADDRS.unpack_from(buf, quoted)
    sport, dport = tcp.PORTS.unpack_from(buf, quoted + offset)
    seq = tcp.unpack(buf, quoted + offset)[2]
    sk = net.tcp_hashinfo.ehash.get((saddr, sport, daddr, dport))
    if sk is None or sk.state == TCP_TIME_WAIT:
        return
    err, fatal = icmpv6_err_convert(icmp_type, code)
    if sk.state == TCP_NEW_SYN_RECV:
        return tcp_req_err(sk, seq, fatal)
    if sk.state == TCP_CLOSE or before(seq, sk.snd_una) or before(sk.snd_nxt, seq):
        return  # out of the window (OutOfWindowIcmps)
    if icmp_type == ICMPV6_PKT_TOOBIG:
        if info < IPV6_MIN_MTU:
            return
        sk.mtu_info = info
        net.tracer.hop(skb, Stage.SOCKET, f"tcp {sk.sport}", "PKT_TOOBIG", f"mtu {info}")
        tcp_v6_mtu_reduced(sk)
        return
    if sk.state in (TCP_SYN_SENT, TCP_SYN_RECV):
        sk.err = err
        tcp_done(sk)
        return
    sk.err_soft = err


def tcp_req_err(req: RequestSock, seq: int, abort: bool) -> None:
    """An error about a SYN-ACK: a fatal one drops the request (ListenDrops)."""
    if seq != req.snt_isn:
        return  # OutOfWindowIcmps
    if abort:
        inet_csk_reqsk_queue_drop(req.listener, req)
        tcp_listendrop(req.listener)


def icmpv6_err_convert(icmp_type: int, code: int) -> tuple[int, bool]:
    """(errno, fatal) of an ICMPv6 error."""
    if icmp_type == ICMPV6_DEST_UNREACH:
        return TAB_UNREACH[code] if code < len(TAB_UNREACH) else (errno.EPROTO, True)
    if icmp_type == ICMPV6_PARAMPROB:
        return errno.EPROTO, True
    return (errno.EHOSTUNREACH if icmp_type == ICMPV6_TIME_EXCEED else errno.EPROTO), False


def tcp_v6_mtu_reduced(sk: TcpSock) -> None:
    """inet6_csk_update_pmtu(): the route's clone with the new MTU (only ever
    lower); with the MSS synced to it, what was sent at the old size goes
    again (tcp_simple_retransmit())."""
    if sk.state in (TCP_LISTEN, TCP_CLOSE):
        return
    dst = sk.dst if sk.dst is not None else inet6_csk_route_socket(sk)
    if dst.__class__ is int:
        return
    mtu = sk.mtu_info
    if mtu < dst.dst_mtu():
        dst = Inet6Dst(dataclasses.replace(dst.rt, mtu=mtu))
    sk.dst = dst
    if sk.icsk_pmtu_cookie > dst.dst_mtu():
        tcp_output.tcp_sync_mss(sk, dst.dst_mtu())
        tcp_simple_retransmit(sk)


# --- /proc/net/tcp6

USER_HZ = 100  # clock_t ticks, what /proc prints times in
TCP6_SEQ_HEADER = ("  sl  local_address                         remote_address                        "
                   "st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
# %pK with kptr_restrict: the mock's sockets have no kernel address to hash
KERNEL_POINTER = "0" * 16


def jiffies_to_clock_t(j: int) -> int:
    return j * USER_HZ // HZ


def _clock_t_until(net, expires: float) -> int:
    """jiffies_delta_to_clock_t(): what is left of a timer, never below 0."""
    return jiffies_to_clock_t(max(jiffies(expires) - jiffies(net.clock.now), 0))


def _addr6_port(addr: int | bytes, port: int) -> str:
    """s6_addr32[0..3] as %08X each (host order: little-endian words), and the port."""
    addr = v4mapped(addr) if addr.__class__ is int else addr
    return "".join(f"{int.from_bytes(addr[i:i + 4], 'little'):08X}" for i in range(0, 16, 4)) + f":{port:04X}"


def _get_tcp6_sock(sk: TcpSock, i: int) -> str:
    """get_tcp6_sock(): a full socket."""
    net = sk.net
    if sk.icsk_pending in (ICSK_TIME_RETRANS, ICSK_TIME_REO_TIMEOUT, ICSK_TIME_LOSS_PROBE):
        timer_active, expires = 1, sk.icsk_timeout
    elif sk.icsk_pending == ICSK_TIME_PROBE0:
        timer_active, expires = 4, sk.icsk_timeout
    elif sk.sk_timer is not None and sk.sk_timer.pending:
        timer_active, expires = 2, sk.sk_timer.expires
    else:
        timer_active, expires = 0, net.clock.now
    listening = sk.state == TCP_LISTEN
    rx_queue = len(sk.accept_queue) if listening else max(_s32(sk.rcv_nxt - sk.copied_seq), 0)
    ack = sk.icsk_ack
    pingpong = ack.pingpong >= net.sysctl.values["net.ipv4.tcp_pingpong_thresh"]
    ssthresh = 0 if listening else (-1 if sk.snd_ssthresh >= TCP_INFINITE_SSTHRESH else sk.snd_ssthresh)
    return (f"{i:4d}: {_addr6_port(sk.rcv_saddr, sk.sport)} {_addr6_port(sk.daddr, sk.dport)} "
            f"{int(sk.state):02X} {(sk.write_seq - sk.snd_una) & 0xFFFFFFFF:08X}:{rx_queue:08X} "
            f"{timer_active:02X}:{_clock_t_until(net, expires):08X} {sk.retransmits:08X} {0:5d} "
            f"{sk.probes_out:8d} 0 1 {KERNEL_POINTER} {jiffies_to_clock_t(jiffies(sk.rto))} "
            f"{jiffies_to_clock_t(jiffies(ack.ato))} {(ack.quick << 1) | pingpong} {sk.snd_cwnd} {ssthresh}\n")


def _get_openreq6(req: RequestSock, i: int) -> str:
    timer = req.rsk_timer
    ttd = _clock_t_until(req.listener.net, timer.expires) if timer is not None and timer.pending else 0
    return (f"{i:4d}: {_addr6_port(req.ir_loc_addr, req.ir_num)} {_addr6_port(req.ir_rmt_addr, req.ir_rmt_port)} "
            f"{TCP_SYN_RECV:02X} {0:08X}:{0:08X} {1:02X}:{ttd:08X} {req.num_timeout:08X} {0:5d} {0:8d} 0 0 "
            f"{KERNEL_POINTER}\n")


def _get_timewait6_sock(tw, i: int) -> str:
    delta = _clock_t_until(tw.net, tw.tw_timer.expires) if tw.tw_timer is not None and tw.tw_timer.pending else 0
    return (f"{i:4d}: {_addr6_port(tw.rcv_saddr, tw.sport)} {_addr6_port(tw.daddr, tw.dport)} "
            f"{int(tw.tw_substate):02X} {0:08X}:{0:08X} {3:02X}:{delta:08X} {0:08X} {0:5d} {0:8d} 0 1 "
            f"{KERNEL_POINTER}\n")


def tcp6_seq_show(net) -> str:
    """tcp6_seq_show() over tcp_seq_start()'s walk: the AF_INET6 listeners, then
    the established table's AF_INET6 sockets (request socks of AF_INET6
    listeners, TIME_WAIT socks). The mock's sockets have no inode (0), a
    reference count of 1 and no kernel address (%pK zeros)."""
    hashinfo = net.tcp_hashinfo
    socks = [sk for listeners in hashinfo.listening.values() for sk in listeners if sk.family == AF_INET6]
    socks += [sk for sk in hashinfo.ehash.values()
              if (sk.listener.family if sk.state == TCP_NEW_SYN_RECV else sk.family) == AF_INET6]
    lines = [TCP6_SEQ_HEADER]
    for i, sk in enumerate(socks):
        if sk.state == TCP_TIME_WAIT:
            lines.append(_get_timewait6_sock(sk, i))
        elif sk.state == TCP_NEW_SYN_RECV:
            lines.append(_get_openreq6(sk, i))
        else:
            lines.append(_get_tcp6_sock(sk, i))
    return "".join(lines)


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


# --- the family's tables

TCP_V6_RCV = TcpRcvFamily("tcp_v6_rcv", "tcp_v6_do_rcv", tcp_v6_checksum_ok, _ipv6_addresses,
                          inet6_lookup_listener, tcp_v6_cookie_check, tcp_v6_send_reset, tcp_v6_timewait_ack)
# tcp6_request_sock_ops + tcp_request_sock_ipv6_ops: how a request over IPv6 is made and answered
TCP6_REQUEST_SOCK_OPS = SimpleNamespace(family=AF_INET6, mss_clamp=TCP_V6_MSS_CLAMP, addresses=_ipv6_addresses,
                                        dsfield=_ipv6_dsfield, route_req=tcp_v6_route_req,
                                        msstab=syncookies.MSSTAB6, cookie_init_seq=syncookies.cookie_init_sequence,
                                        cookie_check="cookie_v6_check",
                                        send_synack=tcp_v6_send_synack, send_ack=tcp_v6_reqsk_send_ack,
                                        send_reset=tcp_v6_reqsk_send_reset, rtx_synack=tcp_timer.tcp_rtx_synack)
IPV6_SPECIFIC = InetConnectionSockAfOps("ipv6_specific", AF_INET6, IPV6_HLEN, inet6_csk_xmit, inet6_csk_route_socket,
                                        tcp_v6_conn_request, tcp_v6_syn_recv_sock)
# TCP over IPv4 from an AF_INET6 socket: IPv4's calls, the family's connection handlers
IPV6_MAPPED = InetConnectionSockAfOps("ipv6_mapped", IPV4_SPECIFIC.family, IPV4_SPECIFIC.net_header_len,
                                      IPV4_SPECIFIC.queue_xmit, IPV4_SPECIFIC.rebuild_header, tcp_v6_conn_request,
                                      tcp_v6_syn_recv_sock)
TCPV6_PROT = Proto("TCPv6", AF_INET6, IPV6_SPECIFIC, tcp_v6_connect, ipv6.ANY)


def tcpv6_init(net) -> None:
    """The handlers of next header 6 and /proc/net/tcp6 (tcp6_proc_init())."""
    inet6_add_protocol(tcp_v6_rcv, NEXTHDR_TCP, tcp_v6_err)
    net.proc_net["tcp6"] = tcp6_seq_show
