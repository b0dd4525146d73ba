"""TCP's socket tables (net/ipv4/inet_hashtables.c, inet_connection_sock.c).

struct inet_hashinfo, shared by IPv4 and IPv6 (net/ipv6/inet6_hashtables.c) as
tcp_hashinfo is: `ehash` holds established (and SYN_SENT...) sockets and
TIME_WAIT ones by their 4-tuple (integer addresses over IPv4, 16 bytes over
IPv6, so the families never meet), `listening` the listeners by port (lhash2),
`bhash` every socket holding a port (bind buckets). __inet_lookup_established()
is an exact match; __inet_lookup_listener() prefers a listener bound to the
destination over one bound to 0.0.0.0, and an AF_INET one over an AF_INET6
socket that takes IPv4 too (compute_score(): not IPV6_V6ONLY, bound to :: or
to the v4-mapped destination); inet6_lookup_listener() takes AF_INET6 sockets
only. inet_csk_get_port() refuses a port another socket holds on an
overlapping address (inet_rcv_saddr_equal(): across the families an AF_INET6
socket bound to :: overlaps every IPv4 address unless IPV6_V6ONLY) unless both
set SO_REUSEADDR and the other does not listen (inet_bind_conflict()); port 0 takes
a free one of ip_local_port_range, odd first (inet_csk_find_open_port()), while
connect() takes even ones first (__inet_hash_connect()), each from a random
offset where the kernel hashes a secret. A TIME_WAIT 4-tuple is free to
connect() when tcp_twsk_unique() says so. Left out: SO_REUSEPORT groups,
SO_BINDTODEVICE.
"""
from __future__ import annotations

import errno
import hashlib

from harness.mockkernel.ipv4.tcp_states import TCP_LISTEN, TCP_TIME_WAIT
from harness.mockkernel.wire.ipv6 import ANY as IN6ADDR_ANY, LOOPBACK as IN6ADDR_LOOPBACK

AF_INET, AF_INET6 = 2, 10
V4MAPPED_PREFIX = bytes(10) + b"\xff\xff"  # ::ffff:0:0/96
LOOPBACK4_IPV6 = 0x7F000006  # 127.0.0.6: an IPv6-only socket's inet_rcv_saddr, which no IPv4 packet is sent to


class InetBindBucket:
    """struct inet_bind_bucket: the holders of one port; fastreuse -1 marks a
    bucket connect() made, which only connect() shares."""

    __slots__ = ("owners", "fastreuse")

    def __init__(self, fastreuse: int) -> None:
        self.owners: list = []
        self.fastreuse = fastreuse


class InetHashinfo:
    """struct inet_hashinfo, one per namespace here (tcp_v4_init_net())."""

    __slots__ = ("ehash", "listening", "bhash", "tw_refcount", "net_secret")

    def __init__(self) -> None:
        self.net_secret: bytes | None = None  # net/core/secure_seq.c's, drawn at first use
        self.tw_refcount = 0  # tcp_death_row.tw_refcount: TIME_WAIT socks alive, against tcp_max_tw_buckets
        self.ehash: dict[tuple[int, int, int, int], object] = {}  # (local addr, local port, remote addr, remote port)
        self.listening: dict[int, list] = {}  # by local port
        self.bhash: dict[int, InetBindBucket] = {}  # by local port: every socket (and TIME_WAIT) holding it


def keyed_hash32(net, message: bytes) -> int:
    """The keyed hashes of net/core/secure_seq.c and syncookies.c (siphash
    there, BLAKE2s here), with the namespace's secret."""
    hashinfo = net.tcp_hashinfo
    if hashinfo.net_secret is None:
        hashinfo.net_secret = net.random.randbytes(16)  # net_get_random_once()
    return int.from_bytes(hashlib.blake2s(message, key=hashinfo.net_secret, digest_size=4).digest(), "big")


def addr_key(addr: int | bytes) -> bytes:
    return addr.hex().encode() if addr.__class__ is bytes else b"%d" % addr


def secure_tcp_ts_off(net, saddr: int | bytes, daddr: int | bytes) -> int:
    """The TSval offset of every connection between two addresses (with
    tcp_timestamps 1; secure_tcpv6_ts_off() for IPv6): a hash, so a SYN
    cookie's ACK can undo it."""
    return keyed_hash32(net, b"ts_off %s %s" % (addr_key(saddr), addr_key(daddr)))


def ipv6_addr_v4mapped(addr: bytes) -> bool:
    return addr[:12] == V4MAPPED_PREFIX


def v4mapped(addr: int) -> bytes:
    """ipv6_addr_set_v4mapped(): ::ffff:a.b.c.d."""
    return V4MAPPED_PREFIX + addr.to_bytes(4, "big")


def inet_sk_rcv_saddr(sk) -> int:
    """sk->sk_rcv_saddr, the bound IPv4 address the IPv4 tables compare: an
    AF_INET6 socket's is 0 when bound to ::, the IPv4 address of a v4-mapped
    one, else LOOPBACK4_IPV6 (inet6_bind())."""
    addr = sk.rcv_saddr
    if addr.__class__ is not bytes:
        return addr
    if addr == IN6ADDR_ANY:
        return 0
    return int.from_bytes(addr[12:], "big") if ipv6_addr_v4mapped(addr) else LOOPBACK4_IPV6


def inet6_sk_daddr(sk) -> bytes:
    """sk_v6_daddr of an AF_INET6 socket: v4-mapped while it talks IPv4."""
    addr = sk.daddr
    return addr if addr.__class__ is bytes else v4mapped(addr)


def inet6_rcv_saddr(sk) -> bytes | None:
    """sk_v6_rcv_saddr of an AF_INET6 socket (v4-mapped while it talks IPv4), None for AF_INET."""
    if sk.family != AF_INET6:
        return None
    addr = sk.rcv_saddr
    return addr if addr.__class__ is bytes else v4mapped(addr)


def ehash_key(sk) -> tuple[int, int, int, int]:
    return sk.rcv_saddr, sk.sport, sk.daddr, sk.dport


def __inet_lookup_established(hashinfo: InetHashinfo, saddr: int, sport: int, daddr: int, dport: int):
    """The socket (or TIME_WAIT sock) of a segment from saddr:sport to daddr:dport."""
    return hashinfo.ehash.get((daddr, dport, saddr, sport))


def __inet_lookup_listener(hashinfo: InetHashinfo, daddr: int, dport: int):
    """The listener of an IPv4 segment: lhash2's bucket of daddr before that of
    0.0.0.0, and in each compute_score() ranks an AF_INET socket above an
    AF_INET6 one, which takes IPv4 unless IPV6_V6ONLY."""
    best, best_score = None, 0
    for sk in hashinfo.listening.get(dport, ()):
        if sk.family == AF_INET:
            bound, score = sk.rcv_saddr, 2
        elif sk.ipv6only:
            continue
        else:
            bound, score = inet_sk_rcv_saddr(sk), 1
        if bound == daddr:
            score += 4
        elif bound:
            continue
        if score > best_score:
            best, best_score = sk, score
    return best


def inet6_lookup_listener(hashinfo: InetHashinfo, daddr: bytes, dport: int):
    """inet6_lookup_listener(): an AF_INET6 listener bound to daddr, else one bound to ::."""
    wildcard = None
    for sk in hashinfo.listening.get(dport, ()):
        if sk.family != AF_INET6:
            continue
        if sk.rcv_saddr == daddr:
            return sk
        if sk.rcv_saddr == IN6ADDR_ANY:
            wildcard = wildcard or sk
    return wildcard


def inet_ehash_insert(hashinfo: InetHashinfo, key: tuple[int, int, int, int], sk) -> None:
    """`sk` (a socket, request or TIME_WAIT sock) under (local addr, local port, remote addr, remote port)."""
    hashinfo.ehash[key] = sk


def inet_hash(hashinfo: InetHashinfo, sk) -> None:
    """A listener into lhash2 (inet_csk_listen_start())."""
    hashinfo.listening.setdefault(sk.sport, []).append(sk)


def inet_unhash(hashinfo: InetHashinfo, sk) -> None:
    if sk.state == TCP_LISTEN:
        listeners = hashinfo.listening.get(sk.sport, [])
        if sk in listeners:
            listeners.remove(sk)
        return
    key = ehash_key(sk)
    if hashinfo.ehash.get(key) is sk:
        del hashinfo.ehash[key]


def inet_bind_hash(hashinfo: InetHashinfo, sk, port: int, fastreuse: int = 0) -> None:
    sk.sport = port
    bucket = hashinfo.bhash.get(port)
    if bucket is None:
        bucket = hashinfo.bhash[port] = InetBindBucket(fastreuse)
    bucket.owners.append(sk)


def inet_put_port(hashinfo: InetHashinfo, sk) -> None:
    """The socket gives its port back (__inet_put_port())."""
    bucket = hashinfo.bhash.get(sk.sport)
    if bucket is not None and sk in bucket.owners:
        bucket.owners.remove(sk)
        if not bucket.owners:
            del hashinfo.bhash[sk.sport]


def ipv4_rcv_saddr_equal(sk1_rcv_saddr: int, sk2_rcv_saddr: int, sk2_ipv6only: bool) -> bool:
    """net/ipv4/inet_connection_sock.c ipv4_rcv_saddr_equal(), wildcards matching."""
    if sk2_ipv6only:
        return False
    return sk1_rcv_saddr == sk2_rcv_saddr or not sk1_rcv_saddr or not sk2_rcv_saddr


def ipv6_rcv_saddr_equal(sk1_rcv_saddr6: bytes, sk2_rcv_saddr6: bytes | None, sk1_rcv_saddr: int,
                         sk2_rcv_saddr: int, sk1_ipv6only: bool, sk2_ipv6only: bool) -> bool:
    """ipv6_rcv_saddr_equal(), wildcards matching: an AF_INET socket (no
    sk2_rcv_saddr6) counts as v4-mapped."""
    mapped1 = ipv6_addr_v4mapped(sk1_rcv_saddr6)
    mapped2 = sk2_rcv_saddr6 is None or ipv6_addr_v4mapped(sk2_rcv_saddr6)
    if mapped1 and mapped2:
        return ipv4_rcv_saddr_equal(sk1_rcv_saddr, sk2_rcv_saddr, sk2_ipv6only)
    any1, any2 = sk1_rcv_saddr6 == IN6ADDR_ANY, sk2_rcv_saddr6 == IN6ADDR_ANY
    if any1 and any2:
        return True
    if any2 and not (sk2_ipv6only and mapped1):
        return True
    if any1 and not (sk1_ipv6only and mapped2):
        return True
    return sk2_rcv_saddr6 is not None and sk1_rcv_saddr6 == sk2_rcv_saddr6


def inet_rcv_saddr_equal(sk, sk2) -> bool:
    """Whether two sockets' bound addresses overlap, across the families."""
    if sk.family == AF_INET6:
        return ipv6_rcv_saddr_equal(inet6_rcv_saddr(sk), inet6_rcv_saddr(sk2), inet_sk_rcv_saddr(sk),
                                    inet_sk_rcv_saddr(sk2), sk.ipv6only, sk2.family == AF_INET6 and sk2.ipv6only)
    return ipv4_rcv_saddr_equal(sk.rcv_saddr, inet_sk_rcv_saddr(sk2), sk2.family == AF_INET6 and sk2.ipv6only)


def inet_bind_conflict(hashinfo: InetHashinfo, sk, port: int) -> bool:
    """inet_bhash2_conflict()/inet_bind_conflict(): another holder of `port` on
    an overlapping address, unless both may reuse and it does not listen."""
    bucket = hashinfo.bhash.get(port)
    for other in bucket.owners if bucket else ():
        if other is sk:
            continue
        if not inet_rcv_saddr_equal(sk, other):
            continue
        if sk.sk_reuse and other.sk_reuse and other.state != TCP_LISTEN:
            continue
        return True
    return False


def inet_csk_get_port(net, sk, port: int) -> int:
    """Bind `sk` to `port` (0: a free one); 0, or the errno refusing it."""
    hashinfo = net.tcp_hashinfo
    if port:
        if inet_bind_conflict(hashinfo, sk, port):
            return errno.EADDRINUSE
        inet_bind_hash(hashinfo, sk, port)
        return 0
    low, high = net.sysctl.values["net.ipv4.ip_local_port_range"]
    for candidate in _port_candidates(net, low, high, first_parity=1):
        if candidate not in hashinfo.bhash:
            inet_bind_hash(hashinfo, sk, candidate)
            return 0
    return errno.EADDRINUSE


def _port_candidates(net, low: int, high: int, first_parity: int):
    """The ports of [low, high] from a random offset, those of `first_parity` first."""
    remaining = high - low + 1
    offset = net.random.randrange(remaining)
    for parity in (first_parity, 1 - first_parity):
        for step in range(remaining):
            port = low + (offset + step) % remaining
            if port % 2 == parity:
                yield port


def ipv4_is_loopback(addr: int) -> bool:
    return addr >> 24 == 127


def _is_loopback(addr: int | bytes) -> bool:
    """127/8, ::1 or ::ffff:127.0.0.0/104 (tcp_twsk_unique()'s test for either family)."""
    if addr.__class__ is bytes:
        return addr == IN6ADDR_LOOPBACK or (ipv6_addr_v4mapped(addr) and addr[12] == 127)
    return ipv4_is_loopback(addr)


def tcp_twsk_unique(net, tw, bound: bool) -> bool:
    """tcp_twsk_unique(): a TIME_WAIT 4-tuple that saw timestamps may be taken
    over by connect(): always from a port bind() chose, else with tcp_tw_reuse
    1 (2: only when either address is 127/8) once tcp_tw_reuse_delay ms have
    passed since it entered TIME_WAIT."""
    if tw.tw_ts_recent_stamp is None:
        return False
    if bound:
        return True
    reuse = net.sysctl.values["net.ipv4.tcp_tw_reuse"]
    if reuse == 2:
        reuse = _is_loopback(tw.daddr) or _is_loopback(tw.rcv_saddr)
    delay = net.sysctl.values["net.ipv4.tcp_tw_reuse_delay"] / 1000
    return bool(reuse) and net.clock.now > tw.tw_entry_stamp + delay


def inet_hash_connect(net, sk):
    """__inet_hash_connect(): the local port for a connect() to sk.daddr:sk.dport
    (sk.sport when bound), its 4-tuple not established; (errno, None), or
    (0, the TIME_WAIT sock it takes over, or None)."""
    hashinfo = net.tcp_hashinfo
    ehash = hashinfo.ehash

    def unique(port: int, bound: bool):
        """(free, the TIME_WAIT sock to recycle)."""
        other = ehash.get((sk.rcv_saddr, port, sk.daddr, sk.dport))
        if other is None:
            return True, None
        if other.state == TCP_TIME_WAIT and tcp_twsk_unique(net, other, bound):
            return True, other
        return False, None

    if sk.sport:
        free, tw = unique(sk.sport, True)
        return (0, tw) if free else (errno.EADDRNOTAVAIL, None)
    low, high = net.sysctl.values["net.ipv4.ip_local_port_range"]
    for port in _port_candidates(net, low, high, first_parity=0):
        bucket = hashinfo.bhash.get(port)
        if bucket is not None and bucket.fastreuse >= 0:
            continue  # a port bind() took is not shared with connect()
        free, tw = unique(port, False)
        if free:
            inet_bind_hash(hashinfo, sk, port, fastreuse=-1)
            return 0, tw
    return errno.EADDRNOTAVAIL, None
