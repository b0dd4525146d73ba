"""iproute2 6.1's `bridge` (bridge/bridge.c, fdb.c, link.c, vlan.c): the fdb, ports
and VLANs of the Linux bridge (mockkernel/bridge/), printed as `bridge` prints them.

- `bridge fdb [show] [br BR] [brport|dev DEV] [vlan VID] [state STATE] [dynamic]`:
  rtnl_fdb_dump()'s order, devices by ifindex: a port's bridge entries (newest
  first), then each Ethernet device's own addresses ("self", ndo_dflt_fdb_dump(): its
  unicast list, then its multicast list, up or down), and for a bridge the entries
  of the bridge itself (no port). With `dev` the device name is left out of each line.
  `bridge fdb add|append|replace|del ADDR dev DEV [master|self] [permanent|static|
  dynamic] [sticky] [vlan VID]`: without `master` or `self` iproute2 says self;
  self on a bridge device is the bridge's own entry, on another device an address of
  its own unicast or multicast list (permanent only, no VLAN); master on a device
  that is not a bridge port is EOPNOTSUPP.
- `bridge [-d] link [show] [dev DEV]`: the ports, with state, priority and cost;
  `bridge link set dev DEV [state S] [cost N] [priority N] [learning|flood|
  mcast_flood|bcast_flood|hairpin|isolated on|off]` (br_setport()).
- `bridge vlan [show] [dev DEV] [vid VID]`, `bridge vlan add|del dev DEV vid VID
  [pvid] [untagged] [self] [master]`.
- `bridge [-d] [-s] mdb [show] [dev BR] [vid VID]` (bridge/mdb.c print_mdb_entry(),
  br_mdb.c br_mdb_dump()): each bridge's entries, newest first, each member port
  (the bridge itself for a host that joined) on a line; `-d` adds the protocol
  (kernel: a report; static: `bridge mdb add`) and the router ports, `-s` the time
  left. `bridge mdb add|del dev BR port PORT grp GROUP [permanent|temp] [vid VID]`.
`-d` (details) adds each port's flags to `bridge link`. Errors are the tool's (exit
status 255); other global options are not modelled.
"""
from __future__ import annotations

import errno

from harness.mockkernel.bridge.br_fdb import br_fdb_add, br_fdb_delete, fdb_to_nud
from harness.mockkernel.bridge.br_multicast import br_mdb_add, br_mdb_del, group_str
from harness.mockkernel.bridge.br_netlink import PORT_FLAGS, br_setport
from harness.mockkernel.bridge.br_private import (BR_BCAST_FLOOD, BR_FLOOD, BR_HAIRPIN_MODE, BR_ISOLATED,
                                                  BR_LEARNING, BR_MCAST_FLOOD, BR_STATE_NAMES, BRIDGE_VLAN_INFO_PVID,
                                                  BRIDGE_VLAN_INFO_UNTAGGED)
from harness.mockkernel.bridge.br_vlan import br_vlan_add, br_vlan_delete, nbp_vlan_add, nbp_vlan_delete
from harness.mockkernel.cmd.args import Args, ToolError, not_modelled
from harness.mockkernel.cmd.ipaddress import link_flags
from harness.mockkernel.cmd.iputils import duparg, duparg2, invarg, matches, parse_on_off
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.lib.libc import atoi
from harness.mockkernel.core.rtnetlink import (NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE,
                                              ndo_dflt_fdb_add, ndo_dflt_fdb_del)
from harness.mockkernel.net import NUD_NOARP, NUD_PERMANENT, NUD_REACHABLE, NUD_STALE, ip_to_int
from harness.mockkernel.wire.ethernet import ETH_P_IP, ETH_P_IPV6
from harness.mockkernel.wire.ipv6 import addr_bytes
from harness.mockkernel.wire.ethernet import mac_to_str

INCOMPLETE = ToolError('Command line is not complete. Try option "help"', 255)
OBJECTS = ("link", "fdb", "mdb", "vlan", "vni", "monitor", "help")
STATE_NAMES = {NUD_PERMANENT: "permanent", NUD_NOARP: "static", NUD_STALE: "stale", NUD_REACHABLE: ""}
IFNAMSIZ = 16
VLAN_ID_LEN = 9
PORT_NOT_MODELLED = ("guard", "fastleave", "root_block", "learning_sync", "mcast_router", "mcast_to_unicast",
                     "hwmode", "self", "neigh_suppress", "vlan_tunnel", "locked", "backup_port", "nobackup_port")


def main(net, argv: list[str], stdin: str | None = None) -> str:
    tokens = Args(argv[1:], INCOMPLETE)
    details = stats = False
    while tokens and tokens.peek().startswith("-"):
        option = tokens.pop()
        if len(option) > 1 and matches(option.lstrip("-"), "details"):
            details = True
        elif len(option) > 1 and (matches(option.lstrip("-"), "statistics") or option.lstrip("-") == "s"):
            stats = True
        else:
            raise not_modelled(f"bridge option {option}")
    if not tokens:
        raise ToolError("Usage: bridge [ OPTIONS ] OBJECT { COMMAND | help }", 255)
    obj = tokens.pop()
    name = next((o for o in OBJECTS if matches(obj, o)), None)
    if name is None:
        raise ToolError(f'Object "{obj}" is unknown, try "bridge help".', 255)
    handler = {"fdb": do_fdb, "link": do_link, "vlan": do_vlan, "mdb": do_mdb}.get(name)
    if handler is None:
        raise not_modelled(f'bridge object "{name}"')
    if details and name not in ("link", "mdb"):
        raise not_modelled(f"bridge -details {name}")
    if stats and name != "mdb":
        raise not_modelled(f"bridge -statistics {name}")
    try:
        if name == "mdb":
            return do_mdb(net, tokens, details, stats)
        return do_link(net, tokens, details) if name == "link" else handler(net, tokens)
    except RtnlError as err:
        raise ToolError(str(err), 255) from None


def _device(net, name: str):
    dev = net.dev_by_name(name)
    if dev is None:
        raise ToolError(f'Cannot find device "{name}"', 255)
    return dev


def _port(dev):
    """br_port_get_rtnl(): the device's bridge port, if it is one."""
    return dev.rx_handler_data if dev.master is not None and dev.master.kind == "bridge" else None


# fdb ------------------------------------------------------------------------------
def do_fdb(net, tokens) -> str:
    if not tokens:
        return fdb_show(net, tokens)
    verb = tokens.pop()
    if matches(verb, "add"):
        return fdb_modify(net, tokens, NLM_F_CREATE | NLM_F_EXCL)
    if matches(verb, "append"):
        return fdb_modify(net, tokens, NLM_F_CREATE | NLM_F_APPEND)
    if matches(verb, "replace"):
        return fdb_modify(net, tokens, NLM_F_CREATE | NLM_F_REPLACE)
    if matches(verb, "delete"):
        return fdb_modify(net, tokens, 0, delete=True)
    if matches(verb, "show") or matches(verb, "lst") or matches(verb, "list"):
        return fdb_show(net, tokens)
    if matches(verb, "get") or verb == "flush":
        raise not_modelled(f"bridge fdb {verb}")
    raise ToolError(f'Command "{verb}" is unknown, try "bridge fdb help".', 255)


def _mac(text: str) -> bytes:
    """sscanf("%hhx:%hhx:%hhx:%hhx:%hhx:%hhx")."""
    parts = text.split(":")
    try:
        values = [int(part, 16) & 0xFF for part in parts[:6]] if len(parts) >= 6 and all(parts[:6]) else None
    except ValueError:
        values = None
    if values is None:
        raise ToolError(f"Invalid mac address {text}", 255)
    return bytes(values)


def fdb_modify(net, tokens, nlm_flags: int, delete: bool = False) -> str:
    addr = dev_name = None
    state, self_flag, master, sticky, vid = NUD_NOARP, False, False, False, None
    while tokens:
        token = tokens.pop()
        if token == "dev":
            dev_name = tokens.pop()
        elif token == "self":
            self_flag = True
        elif matches(token, "master"):
            master = True
        elif matches(token, "local") or matches(token, "permanent"):
            state |= NUD_PERMANENT
        elif matches(token, "temp") or matches(token, "static"):
            state |= NUD_REACHABLE
        elif matches(token, "dynamic"):
            state = (state | NUD_REACHABLE) & ~NUD_NOARP
        elif matches(token, "vlan"):
            if vid is not None:
                raise duparg2("vlan", token)
            vid = atoi(tokens.pop())
        elif matches(token, "sticky"):
            sticky = True
        elif token in ("dst", "nhid", "port", "vni", "src_vni", "via") or matches(token, "router") \
                or matches(token, "use") or matches(token, "extern_learn"):
            raise not_modelled(f"bridge fdb {token}")
        else:
            if token == "to":
                token = tokens.pop()
            if addr is not None:
                raise duparg2("to", token)
            addr = token
    if dev_name is None or addr is None:
        raise ToolError("Device and address are required arguments.", 255)
    if not self_flag and not master:
        self_flag = True
    if not state & (NUD_PERMANENT | NUD_REACHABLE):
        state |= NUD_PERMANENT
    mac = _mac(addr)
    dev = _device(net, dev_name)
    if not any(mac):
        raise RtnlError(errno.EINVAL)
    if vid is not None and vid >= 0xFFF:
        raise RtnlError(errno.EINVAL, "invalid vlan id")
    port = _port(dev)
    if not (master and port is not None) and not self_flag:
        raise RtnlError(errno.EOPNOTSUPP)
    # rtnl_fdb_add()/rtnl_fdb_del(): the port's bridge for `master`; for `self` the device's
    # own ndo_fdb_add: a bridge's is br_fdb_add() (an entry of no port), others' the default
    if master and port is not None:
        _bridge_fdb(port.br, port, mac, vid, state, nlm_flags, sticky, delete)
    if self_flag and dev.kind == "bridge":
        _bridge_fdb(dev.priv, None, mac, vid, state, nlm_flags, sticky, delete)
    elif self_flag:
        if delete:
            ndo_dflt_fdb_del(dev, mac)
        else:
            ndo_dflt_fdb_add(dev, mac, bool(state & NUD_PERMANENT), vid, nlm_flags)
    return ""


def _bridge_fdb(br, port, mac: bytes, vid: int | None, state: int, nlm_flags: int, sticky: bool,
                delete: bool) -> None:
    if delete:
        br_fdb_delete(br, port, mac, vid)
    else:
        br_fdb_add(br, port, mac, vid, state, nlm_flags, sticky)


def fdb_show(net, tokens) -> str:
    filter_dev = br_name = None
    filter_vlan = 0
    filter_state = 0
    dynamic = False
    while tokens:
        token = tokens.pop()
        if token in ("brport", "dev"):
            filter_dev = tokens.pop()
        elif token == "br":
            br_name = tokens.pop()
        elif token == "vlan":
            value = tokens.pop()
            if filter_vlan:
                raise duparg("vlan", value)
            filter_vlan = atoi(value)
        elif token == "state":
            value = tokens.pop()
            state = {"permanent": NUD_PERMANENT, "static": NUD_NOARP, "reachable": NUD_REACHABLE,
                     "stale": NUD_STALE}.get(value)
            if state is None:
                raise invarg("invalid state", value)
            filter_state |= state
        elif token == "dynamic":
            dynamic = True
        elif matches(token, "help"):
            raise not_modelled("bridge fdb help")
    br_dev = None
    if br_name is not None:
        br_dev = net.dev_by_name(br_name)
        if br_dev is None:
            raise ToolError(f'Cannot find bridge device "{br_name}"', 255)
    filter_index = 0
    if filter_dev is not None:
        filter_index = _device(net, filter_dev).ifindex
    lines = []
    for dev in sorted(net.devices.values(), key=lambda d: d.ifindex):
        if filter_index and dev.ifindex != filter_index:
            continue
        port = _port(dev)
        if br_dev is not None and dev is not br_dev and (port is None or dev.master is not br_dev) \
                and dev.kind != "bridge":
            continue
        entries = []
        if port is not None:
            br = port.br
            entries += [(e, fdb_to_nud(br, e), br.dev) for e in reversed(br.fdb.values()) if e.dst is port]
        if not dev.is_loopback:  # ndo_dflt_fdb_dump(): Ethernet devices only
            entries += [(mac, NUD_PERMANENT, None) for mac in (*dev.uc, *dev.mc)]
        if dev.kind == "bridge":
            br = dev.priv
            entries += [(e, fdb_to_nud(br, e), dev) for e in reversed(br.fdb.values()) if e.dst is None]
        for entry, state, master in entries:
            vid = entry.vid if master is not None else 0
            if (filter_state and not state & filter_state) or (filter_vlan and filter_vlan != vid) \
                    or (dynamic and state & NUD_PERMANENT):
                continue
            mac = entry.addr if master is not None else entry
            line = f"{mac_to_str(mac)} " + ("" if filter_index else f"dev {dev.name} ")
            line += f"vlan {vid} " if vid else ""
            line += "sticky " if master is not None and entry.sticky else ""
            line += "self " if master is None else f"master {master.name} "
            lines.append(line + STATE_NAMES[state] + "\n")
    return "".join(lines)


# link -----------------------------------------------------------------------------
def do_link(net, tokens, details: bool = False) -> str:
    if not tokens:
        return brlink_show(net, tokens, details)
    verb = tokens.pop()
    if matches(verb, "set") or matches(verb, "change"):
        return brlink_modify(net, tokens)
    if matches(verb, "show") or matches(verb, "lst") or matches(verb, "list"):
        return brlink_show(net, tokens, details)
    if matches(verb, "help"):
        raise not_modelled("bridge link help")
    raise ToolError(f'Command "{verb}" is unknown, try "bridge link help".', 255)


def _on(port, flag: int) -> str:
    return "on" if port.flags & flag else "off"


def port_details(port) -> str:
    """print_protinfo()'s second line (`bridge -d link`): the port's flags as
    br_port_fill_attrs() reports them; those the mock does not model are the
    kernel's defaults (guard, root_block, fastleave, mcast_to_unicast,
    neigh_suppress, vlan_tunnel, locked off; mcast_router 1)."""
    return (f"\n    hairpin {_on(port, BR_HAIRPIN_MODE)} guard off root_block off fastleave off "
            f"learning {_on(port, BR_LEARNING)} flood {_on(port, BR_FLOOD)} mcast_flood {_on(port, BR_MCAST_FLOOD)} "
            f"bcast_flood {_on(port, BR_BCAST_FLOOD)} mcast_router 1 mcast_to_unicast off neigh_suppress off "
            f"vlan_tunnel off isolated {_on(port, BR_ISOLATED)} locked off ")


def brlink_show(net, tokens, details: bool = False) -> str:
    filter_dev = None
    while tokens:
        token = tokens.pop()
        if token == "dev":
            value = tokens.pop()
            if filter_dev is not None:
                raise duparg("dev", value)
            filter_dev = value
    filter_index = _device(net, filter_dev).ifindex if filter_dev is not None else 0
    lines = []
    for dev in sorted(net.devices.values(), key=lambda d: d.ifindex):
        port = _port(dev)
        if port is None or (filter_index and dev.ifindex != filter_index):
            continue
        lines.append(f"{dev.ifindex}: {dev.name}: <{','.join(link_flags(dev))}> mtu {dev.mtu} "
                     f"master {dev.master.name} state {BR_STATE_NAMES[port.state]} "
                     f"priority {port.priority} cost {port.path_cost} "
                     + (port_details(port) if details else "") + "\n")
    return "".join(lines)


def brlink_modify(net, tokens) -> str:
    dev_name = state = cost = priority = None
    flags: dict[int, bool] = {}
    while tokens:
        token = tokens.pop()
        if token == "dev":
            dev_name = tokens.pop()
        elif token in PORT_FLAGS:
            flags[PORT_FLAGS[token]] = parse_on_off(token, tokens.pop(), 234)  # brlink_modify() returns -EINVAL
        elif token == "cost":
            cost = atoi(tokens.pop())
        elif token == "priority":
            priority = atoi(tokens.pop())
        elif token == "state":
            value = tokens.pop()
            if value.isdigit():
                state = int(value)
            elif value in BR_STATE_NAMES:
                state = BR_STATE_NAMES.index(value)
            else:
                raise ToolError("Error: invalid STP port state", 255)
        elif token in PORT_NOT_MODELLED or token == "master":
            raise not_modelled(f"bridge link set {token}")
        else:
            raise not_modelled(f"bridge link set {token} (iproute2 prints its usage)")
    if dev_name is None:
        raise ToolError("Device is a required argument.", 255)
    dev = net.dev_by_name(dev_name)
    if dev is None:
        raise ToolError(f'Cannot find bridge device "{dev_name}"', 255)
    port = _port(dev)
    if port is None:
        raise RtnlError(errno.EOPNOTSUPP)
    br_setport(port, flags, cost or None, priority if priority is not None and priority >= 0 else None, state)
    return ""


# vlan -----------------------------------------------------------------------------
def do_vlan(net, tokens) -> str:
    if not tokens:
        return vlan_show(net, tokens)
    verb = tokens.pop()
    if matches(verb, "add"):
        return vlan_modify(net, tokens, delete=False)
    if matches(verb, "delete"):
        return vlan_modify(net, tokens, delete=True)
    if matches(verb, "show") or matches(verb, "lst") or matches(verb, "list"):
        return vlan_show(net, tokens)
    if any(matches(verb, v) for v in ("set", "tunnelshow", "global", "help")):
        raise not_modelled(f"bridge vlan {verb}")
    raise ToolError(f'Command "{verb}" is unknown, try "bridge vlan help".', 255)


def vlan_modify(net, tokens, delete: bool) -> str:
    dev_name = None
    vid = vid_end = -1
    self_flag = master = False
    vflags = 0
    while tokens:
        token = tokens.pop()
        if token == "dev":
            dev_name = tokens.pop()
        elif token == "vid":
            value = tokens.pop()
            if "-" in value:
                start, end = value.split("-", 1)
                vid, vid_end = atoi(start), atoi(end)
            else:
                vid = atoi(value)
        elif token == "self":
            self_flag = True
        elif token == "master":
            master = True
        elif token == "pvid":
            vflags |= BRIDGE_VLAN_INFO_PVID
        elif token == "untagged":
            vflags |= BRIDGE_VLAN_INFO_UNTAGGED
        elif token == "tunnel_info":
            raise not_modelled("bridge vlan tunnel_info")
    if dev_name is None or vid == -1:
        raise ToolError("Device and VLAN ID are required arguments.", 255)
    dev = net.dev_by_name(dev_name)
    if dev is None:
        raise ToolError(f'Cannot find bridge device "{dev_name}"', 255)
    if vid >= 4096:
        raise ToolError(f'Invalid VLAN ID "{vid}"', 255)
    vids = [vid]
    if vid_end != -1:
        if vid_end >= 4096 or vid >= vid_end:
            raise ToolError(f'Invalid VLAN range "{vid}-{vid_end}"', 255)
        if vflags & BRIDGE_VLAN_INFO_PVID:
            raise ToolError("pvid cannot be configured for a vlan range", 255)
        vids = list(range(vid, vid_end + 1))
    # rtnl_bridge_setlink()/dellink(): the port's bridge for `master` (the default), the
    # bridge device itself for `self`; neither there is EOPNOTSUPP
    port = _port(dev)
    if (master or not self_flag) and port is None or self_flag and dev.kind != "bridge":
        raise RtnlError(errno.EOPNOTSUPP)
    for each in vids:
        if master or not self_flag:
            nbp_vlan_delete(port, each) if delete else nbp_vlan_add(port, each, vflags)
        if self_flag:
            br_vlan_delete(dev.priv, each) if delete else br_vlan_add(dev.priv, each, vflags)
    return ""


def vlan_show(net, tokens) -> str:
    filter_dev = None
    filter_vlan = 0
    while tokens:
        token = tokens.pop()
        if token == "dev":
            value = tokens.pop()
            if filter_dev is not None:
                raise duparg("dev", value)
            filter_dev = value
        elif token == "vid":
            value = tokens.pop()
            if filter_vlan:
                raise duparg("vid", value)
            filter_vlan = atoi(value)
    filter_index = _device(net, filter_dev).ifindex if filter_dev is not None else 0
    text = f"{'port':<{IFNAMSIZ}}  {'vlan-id':<{VLAN_ID_LEN}}\n"
    for dev in sorted(net.devices.values(), key=lambda d: d.ifindex):
        if filter_index and dev.ifindex != filter_index:
            continue
        port = _port(dev)
        group = port.vlgrp if port is not None else dev.priv.vlgrp if dev.kind == "bridge" else None
        if group is None:
            continue
        vlans = [v for v in group.vlans.values() if not filter_vlan or v.vid == filter_vlan]
        for index, vlan in enumerate(vlans):
            text += f"{dev.name if index == 0 else '':<{IFNAMSIZ}}  {vlan.vid}"
            text += " PVID" if group.pvid == vlan.vid else ""
            text += " Egress Untagged" if vlan.flags & BRIDGE_VLAN_INFO_UNTAGGED else ""
            text += "\n"
    return text


# mdb ------------------------------------------------------------------------------
def do_mdb(net, tokens, details: bool = False, stats: bool = False) -> str:
    if not tokens:
        return mdb_show(net, tokens, details, stats)
    verb = tokens.pop()
    if matches(verb, "add"):
        return mdb_modify(net, tokens, delete=False)
    if matches(verb, "delete"):
        return mdb_modify(net, tokens, delete=True)
    if matches(verb, "show") or matches(verb, "lst") or matches(verb, "list"):
        return mdb_show(net, tokens, details, stats)
    if matches(verb, "help"):
        raise not_modelled("bridge mdb help")
    raise ToolError(f'Command "{verb}" is unknown, try "bridge mdb help".', 255)


def _timer(timer) -> str:
    """The time left, as format_timer() prints br_timer_value()'s jiffies: "%4i.%.2i"."""
    left = max(0.0, timer.expires - timer.clock.now) if timer.pending else 0.0
    centis = int(left * 100)
    return f"{centis // 100:4d}.{centis % 100:02d}"


def mdb_show(net, tokens, details: bool, stats: bool) -> str:
    filter_dev = filter_vid = None
    while tokens:
        token = tokens.pop()
        if token == "dev":
            if filter_dev is not None:
                raise duparg("dev", tokens.peek() or "")
            filter_dev = _device(net, tokens.pop())
        elif token == "vid":
            filter_vid = atoi(tokens.pop())
    lines = []
    for dev in net.devices.values():
        if dev.kind != "bridge" or (filter_dev is not None and dev is not filter_dev):
            continue
        br = dev.priv
        for entry in reversed(br.mdb.values()):
            if filter_vid and entry.vid != filter_vid:
                continue
            members = [(br.dev.name, "temp", "kernel", entry.timer)] if entry.host_joined else []
            members += [(pg.port.dev.name, "permanent" if pg.permanent else "temp", pg.rt_protocol, pg.timer)
                        for pg in entry.ports]
            for port_name, state, protocol, timer in members:
                line = f"dev {dev.name} port {port_name} grp {group_str(entry.proto, entry.group)} {state}"
                if details:
                    line += f" proto {protocol} "
                if entry.vid:
                    line += f" vid {entry.vid}"
                if stats:
                    line += f" {_timer(timer)}"
                lines.append(line + "\n")
        routers = [port for port in br.ports if any(port in family.router_ports for family in
                                                    (br.multicast_ctx.ip4, br.multicast_ctx.ip6))]
        if details and routers:
            if stats:
                lines += [f"router ports on {dev.name}: {port.dev.name} {_timer(_router_timer(port))} "
                          f"{'permanent' if port.multicast_ctx.multicast_router == 2 else 'temp'}\n"
                          for port in routers]
            else:
                lines.append(f"router ports on {dev.name}: " + "".join(f"{port.dev.name} " for port in routers) + "\n")
    return "".join(lines)


def _router_timer(port):
    """The later of the port's two router timers (br_rports_fill_info() reports the IPv4 one first)."""
    ip4, ip6 = port.multicast_ctx.ip4.router_timer, port.multicast_ctx.ip6.router_timer
    return ip4 if ip4.pending else ip6


def mdb_modify(net, tokens, delete: bool) -> str:
    """mdb_modify(): dev, port and grp required; RTM_NEWMDB or RTM_DELMDB."""
    dev_name = port_name = group = None
    permanent, vid = False, 0
    while tokens:
        token = tokens.pop()
        if token == "dev":
            dev_name = tokens.pop()
        elif token == "grp":
            group = tokens.pop()
        elif token == "port":
            port_name = tokens.pop()
        elif token == "permanent":
            permanent = not delete
        elif token == "vid":
            vid = atoi(tokens.pop())
        elif token in ("src", "filter_mode", "source_list", "proto", "dst", "dst_port", "vni", "src_vni", "via"):
            raise not_modelled(f"bridge mdb {token}")
        elif token != "temp" and matches(token, "help"):
            raise not_modelled("bridge mdb help")
    if dev_name is None or group is None or port_name is None:
        raise ToolError("Device, group address and port name are required arguments.", 255)
    dev, port_dev = _device(net, dev_name), _device(net, port_name)
    try:
        proto, addr = ETH_P_IP, ip_to_int(group)
    except ValueError:
        try:
            proto, addr = ETH_P_IPV6, addr_bytes(group)
        except ValueError:
            raise ToolError(f'Invalid address "{group}"', 255) from None
    port = _port(port_dev)
    if dev.kind != "bridge" or port is None or port.br is not dev.priv:
        raise RtnlError(errno.EINVAL)
    if delete:
        br_mdb_del(dev.priv, port, proto, addr, vid)
    else:
        br_mdb_add(dev.priv, port, proto, addr, vid, permanent)
    return ""
