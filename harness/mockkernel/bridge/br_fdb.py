"""The forwarding database (net/bridge/br_fdb.c): learning, ageing, local and
static entries, and what `bridge fdb add/del` asks of it.

br_fdb_update() learns a frame's source on its port (unless the bridge holds
entries for 0 s: ageing_time 0 floods everything); an address seen on another
port moves there unless the entry is sticky. br_fdb_cleanup() runs as the
kernel's gc work: every entry that is neither static nor local and was last
updated hold_time() ago goes, and the work comes back when the next one is due
(at least 10 ms apart). Local entries (the ports' and the bridge's own
addresses) are static and take frames to the host. The entries are kept in
insertion order; the kernel's fdb_list is newest first, which the dump
reverses to. Left out: switchdev offload, locked ports and MAB, the learned
entries limit (fdb_max_learned), notifications.
"""
from __future__ import annotations

import errno

from harness.mockkernel.bridge.br_private import BR_STATE_FORWARDING, BR_STATE_LEARNING, FdbEntry, NetBridge, \
    NetBridgePort
from harness.mockkernel.clock import Timer
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.core.rtnetlink import NLM_F_CREATE, NLM_F_EXCL
from harness.mockkernel.net import NUD_NOARP, NUD_PERMANENT, NUD_REACHABLE, NUD_STALE

GC_MIN_INTERVAL = 0.01  # br_fdb_cleanup(): "Cleanup minimum 10 milliseconds apart"
GC_FIRST_RUN = 0.1  # br_stp_enable_bridge(): the gc work's first run, HZ / 10 after the bridge opens


def is_valid_ether_addr(addr: bytes) -> bool:
    return not addr[0] & 1 and any(addr)


def br_fdb_find(br: NetBridge, addr: bytes, vid: int) -> FdbEntry | None:
    return br.fdb.get((addr, vid))


def fdb_create(br: NetBridge, source: NetBridgePort | None, addr: bytes, vid: int,
               local: bool = False, static: bool = False) -> FdbEntry:
    now = br.net.clock.now
    entry = br.fdb[(addr, vid)] = FdbEntry(addr, vid, source, local, static, updated=now, used=now)
    return entry


def fdb_delete(br: NetBridge, entry: FdbEntry) -> None:
    del br.fdb[(entry.addr, entry.vid)]


def br_fdb_add_local(br: NetBridge, source: NetBridgePort | None, addr: bytes, vid: int) -> None:
    """fdb_add_local(): a port's (or the bridge's) own address; an address learned
    before is replaced, one already local kept (several ports may share one)."""
    if not is_valid_ether_addr(addr):
        return
    entry = br_fdb_find(br, addr, vid)
    if entry is not None:
        if entry.local:
            return
        fdb_delete(br, entry)
    fdb_create(br, source, addr, vid, local=True, static=True)


def fdb_delete_local(br: NetBridge, port: NetBridgePort | None, entry: FdbEntry) -> None:
    """fdb_delete_local(): a local address another port (or the bridge) still has
    moves to it instead of going."""
    for other in br.ports:
        if other is not port and other.dev.mac == entry.addr and (not entry.vid or entry.vid in other.vlgrp.vlans):
            entry.dst, entry.added_by_user = other, False
            return
    if port is not None and br.dev.mac == entry.addr and (not entry.vid or entry.vid in br.vlgrp.vlans):
        entry.dst, entry.added_by_user = None, False
        return
    fdb_delete(br, entry)


def br_fdb_delete_by_port(br: NetBridge, port: NetBridgePort, vid: int, do_all: bool) -> None:
    """br_fdb_delete_by_port(): the port's entries go (static ones too with `do_all`)."""
    for entry in [e for e in br.fdb.values() if e.dst is port]:
        if not do_all and (entry.static or (vid and entry.vid != vid)):
            continue
        if entry.local:
            fdb_delete_local(br, port, entry)
        else:
            fdb_delete(br, entry)


def br_fdb_change_mac_address(br: NetBridge, new_addr: bytes) -> None:
    """br_fdb_change_mac_address(): the bridge's own entries follow its address,
    for vid 0 and each VLAN of the bridge."""
    for vid in (0, *(v for v in br.vlgrp.vlans)):
        old = br_fdb_find(br, br.dev.mac, vid)
        if old is not None and old.local and old.dst is None and not old.added_by_user:
            fdb_delete_local(br, None, old)
        br_fdb_add_local(br, None, new_addr, vid)


def br_fdb_update(br: NetBridge, source: NetBridgePort, addr: bytes, vid: int) -> None:
    """br_fdb_update(): learn `addr` behind `source`. A local address is never
    taken over (the kernel warns of a frame with the bridge's own source)."""
    if not br.hold_time():
        return
    entry = br.fdb.get((addr, vid))
    if entry is None:
        fdb_create(br, source, addr, vid)
        return
    if entry.local:
        return
    entry.updated = br.net.clock.now
    if entry.dst is not source and not entry.sticky:
        entry.dst = source


def has_expired(br: NetBridge, entry: FdbEntry) -> bool:
    return not entry.static and entry.updated + br.hold_time() <= br.net.clock.now


def fdb_to_nud(br: NetBridge, entry: FdbEntry) -> int:
    """fdb_to_nud(): the state a dump reports (`bridge fdb` prints permanent,
    static, stale, or nothing for a live learned entry)."""
    if entry.local:
        return NUD_PERMANENT
    if entry.static:
        return NUD_NOARP
    return NUD_STALE if has_expired(br, entry) else NUD_REACHABLE


def br_fdb_cleanup(br: NetBridge) -> None:
    """br_fdb_cleanup(): the gc work. Entries past hold_time() go; the work
    comes back when the next one is due, at most hold_time() and at least
    10 ms later."""
    now, delay = br.net.clock.now, br.hold_time()
    work_delay = delay
    for entry in list(br.fdb.values()):
        if entry.static:
            continue
        expires = entry.updated + delay
        if expires > now:
            work_delay = min(work_delay, expires - now)
        else:
            fdb_delete(br, entry)
    br.gc_timer.mod_timer(now + max(work_delay, GC_MIN_INTERVAL))


def br_fdb_gc_start(br: NetBridge) -> None:
    """The gc work armed as the bridge opens (br_stp_enable_bridge())."""
    if br.gc_timer is None:
        br.gc_timer = Timer(br.net.clock, lambda: br_fdb_cleanup(br))
    br.gc_timer.mod_timer(br.net.clock.now + GC_FIRST_RUN)


def br_fdb_gc_now(br: NetBridge) -> None:
    """mod_delayed_work(..., &br->gc_work, 0): the gc runs at once (hold_time() changed)."""
    if br.gc_timer is not None and br.gc_timer.pending:
        br.gc_timer.mod_timer(br.net.clock.now)


def br_fdb_gc_stop(br: NetBridge) -> None:
    """cancel_delayed_work_sync(&br->gc_work) as the bridge stops."""
    if br.gc_timer is not None:
        br.gc_timer.del_timer()


def fdb_add_entry(br: NetBridge, source: NetBridgePort | None, addr: bytes, vid: int, state: int,
                  nlm_flags: int, sticky: bool) -> None:
    """fdb_add_entry(): `bridge fdb add ADDR dev DEV master [permanent|static|dynamic]
    [sticky]`: permanent (NUD_PERMANENT) is a local entry, static (NUD_NOARP) one that
    never ages, dynamic one that ages as a learned one."""
    if source is not None and not state & (NUD_PERMANENT | NUD_NOARP) \
            and source.state not in (BR_STATE_LEARNING, BR_STATE_FORWARDING):
        raise RtnlError(errno.EPERM)
    if source is None and not state & NUD_PERMANENT:
        raise RtnlError(errno.EINVAL)
    if sticky and state & NUD_PERMANENT:
        raise RtnlError(errno.EINVAL)
    entry = br_fdb_find(br, addr, vid)
    modified = False
    if entry is None:
        if not nlm_flags & NLM_F_CREATE:
            raise RtnlError(errno.ENOENT)
        entry = fdb_create(br, source, addr, vid)
        modified = True
    else:
        if nlm_flags & NLM_F_EXCL:
            raise RtnlError(errno.EEXIST)
        if entry.dst is not source:
            entry.dst, modified = source, True
    if fdb_to_nud(br, entry) != state:
        entry.local = bool(state & NUD_PERMANENT)
        entry.static = bool(state & (NUD_PERMANENT | NUD_NOARP))
        modified = True
    if sticky != entry.sticky:
        entry.sticky, modified = sticky, True
    entry.added_by_user = True
    now = br.net.clock.now
    entry.used = now
    if modified:
        entry.updated = now


def br_fdb_add(br: NetBridge, port: NetBridgePort | None, addr: bytes, vid: int | None, state: int,
               nlm_flags: int, sticky: bool) -> None:
    """br_fdb_add(): for the VLAN given (which the port must have), else for vid 0
    and, "to be nice", each VLAN of the port (or of the bridge)."""
    group = port.vlgrp if port is not None else br.vlgrp
    if vid:
        if vid not in group.vlans:
            raise RtnlError(errno.EINVAL)
        fdb_add_entry(br, port, addr, vid, state, nlm_flags, sticky)
        return
    fdb_add_entry(br, port, addr, 0, state, nlm_flags, sticky)
    for each_vid in sorted(group.vlans):
        fdb_add_entry(br, port, addr, each_vid, state, nlm_flags, sticky)


def br_fdb_delete(br: NetBridge, port: NetBridgePort | None, addr: bytes, vid: int | None) -> None:
    """br_fdb_delete(): the entry behind that port (ENOENT if none); without a VLAN,
    vid 0's and each of the port's VLANs', succeeding if one went."""
    group = port.vlgrp if port is not None else br.vlgrp
    vids = [vid] if vid else [0, *sorted(group.vlans)]
    deleted = False
    for each_vid in vids:
        entry = br_fdb_find(br, addr, each_vid)
        if entry is not None and entry.dst is port:
            fdb_delete(br, entry)
            deleted = True
    if not deleted:
        raise RtnlError(errno.ENOENT)
