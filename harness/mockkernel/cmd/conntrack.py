"""conntrack-tools `conntrack` over the mock's table: -L/--dump, -D/--delete, -F/--flush, -C/--count.

Entries print as conntrack 1.4.7 prints them; the summary line goes to the
output too, as the harness captures both streams of the real tool.
"""
from __future__ import annotations

from harness.mockkernel.netfilter import nf_conntrack_core as core
from harness.mockkernel.netfilter.nf_conntrack import (IPS_ASSURED, IPS_SEEN_REPLY, STATUS_NAMES, NfConn,
                                                       Tuple)
from harness.mockkernel.wire.ipv4 import ip_str
from harness.target import CommandError

PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp"}
FILTERS = {"-s": "src", "--src": "src", "--orig-src": "src", "-d": "dst", "--dst": "dst", "--orig-dst": "dst",
           "-p": "proto", "--proto": "proto", "--sport": "sport", "--orig-port-src": "sport",
           "--dport": "dport", "--orig-port-dst": "dport"}


def run(net, argv: list[str], stdin: str | None = None) -> str:
    if len(argv) < 2:
        raise CommandError(argv, "conntrack v1.4.7 (conntrack-tools): no command specified")
    command, selectors = argv[1], _selectors(argv, argv[2:])
    entries = [ct for ct in list(net.conntrack.entries) if _alive(net, ct) and _matches(ct, selectors)]
    if command in ("-L", "--dump"):
        lines = [format_entry(net, ct) for ct in entries]
        return "".join(line + "\n" for line in lines) + \
            f"conntrack v1.4.7 (conntrack-tools): {len(entries)} flow entries have been shown.\n"
    if command in ("-D", "--delete"):
        if not entries:
            raise CommandError(argv, "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.")
        for ct in entries:
            core.nf_ct_delete(net, ct)
        return f"conntrack v1.4.7 (conntrack-tools): {len(entries)} flow entries have been deleted.\n"
    if command in ("-F", "--flush"):
        for ct in list(net.conntrack.entries):
            core.nf_ct_delete(net, ct)
        return "conntrack v1.4.7 (conntrack-tools): connection tracking table has been emptied.\n"
    if command in ("-C", "--count"):
        return f"{len(entries)}\n"
    raise CommandError(argv, f"conntrack: command {command} is not supported on the mock target")


def _selectors(argv: list[str], tokens: list[str]) -> dict[str, str]:
    selectors = {}
    while tokens:
        option = tokens.pop(0)
        if option not in FILTERS or not tokens:
            raise CommandError(argv, f"conntrack: option {option} is not supported on the mock target")
        selectors[FILTERS[option]] = tokens.pop(0)
    return selectors


def _alive(net, ct: NfConn) -> bool:
    if ct.timeout <= net.clock.now:
        core.nf_ct_delete(net, ct)
        return False
    return True


def _matches(ct: NfConn, selectors: dict[str, str]) -> bool:
    o = ct.original
    values = {"src": ip_str(o.src), "dst": ip_str(o.dst), "proto": PROTO_NAMES.get(o.proto, str(o.proto)),
              "sport": str(o.sport), "dport": str(o.dport)}
    return all(values[key] == value for key, value in selectors.items())


def _tuple_text(t: Tuple) -> str:
    text = f"src={ip_str(t.src)} dst={ip_str(t.dst)} "
    if t.proto in (6, 17):
        return text + f"sport={t.sport} dport={t.dport}"
    if t.proto == 1:
        return text + f"type={t.dport >> 8} code={t.dport & 0xFF} id={t.sport}"
    return text.rstrip()


def format_entry(net, ct: NfConn) -> str:
    o = ct.original
    name = PROTO_NAMES.get(o.proto, "unknown")
    left = int(ct.timeout - net.clock.now)
    parts = [f"{name:<8} {o.proto} {left}"]
    if ct.proto_state:
        parts.append(ct.proto_state)
    parts.append(_tuple_text(o))
    if not ct.status & IPS_SEEN_REPLY:
        parts.append("[UNREPLIED]")
    parts.append(_tuple_text(ct.reply))
    if ct.status & IPS_ASSURED:
        parts.append("[ASSURED]")
    parts.append(f"mark={ct.mark} use=1")
    return " ".join(parts)


def status_names(ct: NfConn) -> frozenset[str]:
    return frozenset(name for bit, name in STATUS_NAMES.items() if ct.status & bit)
