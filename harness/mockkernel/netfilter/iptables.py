"""iptables-nft (iptables 1.8.9, nft variant): xtables rules kept in nf_tables
(iptables/nft.c, nft-ipv4.c, nft-ipv6.c, nft-shared.c, extensions/libxt_*.c).
iptables and ip6tables differ in an `XtFamily`: the nft family of their
tables (ip, ip6), addresses, the ICMP match (icmp, icmp6) and REJECT's codes;
messages name the program that runs (xt_params->program_name): they are
written with PROG and rendered by the front end.

An `XtRule` is a rule as iptables sees it: addresses (with their masks),
interfaces, protocol, matches and a target (xt_matches.py, xt_targets.py and
their siblings). `nft_stmts()` is what iptables-nft puts in the kernel: the
same statements in its order (interfaces, addresses, `meta l4proto`, the
matches, a counter, the target), native nft expressions where iptables-nft
1.8.9 has them (tcp/udp ports and flags, mark, limit, LOG, verdicts, NAT,
NOTRACK) and xt extensions (nft_compat.py) for the rest, which `nft list`
shows as their translation. Tables and builtin chains are created when first used, at
iptables-nft's priorities (raw -300, mangle -150, nat -100/+100, filter 0,
security 150 as 1.8.9 registers it; mangle OUTPUT is a route chain). The
XtRule is kept with the nft rule so `-S`, `-L` and iptables-save print it back
as iptables does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from harness.mockkernel.netfilter.nf_tables import (ENOENT, EOPNOTSUPP, NftChain, NftRule, NftTable, Ruleset, refusable,
                                                   table_error)
from harness.mockkernel.netfilter.nft_exprs import Counter, Match, Meta, Prefix, Stmt, Value
from harness.mockkernel.netfilter.nft_parser import ChainSpec
from harness.mockkernel.netfilter.xt_matches import PROTOCOL_NAMES, XtMatch, inv
from harness.mockkernel.netfilter.xt_matches import field as payload_field
from harness.mockkernel.netfilter.xt_options import PROG, VERSION, XtError, usage_error
from harness.mockkernel.netfilter.xt_targets import XtTarget

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
REJECT_CODES = {"icmp-net-unreachable": 0, "icmp-host-unreachable": 1, "icmp-proto-unreachable": 2,
                "icmp-port-unreachable": 3, "icmp-net-prohibited": 9, "icmp-host-prohibited": 10,
                "icmp-admin-prohibited": 13}
REJECT_ALIASES = {"net-unreach": "icmp-net-unreachable", "host-unreach": "icmp-host-unreachable",
                  "proto-unreach": "icmp-proto-unreachable", "port-unreach": "icmp-port-unreachable",
                  "net-prohib": "icmp-net-prohibited", "host-prohib": "icmp-host-prohibited",
                  "admin-prohib": "icmp-admin-prohibited", "tcp-rst": "tcp-reset"}
REJECT6_CODES = {"icmp6-no-route": 0, "icmp6-adm-prohibited": 1, "icmp6-addr-unreachable": 3,
                 "icmp6-port-unreachable": 4, "icmp6-policy-fail": 5, "icmp6-reject-route": 6}  # libip6t_REJECT.c, and nft_reject_ipv6's ICMPv6 codes
REJECT6_ALIASES = {"no-route": "icmp6-no-route", "adm-prohibited": "icmp6-adm-prohibited",
                   "addr-unreach": "icmp6-addr-unreachable", "port-unreach": "icmp6-port-unreachable",
                   "tcp-rst": "tcp-reset"}


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
    def all_ones(self) -> int:
        return (1 << self.bits) - 1

    @property
    def any(self) -> str:
        return f"{self.address(0)}/0"

    def address_text(self, addr: int) -> str:
        return str(self.address(addr))

    def mask_text(self, mask: int) -> str:
        """A mask as iptables prints it: a prefix length, or the mask itself
        when its bits are not contiguous (xtables_ipmask_to_numeric())."""
        plen = prefix_length(mask, self.bits)
        return str(plen) if plen is not None else self.address_text(mask)

    def parse_addresses(self, text: str) -> list[tuple[int, int]]:
        """xtables_ipparse_multiple(): `ADDR[/MASK][,ADDR[/MASK]...]`, each an
        (address & mask, mask); MASK a prefix length or a dotted (colon) mask."""
        return [self._parse_address(part) for part in text.split(",")]

    def _parse_address(self, part: str) -> tuple[int, int]:
        base, slash, mask_text = part.partition("/")
        try:
            addr = int(self.address(base))
        except ValueError:
            raise usage_error(f"host/network `{base}' not found") from None
        if not slash:
            return addr, self.all_ones
        if mask_text.isdigit():
            if int(mask_text) > self.bits:
                raise usage_error(f"invalid mask `{mask_text}' specified")
            mask = self.all_ones ^ ((1 << (self.bits - int(mask_text))) - 1)
        else:
            try:
                mask = int(self.address(mask_text))
            except ValueError:
                raise usage_error(f"invalid mask `{mask_text}' specified") from None
        return addr & mask, mask

    def parse_address(self, text: str) -> tuple:
        """One `ADDR[/MASK]` as a match option takes it: (address, mask, family)."""
        addr, mask = self._parse_address(text)
        return addr, mask, self

    def prefix_length(self, mask: int) -> int | None:
        return prefix_length(mask, self.bits)


def prefix_length(mask: int, bits: int) -> int | None:
    """The mask's prefix length, or None when its ones are not contiguous."""
    ones = bin(mask).count("1")
    return ones if mask == ((1 << bits) - 1) ^ ((1 << (bits - ones)) - 1) else None


IPV4 = XtFamily("iptables", "ip", IPv4Address, "icmp", REJECT_CODES, REJECT_ALIASES, "icmp", "icmp-port-unreachable",
                3)
IPV6 = XtFamily("ip6tables", "ip6", IPv6Address, "icmp6", REJECT6_CODES, REJECT6_ALIASES, "icmpv6",
                "icmp6-port-unreachable", 4)


# ------------------------------------------------------------------ rules

@dataclass
class XtRule:
    """struct iptables_command_state: one rule."""

    src: tuple | None = None  # (addr, mask, invert)
    dst: tuple | None = None
    iniface: tuple | None = None  # (name, invert); `eth+` is a prefix
    outiface: tuple | None = None
    proto: tuple | None = None  # (number, invert)
    fragment: bool | None = None  # -f: True, ! -f: False
    matches: list[XtMatch] = field(default_factory=list)
    target: XtTarget | None = None
    family: XtFamily = IPV4

    def save(self, chain: str) -> str:
        """`-A CHAIN ...` as iptables-save and -S print it (an address /0 and
        protocol 0 say nothing and are left out)."""
        parts = [f"-A {chain}"]
        for opt, addr in (("-s", self.src), ("-d", self.dst)):
            if addr and (addr[1] or addr[2]):
                parts.append(f"{inv(addr[2])}{opt} {self.family.address_text(addr[0])}/"
                             f"{self.family.mask_text(addr[1])}")
        for opt, iface in (("-i", self.iniface), ("-o", self.outiface)):
            if iface:
                parts.append(f"{inv(iface[1])}{opt} {iface[0]}")
        if self.proto and self.proto[0]:
            parts.append(f"{inv(self.proto[1])}-p {PROTOCOL_NAMES.get(self.proto[0], self.proto[0])}")
        if self.fragment is not None:
            parts.append(f"{inv(not self.fragment)}-f")
        parts += [m.save() for m in self.matches]
        if self.target is not None:
            parts.append(self.target.save())
        return " ".join(parts)

    def nft_stmts(self) -> list[Stmt]:
        """What iptables-nft adds to the kernel (nft_ipv4_add(), nft_ipv6_add()):
        interfaces, the protocol, addresses, the fragment bits, the matches."""
        out: list[Stmt] = []
        for key, iface in (("iifname", self.iniface), ("oifname", self.outiface)):
            if iface:
                name = iface[0][:-1] + "*" if iface[0].endswith("+") else iface[0]
                out.append(Match(Meta(key), "!=" if iface[1] else "==", Value(name)))
        if self.proto and self.proto[0]:
            out.append(Match(Meta("l4proto"), "!=" if self.proto[1] else "==", Value(self.proto[0])))
        for fld, addr in (("saddr", self.src), ("daddr", self.dst)):
            if addr and (addr[1] or addr[2]):
                op, plen = "!=" if addr[2] else "==", prefix_length(addr[1], self.family.bits)
                lhs = payload_field(self.family.nft_family, fld)
                if plen is None:
                    out.append(Match(lhs, op, Value(addr[0]), mask=addr[1]))
                else:
                    out.append(Match(lhs, op, Value(addr[0]) if plen == self.family.bits else Prefix(addr[0], plen)))
        if self.fragment is not None:  # nft_ipv4_add(): the fragment offset bits
            out.append(Match(payload_field("ip", "frag-off"), "!=" if self.fragment else "==", Value(0),
                             mask=0x1FFF))
        for match in self.matches:
            out += match.stmts(self)
        out.append(Counter())
        if self.target is not None:
            out += self.target.stmts(self)
        return out

    def same(self, other: "XtRule") -> bool:
        """-D by specification: the same rule, whatever order it was written in."""
        return self.save("") == other.save("")


# ------------------------------------------------------------------ commands

NO_CHAIN = f"{PROG}: No chain/target/match by that name."


class XtTables:
    """iptables-nft's view of the ruleset: `ip` (`ip6`) tables named after xtables
    tables, base chains created on first use (nft_xt_builtin_init)."""

    def __init__(self, ruleset: Ruleset, table: str, family: XtFamily = IPV4, net=None):
        self.ruleset, self.name, self.builtins, self.family = ruleset, table, TABLES[table], family
        self.table = ruleset.find(family.nft_family, table)
        self.net = net  # the namespace a transaction on `ruleset` commits to

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
        for ext in (*rule.matches, *([rule.target] if rule.target is not None else [])):
            ext.net_check(self, chain_name)
        if position is not None and position > len(chain.rules) + 1:
            raise XtError(f"{PROG}: Index of insertion too big.")
        nft_rule = NftRule(self.table.alloc_handle(), rule.nft_stmts(), xt=rule)
        chain.rules.insert(len(chain.rules) if position is None else position - 1, nft_rule)
        jump = rule.target.name if rule.target is not None and rule.target.is_jump else None
        if jump is not None or refusable(nft_rule.stmts):
            self._validate(chain, nft_rule, jump, "APPEND" if position is None else "INSERT")

    def _validate(self, chain: NftChain, nft_rule: NftRule, jump: str | None, operation: str) -> None:
        """The kernel refuses the rule's commit as it refuses nft's jump:
        nft_verdict_init() a jump to a base chain (EOPNOTSUPP; ENOENT while
        iptables-nft has not made that builtin chain yet), and
        nft_table_validate() a loop or what the hooks it is reached from refuse
        (nft_chain_validate(): ELOOP, printed "Too many links"; an extension's
        nft_target_validate()/nft_match_validate(): EINVAL, for the jump that
        reaches it from the wrong hook or for it, added where a jump already
        does). Only a jump or an expression with a validate op pays for the walk."""
        if jump in self.builtins:
            error = EOPNOTSUPP if self.chain(jump) is not None else ENOENT
        else:
            error = table_error(self.table)
        if error is not None:
            chain.rules.remove(nft_rule)
            raise XtError(f"{VERSION}:  RULE_{operation} failed ({error}): rule in chain {chain.name}", 4)

    def writable_chain(self, name: str):
        chain = self.chain(name, create_builtin=True)
        if chain is None:
            raise XtError(NO_CHAIN)
        return chain

    def check_target(self, chain_name: str, rule: XtRule) -> None:
        """A jump's chain must exist; an extension's checkentry refuses what
        its kernel module refuses in this table and chain."""
        target = rule.target
        if target is not None and target.is_jump:
            if target.name not in self.builtins and self.chain(target.name) is None:
                raise usage_error(f"Chain '{target.name}' does not exist")
            return
        builtin = chain_name in self.builtins
        for match in rule.matches:
            match.kernel_check(rule, chain_name, builtin)
            match.table_check(rule, self.name, chain_name)
        if target is not None:
            target.rule_check(rule, self.name, chain_name, builtin)

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
        """-F [CHAIN]: nft_rule_flush() makes a builtin chain it names first
        (nft_xt_builtin_init(): `iptables -F FORWARD` on an empty namespace, or
        after iptables-restore's table flush, leaves that chain)."""
        if chain_name is None:
            for chain in (self.table.chains.values() if self.table else ()):
                chain.rules.clear()
            return
        self.writable_chain(chain_name).rules.clear()

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


HEADER = "target     prot opt source               destination         "
HEADER_VERBOSE = " pkts bytes target     prot opt in     out     source               destination         "
HEADER_VERBOSE_EXACT = ("    pkts      bytes target     prot opt in     out     source               "
                        "destination         ")


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
    target = rule.target.list_name if rule.target is not None else ""
    proto, proto_inv = rule.proto if rule.proto else (0, False)
    fragment = "--" if rule.fragment is None else "-f" if rule.fragment else "!f"
    row += f"{target:<9} {'!' if proto_inv else ' '}{proto:<5}{fragment} "
    if verbose:
        row += f" {_iface(rule.iniface):<6} {_iface(rule.outiface):<6} "
    family = rule.family
    for addr in (rule.src, rule.dst):
        text = family.any if addr is None else \
            family.address_text(addr[0]) + (f"/{family.mask_text(addr[1])}" if addr[1] != family.all_ones else "")
        row += f"{'!' if addr and addr[2] else ' '}{text:<19} "
    extras = [(m.LIST_SEPARATOR, m.listing()) for m in rule.matches]
    if rule.target is not None:
        extras.append((" ", rule.target.listing()))
    return row + "".join(separator + text for separator, text in extras if text)


def _iface(iface: tuple | None) -> str:
    return "*" if iface is None else ("!" if iface[1] else "") + iface[0]
