"""procps-ng 4.0.2 `sysctl` over the mock's sysctl tree, and the kernel's proc
handlers that accept or refuse each write.

`sysctl k` reads (a directory lists everything under it), `k=v` writes with or
without -w (procps 4 writes whenever there is an "="), several at once; -n
values only, -N names only, -q quiet writes, -e ignore unknown keys, -a all.
Options may follow the keys (getopt permutes). Keys take dots or slashes. A
write echoes the value as given, not as stored. A bad key or value does not
stop the others; the command fails at the end with every message.

The handlers are the kernel's (kernel/sysctl.c and the net tables): plain
integers (proc_dointvec) take any int, including the conf/* flags (rp_filter 3
is accepted); numbers are C numbers (0x10, 010); extra values are ignored.
Ranged ones refuse what is out of range; icmp_ratelimit is kept in jiffies
(HZ=250 here, so milliseconds round up to 4); ipfrag_time in jiffies too.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.mockkernel.cmd.args import ToolError, c_uint, not_modelled

INT_MAX = 2**31 - 1
HZ = 250
IP_UNPRIVILEGED_PORT_START = 1024
USAGE = ToolError("Usage:\n sysctl [options] [variable[=value] ...]", 1)
SHORT_OPTIONS = {"a": "all", "A": "all", "X": "all", "n": "values", "N": "names", "q": "quiet",
                 "w": "write", "e": "ignore"}
LONG_OPTIONS = {"--all": "all", "--values": "values", "--names": "names", "--quiet": "quiet",
                "--write": "write", "--ignore": "ignore"}
NOT_MODELLED_OPTIONS = "bdfhpoxrVD"


class ProcError(Exception):
    """The write was refused (EINVAL); the old value stays."""


class UnknownKey(ToolError):
    def __init__(self, key: str):
        super().__init__(f"sysctl: cannot stat /proc/sys/{key.replace('.', '/')}: No such file or directory")


@dataclass(frozen=True)
class Handler:
    """A proc handler: `kind` int (signed), uint or ulong; bounds may name
    another key (the ipfrag thresholds bound each other)."""

    kind: str = "int"
    low: int | str | None = None
    high: int | str | None = None
    scale: str | None = None  # "ms_jiffies" or "jiffies"
    read_only: bool = False


HANDLERS = {
    "net.ipv4.ip_default_ttl": Handler(low=1, high=255),
    "net.ipv4.ip_forward_update_priority": Handler("uint", 0, 1),
    "net.ipv4.icmp_ratelimit": Handler(scale="ms_jiffies"),
    "net.ipv4.icmp_msgs_per_sec": Handler(low=0),
    "net.ipv4.icmp_msgs_burst": Handler(low=0),
    "net.ipv4.icmp_echo_ignore_all": Handler("uint", 0, 1),
    "net.ipv4.icmp_echo_ignore_broadcasts": Handler("uint", 0, 1),
    "net.ipv4.ip_no_pmtu_disc": Handler("uint", 0, 255),
    "net.ipv4.ipfrag_time": Handler(scale="jiffies"),
    "net.ipv4.ipfrag_high_thresh": Handler("ulong", "net.ipv4.ipfrag_low_thresh"),
    "net.ipv4.ipfrag_low_thresh": Handler("ulong", 0, "net.ipv4.ipfrag_high_thresh"),
    "net.core.netdev_budget_usecs": Handler(low=0),
    "net.core.dev_weight": Handler(low=1),
    "net.core.rmem_default": Handler(low=2304),  # SOCK_MIN_RCVBUF
    "net.core.rmem_max": Handler(low=2304),
    "net.core.wmem_default": Handler(low=4608),  # SOCK_MIN_SNDBUF
    "net.core.wmem_max": Handler(low=4608),
}
# nf_conntrack_standalone.c: flags are proc_dou8vec_minmax 0..1, max_retrans a u8,
# timeouts proc_dointvec_jiffies; the count is read-only everywhere (procps 4.0.2 reports
# the refused write but exits 0 on the lab; here the write fails). nf_conntrack_max
# and _buckets are writable as in a whole DUT's init namespace (a non-init netns,
# like the lab's, has them 0444).
CT = "net.netfilter.nf_conntrack_"
HANDLERS.update({CT + name: Handler("uint", 0, 1) for name in
                 ("tcp_loose", "tcp_be_liberal", "tcp_ignore_invalid_rst", "checksum")})
HANDLERS[CT + "tcp_max_retrans"] = Handler("uint", 0, 255)
HANDLERS[CT + "count"] = Handler(read_only=True)
HANDLERS[CT + "buckets"] = Handler(low=1)
HANDLERS.update({CT + name: Handler(scale="jiffies") for name in
                 ("generic_timeout", "icmp_timeout", "udp_timeout", "udp_timeout_stream",
                  *(f"tcp_timeout_{state}" for state in ("syn_sent", "syn_recv", "established", "fin_wait",
                                                         "close_wait", "last_ack", "time_wait", "close",
                                                         "max_retrans", "unacknowledged")))})
READ_ONLY_CONF = ("mc_forwarding",)


def main(net, argv: list[str], stdin: str | None = None) -> str:
    opts, names = _options(argv[1:])
    if "all" in opts:
        return "".join(_show(key, value, opts) for key, value in sorted(net.sysctl.values.items()))
    if not names:
        raise USAGE
    out, errors = [], []
    for name in names:
        try:
            if "=" in name:
                out.append(_write(net, name, opts))
            elif "write" in opts:
                errors.append("sysctl: command line(0): invalid syntax, continuing...")
            else:
                out.append(_read(net, name, opts))
        except UnknownKey as err:
            if "ignore" not in opts:
                errors.append(err.message)
        except ToolError as err:
            errors.append(err.message)
    if errors:
        raise ToolError("\n".join(errors), 1)
    return "".join(out)


def _options(tokens: list[str]) -> tuple[set[str], list[str]]:
    opts, names = set(), []
    for token in tokens:
        if token.startswith("--"):
            if token not in LONG_OPTIONS:
                raise not_modelled(f"sysctl option {token}")
            opts.add(LONG_OPTIONS[token])
        elif token.startswith("-") and len(token) > 1:
            for letter in token[1:]:
                if letter in NOT_MODELLED_OPTIONS:
                    raise not_modelled(f"sysctl option -{letter}")
                if letter not in SHORT_OPTIONS:
                    raise ToolError(f"sysctl: invalid option -- '{letter}'", 1)
                opts.add(SHORT_OPTIONS[letter])
        else:
            names.append(token)
    return opts, names


def _key(name: str) -> str:
    return name.strip().replace("/", ".")


def _show(key: str, value: str, opts: set[str]) -> str:
    if "values" in opts:
        return value + "\n"
    if "names" in opts:
        return key + "\n"
    return f"{key} = {value}\n"


def _read(net, name: str, opts: set[str]) -> str:
    key, values = _key(name), net.sysctl.values
    if key in values:
        return _show(key, values[key], opts)
    under = sorted(k for k in values if k.startswith(key + "."))
    if not under:
        raise UnknownKey(key)
    return "".join(_show(k, values[k], opts) for k in under)


def _write(net, setting: str, opts: set[str]) -> str:
    name, _, value = setting.partition("=")
    key, value = _key(name), value.lstrip()
    if key not in net.sysctl.values:
        raise UnknownKey(key)
    try:
        net.sysctl.set(key, proc_write(net.sysctl, key, value))
    except ProcError:
        raise ToolError(f'sysctl: setting key "{key}": Invalid argument', 1) from None
    return "" if "quiet" in opts else _show(key, value, opts)


def proc_write(sysctl, key: str, text: str) -> str:
    """What the kernel stores for `text` written to `key`, as it reads back."""
    if key == "net.ipv4.ping_group_range":
        return _ping_group_range(sysctl, text)
    if key == "net.ipv4.ip_local_port_range":
        return _ip_local_port_range(sysctl, text)
    handler = HANDLERS.get(key, Handler(read_only=key.rsplit(".", 1)[-1] in READ_ONLY_CONF
                                        and key.startswith("net.ipv4.conf.")))
    if handler.read_only:
        raise ProcError
    value = _proc_number(_proc_words(text, 1)[0], handler.kind)
    low, high = (sysctl.int(b) if isinstance(b, str) else b for b in (handler.low, handler.high))
    if (low is not None and value < low) or (high is not None and value > high):
        raise ProcError
    if handler.scale == "ms_jiffies":
        return str(_ms_jiffies(value))
    if handler.scale == "jiffies" and abs(value) > INT_MAX // HZ:
        raise ProcError
    return str(value)


def _proc_words(text: str, count: int) -> list[str]:
    """The first `count` whitespace-separated values; more are ignored."""
    words = text.split()[:count]
    if not words:
        raise ProcError
    return words


def _proc_number(word: str, kind: str) -> int:
    """proc_get_long() + the conversion: a C number, signed only for int."""
    negative = word.startswith("-")
    magnitude = c_uint(word[1:] if negative else word)
    if magnitude is None or (negative and kind != "int"):
        raise ProcError
    value = -magnitude if negative else magnitude
    limit = {"int": (-INT_MAX - 1, INT_MAX), "uint": (0, 2**32 - 1), "ulong": (0, 2**64 - 1)}[kind]
    if not limit[0] <= value <= limit[1]:
        raise ProcError
    return value


def _ms_jiffies(ms: int) -> int:
    """proc_dointvec_ms_jiffies(): stored as jiffies, read back in ms."""
    if ms < 0:
        raise ProcError
    jiffies = -(-ms * HZ // 1000)
    if jiffies > INT_MAX:
        raise ProcError
    return jiffies * 1000 // HZ


def _pair(sysctl, key: str, text: str, low: int, high: int) -> list[int]:
    """A two-value proc_dointvec_minmax(): values not written keep theirs."""
    pair = [int(v) for v in sysctl.get(key).split()]
    for index, word in enumerate(_proc_words(text, 2)):
        pair[index] = _proc_number(word, "int")
        if not low <= pair[index] <= high:
            raise ProcError
    return pair


def _ping_group_range(sysctl, text: str) -> str:
    """ipv4_ping_group_range(): a reversed range means nobody (1 0)."""
    low, high = _pair(sysctl, "net.ipv4.ping_group_range", text, 0, INT_MAX)
    return "1\t0" if high < low else f"{low}\t{high}"


def _ip_local_port_range(sysctl, text: str) -> str:
    """ipv4_local_port_range(): in order and clear of the privileged ports."""
    low, high = _pair(sysctl, "net.ipv4.ip_local_port_range", text, 1, 65535)
    if high < low or low < IP_UNPRIVILEGED_PORT_START:
        raise ProcError
    return f"{low}\t{high}"
