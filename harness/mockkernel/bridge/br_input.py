"""What a bridge port receives (net/bridge/br_input.c): br_handle_frame(), the
port's rx_handler, and br_handle_frame_finish(), br_pass_frame_up().

br_handle_frame(): a frame with an invalid source address is freed
MAC_INVALID_SOURCE. Link-local destinations 01:80:c2:00:00:0X: the STP group
address is bridged while STP is off and goes up the port's own stack when it is
on; MAC control (pause, :01) is freed MAC_IEEE_MAC_CONTROL; the others go up the
port's stack unless group_fwd_mask forwards them. Then by port state: learning
and forwarding ports take it (a frame to the bridge's address becomes
PACKET_HOST), any other state frees it BRIDGE_INGRESS_STP_STATE.

br_handle_frame_finish(): the frame's VLAN (br_vlan.py), the source learned, a
multicast frame snooped (br_multicast.py: a malformed or unknown IGMP/MLD message
is freed), a learning port's frame freed after learning (BRIDGE_INGRESS_STP_STATE);
broadcast goes up to the host too, multicast floods and goes up unless a querier
is known for its family, when it goes by the mdb (br_multicast_flood(); up only to
a host that joined, or a bridge that is a router), unicast to a local fdb entry goes up only, to a
known address br_forward(), to an unknown one br_flood() (unknown unicast is not
the host's unless the bridge is promiscuous). br_pass_frame_up(): the skb becomes
the bridge device's and is received again there (netif_receive_skb()), where a
VLAN tag left on it (the bridge's VLAN is not untagged) makes it PACKET_OTHERHOST
(check_vlan_id: no VLAN device takes it).

The bridge netfilter hooks are where the kernel runs them (NF_HOOK_BRIDGE,
netfilter/core.py): NF_BR_PRE_ROUTING (nf_hook_bridge_pre()) in br_handle_frame()
before br_handle_frame_finish(), NF_BR_LOCAL_IN in br_pass_frame_up() before
netif_receive_skb(). Left out: NF_BR_LOCAL_IN for link-local frames.
A BPDU for a bridge running STP goes up the port's stack to LLC and br_stp_rcv()
(br_stp.py). Left out: the bridge in promiscuous mode, proxy ARP and neighbour
suppression, locked ports, MST, backup ports.
"""
from __future__ import annotations

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.bridge.br_fdb import br_fdb_find, br_fdb_update, is_valid_ether_addr
from harness.mockkernel.bridge.br_forward import (BR_PKT_BROADCAST, BR_PKT_MULTICAST, BR_PKT_UNICAST, br_flood,
                                                  br_forward, br_multicast_flood)
from harness.mockkernel.bridge.br_multicast import (br_mdb_entry_skb_get, br_multicast_is_router,
                                                    br_multicast_querier_exists, br_multicast_rcv)
from harness.mockkernel.bridge.br_private import (BR_ISOLATED, BR_LEARNING, BR_NO_STP, BR_STATE_DISABLED,
                                                  BR_STATE_FORWARDING, BR_STATE_LEARNING, BR_STATE_NAMES,
                                                  NetBridgePort)
from harness.mockkernel.bridge.br_vlan import br_allowed_egress, br_allowed_ingress, br_handle_vlan
from harness.mockkernel.core.dev import RX_HANDLER_CONSUMED, RX_HANDLER_PASS, netif_receive_skb
from harness.mockkernel.core.skbuff import PACKET_HOST, SkBuff, kfree_skb
from harness.mockkernel.netfilter.core import NF_BR_LOCAL_IN, NF_BR_PRE_ROUTING, NF_HOOK_BRIDGE
from harness.mockkernel.wire import ethernet
from harness.mockkernel.wire.ethernet import BROADCAST

LINK_LOCAL_PREFIX = b"\x01\x80\xc2\x00\x00"  # 01:80:c2:00:00:0X, IEEE 802.1D Table 7-10


def br_handle_frame(skb: SkBuff) -> int:
    """The rx_handler netdev_rx_handler_register() gave every bridge port."""
    port: NetBridgePort = skb.dev.rx_handler_data
    dest, source, _ = ethernet.HEADER.unpack_from(skb.buf, skb.mac_header)
    if not is_valid_ether_addr(source):
        kfree_skb(skb, DropReason.MAC_INVALID_SOURCE, Stage.BRIDGE, "br_handle_frame")
        return RX_HANDLER_CONSUMED
    skb.cb = {}
    br = port.br
    if dest.startswith(LINK_LOCAL_PREFIX) and not dest[5] & 0xF0:
        low = dest[5]
        if low == 0x01:
            kfree_skb(skb, DropReason.MAC_IEEE_MAC_CONTROL, Stage.BRIDGE, "br_handle_frame")
            return RX_HANDLER_CONSUMED
        forwarded = (br.group_fwd_mask if low else 0) & (1 << low) or (low == 0 and br.stp_enabled == BR_NO_STP)
        if not forwarded:
            br_handle_local_finish(skb, port)
            skb.net.tracer.hop(skb, Stage.BRIDGE, "br_handle_frame", "PASS", "link-local, to the port's stack")
            return RX_HANDLER_PASS
    if port.state not in (BR_STATE_FORWARDING, BR_STATE_LEARNING):
        kfree_skb(skb, DropReason.BRIDGE_INGRESS_STP_STATE, Stage.BRIDGE, "br_handle_frame")
        return RX_HANDLER_CONSUMED
    if dest == br.dev.mac:
        skb.pkt_type = PACKET_HOST
    skb.net.tracer.hop(skb, Stage.BRIDGE, "br_handle_frame", br.dev.name,
                       f"{skb.dev.name} {BR_STATE_NAMES[port.state]}")
    NF_HOOK_BRIDGE(skb, NF_BR_PRE_ROUTING, skb.dev, None, br_handle_frame_finish)
    return RX_HANDLER_CONSUMED


def br_handle_local_finish(skb: SkBuff, port: NetBridgePort) -> None:
    """__br_handle_local_finish(): a link-local frame still teaches its source
    (in the port's PVID, as br_should_learn() does)."""
    if port.flags & BR_LEARNING and port.state in (BR_STATE_LEARNING, BR_STATE_FORWARDING):
        vid = port.vlgrp.pvid if port.br.vlan_enabled else 0
        br_fdb_update(port.br, port, ethernet.HEADER.unpack_from(skb.buf, skb.mac_header)[1], vid)


def br_handle_frame_finish(skb: SkBuff) -> None:
    port: NetBridgePort = skb.dev.rx_handler_data
    br = port.br
    state = port.state
    if state == BR_STATE_DISABLED:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.BRIDGE, "br_handle_frame_finish")
        return
    cb = skb.cb
    vid = br_allowed_ingress(br, port.vlgrp, skb, cb)
    if vid is None:
        return
    dest, source, _ = ethernet.HEADER.unpack_from(skb.buf, skb.mac_header)
    if port.flags & BR_LEARNING:
        br_fdb_update(br, port, source, vid)
    local_rcv = False
    pkt_type = BR_PKT_UNICAST
    if dest[0] & 1:
        local_rcv = True
        if dest == BROADCAST:
            pkt_type = BR_PKT_BROADCAST
        else:
            pkt_type = BR_PKT_MULTICAST
            mcast = br_multicast_rcv(br, port, skb, vid)
            if mcast is None:
                kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.BRIDGE, "br_handle_frame_finish")
                return
    if state == BR_STATE_LEARNING:
        kfree_skb(skb, DropReason.BRIDGE_INGRESS_STP_STATE, Stage.BRIDGE, "br_handle_frame_finish")
        return
    cb["brdev"] = br.dev
    cb["src_port_isolated"] = bool(port.flags & BR_ISOLATED)
    if pkt_type == BR_PKT_MULTICAST:
        mdst = br_mdb_entry_skb_get(br, skb, mcast, vid)
        if (mdst is not None or mcast.mrouters_only) and br_multicast_querier_exists(br, skb.protocol):
            local_rcv = (mdst is not None and mdst.host_joined) or br_multicast_is_router(br, skb.protocol)
            br_multicast_flood(br, mdst, skb, local_rcv, False, "br_handle_frame_finish")
            if local_rcv:
                br_pass_frame_up(skb)
            return
    dst = br_fdb_find(br, dest, vid) if pkt_type == BR_PKT_UNICAST else None
    if dst is not None:
        if dst.local:
            br_pass_frame_up(skb)
            return
        dst.used = skb.net.clock.now
        br_forward(dst.dst, skb, local_rcv, False, "br_handle_frame_finish")
    else:
        br_flood(br, skb, pkt_type, local_rcv, False, "br_handle_frame_finish")
    if local_rcv:
        br_pass_frame_up(skb)


def br_pass_frame_up(skb: SkBuff) -> None:
    """The frame is the host's: received again, on the bridge device."""
    cb = skb.cb
    brdev = cb["brdev"]
    br = brdev.priv
    brdev.stats.rx_packets += 1
    brdev.stats.rx_bytes += skb.tail - skb.data
    if not br_allowed_egress(br.vlgrp, skb):
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.BRIDGE, "br_pass_frame_up")
        return
    indev = skb.dev
    skb.dev = brdev
    if not br_handle_vlan(br.vlgrp, skb, cb):
        return
    skb.net.tracer.hop(skb, Stage.BRIDGE, "br_pass_frame_up", brdev.name)
    NF_HOOK_BRIDGE(skb, NF_BR_LOCAL_IN, indev, None, netif_receive_skb)
