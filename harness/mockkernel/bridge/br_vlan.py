"""VLAN filtering (net/bridge/br_vlan.c): which VLANs a port carries, which one
untagged frames belong to (the PVID), which leave untagged.

Every port gets the bridge's default_pvid (1) as PVID and untagged when it joins
(nbp_vlan_init()), and the bridge device itself has it as a "bridge entry"
(br_vlan_init()); each port VLAN gives the port's address a local fdb entry in
that VLAN. Filtering only happens with vlan_filtering 1 (BROPT_VLAN_ENABLED):
br_allowed_ingress() takes the frame's tag off (skb_vlan_untag(): the kernel
keeps it out of band, in skb->vlan_tci; here in the bridge's skb->cb, with the
frame bytes untagged), classifies an untagged or priority-tagged frame to the
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
from harness.mockkernel.core.skbuff import SkBuff, kfree_skb
from harness.mockkernel.wire.ethernet import ETH_HLEN, VLAN_HLEN, VLAN_VID_MASK, vlan_pop, vlan_push



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


def skb_vlan_untag(skb: SkBuff, cb: dict) -> None:
    """skb_vlan_untag(): the 802.1Q tag leaves the frame for the skb's metadata."""
    tci, skb.protocol = vlan_pop(skb.buf, skb.mac_header)
    skb.mac_header = mac = skb.mac_header + VLAN_HLEN
    skb.data = skb.network_header = mac + ETH_HLEN
    cb["vlan_tci"] = tci


def br_allowed_ingress(br: NetBridge, group: VlanGroup, skb: SkBuff, cb: dict) -> int | None:
    """br_allowed_ingress(): the frame's VLAN (0 when filtering is off), or None
    when it was dropped (freed NOT_SPECIFIED, as __allowed_ingress() does)."""
    if not br.vlan_enabled:
        cb["vlan_filtered"] = False
        return 0
    cb["vlan_filtered"] = True
    if "vlan_tci" not in cb and skb.protocol == br.vlan_proto:
        skb_vlan_untag(skb, cb)
    vid = cb["vlan_tci"] & VLAN_VID_MASK if "vlan_tci" in cb else 0
    if not vid:
        if not group.pvid:
            kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.BRIDGE, "br_allowed_ingress")
            return None
        vid = group.pvid
        cb["vlan_tci"] = cb.get("vlan_tci", 0) | vid  # a priority tag keeps its PCP
    if vid not in group.vlans:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.BRIDGE, "br_allowed_ingress")
        return None
    return vid


def br_allowed_egress(group: VlanGroup, cb: dict) -> bool:
    """br_allowed_egress(): a filtered frame leaves only in a VLAN the port has."""
    return not cb.get("vlan_filtered") or cb["vlan_tci"] & VLAN_VID_MASK in group.vlans


def br_handle_vlan(group: VlanGroup, skb: SkBuff, cb: dict) -> bool:
    """br_handle_vlan(): the tag stays off where the VLAN is untagged; False (the
    skb freed) for a VLAN the group lacks."""
    if not cb.get("vlan_filtered"):
        return True
    vlan = group.vlans.get(cb["vlan_tci"] & VLAN_VID_MASK)
    if vlan is None:
        kfree_skb(skb, DropReason.NOT_SPECIFIED, Stage.BRIDGE, "br_handle_vlan")
        return False
    if vlan.flags & BRIDGE_VLAN_INFO_UNTAGGED:
        del cb["vlan_tci"]
    return True


def vlan_insert_tag(skb: SkBuff, vlan_proto: int, tci: int) -> None:
    """The out-of-band tag written into the frame (__vlan_hwaccel_push_inside()),
    in a buffer of the skb's own: flooded clones share theirs."""
    skb.buf = vlan_push(skb.buf, skb.mac_header, skb.tail, vlan_proto, tci)
    skb.mac_header = skb.data = 0
    skb.network_header = ETH_HLEN + VLAN_HLEN
    skb.tail = len(skb.buf)
