"""`ip neigh` (iproute2 ip/ipneigh.c): add/replace/change/del [proxy] ADDR
[lladdr MAC] dev X [nud STATE] [router]; show [proxy]/flush [dev X]
[nud STATE|all] [PREFIX].

`add` without `nud` makes a PERMANENT entry. `show` hides NOARP entries and
`flush` spares PERMANENT and NOARP ones unless `nud` says otherwise. Entries are
listed in the order they were created (the kernel lists them in hash order).
An IPv6 address (a colon, or -6) names an entry of nd_tbl (ipv6/ndisc.py),
which may carry `router` (NTF_ROUTER); listings without a family show
arp_tbl's entries, then nd_tbl's (neigh_dump_info()'s table order). IPv6
proxy entries (`proxy`, nd_tbl's pneigh entries, which ndisc.py answers for)
are listed only by `show proxy`, with their `router` flag.
"""
from __future__ import annotations

from harness.mockkernel.cmd.args import ToolError, c_uint, not_modelled
from harness.mockkernel.cmd.iputils import (
    IpOptions,
    Printed,
    device,
    duparg,
    duparg2,
    get_addr,
    get_addr6,
    get_prefix,
    get_prefix6,
    inet6_ntoa,
    invarg,
    is_inet6,
    ll_addr,
    matches,
    render,
    unknown_command,
)
from harness.mockkernel.core import rtnetlink
from harness.mockkernel.core.rtnetlink import NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE
from harness.mockkernel.net import (
    NUD_DELAY,
    NUD_FAILED,
    NUD_INCOMPLETE,
    NUD_NAMES,
    NUD_NOARP,
    NUD_PERMANENT,
    NUD_PROBE,
    NUD_REACHABLE,
    NUD_STALE,
    NUD_VALID,
    int_to_ip,
    prefix_mask,
)
from harness.mockkernel.wire.ethernet import mac_to_str

MODIFY_FLAGS = (("add", NLM_F_CREATE | NLM_F_EXCL), ("change", NLM_F_REPLACE), ("chg", NLM_F_REPLACE),
                ("replace", NLM_F_CREATE | NLM_F_REPLACE))
# nud_state_a2n(): (name, state, whether a prefix of the name is enough)
NUD_KEYWORDS = (("permanent", NUD_PERMANENT, True), ("reachable", NUD_REACHABLE, True),
                ("noarp", NUD_NOARP, False), ("none", 0, False), ("stale", NUD_STALE, False),
                ("incomplete", NUD_INCOMPLETE, False), ("delay", NUD_DELAY, False),
                ("probe", NUD_PROBE, False), ("failed", NUD_FAILED, True))
NUD_NONE_FILTER = 0x100  # iproute2's filter bit for entries in no state


def do_ipneigh(net, tokens, opts: IpOptions) -> str:
    if opts.stats:
        raise not_modelled("ip -s neigh (neighbour use and confirm times)")
    if not tokens:
        return _show_or_flush(net, tokens, opts, flush=False)
    verb = tokens.pop()
    for name, flags in MODIFY_FLAGS:
        if verb == name or (name != "chg" and matches(verb, name)):
            return _modify(net, tokens, opts, flags)
    if matches(verb, "delete"):
        return _modify(net, tokens, opts, None)
    if matches(verb, "get"):
        raise not_modelled("ip neigh get")
    if matches(verb, "show") or matches(verb, "lst") or matches(verb, "list"):
        return _show_or_flush(net, tokens, opts, flush=False)
    if matches(verb, "flush"):
        return _show_or_flush(net, tokens, opts, flush=True)
    if matches(verb, "help"):
        raise not_modelled("ip neigh help")
    raise unknown_command(verb, "neigh")


def nud_state(text: str) -> int | None:
    for name, state, prefix_ok in NUD_KEYWORDS:
        if text == name or (prefix_ok and matches(text, name)):
            return state
    value = c_uint(text)
    return value if value is not None and value < 0x100 and not value & (value - 1) else None


def _family(opts: IpOptions) -> str:
    return "inet" if opts.inet_only else "inet6" if opts.inet6_only else "any valid"


def _modify(net, tokens, opts: IpOptions, flags: int | None) -> str:
    """`flags` None is a delete."""
    family = _family(opts)
    lladdr = dev_name = dst = None
    state = NUD_PERMANENT
    router = proxy = False
    while tokens:
        token = tokens.pop()
        if matches(token, "lladdr"):
            value = tokens.pop()
            if lladdr is not None:
                raise duparg("lladdr", value)
            lladdr = value
        elif token == "nud":
            value = tokens.pop()
            state = nud_state(value)
            if state is None:
                raise invarg("nud state is bad", value)
        elif matches(token, "router"):
            router = True
        elif matches(token, "proxy"):
            proxy = True
        elif any(matches(token, k) for k in ("extern_learn", "protocol")):
            raise not_modelled(f"ip neigh {token}")
        elif matches(token, "dev"):
            dev_name = tokens.pop()
        else:
            if token == "to":
                token = tokens.pop()
            if dst is not None:
                raise duparg2("to", token)
            if family == "inet6" or (family == "any valid" and is_inet6(token)):
                dst, family = get_addr6(token, family), "inet6"
            else:
                dst, family = get_addr(token, family), "inet"
    if dev_name is None or dst is None:
        raise ToolError("Device and destination are required arguments.", 255)
    if router and family != "inet6":
        raise not_modelled("ip neigh router for an IPv4 neighbour")
    mac = ll_addr(lladdr) if lladdr not in (None, "null") else None
    dev = device(net, dev_name)
    tbl = net.nd_tbl if family == "inet6" else net.arp_tbl
    if proxy:
        if family != "inet6":
            raise not_modelled("ip neigh proxy for an IPv4 address (proxy ARP entries)")
        if flags is None:
            rtnetlink.pneigh_delete(tbl, dev, dst)
        else:
            rtnetlink.pneigh_add(tbl, dev, dst, router)
        return ""
    if flags is None:
        rtnetlink.neigh_delete(net, tbl, dev, dst)
    else:
        rtnetlink.neigh_add(net, tbl, dev, dst, mac, state, flags)
        tbl.entries[(dev.ifindex, dst)].router = router
    return ""


def _show_or_flush(net, tokens, opts: IpOptions, flush: bool) -> str:
    if flush and not tokens:
        raise ToolError("Flush requires arguments.", 1)
    family = _family(opts)
    dev = prefix = states = None
    proxies = False
    while tokens:
        token = tokens.pop()
        if token == "proxy" and not flush:
            proxies = True
        elif token == "dev":
            dev = device(net, tokens.pop())
        elif token == "nud":
            value = tokens.pop()
            state = nud_state(value)
            if state is None and value != "all":
                raise invarg("nud state is bad", value)
            if state is None:
                state = ~(NUD_NOARP if flush else 0)
            states = (states or 0) | (state or NUD_NONE_FILTER)
        elif token in ("master", "vrf", "unused", "proxy", "nomaster", "protocol"):
            raise not_modelled(f"ip neigh {'flush' if flush else 'show'} {token}")
        else:
            if token == "to":
                token = tokens.pop()
            if family == "inet6" or (family == "any valid" and is_inet6(token)):
                prefix, family = get_prefix6(token, family), "inet6"
            else:
                prefix, family = get_prefix(token, family), "inet"
    if proxies:
        if family == "inet":
            raise not_modelled("ip neigh show proxy for IPv4 (proxy ARP entries)")
        return render([_print_proxy(net, ifindex, addr, router, dev is None)
                       for (ifindex, addr), router in net.nd_tbl.proxies.items()
                       if (dev is None or ifindex == dev.ifindex) and (prefix is None or _in_prefix(addr, prefix))],
                      opts)
    if states is None:
        states = ~(NUD_PERMANENT | NUD_NOARP) if flush else 0xFF & ~NUD_NOARP
    tables = [tbl for tbl, name in ((net.arp_tbl, "inet"), (net.nd_tbl, "inet6")) if family in (name, "any valid")]
    entries = [n for tbl in tables for n in tbl.entries.values()
               if (dev is None or n.ifindex == dev.ifindex)
               and (prefix is None or _in_prefix(n.ip, prefix))
               and (n.state & states or (not n.state and states & NUD_NONE_FILTER))]
    if flush:
        for n in entries:
            rtnetlink.neigh_delete(net, n.tbl, net.devices[n.ifindex], n.ip)
        return ""
    return render([_print_neigh(net, n, dev is None, opts) for n in entries], opts)


def _in_prefix(addr: int | bytes, prefix: tuple) -> bool:
    if isinstance(addr, int):
        return not (addr ^ prefix[0]) & prefix_mask(prefix[1])
    plen = prefix[1]
    value, base = int.from_bytes(addr, "big"), int.from_bytes(prefix[0], "big")
    return not (value ^ base) >> (128 - plen) if plen else True


def _print_proxy(net, ifindex: int, addr: bytes, router: bool, show_dev: bool) -> Printed:
    """print_neigh() for a proxy entry (NTF_PROXY, no state): the address, dev,
    `router` if flagged, `proxy`."""
    out = Printed()
    dst = inet6_ntoa(addr)
    out.add("dst", dst, f"{dst} ")
    if show_dev:
        name = net.devices[ifindex].name
        out.add("dev", name, f"dev {name} ")
    if router:
        out.add("router", None, "router ")
    out.add("proxy", None, "proxy ")
    return out.add(None, None, "\n")


def _print_neigh(net, n, show_dev: bool, opts: IpOptions) -> Printed:
    """print_neigh(): the address, dev (unless filtered by), lladdr (for states
    that have one), state; -br: address, dev, lladdr in columns."""
    out = Printed()
    dst = int_to_ip(n.ip) if isinstance(n.ip, int) else inet6_ntoa(n.ip)
    dev = net.devices[n.ifindex].name
    mac = mac_to_str(n.lladdr) if n.state & NUD_VALID and n.lladdr else None
    if opts.brief:
        out.add("dst", dst, f"{dst:<39} ").add("dev", dev, f"{dev:<16} ")
        if mac:
            out.add("lladdr", mac, mac)
        return out.add(None, None, "\n")
    out.add("dst", dst, f"{dst} ")
    if show_dev:
        out.add("dev", dev, f"dev {dev} ")
    if mac:
        out.add("lladdr", mac, f"lladdr {mac} ")
    if n.router:
        out.add("router", None, "router ")
    if n.state:
        out.add("state", [NUD_NAMES[n.state]], f"{NUD_NAMES[n.state]} ")
    return out.add(None, None, "\n")
