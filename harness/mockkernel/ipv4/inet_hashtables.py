"""TCP's socket tables (net/ipv4/inet_hashtables.c, inet_connection_sock.c).

struct inet_hashinfo: `ehash` holds established (and SYN_SENT...) sockets and
TIME_WAIT ones by their 4-tuple, `listening` the listeners by port (lhash2),
`bhash` every socket holding a port (bind buckets). __inet_lookup_established()
is an exact match; __inet_lookup_listener() prefers a listener bound to the
destination over one bound to 0.0.0.0 (compute_score()). inet_csk_get_port()
refuses a port another socket holds on an overlapping address unless both set
SO_REUSEADDR and the other does not listen (inet_bind_conflict()); port 0 takes
a free one of ip_local_port_range, odd first (inet_csk_find_open_port()), while
connect() takes even ones first (__inet_hash_connect()), each from a random
offset where the kernel hashes a secret. A TIME_WAIT 4-tuple is free to
connect() when tcp_twsk_unique() says so. Left out: SO_REUSEPORT groups,
SO_BINDTODEVICE, IPv6.
"""
from __future__ import annotations

import errno
import hashlib

from harness.mockkernel.ipv4.tcp_states import TCP_LISTEN, TCP_TIME_WAIT


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


def secure_tcp_ts_off(net, saddr: int, daddr: int) -> int:
    """The TSval offset of every connection between two addresses (with
    tcp_timestamps 1): a hash, so a SYN cookie's ACK can undo it."""
    return keyed_hash32(net, b"ts_off %d %d" % (saddr, daddr))


def ehash_key(sk) -> tuple[int, int, int, int]:
    return sk.rcv_saddr, sk.sport, sk.daddr, sk.dport


def __inet_lookup_established(hashinfo: InetHashinfo, saddr: int, sport: int, daddr: int, dport: int):
    """The socket (or TIME_WAIT sock) of a segment from saddr:sport to daddr:dport."""
    return hashinfo.ehash.get((daddr, dport, saddr, sport))


def __inet_lookup_listener(hashinfo: InetHashinfo, daddr: int, dport: int):
    """compute_score(): a listener bound to daddr beats one bound to 0.0.0.0."""
    wildcard = None
    for sk in hashinfo.listening.get(dport, ()):
        if sk.rcv_saddr == daddr:
            return sk
        if not sk.rcv_saddr:
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


def inet_bind_conflict(hashinfo: InetHashinfo, sk, port: int) -> bool:
    """inet_bhash2_conflict()/inet_bind_conflict(): another holder of `port` on
    an overlapping address, unless both may reuse and it does not listen."""
    bucket = hashinfo.bhash.get(port)
    for other in bucket.owners if bucket else ():
        if other is sk:
            continue
        if other.rcv_saddr and sk.rcv_saddr and other.rcv_saddr != sk.rcv_saddr:
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
        reuse = ipv4_is_loopback(tw.daddr) or ipv4_is_loopback(tw.rcv_saddr)
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
