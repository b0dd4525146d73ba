"""nft_socket: `socket transparent|mark|wildcard` (net/netfilter/nft_socket.c;
nftables src/socket.c socket_expr_print()).

nft_socket_eval(): the packet's socket (skb->sk, set on locally generated
packets), else nf_sk_lookup_slow_v4()'s: the TCP socket established for the
packet's addresses and ports or the listener of its destination, or the UDP
socket bound to it. No socket breaks the rule. `transparent` is the socket's
IP_TRANSPARENT (the mock's sockets never set it: 0), `mark` its SO_MARK
(0), `wildcard` whether it is bound to 0.0.0.0. IPv6 packets are looked up
by the mock's IPv4 tables only: none is found, the rule breaks.
nft_socket_validate(): prerouting, input and output (EOPNOTSUPP elsewhere).
Left out: `socket cgroupv2 level N`.
"""
from __future__ import annotations

from harness.mockkernel.ipv4.inet_hashtables import __inet_lookup_established, __inet_lookup_listener
from harness.mockkernel.ipv4.udp import udp_lookup
from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_exprs import CompileCtx, PrintCtx, Selector
from harness.mockkernel.wire.ethernet import ETH_P_IP
from harness.mockkernel.wire import udp
from harness.mockkernel.wire.ipv4 import Ipv4Packet

SOCKET_KEYS = {"transparent": types.IntegerType("integer", 1, "integer", types.HOST), "mark": types.mark,
               "wildcard": types.IntegerType("integer", 1, "integer", types.HOST)}
SOCKET_HOOKS = ("prerouting", "input", "output")


def nf_sk_lookup_slow_v4(net, pkt):
    """The socket an IPv4 TCP or UDP packet is for, None if none."""
    buf, nh, th = pkt.buf, pkt.nh, pkt.thoff
    if pkt.skb.protocol != ETH_P_IP or pkt.tprot not in (6, 17) or th < 0 or th + 4 > pkt.end:
        return None
    saddr, daddr = Ipv4Packet(buf, nh).saddr, Ipv4Packet(buf, nh).daddr
    sport, dport = udp.PORTS.unpack_from(buf, th)  # TCP's ports are where UDP's are
    if pkt.tprot == 17:
        return udp_lookup(net, daddr, dport)
    hashinfo = net.tcp_hashinfo
    return __inet_lookup_established(hashinfo, saddr, sport, daddr, dport) or \
        __inet_lookup_listener(hashinfo, daddr, dport)


def bound_address(sk) -> int:
    return getattr(sk, "rcv_saddr", getattr(sk, "addr", 0))


class Socket(Selector):
    def __init__(self, key: str):
        self.key, self.dtype = key, SOCKET_KEYS[key]

    def text(self, pctx: PrintCtx) -> str:
        return f"socket {self.key}"

    def json(self, pctx: PrintCtx) -> dict:
        return {"socket": {"key": self.key}}

    def hook_refusal(self, family: str, hook: str) -> str | None:
        return None if family in ("ip", "ip6", "inet") and hook in SOCKET_HOOKS else "Operation not supported"

    def load(self, ctx: CompileCtx):
        net, key = ctx.net, self.key

        def socket_eval(pkt):
            sk = pkt.skb.sk or nf_sk_lookup_slow_v4(net, pkt)
            if sk is None:
                return None
            if key == "transparent":
                return int(getattr(sk, "transparent", False))
            if key == "mark":
                return getattr(sk, "mark", 0)
            return int(bound_address(sk) in (0, bytes(16)))
        return socket_eval
