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

    __slots__ = ("ehash", "listening", "bhash")

    def __init__(self) -> None:
        self.ehash: dict[tuple[int, int, int, int], object] = {}  # (local addr, local port, remote addr, remote port)
        self.listening: dict[int, list] = {}  # by local port
        self.bhash: dict[int, InetBindBucket] = {}  # by local port: every socket (and TIME_WAIT) holding it


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


def inet_ehash_insert(hashinfo: InetHashinfo, sk) -> None:
    hashinfo.ehash[ehash_key(sk)] = sk


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


def tcp_twsk_unique(net, tw, daddr_is_loopback: bool) -> bool:
    """tcp_twsk_unique(): a TIME_WAIT 4-tuple may be reused by connect() with
    tcp_tw_reuse 1 (2: loopback only) when it saw timestamps and its last one
    is more than tcp_tw_reuse_delay old; the new ISN is past its snd_nxt."""
    reuse = net.sysctl.values["net.ipv4.tcp_tw_reuse"]
    if reuse == 2:
        reuse = daddr_is_loopback
    if not reuse or not tw.tw_ts_recent_stamp:
        return False
    delay = net.sysctl.values["net.ipv4.tcp_tw_reuse_delay"] / 1000
    return net.clock.now - tw.tw_ts_recent_stamp > delay


def inet_hash_connect(net, sk, daddr_is_loopback: bool):
    """__inet_hash_connect(): the local port for a connect() to sk.daddr:sk.dport
    (sk.sport when bound), its 4-tuple not established; (errno, None), or
    (0, the TIME_WAIT sock it takes over, or None)."""
    hashinfo = net.tcp_hashinfo
    ehash = hashinfo.ehash

    def unique(port: int):
        """(free, the TIME_WAIT sock to recycle)."""
        other = ehash.get((sk.rcv_saddr, port, sk.daddr, sk.dport))
        if other is None:
            return True, None
        if other.state == TCP_TIME_WAIT and tcp_twsk_unique(net, other, daddr_is_loopback):
            return True, other
        return False, None

    if sk.sport:
        free, tw = unique(sk.sport)
        return (0, tw) if free else (errno.EADDRNOTAVAIL, None)
    low, high = net.sysctl.values["net.ipv4.ip_local_port_range"]
    for port in _port_candidates(net, low, high, first_parity=0):
        bucket = hashinfo.bhash.get(port)
        if bucket is not None and bucket.fastreuse >= 0:
            continue  # a port bind() took is not shared with connect()
        free, tw = unique(port)
        if free:
            inet_bind_hash(hashinfo, sk, port, fastreuse=-1)
            return 0, tw
    return errno.EADDRNOTAVAIL, None
