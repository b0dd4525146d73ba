"""`ip address` (iproute2 ip/ipaddress.c): add/replace/change/del A.B.C.D/N
[brd +|-|ADDR] [scope S] [label L] dev X, flush, show; and print_linkinfo(),
the device lines `ip link show` prints too.

`ip addr add` without `scope` gives 127.0.0.0/8 host scope and everything else
global; `brd +` / `brd -` set the host bits / clear them (prefixes up to /30);
`del` without a prefix length deletes the first address with that local
address (iproute2 warns about this "wildcard deletion" on stderr).
IPv6 addresses (a colon, or -6) go to ipv6/addrconf.py: `nodad` and
`noprefixroute` are their flags, the kernel gives the scope, no length
means /128 (for `del` too). Listings print a device's inet lines, then its
inet6 lines (the kernel's dump order by family); `ip -6 addr` without a
device lists links as addrconf's inet6_fill_ifinfo() gives them to ip (no
qdisc, no group).
"""
from __future__ import annotations

import errno

from harness.mockkernel.bpf.tag import bpf_prog_calc_tag
from harness.mockkernel.cmd.args import ToolError, not_modelled
from harness.mockkernel.cmd.iplink_bridge import bridge_print_opt, bridge_slave_print_opt
from harness.mockkernel.cmd.iputils import (INFINITY_LIFE_TIME, IpOptions, Printed, duparg, duparg2, get_addr,
                                            get_prefix, get_prefix6, inet6_ntoa, invarg, is_inet6, matches,
                                            no_device, render, scope_id, scope_name, unknown_command)
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.ipv4 import devinet
from harness.mockkernel.ipv6 import addrconf
from harness.mockkernel.ipv6.addrconf import (ADDR_GEN_MODES, IFA_F_NODAD, IFA_F_NOPREFIXROUTE, IFA_F_PERMANENT,
                                              IFA_F_SECONDARY, IFA_HOST, IFA_LINK, IFA_SITE, Inet6Ifaddr)
from harness.mockkernel.net import (RT_SCOPE_HOST, RT_SCOPE_LINK, RT_SCOPE_SITE, RT_SCOPE_UNIVERSE, InAddr, int_to_ip,
                                    prefix_mask)
from harness.mockkernel.wire.ethernet import mac_to_str

MODIFY_NOT_MODELLED = ("peer", "remote", "anycast", "metric", "priority", "preference", "valid_lft",
                       "preferred_lft", "home", "optimistic", "mngtmpaddr", "autojoin", "proto")
# `ip addr add` flags the mock models (iproute2's ifa_flag_data[], not readonly)
MODIFY_FLAGS = {"nodad": IFA_F_NODAD, "noprefixroute": IFA_F_NOPREFIXROUTE}
# print_ifa_flags(): ifa_flag_data[]'s names, in its order (IFA_F_SECONDARY is
# "temporary" for IPv6; IFA_F_PERMANENT prints "dynamic" when absent)
IFA_FLAG_NAMES = ((IFA_F_SECONDARY, "temporary"), (0x02, "nodad"), (0x04, "optimistic"), (0x08, "dadfailed"),
                  (0x10, "home"), (0x20, "deprecated"), (0x40, "tentative"), (IFA_F_PERMANENT, "permanent"),
                  (0x100, "mngtmpaddr"), (0x200, "noprefixroute"), (0x400, "autojoin"), (0x800, "stable-privacy"))
DEV_GROUP_NAMES = {0: "default"}  # /etc/iproute2/group as iproute2 ships it
LIST_NOT_MODELLED = ("to", "label", "master", "vrf", "type", "nomaster", "group", "proto")


def do_ipaddr(net, tokens, opts: IpOptions) -> str:
    if not tokens:
        return ipaddr_list(net, tokens, opts, link_only=False)
    verb = tokens.pop()
    if matches(verb, "add"):
        return _modify(net, tokens, opts, "add")
    if matches(verb, "change") or verb == "chg" or matches(verb, "replace"):
        return _modify(net, tokens, opts, "replace")
    if matches(verb, "delete"):
        return _modify(net, tokens, opts, "del")
    if matches(verb, "list") or matches(verb, "show") or matches(verb, "lst"):
        return ipaddr_list(net, tokens, opts, link_only=False)
    if matches(verb, "flush"):
        return _flush(net, tokens, opts)
    if any(matches(verb, v) for v in ("save", "showdump", "restore", "help")):
        raise not_modelled(f"ip address {verb}")
    raise unknown_command(verb, "address")


def _modify(net, tokens, opts: IpOptions, verb: str) -> str:
    family = "inet" if opts.inet_only else "inet6" if opts.inet6_only else "any valid"
    local_text = dev_name = label = None
    local = plen = brd = scope = None
    flags = 0
    while tokens:
        token = tokens.pop()
        if matches(token, "broadcast") or token == "brd":
            value = tokens.pop()
            if brd is not None:
                raise duparg("broadcast", value)
            brd = value if value in ("+", "-") else get_addr(value, family)
        elif token == "scope":
            value = tokens.pop()
            scope = scope_id(value)
            if scope is None:
                raise invarg("invalid scope value.", value)
        elif token == "dev":
            dev_name = tokens.pop()
        elif token == "label":
            label = tokens.pop()
        elif token in MODIFY_FLAGS:
            flags |= MODIFY_FLAGS[token]
        elif token in MODIFY_NOT_MODELLED:
            raise not_modelled(f"ip address {verb} {token}")
        else:
            if token == "local":
                token = tokens.pop()
            if local_text is not None:
                raise duparg2("local", token)
            local_text = token
            if family == "inet6" or (family == "any valid" and is_inet6(token)):
                local, plen = get_prefix6(token, family)
                family = "inet6"
            else:
                local, plen = get_prefix(token, family)
                family = "inet"
    if dev_name is None:
        raise ToolError('Not enough information: "dev" argument is required.', 1)
    dev = net.dev_by_name(dev_name)
    if dev is None:
        raise no_device(dev_name)
    if local is None and family == "any valid":  # an ifaddrmsg of AF_UNSPEC: rtnetlink has no handler for it
        raise RtnlError(errno.EOPNOTSUPP)
    if family == "inet6":
        if local is None:  # inet6_rtm_newaddr()/inet6_rtm_deladdr(): no IFA_ADDRESS nor IFA_LOCAL
            raise RtnlError(errno.EINVAL)
        return _modify6(net, dev, verb, local, plen, flags, brd, label)
    if flags:
        raise not_modelled(f"ip address {verb} {next(n for n, f in MODIFY_FLAGS.items() if f & flags)} "
                           "for an IPv4 address")
    if verb == "del":
        prefixlen = plen if local_text is not None and "/" in local_text else None
        devinet.inet_rtm_deladdr(net, dev, local, prefixlen, label)
        return ""
    if local is None:  # inet_rtm_to_ifa()
        raise RtnlError(errno.EINVAL, "ipv4: Local address is not supplied")
    if scope is None:
        scope = RT_SCOPE_HOST if local >> 24 == 127 else RT_SCOPE_UNIVERSE
    ifa = InAddr(local, plen, _broadcast(brd, local, plen), scope, label or dev.name)
    devinet.inet_rtm_newaddr(net, dev, ifa, replace=verb == "replace")
    return ""


def _modify6(net, dev, verb: str, local: bytes, plen: int, flags: int, brd, label) -> str:
    """inet6_rtm_newaddr()/inet6_rtm_deladdr(); the kernel sets the scope itself."""
    if brd is not None:
        raise ToolError("Broadcast can be set only for IPv4 addresses", 1)
    if label is not None:
        raise not_modelled(f"ip address {verb} label for an IPv6 address")
    if verb == "del":
        addrconf.inet6_addr_del(net, dev, local, plen)
    elif verb == "replace":
        raise not_modelled("ip address replace/change for an IPv6 address")
    else:
        addrconf.inet6_addr_add(net, dev, local, plen, flags)
    return ""


def _broadcast(brd, local: int, plen: int) -> int | None:
    """`brd +` sets the host bits, `brd -` clears them; neither applies past /30."""
    if brd not in ("+", "-"):
        return brd
    if plen > 30:
        return None
    mask = prefix_mask(plen)
    return local | ~mask & 0xFFFFFFFF if brd == "+" else local & mask


def _list_filter(net, tokens, verb: str) -> tuple[list, int | None, bool]:
    """ipaddr_list_flush_or_save()'s selectors: [dev] NAME, up, scope S|all;
    and whether a device was named."""
    name, up_only, scope = None, False, None
    while tokens:
        token = tokens.pop()
        if token == "up":
            up_only = True
        elif token == "scope":
            value = tokens.pop()
            scope = None if value == "all" else scope_id(value)
            if scope is None and value != "all":
                raise invarg('invalid "scope"', value)
        elif token in LIST_NOT_MODELLED:
            raise not_modelled(f"ip address {verb} {token}")
        else:
            if token == "dev":
                token = tokens.pop()
            if name is not None:
                raise duparg2("dev", token)
            name = token
    devs = sorted(net.devices.values(), key=lambda d: d.ifindex)
    if name is not None:
        devs = [d for d in devs if d.name == name]
        if not devs:
            raise ToolError(f'Device "{name}" does not exist.', 1)
    return [d for d in devs if d.up or not up_only], scope, name is not None


def rt_scope(ifa_scope: int) -> int:
    """rt_scope(): an IPv6 address's IFA_* scope as the RT_SCOPE_* netlink reports."""
    if ifa_scope & IFA_HOST:
        return RT_SCOPE_HOST
    if ifa_scope & IFA_LINK:
        return RT_SCOPE_LINK
    return RT_SCOPE_SITE if ifa_scope & IFA_SITE else RT_SCOPE_UNIVERSE


def _inet6_addrs(dev, scope: int | None) -> list[Inet6Ifaddr]:
    idev = dev.ip6_ptr
    if idev is None:
        return []
    return [ifp for ifp in idev.addr_list if scope is None or rt_scope(ifp.scope) == scope]


def _flush(net, tokens, opts: IpOptions) -> str:
    if not tokens:
        raise ToolError("Flush requires arguments.", 1)
    devs, scope, _ = _list_filter(net, tokens, "flush")
    for dev in devs:
        while not opts.inet6_only and (doomed := [a for a in dev.addrs if scope is None or a.scope == scope]):
            devinet.inet_rtm_deladdr(net, dev, doomed[0].local, doomed[0].prefixlen)
        while not opts.inet_only and (doomed6 := _inet6_addrs(dev, scope)):
            addrconf.inet6_addr_del(net, dev, doomed6[0].addr, doomed6[0].prefix_len)
    return ""


def ipaddr_list(net, tokens, opts: IpOptions, link_only: bool) -> str:
    """`ip addr show` and `ip link show` (ipaddr_list_link)."""
    devs, scope, named = _list_filter(net, tokens, "show")
    if opts.details and not link_only:
        raise not_modelled("ip -d (device details) for addresses")
    objects = []
    for dev in devs:
        addrs = [] if opts.inet6_only else [a for a in dev.addrs if scope is None or a.scope == scope]
        addrs6 = [] if opts.inet_only or link_only else _inet6_addrs(dev, scope)
        filtered = opts.inet_only or opts.inet6_only or scope is not None
        if filtered and not link_only and not (addrs or addrs6):
            continue  # an address filter leaves out devices with no address passing it
        out = Printed()
        print_linkinfo(out, dev, opts, link_only, inet6_dump=opts.inet6_only and not named, net=net)
        if not link_only:
            _print_addrs(out, addrs, addrs6, opts)
        if opts.brief:
            out.add(None, None, "\n")
        elif opts.stats:
            link_stats(out, dev, opts.stats)
        objects.append(out)
    return render(objects, opts)


def _print_addrs(out: Printed, addrs: list[InAddr], addrs6: list[Inet6Ifaddr], opts: IpOptions) -> None:
    if opts.brief:
        brief = [(int_to_ip(a.local), a.prefixlen) for a in addrs] + \
                [(inet6_ntoa(ifp.addr), ifp.prefix_len) for ifp in addrs6]
        out.add("addr_info", [{"local": local, "prefixlen": plen} for local, plen in brief],
                "".join(f"{local}/{plen} " for local, plen in brief))
        return
    infos, text = [], ""
    for a in addrs:
        info = {"family": "inet", "local": int_to_ip(a.local), "prefixlen": a.prefixlen}
        text += f"    inet {int_to_ip(a.local)}/{a.prefixlen} "
        if a.broadcast:
            info["broadcast"] = int_to_ip(a.broadcast)
            text += f"brd {int_to_ip(a.broadcast)} "
        info["scope"] = scope_name(a.scope)
        text += f"scope {scope_name(a.scope)} "
        if a.secondary:
            info["secondary"] = True
            text += "secondary "
        info.update(label=a.label, valid_life_time=INFINITY_LIFE_TIME, preferred_life_time=INFINITY_LIFE_TIME)
        text += f"{a.label}\n       valid_lft forever preferred_lft forever\n"
        infos.append(info)
    for ifp in addrs6:
        local, scope = inet6_ntoa(ifp.addr), scope_name(rt_scope(ifp.scope))
        info = {"family": "inet6", "local": local, "prefixlen": ifp.prefix_len, "scope": scope}
        text += f"    inet6 {local}/{ifp.prefix_len} scope {scope} "
        for flag, name in IFA_FLAG_NAMES:
            if flag == IFA_F_PERMANENT:
                if not ifp.flags & flag:
                    info["dynamic"] = True
                    text += "dynamic "
            elif ifp.flags & flag:
                info[name] = True
                text += f"{name} "
        info.update(valid_life_time=INFINITY_LIFE_TIME, preferred_life_time=INFINITY_LIFE_TIME)
        text += "\n       valid_lft forever preferred_lft forever\n"
        infos.append(info)
    out.add("addr_info", infos, text)


def link_flags(dev) -> list[str]:
    """print_link_flags(): NO-CARRIER first for a device up without carrier
    (IFF_UP without IFF_RUNNING), which has no LOWER_UP either."""
    flags = ["LOOPBACK"] if dev.is_loopback else ["BROADCAST", "MULTICAST"]
    if not dev.up:
        return flags
    if not dev.carrier:
        return ["NO-CARRIER", *flags, "UP"]
    return flags + ["UP", "LOWER_UP"]


def operstate(dev) -> str:
    if not dev.up or not dev.carrier:
        return "DOWN"
    return "UNKNOWN" if dev.is_loopback or dev.operstate_unknown else "UP"


def print_linkinfo(out: Printed, dev, opts: IpOptions, link_only: bool, inet6_dump: bool = False,
                   net=None) -> None:
    """The device's lines: `ip link` prints the link mode, `ip addr` does not,
    `ip -4/-6 addr` leave the link layer out; `inet6_dump`: the link as
    inet6_fill_ifinfo() reports it (mtu, state, qlen only). The mock's ports
    have no peer in the namespace, so their names carry no "@peer"."""
    flags, state, mac = link_flags(dev), operstate(dev), mac_to_str(dev.mac)
    brd = mac if dev.is_loopback else "ff:ff:ff:ff:ff:ff"
    if opts.brief:
        out.add("ifname", dev.name, f"{dev.name:<16} ").add("operstate", state, f"{state:<14} ")
        if link_only:
            out.add("address", mac, f"{mac} ").add("flags", flags, f"<{','.join(flags)}> ")
        return
    out.add("ifindex", dev.ifindex, f"{dev.ifindex}: ").add("ifname", dev.name, f"{dev.name}: ")
    out.add("flags", flags, f"<{','.join(flags)}> ").add("mtu", dev.mtu, f"mtu {dev.mtu} ")
    if inet6_dump:
        out.add("operstate", state, f"state {state} ").add("txqlen", 1000, "qlen 1000\n")
        return
    xdp = xdp_attached(dev)
    if xdp is not None:
        mode, prog = xdp
        out.add("xdp", {"mode": mode, "prog": prog, "attached": [{"mode": mode, "prog": prog}]},
                "xdpgeneric " if mode == XDP_ATTACHED_SKB else "xdp ")
    qdisc = dev.qdisc.kind if dev.qdisc is not None else ("noqueue" if dev.up else "noop")
    out.add("qdisc", qdisc, f"qdisc {qdisc} ")
    if dev.master is not None:
        out.add("master", dev.master.name, f"master {dev.master.name} ")
    out.add("operstate", state, f"state {state} ")
    if link_only:
        out.add("linkmode", "DEFAULT", "mode DEFAULT ")
    group = DEV_GROUP_NAMES.get(dev.group, str(dev.group))  # rtnl_group_n2a()
    out.add("group", group, f"group {group} ").add("txqlen", 1000, "qlen 1000")
    if link_only or not (opts.inet_only or opts.inet6_only):
        link_type = "loopback" if dev.is_loopback else "ether"
        out.add("link_type", link_type, f"\n    link/{link_type} ").add("address", mac, f"{mac} ")
        out.add("broadcast", brd, f"brd {brd}")
        if opts.details:
            print_link_details(out, net, dev)
    if xdp is not None:
        prog = xdp[1]
        out.add(None, None, f"\n    prog/xdp id {prog['id']} name {prog['name']} tag {prog['tag']} jited ")
    out.add(None, None, "\n")


XDP_ATTACHED_DRV, XDP_ATTACHED_SKB = 1, 2
ETH_MIN_MTU, ETH_MAX_MTU = 68, 65535
# the GSO/TSO/GRO limits every device here has (GSO_LEGACY_MAX_SIZE, GSO_MAX_SEGS, TSO_LEGACY_MAX_SIZE)
OFFLOAD_LIMITS = (("gso_max_size", 65536), ("gso_max_segs", 65535), ("tso_max_size", 524280),
                  ("tso_max_segs", 65535), ("gro_max_size", 65536))
ADDR_GEN_MODE_NAMES = {mode: name for name, mode in ADDR_GEN_MODES.items()}


def print_link_details(out: Printed, net, dev) -> None:
    """`ip -d link`'s details (iproute2 6.1 print_linkinfo() with show_details):
    promiscuity and allmulti (a bridge port counts one of each: br_add_if()),
    the MTU limits, the link kind's and a bridge port's attributes
    (iplink_bridge.py), the IPv6 address generation mode, the queues and the
    offload limits."""
    port = dev.rx_handler_data if dev.master is not None and dev.master.kind == "bridge" else None
    count = int(port is not None)
    low, high = (0, 0) if dev.is_loopback else (ETH_MIN_MTU, ETH_MAX_MTU)
    out.add("promiscuity", count, f" promiscuity {count} ").add("allmulti", count, f" allmulti {count} ")
    out.add("min_mtu", low, f"minmtu {low} ").add("max_mtu", high, f"maxmtu {high} ")
    linkinfo: dict = {}
    if dev.kind == "bridge":
        attributes = bridge_print_opt(dev.priv)
        linkinfo.update(info_kind="bridge", info_data=dict(attributes))
        out.add(None, None, "\n    bridge " + "".join(f"{name} {value} " for name, value in attributes))
    elif not dev.is_loopback:
        linkinfo["info_kind"] = dev.kind
        out.add(None, None, f"\n    {dev.kind} ")
    if port is not None:
        attributes = bridge_slave_print_opt(port)
        linkinfo.update(info_slave_kind="bridge", info_slave_data=dict(attributes))
        out.add(None, None, "\n    bridge_slave " + "".join(f"{name} {value} " for name, value in attributes))
    if linkinfo:
        out.add("linkinfo", linkinfo)
    mode = ADDR_GEN_MODE_NAMES[net.sysctl.values[f"net.ipv6.conf.{dev.name}.addr_gen_mode"]]
    out.add("inet6_addr_gen_mode", mode, f"addrgenmode {mode} ")
    out.add("num_tx_queues", 1, "numtxqueues 1 ").add("num_rx_queues", 1, "numrxqueues 1 ")
    for name, value in OFFLOAD_LIMITS:
        if name == "tso_max_size" and dev.kind == "bridge":
            value = dev.priv.tso_max_size
        out.add(name, value, f"{name} {value} ")


def xdp_attached(dev) -> tuple[int, dict] | None:
    """iplink_xdp.c xdp_dump(): the attach mode and the program's id, name and tag."""
    prog, mode = dev.xdp_prog, XDP_ATTACHED_DRV
    if prog is None:
        prog, mode = dev.xdp_generic_prog, XDP_ATTACHED_SKB
    if prog is None:
        return None
    return mode, {"id": prog.id, "name": prog.name[:15], "tag": bpf_prog_calc_tag(prog), "jited": 1}


def link_stats(out: Printed, dev, level: int) -> None:
    """print_stats64() (iproute2 6.1 ip/ipaddress.c) at `-s`: the RX and TX lines,
    columns widened to fit their numbers; at `-s -s` the error lines too, the
    receive side's "otherhost" column only when packets for another host were
    dropped, the transmit side's carrier transitions ("transns"). The JSON form
    has no `missed` at `-s` (iproute2 6.1 prints over_errors)."""
    s = dev.stats
    rx = [s.rx_bytes, s.rx_packets, 0, s.rx_dropped, s.rx_missed_errors, 0]
    tx = [s.tx_bytes, s.tx_packets, 0, s.tx_dropped, 0, 0]
    # the error lines' numbers by column: (length crc frame fifo overrun, otherhost) and
    # (aborted fifo window heartbt transns)
    rx_errors = [0, 0, 0, 0, 0, 0, 0, s.rx_otherhost_dropped]
    tx_errors = [0, 0, 0, 0, 0, dev.carrier_changes]
    rows = [rx, tx] + ([rx_errors, tx_errors] if level > 1 else [])
    cols = [max([c, *(len(str(row[i])) for row in rows if i < len(row))])
            for i, c in enumerate([10, 7, 6, 7, 7, 7, 10, 9])]

    def lines(direction: str, names: list[str], values: list[int]) -> str:
        heads = [f"{names[0]:>{cols[0] - 4}}"] + [f"{n:>{c}}" for n, c in zip(names[1:], cols[1:])]
        return (f"    {direction}: " + " ".join(heads) + " " + " " * cols[6] + "\n    "
                + "".join(f"{v:>{c}} " for v, c in zip(values, cols)) + "\n")

    def error_lines(direction: str, columns: list[tuple[str, int, int]]) -> str:
        """(name, value, column) each; a value's number gets the column's width."""
        heads = "".join(f" {name:>{cols[col]}}" for name, _, col in columns)
        return (f"    {direction} errors:{'':>{cols[0] - 10}}{heads}\n{'':>{cols[0] + 5}}"
                + "".join(f"{value:>{cols[col]}} " for _, value, col in columns) + "\n")

    otherhost = s.rx_otherhost_dropped
    text = lines("RX", ["bytes", "packets", "errors", "dropped", "missed", "mcast"], rx)
    if level > 1:
        text += error_lines("RX", [("length", 0, 1), ("crc", 0, 2), ("frame", 0, 3), ("fifo", 0, 4),
                                   ("overrun", 0, 5)] + ([("otherhost", otherhost, 7)] if otherhost else []))
    text += lines("TX", ["bytes", "packets", "errors", "dropped", "carrier", "collsns"], tx)
    if level > 1:
        text += error_lines("TX", [("aborted", 0, 1), ("fifo", 0, 2), ("window", 0, 3), ("heartbt", 0, 4),
                                   ("transns", dev.carrier_changes, 5)])
    stats = {
        "rx": {"bytes": rx[0], "packets": rx[1], "errors": 0, "dropped": rx[3], "over_errors": 0, "multicast": 0},
        "tx": {"bytes": tx[0], "packets": tx[1], "errors": 0, "dropped": tx[3], "carrier_errors": 0,
               "collisions": 0}}
    if level > 1:
        stats["rx"].update(length_errors=0, crc_errors=0, frame_errors=0, fifo_errors=0,
                           missed_errors=s.rx_missed_errors)
        if otherhost:
            stats["rx"]["otherhost"] = otherhost
        stats["tx"].update(aborted_errors=0, fifo_errors=0, window_errors=0, heartbeat_errors=0,
                           carrier_changes=dev.carrier_changes)
    out.add("stats64", stats, text)
