"""`ip link` (iproute2 ip/iplink.c): set [dev] NAME up|down|mtu N|address LLADDR,
and show (printed by ipaddress.py, as iproute2 prints it from ipaddress.c).

`xdp` and `xdpdrv` attach a native XDP program, `xdpgeneric` a generic one
(core/xdp.py). The kernel applies a set in do_setlink()'s order: address, mtu, then up/down
(dev_change_flags(), whose netdevice notifiers bring the routing and neighbour
effects). The
DUT's devices are fixed (lo and the ports): creating or deleting links is not
modelled.
"""
from __future__ import annotations

from harness.mockkernel.bpf.syscall import bpf_runtime
from harness.mockkernel.core import rtnetlink
from harness.mockkernel.cmd.args import ToolError, c_uint, not_modelled
from harness.mockkernel.cmd.ipaddress import ipaddr_list
from harness.mockkernel.cmd.iputils import IpOptions, device, duparg, duparg2, invarg, ll_addr, matches, \
    unknown_command
from harness.mockkernel.core.xdp import dev_xdp_attach

SET_NOT_MODELLED = ("name", "index", "type", "broadcast", "brd", "txqueuelen", "qlen", "txqlen", "netns",
                    "multicast", "allmulticast", "promisc", "trailers", "arp", "carrier", "vf", "master",
                    "nomaster", "dynamic", "alias", "group", "mode", "state", "numtxqueues", "numrxqueues",
                    "addrgenmode", "link-netns", "link-netnsid", "protodown", "xdpoffload", "gso_max_size", "gro_max_size", "altname", "vrf")


def do_iplink(net, tokens, opts: IpOptions) -> str:
    if not tokens:
        return ipaddr_list(net, tokens, opts, link_only=True)
    verb = tokens.pop()
    if matches(verb, "add"):
        raise _link_add(tokens)
    if matches(verb, "set") or matches(verb, "change"):
        return _set(net, tokens)
    if matches(verb, "show") or matches(verb, "lst") or matches(verb, "list"):
        return ipaddr_list(net, tokens, opts, link_only=True)
    if any(matches(verb, v) for v in ("replace", "delete", "xstats", "afstats", "property", "help")):
        raise not_modelled(f"ip link {verb}")
    raise unknown_command(verb, "link")


def _link_add(tokens) -> ToolError:
    rest = tokens.rest()
    kind = rest[rest.index("type") + 1] if "type" in rest[:-1] else None
    if kind is None:
        return not_modelled("ip link add without a link kind")
    return not_modelled(f'ip link add: link kind "{kind}" (the DUT has lo and its ports)')


XDP_MODES = ("xdp", "xdpgeneric", "xdpdrv")
GSO_MAX_SEGS = 65535  # include/linux/netdevice.h: the most `ip link set gso_max_segs` takes


def _set(net, tokens) -> str:
    name = mtu = mac = up = xdp = gso_max_segs = None
    while tokens:
        token = tokens.pop()
        if token in XDP_MODES:
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
        elif token == "gso_max_segs":
            value = tokens.pop()
            gso_max_segs = c_uint(value)
            if gso_max_segs is None or gso_max_segs > GSO_MAX_SEGS:
                raise invarg("Invalid GSO max segments", value)
        elif token in SET_NOT_MODELLED:
            raise not_modelled(f"ip link set {token}")
        else:
            if token == "dev":
                token = tokens.pop()
            if name is not None:
                raise duparg2("dev", token)
            name = token
    if name is None:
        raise ToolError('Not enough information: "dev" argument is required.', 255)
    dev = device(net, name)
    if mac is not None:
        rtnetlink.dev_set_mac_address(dev, mac)
    if mtu is not None:
        rtnetlink.dev_set_mtu(dev, mtu)
    if gso_max_segs is not None:
        dev.gso_max_segs = gso_max_segs  # netif_set_gso_max_segs()
    if up is not None:
        rtnetlink.dev_change_flags(net, dev, up)
    if xdp is not None:
        path, section, generic = xdp
        load = None if path is None else lambda: _xdp_program(net, path, section)
        dev_xdp_attach(dev, load, generic)
    return ""


def _xdp_program(net, path: str, section: str | None):
    """iplink_xdp.c's bpf_program_load(): the object's program in `section`, or its first."""
    obj = bpf_runtime(net).load_object(path)
    return obj.program(section) if section else obj.program()


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
