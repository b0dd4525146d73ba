"""The compiled chain index (nf_tables_core._index) against a linear reference.

nft_do_chain() skips the rules of an indexed run that the packet's value of
the run's field rules out (equalities, prefixes, ranges, comparisons,
negations, anonymous and named sets). The kernel walks every rule; so does
`reference_chain()` here, written from the rules as generated (not from the
compiled chain): for random chains and packets, the verdict, the rule that
gave it, the journey's hops, every rule's counter and the packet's mark must
be what walking the rules one by one gives.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP

from harness.mockkernel.core.skbuff import alloc_skb
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.netfilter.core import NF_ACCEPT, NF_DROP, NF_INET_LOCAL_IN, NFPROTO_IPV4, NfHookState
from harness.mockkernel.target import sh

NET = int(ipaddress.IPv4Address("10.0.0.0"))
ADDRESSES = 16  # packets come from and go to 10.0.0.0-10.0.0.15, so that rules match often
PORTS = 12
MARKS = 6


def addr(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


@dataclass(frozen=True)
class Pkt:
    saddr: int
    daddr: int
    udp: bool  # else TCP
    dport: int
    mark: int

    def scapy(self):
        l4 = UDP(sport=9, dport=self.dport) if self.udp else TCP(sport=9, dport=self.dport, flags="S")
        return IP(src=addr(self.saddr), dst=addr(self.daddr)) / l4

    def field(self, name: str) -> int:
        return getattr(self, name)


@dataclass(frozen=True)
class Cond:
    """One match: `field op operand`, as the reference evaluates it."""

    field: str  # saddr, daddr, dport, mark
    kind: str  # eq, prefix, range, lt, ge, set, named
    negated: bool
    operand: object  # int; (addr, plen); (low, high); tuple of (low, high); a named set's name

    def holds(self, pkt: Pkt, named: dict) -> bool:
        if self.field == "dport" and not pkt.udp:  # `udp dport` implies `meta l4proto udp`, negated or not
            return False
        value, op = pkt.field(self.field), self.operand
        if self.kind == "eq":
            inside = value == op
        elif self.kind == "prefix":
            inside = value >> (32 - op[1]) == op[0] >> (32 - op[1])
        elif self.kind == "range":
            inside = op[0] <= value <= op[1]
        elif self.kind == "lt":
            inside = value < op
        elif self.kind == "ge":
            inside = value >= op
        else:
            spans = named[op] if self.kind == "named" else op
            inside = any(low <= value <= high for low, high in spans)
        return inside != self.negated

    def text(self) -> str:
        lhs = {"saddr": "ip saddr", "daddr": "ip daddr", "dport": "udp dport", "mark": "meta mark"}[self.field]
        fmt = addr if self.field in ("saddr", "daddr") else str
        neg = "!= " if self.negated else ""
        op = self.operand
        if self.kind == "eq":
            return f"{lhs} {neg}{fmt(op)}"
        if self.kind == "prefix":
            return f"{lhs} {neg}{fmt(op[0])}/{op[1]}"
        if self.kind == "range":
            return f"{lhs} {neg}{fmt(op[0])}-{fmt(op[1])}"
        if self.kind == "lt":
            return f"{lhs} < {fmt(op)}"
        if self.kind == "ge":
            return f"{lhs} >= {fmt(op)}"
        if self.kind == "named":
            return f"{lhs} {neg}@{op}"
        elements = ", ".join(fmt(low) if low == high else f"{fmt(low)}-{fmt(high)}" for low, high in op)
        return f"{lhs} {neg}{{ {elements} }}"


@dataclass(frozen=True)
class Rule:
    conds: tuple[Cond, ...]
    counter: bool
    set_mark: int | None
    verdict: str | None  # accept, drop, continue, return, jump sub, goto sub, or none

    def text(self) -> str:
        parts = [c.text() for c in self.conds]
        if self.counter:
            parts.append("counter")
        if self.set_mark is not None:
            parts.append(f"meta mark set {self.set_mark}")
        if self.verdict is not None:
            parts.append(self.verdict)
        return " ".join(parts)


LIMITS = {"saddr": (NET, NET + ADDRESSES - 1), "daddr": (NET, NET + ADDRESSES - 1),
          "dport": (0, PORTS), "mark": (0, MARKS)}


@st.composite
def spans(draw, field: str):
    """Sorted disjoint inclusive ranges within the field's test values."""
    low, high = LIMITS[field]
    bounds = sorted(draw(st.sets(st.integers(low, high + 1), min_size=2, max_size=6)))
    pairs = [(bounds[i], bounds[i + 1] - 1) for i in range(0, len(bounds) - 1, 2)]
    if draw(st.booleans()):
        pairs = [(p, p) for p, _ in pairs]  # single values: a set without `flags interval`
    return tuple(pairs)


@st.composite
def conds(draw, field: str, named: bool = True):
    low, high = LIMITS[field]
    kinds = ["eq", "range", "set"] + (["prefix"] if field in ("saddr", "daddr") else ["lt", "ge"])
    kinds += ["named"] if named and field in ("saddr", "dport") else []
    kind = draw(st.sampled_from(kinds))
    negated = kind not in ("lt", "ge") and draw(st.integers(0, 3)) == 0
    value = st.integers(low, high)
    if kind == "eq":
        operand = draw(value)
    elif kind == "prefix":
        plen = draw(st.sampled_from([8, 24, 28, 29, 30, 31, 32]))
        operand = (draw(value) >> (32 - plen) << (32 - plen), plen)
    elif kind == "range":  # nft refuses a range of one value
        operand = tuple(sorted(draw(st.sets(value, min_size=2, max_size=2))))
    elif kind in ("lt", "ge"):
        operand = draw(st.integers(1, high))
    elif kind == "named":
        operand = "hosts" if field == "saddr" else "ports"
    else:
        operand = draw(spans(field))
    return Cond(field, kind, negated, operand)


@st.composite
def rules(draw, verdicts: list, min_size: int, max_size: int):
    """Rules whose first match is mostly on one field, so that runs form, or
    on two fields in turn, so that rules are indexed by several fields."""
    run_fields = draw(st.lists(st.sampled_from(list(LIMITS)), min_size=1, max_size=2, unique=True))
    out = []
    for i in range(draw(st.integers(min_size, max_size))):
        first = run_fields[i % len(run_fields)] if draw(st.integers(0, 4)) else draw(st.sampled_from(list(LIMITS)))
        more = draw(st.lists(st.sampled_from(list(LIMITS)), max_size=1))
        conds_ = tuple(draw(conds(f)) for f in [first, *more])
        set_mark = draw(st.integers(0, MARKS)) if draw(st.integers(0, 3)) == 0 else None
        out.append(Rule(conds_, draw(st.booleans()), set_mark, draw(st.sampled_from(verdicts))))
    return out


packets = st.builds(Pkt, st.integers(NET, NET + ADDRESSES - 1), st.integers(NET, NET + ADDRESSES - 1),
                    st.booleans(), st.integers(0, PORTS), st.integers(0, MARKS))


def ruleset(base: list[Rule], sub: list[Rule], policy: str, named: dict) -> str:
    hosts = ", ".join(addr(low) if low == high else f"{addr(low)}-{addr(high)}" for low, high in named["hosts"])
    ports = ", ".join(str(p) for p, _ in named["ports"])
    lines = [f"\t\t{r.text()}" for r in base]
    sub_lines = [f"\t\t{r.text()}" for r in sub]
    return ("table ip t {\n"
            f"\tset hosts {{ type ipv4_addr; flags interval; elements = {{ {hosts} }} }}\n"
            f"\tset ports {{ type inet_service; elements = {{ {ports} }} }}\n"
            "\tchain sub {\n" + "\n".join(sub_lines) + "\n\t}\n"
            f"\tchain input {{\n\t\ttype filter hook input priority filter; policy {policy};\n"
            + "\n".join(lines) + "\n\t}\n}\n")


def reference_chain(pkt: Pkt, mark: list, base: list[Rule], sub: list[Rule], named: dict, counts: dict):
    """Walk the rules one by one as nft_do_chain() does in the kernel:
    (verdict or None for the policy, chain name, rule position, jump hops)."""
    hops = []

    def walk(chain_name: str, chain: list[Rule]):
        for position, rule in enumerate(chain):
            now = Pkt(pkt.saddr, pkt.daddr, pkt.udp, pkt.dport, mark[0])
            if not all(c.holds(now, named) for c in rule.conds):
                continue
            if rule.counter:
                packets, bytes_ = counts.get((chain_name, position), (0, 0))
                counts[chain_name, position] = packets + 1, bytes_ + len(pkt.scapy())
            if rule.set_mark is not None:
                mark[0] = rule.set_mark
            verdict = rule.verdict
            if verdict in ("accept", "drop"):
                return verdict, chain_name, position
            if verdict == "return":
                return None
            if verdict in ("jump sub", "goto sub"):
                hops.append(("JUMP" if verdict == "jump sub" else "GOTO", chain_name, position))
                outcome = walk("sub", sub)
                if outcome is not None or verdict == "goto sub":
                    return outcome
        return None

    return walk("input", base), hops


def handles(k: Kernel) -> dict:
    """(chain, position) -> the listed rule text and handle, from `nft -a list`."""
    out, chain, position = {}, None, 0
    for line in sh(k, ["nft", "-a", "-s", "list", "table", "ip", "t"]).splitlines():
        if line.strip().startswith("chain "):
            chain, position = line.split()[1], 0
        found = re.match(r"\s+(.*) # handle (\d+)$", line)
        if found and chain and not found.group(1).startswith(("chain ", "set ", "type ")):
            out[chain, position] = (found.group(1), int(found.group(2)))
            position += 1
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=rules(["accept", "drop", "continue", "return", None, "jump sub", "goto sub"], 2, 24),
       sub=rules(["accept", "drop", "continue", "return", None], 0, 8),
       policy=st.sampled_from(["accept", "drop"]),
       hosts=spans("saddr"), ports=spans("dport"),
       pkts=st.lists(packets, min_size=1, max_size=12))
def test_an_indexed_chain_gives_the_verdict_rule_journey_counters_and_mark_of_walking_each_rule(
        base, sub, policy, hosts, ports, pkts):
    named = {"hosts": hosts, "ports": tuple((p, p) for p, _ in ports)}
    k = Kernel()
    sh(k, ["nft", "-f", "-"], ruleset(base, sub, policy, named))
    listed = handles(k)
    counts: dict = {}
    for pkt in pkts:
        mark = [pkt.mark]
        outcome, jumps = reference_chain(pkt, mark, base, sub, named, counts)
        verdict, skb = run_input(k, pkt)
        expected_hops = [("ip t input", kind, f"rule {listed[where, position][1]}: {listed[where, position][0]}")
                         for kind, where, position in jumps]
        if outcome is None:
            expected_verdict, summary = (NF_ACCEPT if policy == "accept" else NF_DROP), "policy"
        else:
            name, where, position = outcome
            expected_verdict = NF_ACCEPT if name == "accept" else NF_DROP
            text, handle = listed[where, position]
            summary = f"rule {handle}: {text}" if where == "input" else f"chain sub rule {handle}: {text}"
        expected_hops.append(("ip t input", "ACCEPT" if expected_verdict == NF_ACCEPT else "DROP", summary))
        assert [(h.where, h.verdict, h.summary) for h in skb.journey.hops] == expected_hops
        assert verdict == expected_verdict
        assert skb.mark == mark[0]
    listing = sh(k, ["nft", "-a", "list", "table", "ip", "t"])
    for (where, position), (text, handle) in listed.items():
        if "counter" not in text:
            continue
        counted = re.search(rf"counter packets (\d+) bytes (\d+) .*# handle {handle}\n", listing).groups()
        assert tuple(map(int, counted)) == counts.get((where, position), (0, 0)), (where, text)


def test_the_generated_rules_are_listed_as_written():
    """The reference names rules by position; the listing must keep them in order and as written."""
    cond = Cond("saddr", "prefix", True, (NET, 30))
    rule = Rule((cond, Cond("dport", "set", False, ((1, 1), (3, 5)))), True, 2, "jump sub")
    k = Kernel()
    sh(k, ["nft", "-f", "-"], ruleset([rule], [], "accept", {"hosts": ((NET, NET + 1),), "ports": ((1, 1),)}))
    assert handles(k)["input", 0][0] == \
        "ip saddr != 10.0.0.0/30 udp dport { 1, 3-5 } counter meta mark set 0x00000002 jump sub"


def run_input(k: Kernel, pkt: Pkt):
    """The input chain's verdict on a packet (a drop: NF_DROP) and the packet."""
    skb = alloc_skb(bytes(pkt.scapy()))
    skb.net, skb.dev, skb.protocol, skb.mark = k, k.dev_by_name("p0"), 0x0800, pkt.mark
    skb.network_header = skb.data
    k.tracer.start(skb, "test")
    verdict = k.nft.registrations[("ip", "t", "input")].hook.run(
        skb, NfHookState(NF_INET_LOCAL_IN, NFPROTO_IPV4, skb.dev, None, k))
    return (NF_DROP if skb.journey.drop is not None else verdict), skb


def test_a_rule_after_one_that_sets_the_mark_sees_the_new_mark():
    """An index loads its key once per run: a run must end at a rule that may
    change what it loads (a write, or a jump to a chain that writes)."""
    k = Kernel()
    sh(k, ["nft", "-f", "-"], "table ip t {\n\tchain sub {\n\t\tmeta mark set 3\n\t}\n"
       "\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n"
       "\t\tmeta mark 1 meta mark set 2\n\t\tmeta mark 2 jump sub\n\t\tmeta mark 3 accept\n\t}\n}\n")
    verdict, skb = run_input(k, Pkt(NET, NET, True, 1, 1))
    assert (verdict, skb.journey.hops[-1].summary) == (NF_ACCEPT, "rule 6: meta mark 0x00000003 accept")


def test_nested_ranges_too_many_to_list_once_are_indexed_in_parts_and_the_first_still_wins():
    """200 nested ranges (rule i: 200-i .. 200+i) would list each rule in ~200
    stretches: the run is indexed in parts; port p still matches rule |p - 200| first."""
    k = Kernel()
    rules = "\n".join(f"\t\tudp dport {200 - i}-{200 + i} accept" for i in range(1, 201))
    header = "table ip t {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n"
    sh(k, ["nft", "-f", "-"], f"{header}{rules}\n\t}}\n}}\n")
    hook = k.nft.registrations[("ip", "t", "input")].hook
    assert sum(rule.dispatch is not None for rule in hook.chain.rules) > 1
    first = hook.chain.rules[0].handle
    for port in (0, 1, 57, 199, 200, 201, 333, 400):
        i = max(abs(port - 200), 1)
        verdict, skb = run_input(k, Pkt(NET, NET, True, port, 0))
        assert (verdict, skb.journey.hops[-1].summary) == \
            (NF_ACCEPT, f"rule {first + i - 1}: udp dport {200 - i}-{200 + i} accept")
    verdict, skb = run_input(k, Pkt(NET, NET, True, 401, 0))
    assert (verdict, skb.journey.hops[-1].summary) == (NF_DROP, "policy")
