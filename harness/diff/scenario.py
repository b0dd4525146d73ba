"""Scenarios: a DUT configuration and the frames sent into it, drawn by hypothesis.

The grammar is what the mock models and both targets accept: the addressing plan's
router (harness.testing.plan_router(): p0..p2 at 10.0.N.1/24, hosts 10.0.N.2 with
permanent neighbour entries), a few sysctls and routes, an `ip` table of filter
and NAT base chains whose rules combine common matches with a statement, iptables
(-nft) rules in the raw, mangle, nat and filter tables (user chains and policies
included: one `iptables-restore`, before the nft table, so at an equal priority
iptables' chain runs first), and XDP or TC programs from programs/ on a port.
Frames come from the host on one port (any of p0..p2), to addresses the DUT owns, routes, blackholes or
cannot route, over UDP, TCP and ICMP, and some are malformed the ways a wire
delivers them (truncated, a wrong IHL or total length, a bad checksum, fragments).
No address needs ARP (every next hop is a plan host with a permanent entry), so no
outcome waits on neighbour resolution. Half the scenarios are IPv6 ones (grammar6.py:
the plan's IPv6 half, `ip6` and `inet` tables, IPv6 commands and frames), and any may
hold TCP listeners on the DUT (`sockets`).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from socket import AF_INET, AF_INET6

from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from harness.bpf_build import build
from harness.cli.setup_file import SetupCommand, parse_setup
from harness.cli.trace import SetupFailed
from harness.diff.grammar6 import (COMMANDS6, LISTENERS6, MATCHES6, NAT_STATEMENTS6, NAT_STATEMENTS_INET, PLAN6,
                                   REJECTS6, REJECTS_INET, STATEMENTS6, frames6)
from harness.target import PORTS, Target, TargetError
from harness.testing.plan import Host

HOOKS = ("prerouting", "input", "forward", "output", "postrouting")
# where a hook's chain may match the input / output interface (nft refuses the others)
HAS_IIF = frozenset({"prerouting", "input", "forward"})
HAS_OIF = frozenset({"forward", "output", "postrouting"})
REJECT_HOOKS = frozenset({"prerouting", "input", "forward", "output"})  # nft_reject_validate()
NAT_STATEMENTS = {  # the NAT hook a statement belongs to
    "prerouting": ("dnat to 10.0.2.2", "redirect to :9", "dnat to 10.0.1.2:53"),
    "output": ("dnat to 10.0.2.2",),
    "postrouting": ("masquerade", "snat to 10.0.1.1", "masquerade to :2000-2010"),
    "input": ("snat to 10.0.0.1",),
}
# nft names dstnat and srcnat for prerouting and postrouting only (std_prio_table)
NAT_PRIORITY = {"prerouting": "dstnat", "output": "-100", "postrouting": "srcnat", "input": "100"}
NAT_PORTS_NEED_L4 = ("redirect to :9", "dnat to 10.0.1.2:53", "masquerade to :2000-2010",
                     "dnat to [2001:db8:1::2]:53")

PREFIXES = ("10.0.0.0/24", "10.0.1.0/24", "10.0.2.2", "192.0.2.0/24", "10.0.0.0/8", "10.0.1.1")
MATCHES = (
    st.sampled_from(PREFIXES).map(lambda p: f"ip saddr {p}"),
    st.sampled_from(PREFIXES).map(lambda p: f"ip daddr {p}"),
    st.sampled_from(("udp", "tcp", "icmp")).map(lambda p: f"ip protocol {p}"),
    st.sampled_from(("udp", "tcp", "icmp")).map(lambda p: f"meta l4proto {p}"),
    st.sampled_from(("53", "9", "{ 7, 9, 53 }", "1-100", "!= 53")).map(lambda p: f"udp dport {p}"),
    st.sampled_from(("22", "80", "{ 22, 80 }")).map(lambda p: f"tcp dport {p}"),
    st.sampled_from(("syn", "& (syn | ack) == syn", "rst", "& (fin | syn | rst | ack) == ack")).map(
        lambda f: f"tcp flags {f}"),
    st.sampled_from(("1", "< 3", "64")).map(lambda t: f"ip ttl {t}"),
    st.sampled_from(("> 100", "< 40")).map(lambda n: f"ip length {n}"),
    st.sampled_from(("new", "established", "established,related", "invalid", "untracked")).map(
        lambda s: f"ct state {s}"),
    st.sampled_from(("echo-request", "echo-reply", "destination-unreachable")).map(lambda t: f"icmp type {t}"),
    st.sampled_from(("0x1", "0")).map(lambda m: f"meta mark {m}"),
    st.sampled_from(("local", "unicast", "broadcast", "multicast")).map(lambda t: f"fib daddr type {t}"),
    st.sampled_from(("5", "!= 5", "> 5")).map(lambda n: f"ip hdrlength {n}"),
    st.sampled_from(("7", "!= 7")).map(lambda n: f"ip id {n}"),
    st.sampled_from(("& 0x1fff != 0", "& 0x2000 == 0x2000", "& 0x4000 != 0")).map(lambda f: f"ip frag-off {f}"),
    st.sampled_from(("cs0", "!= cs0", "ef")).map(lambda d: f"ip dscp {d}"),
    st.sampled_from(("not-ect", "ce")).map(lambda e: f"ip ecn {e}"),
    st.sampled_from(("host", "broadcast", "multicast", "other")).map(lambda t: f"meta pkttype {t}"),
    st.sampled_from(("> 60", "< 50")).map(lambda n: f"meta length {n}"),
    st.sampled_from(("53", "1-1024")).map(lambda p: f"udp sport {p}"),
    st.sampled_from(("0", "3")).map(lambda c: f"icmp code {c}"),
    st.sampled_from(("original", "reply")).map(lambda d: f"ct direction {d}"),
    st.sampled_from(("dnat", "snat", "confirmed")).map(lambda c: f"ct status {c}"),
    st.just("ip saddr . ip daddr { 10.0.0.2 . 10.0.1.2, 10.0.1.2 . 10.0.0.2 }"),
)
FILTER_STATEMENTS = ("accept", "drop", "continue", "meta mark set 0x1", "counter", "ip ttl set 1",
                     "ip dscp set cs1", "ct mark set 0x1", "meta mark set ct mark", "notrack",
                     "limit rate 1/second", "quota over 100 bytes drop", "ip daddr set 10.0.2.2")


PROTOCOLS = ("udp", "tcp", "icmp", "ipv6-icmp")


def _protocol(word: str) -> str | None:
    """The transport protocol a match word implies, if any."""
    if word.startswith("icmpv6 "):
        return "ipv6-icmp"
    for proto in PROTOCOLS:
        if word.startswith(f"{proto} ") or word in (f"ip protocol {proto}", f"ip6 nexthdr {proto}",
                                                    f"meta l4proto {proto}"):
            return proto
    return None


def _family(word: str) -> str | None:
    """The network protocol a match word implies in an inet table, if any."""
    if word.startswith(("ip ", "icmp ")):
        return "ip"
    if word.startswith(("ip6 ", "icmpv6 ", "exthdr ", "frag ", "rt ")):
        return "ip6"
    return None


def consistent(words: list[str], proto: str | None = None) -> list[str]:
    """`words` without those whose protocol (transport, or network in an inet table)
    conflicts with `proto` or with an earlier word's (nft refuses conflicting protocols)."""
    kept, family = [], None
    for word in words:
        implied, network = _protocol(word), _family(word)
        if implied is not None and proto is not None and implied != proto:
            continue
        if network is not None and family is not None and network != family:
            continue
        proto, family = proto or implied, family or network
        kept.append(word)
    return kept


@dataclass(frozen=True)
class Chain:
    """A base chain of table `t` of its family: a filter or NAT chain at `hook`."""

    hook: str
    kind: str  # filter | nat
    priority: str
    policy: str
    rules: tuple[str, ...]
    family: str = "ip"  # of its table `t`: ip, ip6 or inet

    def to_json(self) -> dict:
        out = {"hook": self.hook, "kind": self.kind, "priority": self.priority, "policy": self.policy,
               "rules": list(self.rules)}
        if self.family != "ip":
            out["family"] = self.family
        return out

    def text(self, index: int) -> str:
        head = f"type {self.kind} hook {self.hook} priority {self.priority}; policy {self.policy};"
        body = "".join(f"\t\t{rule}\n" for rule in self.rules)
        return f"\tchain c{index} {{\n\t\t{head}\n{body}\t}}\n"


@dataclass(frozen=True)
class Program:
    """An eBPF program of programs/ (`name`, its ELF `section`) attached to DUT `port`
    at `hook`: xdp (native), xdpgeneric, or TC ingress / egress (clsact, cls_bpf
    direct-action)."""

    port: str
    hook: str  # xdp | xdpgeneric | ingress | egress
    name: str
    section: str

    def commands(self, obj: str, clsact: bool) -> list[str]:
        """The commands attaching it, the object at `obj`; `clsact`: add the port's
        clsact qdisc first (its first TC program)."""
        if self.hook in ("xdp", "xdpgeneric"):
            return [f"ip link set dev {self.port} {self.hook} obj {obj} sec {self.section}"]
        return ([f"tc qdisc add dev {self.port} clsact"] if clsact else []) + \
            [f"tc filter add dev {self.port} {self.hook} bpf da obj {obj} sec {self.section}"]

    def to_json(self) -> dict:
        return {"port": self.port, "hook": self.hook, "name": self.name, "section": self.section}


XT_TABLE_ORDER = ("raw", "mangle", "nat", "filter")


def restore_text(lines: tuple[str, ...]) -> str:
    """`lines` (iptables command lines without the command: `-t TABLE -A|-N|-P ...`)
    as iptables-restore input: a block per table, `-N C` as `:C - [0:0]`, `-P C P`
    as `:C P [0:0]`."""
    blocks: dict[str, list[str]] = {}
    for line in lines:
        words = line.split(maxsplit=3)
        table, command, rest = words[1], words[2], words[3] if len(words) > 3 else ""
        block = blocks.setdefault(table, [])
        if command == "-N":
            block.insert(sum(b.startswith(":") for b in block), f":{rest} - [0:0]")
        elif command == "-P":
            chain, policy = rest.split()
            block.insert(0, f":{chain} {policy} [0:0]")
        else:
            block.append(f"{command} {rest}")
    text = ""
    for table in sorted(blocks, key=XT_TABLE_ORDER.index):
        text += f"*{table}\n" + "".join(f"{b}\n" for b in blocks[table]) + "COMMIT\n"
    return text


@dataclass(frozen=True)
class Scenario:
    """What one differential run does: `commands` (sysctl, ip route) after the
    plan, then `xtables` as one `iptables-restore`, then `chains` as one `nft -f -`,
    then `programs` attached, then `frames` into `port`."""

    commands: tuple[str, ...]
    chains: tuple[Chain, ...]
    port: str
    frames: tuple[bytes, ...]
    xtables: tuple[str, ...] = ()  # iptables command lines without "iptables": "-t nat -A PREROUTING ..."
    programs: tuple[Program, ...] = ()
    # listening sockets an application holds on the DUT while the frames arrive: "tcp PORT"
    # (AF_INET) or "tcp6 PORT" (AF_INET6), bound to the wildcard address
    sockets: tuple[str, ...] = ()
    ipv6: bool = False  # the plan's IPv6 half (grammar6.PLAN6) before the commands

    def setup_text(self) -> str:
        lines = [*(PLAN6 if self.ipv6 else ()), *self.commands]
        if self.xtables:
            lines += ["iptables-restore <<'EOF'", restore_text(self.xtables).rstrip("\n"), "EOF"]
        if self.chains:
            tables = [f"table {family} t {{\n" + "".join(chain.text(i) for i, chain in enumerate(self.chains)
                                                        if chain.family == family) + "}"
                      for family in dict.fromkeys(chain.family for chain in self.chains)]
            lines += ["nft -f - <<'EOF'", *tables, "EOF"]
        with_clsact: set[str] = set()
        for program in self.programs:
            tc = program.hook in ("ingress", "egress")
            lines += program.commands(str(build(program.name)), tc and program.port not in with_clsact)
            if tc:
                with_clsact.add(program.port)
        return "".join(line + "\n" for line in lines)

    def setup(self) -> list[SetupCommand]:
        return parse_setup(self.setup_text(), "<scenario>")

    @contextmanager
    def sockets_on(self, target: Target) -> Iterator[None]:
        """The scenario's listening sockets open on `target` for the `with` block."""
        opened = []
        try:
            for spec in self.sockets:
                kind, port = spec.split()
                family = AF_INET6 if kind == "tcp6" else AF_INET
                try:
                    listener = target.socket("tcp", ("::" if family == AF_INET6 else "0.0.0.0", int(port)),
                                             family=family)
                    opened.append(listener)
                    listener.listen(8)
                except (OSError, TargetError) as exc:
                    raise SetupFailed(f"<scenario>: socket {spec}: {exc}") from None
            yield
        finally:
            for listener in opened:
                listener.close()

    def to_json(self) -> dict:
        data = {"commands": list(self.commands), "chains": [chain.to_json() for chain in self.chains],
                "port": self.port, "frames": [frame.hex() for frame in self.frames]}
        if self.xtables:
            data["xtables"] = list(self.xtables)
        if self.programs:
            data["programs"] = [program.to_json() for program in self.programs]
        if self.sockets:
            data["sockets"] = list(self.sockets)
        if self.ipv6:
            data["ipv6"] = True
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Scenario":
        return cls(tuple(data["commands"]),
                   tuple(Chain(c["hook"], c["kind"], c["priority"], c["policy"], tuple(c["rules"]),
                               c.get("family", "ip")) for c in data["chains"]),
                   data["port"], tuple(bytes.fromhex(frame) for frame in data["frames"]),
                   tuple(data.get("xtables", ())), tuple(Program(**p) for p in data.get("programs", ())),
                   tuple(data.get("sockets", ())), data.get("ipv6", False))

    def __str__(self) -> str:
        return json.dumps(self.to_json(), indent=1)


# the matches, statements and NAT statements of a table of each family
FAMILY_MATCHES = {"ip": MATCHES, "ip6": MATCHES6, "inet": MATCHES + MATCHES6}
IP_STATEMENTS = ("ip ttl set 1", "ip dscp set cs1", "ip daddr set 10.0.2.2")
COMMON_STATEMENTS = tuple(statement for statement in FILTER_STATEMENTS if statement not in IP_STATEMENTS)
FAMILY_STATEMENTS = {"ip": FILTER_STATEMENTS, "ip6": COMMON_STATEMENTS + STATEMENTS6,
                     "inet": FILTER_STATEMENTS + STATEMENTS6}
FAMILY_REJECTS = {"ip": ("reject", "reject with icmp type host-unreachable", "reject with icmp type admin-prohibited",
                         "reject with icmp type net-unreachable"),
                  "ip6": REJECTS6, "inet": REJECTS_INET}
FAMILY_NAT = {"ip": NAT_STATEMENTS, "ip6": NAT_STATEMENTS6, "inet": NAT_STATEMENTS_INET}


@st.composite
def filter_rule(draw, hook: str, family: str = "ip") -> str:
    matches = list(FAMILY_MATCHES[family])
    if hook in HAS_IIF:
        matches.append(st.sampled_from(PORTS).map(lambda p: f'iifname "{p.name}"'))
        matches.append(st.just("fib saddr . iif oif missing"))  # nft_fib_validate(): iif where there is one
    if hook in HAS_OIF:
        matches.append(st.sampled_from(PORTS).map(lambda p: f'oifname "{p.name}"'))
    words = consistent(draw(st.lists(st.one_of(matches), max_size=3)))
    statements = FAMILY_STATEMENTS[family] + \
        (FAMILY_REJECTS[family] + ("reject with tcp reset",) if hook in REJECT_HOOKS else ())
    statement = draw(st.sampled_from(statements))
    words = consistent([statement, *words])[1:]  # an inet table's `ip ...` statement with no `ip6 ...` match
    if statement == "reject with tcp reset":
        words = ["meta l4proto tcp", *consistent(words, "tcp")]  # nft refuses a reset for what may not be TCP
    return " ".join([*words, "counter", statement] if statement != "counter" else [*words, "counter"])


@st.composite
def chains(draw, family: str = "ip") -> Chain:
    if draw(st.booleans()) and draw(st.booleans()):
        nat = FAMILY_NAT[family]
        hook = draw(st.sampled_from(sorted(nat)))
        rules = draw(st.lists(st.tuples(st.lists(st.one_of(FAMILY_MATCHES[family]), max_size=2),
                                        st.sampled_from(nat[hook])), min_size=1, max_size=2))
        return Chain(hook, "nat", NAT_PRIORITY[hook], "accept", tuple(_nat_rule(matches, statement)
                                                                    for matches, statement in rules), family)
    hook = draw(st.sampled_from(HOOKS))
    priority = draw(st.sampled_from(("raw", "mangle", "filter", "10")))
    policy = draw(st.sampled_from(("accept", "accept", "drop")))
    return Chain(hook, "filter", priority, policy, tuple(draw(st.lists(filter_rule(hook, family), max_size=4))),
                 family)


def _nat_rule(matches: list[str], statement: str) -> str:
    if statement in NAT_PORTS_NEED_L4:  # nft: a port mapping needs a transport protocol match
        return " ".join(["meta l4proto udp", *consistent(matches, "udp"), "counter", statement])
    return " ".join([*consistent(matches), "counter", statement])


# iptables(-nft): the chains of each table (iptables/nft.c builtin_table), where -i / -o may
# be matched (xt_check_match(): the hooks of a chain), and what each table's rules may jump to
XT_CHAINS = {"raw": ("PREROUTING", "OUTPUT"),
             "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
             "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
             "filter": ("INPUT", "FORWARD", "OUTPUT")}
XT_HAS_IIF = frozenset({"PREROUTING", "INPUT", "FORWARD"})
XT_HAS_OIF = frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})
XT_ADDRESSES = ("10.0.0.0/24", "10.0.1.2", "192.0.2.0/255.255.255.0", "10.0.0.0/8", "10.0.1.1/32",
                "10.0.2.0/255.255.0.0", "224.0.0.0/4")
XT_MATCHES = (  # words any rule may carry
    st.sampled_from(XT_ADDRESSES).flatmap(lambda a: st.sampled_from((f"-s {a}", f"! -s {a}", f"-d {a}", f"! -d {a}"))),
    st.sampled_from(("NEW", "ESTABLISHED,RELATED", "INVALID", "UNTRACKED", "DNAT", "NEW,UNTRACKED")).map(
        lambda s: f"-m conntrack --ctstate {s}"),
    st.sampled_from(("--ctstatus CONFIRMED", "--ctdir ORIGINAL", "--ctdir REPLY", "! --ctstate NEW")).map(
        lambda s: f"-m conntrack {s}"),
    st.sampled_from(("NEW", "ESTABLISHED", "INVALID")).map(lambda s: f"-m state --state {s}"),
    st.sampled_from(("--limit 1/second --limit-burst 1", "--limit 3/minute")).map(lambda s: f"-m limit {s}"),
    st.sampled_from(("0x1", "! 0x1", "0x1/0x1", "0")).map(
        lambda m: f"-m mark ! --mark {m[2:]}" if m.startswith("!") else f"-m mark --mark {m}"),
    st.just('-m comment --comment "drawn by harness.diff"'),
    st.sampled_from(("--dst-type LOCAL", "--dst-type BROADCAST", "--dst-type MULTICAST", "--dst-type UNICAST",
                     "--src-type LOCAL", "! --dst-type LOCAL", "--dst-type UNREACHABLE,BLACKHOLE")).map(
        lambda t: f"-m addrtype {t}"),
    st.sampled_from(("0:100", "100:65535", "60")).map(lambda n: f"-m length --length {n}"),
    st.sampled_from(("--ttl-eq 1", "--ttl-lt 3", "--ttl-gt 60", "! --ttl-eq 64")).map(lambda t: f"-m ttl {t}"),
    st.sampled_from(("-f", "! -f")),
    st.sampled_from(("0x1", "0x1/0x1")).map(lambda m: f"-m connmark --mark {m}"),
    st.sampled_from(("--dscp-class EF", "--dscp 0")).map(lambda d: f"-m dscp {d}"),
)
XT_PROTOCOL_MATCHES = {  # words that need `-p PROTO` first (iptables loads the protocol's match)
    "udp": ("--dport 53", "--dport 1:100", "! --dport 53", "--sport 1024:65535", "--sport 53",
            "-m multiport --dports 7,9,53", "-m multiport --ports 53,1024", "-m udp --dport 9"),
    "tcp": ("--dport 22", "--dport 1:100", "--syn", "! --syn", "--tcp-flags SYN,ACK SYN", "--tcp-flags ALL RST",
            "-m tcp --tcp-flags FIN,SYN,RST,ACK ACK", "-m multiport --dports 22,80", "--sport 40000"),
    "icmp": ("--icmp-type echo-request", "--icmp-type 3/3", "--icmp-type destination-unreachable",
             "! --icmp-type echo-reply", "-m icmp --icmp-type 8", "--icmp-type timestamp-request"),
}
XT_TARGETS = {  # by table: (target, protocol it needs or None)
    "raw": (("ACCEPT", None), ("DROP", None), ("NOTRACK", None), ("CT --notrack", None),
            ("MARK --set-mark 0x1", None)),
    "mangle": (("ACCEPT", None), ("DROP", None), ("RETURN", None), ("MARK --set-mark 0x1", None),
               ("MARK --set-xmark 0x2/0xff", None), ("CONNMARK --set-mark 0x1", None),
               ("CONNMARK --save-mark", None), ("CONNMARK --restore-mark", None), ("TTL --ttl-set 1", None),
               ("TTL --ttl-dec 1", None), ("TTL --ttl-inc 1", None), ("DSCP --set-dscp-class cs1", None),
               ("TOS --set-tos 0x10", None)),
    "filter": (("ACCEPT", None), ("DROP", None), ("RETURN", None), ("REJECT", None),
               ("REJECT --reject-with icmp-host-unreachable", None),
               ("REJECT --reject-with icmp-net-unreachable", None),
               ("REJECT --reject-with icmp-admin-prohibited", None),
               ("REJECT --reject-with icmp-net-prohibited", None),
               ("REJECT --reject-with icmp-proto-unreachable", None),
               ("REJECT --reject-with tcp-reset", "tcp"), ("MARK --set-mark 0x1", None),
               ("CONNMARK --save-mark", None)),
}
XT_NAT_TARGETS = {  # nat: by chain (the NAT targets' hooks: xt_nat.c, xt_MASQUERADE.c, xt_REDIRECT.c)
    "PREROUTING": (("DNAT --to-destination 10.0.2.2", None), ("DNAT --to-destination 10.0.1.2:53", "udp"),
                   ("REDIRECT --to-ports 9", "udp"), ("REDIRECT", None), ("ACCEPT", None), ("RETURN", None)),
    "OUTPUT": (("DNAT --to-destination 10.0.2.2", None), ("REDIRECT --to-ports 9", "udp"), ("ACCEPT", None)),
    "POSTROUTING": (("MASQUERADE", None), ("MASQUERADE --to-ports 2000-2010", "udp"),
                    ("SNAT --to-source 10.0.1.1", None), ("SNAT --to-source 10.0.1.1:3000-3005", "udp"),
                    ("RETURN", None)),
    "INPUT": (("SNAT --to-source 10.0.0.1", None), ("ACCEPT", None)),
}
REJECT_CHAINS = frozenset({"INPUT", "FORWARD", "OUTPUT"})  # xt_REJECT.c: .hooks


def _xt_key(word: str) -> str:
    """The option or match module a word of XT_MATCHES sets."""
    parts = word.removeprefix("! ").split()
    return " ".join(parts[:2]) if parts[0] == "-m" else parts[0]


@st.composite
def xt_rule(draw, table: str, chain: str, user_chain: str | None = None, hooks: str = "") -> str:
    """One `-t TABLE -A CHAIN ...` line: a protocol perhaps, up to three matches, a
    target the table and chain take (`hooks`: the base chain a user chain hangs
    off, for where -i / -o may be matched)."""
    where = hooks or chain
    if table == "nat":
        target, needs = draw(st.sampled_from(XT_NAT_TARGETS[chain]))
    else:
        targets = [t for t in XT_TARGETS[table] if not t[0].startswith("REJECT") or where in REJECT_CHAINS]
        if user_chain is not None:
            targets.append((user_chain, None))
        target, needs = draw(st.sampled_from(targets))
    proto = needs or draw(st.sampled_from((None, None, "udp", "tcp", "icmp")))
    words = [f"-p {proto}"] if proto is not None else []
    if proto is not None and draw(st.booleans()):
        words.append(draw(st.sampled_from(XT_PROTOCOL_MATCHES[proto])))
    if where in XT_HAS_IIF and draw(st.integers(0, 3)) == 0:
        words.append(draw(st.sampled_from(("-i p0", "-i p1", "-i p2", "! -i p0", "-i p+"))))
    if where in XT_HAS_OIF and draw(st.integers(0, 3)) == 0:
        words.append(draw(st.sampled_from(("-o p0", "-o p1", "-o p2", "! -o p2", "-o p+"))))
    seen = set()
    for word in draw(st.lists(st.one_of(XT_MATCHES), max_size=3)):
        if _xt_key(word) not in seen:  # iptables takes each option and match module once
            seen.add(_xt_key(word))
            words.append(word)
    return " ".join([f"-t {table} -A {chain}", *words, "-j", target])


@st.composite
def xtables(draw) -> list[str]:
    """iptables lines: rules in base chains of the four tables, perhaps a user chain
    of the filter table that a rule jumps to, perhaps a filter chain's policy DROP."""
    lines = []
    user = draw(st.sampled_from((None, None, "u0")))
    hooks = ""
    if user is not None:
        hooks = draw(st.sampled_from(XT_CHAINS["filter"]))
        lines.append(f"-t filter -N {user}")
        lines += draw(st.lists(xt_rule("filter", user, hooks=hooks), min_size=1, max_size=2))
    for _ in range(draw(st.integers(1, 4))):
        table = draw(st.sampled_from(("filter", "filter", "nat", "mangle", "raw")))
        chain = draw(st.sampled_from(XT_CHAINS[table]))
        jump = user if table == "filter" and chain == hooks else None
        lines.append(draw(xt_rule(table, chain, jump)))
    if user is not None and not any(line.endswith(f"-j {user}") for line in lines):
        lines.append(draw(xt_rule("filter", hooks, user)).rsplit(" -j ", 1)[0] + f" -j {user}")
    if draw(st.integers(0, 4)) == 0:
        lines.append(f"-t filter -P {draw(st.sampled_from(XT_CHAINS['filter']))} DROP")
    return lines


# programs/ objects that need no map filled: XDP (section xdp), TC (section tc; tc_verdict
# returns the first UDP payload byte as its action). Not xdp_adjust: the lab knows a packet by
# its IPv4 header, so the drop of one whose header XDP replaced (IPIP) is a packet of its own there
XDP_PROGRAMS = ("xdp_pass", "xdp_drop_udp", "xdp_tx_reflector", "xdp_fib_forward", "xdp_counters")
TC_PROGRAMS = ("tc_drop_udp", "tc_set_mark", "tc_verdict")


@st.composite
def programs(draw) -> list[Program]:
    """One or two programs, at most one XDP program per port (native and generic
    exclude each other: dev_xdp_attach()) and one per TC direction of a port."""
    drawn: dict[tuple[str, str], Program] = {}
    for _ in range(draw(st.integers(1, 2))):
        port = draw(st.sampled_from(PORTS)).name
        hook = draw(st.sampled_from(("xdp", "xdpgeneric", "ingress", "egress")))
        if hook.startswith("xdp"):
            program = Program(port, hook, draw(st.sampled_from(XDP_PROGRAMS)), "xdp")
        else:
            program = Program(port, hook, draw(st.sampled_from(TC_PROGRAMS)), "tc")
        drawn.setdefault((port, hook.removesuffix("generic")), program)
    return list(drawn.values())


COMMANDS = (
    "sysctl -w net.ipv4.conf.all.rp_filter=1", "sysctl -w net.ipv4.conf.p0.rp_filter=2",
    "sysctl -w net.ipv4.ip_forward=0", "sysctl -w net.ipv4.icmp_echo_ignore_all=1",
    "sysctl -w net.ipv4.icmp_echo_ignore_broadcasts=0", "sysctl -w net.ipv4.conf.all.accept_local=1",
    "sysctl -w net.ipv4.ip_default_ttl=32", "sysctl -w net.ipv4.conf.all.send_redirects=0",
    "ip route add blackhole 192.0.2.0/24", "ip route add unreachable 192.0.2.0/24",
    "ip route add prohibit 198.51.100.0/24", "ip route add 198.51.100.0/24 via 10.0.2.2",
    "sysctl -w net.ipv4.conf.all.route_localnet=1", "sysctl -w net.ipv4.conf.all.accept_source_route=1",
    "sysctl -w net.ipv4.conf.p1.forwarding=0", "sysctl -w net.ipv4.conf.p0.bc_forwarding=1",
    "sysctl -w net.ipv4.ip_no_pmtu_disc=1", "ip link set p2 mtu 68", "ip link set p2 mtu 576",
    "ip addr add 10.0.1.5/24 dev p1", "ip route add local 203.0.113.0/24 dev lo",
)

# TCP listeners an application holds on the DUT: a SYN to their port gets a SYN-ACK, to another a RST
LISTENERS = ("tcp 22", "tcp 80")

SOURCES = ("host", "10.0.1.2", "192.0.2.7", "0.0.0.0", "127.0.0.1", "10.0.0.1", "224.0.0.5")
DESTINATIONS = ("dut", "10.0.1.1", "10.0.1.2", "10.0.2.2", "192.0.2.9", "198.51.100.1", "203.0.113.1",
                "10.0.0.255", "255.255.255.255", "224.0.0.1", "127.0.0.1")


@st.composite
def l4(draw):
    kind = draw(st.sampled_from(("udp", "tcp", "icmp")))
    if kind == "udp":
        return UDP(sport=draw(st.sampled_from((1024, 53, 68))), dport=draw(st.sampled_from((53, 9, 7, 33434)))) / \
            draw(st.one_of(st.binary(max_size=40), st.integers(100, 600).map(bytes)))  # longer than a small MTU
    if kind == "tcp":
        return TCP(sport=draw(st.sampled_from((40000, 22))), dport=draw(st.sampled_from((22, 80, 9))),
                   flags=draw(st.sampled_from(("S", "SA", "A", "R", "FA", "PA"))),
                   seq=draw(st.integers(0, 2**32 - 1)), ack=draw(st.integers(0, 2**32 - 1)))
    icmp_type = draw(st.sampled_from((8, 0, 3, 13)))
    quote = bytes(IP(src="10.0.1.2", dst="10.0.0.2") / UDP(sport=9, dport=53)) if icmp_type == 3 else b""
    return ICMP(type=icmp_type, code=draw(st.sampled_from((0, 3))) if icmp_type == 3 else 0, id=7, seq=1) / \
        (quote or draw(st.binary(max_size=24)))


CORRUPTIONS = ("none",) * 6 + ("truncate", "ihl", "total_length", "checksum", "fragment", "version")
# IPv4 options a wire delivers well formed (ip_options_compile()): none mostly, an empty
# two-slot record route, a router alert, a loose source route to h2, no-ops to an end of list
NOP, EOL = b"\x01", b"\x00"
OPTIONS = (b"",) * 5 + (bytes([7, 11, 4]) + bytes(8) + NOP, bytes([148, 4, 0, 0]),
                        bytes([131, 7, 4, 10, 0, 2, 2]) + NOP, NOP * 3 + EOL)


@st.composite
def frames(draw, host: Host) -> bytes:
    src = draw(st.sampled_from(SOURCES))
    dst = draw(st.sampled_from(DESTINATIONS))
    ip = IP(src=host.ip if src == "host" else src, dst=host.dut_ip if dst == "dut" else dst,
            ttl=draw(st.sampled_from((64, 64, 1, 0, 2))), id=draw(st.integers(1, 0xFFFF)),
            flags=draw(st.sampled_from(("", "", "DF"))), tos=draw(st.sampled_from((0, 0, 0, 0xB8, 0x03))))
    frame = _with_options(bytes(Ether(src=host.mac, dst=host.port.mac) / ip / draw(l4())),
                          draw(st.sampled_from(OPTIONS)))
    corruption = draw(st.sampled_from(CORRUPTIONS))
    if corruption == "truncate":
        frame = frame[:draw(st.integers(14, len(frame) - 1))]
    elif corruption == "ihl":
        frame[14] = 0x40 | draw(st.sampled_from((0, 4, 6, 15)))
    elif corruption == "total_length":
        frame[16:18] = draw(st.sampled_from((0, 19, len(frame) - 14 + 8, 0xFFFF))).to_bytes(2, "big")
    elif corruption == "checksum":
        frame[24] ^= 0xFF
    elif corruption == "fragment":
        frame[20:22] = draw(st.sampled_from((0x2000, 0x0001, 0x2003))).to_bytes(2, "big")
    elif corruption == "version":
        frame[14] = (draw(st.sampled_from((5, 6))) << 4) | 5
    if corruption in ("fragment", "total_length") or (corruption == "ihl" and frame[14] & 0xF >= 5):
        frame[24:26] = b"\0\0"  # a valid checksum over the changed header: the change is what is tested
        frame[24:26] = _ip_checksum(frame[14:14 + 4 * (frame[14] & 0xF)]).to_bytes(2, "big")
    return bytes(frame)


def _with_options(frame: bytes, options: bytes) -> bytearray:
    """`frame` with `options` (a multiple of 4 bytes) after its 20-byte IPv4 header: IHL,
    total length and header checksum made to fit (the L4 checksum covers no option)."""
    out = bytearray(frame[:34] + options + frame[34:])
    if options:
        out[14] = 0x40 | (5 + len(options) // 4)
        out[16:18] = (int.from_bytes(out[16:18], "big") + len(options)).to_bytes(2, "big")
        out[24:26] = b"\0\0"
        out[24:26] = _ip_checksum(out[14:34 + len(options)]).to_bytes(2, "big")
    return out


def _ip_checksum(header: bytes) -> int:
    data = bytes(header) + b"\0" * (len(header) & 1)
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


# routes of one prefix that one `ip route add` each refuses after the other (File exists)
CLASHING = (("ip route add unreachable 192.0.2.0/24", "ip route add blackhole 192.0.2.0/24"),
            ("ip route add prohibit 198.51.100.0/24", "ip route add 198.51.100.0/24 via 10.0.2.2"),
            ("ip -6 route add unreachable 2001:db8:9::/48", "ip -6 route add blackhole 2001:db8:9::/48"),
            ("ip -6 route add prohibit 2001:db8:8::/64", "ip -6 route add 2001:db8:8::/64 via 2001:db8:2::2"))


@st.composite
def scenarios(draw) -> Scenario:
    port = draw(st.sampled_from(PORTS))
    ipv6 = draw(st.booleans())
    commands = draw(st.lists(st.sampled_from(COMMANDS + COMMANDS6 if ipv6 else COMMANDS), max_size=3, unique=True))
    # frames into p2 stay within its MTU (both targets refuse a frame over MTU + 18 into a veth)
    commands = [c for c in commands if port.name != "p2" or not c.startswith("ip link set p2 mtu")]
    for dropped, kept in CLASHING:
        if dropped in commands and kept in commands:
            commands.remove(dropped)
    families = ("ip6", "ip6", "inet", "ip") if ipv6 else ("ip", "ip", "ip", "inet")
    drawn_chains = draw(st.lists(st.sampled_from(families).flatmap(chains), max_size=3))
    host = Host(port)
    sent = draw(st.lists(st.one_of(frames6(host), frames6(host), frames(host)) if ipv6 else frames(host),
                         min_size=1, max_size=3))
    drawn_xtables = draw(xtables()) if draw(st.integers(0, 2)) == 0 else []
    # the lab ties a program's runs to an IPv6 frame's journey by position alone (xdpstats._journey_of():
    # no IP ID to key it), so IPv6 scenarios have none
    drawn_programs = draw(programs()) if draw(st.integers(0, 3)) == 0 and not ipv6 else []
    sockets = draw(st.lists(st.sampled_from(LISTENERS + LISTENERS6 if ipv6 else LISTENERS), max_size=2,
                            unique_by=lambda spec: spec.split()[1]))  # an IPv6 wildcard takes IPv4's port too
    return Scenario(tuple(commands), tuple(drawn_chains), port.name, tuple(sent), tuple(drawn_xtables),
                    tuple(drawn_programs), tuple(sockets), ipv6)
