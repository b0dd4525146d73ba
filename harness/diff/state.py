"""What a scenario leaves in the DUT, compared after its frames: the nft rule
counters (every drawn rule has one) and the conntrack table.

Both targets read them through the Target interface (counters(): `nft -a list
ruleset` on the lab, nf_tables.counters() on the mock; conntrack(): a ctnetlink
dump of the DUT namespace, the mock's table). Counters compare exactly, in
listing order; conntrack entries compare as a set of (protocol, TCP state,
original and reply tuples, status bits ctnetlink reports, mark), less what
explained.CONNTRACK_MASKS leaves out as timing. In an IPv6 scenario the IPv6
entries too, as `conntrack -L -f ipv6` lists them on each target (target.conntrack()
is IPv4's), their timeouts masked alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import zip_longest

from harness.diff.explained import masked_entry
from harness.journey import CtEntry, RuleCounter
from harness.target import Target, TargetError

SAME, DIFFERS, FIRST_ONLY, SECOND_ONLY = "  ", "! ", "< ", "> "


@dataclass
class State:
    counters: list[RuleCounter] = field(default_factory=list)
    conntrack: list[CtEntry] = field(default_factory=list)
    conntrack6: list[str] = field(default_factory=list)  # `conntrack -L -f ipv6` lines, timeouts masked

    def to_json(self) -> dict:
        out = {"counters": [list(counter) for counter in self.counters],
               "conntrack": [entry_json(entry) for entry in self.conntrack]}
        if self.conntrack6:
            out["conntrack6"] = self.conntrack6
        return out

    @classmethod
    def from_json(cls, data: dict) -> "State":
        return cls([RuleCounter(*counter) for counter in data.get("counters", [])],
                   [entry_from_json(entry) for entry in data.get("conntrack", [])], data.get("conntrack6", []))


def entry_json(entry: CtEntry) -> dict:
    return {"proto": entry.proto, "state": entry.state, "original": list(entry.original),
            "reply": list(entry.reply), "status": sorted(entry.status), "mark": entry.mark}


def entry_from_json(data: dict) -> CtEntry:
    return CtEntry(data["proto"], data["state"], tuple(data["original"]), tuple(data["reply"]),
                   frozenset(data["status"]), data["mark"])


def read_state(target: Target, with_counters: bool = True, ipv6: bool = False) -> State:
    """The target's rule counters (when the scenario has rules: the lab lists the
    ruleset for them) and conntrack table (with `ipv6`, IPv6's too), or an empty part
    where it cannot read it."""
    state = State()
    if with_counters:
        state.counters = target.counters()
    if "conntrack" in target.capabilities:
        try:
            state.conntrack = target.conntrack()
            if ipv6:
                state.conntrack6 = sorted(masked_listing(line) for line in
                                          target.sh(["conntrack", "-L", "-f", "ipv6"]).splitlines() if line.strip())
        except TargetError:
            pass
    return state


def masked_listing(line: str) -> str:
    """A `conntrack -L` line less its timeout (its third word: explained.CONNTRACK_MASKS)."""
    words = line.split()
    return " ".join([*words[:2], "-", *words[3:]]) if len(words) > 3 else line


def _counter_text(counter: RuleCounter) -> str:
    return f"{counter.family} {counter.table} {counter.chain}: {counter.rule}: " \
           f"packets {counter.packets} bytes {counter.bytes}"


def entry_text(entry: CtEntry) -> str:
    state = f" {entry.state}" if entry.state else ""
    original = " ".join(str(part) for part in entry.original)
    reply = " ".join(str(part) for part in entry.reply)
    return f"{entry.proto}{state} [{original}] [{reply}] {','.join(sorted(entry.status)) or '-'} mark {entry.mark}"


def state_lines(first: State, second: State, a: str, b: str, nat_ports_random: bool = False) -> list[str]:
    """The counters and conntrack entries of both targets, line by line (SAME,
    DIFFERS, FIRST_ONLY, SECOND_ONLY as `journey diff` marks them)."""
    lines = []
    for one, other in zip_longest(first.counters, second.counters):
        if one is not None and other is not None and one[:4] == other[:4]:
            if one == other:
                lines.append(f"{SAME}counter {_counter_text(one)}")
            else:
                lines += [f"{DIFFERS}counter {one.family} {one.table} {one.chain}: {one.rule}",
                          f"    {a}: packets {one.packets} bytes {one.bytes}",
                          f"    {b}: packets {other.packets} bytes {other.bytes}"]
            continue
        if one is not None:
            lines.append(f"{FIRST_ONLY}counter {_counter_text(one)}")
        if other is not None:
            lines.append(f"{SECOND_ONLY}counter {_counter_text(other)}")
    lines += _entry_lines(sorted(entry_text(masked_entry(e, nat_ports_random)) for e in first.conntrack),
                          sorted(entry_text(masked_entry(e, nat_ports_random)) for e in second.conntrack))
    return lines + _entry_lines(first.conntrack6, second.conntrack6)


def _entry_lines(mine: list[str], theirs: list[str]) -> list[str]:
    """Two targets' conntrack entries (as texts) compared as multisets."""
    lines, rest = [], list(theirs)
    for text in mine:
        if text in rest:
            rest.remove(text)
            lines.append(f"{SAME}conntrack {text}")
        else:
            lines.append(f"{FIRST_ONLY}conntrack {text}")
    return lines + [f"{SECOND_ONLY}conntrack {text}" for text in rest]
