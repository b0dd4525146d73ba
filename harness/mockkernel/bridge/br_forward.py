"""Frames out of bridge ports (net/bridge/br_forward.c): br_forward() to the port an
fdb entry names, br_flood() to every port that takes them, and the way out
through __br_forward(), br_forward_finish() and br_dev_queue_push_xmit() to the
port's dev_queue_xmit().

should_deliver(): a port forwarding, not the one the frame came in on (unless
hairpin), carrying the frame's VLAN. br_flood() skips ports with flooding off for
the kind of frame (unknown unicast: flood; multicast: mcast_flood; broadcast:
bcast_flood; a frame the bridge itself sends floods regardless of the latter
two); each port but the last gets a clone (maybe_deliver()), the last the skb,
or a clone too when the host also receives it. Nowhere to go: the skb is freed
NO_TX_TARGET (where the lab's build inlines br_flood(): its caller). A frame
longer than the port's MTU (plus Ethernet and a VLAN tag) is freed in
br_dev_queue_push_xmit() (is_skb_forwardable()).

The bridge netfilter hooks sit where the kernel has them: NF_BR_FORWARD (or
NF_BR_LOCAL_OUT for the bridge's own frames) in __br_forward(), NF_BR_POST_ROUTING
in br_forward_finish().
"""
from __future__ import annotations

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.bridge.br_multicast import br_multicast_ports
from harness.mockkernel.bridge.br_private import (BR_BCAST_FLOOD, BR_FLOOD, BR_HAIRPIN_MODE, BR_ISOLATED,
                                                  BR_MCAST_FLOOD, BR_PROXYARP, BR_STATE_FORWARDING, MdbEntry,
                                                  NetBridge, NetBridgePort)
from harness.mockkernel.bridge.br_vlan import br_allowed_egress, br_handle_vlan
from harness.mockkernel.core.dev import dev_queue_xmit
from harness.mockkernel.core.skbuff import SkBuff, kfree_skb, skb_clone
from harness.mockkernel.netfilter.core import NF_BR_FORWARD, NF_BR_LOCAL_OUT, NF_BR_POST_ROUTING, NF_HOOK_BRIDGE
from harness.mockkernel.wire.ethernet import ETH_HLEN, VLAN_HLEN

# enum br_pkt_type (br_private.h)
BR_PKT_UNICAST, BR_PKT_MULTICAST, BR_PKT_BROADCAST = range(3)
FLOODED = ("unknown unicast", "multicast", "broadcast")
FLOOD_FLAG = (BR_FLOOD, BR_MCAST_FLOOD, BR_BCAST_FLOOD)


def should_deliver(port: NetBridgePort, skb: SkBuff) -> bool:
    cb = skb.cb
    return ((port.flags & BR_HAIRPIN_MODE or skb.dev is not port.dev) and port.state == BR_STATE_FORWARDING
            and br_allowed_egress(port.vlgrp, skb)
            and not (cb.get("src_port_isolated") and port.flags & BR_ISOLATED))


def br_dev_queue_push_xmit(skb: SkBuff) -> None:
    """The Ethernet header back on (skb_push()), out of the port
    (dev_queue_xmit(); a VLAN tag stays out of band until the driver,
    dev_hard_start_xmit())."""
    skb.data = skb.mac_header
    dev = skb.dev
    if not dev.up or skb.tail - skb.data > dev.mtu + ETH_HLEN + VLAN_HLEN and not skb.gso_size:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.BRIDGE, "br_dev_queue_push_xmit")
        return
    dev_queue_xmit(skb)


def br_forward_finish(skb: SkBuff) -> None:
    NF_HOOK_BRIDGE(skb, NF_BR_POST_ROUTING, None, skb.dev, br_dev_queue_push_xmit)


def __br_forward(port: NetBridgePort, skb: SkBuff, local_orig: bool) -> None:
    if not br_handle_vlan(port.vlgrp, skb, skb.cb):
        return
    indev = skb.dev
    skb.dev = port.dev
    if local_orig:
        NF_HOOK_BRIDGE(skb, NF_BR_LOCAL_OUT, None, skb.dev, br_forward_finish)
    else:
        NF_HOOK_BRIDGE(skb, NF_BR_FORWARD, indev, skb.dev, br_forward_finish)


def deliver_clone(port: NetBridgePort, skb: SkBuff, local_orig: bool) -> None:
    __br_forward(port, skb_clone(skb), local_orig)


def br_forward(to: NetBridgePort | None, skb: SkBuff, local_rcv: bool, local_orig: bool, caller: str) -> None:
    """br_forward(): to the port of the fdb entry; a frame that may not go there
    (its own port, a port not forwarding) is freed unless the host takes it. The
    lab kernel's build inlines br_forward() and br_flood() into their callers: a
    drop's location is `caller` (br_handle_frame_finish, br_dev_xmit)."""
    if to is not None and should_deliver(to, skb):
        skb.net.tracer.hop(skb, Stage.BRIDGE, "br_forward", to.dev.name)
        if local_rcv:
            deliver_clone(to, skb, local_orig)
        else:
            __br_forward(to, skb, local_orig)
        return
    if not local_rcv:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.BRIDGE, caller)


def br_flood(br: NetBridge, skb: SkBuff, pkt_type: int, local_rcv: bool, local_orig: bool, caller: str) -> None:
    """br_flood(): out of every port that takes this kind of frame (`caller`: as for br_forward())."""
    from_bridge = skb.dev is br.dev
    flag = FLOOD_FLAG[pkt_type]
    ports = [port for port in br.ports
             if (port.flags & flag or (from_bridge and pkt_type != BR_PKT_UNICAST))
             and not port.flags & BR_PROXYARP and should_deliver(port, skb)]
    skb.net.tracer.hop(skb, Stage.BRIDGE, "br_flood", " ".join(port.dev.name for port in ports),
                       FLOODED[pkt_type])
    deliver_to(ports, skb, local_rcv, local_orig, caller)


def br_multicast_flood(br: NetBridge, mdst: MdbEntry | None, skb: SkBuff, local_rcv: bool, local_orig: bool,
                       caller: str) -> None:
    """br_multicast_flood(): to the group's members and the router ports (their
    flood flags do not matter); `caller` as for br_forward()."""
    ports = [port for port in br_multicast_ports(br, mdst, skb.protocol) if should_deliver(port, skb)]
    skb.net.tracer.hop(skb, Stage.BRIDGE, "br_multicast_flood", " ".join(port.dev.name for port in ports),
                       "mdb members and router ports" if mdst is not None else "router ports")
    deliver_to(ports, skb, local_rcv, local_orig, caller)


def deliver_to(ports: list[NetBridgePort], skb: SkBuff, local_rcv: bool, local_orig: bool, caller: str) -> None:
    """A clone to each port but the last, which gets the skb unless the host
    takes it too; nowhere to go frees it NO_TX_TARGET."""
    if not ports:
        if not local_rcv:
            kfree_skb(skb, DropReason.NO_TX_TARGET, Stage.BRIDGE, caller)
        return
    for port in ports[:-1]:
        deliver_clone(port, skb, local_orig)
    if local_rcv:
        deliver_clone(ports[-1], skb, local_orig)
    else:
        __br_forward(ports[-1], skb, local_orig)
