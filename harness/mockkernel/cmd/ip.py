"""iproute2 6.1's `ip` (ip/ip.c): global options and the object table.

Objects and options match by prefix in ip.c's order ("a" is address, "r" route,
"ru" rule, "n" neighbour, "l" link; "-s" is -stats, "-br" -brief). Each object's
module mirrors its iproute2 file (iplink.c, ipaddress.c, iproute.c, iprule.c,
ipneigh.c) and asks the kernel side (core/rtnetlink.py, ipv4/devinet.py,
ipv4/fib_frontend.py) for the change. Exit statuses
are ip's: 255 for a bad command line, 1 for a missing device, 2 for an error
the kernel returned.
"""
from __future__ import annotations

from harness.mockkernel.cmd import ipaddress, iplink, ipneigh, iproute, iproute6, iprule
from harness.mockkernel.cmd.args import ToolError, not_modelled
from harness.mockkernel.cmd.iputils import IpOptions, args, matches
from harness.mockkernel.core.errors import RtnlError

OBJECTS = ("address", "addrlabel", "maddress", "route", "rule", "neighbor", "neighbour", "ntable",
           "ntbl", "link", "l2tp", "fou", "ila", "macsec", "tunnel", "tunl", "tuntap", "tap", "token",
           "tcpmetrics", "tcp_metrics", "monitor", "xfrm", "mroute", "mrule", "netns", "netconf", "vrf",
           "sr", "nexthop", "mptcp", "ioam", "help", "stats")
HANDLERS = {"address": ipaddress.do_ipaddr, "route": iproute.do_iproute, "rule": iprule.do_iprule,
            "neighbor": ipneigh.do_ipneigh, "neighbour": ipneigh.do_ipneigh, "link": iplink.do_iplink}
# `ip -6 OBJECT`: the objects with an IPv6 half in the mock (a link has no family)
HANDLERS6 = {"address": ipaddress.do_ipaddr, "route": iproute6.do_iproute6, "rule": iprule.do_iprule,
             "neighbor": ipneigh.do_ipneigh,
             "neighbour": ipneigh.do_ipneigh, "link": iplink.do_iplink}
# ip.c's option table, in order: (name, whether a prefix of it is enough)
OPTIONS = (("-loops", True), ("-family", True), ("-4", False), ("-6", False), ("-0", False),
           ("-M", False), ("-B", False), ("-human", True), ("-human-readable", True), ("-iec", True),
           ("-stats", True), ("-statistics", True), ("-details", True), ("-resolve", True),
           ("-oneline", True), ("-timestamp", True), ("-tshort", True), ("-Version", True),
           ("-force", True), ("-batch", True), ("-brief", True), ("-json", True), ("-pretty", True),
           ("-rcvbuf", True), ("-color", True), ("-help", True), ("-netns", True), ("-Numeric", True),
           ("-all", True))
USAGE = ToolError("Usage: ip [ OPTIONS ] OBJECT { COMMAND | help }", 255)


def main(net, argv: list[str], stdin: str | None = None) -> str:
    tokens = args(argv[1:])
    opts = _options(tokens)
    if not tokens:
        raise USAGE
    obj = tokens.pop()
    name = next((o for o in OBJECTS if matches(obj, o)), None)
    if name is None:
        raise ToolError(f'Object "{obj}" is unknown, try "ip help".', 1)
    handlers = HANDLERS6 if opts.inet6_only else HANDLERS
    if name not in handlers:
        raise not_modelled(f'ip {"-6 " if opts.inet6_only else ""}object "{name}"')
    try:
        return handlers[name](net, tokens, opts)
    except RtnlError as err:
        raise ToolError(str(err), 2) from None


def _options(tokens) -> IpOptions:
    opts = IpOptions()
    while tokens and tokens.peek().startswith("-"):
        opt = tokens.pop()
        if opt == "--":
            break
        opt = opt[1:] if opt.startswith("--") else opt
        name = next((n for n, prefix_ok in OPTIONS if opt == n or (prefix_ok and matches(opt, n))), None)
        if name is None:
            raise ToolError(f'Option "{opt}" is unknown, try "ip -help".', 255)
        if name == "-4":
            opts.inet_only = True
        elif name == "-6":
            opts.inet6_only = True
        elif name in ("-stats", "-statistics"):
            opts.stats += 1
        elif name == "-details":
            opts.details = True
        elif name == "-brief":
            opts.brief = True
        elif name == "-json":
            opts.json = True
        elif name == "-netns":
            raise not_modelled(f'ip -netns "{tokens.pop()}" (the DUT is one network namespace)')
        else:
            raise not_modelled(f'ip option "{opt}"')
    return opts
