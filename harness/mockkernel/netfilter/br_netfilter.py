"""br_netfilter (net/bridge/br_netfilter_hooks.c, br_netfilter_ipv6.c): bridged
IPv4 frames cross the IPv4 netfilter hooks, as `net.bridge.bridge-nf-call-iptables`
asks, and bridged IPv6 frames the IPv6 ones, as `bridge-nf-call-ip6tables` asks.

The lab's kernel has it built in (CONFIG_BRIDGE_NETFILTER=y), so every
namespace has the net.bridge.bridge-nf-* sysctls from its start (brnf_table,
each 1 but the vlan/pppoe/pass-vlan-input-dev ones; brnf_sysctl_call_tables()
stores any non-zero write as 1), and the hooks (br_nf_ops) register in a
namespace when its first bridge device does (brnf_device_event()):

- br_nf_pre_routing() at NF_BR_PRE_ROUTING, priority NF_BR_PRI_BRNF (0): an
  IPv4 frame, when call-iptables is on (or the bridge's own nf_call_iptables),
  is checked (br_validate_ipv4(): a bad header is freed IP_INHDR), gets its
  nf_bridge_info, and runs the IPv4
  PRE_ROUTING hooks (conntrack, NAT, nft/iptables prerouting chains); an IPv6
  frame, when call-ip6tables is on, the same through br_nf_pre_routing_ipv6()
  (br_validate_ipv6()) and the IPv6 PRE_ROUTING hooks; each with the
  bridge as its input device (setup_pre_routing(), a PACKET_OTHERHOST frame
  taken as the host's meanwhile). br_nf_pre_routing_finish() then gives the
  frame back to its port and runs the bridge hooks after NF_BR_PRI_BRNF
  (br_nf_hook_thresh()) and the hook's okfn, br_handle_frame_finish().
- br_nf_local_in() at NF_BR_LOCAL_IN: the frame goes up to the bridge device;
  its PRE_ROUTING already ran, so ip_sabotage_in() at IPv4 and IPv6 PRE_ROUTING
  (NF_IP_PRI_FIRST, NF_IP6_PRI_FIRST) skips those hooks on the way up, straight
  to ip_rcv_finish() or ip6_rcv_finish().
- br_nf_forward_ip() at NF_BR_FORWARD (NF_BR_PRI_BRNF - 1): a frame that went
  through br_nf_pre_routing runs its family's FORWARD hooks with the bridge as
  input and output device, then br_nf_forward_finish() the bridge's later
  forward hooks and br_forward_finish().
- br_nf_post_routing() at NF_BR_POST_ROUTING (NF_BR_PRI_LAST): such a frame
  runs its family's POST_ROUTING hooks (SNAT, conntrack's confirm) with the bridge
  as output device, then br_nf_dev_queue_xmit() and br_dev_queue_push_xmit().

The frame's nf_bridge_info (an skb extension in the kernel) is kept in the
skb's control block, shared by clones until br_nf_forward_ip() unshares it.
A frame DNAT-ed to a host behind the same bridge stays bridged, to that
host's neighbour entry (br_nf_pre_routing_finish_bridge()); one DNAT-ed
elsewhere goes up to the host to be routed (its destination MAC the bridge's).
br_nf_forward_arp() hands bridged ARP to the NF_ARP_FORWARD hook, which only
arptables-legacy's filter table registers: nft's arp family has the input and
output hooks alone (nft_chain_filter.c nft_chain_filter_arp_init()), so with
nftables call-arptables changes nothing and the mock registers no such hook.
Left out: VLAN and PPPoE encapsulated IP (filter-vlan-tagged, filter-pppoe-tagged),
a bridged DNAT whose neighbour is still to resolve, refragmenting in
br_nf_dev_queue_xmit(), the IPv6 jumbogram
option (nf_ip6_check_hbh_len() takes a hop-by-hop header's lengths only).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.rtnetlink import NETDEV_REGISTER, register_netdevice_notifier
from harness.mockkernel.core.skbuff import PACKET_HOST, PACKET_OTHERHOST, SkBuff, kfree_skb
from harness.mockkernel.core.snmp import IP6_MIB_INHDRERRORS, IP6_MIB_INTRUNCATEDPKTS, IPSTATS_MIB_INHDRERRORS
from harness.mockkernel.core.sysctl import CtlTable, Sysctls, proc_dointvec
from harness.mockkernel.ipv4 import route
from harness.mockkernel.ipv4.ip_input import ip_rcv_finish
from harness.mockkernel.ipv6 import route as route6
from harness.mockkernel.ipv6.ip6_input import ip6_rcv_finish
from harness.mockkernel.ipv6.route import RT6_ERROR
from harness.mockkernel.netfilter.core import (HOOK_STAGES, NF_ACCEPT, NF_BR_FORWARD, NF_BR_LOCAL_IN,
                                               NF_BR_POST_ROUTING, NF_BR_PRE_ROUTING, NF_BRIDGE, NF_DROP,
                                               NF_INET_FORWARD, NF_INET_POST_ROUTING, NF_INET_PRE_ROUTING, NF_STOLEN,
                                               NFPROTO_BRIDGE, NFPROTO_IPV4, NFPROTO_IPV6, NfBridgeHookState,
                                               nf_hook, nf_hook_slow)
from harness.mockkernel.netfilter.nf_conntrack import IPS_CONFIRMED
from harness.mockkernel.net import NUD_VALID
from harness.mockkernel.wire import ethernet, ipv4, ipv6
from harness.mockkernel.wire.ethernet import ETH_P_IP, ETH_P_IPV6
from harness.mockkernel.wire.ipv6 import IPV6_HLEN, NEXTHDR, NEXTHDR_HOP

# include/uapi/linux/netfilter_bridge.h enum nf_br_hook_priorities, netfilter_ipv4.h NF_IP_PRI_FIRST,
# netfilter_ipv6.h NF_IP6_PRI_FIRST
NF_BR_PRI_BRNF = 0
NF_BR_PRI_LAST = 2**31 - 1
NF_IP_PRI_FIRST = NF_IP6_PRI_FIRST = -2**31
CALL_IPTABLES = "net.bridge.bridge-nf-call-iptables"
CALL_IP6TABLES = "net.bridge.bridge-nf-call-ip6tables"


def brnf_sysctl_call_tables(sysctls: Sysctls, table: CtlTable, key: str, text: str) -> int:
    """proc_dointvec(), then any non-zero value stored as 1."""
    return 1 if proc_dointvec(sysctls, table, key, text) else 0


BRNF_TABLE = {f"net.bridge.bridge-nf-{name}": CtlTable(default, brnf_sysctl_call_tables) for name, default in (
    ("call-arptables", 1), ("call-iptables", 1), ("call-ip6tables", 1), ("filter-vlan-tagged", 0),
    ("filter-pppoe-tagged", 0), ("pass-vlan-input-dev", 0))}


@dataclass
class NfBridgeInfo:
    """struct nf_bridge_info: where the frame came in and goes out, and what
    br_netfilter changed on it to show it to the IP hooks."""

    physindev: object  # the port it came in on
    daddr: int | bytes  # ipv4_daddr or ipv6_daddr before the PRE_ROUTING hooks: a change is DNAT
    physoutdev: object = None  # the port br_nf_forward_ip() saw it leave by
    in_prerouting: bool = True
    pkt_otherhost: bool = False
    sabotage_in_done: bool = False  # its way up skipped the IP PRE_ROUTING hooks once


def br_validate_ipv4(skb: SkBuff) -> bool:
    """The header checks ip_rcv_core() would make (InHdrErrors when one
    fails); a good packet is trimmed to its total length."""
    tot_len = ipv4.rcv_header_ok(skb.buf, skb.network_header, skb.tail)
    if not tot_len:
        skb.net.mib.ip_statistics[IPSTATS_MIB_INHDRERRORS] += 1
        return False
    skb.tail = skb.network_header + tot_len
    return True


def br_validate_ipv6(skb: SkBuff) -> bool:
    """br_netfilter_ipv6.c br_validate_ipv6(): a whole fixed header of
    version 6 (else Ip6InHdrErrors), a hop-by-hop header's lengths, a
    payload_len within the frame (else Ip6InTruncatedPkts); a good packet is
    trimmed to it and its IP6CB cleared."""
    buf, nh, tail = skb.buf, skb.network_header, skb.tail
    stats = skb.net.mib.ipv6_statistics
    if tail - nh < IPV6_HLEN or ipv6.RCV_FIELDS.unpack_from(buf, nh)[0] >> 4 != 6:
        stats[IP6_MIB_INHDRERRORS] += 1
        return False
    _, payload_len, nexthdr, _, _ = ipv6.RCV_FIELDS.unpack_from(buf, nh)
    if nexthdr == NEXTHDR_HOP and not ipv6.options_fill_header(buf, nh + IPV6_HLEN, tail):  # nf_ip6_check_hbh_len()
        return False
    if IPV6_HLEN + payload_len > tail - nh:
        stats[IP6_MIB_INTRUNCATEDPKTS] += 1
        return False
    skb.tail = nh + IPV6_HLEN + payload_len
    skb.transport_header = nh + IPV6_HLEN
    skb.cb["nhoff"] = NEXTHDR
    return True


def ipv4_daddr(skb: SkBuff) -> int:
    return ipv4.Ipv4Packet(skb.buf, skb.network_header).daddr


def ipv6_daddr(skb: SkBuff) -> bytes:
    return ipv6.DADDR_FIELD.unpack_from(skb.buf, skb.network_header)[0]


def ip_route_input_dnat(skb: SkBuff, bridge):
    """ip_route_input() for the DNAT-ed destination: the dst, or why not."""
    packet = ipv4.Ipv4Packet(skb.buf, skb.network_header)
    return route.ip_route_input(skb.net, packet.daddr, packet.saddr, packet.tos, bridge, skb.mark, packet.protocol)


def ip6_route_input_dnat(skb: SkBuff, bridge):
    """v6ops->route_input(): a dst whose error is set frees the frame (kfree_skb())."""
    rt = route6.ip6_route_input(skb.net, ipv6_daddr(skb), bridge)
    return DropReason.NOT_SPECIFIED if rt.input is RT6_ERROR else rt


@dataclass(frozen=True)
class BrnfFamily:
    """What br_netfilter does differently for IPv4 (br_netfilter_hooks.c) and
    IPv6 (br_netfilter_ipv6.c): its sysctl, header check, hooks and route."""

    pf: int
    call_tables: str
    bridge_option: str  # the bridge's own nf_call_iptables / nf_call_ip6tables (`ip link ... type bridge`)
    validate: Callable[[SkBuff], bool]
    pre_routing: str  # the function that frees a frame failing the check
    pre_routing_finish: str  # the function that frees a DNAT-ed frame with no route
    daddr: Callable[[SkBuff], int | bytes]
    route_input: Callable
    hookfns: Callable  # the namespace's hook functions of the family, by hook number
    neighbours: Callable  # the neighbour table's entries by (ifindex, address)
    rcv_finish: Callable[[SkBuff], None]


BRNF_IPV4 = BrnfFamily(NFPROTO_IPV4, CALL_IPTABLES, "nf_call_iptables", br_validate_ipv4, "br_nf_pre_routing",
                       "br_nf_pre_routing_finish", ipv4_daddr, ip_route_input_dnat, lambda net: net.nf_hooks.ipv4,
                       lambda net: net.neighbours, ip_rcv_finish)
BRNF_IPV6 = BrnfFamily(NFPROTO_IPV6, CALL_IP6TABLES, "nf_call_ip6tables", br_validate_ipv6, "br_nf_pre_routing_ipv6",
                       "br_nf_pre_routing_finish_ipv6", ipv6_daddr, ip6_route_input_dnat,
                       lambda net: net.nf_hooks.ipv6, lambda net: net.nd_tbl.entries, ip6_rcv_finish)
BRNF_FAMILIES = {ETH_P_IP: BRNF_IPV4, ETH_P_IPV6: BRNF_IPV6}


def brnf_family(skb: SkBuff):
    """IS_IP() / IS_IPV6(): the family of an skb with no VLAN tag held out of
    band; a tagged frame is is_vlan_ip()'s, which needs filter-vlan-tagged (left
    out: 0), so it passes the bridge without iptables."""
    return None if skb.vlan_proto else BRNF_FAMILIES.get(skb.protocol)


def br_netfilter_init(net) -> None:
    """br_netfilter_init() and brnf_init_net(): the sysctls now, the hooks with
    the namespace's first bridge."""
    net.sysctl.register(BRNF_TABLE)
    net.brnf_enabled = False
    register_netdevice_notifier(net, brnf_device_event)


def brnf_device_event(net, event: int, dev) -> None:
    if event != NETDEV_REGISTER or dev.kind != "bridge" or net.brnf_enabled:
        return
    hooks = net.nf_hooks
    hooks.register(NFPROTO_BRIDGE, NF_BR_PRE_ROUTING, NF_BR_PRI_BRNF, "br_nf_pre_routing", br_nf_pre_routing)
    hooks.register(NFPROTO_BRIDGE, NF_BR_LOCAL_IN, NF_BR_PRI_BRNF, "br_nf_local_in", br_nf_local_in)
    hooks.register(NFPROTO_BRIDGE, NF_BR_FORWARD, NF_BR_PRI_BRNF - 1, "br_nf_forward_ip", br_nf_forward_ip)
    hooks.register(NFPROTO_BRIDGE, NF_BR_POST_ROUTING, NF_BR_PRI_LAST, "br_nf_post_routing", br_nf_post_routing)
    hooks.register(NFPROTO_IPV4, NF_INET_PRE_ROUTING, NF_IP_PRI_FIRST, "ip_sabotage_in", ip_sabotage_in)
    hooks.register(NFPROTO_IPV6, NF_INET_PRE_ROUTING, NF_IP6_PRI_FIRST, "ip_sabotage_in", ip_sabotage_in)
    net.brnf_enabled = True


def nf_bridge_info_get(skb: SkBuff) -> NfBridgeInfo | None:
    return skb.cb.get(NF_BRIDGE) if skb.cb else None


def br_nf_hook_thresh(hook: int, skb: SkBuff, in_dev, out_dev, okfn) -> None:
    """The bridge hook's entries after br_netfilter's own (priority above
    NF_BR_PRI_BRNF), then okfn."""
    entries = tuple(e for e in skb.net.nf_hooks.entries.get((NFPROTO_BRIDGE, hook), ())
                    if e.priority > NF_BR_PRI_BRNF)
    if entries:
        state = NfBridgeHookState(hook, NFPROTO_BRIDGE, in_dev, out_dev, skb.net, HOOK_STAGES[hook], okfn)
        if nf_hook_slow(skb, state, entries) != NF_ACCEPT:
            return
    okfn(skb)


# ---------------------------------------------------------------- PRE_ROUTING

def br_nf_pre_routing(skb: SkBuff, state: NfBridgeHookState) -> int:
    """br_nf_pre_routing(), and br_nf_pre_routing_ipv6() for IPv6: checked, an
    nf_bridge_info, the family's PRE_ROUTING hooks with the bridge as device."""
    family = brnf_family(skb)
    if family is None or not (skb.net.sysctl.values[family.call_tables]
                              or getattr(skb.dev.master.priv, family.bridge_option)):
        return NF_ACCEPT
    if not family.validate(skb):
        kfree_skb(skb, DropReason.IP_INHDR, state.stage, family.pre_routing)
        return NF_STOLEN
    port_dev = skb.dev
    info = NfBridgeInfo(port_dev, family.daddr(skb))
    skb.cb[NF_BRIDGE] = info
    if skb.pkt_type == PACKET_OTHERHOST:  # setup_pre_routing()
        skb.pkt_type, info.pkt_otherhost = PACKET_HOST, True
    skb.dev = bridge = port_dev.master
    hookfns = family.hookfns(skb.net)[NF_INET_PRE_ROUTING]
    if not hookfns or nf_hook(skb, NF_INET_PRE_ROUTING, bridge, None, hookfns, family.pf):
        br_nf_pre_routing_finish(skb, family, state.okfn)
    return NF_STOLEN


def br_nf_pre_routing_finish(skb: SkBuff, family: BrnfFamily, okfn) -> None:
    """br_nf_pre_routing_finish(), br_nf_pre_routing_finish_ipv6(): back to the
    port; a DNAT-ed frame routed (bridged on if the route leads out of the
    bridge, else up to the host)."""
    info: NfBridgeInfo = skb.cb[NF_BRIDGE]
    bridge = skb.dev
    if info.pkt_otherhost:
        skb.pkt_type, info.pkt_otherhost = PACKET_OTHERHOST, False
    info.in_prerouting = False
    daddr = family.daddr(skb)
    if daddr != info.daddr:
        rt = family.route_input(skb, bridge)
        if rt.__class__ is DropReason:
            kfree_skb(skb, rt, Stage.NF_PREROUTING, family.pre_routing_finish)
            return
        skb.dst = rt
        if rt.dev is bridge:  # bridged_dnat: still bridged, to the new address's neighbour
            skb.dev = info.physindev
            br_nf_hook_thresh(NF_BR_PRE_ROUTING, skb, skb.dev, None,
                              lambda skb: br_nf_pre_routing_finish_bridge(skb, family, daddr, okfn))
            return
        ethernet.EthernetFrame(skb.buf, skb.mac_header).dst = bridge.mac  # up to the host, to be routed
        skb.pkt_type = PACKET_HOST
    skb.dev = info.physindev
    br_nf_hook_thresh(NF_BR_PRE_ROUTING, skb, skb.dev, None, okfn)


def br_nf_pre_routing_finish_bridge(skb: SkBuff, family: BrnfFamily, daddr: int | bytes, okfn) -> None:
    """The frame takes the destination address of the new address's neighbour on
    the bridge (neigh_hh_bridge(); the kernel's slow path through neigh->output and
    br_nf_dev_xmit() ends the same for a valid entry) and is bridged on. An entry
    still to resolve is left out (the kernel queues the frame behind an ARP
    request or a neighbour solicitation): the frame is freed NOT_SPECIFIED."""
    bridge = skb.dev.master
    neigh = family.neighbours(skb.net).get((bridge.ifindex, skb.dst.nexthop(daddr)))
    if neigh is None or not neigh.state & NUD_VALID:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.NF_PREROUTING, "br_nf_pre_routing_finish_bridge")
        return
    ethernet.EthernetFrame(skb.buf, skb.mac_header).dst = neigh.lladdr
    okfn(skb)


def ip_sabotage_in(skb: SkBuff, state) -> int:
    """The frame's PRE_ROUTING hooks ran in br_nf_pre_routing(): on its way up
    from the bridge it goes on to ip_rcv_finish() (ip6_rcv_finish()) without them."""
    info = nf_bridge_info_get(skb)
    if info is None or info.in_prerouting or info.sabotage_in_done:
        return NF_ACCEPT
    info.sabotage_in_done = True
    (BRNF_IPV6 if state.pf == NFPROTO_IPV6 else BRNF_IPV4).rcv_finish(skb)
    return NF_STOLEN


# ---------------------------------------------------------------- LOCAL_IN, FORWARD, POST_ROUTING

def br_nf_local_in(skb: SkBuff, state) -> int:
    """A broadcast or multicast frame going up still unconfirmed in conntrack
    leaves its entry behind, for PRE_ROUTING on the bridge to look it up
    again (nf_conntrack_confirm() cannot take the clones the bridge made).
    (br_drop_fake_rtable(): the mock gives bridged frames no fake route.)"""
    ct = skb.nfct
    if ct is not None and skb.pkt_type != PACKET_HOST and not ct.status & IPS_CONFIRMED:
        skb.nfct = None
    return NF_ACCEPT


def br_nf_forward_ip(skb: SkBuff, state: NfBridgeHookState) -> int:
    info = nf_bridge_info_get(skb)
    family = brnf_family(skb)
    if info is None or family is None:
        return NF_ACCEPT
    info = skb.cb[NF_BRIDGE] = replace(info)  # nf_bridge_unshare(): each flooded copy its own
    if skb.pkt_type == PACKET_OTHERHOST:
        skb.pkt_type, info.pkt_otherhost = PACKET_HOST, True
    if not family.validate(skb):
        return NF_DROP
    info.physoutdev = skb.dev
    bridge = state.out_dev.master
    hookfns = family.hookfns(skb.net)[NF_INET_FORWARD]
    if not hookfns or nf_hook(skb, NF_INET_FORWARD, state.in_dev.master, bridge, hookfns, family.pf):
        br_nf_forward_finish(skb, state.okfn)
    return NF_STOLEN


def br_nf_forward_finish(skb: SkBuff, okfn) -> None:
    info: NfBridgeInfo = skb.cb[NF_BRIDGE]
    if info.pkt_otherhost:
        skb.pkt_type, info.pkt_otherhost = PACKET_OTHERHOST, False
    br_nf_hook_thresh(NF_BR_FORWARD, skb, info.physindev, skb.dev, okfn)


def br_nf_post_routing(skb: SkBuff, state: NfBridgeHookState) -> int:
    info = nf_bridge_info_get(skb)
    family = brnf_family(skb)
    if info is None or info.physoutdev is None or family is None:
        return NF_ACCEPT  # a frame routed out of the bridge had its POST_ROUTING in the IP stack
    if skb.pkt_type == PACKET_OTHERHOST:
        skb.pkt_type, info.pkt_otherhost = PACKET_HOST, True
    hookfns = family.hookfns(skb.net)[NF_INET_POST_ROUTING]
    if not hookfns or nf_hook(skb, NF_INET_POST_ROUTING, None, skb.dev.master, hookfns, family.pf):
        br_nf_dev_queue_xmit(skb, state.okfn)
    return NF_STOLEN


def br_nf_dev_queue_xmit(skb: SkBuff, okfn) -> None:
    """nf_bridge_info_free(), then br_dev_queue_push_xmit() (refragmenting left out)."""
    del skb.cb[NF_BRIDGE]
    okfn(skb)
