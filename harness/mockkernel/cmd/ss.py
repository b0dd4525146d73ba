"""iproute2 6.1 `ss` (misc/ss.c) for TCP sockets, over the mock's sock_diag
(ipv4/inet_diag.py) and /proc/net/sockstat and snmp.

Modelled: -t, -n, -i, -m, -l, -a, -s, -H, -4, -6 (and their long names), and a
`state`/`exclude` filter. The IPv4 sockets come first, then the AF_INET6 ones
(inet_show_netlink() asks sock_diag for one family, then the other; -4 or -6
only for one); inet_addr_print() prints an IPv6 address in brackets, and ::
as `*` unless the socket is IPV6_V6ONLY. The table is laid out as ss lays it out when its
output is not a terminal (render_calc_width()'s compact widths): each column as
wide as its longest field plus its delimiter, Local and Peer Address right
aligned; ss measures every field but the last one buffered, and prints that
one too. Netid shows only when more than one socket table is asked for (never
here), State only when more than one state. -i and -m put "\\n\\t" and the
details in the Process column: `skmem:(...)` (-m), then tcp_stats_print()'s
fields in its order, each only when non-zero (rates in bits per second, as
integers with -n, else with k/M/G/T). -s prints print_summary(): sockstat's
counts and the Tcp CurrEstab counter. Other options ss knows are refused as not
modelled; options it does not know get its getopt error and usage, exit 255.
Left out: other socket tables (-u, -x, ...), -o timers, -e, -p, expression
filters, host name resolution (-r).
"""
from __future__ import annotations

import socket
from socket import AF_INET, AF_INET6

from harness.mockkernel.cmd.args import ToolError, not_modelled
from harness.mockkernel.ipv4.inet_diag import (INET_DIAG_CONG, INET_DIAG_INFO, INET_DIAG_MEMINFO,
                                               INET_DIAG_SKMEMINFO, INET_DIAG_VEGASINFO, TCPI_OPT_WSCALE, U32_MAX,
                                               U64_MAX, inet_diag_dump_icsk)
from harness.mockkernel.ipv4.inet_hashtables import IN6ADDR_ANY
from harness.mockkernel.ipv4.tcp_sock import TCP_LISTEN, TCP_SYN_RECV, TCP_TIME_WAIT, TcpState

# SS_* states are TCP's; sstate_name[] and sstate_namel[] name them
STATE_NAMES = {1: "ESTAB", 2: "SYN-SENT", 3: "SYN-RECV", 4: "FIN-WAIT-1", 5: "FIN-WAIT-2", 6: "TIME-WAIT",
               7: "UNCONN", 8: "CLOSE-WAIT", 9: "LAST-ACK", 10: "LISTEN", 11: "CLOSING"}
FILTER_STATE_NAMES = {"established": 1, "syn-sent": 2, "syn-recv": 3, "fin-wait-1": 4, "fin-wait-2": 5,
                      "time-wait": 6, "closed": 7, "close-wait": 8, "last-ack": 9, "listening": 10,
                      "closing": 11}
SS_MAX = 12
SS_ALL = (1 << SS_MAX) - 1
SS_CONN = SS_ALL & ~((1 << TCP_LISTEN) | (1 << 7) | (1 << TCP_TIME_WAIT) | (1 << TCP_SYN_RECV))
STATE_SETS = {"all": SS_ALL, "connected": SS_ALL & ~((1 << 7) | (1 << TCP_LISTEN)),
              "synchronized": SS_ALL & ~((1 << 7) | (1 << TCP_LISTEN) | (1 << 2)),
              "bucket": (1 << TCP_SYN_RECV) | (1 << TCP_TIME_WAIT),
              "big": SS_ALL & ~((1 << TCP_SYN_RECV) | (1 << TCP_TIME_WAIT))}
MODELLED = {"t": "tcp", "n": "numeric", "i": "info", "m": "memory", "l": "listening", "a": "all",
            "s": "summary", "H": "no-header", "4": "ipv4", "6": "ipv6"}
LONG_OPTIONS = {f"--{name}": letter for letter, name in MODELLED.items()}
# getopt_long()'s string of ss 6.1 and its long options the mock does not model
KNOWN_SHORT = "dhaletuwxnro460spTbEf:mMiA:D:F:vVzZN:KHSO"
KNOWN_LONG = ("resolve", "options", "extended", "processes", "threads", "bpf", "events", "dccp", "sctp", "udp",
              "raw", "unix", "tipc", "vsock", "packet", "family", "socket", "query", "diag", "filter",
              "version", "help", "context", "contexts", "net", "tipcinfo", "tos", "cgroup", "kill", "xdp",
              "mptcp", "oneline", "inet-sockopt")

# columns[] of ss.c: (alignment, header, left delimiter); Netid is never shown here
LEFT, RIGHT = "left", "right"
COLUMNS = ((LEFT, "Netid", ""), (LEFT, "State", " "), (LEFT, "Recv-Q", " "), (LEFT, "Send-Q", " "),
           (RIGHT, "Local Address:", " "), (LEFT, "Port", ""), (RIGHT, "Peer Address:", " "), (LEFT, "Port", ""),
           (LEFT, "Process", ""), (LEFT, "", ""))
COL_NETID, COL_STATE, COL_RECVQ, COL_SENDQ, COL_ADDR, COL_SERV, COL_RADDR, COL_RSERV, COL_EXT, COL_PROC = \
    range(len(COLUMNS))

USAGE = """Usage: ss [ OPTIONS ]
       ss [ OPTIONS ] [ FILTER ]
   -h, --help          this message
   -V, --version       output version information
   -n, --numeric       don't resolve service names
   -r, --resolve       resolve host names
   -a, --all           display all sockets
   -l, --listening     display listening sockets
   -o, --options       show timer information
   -e, --extended      show detailed socket information
   -m, --memory        show socket memory usage
   -p, --processes     show process using socket
   -T, --threads       show thread using socket
   -i, --info          show internal TCP information
       --tipcinfo      show internal tipc socket information
   -s, --summary       show socket usage summary
       --tos           show tos and priority information
       --cgroup        show cgroup information
   -b, --bpf           show bpf filter socket information
   -E, --events        continually display sockets as they are destroyed
   -Z, --context       display task SELinux security contexts
   -z, --contexts      display task and socket SELinux security contexts
   -N, --net           switch to the specified network namespace name

   -4, --ipv4          display only IP version 4 sockets
   -6, --ipv6          display only IP version 6 sockets
   -0, --packet        display PACKET sockets
   -t, --tcp           display only TCP sockets
   -M, --mptcp         display only MPTCP sockets
   -S, --sctp          display only SCTP sockets
   -u, --udp           display only UDP sockets
   -d, --dccp          display only DCCP sockets
   -w, --raw           display only RAW sockets
   -x, --unix          display only Unix domain sockets
       --tipc          display only TIPC sockets
       --vsock         display only vsock sockets
       --xdp           display only XDP sockets
   -f, --family=FAMILY display sockets of type FAMILY
       FAMILY := {inet|inet6|link|unix|netlink|vsock|tipc|xdp|help}

   -K, --kill          forcibly close sockets, display what was closed
   -H, --no-header     Suppress header line
   -O, --oneline       socket's data printed on a single line
       --inet-sockopt  show various inet socket options

   -A, --query=QUERY, --socket=QUERY
       QUERY := {all|inet|tcp|mptcp|udp|raw|unix|unix_dgram|unix_stream|unix_seqpacket|packet|packet_raw|packet_dgram|netlink|dccp|sctp|vsock_stream|vsock_dgram|tipc|xdp}[,QUERY]

   -D, --diag=FILE     Dump raw information about TCP sockets to FILE
   -F, --filter=FILE   read filter information from FILE
       FILTER := [ state STATE-FILTER ] [ EXPRESSION ]
       STATE-FILTER := {all|connected|synchronized|bucket|big|TCP-STATES}
         TCP-STATES := {established|syn-sent|syn-recv|fin-wait-{1,2}|time-wait|closed|close-wait|last-ack|listening|closing}
          connected := {established|syn-sent|syn-recv|fin-wait-{1,2}|time-wait|close-wait|last-ack|closing}
       synchronized := {established|syn-recv|fin-wait-{1,2}|time-wait|close-wait|last-ack|closing}
             bucket := {syn-recv|time-wait}
                big := {established|syn-sent|fin-wait-{1,2}|closed|close-wait|last-ack|listening|closing}"""


def main(net, argv: list[str], stdin: str | None = None) -> str:
    opts, filters = _options(argv[1:])
    out = print_summary(net) if "s" in opts else ""
    if "s" in opts and "t" not in opts:  # ss -s alone: the summary, nothing else
        return out
    if "t" not in opts:
        raise not_modelled("ss without -t (the mock's sock_diag dumps TCP sockets only)")
    return out + _tcp_table(net, opts, _state_filter(opts, filters))


def _options(tokens: list[str]) -> tuple[set[str], list[str]]:
    """getopt_long() over ss's options: the letters given, and the filter after them."""
    opts, rest = set(), []
    for i, token in enumerate(tokens):
        if token == "--":
            return opts, rest + tokens[i + 1:]
        if token.startswith("--"):
            name = token[2:].split("=", 1)[0]
            if token in LONG_OPTIONS:
                opts.add(LONG_OPTIONS[token])
            elif name in KNOWN_LONG:
                raise not_modelled(f"ss {token}")
            else:
                raise ToolError(f"ss: unrecognized option '{token}'\n{USAGE}", 255)
        elif token.startswith("-") and len(token) > 1:
            for letter in token[1:]:
                if letter in MODELLED:
                    opts.add(letter)
                elif letter in KNOWN_SHORT.replace(":", ""):
                    raise not_modelled(f"ss -{letter}")
                else:
                    raise ToolError(f"ss: invalid option -- '{letter}'\n{USAGE}", 255)
        else:
            rest.append(token)
    return opts, rest


def _state_filter(opts: set[str], filters: list[str]) -> int:
    """The states shown: -a all, -l listening (and closed), else connected
    ones; `state X` replaces that, `exclude X` takes X away (ss.c main())."""
    states = SS_ALL if "a" in opts else (1 << TCP_LISTEN) | (1 << 7) if "l" in opts else 0
    saw_states = False
    tokens = list(filters)
    while tokens and tokens[0] in ("state", "exclude", "excl"):
        keyword = tokens.pop(0)
        if not tokens:
            raise ToolError('Command line is not complete. Try option "help"', 255)  # NEXT_ARG()
        wanted = _scan_state(tokens.pop(0))
        if keyword == "state":
            states = (states if saw_states else 0) | wanted
        else:
            states = (states if saw_states else SS_ALL) & ~wanted
        saw_states = True
    if tokens:
        raise not_modelled(f"ss filter expression {' '.join(tokens)!r}")
    return states or SS_CONN  # filter_states_set() keeps the tables' default, SS_CONN, for 0


def _scan_state(name: str) -> int:
    lowered = name.lower()
    if lowered in STATE_SETS:
        return STATE_SETS[lowered]
    if lowered in FILTER_STATE_NAMES:
        return 1 << FILTER_STATE_NAMES[lowered]
    raise ToolError(f"ss: wrong state name: {name}", 255)


# ------------------------------------------------------------------ the table

class Layout:
    """ss.c's field buffer: out() appends to the current field, field_next()
    closes it (measuring it), render() lays the fields out."""

    def __init__(self, disabled: set[int]):
        self.disabled = disabled
        self.tokens: list[tuple[int, str]] = [(0, "")]  # (column, text), the last one still open
        self.max_len = [0] * len(COLUMNS)
        self.current = 0
        self.written = False  # ss allocates its buffer at the first out(): render() prints nothing without

    def out(self, text: str) -> None:
        if self.current in self.disabled:
            return
        self.written = True
        column, so_far = self.tokens[-1]
        self.tokens[-1] = (column, so_far + text)

    def field_next(self) -> None:
        if self.current not in self.disabled:
            column, text = self.tokens[-1]
            self.max_len[column] = max(self.max_len[column], len(text))
            self.current = (self.current + 1) % len(COLUMNS)
            self.tokens.append((self.current, ""))
        else:
            self.current = (self.current + 1) % len(COLUMNS)
            self.tokens[-1] = (self.current, self.tokens[-1][1])

    def field_set(self, column: int) -> None:
        while self.current != column:
            self.field_next()

    def render(self) -> str:
        """render(): compact widths (the output is no terminal), then each
        field with its delimiter and padding, a line ending after the last column."""
        if not self.written:
            return ""
        widths, first = [0] * len(COLUMNS), True
        for column, (_, _, ldelim) in enumerate(COLUMNS):
            if column in self.disabled:
                continue
            length = self.max_len[column]
            widths[column] = length + len(ldelim) if not first and length else length
            if widths[column]:
                first = False
        lines, line, started = [], "", False
        for column, text in self.tokens:
            align, _, ldelim = COLUMNS[column]
            printed = 0
            if started:
                line += ldelim
                printed = len(ldelim)
            started = True
            width = widths[column]
            if width and align == RIGHT:
                line += " " * max(width - len(text) - printed, 0)
                printed += max(width - len(text) - printed, 0)
            line += text
            printed += len(text)
            if width and align == LEFT:
                line += " " * max(width - printed, 0)
            if column == COL_PROC:
                lines.append(line)
                line, started = "", False
        if started:
            lines.append(line)
        return "".join(f"{line}\n" for line in lines)


def _tcp_table(net, opts: set[str], states: int) -> str:
    ext = 0
    if "m" in opts:
        ext |= (1 << (INET_DIAG_MEMINFO - 1)) | (1 << (INET_DIAG_SKMEMINFO - 1))
    if "i" in opts:
        ext |= (1 << (INET_DIAG_INFO - 1)) | (1 << (INET_DIAG_VEGASINFO - 1)) | (1 << (INET_DIAG_CONG - 1))
    disabled = {COL_NETID} | ({COL_STATE} if not states & (states - 1) else set())
    layout = Layout(disabled)
    if "H" not in opts:
        for column in range(COL_PROC):
            layout.out(COLUMNS[column][1])
            layout.field_next()
    numeric = "n" in opts
    for msg in (msg for family in _families(opts) for msg in inet_diag_dump_icsk(net, states, ext, family)):
        layout.field_set(COL_STATE)
        layout.out(STATE_NAMES[msg.state])
        layout.field_set(COL_RECVQ)
        layout.out(f"{msg.rqueue:<6d}")
        layout.field_set(COL_SENDQ)
        layout.out(f"{msg.wqueue:<6d}")
        layout.field_set(COL_ADDR)
        for addr, port in ((msg.saddr, msg.sport), (msg.daddr, msg.dport)):
            layout.out(f"{_inet_addr(msg.family, addr, msg.v6only)}:")
            layout.field_next()
            layout.out(_service(port, numeric))
            layout.field_next()
        if opts & {"i", "m"}:
            layout.out("\n\t")
            if msg.skmeminfo is not None:
                layout.out(_skmem(msg.skmeminfo))
            if msg.info is not None:
                layout.out(tcp_stats_text(msg.info, msg.cong, numeric))
    return layout.render()


def _families(opts: set[str]) -> tuple[int, ...]:
    """The families inet_show_netlink() dumps, in its order (-4 and -6: the
    last one given, preferred_family, which the option set does not keep)."""
    if "4" in opts and "6" in opts:
        raise not_modelled("ss -4 together with -6")
    return (AF_INET,) if "4" in opts else (AF_INET6,) if "6" in opts else (AF_INET, AF_INET6)


def _inet_addr(family: int, addr: int | bytes, v6only: bool) -> str:
    """inet_addr_print(): dotted quad; an IPv6 address in brackets, :: as `*`
    for a socket that takes IPv4 too."""
    if family == AF_INET:
        return socket.inet_ntoa(addr.to_bytes(4, "big"))
    if addr == IN6ADDR_ANY and not v6only:
        return "*"
    return f"[{socket.inet_ntop(AF_INET6, addr)}]"


def _service(port: int, numeric: bool) -> str:
    """resolve_service(): `*` for port 0, the /etc/services name unless -n."""
    if port == 0:
        return "*"
    if not numeric:
        try:
            return socket.getservbyport(port, "tcp")
        except OSError:
            pass
    return str(port)


def _skmem(mem) -> str:
    return (f" skmem:(r{mem.rmem_alloc},rb{mem.rcvbuf},t{mem.wmem_alloc},tb{mem.sndbuf},f{mem.fwd_alloc},"
            f"w{mem.wmem_queued},o{mem.optmem},bl{mem.backlog},d{mem.drops})")


def sprint_bw(bw: float, numeric: bool) -> str:
    if numeric:
        return f"{bw:.0f}"
    for limit, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if bw >= limit:
            return f"{bw / limit:.3g}{unit}"
    return f"{bw:g}"


def tcp_stats_text(info, cong: str | None, numeric: bool) -> str:
    """tcp_show_info() + tcp_stats_print(): each field only when non-zero."""
    parts = []
    if cong:
        parts.append(f" {cong}")
    if info.tcpi_options & TCPI_OPT_WSCALE:
        parts.append(f" wscale:{info.tcpi_snd_wscale},{info.tcpi_rcv_wscale}")
    if info.tcpi_rto and info.tcpi_rto != 3000000:
        parts.append(f" rto:{info.tcpi_rto / 1000:g}")
    if info.tcpi_backoff:
        parts.append(f" backoff:{info.tcpi_backoff}")
    if info.tcpi_rtt:
        parts.append(f" rtt:{info.tcpi_rtt / 1000:g}/{info.tcpi_rttvar / 1000:g}")
    if info.tcpi_ato:
        parts.append(f" ato:{info.tcpi_ato / 1000:g}")
    for value, label in ((info.tcpi_snd_mss, "mss"), (info.tcpi_pmtu, "pmtu"), (info.tcpi_rcv_mss, "rcvmss"),
                         (info.tcpi_advmss, "advmss"), (info.tcpi_snd_cwnd, "cwnd"),
                         (info.tcpi_snd_ssthresh if info.tcpi_snd_ssthresh < 0xFFFF else 0, "ssthresh"),
                         (info.tcpi_bytes_sent, "bytes_sent"), (info.tcpi_bytes_retrans, "bytes_retrans"),
                         (info.tcpi_bytes_acked, "bytes_acked"), (info.tcpi_bytes_received, "bytes_received"),
                         (info.tcpi_segs_out, "segs_out"), (info.tcpi_segs_in, "segs_in"),
                         (info.tcpi_data_segs_out, "data_segs_out"), (info.tcpi_data_segs_in, "data_segs_in")):
        if value:
            parts.append(f" {label}:{value}")
    if info.tcpi_rtt and info.tcpi_snd_mss and info.tcpi_snd_cwnd:
        send_bps = info.tcpi_snd_cwnd * info.tcpi_snd_mss * 8000000.0 / info.tcpi_rtt
        parts.append(f" send {sprint_bw(send_bps, numeric)}bps")
    for value, label in ((info.tcpi_last_data_sent, "lastsnd"), (info.tcpi_last_data_recv, "lastrcv"),
                         (info.tcpi_last_ack_recv, "lastack")):
        if value:
            parts.append(f" {label}:{value}")
    if info.tcpi_pacing_rate and info.tcpi_pacing_rate != U64_MAX:
        parts.append(f" pacing_rate {sprint_bw(info.tcpi_pacing_rate * 8.0, numeric)}bps")
        if info.tcpi_max_pacing_rate and info.tcpi_max_pacing_rate != U64_MAX:
            parts.append(f"/{sprint_bw(info.tcpi_max_pacing_rate * 8.0, numeric)}bps")
    if info.tcpi_delivery_rate:
        parts.append(f" delivery_rate {sprint_bw(info.tcpi_delivery_rate * 8.0, numeric)}bps")
    if info.tcpi_delivered:
        parts.append(f" delivered:{info.tcpi_delivered}")
    if info.tcpi_delivered_ce:
        parts.append(f" delivered_ce:{info.tcpi_delivered_ce}")
    if info.tcpi_delivery_rate_app_limited:
        parts.append(" app_limited")
    if info.tcpi_busy_time:
        parts.append(f" busy:{info.tcpi_busy_time // 1000}ms")
    if info.tcpi_unacked:
        parts.append(f" unacked:{info.tcpi_unacked}")
    if info.tcpi_retrans or info.tcpi_total_retrans:
        parts.append(f" retrans:{info.tcpi_retrans}/{info.tcpi_total_retrans}")
    if info.tcpi_lost:
        parts.append(f" lost:{info.tcpi_lost}")
    if info.tcpi_sacked and info.tcpi_state != TCP_LISTEN:
        parts.append(f" sacked:{info.tcpi_sacked}")
    if info.tcpi_dsack_dups:
        parts.append(f" dsack_dups:{info.tcpi_dsack_dups}")
    if info.tcpi_reordering != 3:
        parts.append(f" reordering:{info.tcpi_reordering}")
    if info.tcpi_reord_seen:
        parts.append(f" reord_seen:{info.tcpi_reord_seen}")
    if info.tcpi_rcv_rtt:
        parts.append(f" rcv_rtt:{info.tcpi_rcv_rtt / 1000:g}")
    for value, label in ((info.tcpi_rcv_space, "rcv_space"), (info.tcpi_rcv_ssthresh, "rcv_ssthresh"),
                         (info.tcpi_notsent_bytes, "notsent")):
        if value:
            parts.append(f" {label}:{value}")
    if info.tcpi_min_rtt and info.tcpi_min_rtt != U32_MAX:
        parts.append(f" minrtt:{info.tcpi_min_rtt / 1000:g}")
    if info.tcpi_rcv_ooopack:
        parts.append(f" rcv_ooopack:{info.tcpi_rcv_ooopack}")
    if info.tcpi_snd_wnd:
        parts.append(f" snd_wnd:{info.tcpi_snd_wnd}")
    return "".join(parts)


# ------------------------------------------------------------------ -s

def print_summary(net) -> str:
    """print_summary(): /proc/net/sockstat and sockstat6 and the Tcp line's
    CurrEstab of /proc/net/snmp."""
    sockstat = _sockstat(net.proc_net["sockstat"](net))
    sockstat6 = _sockstat(net.proc_net["sockstat6"](net))
    estab = _snmp_value(net.proc_net["snmp"](net), "Tcp:", "CurrEstab")
    tcp4, tws, total = sockstat["TCP:"]["inuse"], sockstat["TCP:"]["tw"], sockstat["TCP:"]["alloc"]
    tcp6 = sockstat6["TCP6:"]["inuse"]
    rows = {name: (sockstat[f"{name}:"]["inuse"], sockstat6[f"{name}6:"]["inuse"]) for name in ("RAW", "UDP", "TCP")}
    rows["INET"] = tuple(map(sum, zip(*rows.values())))
    rows["FRAG"] = (sockstat["FRAG:"]["inuse"], sockstat6["FRAG6:"]["inuse"])
    return (f"Total: {sockstat['sockets:']['used']}\n"
            f"TCP:   {total + tws} (estab {estab}, closed {total - (tcp4 + tcp6 - tws)}, "
            f"orphaned {sockstat['TCP:']['orphan']}, timewait {tws})\n\n"
            "Transport Total     IP        IPv6\n"
            + "".join(f"{name}\t  {ip + ip6:<9d} {ip:<9d} {ip6:<9d}\n" for name, (ip, ip6) in rows.items())
            + "\n")


def _sockstat(text: str) -> dict[str, dict[str, int]]:
    """get_sockstat_line(): `ID: name value name value ...` per line."""
    out = {}
    for line in text.splitlines():
        ident, *pairs = line.split()
        out[ident] = {name: int(value) for name, value in zip(pairs[::2], pairs[1::2])}
    return out


def _snmp_value(text: str, proto: str, key: str) -> int:
    """get_snmp_int(): the value under `key` in the line pair of `proto`."""
    lines = text.splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith(proto):
            return int(values.split()[names.split().index(key)])
    return 0
