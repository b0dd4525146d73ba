"""What the harness changes on a lab DUT, refused where it must not, undone after
every test, and recoverable after a killed session.

A lab DUT is a machine that lives on after the run, reached through its management
interface. `DutState` keeps it safe in four ways:

- The allow-list (`check`). Every configuration command a suite runs is parsed
  before it runs; a command that would change an interface outside the lab file's
  `allow` list is refused with a CommandError naming the interface (the
  management interface above all). Interfaces the test creates (`ip link add
  NAME`) are allowed and deleted afterwards. Commands that act on every interface
  at once are refused, not narrowed: a test that means one port says so with
  `dev pN`, and a narrowed command would not be the one the test wrote. Refused:
  `ip -n`/`ip netns`, `ip addr flush` and `ip neigh flush` without `dev`,
  `ip route flush` of the main/local/default table, routes to `default` (the
  DUT's way back to its management network), `ip rule` with no selector and
  `ip rule flush` (they would route the SSH session too), `ip link ... group`,
  deleting a lab port (no command brings it back), `tc` shared blocks and
  standalone actions, `nft -f FILE` (unseen content; use `nft -f -`), input or
  output chains and iptables policies that drop everything (they would drop the
  SSH session), `sysctl -p`/`--system` (unseen keys), ethtool operations that
  cannot be undone (`-E`, `-f`, `-t`, `--reset`, `-N`/`-U`, `--set-*`). iptables
  `-i`/`-o` only match an interface, so they are allowed. `bridge` commands change
  the devices they name with `dev`/`brport`/`br` (`bridge -n` and `-batch` are
  refused). Known limits: the
  output device a route without `dev` resolves to, `nft` variables, `fwd to`, and
  a ruleset that drops the SSH session by matching it are not recognised.
- Snapshot and restore (`snapshot`, `before_command`, `restore`). Before each test
  the state a test may change is read in a handful of commands: the nft ruleset
  (iptables-nft rules live there; iptables-legacy's too when the DUT has any),
  links of the allowed interfaces (name, MAC, MTU, up, master, XDP programs),
  their addresses, neighbours and qdiscs, and IPv4/IPv6 routes on them and
  rules. What only a command reveals is recorded before that command runs: the
  old value of each sysctl written (for `all` keys that propagate, every
  interface's), ethtool features/rings/coalescing/channels/RSS/link/pause
  settings, links created, renames, bpffs pins. `restore()` puts every item back,
  flushes conntrack and dynamic neighbours (a fresh namespace has neither), and
  returns what it could not put back as `Unrestored(what, command)`, the command
  to do it by hand. After a dropped SSH connection it reconnects first.
- The session (`prepare`, `release`): the lab interfaces are renamed p0..p2 and
  given the harness's MACs, MTU 1500, `tx off` and the DUT sysctls (`disable_ipv6`
  per port rather than for all interfaces, so the management interface keeps
  IPv6); `release()` puts names, MACs, MTUs, offloads and sysctls back.
- The journal: `prepare()` writes the original state, and each snapshot and
  record, to a local file ($XDG_STATE_HOME/packet-journey, else
  ~/.cache/packet-journey) removed by a clean `release()`. A session killed
  however (SIGKILL included) has its reaper (reaper.py) restore the DUT from it at
  once, which removes it. Should that fail too (the DUT out of reach), it stays:
  `python -m harness.drivers.dutstate recover --lab LAB.yaml` restores from it, and
  the next `prepare()` on that DUT recovers first and says so (`journal_lock()`
  keeps a reaper and that session from both doing it). The stand-in lab removes
  its DUTs' journals when it goes (standin_lab.py): its DUTs go with it.

Kernel behaviour relied on (net/ipv4/devinet.c unless named):
- writing `net.ipv4.ip_forward` or `net.ipv4.conf.all.forwarding` sets every
  interface's and `default`'s forwarding (devinet_sysctl_forward() ->
  inet_forward_change()); so do `net.ipv6.conf.all.forwarding`
  (net/ipv6/addrconf.c, addrconf_fixup_forwarding()) and
  `net.ipv6.conf.all.disable_ipv6` (addrconf_disable_ipv6() -> addrconf_disable_change());
- writing an IPv4 `default` key sets it on every interface whose own key was never
  set (devinet_conf_proc() -> devinet_copy_dflt_conf()), and an interface's first
  IPv4 address marks all its keys set (rtm_to_ifaddr() -> ipv4_devconf_setall()):
  putting `default` back does not reach a port a test gave an address, so every
  interface's value is recorded and put back too;
- taking a link down removes its IPv4 routes (net/ipv4/fib_frontend.c,
  fib_disable_ip()); an address brings its local and prefix routes back
  (fib_add_ifaddr()).
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shlex
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

from harness.drivers.reaper import reaper
from harness.drivers.remote import RemoteError, SshHost
from harness.labfile import LabFileError, load_lab
from harness.target import DUT_SYSCTLS, PORTS, CommandError, TargetError


class Unrestored(NamedTuple):
    """Something the harness changed on the DUT and could not put back."""

    what: str
    command: str  # the command to do it by hand


class RecoveredStation(UserWarning):
    """prepare() found the journal of a killed session and restored the DUT from it."""


# the ip and tc commands ---------------------------------------------------------------

# `ip` and `tc` take any unambiguous prefix of an object or verb, the first match in
# their own order winning (ip/ip.c cmds[], ip/iplink.c do_iplink(), ...).
IP_OBJECTS = ("address", "addrlabel", "maddress", "route", "rule", "neighbor", "neighbour", "ntable",
              "ntbl", "link", "l2tp", "fou", "ila", "macsec", "tunnel", "tuntap", "tap", "token",
              "tcpmetrics", "tcp_metrics", "monitor", "xfrm", "mroute", "mrule", "netns", "netconf",
              "vrf", "sr", "nexthop", "mptcp", "ioam", "stats", "help")
IP_VERBS = {
    "address": ("add", "change", "chg", "replace", "delete", "list", "show", "lst", "flush", "save",
                "showdump", "restore", "help"),
    "route": ("add", "change", "chg", "replace", "prepend", "append", "test", "delete", "list", "show",
              "lst", "get", "flush", "save", "restore", "showdump", "help"),
    "rule": ("list", "show", "lst", "save", "restore", "add", "delete", "flush", "help"),
    "neighbor": ("add", "change", "chg", "replace", "delete", "get", "show", "list", "lst", "flush", "help"),
    "link": ("add", "change", "set", "replace", "delete", "show", "lst", "list", "xstats", "afstats",
             "property", "help"),
    "nexthop": ("flush", "add", "replace", "delete", "show", "list", "lst", "get", "bucket", "help"),
    "maddress": ("add", "delete", "list", "show", "lst", "help"),
}
READ_VERBS = frozenset({"list", "show", "lst", "get", "save", "showdump", "xstats", "afstats", "help", "bucket"})
READ_ONLY_IP_OBJECTS = frozenset({"monitor", "netconf", "ntable", "ntbl", "tcpmetrics", "tcp_metrics", "stats"})
# ip options followed by a value (ip/ip.c main())
IP_OPTIONS_WITH_VALUE = ("-f", "-family", "-l", "-loops", "-rc", "-rcvbuf")
# iplink_parse() keywords followed by a value that is not an interface
LINK_VALUE_KEYWORDS = frozenset({
    "mtu", "address", "broadcast", "brd", "txqueuelen", "txqlen", "qlen", "numtxqueues", "numrxqueues",
    "alias", "index", "gso_max_size", "gso_max_segs", "gro_max_size", "gso_ipv4_max_size",
    "gro_ipv4_max_size", "tso_max_size", "tso_max_segs", "addrgenmode", "mode", "state", "parentdev",
    "protodown_reason", "vf", "xdp", "xdpgeneric", "xdpdrv", "xdpoffload", "obj", "sec", "section",
    "pinned", "program", "prog", "allmulticast", "multicast", "arp", "dynamic", "trailers",
    "promisc", "carrier", "protodown", "netns", "link-netns", "link-netnsid", "group", "type",
})
DEFAULT_DESTINATIONS = frozenset({"default", "0.0.0.0/0", "::/0", "0/0", "all", "any"})
SYSTEM_TABLES = frozenset({"main", "local", "default", "254", "255", "253", "all", "0"})
RULE_SELECTORS = frozenset({"from", "to", "fwmark", "iif", "iifname", "oif", "oifname", "tos", "dsfield",
                            "ipproto", "sport", "dport", "uidrange", "l3mdev", "tun_id"})
TC_OBJECTS = ("qdisc", "class", "filter", "chain", "actions", "action", "monitor", "exec", "help")
TC_READ_VERBS = frozenset({"show", "list", "ls", "get", "help"})
TC_OPTIONS_WITH_VALUE = ("-b", "-batch", "-cf", "-conf", "-nm", "-name")

# ethtool: what each changing option's display shows (its show option), the
# options whose change cannot be undone, and the read-only ones
ETHTOOL_RESTORABLE = {
    "-K": "-k", "--features": "-k", "--offload": "-k",
    "-G": "-g", "--set-ring": "-g",
    "-C": "-c", "--coalesce": "-c",
    "-L": "-l", "--set-channels": "-l",
    "-X": "-x", "--set-rxfh-indir": "-x", "--rxfh": "-x",
    "-s": "", "--change": "",
    "-A": "-a", "--pause": "-a",
}
ETHTOOL_HARMLESS = frozenset({"-p", "--identify", "-r", "--negotiate"})
ETHTOOL_IRREVERSIBLE = frozenset({"-E", "--change-eeprom", "-f", "--flash", "-t", "--test", "--reset",
                                  "-N", "-U", "--config-nfc", "--config-ntuple", "-W", "--set-dump",
                                  "--set-eee", "--set-priv-flags", "--set-fec", "--set-phy-tunable",
                                  "--set-tunable", "--set-module", "--set-plca-cfg", "--set-mm",
                                  "--set-pse"})
ETHTOOL_SETTER = {"-k": "-K", "-g": "-G", "-c": "-C", "-l": "-L", "-x": "-X", "": "-s", "-a": "-A"}

# What DutState.check() knows; anything else is refused.
KNOWN_PROGRAMS = frozenset({"ip", "tc", "nft", "iptables", "ip6tables", "iptables-save", "iptables-restore",
                            "ip6tables-save", "ip6tables-restore", "sysctl", "ethtool", "conntrack",
                            "bpftool", "nstat", "ss", "cat", "bridge"})
# `bridge` (iproute2 bridge/bridge.c): its objects, and the verbs that only read
BRIDGE_OBJECTS = ("link", "fdb", "mdb", "vlan", "vni", "monitor", "help")
BRIDGE_READ_VERBS = ("show", "list", "lst", "get", "help", "tunnelshow")

# Sysctls that, written for `all`, are written for every interface (module doc).
PROPAGATING_SYSCTLS = {
    "net.ipv4.ip_forward": r"^net\.ipv4\.conf\.[^.]+\.forwarding$",
    "net.ipv4.conf.all.forwarding": r"^net\.ipv4\.conf\.[^.]+\.forwarding$",
    "net.ipv6.conf.all.forwarding": r"^net\.ipv6\.conf\.[^.]+\.forwarding$",
    "net.ipv6.conf.all.disable_ipv6": r"^net\.ipv6\.conf\.[^.]+\.disable_ipv6$",
}
INTERFACE_SYSCTL = re.compile(r"^net\.ipv[46]\.(?:conf|neigh)\.([^.]+)\.")
BPFFS = "/sys/fs/bpf/"


class Refused(Exception):
    """A command the allow-list refuses, and why."""


@dataclass
class Effects:
    """What a command does to interfaces: those it changes, creates, deletes and
    renames, and the bpffs paths it pins."""

    touched: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # old name -> new name
    pins: list[str] = field(default_factory=list)

    def add(self, other: Effects) -> None:
        self.touched += other.touched
        self.created += other.created
        self.deleted += other.deleted
        self.renamed.update(other.renamed)
        self.pins += other.pins


def command_effects(argv: Sequence[str], stdin: str | None = None) -> Effects:
    """The interfaces `argv` (with `stdin`) changes and creates; Refused for the
    commands the allow-list refuses outright (module doc)."""
    if not argv:
        raise Refused("an empty command")
    program, args = os.path.basename(argv[0]), list(argv[1:])
    if program not in KNOWN_PROGRAMS:
        raise Refused(f"the allow-list does not know `{program}`, so it cannot tell what it changes")
    if program == "ip":
        return _ip_effects(args, stdin)
    if program == "tc":
        return _tc_effects(args, stdin)
    if program == "nft":
        return _nft_effects(args, stdin)
    if program in ("iptables", "ip6tables", "iptables-restore", "ip6tables-restore"):
        _check_iptables_policies(args, stdin)
        return Effects()
    if program == "sysctl":
        return Effects(touched=[key_interface for key in sysctl_writes(args)
                                if (key_interface := sysctl_interface(key)) is not None])
    if program == "ethtool":
        return _ethtool_effects(args)
    if program == "bpftool":
        return _bpftool_effects(args)
    if program == "bridge":
        return _bridge_effects(args)
    return Effects()  # nstat, ss, cat, conntrack, iptables-save: nothing an interface keeps


def _prefix_match(word: str, names: Sequence[str]) -> str | None:
    return next((name for name in names if name.startswith(word)), None)


def _ip_effects(args: list[str], stdin: str | None) -> Effects:
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option in ("-n", "-netns") or option.startswith("-netns="):
            raise Refused("`ip -n` works in another network namespace; the DUT is its own")
        if option in ("-b", "-batch"):
            if not args or args[0] != "-":
                raise Refused("`ip -batch FILE` runs commands the allow-list cannot see; use `-batch -`")
            effects = Effects()
            for line in (stdin or "").splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    effects.add(_ip_effects(shlex.split(line), None))
            return effects
        if option in IP_OPTIONS_WITH_VALUE and args:
            args.pop(0)
    if not args:
        return Effects()
    obj = _prefix_match(args[0], IP_OBJECTS)
    obj = "neighbor" if obj == "neighbour" else obj
    rest = args[1:]
    if obj is None:
        raise Refused(f"`ip {args[0]}` is not an ip object")
    if obj in READ_ONLY_IP_OBJECTS:
        return Effects()
    verbs = IP_VERBS.get(obj)
    verb = "show" if not rest else (_prefix_match(rest[0], verbs) if verbs else rest[0])
    if verb in READ_VERBS:
        return Effects()
    if obj == "netns":
        raise Refused("`ip netns` changes network namespaces; the DUT is one")
    if verbs is None or verb is None:
        raise Refused(f"the allow-list cannot tell which interfaces `ip {shlex.join(args)}` changes")
    rest = rest[1:]
    return {"address": _ip_address, "route": _ip_route, "rule": _ip_rule, "neighbor": _ip_neigh,
            "link": _ip_link, "nexthop": _ip_nexthop, "maddress": _ip_address}[obj](verb, rest)


def _values_after(args: Sequence[str], *keywords: str) -> list[str]:
    return [args[i + 1] for i, word in enumerate(args[:-1]) if word in keywords]


def _ip_address(verb: str, args: list[str]) -> Effects:
    devices = _values_after(args, "dev")
    if verb == "restore":
        raise Refused("`ip addr restore` reads a dump the allow-list cannot see")
    if not devices:
        raise Refused(f"`ip address {verb}` without `dev` acts on every interface; name one with `dev pN`")
    return Effects(touched=devices)


def _ip_route(verb: str, args: list[str]) -> Effects:
    devices = _values_after(args, "dev", "oif")
    if verb == "flush":
        tables = _values_after(args, "table")
        if args[:1] == ["cache"] or devices or (tables and not SYSTEM_TABLES & set(tables)):
            return Effects(touched=devices)
        raise Refused("`ip route flush` of the main, local or default table removes the DUT's routes to "
                      "its management network; flush `dev pN` or a table of the test's own")
    if verb == "restore":
        raise Refused("`ip route restore` reads a dump the allow-list cannot see")
    destination = _route_destination(args)
    tables = _values_after(args, "table")
    if destination in DEFAULT_DESTINATIONS and (not tables or SYSTEM_TABLES & set(tables)):
        raise Refused(f"a route to `{destination}` would replace the DUT's default route, its way back "
                      "to the management network; route the test's prefixes instead")
    return Effects(touched=devices)


# An IPv6 route of these types is listed on lo, whatever the command said (net/ipv6/route.c
# fib6_nh_init(): a reject route's device is the loopback device).
REJECT_ROUTE_TYPES = frozenset({"blackhole", "unreachable", "prohibit", "throw"})
ROUTE_TYPES = frozenset({"unicast", "local", "broadcast", "multicast", "throw", "unreachable", "prohibit",
                         "blackhole", "nat", "anycast"})


def _route_destination(args: list[str]) -> str | None:
    """The prefix of `ip route add [TYPE] [to] PREFIX ...` (iproute.c iproute_modify())."""
    words = [word for word in args if word not in ROUTE_TYPES]
    if words[:1] == ["to"]:
        words = words[1:]
    return words[0] if words else None


def _ip_rule(verb: str, args: list[str]) -> Effects:
    if verb == "flush":
        raise Refused("`ip rule flush` removes the main and default rules the management network is "
                      "routed by; delete the test's rules by priority instead")
    if verb == "restore":
        raise Refused("`ip rule restore` reads a dump the allow-list cannot see")
    selectors = [word for i, word in enumerate(args) if word in RULE_SELECTORS
                 and not (word in ("from", "to") and i + 1 < len(args) and args[i + 1] in DEFAULT_DESTINATIONS)]
    if verb == "add" and not selectors:
        raise Refused("an `ip rule` without a selector (from, to, fwmark, iif, ...) also routes the SSH "
                      "session to the DUT; select the test's packets")
    return Effects(touched=_values_after(args, "iif", "iifname", "oif", "oifname"))


def _ip_neigh(verb: str, args: list[str]) -> Effects:
    devices = _values_after(args, "dev")
    if not devices:
        raise Refused(f"`ip neigh {verb}` without `dev` acts on every interface; name one with `dev pN`")
    return Effects(touched=devices)


def _ip_nexthop(verb: str, args: list[str]) -> Effects:
    if verb == "flush" and not _values_after(args, "dev"):
        raise Refused("`ip nexthop flush` without `dev` acts on every interface; name one with `dev pN`")
    return Effects(touched=_values_after(args, "dev"))


def _ip_link(verb: str, args: list[str]) -> Effects:
    if {"netns", "link-netns", "link-netnsid"} & set(args):
        raise Refused("moving an interface to another network namespace takes it away from the DUT")
    effects = Effects(touched=_values_after(args, "master", "link"))
    if verb in ("add", "replace"):
        type_at = args.index("type") if "type" in args else len(args)
        name = _link_name(args[:type_at])
        if name is None:
            raise Refused("`ip link add` without a name: name the interface so that it is removed after the test")
        effects.created.append(name)
        if "peer" in args[type_at:]:
            peer_args = args[args.index("peer", type_at) + 1:]
            peer = _link_name(peer_args[:peer_args.index("type")] if "type" in peer_args else peer_args)
            if peer is None:
                raise Refused("a veth `peer` without a name: name it so that it is removed after the test")
            effects.created.append(peer)
        return effects
    if "group" in args[:2]:
        raise Refused(f"`ip link {verb} group N` acts on every interface of the group; name one with `dev pN`")
    name = _link_name(args)
    if name is None:
        raise Refused(f"`ip link {verb}` without `dev` acts on interfaces the allow-list cannot see")
    effects.touched.append(name)
    if verb == "delete":
        effects.deleted.append(name)
    new_names = _values_after(args, "name")
    if verb in ("set", "change") and new_names:
        effects.renamed[name] = new_names[-1]
    return effects


def _link_name(args: Sequence[str]) -> str | None:
    """The interface of `ip link add|set|del [dev|name] NAME ...` (iplink_parse())."""
    i = 0
    while i < len(args):
        word = args[i]
        if word in ("dev", "name") and i + 1 < len(args):
            return args[i + 1]
        if word in LINK_VALUE_KEYWORDS or word in ("master", "link", "nomaster", "up", "down"):
            i += 1 if word in ("nomaster", "up", "down") else 2
            continue
        return word
    return None


def _bridge_effects(args: list[str]) -> Effects:
    """`bridge OBJECT VERB ... dev|brport|br NAME`: the devices named (a port's fdb
    entries and VLANs go when it leaves the bridge; a bridge the test made is deleted)."""
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option in ("-n", "-netns") or option.startswith("-netns="):
            raise Refused("`bridge -n` works in another network namespace; the DUT is its own")
        if option in ("-b", "-batch"):
            raise Refused("`bridge -batch` runs commands the allow-list cannot see")
    obj = _prefix_match(args[0], BRIDGE_OBJECTS) if args else "link"
    if obj is None:
        raise Refused(f"`bridge {args[0]}` is not a bridge object")
    verb = args[1] if len(args) > 1 else "show"
    if obj == "monitor" or any(read.startswith(verb) for read in BRIDGE_READ_VERBS):
        return Effects()
    devices = _values_after(args, "dev", "brport", "br")
    if not devices:
        raise Refused(f"`bridge {obj} {verb}` without `dev` acts on interfaces the allow-list cannot see")
    return Effects(touched=devices)


def _tc_effects(args: list[str], stdin: str | None) -> Effects:
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option in ("-n", "-netns"):
            raise Refused("`tc -n` works in another network namespace; the DUT is its own")
        if option in ("-b", "-batch"):
            if not args or args[0] != "-":
                raise Refused("`tc -batch FILE` runs commands the allow-list cannot see; use `-batch -`")
            effects = Effects()
            for line in (stdin or "").splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    effects.add(_tc_effects(shlex.split(line), None))
            return effects
        if option in TC_OPTIONS_WITH_VALUE and args:
            args.pop(0)
    if not args:
        return Effects()
    obj = _prefix_match(args[0], TC_OBJECTS)
    verb = args[1] if len(args) > 1 else "show"
    if obj in ("monitor", "help") or verb in TC_READ_VERBS:
        return Effects()
    if obj in ("actions", "action"):
        raise Refused("standalone tc actions are shared by every device's filters and are not restored; "
                      "put the action in the filter")
    if obj == "exec" or obj is None:
        raise Refused(f"the allow-list cannot tell which interfaces `tc {args[0]}` changes")
    if "block" in args or "ingress_block" in args or "egress_block" in args:
        raise Refused("a shared tc block spans devices the allow-list cannot see; attach to `dev pN`")
    devices = _values_after(args, "dev")
    if not devices:
        raise Refused(f"`tc {obj} {verb}` without `dev` acts on interfaces the allow-list cannot see")
    return Effects(touched=devices)


_NFT_DEVICES = re.compile(r"\bdevices?\s*=?\s*(\{[^}]*\}|\"[^\"]*\"|[^\s;{}]+)")
_NFT_DROPPING_HOOK = re.compile(r"\bhook\s+(input|output)\b[^{}]*?\bpolicy\s+drop\b")


def _nft_effects(args: list[str], stdin: str | None) -> Effects:
    files = _values_after(args, "-f", "--file")
    if any(path != "-" for path in files):
        raise Refused("`nft -f FILE` loads a ruleset the allow-list cannot see; pass it on stdin with `nft -f -`")
    text = " ".join(word for word in args if not word.startswith("-")) + "\n" + ((stdin or "") if files else "")
    dropping = _NFT_DROPPING_HOOK.search(text)
    if dropping:
        raise Refused(f"a `hook {dropping.group(1)}` chain with `policy drop` drops the SSH session to the "
                      "DUT too; accept what the test does not mean to drop")
    devices = []
    for match in _NFT_DEVICES.finditer(text):
        value = match.group(1).strip("{} ")
        for name in re.split(r"[\s,]+", value):
            name = name.strip('"')
            if name.startswith("$"):
                raise Refused(f"`device {name}`: the allow-list does not resolve nft variables; name the device")
            if name:
                devices.append(name)
    return Effects(touched=devices)


def _check_iptables_policies(args: list[str], stdin: str | None) -> None:
    policies = [(args[i + 1], args[i + 2]) for i, word in enumerate(args[:-2]) if word in ("-P", "--policy")]
    policies += re.findall(r"^:(INPUT|OUTPUT) (DROP)\b", stdin or "", re.MULTILINE)
    for chain, policy in policies:
        if chain in ("INPUT", "OUTPUT") and policy == "DROP":
            raise Refused(f"policy DROP on {chain} drops the SSH session to the DUT too; "
                          "drop what the test means to drop")


def sysctl_writes(args: Sequence[str]) -> dict[str, str]:
    """The keys `sysctl ARGS` writes, with their new values (procps sysctl: `-w`, or
    an argument holding `=`); Refused for writes from files."""
    if {"-p", "--load", "--system", "-f"} & set(args) or any(a.startswith("--load=") for a in args):
        raise Refused("`sysctl -p`/`--system` write keys the allow-list cannot see; write them with `-w`")
    writes = {}
    for word in args:
        if not word.startswith("-") and "=" in word:
            key, _, value = word.partition("=")
            writes[key.strip().replace("/", ".")] = value.strip()
    return writes


def sysctl_interface(key: str) -> str | None:
    """The interface a per-interface sysctl key names (None for all/default and
    global keys); a '.' in an interface name is '/' in a dotted key."""
    match = INTERFACE_SYSCTL.match(key)
    if match is None or match.group(1) in ("all", "default"):
        return None
    return match.group(1).replace("/", ".")


def _ethtool_options(args: list[str]) -> tuple[str, list[str]]:
    """The operation and its arguments, past ethtool's global options."""
    while args and args[0] in ("--json", "--debug", "-I", "--include-statistics", "-Q", "--per-queue"):
        option = args.pop(0)
        if option in ("--debug", "-Q", "--per-queue") and args:
            args.pop(0)
    if not args:
        return "", []
    if not args[0].startswith("-"):
        return "", args  # `ethtool DEV`: link settings
    return args[0], args[1:]


def _ethtool_effects(args: list[str]) -> Effects:
    option, rest = _ethtool_options(list(args))
    if option in ETHTOOL_IRREVERSIBLE:
        raise Refused(f"`ethtool {option}` makes a change the harness cannot undo")
    if option in ETHTOOL_RESTORABLE or option in ETHTOOL_HARMLESS:
        if not rest:
            raise Refused(f"`ethtool {option}` without a device")
        return Effects(touched=[rest[0]])
    return Effects()  # the show options and `ethtool DEV`


def _bpftool_effects(args: list[str]) -> Effects:
    words = [word for word in args if not word.startswith("-")]
    effects = Effects(touched=_values_after(words, "dev", "xdpmeta_dev", "offload_dev"))
    if words[:1] in (["prog"], ["map"]) and len(words) > 1:
        command, rest = words[1], words[2:]
        if command in ("load", "loadall") and len(rest) >= 2:
            effects.pins.append(rest[1])
        elif command == "pin" and rest:
            effects.pins.append(rest[-1])
    for pin in effects.pins:
        if not os.path.normpath(pin).startswith(BPFFS):
            raise Refused(f"a pin outside {BPFFS} ({pin}) is not removed after the test")
    return effects


# reading the DUT's state -----------------------------------------------------------

Run = Callable[..., str]


def _json_stream(text: str) -> list[Any]:
    """The JSON documents `ip -j -batch` / `tc -j -batch` print one after another."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return values
        value, at = decoder.raw_decode(text, at)
        values.append(value)


def read_state(run: Run, allowed: Iterable[str], legacy_iptables: bool) -> dict[str, Any]:
    """The restorable state of the allowed interfaces and the DUT's tables."""
    allowed = set(allowed)
    links, addresses, neighbours = _json_stream(run(["ip", "-j", "-batch", "-"],
                                                    stdin="link show\naddr show\nneigh show\n"))
    state: dict[str, Any] = {
        "links": {str(link["ifindex"]): _link_record(link) for link in links if link["ifname"] in allowed},
        "addresses": {a["ifname"]: sorted(_address_record(info) for info in a.get("addr_info", []))
                      for a in addresses if a["ifname"] in allowed},
        "neighbours": sorted(_neighbour_record(n) for n in neighbours if n.get("dev") in allowed),
        "qdiscs": read_qdiscs(run, allowed),
        "ruleset": run(["nft", "list", "ruleset"]),
    }
    state["filters"] = read_filters(run, state["qdiscs"])
    for family in ("-4", "-6"):
        routes, rules = _json_stream(run(["ip", "-j", family, "-batch", "-"],
                                         stdin="route show table all\nrule show\n"))
        state[f"routes{family}"] = sorted(_route_record(r) for r in routes
                                          if r.get("dev") in allowed or "dev" not in r
                                          or r.get("type") in REJECT_ROUTE_TYPES)
        state[f"rules{family}"] = sorted(_canonical(rule) for rule in rules)
    if legacy_iptables:
        state["iptables-legacy"] = {save: _without_counters(run([save]))
                                    for save in ("iptables-legacy-save", "ip6tables-legacy-save")}
    return state


def read_filters(run: Run, qdiscs: dict[str, list[str]]) -> dict[str, list[str]]:
    """The filters of each device's clsact or ingress qdisc (one command for all)."""
    hooks = [(device, hook) for device, records in qdiscs.items()
             for kind in {json.loads(r)["kind"] for r in records} & {"clsact", "ingress"}
             for hook in (("ingress", "egress") if kind == "clsact" else ("ingress",))]
    if not hooks:
        return {}
    listed = _json_stream(run(["tc", "-j", "-batch", "-"],
                              stdin="".join(f"filter show dev {device} {hook}\n" for device, hook in hooks)))
    filters: dict[str, list[str]] = {}
    for (device, hook), records in zip(hooks, listed):
        filters.setdefault(device, []).extend(_canonical({**record, "hook": hook}) for record in records)
    return {device: sorted(records) for device, records in filters.items()}


def read_qdiscs(run: Run, devices: Iterable[str]) -> dict[str, list[str]]:
    qdiscs = _json_stream(run(["tc", "-j", "qdisc", "show"]))[0]
    by_device: dict[str, list[str]] = {device: [] for device in devices}
    for qdisc in qdiscs:
        if qdisc.get("dev") in by_device:
            by_device[qdisc["dev"]].append(_canonical({k: v for k, v in qdisc.items() if k not in ("refcnt", "dev")}))
    return {device: sorted(records) for device, records in by_device.items()}


def _canonical(record: dict) -> str:
    return json.dumps(record, sort_keys=True)


def _link_record(link: dict) -> dict:
    xdp = link.get("xdp", {})
    attached = xdp.get("attached", [xdp] if "prog" in xdp else [])
    return {"name": link["ifname"], "address": link.get("address"), "mtu": link["mtu"],
            "up": "UP" in link.get("flags", []), "master": link.get("master"),
            "xdp": sorted({int(a["mode"]) for a in attached if "mode" in a})}


def _address_record(info: dict) -> str:
    keep = ("family", "local", "prefixlen", "address", "broadcast", "scope", "label")
    return _canonical({k: info[k] for k in keep if k in info})


def _neighbour_record(neighbour: dict) -> str:
    return _canonical({k: neighbour.get(k) for k in ("dst", "dev", "lladdr", "state")})


def _route_record(route: dict) -> str:
    route = {k: v for k, v in route.items() if k not in ("expires", "cache")}
    route["flags"] = [flag for flag in route.get("flags", []) if flag not in ("linkdown", "dead")]
    for nexthop in route.get("nexthops", []):
        nexthop["flags"] = [flag for flag in nexthop.get("flags", []) if flag not in ("linkdown", "dead")]
    return _canonical(route)


_COUNTERS = re.compile(r"\b(packets|bytes) \d+")


def _ruleset_shape(ruleset: str) -> str:
    """The ruleset without its counters' values (they count what traffic passed)."""
    return _COUNTERS.sub(r"\1 0", ruleset)


def _without_counters(save: str) -> str:
    lines = [line for line in save.splitlines() if not line.startswith("#")]
    return "\n".join(re.sub(r"\[\d+:\d+\]", "[0:0]", line) for line in lines)


# turning records back into commands -----------------------------------------------

# XDP_ATTACHED_* (include/uapi/linux/if_link.h) -> the ip link keyword that detaches it
XDP_MODES = {1: "xdpdrv", 2: "xdpgeneric", 3: "xdpoffload"}


def route_args(route: dict) -> list[str]:
    """`ip route` arguments naming `route` (a record of `ip -j route show`)."""
    args = [route["type"]] if route.get("type", "unicast") != "unicast" else []
    args.append(route["dst"])
    for key, keyword in (("tos", "tos"), ("gateway", "via"), ("dev", "dev")):
        if key in route:
            args += [keyword, str(route[key])]
    args += ["table", str(route.get("table", "main"))]
    for key, keyword in (("protocol", "proto"), ("scope", "scope"), ("prefsrc", "src"), ("metric", "metric")):
        if key in route:
            args += [keyword, str(route[key])]
    if "onlink" in route.get("flags", []):
        args.append("onlink")
    for metric in route.get("metrics", []):
        for key, value in metric.items():
            args += [key, str(value)]
    for nexthop in route.get("nexthops", []):
        args.append("nexthop")
        for key, keyword in (("gateway", "via"), ("dev", "dev"), ("weight", "weight")):
            if key in nexthop:
                args += [keyword, str(nexthop[key])]
    return args


def rule_args(rule: dict) -> list[str]:
    """`ip rule` arguments naming `rule` (a record of `ip -j rule show`)."""
    args = ["not"] if rule.get("not") else []
    args += ["priority", str(rule["priority"])]
    for key, keyword in (("src", "from"), ("dst", "to")):
        if key in rule and rule[key] != "all":
            args += [keyword, f"{rule[key]}/{rule[key + 'len']}" if key + "len" in rule else rule[key]]
    if "fwmark" in rule:
        args += ["fwmark", f"{rule['fwmark']}/{rule['fwmask']}" if "fwmask" in rule else rule["fwmark"]]
    for key, keyword in (("iif", "iif"), ("oif", "oif"), ("tos", "tos"), ("ipproto", "ipproto"),
                         ("sport", "sport"), ("dport", "dport"), ("goto", "goto"),
                         ("suppress_prefixlen", "suppress_prefixlength")):
        if key in rule:
            args += [keyword, str(rule[key])]
    if rule.get("l3mdev"):
        args.append("l3mdev")
    if "action" in rule and rule["action"] not in ("goto",):
        args.append(rule["action"])
    elif "table" in rule:
        args += ["lookup", str(rule["table"])]
    return args


def address_args(record: dict) -> list[str]:
    args = [f"{record['local']}/{record['prefixlen']}"]
    for key, keyword in (("address", "peer"), ("broadcast", "broadcast"), ("scope", "scope"), ("label", "label")):
        if key in record and not (key == "address" and record[key] == record["local"]):
            args += [keyword, str(record[key])]
    return args


# ethtool displays -------------------------------------------------------------------

def parse_features(text: str) -> dict[str, str]:
    """`ethtool -k`: each settable feature as requested ("off [requested on]" is a
    feature asked for that depends on another one off; a group line with indented
    members is left out: its members are listed)."""
    features: dict[str, str] = {}
    lines = [line for line in text.splitlines()[1:] if ":" in line]
    for i, line in enumerate(lines):
        name, _, value = line.strip().partition(":")
        is_group = not line.startswith("\t") and i + 1 < len(lines) and lines[i + 1].startswith("\t")
        if not is_group and "[fixed]" not in value:
            requested = re.search(r"\[requested (\w+)\]", value)
            features[name] = requested.group(1) if requested else value.split()[0]
    return features


def parse_settings(show: str, text: str) -> dict[str, str]:
    """An ethtool display as {setter parameter: value}: the current settings of -g and
    -l, the lines of -c, -a and the link settings."""
    if show in ("-g", "-l"):
        text = text.partition("Current hardware settings:")[2]
    if show == "-x":
        table, _, key = text.partition("RSS hash key:")
        return {"table": " ".join(table.split()), "hkey": key.split()[0] if key.split() else ""}
    settings = {}
    for line in text.splitlines():
        label, colon, value = line.strip().partition(":")
        if not colon or not value.strip():
            continue
        value = value.strip()
        if label == "Adaptive RX":  # "Adaptive RX: off  TX: off"
            rx, _, tx = value.partition("TX:")
            settings.update({"adaptive-rx": rx.strip(), "adaptive-tx": tx.strip()})
        elif show == "":
            names = {"Speed": "speed", "Duplex": "duplex", "Auto-negotiation": "autoneg"}
            if label in names:
                settings[names[label]] = value.lower().removesuffix("mb/s")
        elif show == "-a":
            if label in ("Autonegotiate", "RX", "TX"):
                settings[{"Autonegotiate": "autoneg"}.get(label, label.lower())] = value
        else:
            settings[label.lower().replace(" ", "-")] = value
    return {name: value for name, value in settings.items() if value not in ("n/a", "unknown!", "unknown")}


# the journal ---------------------------------------------------------------------

def journal_dir() -> Path:
    state_home = os.environ.get("XDG_STATE_HOME")
    return Path(state_home) / "packet-journey" if state_home else Path.home() / ".cache" / "packet-journey"


@contextlib.contextmanager
def journal_lock() -> Iterator[None]:
    """The journals' directory locked (flock): one process at a time restores a DUT
    from a journal or writes a session's first, so a dead session's reaper and the
    session taking the station after it never both restore it."""
    directory = journal_dir()
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the lock


def journal_path(dut: Any) -> Path:
    """One journal per DUT; a DUT reached from a namespace of its own (the stand-in
    lab's, whose DUTs share addresses from one lab to the next) is named with it."""
    via = f"-via-{dut.via_netns}" if dut.via_netns else ""
    return journal_dir() / f"dut-{dut.user}@{dut.host}-{dut.port}{via}.json"


# the state keeper ---------------------------------------------------------------

class DutState:
    """What the harness changed on one DUT and how to undo it (module doc).

    `host`: an SshHost (run, reconnect, connected, dut); `interfaces`: the lab file's
    Interface list (port p0..p2, name on the DUT); `allow`/`management`: its lists
    of interface names; `lab_file`: named in refusals and in the recover command.
    """

    def __init__(self, host: Any, interfaces: Sequence[Any], allow: Iterable[str],
                 management: Iterable[str], lab_file: Path | str | None = None) -> None:
        self.host = host
        self.interfaces = list(interfaces)
        self.management = set(management)
        self.lab_file = str(lab_file) if lab_file else None
        self.journal_file = journal_path(host.dut)
        self.recovered: list[Unrestored] | None = None  # set when prepare() recovered a killed session
        self._renamed_ports = {i.name: i.port for i in self.interfaces}  # DUT name -> harness name
        self._allow = [name for name in allow if name not in self.management]
        self._journal: dict[str, Any] = {}

    @classmethod
    def checks_only(cls, dut: Any, lab_file: Path | str | None = None) -> DutState:
        """The allow-list of lab file DUT `dut` as it stands once its station is
        prepared (the ports named p0..p2), with no connection (--lab-dry-run)."""
        state = cls(SimpleNamespace(dut=dut), dut.interfaces, dut.allow, dut.management, lab_file)
        state._journal["prepared"] = True
        return state

    # the allow-list -------------------------------------------------------------
    @property
    def allowed(self) -> set[str]:
        """The names the harness may change right now."""
        names = set(self._allow)
        if self._journal.get("prepared"):
            names = {self._renamed_ports.get(name, name) for name in names}
        records = self._journal.get("records", {})
        names |= set(records.get("created", []))
        for old, new in records.get("renamed", {}).items():
            if old in names:
                names.add(new)
        return names

    def check(self, argv: Sequence[str], stdin: str | None = None) -> None:
        """CommandError if `argv` would change an interface outside the allow-list, or
        is refused outright (module doc)."""
        try:
            effects = command_effects(argv, stdin)
        except Refused as exc:
            raise CommandError(argv, f"refused on a lab DUT: {exc}") from None
        allowed = self.allowed | set(effects.created)
        for name in effects.touched:
            if name in self.management:
                raise CommandError(argv, f"refused on a lab DUT: {name} is the management interface{self._where('management')}; "
                                         "the harness never changes it")
            if name not in allowed:
                raise CommandError(argv, f"refused on a lab DUT: {name} is not in the allow-list{self._where('allow')} "
                                         f"({', '.join(sorted(self.allowed))}); the harness changes only those")
        ports = {i.port for i in self.interfaces} | {i.name for i in self.interfaces}
        for name in effects.deleted:
            if name in ports:
                raise CommandError(argv, f"refused on a lab DUT: {name} is a lab port; no command brings a "
                                         "deleted port back")

    def _where(self, field_name: str) -> str:
        return f" (lab file {self.lab_file}: dut.{field_name})" if self.lab_file else f" (dut.{field_name})"

    # the session ------------------------------------------------------------------
    def prepare(self) -> None:
        """Recover a killed session's leftovers, journal the original state, and make
        the lab ports p0..p2 as every target has them (module doc)."""
        with journal_lock():  # a dead session's reaper may be restoring this DUT from its journal
            if self.journal_file.exists():
                self.recovered = self._recover_journal()
                warnings.warn(RecoveredStation(
                    f"{self.host.address}: the journal {self.journal_file} of a killed session was found and the "
                    f"DUT restored from it" + "".join(f"; NOT restored: {u.what} (by hand: {u.command})"
                                                      for u in self.recovered)))
            self._check_tools()
            links = {link["ifname"]: link for link in _json_stream(self.host.run(["ip", "-j", "link", "show"]))[0]}
            for interface in self.interfaces:
                if interface.name not in links:
                    raise TargetError(f"{self.host.address} has no interface {interface.name} (lab file: "
                                      f"dut.interfaces {interface.port}); it has {', '.join(sorted(links))}")
                if interface.port in links and interface.port != interface.name:
                    raise TargetError(f"{self.host.address} already has an interface named {interface.port}, the "
                                      f"name the harness gives {interface.name}; rename it first")
            sysctls = self._port_sysctls([i.name for i in self.interfaces])
            self._journal = {
                "dut": self.host.address, "identity": self._dut_identity(), "lab_file": self.lab_file,
                "owner": os.getpid(),
                "allow": self._allow, "ports": self._renamed_ports,
                "original": {
                    "links": {i.name: _link_record(links[i.name]) for i in self.interfaces},
                    "features": {i.name: parse_features(self.host.run(["ethtool", "-k", i.name]))
                                 for i in self.interfaces},
                    "sysctls": self._read_sysctls(list(sysctls) + self._propagated_keys(sysctls)),
                },
                "records": {},
            }
            self._journal["prepared"] = True  # from here on the ports may carry the harness's names
            if self.lab_file is not None:  # should we die leaving the journal, our reaper restores the DUT
                reaper().journal(self.journal_file, self.lab_file)
            self._save_journal()
        for argv, stdin in self.prepare_commands():
            self.host.run(argv, stdin, stderr_fails=argv[0] == "sysctl")
        self.snapshot()

    def prepare_commands(self) -> list[tuple[list[str], str | None]]:
        """What prepare() changes once the original state is journaled, as (argv,
        stdin): the lab ports renamed p0..p2 with the harness's MACs, MTU 1500 and up,
        transmit checksumming off, the DUT sysctls (--lab-dry-run shows them)."""
        renames = "".join(
            f"link set dev {interface.name} down\nlink set dev {interface.name} name {interface.port}\n"
            f"link set dev {interface.port} address {port.mac} mtu 1500\nlink set dev {interface.port} up\n"
            for interface, port in zip(self.interfaces, PORTS))
        applied = self._port_sysctls([i.port for i in self.interfaces])
        return [(["ip", "-batch", "-"], renames),
                *((["ethtool", "-K", interface.port, "tx", "off"], None) for interface in self.interfaces),
                (["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in applied.items())], None)]

    @staticmethod
    def _port_sysctls(ports: list[str]) -> dict[str, str]:
        """DUT_SYSCTLS, IPv6 off per lab port rather than for every interface."""
        sysctls = {k: v for k, v in DUT_SYSCTLS.items() if not k.endswith("disable_ipv6")}
        sysctls.update({f"net.ipv6.conf.{port}.disable_ipv6": "1" for port in ports})
        return sysctls

    def _check_tools(self) -> None:
        missing = self.host.run(["sh", "-c", 'for p; do command -v "$p" >/dev/null || echo "$p"; done', "sh",
                                 "ip", "tc", "nft", "ethtool", "sysctl", "conntrack"]).split()
        if missing:
            raise TargetError(f"{self.host.address} lacks {', '.join(missing)}: `apt-get install iproute2 "
                              "nftables ethtool procps conntrack` there")

    def _dut_identity(self) -> dict[str, str]:
        """Boot and network namespace: a journal is only valid for the same ones."""
        return {"boot_id": self.host.run(["cat", "/proc/sys/kernel/random/boot_id"]).strip(),
                "netns": self.host.run(["readlink", "/proc/self/ns/net"]).strip()}

    def snapshot(self) -> None:
        """The state to return to after the next test (module doc)."""
        self._connect_if_dropped()
        self._journal["snapshot"] = read_state(self.host.run, self.allowed, self._legacy_iptables())
        self._journal["records"] = {}
        self._save_journal()

    def _legacy_iptables(self) -> bool:
        """Whether iptables-legacy holds rules on the DUT (decided once)."""
        if "legacy_iptables" not in self._journal:
            save = self.host.run(["sh", "-c", "command -v iptables-legacy-save >/dev/null && "
                                              "iptables-legacy-save && ip6tables-legacy-save || true"])
            self._journal["legacy_iptables"] = any(line.startswith(("-A", ":INPUT DROP", ":FORWARD DROP",
                                                                    ":OUTPUT DROP")) for line in save.splitlines())
        return self._journal["legacy_iptables"]

    def run(self, argv: Sequence[str], stdin: str | None = None, stderr_fails: bool = False) -> str:
        """A test's configuration command on the DUT: checked against the allow-list,
        what it changes recorded, then run (SshHost.run)."""
        self.check(argv, stdin)
        self.before_command(argv, stdin)
        return self.host.run(argv, stdin=stdin, stderr_fails=stderr_fails)

    def before_command(self, argv: Sequence[str], stdin: str | None = None, netns: str | None = None) -> None:
        """Record what `argv` is about to change that the snapshot does not hold.
        `netns`: the namespace the ports are in while the test runs (portsnetns.py);
        what the command creates or writes there goes with it, only what the ports
        carry back (ethtool settings) is recorded, read where the ports are; the
        links it creates are recorded either way, so that the test's later commands
        may change them (`ip link set p0 master br0`)."""
        effects = command_effects(argv, stdin)
        records = self._journal.setdefault("records", {})
        changed = False
        for name in effects.created:
            if name not in records.setdefault("created", []):
                records["created"].append(name)
                changed = True
        if netns is not None:
            if os.path.basename(argv[0]) == "ethtool":
                changed |= self._record_ethtool(list(argv[1:]), netns)
            if changed:
                self._save_journal()
            return
        for old, new in effects.renamed.items():
            records.setdefault("renamed", {})[old] = new
            changed = True
        for pin in effects.pins:
            records.setdefault("pins", []).append(pin)
            changed = True
        program = os.path.basename(argv[0])
        if program == "sysctl":
            changed |= self._record_sysctls(list(sysctl_writes(argv[1:])))
        elif program == "ethtool":
            changed |= self._record_ethtool(list(argv[1:]))
        if changed:
            self._save_journal()

    def _record_sysctls(self, keys: list[str]) -> bool:
        recorded = self._journal["records"].setdefault("sysctls", {})
        new = [key for key in keys if key not in recorded]
        new += [key for key in self._propagated_keys(new) if key not in recorded]
        recorded.update({k: v for k, v in self._read_sysctls(new).items() if k not in recorded})
        return bool(new)

    def _propagated_keys(self, keys: Iterable[str]) -> list[str]:
        """Every interface's key that writing one of `keys` also writes (module doc)."""
        patterns = sorted({pattern for key in keys if (pattern := _propagation(key))})
        if not patterns:
            return []
        return list(_parse_sysctl_lines(self.host.run(["sysctl", "-a", "-r", "|".join(patterns)])))

    def _read_sysctls(self, keys: list[str]) -> dict[str, str]:
        """Current values of the existing ones of `keys`."""
        if not keys:
            return {}
        return _parse_sysctl_lines(self.host.run(["sysctl", "-e", *keys]))

    def _record_ethtool(self, args: list[str], netns: str | None = None) -> bool:
        option, rest = _ethtool_options(args)
        if option not in ETHTOOL_RESTORABLE or not rest:
            return False
        show, device = ETHTOOL_RESTORABLE[option], rest[0]
        recorded = self._journal.setdefault("records", {}).setdefault("ethtool", {})
        key = f"{device} {show}"
        if key in recorded:
            return False
        where = ["ip", "netns", "exec", netns] if netns is not None else []
        try:
            display = self.host.run([*where, "ethtool", *([show] if show else []), device])
        except CommandError:  # the device cannot show it: the command will fail too
            return False
        recorded[key] = parse_features(display) if show == "-k" else parse_settings(show, display)
        return True

    # restoring ----------------------------------------------------------------------
    def restore(self) -> list[Unrestored]:
        """Put the DUT back as the last snapshot found it; what could not be, with
        the command to do it by hand. Reconnects first after a dropped connection."""
        try:
            self._connect_if_dropped()
            unrestored = self._restore()
        except RemoteError as exc:
            try:  # the connection dropped during the restore: once more on a new one
                self.host.reconnect()
                unrestored = self._restore()
            except RemoteError:
                return [Unrestored(f"the DUT's state ({exc})", self._recover_command())]
        self._journal["records"] = {}
        self._save_journal()
        return unrestored

    def _recover_command(self) -> str:
        lab = self.lab_file or "LAB.yaml"
        return f"python -m harness.drivers.dutstate recover --lab {lab}"

    def _connect_if_dropped(self) -> None:
        if not self.host.connected:
            self.host.reconnect()

    def _restore(self) -> list[Unrestored]:
        if "snapshot" not in self._journal:
            return []
        snapshot, records = self._journal["snapshot"], self._journal.get("records", {})
        unrestored: list[Unrestored] = []
        run = self._try(unrestored)
        current = read_state(self.host.run, set(self.allowed) | set(records.get("created", [])),
                             "iptables-legacy" in snapshot)
        if _ruleset_shape(current["ruleset"]) != _ruleset_shape(snapshot["ruleset"]):
            run("the nft ruleset", ["nft", "-f", "-"], "flush ruleset\n" + snapshot["ruleset"])
        for save, text in snapshot.get("iptables-legacy", {}).items():
            if current["iptables-legacy"][save] != text:
                restore = save.replace("-save", "-restore")
                run(f"the {save.split('-')[0]} rules (legacy)", [restore], text + "\n")
        changed = False
        for name in records.get("created", []):
            if any(link["name"] == name for link in current["links"].values()):
                changed |= run(f"link {name}, created by the test", ["ip", "link", "del", "dev", name])
        for pin in records.get("pins", []):
            run(f"bpffs pin {pin}", ["rm", "-rf", "--", pin])
        changed |= self._restore_links(snapshot["links"], current["links"], run, unrestored)
        self._restore_ethtool(records.get("ethtool", {}), run)
        def read_again() -> dict[str, Any]:
            return read_state(self.host.run, {link["name"] for link in snapshot["links"].values()},
                              "iptables-legacy" in snapshot)
        if self._restore_sysctls(records.get("sysctls", {}), set(records.get("created", [])), run):
            current = read_again()  # disable_ipv6 took each port's IPv6 addresses, routes and neighbours
        changed |= self._restore_addresses(snapshot["addresses"], current["addresses"], run)
        if changed:  # routes, neighbours and qdiscs went and came with links and addresses
            current = read_again()
        for family in ("-4", "-6"):
            self._restore_table(f"{family} routes", snapshot[f"routes{family}"], current[f"routes{family}"],
                                ["ip", family, "route"], route_args, run)
            self._restore_table(f"{family} rules", snapshot[f"rules{family}"], current[f"rules{family}"],
                                ["ip", family, "rule"], rule_args, run)
        self._restore_neighbours(snapshot["neighbours"], current["neighbours"], run)
        self._restore_qdiscs(snapshot["qdiscs"], current["qdiscs"], run, unrestored)
        for device, records in snapshot.get("filters", {}).items():
            if current["filters"].get(device, records) != records:
                unrestored.append(Unrestored(f"the tc filters {device} had before the test were changed",
                                             f"tc filter del dev {device} ingress; tc filter del dev {device} egress;"
                                             " then add the DUT's own filters back"))
        run("the conntrack table", ["conntrack", "-F"])
        return unrestored

    def _try(self, unrestored: list[Unrestored]) -> Callable[..., bool]:
        """A runner that notes a failing command as Unrestored (with that command)
        instead of raising; a lost connection still raises RemoteError."""
        def run(what: str, argv: list[str], stdin: str | None = None) -> bool:
            try:
                self.host.run(argv, stdin=stdin)
                return True
            except CommandError as exc:
                unrestored.append(Unrestored(f"{what}: {exc}", self._by_hand(argv, stdin)))
                return False
        return run

    def _by_hand(self, argv: list[str], stdin: str | None) -> str:
        dut = self.host.dut
        command = f"ssh -p {dut.port} {dut.user}@{dut.host} {shlex.quote(self.host.command_line(argv))}"
        return command + (f" <<'EOF'\n{stdin.rstrip()}\nEOF" if stdin else "")

    def _restore_links(self, before: dict, now: dict, run: Callable, unrestored: list[Unrestored]) -> bool:
        changed = False
        for ifindex, link in before.items():
            if ifindex not in now:
                unrestored.append(Unrestored(f"link {link['name']} (ifindex {ifindex}) is gone",
                                             "reload its driver or reboot the DUT"))
                continue
            current = now[ifindex]
            name = current["name"]
            if name != link["name"]:
                changed |= run(f"the name of {link['name']}", ["ip", "link", "set", "dev", name, "down"])
                changed |= run(f"the name of {link['name']}", ["ip", "link", "set", "dev", name, "name", link["name"]])
                current = {**current, "up": False}
            name = link["name"]
            for mode in sorted(set(current["xdp"]) - set(link["xdp"])):
                changed |= run(f"the XDP program of {name}", ["ip", "link", "set", "dev", name, XDP_MODES[mode], "off"])
            if set(link["xdp"]) - set(current["xdp"]):
                unrestored.append(Unrestored(f"the XDP program {name} had before the test",
                                             f"ip link set dev {name} xdp obj PROGRAM.o"))
            settings = []
            if current["address"] != link["address"] and link["address"]:
                settings += ["address", link["address"]]
            if current["mtu"] != link["mtu"]:
                settings += ["mtu", str(link["mtu"])]
            if current["master"] != link["master"]:
                settings += ["master", link["master"]] if link["master"] else ["nomaster"]
            if settings:
                changed |= run(f"the settings of {name}", ["ip", "link", "set", "dev", name, *settings])
            if current["up"] != link["up"]:
                changed |= run(f"the state of {name}", ["ip", "link", "set", "dev", name, "up" if link["up"] else "down"])
        return changed

    def _restore_ethtool(self, recorded: dict[str, dict[str, str]], run: Callable) -> None:
        for key, before in recorded.items():
            device, _, show = key.partition(" ")
            display = self.host.run(["ethtool", *([show] if show else []), device])
            now = parse_features(display) if show == "-k" else parse_settings(show, display)
            changed = [(name, value) for name, value in before.items() if now.get(name) != value]
            if show == "-x":  # the indirection table goes back to the default spread
                changed = [("default" if name == "table" else name, "" if name == "table" else value)
                           for name, value in changed]
            if show == "" and before.get("autoneg") == "on":
                changed = [("autoneg", "on")] if changed else []
            if changed:
                run(f"ethtool {ETHTOOL_SETTER[show]} settings of {device}",
                    ["ethtool", ETHTOOL_SETTER[show], device, *[w for pair in changed for w in pair if w]])

    def _restore_sysctls(self, recorded: dict[str, str], created: set[str], run: Callable) -> bool:
        """In one command when all goes well, global and `all` keys first: they
        propagate to `default` and the interfaces; key by key to tell which failed.
        Whether any key was written."""
        def order(key: str) -> int:
            interface = INTERFACE_SYSCTL.match(key)
            return 0 if interface is None or interface.group(1) == "all" else 1 if interface.group(1) == "default" else 2
        writes = [f"{key}={recorded[key]}" for key in sorted(recorded, key=order)
                  if sysctl_interface(key) is None or sysctl_interface(key) not in created]
        if not writes:
            return False
        try:  # procps sysctl exits 0 after a refused write: its stderr tells
            self.host.run(["sysctl", "-q", "-w", *writes], stderr_fails=True)
        except CommandError:
            for write in writes:
                run(f"sysctl {write.partition('=')[0]}", ["sysctl", "-q", "-w", write])
        return True

    def _restore_addresses(self, before: dict[str, list[str]], now: dict[str, list[str]], run: Callable) -> bool:
        changed = False
        for device, records in before.items():
            current = set(now.get(device, []))
            for record in sorted(current - set(records)):
                changed |= run(f"an address of {device}", ["ip", "addr", "del", *address_args(json.loads(record))[:1],
                                                           "dev", device])
            for record in records:
                if record not in current:
                    changed |= run(f"an address of {device}", ["ip", "addr", "add", *address_args(json.loads(record)),
                                                               "dev", device])
        return changed

    @staticmethod
    def _restore_table(what: str, before: list[str], now: list[str], command: list[str],
                       args: Callable[[dict], list[str]], run: Callable) -> None:
        for record in sorted(set(now) - set(before)):
            run(f"{what}: one the test added", [*command, "del", *args(json.loads(record))])
        for record in before:
            if record not in now:
                run(f"{what}: one the test removed", [*command, "add", *args(json.loads(record))])

    def _restore_neighbours(self, before: list[str], now: list[str], run: Callable) -> None:
        def permanent(records: list[str]) -> dict[str, dict]:
            return {r: json.loads(r) for r in records if {"PERMANENT", "NOARP"} & set(json.loads(r)["state"] or [])}
        was, is_ = permanent(before), permanent(now)
        for record in sorted(set(is_) - set(was)):
            n = is_[record]
            run(f"neighbour {n['dst']} on {n['dev']}", ["ip", "neigh", "del", n["dst"], "dev", n["dev"]])
        for record, n in was.items():
            if record not in is_:
                run(f"neighbour {n['dst']} on {n['dev']}",
                    ["ip", "neigh", "replace", n["dst"], "lladdr", n["lladdr"], "dev", n["dev"], "nud", "permanent"])
        for device in sorted({json.loads(r)["dev"] for r in now if r not in is_}):
            run(f"learned neighbours on {device}", ["ip", "neigh", "flush", "dev", device])

    def _restore_qdiscs(self, before: dict[str, list[str]], now: dict[str, list[str]], run: Callable,
                        unrestored: list[Unrestored]) -> None:
        for device, records in before.items():
            if now.get(device, records) == records:
                continue
            def egress(qdiscs: list[str]) -> list[str]:
                return [r for r in qdiscs if json.loads(r)["kind"] not in ("clsact", "ingress")]
            current = now.get(device, [])
            added = {json.loads(r)["kind"] for r in current} - {json.loads(r)["kind"] for r in records}
            for qdisc in (["root"] if egress(current) != egress(records) else []) + sorted(added & {"clsact", "ingress"}):
                try:
                    self.host.run(["tc", "qdisc", "del", "dev", device, qdisc])
                except CommandError:  # the default root qdisc cannot be deleted: nothing to do
                    pass
            after = read_qdiscs(self.host.run, [device])[device]
            if after != records:
                unrestored.append(Unrestored(
                    f"qdiscs of {device}: {', '.join(json.loads(r)['kind'] for r in after)} instead of "
                    f"{', '.join(json.loads(r)['kind'] for r in records)}",
                    f"tc qdisc replace dev {device} root ... (as before the test)"))

    def release(self) -> list[Unrestored]:
        """Session end: names, MACs, MTUs, offloads and sysctls as they were; the
        journal removed when everything is back."""
        self._connect_if_dropped()
        unrestored: list[Unrestored] = []
        run = self._try(unrestored)
        original = self._journal["original"]
        links = {link["ifname"]: link for link in _json_stream(self.host.run(["ip", "-j", "link", "show"]))[0]}
        for name, link in original["links"].items():
            port = self._journal["ports"][name]
            current = name if name in links else port
            if current not in links:
                unrestored.append(Unrestored(f"lab interface {name} (named {port} by the harness) is gone",
                                             "reload its driver or reboot the DUT"))
                continue
            if current != name:
                run(f"the name of {name}", ["ip", "link", "set", "dev", current, "down"])
                run(f"the name of {name}", ["ip", "link", "set", "dev", current, "name", name])
            run(f"the MAC address and MTU of {name}",
                ["ip", "link", "set", "dev", name, "address", link["address"], "mtu", str(link["mtu"])])
            run(f"the state of {name}", ["ip", "link", "set", "dev", name, "up" if link["up"] else "down"])
            now = parse_features(self.host.run(["ethtool", "-k", name]))
            changed = [w for feature, value in original["features"][name].items()
                       if now.get(feature) != value for w in (feature, value)]
            if changed:
                run(f"the offloads of {name}", ["ethtool", "-K", name, *changed])
        self._restore_sysctls(original["sysctls"], set(), run)
        if not unrestored:
            self.journal_file.unlink(missing_ok=True)
            self._journal = {}
        return unrestored

    # the journal -------------------------------------------------------------------
    def _save_journal(self) -> None:
        self.journal_file.parent.mkdir(parents=True, exist_ok=True)
        part = self.journal_file.with_suffix(".part")
        part.write_text(json.dumps(self._journal, indent=1))
        part.replace(self.journal_file)

    def _recover_journal(self) -> list[Unrestored]:
        """Restore from the journal of a killed session: the test's changes, then the
        session's. A journal of another boot or namespace is stale: removed."""
        journal = json.loads(self.journal_file.read_text())
        if journal.get("identity") != self._dut_identity():
            self.journal_file.unlink()
            return []
        self._journal = journal
        self._renamed_ports = journal["ports"]
        self._allow = journal["allow"]
        unrestored = self.restore() if journal.get("prepared") and "snapshot" in journal else []
        return unrestored + self.release()


def _propagation(key: str) -> str | None:
    """A pattern of the per-interface keys that writing `key` writes too (module doc)."""
    if key in PROPAGATING_SYSCTLS:
        return PROPAGATING_SYSCTLS[key]
    default = re.match(r"^net\.ipv4\.conf\.default\.([^.]+)$", key)
    return rf"^net\.ipv4\.conf\.[^.]+\.{re.escape(default.group(1))}$" if default else None


def _parse_sysctl_lines(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            values[key.strip()] = value
    return values


# the DUT's identity, for the report ----------------------------------------------------

def identity(host: Any, interfaces: Sequence[Any]) -> dict[str, Any]:
    """Kernel, distribution, CPU and each lab port's NIC: driver, firmware, model,
    rings and offloads (`ethtool -i/-g/-k`, lspci or sysfs)."""
    def text(argv: list[str]) -> str:
        try:
            return host.run(argv)
        except CommandError:
            return ""
    os_release = dict(line.partition("=")[::2] for line in text(["cat", "/etc/os-release"]).splitlines() if "=" in line)
    cpuinfo = text(["cat", "/proc/cpuinfo"])
    models = re.findall(r"^model name\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    result: dict[str, Any] = {
        "kernel": text(["uname", "-r"]).strip(),
        "distribution": os_release.get("PRETTY_NAME", "").strip('"'),
        "cpu": {"model": models[0] if models else "", "count": len(re.findall(r"^processor\s*:", cpuinfo, re.MULTILINE))},
        "ports": {},
    }
    for interface in interfaces:
        name = interface.port if text(["ip", "link", "show", "dev", interface.port]) else interface.name
        driver = dict(line.partition(": ")[::2] for line in text(["ethtool", "-i", name]).splitlines())
        rings = parse_settings("-g", text(["ethtool", "-g", name]))
        features = parse_features(text(["ethtool", "-k", name]))
        result["ports"][interface.port] = {
            "name": interface.name, "driver": driver.get("driver", ""), "version": driver.get("version", ""),
            "firmware": driver.get("firmware-version", ""), "bus": driver.get("bus-info", ""),
            "model": _nic_model(text, name, driver.get("bus-info", "")),
            "rings": rings or "not reported",
            "offloads": ", ".join(f"{k} {v}" for k, v in features.items()
                                  if k in ("rx-checksumming", "tx-checksum-ip-generic", "tx-scatter-gather",
                                           "tcp-segmentation-offload", "tx-tcp-segmentation",
                                           "generic-segmentation-offload", "generic-receive-offload",
                                           "large-receive-offload", "rx-gro-hw", "receive-hashing")),
        }
    return result


def _nic_model(text: Callable[[list[str]], str], name: str, bus: str) -> str:
    if bus:
        model = text(["lspci", "-s", bus]).strip()
        if model:
            return model.split(" ", 1)[1] if " " in model else model
    ids = [text(["cat", f"/sys/class/net/{name}/device/{key}"]).strip() for key in ("vendor", "device")]
    if all(ids):
        return f"PCI {ids[0]}:{ids[1]}"
    return "virtual (veth)" if "veth" in text(["ethtool", "-i", name]) else "virtual"


# `python -m harness.drivers.dutstate recover --lab LAB.yaml` ---------------------------

def recover(lab_file: Path | str) -> dict[str, list[Unrestored]]:
    """Restore every station of `lab_file` that a killed session left a journal for;
    what could not be restored, by station (a DUT out of reach keeps its journal)."""
    lab = load_lab(lab_file)
    results: dict[str, list[Unrestored]] = {}
    with journal_lock():
        for station in lab.stations:
            if journal_path(station.dut).exists():
                results[station.name] = _recover_station(station, lab_file)
    return results


def recover_journal_of(owner: int, path: str, lab_file: str) -> list[str]:
    """Restore the DUT whose journal `path` process `owner`, now dead, left (its
    reaper's side, reaper.py); a journal written since by another session (which
    restored the DUT from ours first) is not ours. What could not be restored."""
    with journal_lock():
        try:
            if json.loads(Path(path).read_text()).get("owner") != owner:
                return []
        except FileNotFoundError:
            return []
        try:
            lab = load_lab(lab_file)
        except LabFileError as exc:
            return [f"the journal {path} is left: {exc}"]
        stations = [station for station in lab.stations if journal_path(station.dut) == Path(path)]
        if not stations:
            return [f"the journal {path} is left: no station of {lab_file} has it"]
        return [f"station {stations[0].name}: NOT restored: {item.what} (by hand: {item.command})"
                for item in _recover_station(stations[0], lab_file)]


def _recover_station(station: Any, lab_file: Path | str) -> list[Unrestored]:
    try:
        with SshHost(station.dut, station.timeouts) as host:
            state = DutState(host, station.dut.interfaces, station.dut.allow, station.dut.management, lab_file)
            return state._recover_journal()
    except TargetError as exc:
        return [Unrestored(str(exc), f"python -m harness.drivers.dutstate recover --lab {lab_file} (once the "
                                     "DUT is back)")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.drivers.dutstate",
                                     description="Restore lab DUTs from the journals a killed session left.")
    commands = parser.add_subparsers(dest="command", required=True)
    recover_command = commands.add_parser("recover", help="restore every station of the lab file that has a journal")
    recover_command.add_argument("--lab", required=True, type=Path, help="the lab file")
    args = parser.parse_args(argv)
    try:
        results = recover(args.lab)
    except LabFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not results:
        print(f"no journal for any station of {args.lab} in {journal_dir()}: nothing to recover")
    for station, unrestored in results.items():
        print(f"{station}: restored" if not unrestored else f"{station}: NOT restored:")
        for item in unrestored:
            print(f"  {item.what}\n    by hand: {item.command}")
    return 1 if any(results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
