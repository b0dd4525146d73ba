"""`ip link` (iproute2 ip/iplink.c): set [dev] NAME up|down|mtu N|address LLADDR|
master DEV|nomaster|type bridge OPTIONS|type bridge_slave OPTIONS, add [name] NAME type
bridge OPTIONS (the options: iplink_bridge.py), delete [dev] NAME, and show (printed by ipaddress.py,
as iproute2 prints it from ipaddress.c).

`xdp` and `xdpdrv` attach a native XDP program, `xdpgeneric` a generic one
(core/xdp.py). The kernel applies a set in do_setlink()'s order: address, mtu,
up/down (dev_change_flags(), whose netdevice notifiers bring the routing and
neighbour effects), then the master (do_set_master()), then `addrgenmode`
(IPv6's IFLA_AF_SPEC: stored, no address made). `group N` sets the device's
group (IFLA_GROUP) when a device is named. A link added without a name
gets its kind's first free `KIND%d` (rtnl_newlink()). Bridges are the one
kind of link the mock creates; the DUT's own devices (lo and the ports) are
never deleted.
"""
from __future__ import annotations

from harness.mockkernel.core import rtnetlink
from harness.mockkernel.cmd.bpf_legacy import bpf_obj_open
from harness.mockkernel.cmd.args import ToolError, c_uint, not_modelled
from harness.mockkernel.cmd.ipaddress import ipaddr_list
from harness.mockkernel.cmd.iplink_bridge import bridge_parse_opt, bridge_slave_parse_opt
from harness.mockkernel.cmd.iputils import IpOptions, device, duparg, duparg2, invarg, ll_addr, matches, \
    unknown_command
from harness.mockkernel.core.xdp import dev_xdp_attach
from harness.mockkernel.ipv6 import addrconf
from harness.mockkernel.ipv6.addrconf import ADDR_GEN_MODES

SET_NOT_MODELLED = ("name", "index", "broadcast", "brd", "txqueuelen", "qlen", "txqlen", "netns",
                    "multicast", "allmulticast", "promisc", "trailers", "arp", "carrier", "vf",
                    "dynamic", "alias", "mode", "state", "numtxqueues", "numrxqueues",
                    "link-netns", "link-netnsid", "protodown", "xdpoffload", "gso_max_size",
                    "gro_max_size", "altname", "vrf")
GROUP_NUMBERS = {"default": 0}  # /etc/iproute2/group as iproute2 ships it
LINK_KINDS = ("bridge",)  # the kinds `ip link add` creates on the mock (rtnl_link_register())


def do_iplink(net, tokens, opts: IpOptions) -> str:
    if not tokens:
        return ipaddr_list(net, tokens, opts, link_only=True)
    verb = tokens.pop()
    if matches(verb, "add"):
        return _link_add(net, tokens)
    if matches(verb, "set") or matches(verb, "change"):
        return _set(net, tokens)
    if matches(verb, "show") or matches(verb, "lst") or matches(verb, "list"):
        return ipaddr_list(net, tokens, opts, link_only=True)
    if matches(verb, "delete"):
        return _link_delete(net, tokens)
    if any(matches(verb, v) for v in ("replace", "xstats", "afstats", "property", "help")):
        raise not_modelled(f"ip link {verb}")
    raise unknown_command(verb, "link")


def _link_add(net, tokens) -> str:
    """iplink_modify(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL): the link's own
    settings, then `type KIND` and the kind's options."""
    name = mtu = mac = None
    up = False
    while tokens:
        token = tokens.pop()
        if token == "type":
            break
        if token == "up":
            up = True
        elif token == "mtu":
            value = tokens.pop()
            mtu = _integer(value)
            if mtu is None:
                raise invarg('Invalid "mtu" value', value)
        elif matches(token, "address"):
            mac = ll_addr(tokens.pop())
        elif token in SET_NOT_MODELLED or token in ("down", "master", "nomaster") or token in XDP_MODES:
            raise not_modelled(f"ip link add {token}")
        else:
            if token in ("name", "dev"):
                token = tokens.pop()
            if name is not None:
                raise duparg2("name", token)
            name = token
    else:
        raise not_modelled("ip link add without a link kind")
    kind = tokens.pop()
    if kind not in LINK_KINDS:
        raise not_modelled(f'ip link add: link kind "{kind}" (the mock creates {", ".join(LINK_KINDS)})')
    data = bridge_parse_opt(tokens)
    if name is None:
        name = next(f"{kind}{n}" for n in range(len(net.devices) + 1) if net.dev_by_name(f"{kind}{n}") is None)
    elif len(name) >= rtnetlink.IFNAMSIZ or "/" in name or not name.isprintable() or " " in name:
        raise invarg('"name" not a valid ifname', name)
    dev = rtnetlink.rtnl_newlink(net, name, kind, data)
    if mac is not None:
        rtnetlink.dev_set_mac_address(net, dev, mac)
    if mtu is not None:
        rtnetlink.dev_set_mtu(net, dev, mtu)
    if up:
        rtnetlink.dev_change_flags(net, dev, True)
    return ""


def _link_delete(net, tokens) -> str:
    name = None
    while tokens:
        token = tokens.pop()
        if token == "dev":
            token = tokens.pop()
        elif token == "type":
            tokens.rest()
            continue
        if name is not None:
            raise duparg2("dev", token)
        name = token
    if name is None:
        raise ToolError('Not enough information: "dev" argument is required.', 255)
    dev = device(net, name)
    if dev.kind not in LINK_KINDS:
        raise not_modelled(f"ip link delete {name} (the DUT's own {dev.kind} device)")
    rtnetlink.rtnl_dellink(net, dev)
    return ""


XDP_MODES = ("xdp", "xdpgeneric", "xdpdrv")
GSO_MAX_SEGS = 65535  # include/linux/netdevice.h: the most `ip link set gso_max_segs` takes


def _set(net, tokens) -> str:
    name = mtu = mac = up = xdp = gso_max_segs = master = kind_data = slave_data = addr_gen_mode = group = None
    while tokens:
        token = tokens.pop()
        if token == "type":
            kind = tokens.pop()
            if kind == "bridge_slave":
                slave_data = bridge_slave_parse_opt(tokens)
            elif kind in LINK_KINDS:
                kind_data = (kind, bridge_parse_opt(tokens))
            else:
                raise not_modelled(f'ip link set type "{kind}"')
        elif token == "master":
            master = device_or_invarg(net, tokens.pop())
        elif token == "nomaster":
            master = False
        elif token in XDP_MODES:
            xdp = (*_xdp_args(tokens), token == "xdpgeneric")
        elif token in ("up", "down"):
            up = token == "up"
        elif token == "mtu":
            value = tokens.pop()
            if mtu is not None:
                raise duparg("mtu", value)
            mtu = _integer(value)
            if mtu is None:
                raise invarg('Invalid "mtu" value', value)
        elif matches(token, "address"):
            mac = ll_addr(tokens.pop())
        elif token == "group":
            value = tokens.pop()
            if group is not None:
                raise duparg("group", value)
            group = _group(value)
        elif token == "gso_max_segs":
            value = tokens.pop()
            gso_max_segs = c_uint(value)
            if gso_max_segs is None or gso_max_segs > GSO_MAX_SEGS:
                raise invarg("Invalid GSO max segments", value)
        elif token == "addrgenmode":
            value = tokens.pop()
            addr_gen_mode = ADDR_GEN_MODES.get(value)
            if addr_gen_mode is None:
                raise invarg("Invalid address generation mode", value)
        elif token in SET_NOT_MODELLED:
            raise not_modelled(f"ip link set {token}")
        else:
            if token == "dev":
                token = tokens.pop()
            if name is not None:
                raise duparg2("dev", token)
            name = token
    if name is None and group is not None:
        raise not_modelled("ip link set group N without a device (changing a group's members)")
    if name is None:
        raise ToolError('Not enough information: "dev" argument is required.', 255)
    dev = device(net, name)
    if group is not None:
        dev.group = group  # IFLA_GROUP: dev_set_group()
    if mac is not None:
        rtnetlink.dev_set_mac_address(net, dev, mac)
    if mtu is not None:
        rtnetlink.dev_set_mtu(net, dev, mtu)
    if gso_max_segs is not None:
        dev.gso_max_segs = gso_max_segs  # netif_set_gso_max_segs()
    if up is not None:
        rtnetlink.dev_change_flags(net, dev, up)
    if master is not None:
        rtnetlink.do_set_master(net, dev, master or None)
    if kind_data is not None:
        rtnetlink.rtnl_changelink(net, dev, *kind_data)
    if slave_data is not None:
        rtnetlink.rtnl_slave_changelink(net, dev, slave_data)
    if xdp is not None:
        path, section, generic = xdp
        load = None if path is None else lambda: _xdp_program(net, path, section)
        dev_xdp_attach(dev, load, generic)
    if addr_gen_mode is not None:  # IFLA_AF_SPEC, after the flags in do_setlink()
        addrconf.inet6_set_link_af_addr_gen_mode(net, dev, addr_gen_mode)
    return ""


def _group(value: str) -> int:
    """rtnl_group_a2n(): a name of /etc/iproute2/group, or a number (get_u32(), any base)."""
    if value in GROUP_NUMBERS:
        return GROUP_NUMBERS[value]
    number = c_uint(value)
    if number is None:
        raise invarg('Invalid "group" value\n', value)
    return number


def device_or_invarg(net, name: str):
    """iplink_parse()'s `master DEV`: ll_name_to_index(), else invarg()."""
    dev = net.dev_by_name(name)
    if dev is None:
        raise invarg("Device does not exist\n", name)
    return dev


XDP_DEFAULT_SECTION = "prog"  # lib/bpf_legacy.c __bpf_prog_meta[BPF_PROG_TYPE_XDP].section, ELF_SECTION_PROG


def _xdp_program(net, path: str, section: str | None):
    """iplink_xdp.c xdp_parse() -> bpf_parse_and_load_common(): the object's program
    in `section`, which defaults to XDP's "prog" (bpf_parse() takes
    bpf_prog_to_default_section(); iproute2 6.1 on this host: an object without
    that section is refused, never its first program taken). lib/bpf_libbpf.c
    load_bpf_object() refuses an object without the section: "object file
    doesn't contain sec S", status 255."""
    section = section or XDP_DEFAULT_SECTION
    obj = bpf_obj_open(net, path, 255)
    if not any(p.section == section for p in obj.programs.values()):
        raise ToolError(f"object file doesn't contain sec {section}", 255)
    return obj.program(section)


def _xdp_args(tokens) -> tuple[str | None, str | None]:
    """iplink_xdp.c: `off`, or `object FILE [section NAME] [verbose]` (obj/sec
    abbreviate them); returns (path, section), (None, None) for off."""
    token = tokens.pop()
    if token == "off":
        return None, None
    if not matches(token, "object"):
        raise not_modelled(f"ip link set xdp {token}")
    path, section = tokens.pop(), None
    while tokens and tokens.peek() in ("section", "sec", "verbose"):
        word = tokens.pop()
        if word != "verbose":
            section = tokens.pop()
    return path, section


def _integer(text: str) -> int | None:
    """get_integer(): a signed base-0 number."""
    value = c_uint(text.removeprefix("-"))
    return None if value is None else -value if text.startswith("-") else value
