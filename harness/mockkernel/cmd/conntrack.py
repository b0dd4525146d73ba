"""conntrack-tools 1.4.7 `conntrack` over the mock's table: -L/--dump, -D/--delete,
-F/--flush, -C/--count, -S/--stats, -I/--create.

What the real tool prints on stdout is returned: entry lines for -L and -D (as
conntrack 1.4.7 prints them), the count for -C, one `cpu=0` line for -S; its
summaries ("N flow entries have been shown.") go to stderr, which `target.sh`
does not return on any target. -L and -D see both families (conntrack-tools
dumps AF_UNSPEC; seen on 6.18) unless -f/--family ipv4|ipv6 or an address
filter names one (a filter of the other family is "mismatched address
family"); -C, -S and -I refuse -f, -F takes it and empties both families.
Filters: -s/-d (original source/destination),
-r/-q (reply source/destination), -p, then --sport/--dport (and their
--orig-port-* names) and for tcp --state, -m/--mark. As in the real tool,
--sport/--dport/--state need -p before them, -C takes no filter, and -I needs
-p, -s, -d, -t, the ports and (tcp) --state; -I also takes -u (ASSURED,
SEEN_REPLY) and -m. Errors carry the tool's message and exit status.
"""
from __future__ import annotations

import functools
import re
import socket

from harness.journey import CtEntry
from harness.mockkernel.cmd.args import ToolError
from harness.mockkernel.net import int_to_ip
from harness.mockkernel.netfilter import nf_conntrack_core as core
from harness.mockkernel.netfilter import nf_conntrack_proto_tcp as proto_tcp
from harness.mockkernel.netfilter.nf_conntrack import (IPS_ASSURED, IPS_OFFLOAD, IPS_SEEN_REPLY, STATUS_NAMES, NfConn,
                                                       Tuple, nf_ct_delete)
from harness.mockkernel.wire.ipv4 import ip_str
from harness.mockkernel.wire.ipv6 import addr_str

PREFIX = "conntrack v1.4.7 (conntrack-tools): "
PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}
FAMILIES = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
ADDRESS_OPTIONS = ("src", "dst", "reply_src", "reply_dst")
PROTO_NUMBERS = {name: number for number, name in PROTO_NAMES.items()}
COMMANDS = {"-L": "list", "--dump": "list", "-D": "delete", "--delete": "delete", "-F": "flush",
            "--flush": "flush", "-C": "count", "--count": "count", "-S": "stats", "--stats": "stats",
            "-I": "create", "--create": "create"}
OPTIONS = {"-s": "src", "--src": "src", "--orig-src": "src", "-d": "dst", "--dst": "dst", "--orig-dst": "dst",
           "-r": "reply_src", "--reply-src": "reply_src", "-q": "reply_dst", "--reply-dst": "reply_dst",
           "-p": "proto", "--proto": "proto", "--protonum": "proto", "-m": "mark", "--mark": "mark",
           "-t": "timeout", "--timeout": "timeout", "-u": "status", "--status": "status",
           "-f": "family", "--family": "family"}
# options of the protocol given with -p
PROTO_OPTIONS = {"--sport": "sport", "--orig-port-src": "sport", "--dport": "dport", "--orig-port-dst": "dport",
                 "--reply-port-src": "reply_sport", "--reply-port-dst": "reply_dport"}
TCP_OPTIONS = {"--state": "state"}
CREATE_STATUS = {"ASSURED": IPS_ASSURED, "SEEN_REPLY": IPS_SEEN_REPLY}


def run(net, argv: list[str], stdin: str | None = None) -> str:
    if len(argv) < 2:
        raise ToolError(PREFIX + "no command specified\nTry `conntrack -h' or 'conntrack --help' for more "
                                 "information.", 2)
    command = COMMANDS.get(argv[1])
    if command is None:
        raise _usage(f"unknown option `{argv[1]}'")
    options = _options(argv[2:])
    # -F takes -f and flushes every family all the same (seen on 6.18)
    refused = [key for key in options if not (command == "flush" and key == "family")]
    if command in ("count", "stats", "flush") and refused:
        raise _usage(f"Illegal option `{_long_name(refused[0])}' with this command")
    if command == "create" and "family" in options:
        raise _usage("Illegal option `--family' with this command")
    if command == "create":
        return _create(net, options)
    core.nf_conntrack_gc(net)
    table = net.conntrack
    if command == "count":
        return f"{table.count}\n"
    if command == "stats":
        return "cpu=0   \t" + " ".join(f"{name}={table.stats[name]}" for name in core.STAT_NAMES) + " \n"
    if command == "flush":
        for ct in table.entries():
            nf_ct_delete(net, ct)
        return ""
    family = _family(options)
    chosen = [ct for ct in table.entries() if family in (None, ct.l3num) and _matches(ct, options)]
    if command == "delete":
        if not chosen:
            raise ToolError(PREFIX + "0 flow entries have been deleted.", 1)
        for ct in chosen:
            nf_ct_delete(net, ct)
    return "".join(format_entry(net, ct) + "\n" for ct in chosen)


def _usage(message: str) -> ToolError:
    return ToolError(PREFIX + message + "\nTry `conntrack -h' or 'conntrack --help' for more information.", 2)


def _long_name(key: str) -> str:
    return {"src": "--orig-src", "dst": "--orig-dst", "proto": "--protonum", "mark": "--mark",
            "timeout": "--timeout", "status": "--status"}.get(key, "--" + key)


def _options(tokens: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    tokens = list(tokens)
    while tokens:
        option = tokens.pop(0)
        key = OPTIONS.get(option)
        if key is None and "proto" in options:
            key = PROTO_OPTIONS.get(option) or (TCP_OPTIONS.get(option) if options["proto"] == "tcp" else None)
        if key is None:
            raise _usage(f"unknown option `{option}'")
        if not tokens:
            raise _usage(f"option `{option}' requires an argument")
        options[key] = tokens.pop(0)
        if key == "proto" and options[key] not in PROTO_NUMBERS:
            raise ToolError(PREFIX + f"`{options[key]}' is not a protocol the mock tracks (tcp, udp, icmp, "
                                     "icmpv6)", 2)
        if key == "family" and options[key] not in FAMILIES:
            raise _usage(f"`{options[key]}' unsupported protocol")
    return options


def _family(options: dict[str, str]) -> int | None:
    """-f, else the family of the address filters; None (both) without either."""
    family = FAMILIES[options["family"]] if "family" in options else None
    for key in ADDRESS_OPTIONS:
        if key in options:
            of_address = socket.AF_INET6 if ":" in options[key] else socket.AF_INET
            if family is not None and of_address != family:
                raise _usage("mismatched address family")
            family = of_address
    return family


def _matches(ct: NfConn, options: dict[str, str]) -> bool:
    o, r = ct.original, ct.reply
    for key, value in options.items():
        if key == "family":
            continue
        if key in ADDRESS_OPTIONS:
            value = addr_text(_addr(value))  # as the tool prints it
        got = {"src": lambda: addr_text(o.src), "dst": lambda: addr_text(o.dst), "reply_src": lambda: addr_text(r.src),
               "reply_dst": lambda: addr_text(r.dst), "proto": lambda: PROTO_NAMES.get(o.proto, str(o.proto)),
               "sport": lambda: str(o.sport), "dport": lambda: str(o.dport), "reply_sport": lambda: str(r.sport),
               "reply_dport": lambda: str(r.dport), "state": lambda: ct.proto_state,
               "mark": lambda: str(ct.mark)}.get(key)
        if got is None:
            raise ToolError(PREFIX + f"option {_long_name(key)} is not a filter of -L/-D on the mock target", 2)
        if got() != (value.upper() if key == "state" else value):
            return False
    return True


def _create(net, options: dict[str, str]) -> str:
    """-I: every tuple field, a timeout, and for tcp a state."""
    for key, name in (("proto", "--protonum"), ("src", "--orig-src"), ("dst", "--orig-dst"),
                      ("timeout", "--timeout")):
        if key not in options:
            raise _usage(f"You need to supply the `{name}' option for this command")
    if options["proto"] == "tcp" and "state" not in options:
        raise _usage("You need to supply the `--state' option for this command")
    status = 0
    for name in filter(None, options.get("status", "").split(",")):
        if name not in CREATE_STATUS:
            raise ToolError(PREFIX + f"status {name} is not modelled on the mock target (ASSURED, SEEN_REPLY)", 2)
        status |= CREATE_STATUS[name]
    src, dst = options["src"], options["dst"]
    _addr(src), _addr(dst)
    sport, dport = _port(options.get("sport", "0")), _port(options.get("dport", "0"))
    entry = CtEntry(options["proto"], options.get("state", "").upper(), (src, dst, sport, dport),
                    (options.get("reply_src", dst), options.get("reply_dst", src),
                     _port(options.get("reply_sport", str(dport))), _port(options.get("reply_dport", str(sport)))),
                    frozenset(n for bit, n in STATUS_NAMES.items() if status & bit),
                    _strtoul(options.get("mark", "0"), 0) & 0xFFFFFFFF, _strtoul(options["timeout"], 10) & 0xFFFFFFFF)
    error = core.ctnetlink_create_conntrack(net, nf_conn_from(net, entry))
    if error:
        message = "Such conntrack exists, try -U to update" if error == "File exists" else error
        raise ToolError(PREFIX + "Operation failed: " + message, 1)
    return ""


def _strtoul(text: str, base: int) -> int:
    """C's strtoul()/atol() as conntrack-tools reads numbers: leading blanks, a sign,
    the longest run of digits (0x for base 0); no digits is 0, the rest ignored
    (`--dport extended` is port 0, `-t 1x` one second, as the real tool takes them)."""
    match = re.match(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|[0-9]+)" if base == 0 else r"\s*([+-]?)([0-9]+)", text)
    if match is None:
        return 0
    digits = match.group(2)
    value = int(digits, 16) if digits[:2].lower() == "0x" else int(digits, 8 if base == 0 and digits[:1] == "0" and
                                                                 len(digits) > 1 else 10)
    return -value if match.group(1) == "-" else value


def _port(text: str) -> int:
    """A port as the proto extensions set it: htons(atoi(optarg)), cut to 16 bits."""
    return _strtoul(text, 10) & 0xFFFF


def nf_conn_from(net, entry: CtEntry) -> NfConn:
    """The entry ctnetlink_create_conntrack() builds from a CtEntry: status bits by
    name, the timeout from now, a TCP state with no window seen yet."""
    number = PROTO_NUMBERS[entry.proto]
    tuples = [Tuple(_addr(t[0]), _addr(t[1]), number, t[2], t[3]) for t in (entry.original, entry.reply)]
    status = _status_bits(entry.status)
    ct = NfConn(*tuples, status=status, mark=entry.mark, timeout=net.clock.now + entry.timeout)
    if number == 6:
        ct.proto = proto_tcp.IpCtTcp()
        ct.proto.state = proto_tcp.TCP_CONNTRACK_NAMES.index(entry.state or "NONE")
    return ct


@functools.lru_cache(maxsize=4096)
def _addr(text: str) -> int | bytes:
    """A dotted quad as an int, an IPv6 address as its 16 bytes (conntrack's
    tuples); cached, as a table fill repeats a few addresses."""
    try:
        if ":" in text:
            return socket.inet_pton(socket.AF_INET6, text)
        return int.from_bytes(socket.inet_aton(text), "big")
    except OSError:
        raise ToolError(PREFIX + f"Bad IP address `{text}'", 2) from None


def addr_text(addr: int | bytes) -> str:
    """An address as conntrack-tools prints it (inet_ntop())."""
    return ip_str(addr) if addr.__class__ is int else addr_str(addr)


@functools.lru_cache(maxsize=64)
def _status_bits(names: frozenset[str]) -> int:
    return sum(bit for bit, name in STATUS_NAMES.items() if name in names)


def _tuple_text(t: Tuple) -> str:
    text = f"src={addr_text(t.src)} dst={addr_text(t.dst)} "
    if t.proto in (6, 17):
        return text + f"sport={t.sport} dport={t.dport}"
    if t.proto in (1, 58):
        return text + f"type={t.dport >> 8} code={t.dport & 0xFF} id={t.sport}"
    return text.rstrip()


def seconds_left(net, ct: NfConn) -> int:
    return max(int(ct.timeout - net.clock.now), 0)


def format_entry(net, ct: NfConn) -> str:
    """libnetfilter_conntrack's default format of what ctnetlink_dump_info() sends: an
    offloaded entry has no timeout and no TCP state (ctnetlink leaves them out for
    IPS_OFFLOAD) and is [OFFLOAD] rather than [ASSURED]; an entry with the acct
    extension has each direction's packets and bytes after its tuple."""
    o = ct.original
    name = PROTO_NAMES.get(o.proto, "unknown")
    offloaded = ct.status & IPS_OFFLOAD
    parts = [f"{name:<8} {o.proto}" + ("" if offloaded else f" {seconds_left(net, ct)}")]
    if ct.proto_state and not offloaded:
        parts.append(ct.proto_state)
    parts.append(_tuple_text(o))
    if ct.acct is not None:
        parts.append("packets={} bytes={}".format(*ct.acct[0]))
    if not ct.status & IPS_SEEN_REPLY:
        parts.append("[UNREPLIED]")
    parts.append(_tuple_text(ct.reply))
    if ct.acct is not None:
        parts.append("packets={} bytes={}".format(*ct.acct[1]))
    if offloaded:
        parts.append("[OFFLOAD]")
    elif ct.status & IPS_ASSURED:
        parts.append("[ASSURED]")
    parts.append(f"mark={ct.mark}" + (f" zone={ct.zone}" if ct.zone else "") + " use=1")  # conntrack-tools: a zone not 0
    return " ".join(parts)


def status_names(ct: NfConn) -> frozenset[str]:
    return frozenset(name for bit, name in STATUS_NAMES.items() if ct.status & bit)


def ct_entry(net, ct: NfConn) -> CtEntry:
    """The entry as target.conntrack() shows it on every target: an offloaded one without
    TCP state or timeout, as ctnetlink_dump_info() leaves them out."""
    o, r = ct.original, ct.reply
    offloaded = ct.status & IPS_OFFLOAD
    return CtEntry(PROTO_NAMES.get(o.proto, str(o.proto)), "" if offloaded else ct.proto_state,
                   (int_to_ip(o.src), int_to_ip(o.dst), o.sport, o.dport),
                   (int_to_ip(r.src), int_to_ip(r.dst), r.sport, r.dport),
                   status_names(ct), ct.mark, 0 if offloaded else seconds_left(net, ct))
