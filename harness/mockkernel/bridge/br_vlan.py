"""VLAN filtering (net/bridge/br_vlan.c): which VLANs a port carries, which one
untagged frames belong to (the PVID), which leave untagged.

Every port gets the bridge's default_pvid (1) as PVID and untagged when it joins
(nbp_vlan_init()), and the bridge device itself has it as a "bridge entry"
(br_vlan_init()); each port VLAN gives the port's address a local fdb entry in
that VLAN. Filtering only happens with vlan_filtering 1 (BROPT_VLAN_ENABLED):
the tag a port's frame carried is already out of band (skb->vlan_proto and
vlan_tci: __netif_receive_skb_core() ran skb_vlan_untag() before the
rx_handler); br_allowed_ingress() takes off one still in the frame (the bridge
device's own), classifies an untagged or priority-tagged frame to the
port's PVID (dropped without one) and drops a VLAN the port lacks;
br_allowed_egress() lets a frame out of a port only in a VLAN the port has, and
br_handle_vlan() leaves the tag off where that VLAN is untagged. The tag goes
back into the frame as it is pushed out (br_dev_queue_push_xmit(); the kernel's
driver or validate_xmit_vlan() writes it). Left out: 802.1ad (vlan_protocol),
per-VLAN STP states and statistics, VLAN tunnels, ranges in dumps.
"""
from __future__ import annotations

import errno

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.bridge.br_fdb import br_fdb_add_local, br_fdb_find, fdb_delete_local
from harness.mockkernel.bridge.br_private import (BRIDGE_VLAN_INFO_BRENTRY, BRIDGE_VLAN_INFO_PVID,
                                                  BRIDGE_VLAN_INFO_UNTAGGED, VLAN_N_VID, BridgeVlan, NetBridge,
                                                  NetBridgePort, VlanGroup)
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.skbuff import (SkBuff, __vlan_hwaccel_clear_tag, kfree_skb, skb_vlan_untag,
                                            vlan_insert_tag)
from harness.mockkernel.wire.ethernet import ETH_HLEN, VLAN_VID_MASK



def __vlan_add_flags(group: VlanGroup, vlan: BridgeVlan, flags: int) -> None:
    """__vlan_add_flags(): PVID moves the group's PVID here (or off it); UNTAGGED is the vlan's."""
    if flags & BRIDGE_VLAN_INFO_PVID:
        group.pvid = vlan.vid
    elif group.pvid == vlan.vid:
        group.pvid = 0
    vlan.flags = (vlan.flags & ~BRIDGE_VLAN_INFO_UNTAGGED) | (flags & BRIDGE_VLAN_INFO_UNTAGGED)


def _check_vid(vid: int) -> None:
    if not 0 < vid < VLAN_N_VID - 1:
        raise RtnlError(errno.EINVAL, "Vlan id is invalid")


def nbp_vlan_add(port: NetBridgePort, vid: int, flags: int) -> None:
    """nbp_vlan_add(): the port carries `vid`; its address gets a local entry there."""
    _check_vid(vid)
    group = port.vlgrp
    vlan = group.vlans.get(vid)
    if vlan is None:
        vlan = group.vlans[vid] = BridgeVlan(vid)
        group.vlans = dict(sorted(group.vlans.items()))
        br_fdb_add_local(port.br, port, port.dev.mac, vid)
    __vlan_add_flags(group, vlan, flags)


def nbp_vlan_delete(port: NetBridgePort, vid: int) -> None:
    """nbp_vlan_delete(): ENOENT for a VLAN the port lacks; its local entry goes."""
    group = port.vlgrp
    if vid not in group.vlans:
        raise RtnlError(errno.ENOENT)
    del group.vlans[vid]
    if group.pvid == vid:
        group.pvid = 0
    entry = br_fdb_find(port.br, port.dev.mac, vid)
    if entry is not None and entry.local and entry.dst is port:
        fdb_delete_local(port.br, port, entry)
    for entry in [e for e in port.br.fdb.values() if e.dst is port and e.vid == vid and not e.local]:
        del port.br.fdb[(entry.addr, entry.vid)]


def br_vlan_add(br: NetBridge, vid: int, flags: int) -> None:
    """br_vlan_add() on the bridge device ("self"): a bridge entry (BRENTRY), with
    the bridge's address local in it."""
    _check_vid(vid)
    group = br.vlgrp
    vlan = group.vlans.get(vid)
    if vlan is None:
        vlan = group.vlans[vid] = BridgeVlan(vid, BRIDGE_VLAN_INFO_BRENTRY)
        group.vlans = dict(sorted(group.vlans.items()))
        br_fdb_add_local(br, None, br.dev.mac, vid)
    __vlan_add_flags(group, vlan, flags)


def br_vlan_delete(br: NetBridge, vid: int) -> None:
    group = br.vlgrp
    if vid not in group.vlans:
        raise RtnlError(errno.ENOENT)
    del group.vlans[vid]
    if group.pvid == vid:
        group.pvid = 0
    entry = br_fdb_find(br, br.dev.mac, vid)
    if entry is not None and entry.local and entry.dst is None:
        fdb_delete_local(br, None, entry)


def nbp_vlan_init(port: NetBridgePort) -> None:
    """nbp_vlan_init(): a new port gets the default PVID, untagged."""
    if port.br.default_pvid:
        nbp_vlan_add(port, port.br.default_pvid, BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED)


def br_vlan_init(br: NetBridge) -> None:
    """br_vlan_init(): the bridge device's own default PVID entry."""
    br_vlan_add(br, br.default_pvid, BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED)


def br_vlan_filter_toggle(br: NetBridge, enabled: bool) -> None:
    br.vlan_enabled = enabled


def br_allowed_ingress(br: NetBridge, group: VlanGroup, skb: SkBuff, cb: dict) -> int | None:
    """br_allowed_ingress() / __allowed_ingress(): the frame's VLAN (0 when
    filtering is off), or None when it was dropped (freed NOT_SPECIFIED). A tag
    of another protocol than the bridge's goes back into the frame, which is
    then untagged (vlan_insert_tag_set_proto()); an untagged or priority-tagged
    frame gets the port's PVID (__vlan_hwaccel_put_tag(), a priority tag keeping
    its PCP)."""
    if not br.vlan_enabled:
        cb["vlan_filtered"] = False
        return 0
    cb["vlan_filtered"] = True
    if not skb.vlan_proto and skb.protocol == br.vlan_proto and not skb_vlan_untag(skb):
        return None
    if skb.vlan_proto and skb.vlan_proto != br.vlan_proto:
        vlan_insert_tag(skb, skb.vlan_proto, skb.vlan_tci)
        skb.protocol = skb.vlan_proto
        skb.data = skb.network_header = ETH_HLEN
        __vlan_hwaccel_clear_tag(skb)
    vid = skb.vlan_tci & VLAN_VID_MASK if skb.vlan_proto else 0
    if not vid:
        if not group.pvid:
            kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.BRIDGE, "br_allowed_ingress")
            return None
        vid = group.pvid
        skb.vlan_tci |= vid
        skb.vlan_proto = br.vlan_proto
    if vid not in group.vlans:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.BRIDGE, "br_allowed_ingress")
        return None
    return vid


def br_allowed_egress(group: VlanGroup, skb: SkBuff) -> bool:
    """br_allowed_egress(): a filtered frame leaves only in a VLAN the port has."""
    return not skb.cb.get("vlan_filtered") or skb.vlan_tci & VLAN_VID_MASK in group.vlans


def br_handle_vlan(group: VlanGroup, skb: SkBuff, cb: dict) -> bool:
    """br_handle_vlan(): the tag stays off where the VLAN is untagged; False (the
    skb freed) for a VLAN the group lacks."""
    if not cb.get("vlan_filtered"):
        return True
    vlan = group.vlans.get(skb.vlan_tci & VLAN_VID_MASK)
    if vlan is None:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.BRIDGE, "br_handle_vlan")
        return False
    if vlan.flags & BRIDGE_VLAN_INFO_UNTAGGED:
        __vlan_hwaccel_clear_tag(skb)
    return True
