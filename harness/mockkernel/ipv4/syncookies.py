"""SYN cookies (net/ipv4/syncookies.c, net/ipv6/syncookies.c, tcp_syn_flood_action()
of tcp_input.c), for both families: over IPv6 the hash takes the 16-byte
addresses and msstab is msstab6's (1220, 1420, 1440, 8940: the MTUs 1280, 1480,
1500 and 9000 less 60).

With tcp_syncookies 1 a listener whose SYN queue is over its backlog answers a
SYN with a SYN-ACK whose ISN is a cookie and keeps no request sock (2: every
SYN). The cookie is built as secure_tcp_syn_cookie() builds it: a keyed hash of
the 4-tuple plus the peer's ISN, the minute counter in the top 8 bits, and in
the low 24 bits a second hash (of the minute) plus the index of the MSS in
msstab (536, 1300, 1440, 1460: the largest not above the peer's MSS; the
family's request ops carry it). The hash
is BLAKE2s keyed with a random secret where the kernel uses siphash, so cookies
are not the kernel's bit for bit; what they encode and how they are checked
is. With timestamps, the SYN-ACK's TSval carries the peer's window scale (0xf:
none) and SACK-permitted in its low 6 bits (cookie_init_timestamp()), which
the ACK's TSecr gives back (cookie_timestamp_decode()); without timestamps the
connection has neither. The ACK completing the handshake is checked when the
listener has overflowed in the last two minutes (tcp_synq_no_recent_overflow()):
a cookie up to two minutes old gives a child socket (SyncookiesRecv), a bad
one SyncookiesFailed and the listener's RST. SyncookiesSent counts cookies
sent; TCPReqQFullDoCookies/TCPReqQFullDrop the SYN-queue overflows.
"""
from __future__ import annotations

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.skbuff import kfree_skb
from harness.mockkernel.core.snmp import LINUX_MIB
from harness.mockkernel.ipv4 import tcp_output
from harness.mockkernel.ipv4.tcp_input import TcpCb, tcp_parse_options
from harness.mockkernel.ipv4.inet_hashtables import addr_key, keyed_hash32, secure_tcp_ts_off
from harness.mockkernel.ipv4.tcp_sock import RequestSock, TcpOptionsReceived, TcpSock, tcp_clock_ms
from harness.mockkernel.wire.tcp import PORTS, TCPHDR_ACK, TCPHDR_RST, TCPHDR_SYN

MSSTAB = (536, 1300, 1440, 1460)
MSSTAB6 = (1280 - 60, 1480 - 60, 1500 - 60, 9000 - 60)
COOKIEBITS = 24
COOKIEMASK = (1 << COOKIEBITS) - 1
MAX_SYNCOOKIE_AGE = 2  # minutes
TCP_SYNCOOKIE_VALID = 120.0  # seconds an overflow keeps ACKs checked as cookies
TSBITS = 6
TS_OPT_WSCALE_MASK, TS_OPT_SACK = 0xF, 1 << 4
LINUX_MIB_SYNCOOKIESSENT = LINUX_MIB["SyncookiesSent"]
LINUX_MIB_SYNCOOKIESRECV = LINUX_MIB["SyncookiesRecv"]
LINUX_MIB_SYNCOOKIESFAILED = LINUX_MIB["SyncookiesFailed"]
LINUX_MIB_TCPREQQFULLDOCOOKIES = LINUX_MIB["TCPReqQFullDoCookies"]
LINUX_MIB_TCPREQQFULLDROP = LINUX_MIB["TCPReqQFullDrop"]


def tcp_syn_flood_action(listener: TcpSock) -> bool:
    """True when the SYN gets a cookie instead of a request sock."""
    net = listener.net
    if net.sysctl.values["net.ipv4.tcp_syncookies"]:
        net.mib.net_statistics[LINUX_MIB_TCPREQQFULLDOCOOKIES] += 1
        return True
    net.mib.net_statistics[LINUX_MIB_TCPREQQFULLDROP] += 1
    return False


def cookie_hash(net, saddr: int | bytes, daddr: int | bytes, sport: int, dport: int, count: int, c: int) -> int:
    return keyed_hash32(net, b"syncookie%d %s %s %d %d %d" % (c, addr_key(saddr), addr_key(daddr), sport, dport,
                                                               count))


def tcp_cookie_time(net) -> int:
    """The minute counter (jiffies / (HZ * 60))."""
    return int(net.clock.now // 60) & 0xFFFFFFFF


def secure_tcp_syn_cookie(net, saddr: int | bytes, daddr: int | bytes, sport: int, dport: int, sseq: int,
                          data: int) -> int:
    count = tcp_cookie_time(net)
    return (cookie_hash(net, saddr, daddr, sport, dport, 0, 0) + sseq + (count << COOKIEBITS)
            + ((cookie_hash(net, saddr, daddr, sport, dport, count, 1) + data) & COOKIEMASK)) & 0xFFFFFFFF


def check_tcp_syn_cookie(net, cookie: int, saddr: int | bytes, daddr: int | bytes, sport: int, dport: int,
                         sseq: int) -> int:
    """The data the cookie carries, or 0xFFFFFFFF when it is too old."""
    count = tcp_cookie_time(net)
    cookie = (cookie - cookie_hash(net, saddr, daddr, sport, dport, 0, 0) - sseq) & 0xFFFFFFFF
    diff = (count - (cookie >> COOKIEBITS)) & (0xFFFFFFFF >> COOKIEBITS)
    if diff >= MAX_SYNCOOKIE_AGE:
        return 0xFFFFFFFF
    return (cookie - cookie_hash(net, saddr, daddr, sport, dport, (count - diff) & 0xFFFFFFFF, 1)) & COOKIEMASK


def cookie_init_timestamp(req: RequestSock, now_ms: int) -> int:
    """The SYN-ACK's TSval (before ts_off): now, its low bits the options."""
    options = req.snd_wscale if req.wscale_ok else TS_OPT_WSCALE_MASK
    if req.sack_ok:
        options |= TS_OPT_SACK
    ts = (now_ms >> TSBITS << TSBITS) | options
    if ts > now_ms:
        ts -= 1 << TSBITS
    return ts & 0xFFFFFFFF


def cookie_init_sequence(listener: TcpSock, cb: TcpCb, req: RequestSock) -> int:
    """cookie_v4_init_sequence(), cookie_v6_init_sequence(): the cookie ISN;
    req.mss becomes the entry of the family's msstab it encodes."""
    net = listener.net
    msstab = req.rsk_ops.msstab
    mssind = next(index for index in range(len(msstab) - 1, -1, -1) if req.mss >= msstab[index] or index == 0)
    req.mss = msstab[mssind]
    req.cookie_ts = True
    if req.tstamp_ok:
        req.cookie_tsval = cookie_init_timestamp(req, tcp_clock_ms(net))
    tcp_synq_overflow(listener)
    net.mib.net_statistics[LINUX_MIB_SYNCOOKIESSENT] += 1
    return secure_tcp_syn_cookie(net, req.ir_rmt_addr, req.ir_loc_addr, req.ir_rmt_port, req.ir_num, cb.seq, mssind)


def tcp_synq_overflow(listener: TcpSock) -> None:
    listener.last_synq_overflow = listener.net.clock.now


def tcp_synq_no_recent_overflow(listener: TcpSock) -> bool:
    last = listener.last_synq_overflow
    return last is None or listener.net.clock.now - last > TCP_SYNCOOKIE_VALID


def cookie_timestamp_decode(net, opt: TcpOptionsReceived) -> bool:
    """The options the TSecr carries back; False when the sysctls now refuse them."""
    if not opt.saw_tstamp:
        opt.sack_ok = opt.wscale_ok = False
        opt.snd_wscale = 0
        return True
    sysctl = net.sysctl.values
    if not sysctl["net.ipv4.tcp_timestamps"]:
        return False
    options = opt.rcv_tsecr
    opt.sack_ok = bool(options & TS_OPT_SACK)
    if opt.sack_ok and not sysctl["net.ipv4.tcp_sack"]:
        return False
    if options & TS_OPT_WSCALE_MASK == TS_OPT_WSCALE_MASK:
        return True
    opt.wscale_ok = True
    opt.snd_wscale = options & TS_OPT_WSCALE_MASK
    return bool(sysctl["net.ipv4.tcp_window_scaling"])


def tcp_cookie_check(listener: TcpSock, cb: TcpCb, rsk_ops) -> TcpSock | None:
    """cookie_v4_check(), cookie_v6_check() for a segment to a listener with no request sock:
    the listener itself when it is no cookie's ACK (or the cookie is bad),
    the child of a good one, None when the segment was dropped."""
    net = listener.net
    flags = cb.tcp_flags
    if flags & TCPHDR_SYN or not net.sysctl.values["net.ipv4.tcp_syncookies"] or not flags & TCPHDR_ACK \
            or flags & TCPHDR_RST:
        return listener
    if tcp_synq_no_recent_overflow(listener):
        return listener
    skb = cb.skb
    saddr, daddr = rsk_ops.addresses(skb.buf, skb.network_header)
    sport, dport = PORTS.unpack_from(skb.buf, cb.th)
    mssind = check_tcp_syn_cookie(net, (cb.ack_seq - 1) & 0xFFFFFFFF, saddr, daddr, sport, dport,
                                  (cb.seq - 1) & 0xFFFFFFFF)
    if mssind >= len(rsk_ops.msstab):
        net.mib.net_statistics[LINUX_MIB_SYNCOOKIESFAILED] += 1
        return listener
    net.mib.net_statistics[LINUX_MIB_SYNCOOKIESRECV] += 1
    opt = TcpOptionsReceived()
    tcp_parse_options(net, cb, opt, False)
    ts_off = secure_tcp_ts_off(net, daddr, saddr)
    if opt.saw_tstamp and opt.rcv_tsecr:
        opt.rcv_tsecr = (opt.rcv_tsecr - ts_off) & 0xFFFFFFFF
    if not cookie_timestamp_decode(net, opt):
        return listener
    req = RequestSock(listener, daddr, saddr, dport, sport, (cb.seq - 1) & 0xFFFFFFFF,
                      (cb.ack_seq - 1) & 0xFFFFFFFF, rsk_ops.msstab[mssind], snd_wscale=opt.snd_wscale,
                      wscale_ok=opt.wscale_ok, tstamp_ok=opt.saw_tstamp, sack_ok=opt.sack_ok,
                      ts_recent=opt.rcv_tsval if opt.saw_tstamp else 0, ts_off=ts_off if opt.saw_tstamp else 0,
                      tos=rsk_ops.dsfield(skb.buf, skb.network_header), cookie_ts=True, rsk_ops=rsk_ops)
    dst = rsk_ops.route_req(net, req)
    if isinstance(dst, int):
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.SOCKET, rsk_ops.cookie_check)
        return None
    tcp_output.tcp_openreq_init_rwin(req, listener, dst)
    child = listener.icsk_af_ops.syn_recv_sock(listener, cb, req)
    if child is None:
        kfree_skb(skb, DropReason.NO_SOCKET, Stage.SOCKET, rsk_ops.cookie_check)
        return None
    child.parent = listener
    listener.accept_queue.append(child)
    net.tracer.hop(skb, Stage.SOCKET, f"tcp {listener.sport}", "SYN_COOKIE_OK", f"mss {req.mss}")
    return child
