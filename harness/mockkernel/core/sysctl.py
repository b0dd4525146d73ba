"""A namespace's sysctl tree: `struct ctl_table` entries and kernel/sysctl.c's
proc handlers, which parse and check a write once, when it is made.

The datapath reads typed values from `Sysctls.values` (an int, a tuple for
the ranges and vectors such as tcp_rmem, a checked name for
tcp_congestion_control), never text. A write goes through the entry's
handler: numbers are C numbers (0x10, 010) read as proc_get_long() does,
values after the first are ignored, and anything out of the type's or the
entry's range (extra1, extra2) or not a number is refused with EINVAL
(`ProcError`), the old value kept. Plain proc_dointvec() takes any int: the conf/* flags accept rp_filter 7,
as the kernel does. Jiffies are HZ=250 here: icmp_ratelimit (milliseconds)
rounds up to 4 ms steps.

The tables follow the kernel's: net/core/sysctl_net_core.c net_core_table,
net/ipv4/sysctl_net_ipv4.c ipv4_net_table, net/ipv4/devinet.c devinet_sysctl
(conf/{all,default,DEV}/*, copied from default when a device appears);
IPv6's conf/* are ipv6/addrconf.py's; conntrack registers
nf_conntrack_standalone.c's table when it loads (register_net_sysctl()).
"""
from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass

INT_MAX = 2**31 - 1
UINT_MAX = 2**32 - 1
ULONG_MAX = 2**64 - 1
HZ = 250
IP_UNPRIVILEGED_PORT_START = 1024
SOCK_MIN_RCVBUF, SOCK_MIN_SNDBUF = 2304, 4608
IP_FORWARD = "net.ipv4.ip_forward"
ALL_FORWARDING = "net.ipv4.conf.all.forwarding"

Value = int | tuple[int, ...] | str  # str: a checked name (tcp_congestion_control)


class ProcError(Exception):
    """The handler refused the write (EINVAL unless it names another errno); the
    old value stays."""

    def __init__(self, err: int = errno.EINVAL) -> None:
        super().__init__(err)
        self.errno = err


@dataclass(frozen=True, slots=True)
class CtlTable:
    """struct ctl_table: the value a new namespace starts with, the proc handler
    that parses a write (`read_only` for a 0444 entry) and its bounds (extra1,
    extra2; a str names the sysctl whose value bounds it, as the ipfrag
    thresholds bound each other)."""

    default: Value
    proc_handler: Callable[[Sysctls, CtlTable, str, str], Value]
    extra1: int | str | None = None
    extra2: int | str | None = None


def _words(text: str, count: int) -> list[str]:
    """The first `count` whitespace-separated values; the rest is ignored."""
    words = text.split()[:count]
    if not words:
        raise ProcError
    return words


def proc_get_long(word: str, low: int, high: int) -> int:
    """proc_get_long(): a C number (0x hex, 0 octal, else decimal), the whole
    word, a sign only where the type is signed, within [low, high]."""
    negative = word.startswith("-")
    digits = word[1:] if negative else word
    base = 16 if digits[:2].lower() == "0x" else 8 if len(digits) > 1 and digits[0] == "0" else 10
    digits = digits[2:] if base == 16 else digits
    if not digits.isalnum() or (negative and low >= 0):
        raise ProcError
    try:
        value = int(digits, base)
    except ValueError:
        raise ProcError from None
    value = -value if negative else value
    if not low <= value <= high:
        raise ProcError
    return value


def _bound(sysctls: Sysctls, bound: int | str | None, default: int) -> int:
    if bound is None:
        return default
    return sysctls.values[bound] if isinstance(bound, str) else bound


def _minmax(sysctls: Sysctls, table: CtlTable, text: str, low: int, high: int) -> int:
    value = proc_get_long(_words(text, 1)[0], low, high)
    if not _bound(sysctls, table.extra1, low) <= value <= _bound(sysctls, table.extra2, high):
        raise ProcError
    return value


def proc_dointvec(sysctls: Sysctls, table: CtlTable, key: str, text: str) -> int:
    return proc_get_long(_words(text, 1)[0], -INT_MAX - 1, INT_MAX)


def proc_dointvec_minmax(sysctls: Sysctls, table: CtlTable, key: str, text: str) -> Value:
    """An int, or a vector of them (maxlen of several ints, as tcp_rmem): each
    value written is checked; one not written keeps its old value."""
    if not isinstance(table.default, tuple):
        return _minmax(sysctls, table, text, -INT_MAX - 1, INT_MAX)
    vector = list(sysctls.values[key])
    low, high = _bound(sysctls, table.extra1, -INT_MAX - 1), _bound(sysctls, table.extra2, INT_MAX)
    for index, word in enumerate(_words(text, len(vector))):
        vector[index] = proc_get_long(word, -INT_MAX - 1, INT_MAX)
        if not low <= vector[index] <= high:
            raise ProcError
    return tuple(vector)


def proc_douintvec_minmax(sysctls: Sysctls, table: CtlTable, key: str, text: str) -> int:
    return _minmax(sysctls, table, text, 0, UINT_MAX)


def proc_dou8vec_minmax(sysctls: Sysctls, table: CtlTable, key: str, text: str) -> int:
    return _minmax(sysctls, table, text, 0, 255)


def proc_doulongvec_minmax(sysctls: Sysctls, table: CtlTable, key: str, text: str) -> int:
    return _minmax(sysctls, table, text, 0, ULONG_MAX)


def proc_dointvec_jiffies(sysctls: Sysctls, table: CtlTable, key: str, text: str) -> int:
    """Seconds, kept as jiffies: what does not fit an int of jiffies is refused."""
    return proc_get_long(_words(text, 1)[0], -(INT_MAX // HZ), INT_MAX // HZ)


def proc_dointvec_ms_jiffies(sysctls: Sysctls, table: CtlTable, key: str, text: str) -> int:
    """Milliseconds, kept as jiffies (rounded up) and read back in milliseconds."""
    jiffies = -(-proc_get_long(_words(text, 1)[0], 0, INT_MAX) * HZ // 1000)
    if jiffies > INT_MAX:
        raise ProcError
    return jiffies * 1000 // HZ


def _proc_pair(sysctls: Sysctls, key: str, text: str, low: int, high: int) -> tuple[int, int]:
    """A two-value proc_dointvec_minmax(): a value not written keeps its own."""
    pair = list(sysctls.values[key])
    for index, word in enumerate(_words(text, 2)):
        pair[index] = proc_get_long(word, low, high)
    return pair[0], pair[1]


def ipv4_ping_group_range(sysctls: Sysctls, table: CtlTable, key: str, text: str) -> tuple[int, int]:
    """A reversed range means nobody: stored as 1 0."""
    low, high = _proc_pair(sysctls, key, text, 0, INT_MAX)
    return (1, 0) if high < low else (low, high)


def ipv4_local_port_range(sysctls: Sysctls, table: CtlTable, key: str, text: str) -> tuple[int, int]:
    """In order, and clear of the privileged ports."""
    low, high = _proc_pair(sysctls, key, text, 1, 65535)
    if high < low or low < IP_UNPRIVILEGED_PORT_START:
        raise ProcError
    return low, high


def devinet_sysctl_forward(sysctls: Sysctls, table: CtlTable, key: str, text: str) -> int:
    """proc_dointvec(); a change of ip_forward or conf/all/forwarding moves every
    device's flag and conf/all/accept_redirects (inet_forward_change())."""
    value = proc_dointvec(sysctls, table, key, text)
    if key in (IP_FORWARD, ALL_FORWARDING) and value != sysctls.values[key]:
        values = sysctls.values
        for name in [k for k in values if k.startswith("net.ipv4.conf.") and k.endswith(".forwarding")]:
            values[name] = value
        values[IP_FORWARD] = value
        values["net.ipv4.conf.all.accept_redirects"] = 0 if value else 1
    return value


def read_only(sysctls: Sysctls, table: CtlTable, key: str, text: str) -> Value:
    """A 0444 entry: every write is refused."""
    raise ProcError


def _int(default: int) -> CtlTable:
    return CtlTable(default, proc_dointvec)


# net/core/sysctl_net_core.c net_core_table (an init namespace's: a DUT's)
NET_CORE_TABLE = {
    "net.core.netdev_budget": _int(300),
    "net.core.netdev_budget_usecs": CtlTable(2000, proc_dointvec_minmax, 0),
    "net.core.netdev_max_backlog": _int(1000),
    "net.core.dev_weight": CtlTable(64, proc_dointvec_minmax, 1),
    "net.core.rmem_default": CtlTable(212992, proc_dointvec_minmax, SOCK_MIN_RCVBUF),
    "net.core.rmem_max": CtlTable(212992, proc_dointvec_minmax, SOCK_MIN_RCVBUF),
    "net.core.wmem_default": CtlTable(212992, proc_dointvec_minmax, SOCK_MIN_SNDBUF),
    "net.core.wmem_max": CtlTable(212992, proc_dointvec_minmax, SOCK_MIN_SNDBUF),
}
# net/ipv4/sysctl_net_ipv4.c ipv4_net_table (ip_forward: devinet.c)
IPV4_TABLE = {
    IP_FORWARD: CtlTable(0, devinet_sysctl_forward),
    "net.ipv4.ip_default_ttl": CtlTable(64, proc_dointvec_minmax, 1, 255),
    # the multipath hash's key, 0 for a random one (proc_fib_multipath_hash_seed(); ipv6/route.py)
    "net.ipv4.fib_multipath_hash_seed": CtlTable(0, proc_douintvec_minmax),
    "net.ipv4.ip_forward_update_priority": CtlTable(1, proc_dou8vec_minmax, 0, 1),
    "net.ipv4.icmp_ratelimit": CtlTable(1000, proc_dointvec_ms_jiffies),
    "net.ipv4.icmp_ratemask": _int(6168),
    "net.ipv4.icmp_msgs_per_sec": CtlTable(1000, proc_dointvec_minmax, 0),
    "net.ipv4.icmp_msgs_burst": CtlTable(50, proc_dointvec_minmax, 0),
    "net.ipv4.icmp_echo_ignore_all": CtlTable(0, proc_dou8vec_minmax, 0, 1),
    "net.ipv4.icmp_echo_ignore_broadcasts": CtlTable(1, proc_dou8vec_minmax, 0, 1),
    "net.ipv4.ip_no_pmtu_disc": CtlTable(0, proc_dou8vec_minmax, 0, 255),
    "net.ipv4.ipfrag_time": CtlTable(30, proc_dointvec_jiffies),
    "net.ipv4.ipfrag_high_thresh": CtlTable(4194304, proc_doulongvec_minmax, "net.ipv4.ipfrag_low_thresh"),
    "net.ipv4.ipfrag_low_thresh": CtlTable(3145728, proc_doulongvec_minmax, 0, "net.ipv4.ipfrag_high_thresh"),
    "net.ipv4.ping_group_range": CtlTable((1, 0), ipv4_ping_group_range),
    "net.ipv4.ip_local_port_range": CtlTable((32768, 60999), ipv4_local_port_range),
}
# net/ipv4/devinet.c devinet_sysctl: devinet_conf_proc() and the flushing entries
# are proc_dointvec(); mc_forwarding is 0444 (only a multicast router daemon sets it)
DEVINET_TABLE = {
    "forwarding": CtlTable(0, devinet_sysctl_forward),
    "mc_forwarding": CtlTable(0, read_only),
    **{name: _int(default) for name, default in (
        ("rp_filter", 0), ("accept_local", 0), ("route_localnet", 0), ("accept_source_route", 0),
        ("send_redirects", 1), ("accept_redirects", 1), ("log_martians", 0), ("arp_ignore", 0),
        ("arp_announce", 0), ("arp_filter", 0), ("arp_accept", 0), ("proxy_arp", 0), ("bc_forwarding", 0))},
}


class Sysctls:
    """The tree of one namespace: `tables` by key (struct ctl_table), `values`
    by key, typed, which the datapath reads."""

    def __init__(self) -> None:
        self.tables: dict[str, CtlTable] = {}
        self.values: dict[str, Value] = {}
        # ctl_table.data: where an entry's value lives besides `values`, as (object, attribute),
        # for the entries the datapath reads as a structure's field (ipv6/addrconf.py's cnf)
        self.data: dict[str, tuple[object, str]] = {}
        for table in (NET_CORE_TABLE, IPV4_TABLE):
            self.register(table)
        for scope in ("all", "default"):
            self.register({f"net.ipv4.conf.{scope}.{name}": entry for name, entry in DEVINET_TABLE.items()})

    def register(self, table: dict[str, CtlTable]) -> None:
        """register_net_sysctl(): the entries appear with their defaults."""
        for key, entry in table.items():
            self.tables[key] = entry
            self.values.setdefault(key, entry.default)

    def add_device(self, dev: str) -> None:
        """devinet_sysctl_register(): a new device's conf/DEV copies conf/default
        (inetdev_init() copies ipv4_devconf_dflt)."""
        self.register({f"net.ipv4.conf.{dev}.{name}": entry for name, entry in DEVINET_TABLE.items()})
        for name in DEVINET_TABLE:
            self.values[f"net.ipv4.conf.{dev}.{name}"] = self.values[f"net.ipv4.conf.default.{name}"]

    def remove_device(self, dev: str) -> None:
        """The sysctl tables an unregistered device leaves (net/DEV entries of
        every protocol: devinet_sysctl_unregister(), addrconf's, neigh's)."""
        for key in [key for key in self.tables if key.split(".")[2:4] in (["conf", dev], ["neigh", dev])]:
            del self.tables[key]
            del self.values[key]

    def conf(self, dev: str, key: str) -> int:
        return self.values[f"net.ipv4.conf.{dev}.{key}"]

    def write(self, key: str, text: str) -> None:
        """A write to /proc/sys/<key>: KeyError for a key that does not exist,
        ProcError when the handler refuses the value."""
        table = self.tables[key]
        self.store(key, table.proc_handler(self, table, key, text))

    def store(self, key: str, value: Value) -> None:
        """The value in the tree and where the entry's data points."""
        self.values[key] = value
        data = self.data.get(key)
        if data is not None:
            setattr(data[0], data[1], value)

    def show(self, key: str) -> str:
        """The value as reading /proc/sys/<key> prints it."""
        value = self.values[key]
        return "\t".join(map(str, value)) if isinstance(value, tuple) else str(value)
