"""Connection tracking entries and their constants (include/net/netfilter/nf_conntrack.h,
include/uapi/linux/netfilter/nf_conntrack_common.h).

An skb carries its entry in `skb.nfct` and how it relates to it in `skb.ctinfo`
(IP_CT_*). `skb.nfct` is None when conntrack refused the packet (INVALID), or
UNTRACKED after a raw-table `notrack`. nf_ct_delete() and nf_ct_kill()
(nf_conntrack_core.c) unlink an entry: here, below the trackers that kill
entries (nf_conntrack_proto_tcp.py) and the core that runs them.
"""
from __future__ import annotations

from dataclasses import dataclass
from socket import AF_INET, AF_INET6
from typing import NamedTuple

# enum ip_conntrack_info
IP_CT_ESTABLISHED, IP_CT_RELATED, IP_CT_NEW, IP_CT_IS_REPLY = 0, 1, 2, 3
IP_CT_ESTABLISHED_REPLY, IP_CT_RELATED_REPLY = 3, 4
IP_CT_UNTRACKED = 7
COUNT_KEY = "net.netfilter.nf_conntrack_count"
# enum ip_conntrack_status bits
IPS_EXPECTED, IPS_SEEN_REPLY, IPS_ASSURED, IPS_CONFIRMED = 1 << 0, 1 << 1, 1 << 2, 1 << 3
IPS_SRC_NAT, IPS_DST_NAT, IPS_SEQ_ADJUST = 1 << 4, 1 << 5, 1 << 6
IPS_SRC_NAT_DONE, IPS_DST_NAT_DONE, IPS_DYING = 1 << 7, 1 << 8, 1 << 9
IPS_FIXED_TIMEOUT, IPS_TEMPLATE, IPS_UNTRACKED = 1 << 10, 1 << 11, 1 << 12
IPS_OFFLOAD = 1 << 14  # IPS_OFFLOAD_BIT: in a flowtable (nf_flow_table_core.py)
IPS_NAT_MASK = IPS_SRC_NAT | IPS_DST_NAT
STATUS_NAMES = {IPS_EXPECTED: "expected", IPS_SEEN_REPLY: "seen-reply", IPS_ASSURED: "assured",
                IPS_CONFIRMED: "confirmed", IPS_SRC_NAT: "snat", IPS_DST_NAT: "dnat",
                IPS_DYING: "dying", IPS_UNTRACKED: "untracked", IPS_OFFLOAD: "offload"}
IP_CT_DIR_ORIGINAL, IP_CT_DIR_REPLY = 0, 1


class Tuple(NamedTuple):
    """struct nf_conntrack_tuple: IPv4 addresses as ints, IPv6 ones as 16 bytes;
    for ICMP(v6), sport is the echo id and dport packs type << 8 | code, as the
    kernel keeps them."""

    src: int
    dst: int
    proto: int
    sport: int
    dport: int

    def invert(self) -> "Tuple":
        return Tuple(self.dst, self.src, self.proto, self.dport, self.sport)


@dataclass(eq=False, slots=True)
class NfConn:
    """struct nf_conn. `original` and `reply` are ct->tuplehash[dir].tuple, held
    directly (no list per entry: the table keeps millions); `proto` is the
    union ct->proto: the TCP tracker's state (nf_conntrack_proto_tcp.IpCtTcp),
    UDP's stream_ts (virtual time), None for other protocols."""

    original: Tuple
    reply: Tuple
    status: int = 0
    mark: int = 0
    secmark: int = 0  # the secmark extension (CONFIG_NF_CONNTRACK_SECMARK): CONNSECMARK's copy
    timeout: float = 0.0  # virtual time when it expires
    proto: object = None
    zone: int = 0  # nf_ct_zone(ct)->id (a template's: the zone its packet's entry gets)
    labels: int = 0  # the connlabel extension's 128 bits
    events: int = 0  # the ecache extension's event mask (`ct event set`)
    acct: list | None = None  # the acct extension: [packets, bytes] per direction
    seqadj: list | None = None  # the seqadj extension (nf_conntrack_seqadj.py), per direction
    synproxy: object = None  # the synproxy extension (nf_synproxy.py NfConnSynproxy)

    @property
    def proto_state(self) -> str:
        """The TCP tracker's state as conntrack lists it (SYN_SENT,
        ESTABLISHED, ...; tcp_print_conntrack()); '' for other protocols."""
        return getattr(self.proto, "state_name", "")

    @property
    def l3num(self) -> int:
        """nf_ct_l3num(): AF_INET, or AF_INET6 for an entry of 16-byte addresses."""
        return AF_INET if self.original.src.__class__ is int else AF_INET6

    @property
    def tuplehash(self) -> tuple[Tuple, Tuple]:
        """Both tuples, indexed by direction (IP_CT_DIR_ORIGINAL, IP_CT_DIR_REPLY)."""
        return self.original, self.reply


@dataclass(slots=True)
class NfConnSynproxy:
    """struct nf_conn_synproxy (include/net/netfilter/nf_conntrack_synproxy.h):
    the proxy's ISN (the cookie), its timestamp and the offset of the server's."""

    isn: int = 0
    its: int = 0
    tsoff: int = 0


def nf_is_loopback_packet(skb) -> bool:
    """nf_is_loopback_packet(): received on a loopback device (a packet on its
    way out through lo has no skb_iif yet)."""
    dev = skb.dev
    return dev is not None and bool(skb.skb_iif) and dev.is_loopback


_STATUS_VALUES: dict[int, int] = {}  # at most one int object per status value, see nf_ct_set_status()


def nf_ct_set_status(ct: NfConn, bits: int) -> None:
    """set_bit() on ct->status. A status is an int object of 28 bytes above
    256; entries with equal status share one (the table holds millions, and
    only a few dozen values occur)."""
    status = ct.status | bits
    ct.status = _STATUS_VALUES.setdefault(status, status)


UNTRACKED = NfConn(Tuple(0, 0, 0, 0, 0), Tuple(0, 0, 0, 0, 0), status=IPS_UNTRACKED | IPS_CONFIRMED)


def ct_direction(ctinfo: int) -> int:
    return IP_CT_DIR_REPLY if ctinfo >= IP_CT_IS_REPLY and ctinfo != IP_CT_UNTRACKED else IP_CT_DIR_ORIGINAL


def nf_ct_delete(net, ct: NfConn) -> None:
    table = net.conntrack
    if table.hash.get(ct.original) is ct:  # confirmed, and not deleted yet
        del table.hash[ct.original]
        table.hash.pop(ct.reply, None)  # gone already if the tuple is its own inverse
        table.count -= 1
        net.sysctl.values[COUNT_KEY] = table.count


def nf_ct_kill(net, ct: NfConn) -> None:
    """Delete the entry now; the packet that killed it keeps its reference."""
    ct.timeout = net.clock.now
    nf_ct_delete(net, ct)
