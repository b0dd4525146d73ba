"""nft_fwd_netdev (net/netfilter/nft_fwd_netdev.c): `fwd to DEV` and
`fwd ip|ip6 to ADDR device DEV` in netdev tables; nftables src/statement.c
fwd_stmt_print(), src/json.c fwd_stmt_json(), src/evaluate.c
stmt_evaluate_fwd() (netdev tables only: "unsupported family").

nft_fwd_netdev_eval(): skb_iif set to the receiving device, the packet
handed to nf_fwd_netdev_egress() (nf_dup_netdev.py: out of DEV by
dev_queue_xmit(), unchanged, skipping the stack) and the verdict NF_STOLEN:
the chain stops, the hook and the stack see no more of it.

nft_fwd_neigh_eval(): a packet of the given protocol (else NFT_BREAK) gets
its TTL or hop limit lowered by one (ip_decrease_ttl(), checksum updated),
then goes out of DEV to the neighbour ADDR (neigh_xmit(): ARP or ND resolves
it, the packet waits in the neighbour's queue meanwhile), NF_STOLEN. No
routing, no TTL check: a packet with TTL 1 leaves with 0. A device that is
gone leaves the verdict alone (the rule goes on, the TTL already lowered).
nft_fwd_validate() allows both in ingress and egress chains, which is every
netdev base chain.

DEV (and ADDR) may be a map lookup (`meta mark map { 1 : "p1" }`); a key
the map lacks breaks the rule.
"""
from __future__ import annotations

from harness.mockkernel.core.neighbour import NEIGH_ARP_TABLE, NEIGH_ND_TABLE, neigh_xmit
from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.core import NF_STOLEN
from harness.mockkernel.netfilter.nf_dup_netdev import nf_fwd_netdev_egress
from harness.mockkernel.netfilter.nft_exprs import NFT_BREAK, CompileCtx, MapExpr, PrintCtx, Stmt
from harness.mockkernel.netfilter.nft_json import selector_json
from harness.mockkernel.wire.ethernet import ETH_P_IP, ETH_P_IPV6
from harness.mockkernel.wire.ipv4 import ip_decrease_ttl
from harness.mockkernel.wire.ipv6 import Ipv6Packet

ADDR_TYPES = {"ip": types.ipv4_addr, "ip6": types.ipv6_addr}


def operand_text(value, dtype, pctx: PrintCtx) -> str:
    return value.text(pctx) if isinstance(value, MapExpr) else dtype.format(value)


def operand_json(value, dtype, pctx: PrintCtx):
    if isinstance(value, MapExpr):
        return selector_json(value, pctx)
    text = dtype.format(value)
    return text.strip('"') if isinstance(dtype, types.IfaceIndexType) else text


def operand_loader(value, ctx: CompileCtx):
    """pkt -> the value (None: the map has no element for the packet's key)."""
    return value.lookup(ctx) if isinstance(value, MapExpr) else (lambda pkt: value)


class Fwd(Stmt):
    """`dev`: an ifindex or a map giving one; `family` and `addr` for the
    neighbour form (nft_fwd_neigh). `dev_type` names devices in listings."""

    terminal = True
    may_change_packet = True

    def __init__(self, dev, dev_type: types.Datatype, family: str | None = None, addr=None, loc=None):
        self.dev, self.dev_type, self.family, self.addr, self.loc = dev, dev_type, family, addr, loc

    def maps(self) -> list[MapExpr]:
        return [v for v in (self.dev, self.addr) if isinstance(v, MapExpr)]

    def text(self, pctx: PrintCtx) -> str:
        dev = operand_text(self.dev, self.dev_type, pctx)
        if self.family is None:
            return f"fwd to {dev}"
        return f"fwd {self.family} to {operand_text(self.addr, ADDR_TYPES[self.family], pctx)} device {dev}"

    def json(self, pctx: PrintCtx) -> list[dict]:
        out = {"dev": operand_json(self.dev, self.dev_type, pctx)}
        if self.family is not None:
            out.update(family=self.family, addr=operand_json(self.addr, ADDR_TYPES[self.family], pctx))
        return [{"fwd": out}]

    def compile(self, ctx: CompileCtx):
        oif = operand_loader(self.dev, ctx)
        if self.family is None:
            def nft_fwd_netdev_eval(pkt):
                ifindex = oif(pkt)
                if ifindex is None:
                    return NFT_BREAK
                skb = pkt.skb
                skb.skb_iif = skb.dev.ifindex
                nf_fwd_netdev_egress(skb, pkt.state, ifindex)
                return NF_STOLEN
            return nft_fwd_netdev_eval
        return self._compile_neigh(ctx, oif)

    def _compile_neigh(self, ctx: CompileCtx, oif):
        net, addr = ctx.net, operand_loader(self.addr, ctx)
        ipv4 = self.family == "ip"
        protocol, table = (ETH_P_IP, NEIGH_ARP_TABLE) if ipv4 else (ETH_P_IPV6, NEIGH_ND_TABLE)

        def nft_fwd_neigh_eval(pkt):
            skb = pkt.skb
            ifindex, nexthop = oif(pkt), addr(pkt)
            if ifindex is None or nexthop is None:
                return NFT_BREAK
            if skb.protocol != protocol:
                return NFT_BREAK
            if ipv4:
                ip_decrease_ttl(skb.buf, skb.network_header)
            else:
                ip6h = Ipv6Packet(skb.buf, skb.network_header)
                ip6h.hop_limit = (ip6h.hop_limit - 1) & 0xFF
            dev = net.devices.get(ifindex)
            if dev is None:
                return None
            skb.tstamp = 0.0  # skb_clear_tstamp()
            net.tracer.hop(skb, pkt.state.stage, "nft_fwd_neigh_eval", "FWD",
                           f"to {ADDR_TYPES[self.family].format(nexthop)} dev {dev.name}")
            neigh_xmit(net, table, dev, nexthop if ipv4 else nexthop.to_bytes(16, "big"), skb)
            return NF_STOLEN
        return nft_fwd_neigh_eval
