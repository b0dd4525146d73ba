"""nft_flow_offload (net/netfilter/nft_flow_offload.c): `flow add @FT` (nft 1.0.6
lists the older `flow offload @FT` as `flow add @FT`) puts the packet's
connection into flowtable FT, whose ingress hook (nf_flow_table_ip.py) then
forwards its packets past the stack.

nft_flow_offload_eval() offloads the connection of a packet that has no IP
options (nft_flow_offload_skip()), whose conntrack entry is TCP or UDP (TCP:
neither FIN nor RST in this packet, and nf_conntrack_tcp_established():
ESTABLISHED and ASSURED), has no helper and no sequence adjustment
(IPS_SEQ_ADJUST), is confirmed (so never a connection's first packet: conntrack
confirms it after FORWARD, in POSTROUTING) and is not offloaded already
(test_and_set_bit(IPS_OFFLOAD_BIT)). nft_flow_route() takes the packet's route
for its direction and looks the other direction's up (nf_route(): to the
sender, out of the device the packet came in on); the devices of the two
routes are where each direction comes in. The flow (flow_offload_alloc(),
NF_FLOW_SNAT/DNAT from the entry's status) goes into the flowtable
(flow_offload_add()), and a TCP entry's window tracking becomes liberal in both
directions (IP_CT_TCP_FLAG_BE_LIBERAL). When the connection is not offloaded
(any of the above, a route missing, a flow of the same tuple there already)
the rule stops here (NFT_BREAK: the statements after `flow add` do not run);
when it is, the rule goes on.

nf_tables_newrule(): nft_flow_offload_init() looks the flowtable up in the
rule's table (ENOENT) and holds it (flowtable->use: deleting it is EBUSY) and
conntrack (nf_ct_netns_get()); nft_flow_offload_validate() takes the ip, ip6
and inet families only and the forward hook only (EOPNOTSUPP).
"""
from __future__ import annotations

from harness.mockkernel.ipv4.route import ip_route_output
from harness.mockkernel.ipv6.ip6_output import ip6_dst_mtu_forward
from harness.mockkernel.ipv6.route import ip6_route_output
from harness.mockkernel.netfilter.core import NFPROTO_IPV4
from harness.mockkernel.netfilter.nf_conntrack import (IPS_CONFIRMED, IPS_DST_NAT, IPS_OFFLOAD, IPS_SEQ_ADJUST,
                                                       IPS_SRC_NAT, UNTRACKED, ct_direction)
from harness.mockkernel.netfilter.nf_conntrack_proto_tcp import IP_CT_TCP_FLAG_BE_LIBERAL, nf_conntrack_tcp_established
from harness.mockkernel.netfilter import nf_flow_table_core as core
from harness.mockkernel.netfilter.nf_flow_table_core import IPPROTO_TCP, IPPROTO_UDP, FlowOffloadTuple, flow_offload_add
from harness.mockkernel.netfilter.nft_exprs import NFT_BREAK, CompileCtx, PrintCtx, Stmt
from harness.mockkernel.wire.tcp import FLAGS as TCP_FLAGS
from harness.mockkernel.wire.tcp import TCPHDR_FIN, TCPHDR_RST

EOPNOTSUPP = "Operation not supported"
FLOW_OFFLOAD_FAMILIES = ("ip", "ip6", "inet")


class FlowOffload(Stmt):
    """`flow add @FT`; `key` names the flowtable's flow table once the rule is bound
    (nf_tables.py: NftFlowtable.key())."""

    needs_conntrack = True

    def __init__(self, flowtable: str, loc=None):
        self.flowtable, self.loc = flowtable, loc
        self.key = None

    def text(self, pctx: PrintCtx) -> str:
        """src/statement.c flow_offload_stmt_print()."""
        return f"flow add @{self.flowtable}"

    def json(self, pctx: PrintCtx) -> list[dict]:
        """src/json.c flow_offload_stmt_json()."""
        return [{"flow": {"op": "add", "flowtable": f"@{self.flowtable}"}}]

    def hook_refusal(self, family: str, hook: str, chain_type: str) -> str | None:
        """nft_flow_offload_validate()."""
        return None if family in FLOW_OFFLOAD_FAMILIES and hook == "forward" else EOPNOTSUPP

    def compile(self, ctx: CompileCtx):
        flow_table = ctx.net.nft.flow_table(self.key)
        net = ctx.net

        def nft_flow_offload_eval(pkt):
            skb = pkt.skb
            ipv4 = pkt.state.pf == NFPROTO_IPV4
            if ipv4 and skb.cb and skb.cb.get("opt") is not None:  # nft_flow_offload_skip()
                return NFT_BREAK
            ct = skb.nfct
            if ct is None or ct is UNTRACKED:
                return NFT_BREAK
            proto = ct.original.proto
            if proto == IPPROTO_TCP:
                thoff = pkt.thoff
                if thoff < 0 or thoff + 20 > pkt.end or pkt.buf[thoff + TCP_FLAGS] & (TCPHDR_FIN | TCPHDR_RST) \
                        or not nf_conntrack_tcp_established(ct):
                    return NFT_BREAK
            elif proto != IPPROTO_UDP:
                return NFT_BREAK
            status = ct.status
            if ct.seqadj is not None or status & IPS_SEQ_ADJUST or not status & IPS_CONFIRMED or status & IPS_OFFLOAD:
                return NFT_BREAK
            ct.status = status | IPS_OFFLOAD
            flow = nft_flow_route(net, pkt, ct, ct_direction(skb.ctinfo), ipv4)
            if flow is None or not flow_offload_add(flow_table, flow):
                ct.status &= ~IPS_OFFLOAD
                return NFT_BREAK
            if proto == IPPROTO_TCP:
                for seen in ct.proto.seen:
                    seen.flags |= IP_CT_TCP_FLAG_BE_LIBERAL
            return None
        return nft_flow_offload_eval


def nft_flow_route(net, pkt, ct, direction: int, ipv4: bool) -> core.FlowOffload | None:
    """nft_flow_route() + flow_offload_alloc() + flow_offload_route_init(): this
    direction leaves by the packet's route; the other by the route to this
    direction's sender out of the device this packet came in on (None: no such
    route). A direction comes in on the device the other leaves by."""
    skb = pkt.skb
    tuples = ct.original, ct.reply
    this, other = tuples[direction], tuples[not direction]
    this_dst = skb.dst
    in_dev = pkt.state.in_dev
    if ipv4:
        other_dst = ip_route_output(net, this.src, other.src, oif=in_dev.ifindex, mark=skb.mark)
        if isinstance(other_dst, int):
            return None
    else:
        other_dst = ip6_route_output(net, this.src, oif=in_dev.ifindex, mark=skb.mark)
        if other_dst.error or other_dst.dev is None:
            return None
    dsts = {direction: this_dst, 1 - direction: other_dst}
    hashes = []
    for d in (0, 1):
        t, dst = tuples[d], dsts[d]
        came_in_on = dsts[1 - d].dev.ifindex  # route->tuple[!dir].in.ifindex = the other dst's device
        mtu = (dst.mtu or dst.dev.mtu) if ipv4 else ip6_dst_mtu_forward(dst)
        hashes.append(FlowOffloadTuple((t.src, t.dst, t.proto, t.sport, t.dport, came_in_on), dst, mtu))
    status = ct.status
    return core.FlowOffload(ct, (hashes[0], hashes[1]), bool(status & IPS_SRC_NAT), bool(status & IPS_DST_NAT))
