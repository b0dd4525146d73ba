"""/proc/net/nf_conntrack (net/netfilter/nf_conntrack_standalone.c ct_seq_show(),
CONFIG_NF_CONNTRACK_PROCFS): every entry of the namespace, both families, one
line each: "ipv6     10 udp      17 29 src=... dst=... sport=... dport=...
[UNREPLIED] src=... mark=0 zone=0 use=2". Addresses print as %pI4 and %pI6
(IPv6 in full, four hex digits per group); a TCP entry has its state after the
timeout; ICMP and ICMPv6 tuples are type, code and id. Seen on 6.18 (netns lab);
the kernel walks its hash, the mock prints the entries in the order they were
confirmed. Left out: secctx, zones other than 0, HW_OFFLOAD.
"""
from __future__ import annotations

from harness.mockkernel.netfilter.nf_conntrack import IPS_ASSURED, IPS_OFFLOAD, IPS_SEEN_REPLY, NfConn, Tuple
from harness.mockkernel.wire.ipv4 import ip_str

L3PROTO_NAMES = {2: "ipv4", 10: "ipv6"}
L4PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}
ICMP_PROTOS = (1, 58)


def ct_seq_show(net) -> str:
    now = net.clock.now
    return "".join(_entry_line(ct, now) for ct in net.conntrack.entries() if ct.timeout > now)


def _entry_line(ct: NfConn, now: float) -> str:
    """An offloaded entry has no timeout and is [OFFLOAD] rather than [ASSURED]; the acct
    extension's counters follow each tuple (seq_print_acct())."""
    o = ct.original
    offloaded = ct.status & IPS_OFFLOAD
    parts = [f"{L3PROTO_NAMES[ct.l3num]:<8} {ct.l3num} {L4PROTO_NAMES.get(o.proto, 'unknown'):<8} {o.proto} " +
             ("" if offloaded else f"{int(ct.timeout - now)} ")]
    if ct.proto_state:
        parts.append(ct.proto_state + " ")
    parts.append(_print_tuple(o))
    if ct.acct is not None:
        parts.append("packets={} bytes={} ".format(*ct.acct[0]))
    if not ct.status & IPS_SEEN_REPLY:
        parts.append("[UNREPLIED] ")
    parts.append(_print_tuple(ct.reply))
    if ct.acct is not None:
        parts.append("packets={} bytes={} ".format(*ct.acct[1]))
    if offloaded:
        parts.append("[OFFLOAD] ")
    elif ct.status & IPS_ASSURED:
        parts.append("[ASSURED] ")
    parts.append(f"mark={ct.mark} zone=0 use=2\n")
    return "".join(parts)


def _print_tuple(t: Tuple) -> str:
    text = f"src={_addr(t.src)} dst={_addr(t.dst)} "
    if t.proto in ICMP_PROTOS:
        return text + f"type={t.dport >> 8} code={t.dport & 0xFF} id={t.sport} "
    if t.proto in (6, 17):
        return text + f"sport={t.sport} dport={t.dport} "
    return text


def _addr(addr: int | bytes) -> str:
    """%pI4, or %pI6: eight groups of four hex digits."""
    if addr.__class__ is int:
        return ip_str(addr)
    digits = addr.hex()
    return ":".join(digits[i:i + 4] for i in range(0, 32, 4))
