"""iptables-nft (iptables 1.8.9, nft variant): xtables rules kept in nf_tables
(iptables/nft.c, nft-ipv4.c, nft-ipv6.c, nft-shared.c, extensions/libxt_*.c).
iptables and ip6tables differ in an `XtFamily`: the nft family of their
tables (ip, ip6), addresses, the ICMP match (icmp, icmp6) and REJECT's codes;
messages name the program that runs (xt_params->program_name): they are
written with PROG and rendered by the front end.

An `XtRule` is a rule as iptables sees it: addresses, interfaces, protocol,
matches and a target. `nft_stmts()` is what iptables-nft puts in the kernel:
the same statements in its order (interfaces, addresses, `meta l4proto`, the
matches, a counter, the target), native nft expressions where iptables-nft
1.8.9 has them (tcp/udp ports and flags, -m state, -m mark, LOG, verdicts,
NOTRACK) and xt extensions (nft_compat) for the rest, which `nft list` shows as
their translation. Tables and builtin chains are created when first used, at
iptables-nft's priorities (raw -300, mangle -150, nat -100/+100, filter 0,
security 150 as 1.8.9 registers it; mangle OUTPUT is a route chain). The
XtRule is kept with the nft rule so `-S`, `-L` and iptables-save print it back
as iptables does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nf_tables import NftChain, NftRule, NftTable, Ruleset
from harness.mockkernel.netfilter.nft_exprs import (PAYLOAD_FIELDS, Counter, Ct, Log, Match, Meta, MetaSet, Nat,
                                                    Notrack, Payload, Prefix, Range, Reject, Stmt, Value, Verdict,
                                                    PrintCtx, Xt)
from harness.mockkernel.netfilter.nft_parser import ChainSpec

# table -> chain -> (hook, priority, chain type), in iptables' builtin order
TABLES = {
    "filter": {"INPUT": ("input", 0, "filter"), "FORWARD": ("forward", 0, "filter"),
               "OUTPUT": ("output", 0, "filter")},
    "nat": {"PREROUTING": ("prerouting", -100, "nat"), "INPUT": ("input", 100, "nat"),
            "OUTPUT": ("output", -100, "nat"), "POSTROUTING": ("postrouting", 100, "nat")},
    "mangle": {"PREROUTING": ("prerouting", -150, "filter"), "INPUT": ("input", -150, "filter"),
               "FORWARD": ("forward", -150, "filter"), "OUTPUT": ("output", -150, "route"),
               "POSTROUTING": ("postrouting", -150, "filter")},
    "raw": {"PREROUTING": ("prerouting", -300, "filter"), "OUTPUT": ("output", -300, "filter")},
    "security": {"INPUT": ("input", 150, "filter"), "FORWARD": ("forward", 150, "filter"),
                 "OUTPUT": ("output", 150, "filter")},
}
SAVE_ORDER = ("mangle", "security", "raw", "filter", "nat")  # enum nft_table_type
PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "ipv6-icmp"}  # getprotobynumber(), as -S and save print -p
CT_STATES = {"INVALID": 1, "ESTABLISHED": 2, "RELATED": 4, "NEW": 8, "UNTRACKED": 64}
CT_STATE_ORDER = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED")  # libxt_conntrack's
LOG_LEVELS = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug")
REJECT_CODES = {"icmp-net-unreachable": 0, "icmp-host-unreachable": 1, "icmp-proto-unreachable": 2,
                "icmp-port-unreachable": 3, "icmp-net-prohibited": 9, "icmp-host-prohibited": 10,
                "icmp-admin-prohibited": 13}
REJECT_ALIASES = {"net-unreach": "icmp-net-unreachable", "host-unreach": "icmp-host-unreachable",
                  "proto-unreach": "icmp-proto-unreachable", "port-unreach": "icmp-port-unreachable",
                  "net-prohib": "icmp-net-prohibited", "host-prohib": "icmp-host-prohibited",
                  "admin-prohib": "icmp-admin-prohibited", "tcp-rst": "tcp-reset"}
REJECT6_CODES = {"icmp6-no-route": 0, "icmp6-adm-prohibited": 1, "icmp6-addr-unreachable": 3,
                 "icmp6-port-unreachable": 4}  # libip6t_REJECT.c, and nft_reject_ipv6's ICMPv6 codes
REJECT6_ALIASES = {"no-route": "icmp6-no-route", "adm-prohibited": "icmp6-adm-prohibited",
                   "addr-unreach": "icmp6-addr-unreachable", "port-unreach": "icmp6-port-unreachable",
                   "tcp-rst": "tcp-reset"}
TCP_FLAG_NAMES = ("FIN", "SYN", "RST", "PSH", "ACK", "URG")
PROG = "{prog}"  # the program's name in a message: iptables, ip6tables, iptables-restore, ...


@dataclass(frozen=True)
class XtFamily:
    """What iptables and ip6tables do differently (nft-ipv4.c, nft-ipv6.c)."""

    prog: str
    nft_family: str  # the nf_tables family of its tables
    address: type  # IPv4Address or IPv6Address
    icmp: str  # the ICMP match: icmp, icmp6
    reject_codes: dict  # --reject-with name -> ICMP(v6) code
    reject_aliases: dict
    reject_kind: str  # nft's reject kind for those codes: icmp, icmpv6
    reject_default: str
    quiet_reject: int  # the code nft lists as a bare `reject`

    @property
    def bits(self) -> int:
        return self.address(0).max_prefixlen

    @property
    def any(self) -> str:
        return f"{self.address(0)}/0"

    def address_text(self, addr: int) -> str:
        return str(self.address(addr))


IPV4 = XtFamily("iptables", "ip", IPv4Address, "icmp", REJECT_CODES, REJECT_ALIASES, "icmp", "icmp-port-unreachable",
                3)
IPV6 = XtFamily("ip6tables", "ip6", IPv6Address, "icmp6", REJECT6_CODES, REJECT6_ALIASES, "icmpv6",
                "icmp6-port-unreachable", 4)


def _field(proto: str, name: str) -> Payload:
    return Payload((PAYLOAD_FIELDS[proto][name],))


def _inv(invert: bool) -> str:
    return "! " if invert else ""


# ------------------------------------------------------------------ matches

class XtMatch:
    """One `-m NAME ...` (or an implicit protocol match)."""

    name = ""

    def save(self) -> str:
        """Its options as iptables-save prints them."""
        raise NotImplementedError

    def listing(self) -> str:
        """Its column in `iptables -L -n`."""
        raise NotImplementedError

    def stmts(self) -> list[Stmt]:
        raise NotImplementedError


@dataclass
class PortMatch(XtMatch):
    """-m tcp / -m udp: --sport, --dport (a port or low:high), tcp --tcp-flags / --syn."""

    name: str
    sport: tuple | None = None  # (low, high, invert)
    dport: tuple | None = None
    flags: tuple | None = None  # (mask, compare, invert)

    def save(self) -> str:
        out = f"-m {self.name}"
        for opt, ports in (("--sport", self.sport), ("--dport", self.dport)):
            if ports:
                low, high, inv = ports
                out += f" {_inv(inv)}{opt} {low}" + (f":{high}" if high != low else "")
        if self.flags:
            mask, cmp, inv = self.flags
            out += f" {_inv(inv)}--tcp-flags {_flag_names(mask)} {_flag_names(cmp)}"
        return out

    def listing(self) -> str:
        parts = [self.name]
        for short, ports in (("spt", self.sport), ("dpt", self.dport)):
            if ports:
                low, high, inv = ports
                bang = "!" if inv else ""
                parts.append(f"{short}s:{bang}{low}:{high}" if high != low else f"{short}:{bang}{low}")
        if self.flags:
            mask, cmp, inv = self.flags
            parts.append(f"flags:{'!' if inv else ''}0x{mask:02X}/0x{cmp:02X}")
        return " ".join(parts)

    def stmts(self) -> list[Stmt]:
        out: list[Stmt] = []
        for fld, ports in (("sport", self.sport), ("dport", self.dport)):
            if ports:
                low, high, inv = ports
                out.append(Match(_field(self.name, fld), "!=" if inv else "==",
                                 Value(low) if low == high else Range(low, high)))
        if self.flags:
            mask, cmp, inv = self.flags
            out.append(Match(_field("tcp", "flags"), "!=" if inv else "==", Value(cmp), mask=mask))
        return out


def _flag_names(bits: int) -> str:
    if bits == 0x3F:
        return "ALL"
    names = [n for i, n in enumerate(TCP_FLAG_NAMES) if bits >> i & 1]
    return ",".join(names) if names else "NONE"


@dataclass
class IcmpMatch(XtMatch):
    name = "icmp"
    type: int = 0
    code: tuple | None = None  # (low, high) when given
    invert: bool = False

    def save(self) -> str:
        code = f"/{self.code[0]}" if self.code else ""
        return f"-m icmp {_inv(self.invert)}--icmp-type {self.type}{code}"

    def listing(self) -> str:
        code = f" code {self.code[0]}" if self.code else ""
        return f"icmptype {'!' if self.invert else ''}{self.type}{code}"

    def stmts(self) -> list[Stmt]:
        op = "!=" if self.invert else "=="
        text = f"icmp type {'!= ' if self.invert else ''}{types.icmp_type.format(self.type)}"
        return [Xt(text, Match(_field("icmp", "type"), op, Value(self.type)))]


@dataclass
class Icmp6Match(XtMatch):
    """-m icmp6 --icmpv6-type TYPE[/CODE] (libip6t_icmp6.c): nft 1.0.6 translates
    a type alone to `icmpv6 type`, and shows one with a code as `xt match icmp6`."""

    name = "icmp6"
    type: int = 0
    code: tuple | None = None  # (low, high) when given
    invert: bool = False

    def save(self) -> str:
        code = f"/{self.code[0]}" if self.code else ""
        return f"-m icmp6 {_inv(self.invert)}--icmpv6-type {self.type}{code}"

    def listing(self) -> str:  # icmp6_print(): " ipv6-icmp", then " !" when inverted, then "type N"
        code = f" code {self.code[0]}" if self.code else ""
        return f"ipv6-icmp{' !' if self.invert else ''}type {self.type}{code}"

    def stmts(self) -> list[Stmt]:
        op = "!=" if self.invert else "=="
        if self.code:
            type_code = Payload((PAYLOAD_FIELDS["icmpv6"]["type"], PAYLOAD_FIELDS["icmpv6"]["code"]))
            return [Xt("xt match icmp6", Match(type_code, op, Value(self.type << 8 | self.code[0])))]
        text = f"icmpv6 type {'!= ' if self.invert else ''}{types.icmpv6_type.format(self.type)}"
        return [Xt(text, Match(_field("icmpv6", "type"), op, Value(self.type)))]


@dataclass
class StateMatch(XtMatch):
    """-m state --state (native ct state in 1.8.9) and -m conntrack --ctstate (xt)."""

    name: str  # state | conntrack
    states: tuple = ()
    invert: bool = False

    @property
    def bits(self) -> int:
        return sum(CT_STATES[s] for s in set(self.states))

    def ordered(self) -> list[str]:
        return [s for s in CT_STATE_ORDER if s in self.states]

    def save(self) -> str:
        opt = "--state" if self.name == "state" else "--ctstate"
        return f"-m {self.name} {_inv(self.invert)}{opt} {','.join(self.ordered())}"

    def listing(self) -> str:
        label = "state" if self.name == "state" else "ctstate"
        return f"{'! ' if self.invert else ''}{label} {','.join(self.ordered())}"

    def stmts(self) -> list[Stmt]:
        match = Match(Ct("state"), "!" if self.invert else "implicit", Value(self.bits))
        if self.name == "state":
            return [match]
        text = "ct state " + ("!= " if self.invert else "") + ",".join(s.lower() for s in self.ordered())
        return [Xt(text, match)]


@dataclass
class CommentMatch(XtMatch):
    name = "comment"
    text: str = ""

    def save(self) -> str:
        return f"-m comment --comment {_quote(self.text)}"

    def listing(self) -> str:
        return f"/* {self.text} */"

    def stmts(self) -> list[Stmt]:
        return [Xt("")]  # nft 1.0.6 prints iptables-nft's comment match as nothing


@dataclass
class MarkMatch(XtMatch):
    name = "mark"
    value: int = 0
    mask: int = 0xFFFFFFFF
    invert: bool = False

    def save(self) -> str:
        mask = f"/0x{self.mask:x}" if self.mask != 0xFFFFFFFF else ""
        return f"-m mark {_inv(self.invert)}--mark 0x{self.value:x}{mask}"

    def listing(self) -> str:
        mask = f"/0x{self.mask:x}" if self.mask != 0xFFFFFFFF else ""
        return f"mark match {'! ' if self.invert else ''}0x{self.value:x}{mask}"

    def stmts(self) -> list[Stmt]:
        op = "!=" if self.invert else "=="
        if self.mask == 0xFFFFFFFF:
            return [Match(Meta("mark"), op, Value(self.value))]
        return [Match(Meta("mark"), op, Value(self.value), mask=self.mask)]


def _quote(text: str) -> str:
    return f'"{text}"' if not text or any(c in text for c in " \t\"'") else text


# ------------------------------------------------------------------ targets

@dataclass
class XtTarget:
    """`-j NAME [options]` (or `-g CHAIN`)."""

    name: str
    opts: dict = field(default_factory=dict)
    goto: bool = False
    family: XtFamily = IPV4

    def save(self) -> str:
        if self.goto:
            return f"-g {self.name}"
        out = f"-j {self.name}"
        o = self.opts
        if self.name == "LOG":
            if "prefix" in o:
                out += f" --log-prefix {_quote(o['prefix'])}"
            if o.get("level", 4) != 4:
                out += f" --log-level {o['level']}"
        elif self.name == "MARK":
            out += f" --set-xmark 0x{o['value']:x}/0x{o['mask']:x}"
        elif self.name in ("DNAT", "SNAT"):
            out += f" --to-{'destination' if self.name == 'DNAT' else 'source'} {o['to']}"
        elif self.name in ("MASQUERADE", "REDIRECT"):
            if "ports" in o:
                out += f" --to-ports {_port_text(o['ports'])}"
            if o.get("random"):
                out += " --random"
        elif self.name == "REJECT":
            out += f" --reject-with {o.get('with', self.family.reject_default)}"
        elif self.name == "CT":
            out += " --notrack"
        return out

    def listing(self) -> str:
        o = self.opts
        if self.name == "LOG":
            prefix = f' prefix "{o["prefix"]}"' if "prefix" in o else ""
            return f"LOG flags 0 level {o.get('level', 4)}{prefix}"
        if self.name == "MARK":
            return _mark_listing(o["value"], o["mask"])
        if self.name in ("DNAT", "SNAT"):
            return f"to:{o['to']}"
        if self.name == "MASQUERADE":
            ports = f"masq ports: {_port_text(o['ports'])}" if "ports" in o else ""
            return " ".join(p for p in (ports, "random" if o.get("random") else "") if p)
        if self.name == "REDIRECT":
            ports = f"redir ports {_port_text(o['ports'])}" if "ports" in o else ""
            return " ".join(p for p in (ports, "random" if o.get("random") else "") if p)
        if self.name == "REJECT":
            return f"reject-with {o.get('with', self.family.reject_default)}"
        if self.name == "CT":
            return "NOTRACK"
        return ""

    def stmts(self) -> list[Stmt]:
        name, o = self.name, self.opts
        if name in ("ACCEPT", "DROP", "RETURN"):
            return [Verdict(name.lower())]
        if name == "LOG":
            return [Log(o.get("prefix"), LOG_LEVELS[o.get("level", 4)])]
        if name == "MARK":
            keep = ~o["mask"] & 0xFFFFFFFF
            text = f"meta mark set 0x{o['value']:x}" if o["mask"] == 0xFFFFFFFF else \
                f"meta mark set mark and 0x{keep:x} xor 0x{o['value']:x}"
            return [Xt(text, MetaSet("mark", o["value"], keep=keep))]
        if name in ("DNAT", "SNAT"):
            nat = Nat(name.lower(), None, o["addr"], o.get("nat_ports"), ())
            if self.family is IPV6:
                nat.addr_type = types.ipv6_addr
                return [Xt(_nat6_xlat(nat), nat)]
            return [Xt(nat.text(PrintCtx()), nat)]
        if name in ("MASQUERADE", "REDIRECT"):
            nat = Nat(name.lower(), None, None, o.get("ports"), ("random",) if o.get("random") else ())
            return [Xt(nat.text(PrintCtx()), nat)]
        if name == "REJECT":
            family = self.family
            kind = o.get("with", family.reject_default)
            if kind == "tcp-reset":
                return [Xt("reject with tcp reset", Reject("tcp reset"))]
            code = family.reject_codes[kind]
            reject = Reject(family.reject_kind, code)
            text = "reject" if code == family.quiet_reject else \
                f"reject with {family.reject_kind} type {reject.CODE_TYPES[family.reject_kind].format(code)}"
            return [Xt(text, reject)]
        if name in ("NOTRACK", "CT"):
            return [Xt("notrack", Notrack())]
        return [Verdict("goto" if self.goto else "jump", name)]


def _nat6_xlat(nat: Nat) -> str:
    """libxt_NAT.c's translation of an IPv6 range: one pair of brackets around
    the addresses when a port follows (`dnat to [a-b]:80`)."""
    text = nat.kind
    if nat.addr:
        low, high = (types.ipv6_addr.format(a) for a in nat.addr)
        addrs = low if low == high else f"{low}-{high}"
        text += f" to [{addrs}]" if nat.ports else f" to {addrs}"
    if nat.ports:
        low_port, high_port = nat.ports
        text += f":{low_port}" if low_port == high_port else f":{low_port}-{high_port}"
    return text


def _mark_listing(value: int, mask: int) -> str:
    """libxt_MARK's mark_tg_print(): the operation the value/mask pair amounts to."""
    if value == 0:
        return f"MARK and 0x{~mask & 0xFFFFFFFF:x}"
    if value == mask:
        return f"MARK or 0x{value:x}"
    if mask == 0:
        return f"MARK xor 0x{value:x}"
    if mask == 0xFFFFFFFF:
        return f"MARK set 0x{value:x}"
    return f"MARK xset 0x{value:x}/0x{mask:x}"


def _port_text(ports: tuple) -> str:
    return str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}-{ports[1]}"


# ------------------------------------------------------------------ rules

@dataclass
class XtRule:
    """struct iptables_command_state: one rule."""

    src: tuple | None = None  # (addr, plen, invert)
    dst: tuple | None = None
    iniface: tuple | None = None  # (name, invert); `eth+` is a prefix
    outiface: tuple | None = None
    proto: tuple | None = None  # (number, invert)
    matches: list[XtMatch] = field(default_factory=list)
    target: XtTarget | None = None
    family: XtFamily = IPV4

    def save(self, chain: str) -> str:
        """`-A CHAIN ...` as iptables-save and -S print it."""
        parts = [f"-A {chain}"]
        for opt, addr in (("-s", self.src), ("-d", self.dst)):
            if addr:
                parts.append(f"{_inv(addr[2])}{opt} {self.family.address_text(addr[0])}/{addr[1]}")
        for opt, iface in (("-i", self.iniface), ("-o", self.outiface)):
            if iface:
                parts.append(f"{_inv(iface[1])}{opt} {iface[0]}")
        if self.proto:
            parts.append(f"{_inv(self.proto[1])}-p {PROTO_NAMES.get(self.proto[0], self.proto[0])}")
        parts += [m.save() for m in self.matches]
        if self.target is not None:
            parts.append(self.target.save())
        return " ".join(parts)

    def nft_stmts(self) -> list[Stmt]:
        """What iptables-nft adds to the kernel (nft_ipv4_add(), nft_ipv6_add())."""
        out: list[Stmt] = []
        for key, iface in (("iifname", self.iniface), ("oifname", self.outiface)):
            if iface:
                name = iface[0][:-1] + "*" if iface[0].endswith("+") else iface[0]
                out.append(Match(Meta(key), "!=" if iface[1] else "==", Value(name)))
        for fld, addr in (("saddr", self.src), ("daddr", self.dst)):
            if addr and (addr[1] or addr[2]):
                value = Value(addr[0]) if addr[1] == self.family.bits else Prefix(addr[0], addr[1])
                out.append(Match(_field(self.family.nft_family, fld), "!=" if addr[2] else "==", value))
        if self.proto:
            out.append(Match(Meta("l4proto"), "!=" if self.proto[1] else "==", Value(self.proto[0])))
        for match in self.matches:
            out += match.stmts()
        out.append(Counter())
        if self.target is not None:
            out += self.target.stmts()
        return out

    def same(self, other: "XtRule") -> bool:
        """-D by specification: the same rule, whatever order it was written in."""
        return self.save("") == other.save("")


# ------------------------------------------------------------------ commands

VERSION = f"{PROG} v1.8.9 (nf_tables)"
NO_CHAIN = f"{PROG}: No chain/target/match by that name."


class XtError(Exception):
    """What iptables prints on failure, and its exit status."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.message, self.status = message, status

    def render(self, prog: str) -> str:
        """The message as `prog` prints it."""
        return self.message.replace(PROG, prog)


def usage_error(message: str) -> XtError:
    return XtError(f"{VERSION}: {message}\nTry `{PROG} -h' or '{PROG} --help' for more information.", 2)


class XtTables:
    """iptables-nft's view of the ruleset: `ip` (`ip6`) tables named after xtables
    tables, base chains created on first use (nft_xt_builtin_init)."""

    def __init__(self, ruleset: Ruleset, table: str, family: XtFamily = IPV4):
        self.ruleset, self.name, self.builtins, self.family = ruleset, table, TABLES[table], family
        self.table = ruleset.find(family.nft_family, table)

    def ensure_table(self) -> NftTable:
        if self.table is None:
            self.ruleset.table_handle += 1
            self.table = NftTable(self.family.nft_family, self.name, self.ruleset.table_handle)
            self.ruleset.tables.append(self.table)
        return self.table

    def chain(self, name: str, create_builtin: bool = False):
        """The chain, creating a builtin one when asked; None if missing."""
        chain = self.table.chains.get(name) if self.table is not None else None
        if chain is None and create_builtin and name in self.builtins:
            hook, priority, chain_type = self.builtins[name]
            table = self.ensure_table()
            chain = NftChain(name, table.alloc_handle(), ChainSpec(chain_type, hook, priority), stats=Counter())
            table.chains[name] = chain
        return chain

    def user_chains(self) -> list:
        """The table's user chains, by name (as iptables-nft lists them)."""
        if self.table is None:
            return []
        return sorted((c for name, c in self.table.chains.items() if name not in self.builtins),
                      key=lambda c: c.name)

    def delete_table(self) -> None:
        """iptables-nft-restore's flush: the table goes, to be made again."""
        if self.table is not None:
            self.ruleset.tables.remove(self.table)
            self.table = None

    def references(self, name: str) -> int:
        return sum(1 for c in self.table.chains.values() for r in c.rules
                   if r.xt is not None and r.xt.target is not None and r.xt.target.name == name)

    # -- rules

    def add_rule(self, chain_name: str, rule: XtRule, position: int | None) -> None:
        """-A (position None) or -I (1-based position)."""
        chain = self.writable_chain(chain_name)
        self.check_target(chain_name, rule)
        if position is not None and position > len(chain.rules) + 1:
            raise XtError(f"{PROG}: Index of insertion too big.")
        nft_rule = NftRule(self.table.alloc_handle(), rule.nft_stmts(), xt=rule)
        chain.rules.insert(len(chain.rules) if position is None else position - 1, nft_rule)

    def writable_chain(self, name: str):
        chain = self.chain(name, create_builtin=True)
        if chain is None:
            raise XtError(NO_CHAIN)
        return chain

    def check_target(self, chain_name: str, rule: XtRule) -> None:
        target = rule.target
        if target is None or target.name in XT_TARGETS:
            if target is not None and not _target_allowed(self.name, chain_name, target.name):
                raise XtError(f"{VERSION}:  RULE_APPEND failed (Invalid argument): rule in chain {chain_name}", 4)
            return
        if self.chain(target.name) is None:
            raise usage_error(f"Chain '{target.name}' does not exist")

    def delete_rule(self, chain_name: str, rule: XtRule | None, number: int | None) -> None:
        chain = self.chain(chain_name)
        if rule is not None:
            self.check_target(chain_name, rule)
        if chain is None:
            raise XtError(NO_CHAIN)
        if number is not None:
            if number > len(chain.rules) or number < 1:
                raise XtError(f"{PROG}: Index of deletion too big.")
            del chain.rules[number - 1]
            return
        for i, existing in enumerate(chain.rules):
            if existing.xt is not None and existing.xt.same(rule):
                del chain.rules[i]
                return
        raise XtError(f"{PROG}: Bad rule (does a matching rule exist in that chain?).")

    def flush(self, chain_name: str | None) -> None:
        if chain_name is None:
            for chain in (self.table.chains.values() if self.table else ()):
                chain.rules.clear()
            return
        chain = self.chain(chain_name)
        if chain is None:
            raise XtError(NO_CHAIN)
        chain.rules.clear()

    # -- chains

    def new_chain(self, name: str) -> None:
        if name in self.builtins or self.chain(name) is not None:
            raise XtError(f"{PROG}: Chain already exists.")
        table = self.ensure_table()
        table.chains[name] = NftChain(name, table.alloc_handle())

    def delete_chain(self, name: str | None) -> None:
        """-X CHAIN, or -X: every user chain, and the builtin chains left
        empty with an ACCEPT policy (iptables-nft removes those too)."""
        if name is None:
            for chain in self.user_chains():
                self.delete_chain(chain.name)
            for chain in list(self.table.chains.values() if self.table else ()):
                if not chain.rules and chain.policy == "accept":
                    del self.table.chains[chain.name]
            return
        chain = self.chain(name)
        if name in self.builtins and chain is not None or chain is not None and (chain.rules or self.references(name)):
            raise XtError(f"{VERSION}:  CHAIN_DEL failed (Device or resource busy): chain {name}", 4)
        if chain is None:
            raise XtError(NO_CHAIN)
        del self.table.chains[name]

    def policy(self, name: str, verdict: str) -> None:
        if name not in self.builtins:
            raise XtError(f"{PROG}: Bad built-in chain name.")
        if verdict not in ("ACCEPT", "DROP"):
            raise XtError(f"{PROG}: Bad policy name. Run `dmesg' for more information.")
        if self.name == "nat" and verdict == "DROP":
            raise XtError(f'{VERSION}: \nThe "nat" table is not intended for filtering, the use of DROP is '
                          "therefore inhibited.\n\n\nTry `{PROG} -h' or '{PROG} --help' for more information.", 2)
        self.chain(name, create_builtin=True).policy = verdict.lower()

    # -- listing

    def chain_names(self) -> list[str]:
        return list(self.builtins) + [c.name for c in self.user_chains()]

    def rules_of(self, name: str) -> list:
        chain = self.chain(name)
        if chain is None:
            return []
        if any(r.xt is None for r in chain.rules):
            raise XtError(f"{VERSION}: chain `{name}' in table `{self.name}' is incompatible, use 'nft' tool.")
        return chain.rules

    def policy_of(self, name: str) -> str:
        chain = self.chain(name)
        return chain.policy.upper() if chain is not None else "ACCEPT"

    def list_rules(self, name: str | None) -> str:
        """-S [chain]."""
        names = [name] if name else self.chain_names()
        if name and name not in self.builtins and self.chain(name) is None:
            raise XtError(NO_CHAIN)
        out = [f"-P {n} {self.policy_of(n)}" if n in self.builtins else f"-N {n}" for n in names]
        out += [rule.xt.save(n) for n in names for rule in self.rules_of(n)]
        return "".join(line + "\n" for line in out)

    def policy_counts(self, name: str) -> tuple[int, int]:
        """A builtin chain's counters (NFTA_CHAIN_COUNTERS): the packets and
        bytes its policy decided; (0, 0) for a chain made without them."""
        chain = self.chain(name)
        stats = chain.stats if chain is not None else None
        return (stats.packets, stats.bytes) if stats is not None else (0, 0)

    def save(self, counters: bool = False) -> str:
        """One table of iptables-save; `counters` (-c): each rule's `[packets:bytes]`."""
        lines = [f"*{self.name}"]
        lines += [":{} {} [{}:{}]".format(n, self.policy_of(n), *self.policy_counts(n)) for n in self.builtins]
        lines += [f":{c.name} - [0:0]" for c in self.user_chains()]
        for name in self.chain_names():
            for rule in self.rules_of(name):
                count = "[{}:{}] ".format(*_rule_counts(rule)) if counters else ""
                lines.append(count + rule.xt.save(name))
        lines.append("COMMIT")
        return "".join(line + "\n" for line in lines)

    def listing(self, name: str | None, verbose: bool, exact: bool, numbers: bool) -> str:
        """-L [chain] -n [-v] [-x] [--line-numbers]."""
        if name and name not in self.builtins and self.chain(name) is None:
            raise XtError(f"{VERSION}: chain `{name}' in table `{self.name}' is incompatible, use 'nft' tool.")
        blocks = [self._list_chain(n, verbose, exact, numbers) for n in ([name] if name else self.chain_names())]
        return "\n".join(blocks)

    def _list_chain(self, name: str, verbose: bool, exact: bool, numbers: bool) -> str:
        if name in self.builtins:
            packets, bytes_ = self.policy_counts(name)
            counts = f" {_count(packets, exact, False)}packets, {_count(bytes_, exact, False)}bytes" \
                if verbose else ""
            head = f"Chain {name} (policy {self.policy_of(name)}{counts})"
        else:
            head = f"Chain {name} ({self.references(name)} references)"
        if verbose:
            columns = HEADER_VERBOSE_EXACT if exact else HEADER_VERBOSE
        else:
            columns = HEADER
        lines = [head, ("num  " if numbers else "") + columns]
        for i, rule in enumerate(self.rules_of(name), 1):
            lines.append(_list_row(rule, i if numbers else None, verbose, exact))
        return "".join(line + "\n" for line in lines)


XT_TARGETS = {"ACCEPT", "DROP", "RETURN", "LOG", "MARK", "DNAT", "SNAT", "MASQUERADE", "REDIRECT", "REJECT",
              "NOTRACK", "CT"}
# the table and chains each target may be used in (the kernel's xt/nft validation)
TARGET_PLACES = {"DNAT": ("nat", {"PREROUTING", "OUTPUT"}), "REDIRECT": ("nat", {"PREROUTING", "OUTPUT"}),
                 "SNAT": ("nat", {"POSTROUTING", "INPUT"}), "MASQUERADE": ("nat", {"POSTROUTING"}),
                 "NOTRACK": ("raw", {"PREROUTING", "OUTPUT"}), "CT": ("raw", {"PREROUTING", "OUTPUT"}),
                 "REJECT": (None, {"INPUT", "FORWARD", "OUTPUT"})}
HEADER = "target     prot opt source               destination         "
HEADER_VERBOSE = " pkts bytes target     prot opt in     out     source               destination         "
HEADER_VERBOSE_EXACT = ("    pkts      bytes target     prot opt in     out     source               "
                        "destination         ")


def _target_allowed(table: str, chain: str, target: str) -> bool:
    if target not in TARGET_PLACES:
        return True
    want_table, chains = TARGET_PLACES[target]
    return (want_table is None or want_table == table) and (chain in chains or chain not in TABLES[table])


def _count(value: int, exact: bool, table: bool = True) -> str:
    """xtables_print_num(): 5 wide with K/M/G/T suffixes, or 8 wide exact;
    `table=False` (FMT_NOTABLE, a policy's counts) without the widths."""
    if exact:
        return f"{value:8d} " if table else f"{value} "
    if value <= 99999:
        return f"{value:5d} " if table else f"{value} "
    for suffix in "KMGT":
        value = (value + 500) // 1000
        if value <= 9999 or suffix == "T":
            return f"{value:4d}{suffix} " if table else f"{value}{suffix} "
    return ""


def _rule_counts(nft_rule) -> tuple[int, int]:
    """The packets and bytes of the counter iptables-nft puts in every rule."""
    counter = next(s for s in nft_rule.stmts if isinstance(s, Counter))
    return counter.packets, counter.bytes


def _list_row(nft_rule, number: int | None, verbose: bool, exact: bool) -> str:
    """print_firewall() with FMT_NUMERIC."""
    rule: XtRule = nft_rule.xt
    row = f"{number:<4d} " if number is not None else ""
    if verbose:
        packets, bytes_ = _rule_counts(nft_rule)
        row += _count(packets, exact) + _count(bytes_, exact)
    target = rule.target.name if rule.target is not None else ""
    proto, proto_inv = rule.proto if rule.proto else (0, False)
    row += f"{target:<9} {'!' if proto_inv else ' '}{proto:<5}-- "
    if verbose:
        row += f" {_iface(rule.iniface):<6} {_iface(rule.outiface):<6} "
    family = rule.family
    for addr in (rule.src, rule.dst):
        text = family.any if addr is None else \
            family.address_text(addr[0]) + (f"/{addr[1]}" if addr[1] != family.bits else "")
        row += f"{'!' if addr and addr[2] else ' '}{text:<19} "
    extras = [m.listing() for m in rule.matches]
    if rule.target is not None:
        extras.append(rule.target.listing())
    return row + "".join(f" {e}" for e in extras if e)


def _iface(iface: tuple | None) -> str:
    return "*" if iface is None else ("!" if iface[1] else "") + iface[0]
