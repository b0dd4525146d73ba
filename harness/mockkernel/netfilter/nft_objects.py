"""Stateful objects (net/netfilter/nf_tables_api.c nft_obj_*, nft_objref.c;
nftables src/rule.c obj_print_data(), json.c obj_print_json()).

A table's named counters, quotas, limits, synproxy, ct helper, ct timeout and
ct expectation objects, and the statements that use them by name, or by a
name a map lookup gives (`counter name tcp dport map { 443 : "c1" }`):
nft_objref_eval() runs the object's own eval on the packet, so every rule
naming a counter counts into the same one, and a quota or limit object is
shared by all its rules. `ct helper|timeout|expectation set` attach the
object to the packet's conntrack entry (nft_ct_helper_obj_eval(),
nft_ct_timeout_obj_eval(), nft_ct_expect_obj_eval()): the mock records the
helper and the timeout policy on the entry; it runs no helper (no expectations
are created from the traffic: nf_conntrack_ftp and friends are not modelled).
`synproxy name` runs the proxy with the object's settings (nft_synproxy_obj_eval(),
nft_synproxy.py); a table with a synproxy object holds the proxy's hooks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_exprs import (NFT_BREAK, CompileCtx, Limit, MapExpr, PrintCtx, Stmt,
                                                    get_rate)
from harness.mockkernel.netfilter.nf_synproxy import (NF_SYNPROXY_OPT_SACK_PERM, NF_SYNPROXY_OPT_TIMESTAMP,
                                                      NfSynproxyInfo)
from harness.mockkernel.netfilter.nft_json import selector_json
from harness.mockkernel.netfilter.nft_quota import QuotaState
from harness.mockkernel.netfilter.nft_set import format_time
from harness.mockkernel.netfilter.nft_synproxy import nft_synproxy_do_eval

ENOENT = "No such file or directory"
# src/rule.c tcp_state_to_name, udp_state_to_name and their default timeouts (seconds)
TIMEOUT_STATES = {
    6: (("syn_sent", 120), ("syn_recv", 60), ("established", 432000), ("fin_wait", 120), ("close_wait", 60),
        ("last_ack", 30), ("time_wait", 120), ("close", 10), ("syn_sent2", 120), ("retrans", 300), ("unack", 300)),
    17: (("unreplied", 30), ("replied", 120)),
}
L4_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "ipv6-icmp", 132: "sctp", 33: "dccp", 136: "udplite"}
# the words of `nft list counters|quotas|limits|synproxys` and `reset counters|quotas`
LIST_KINDS = {"counters": "counter", "quotas": "quota", "limits": "limit", "synproxys": "synproxy"}


obj_name = types.string_type  # an object's name as map data


@dataclass
class NftObject:
    """One named object of a table. `lines(stateless)` are the lines of its
    block in `nft list` (obj_print_data()), `config()` its JSON fields."""

    kind: str  # counter, quota, limit, synproxy, ct helper, ct timeout, ct expectation
    name: str
    handle: int = 0

    def lines(self, stateless: bool) -> list[str]:
        raise NotImplementedError

    def config(self, stateless: bool) -> dict:
        raise NotImplementedError

    def kernel_refusal(self, family: str) -> str | None:
        return None

    def text(self, stateless: bool, handles: bool) -> str:
        """obj_print(): `\\tKIND NAME { [# handle N]`, a line each, `\\t}`."""
        head = f"\t{self.kind} {self.name} {{" + (f" # handle {self.handle}" if handles else "") + "\n"
        return head + "".join(f"\t\t{line}\n" for line in self.lines(stateless)) + "\t}\n"

    def json(self, table, stateless: bool) -> dict:
        """json.c obj_print_json()."""
        return {self.kind: {"family": table.family, "name": self.name, "table": table.name,
                            "handle": self.handle, **self.config(stateless)}}

    def reset(self) -> None:
        """`nft reset counters|quotas` (the dump's reset)."""

    def evaluator(self, ctx: CompileCtx):
        """nft_objref_eval()'s call of the object's eval: pkt -> None or NFT_BREAK."""
        return lambda pkt: None


@dataclass
class CounterObject(NftObject):
    packets: int = 0
    bytes: int = 0

    def lines(self, stateless: bool) -> list[str]:
        return [] if stateless else [f"packets {self.packets} bytes {self.bytes}"]

    def config(self, stateless: bool) -> dict:  # obj_print_json() prints the values even with -s
        return {"packets": self.packets, "bytes": self.bytes}

    def reset(self) -> None:
        self.packets = self.bytes = 0

    def evaluator(self, ctx: CompileCtx):
        def count(pkt):  # nft_counter_obj_eval(): skb->len
            self.packets += 1
            self.bytes += pkt.end - pkt.nh
        return count


@dataclass
class QuotaObject(NftObject):
    state: QuotaState = None

    def lines(self, stateless: bool) -> list[str]:
        return [self.state.text(stateless)]

    def config(self, stateless: bool) -> dict:
        """json.c obj_print_json(): the quota and used in bytes, not in units, even with -s."""
        return {"bytes": self.state.quota, "used": self.state.used(), "inv": self.state.over}

    def kernel_refusal(self, family: str) -> str | None:
        return self.state.init_error()

    def reset(self) -> None:
        self.state.consumed = 0

    def evaluator(self, ctx: CompileCtx):
        state = self.state
        return lambda pkt: None if state.eval(pkt.skb) else NFT_BREAK


@dataclass
class LimitObject(NftObject):
    limit: Limit = None

    def lines(self, stateless: bool) -> list[str]:
        return [self.limit.text(PrintCtx()).removeprefix("limit ")]

    def config(self, stateless: bool) -> dict:
        out = self.limit.json(PrintCtx())[0]["limit"]
        ordered = {"rate": out["rate"], "per": out["per"]}
        if "inv" in out:
            ordered["inv"] = True
        if "rate_unit" in out:
            ordered.update(rate_unit=out["rate_unit"], burst=out["burst"], burst_unit=out["burst_unit"])
        else:
            ordered["burst"] = out["burst"]
        return ordered

    def kernel_refusal(self, family: str) -> str | None:
        return self.limit.kernel_refusal(family)

    def evaluator(self, ctx: CompileCtx):
        return self.limit.compile(ctx)


@dataclass
class CtHelperObject(NftObject):
    helper: str = ""
    l4proto: int = 6
    l3proto: str = "ip"

    def lines(self, stateless: bool) -> list[str]:
        return [f'type "{self.helper}" protocol {L4_NAMES.get(self.l4proto, self.l4proto)}', f"l3proto {self.l3proto}"]

    def config(self, stateless: bool) -> dict:
        return {"type": self.helper, "protocol": L4_NAMES.get(self.l4proto, self.l4proto), "l3proto": self.l3proto}

    def kernel_refusal(self, family: str) -> str | None:
        """nft_ct_helper_obj_init(): the helper's l3proto must be the table's (inet takes both)."""
        if family in ("ip", "ip6") and self.l3proto != family:
            return "Invalid argument"
        return None

    def evaluator(self, ctx: CompileCtx):
        def set_helper(pkt):
            conn = pkt.skb.nfct
            if conn is not None:
                conn.helper = self.helper
        return set_helper


@dataclass
class CtTimeoutObject(NftObject):
    l4proto: int = 6
    l3proto: str = "ip"
    policy: dict = field(default_factory=dict)  # state name -> seconds, as given

    def changed(self) -> list[tuple[str, int]]:
        """print_proto_timeout_policy(): the states whose timeout is not the default, in state order."""
        return [(name, self.policy[name]) for name, default in TIMEOUT_STATES.get(self.l4proto, ())
                if name in self.policy and self.policy[name] != default]

    def lines(self, stateless: bool) -> list[str]:
        policy = ", ".join(f"{name} : {secs}" for name, secs in self.changed())
        return [f"protocol {L4_NAMES.get(self.l4proto, self.l4proto)}", f"l3proto {self.l3proto}",
                f"policy = {{ {policy} }}"]

    def config(self, stateless: bool) -> dict:
        return {"protocol": L4_NAMES.get(self.l4proto, self.l4proto), "l3proto": self.l3proto,
                "policy": dict(self.changed())}

    def evaluator(self, ctx: CompileCtx):
        def set_timeout(pkt):
            conn = pkt.skb.nfct
            if conn is not None:
                conn.timeout_policy = dict(self.policy)
        return set_timeout


@dataclass
class CtExpectObject(NftObject):
    """nft_ct_expect_obj_init(): l3proto ip or ip6 (an inet table's default is neither)."""

    l4proto: int = 6
    dport: int = 0
    timeout_ms: int = 0
    size: int = 0
    l3proto: str = "ip"

    def lines(self, stateless: bool) -> list[str]:
        return [f"protocol {L4_NAMES.get(self.l4proto, self.l4proto)}", f"dport {self.dport}",
                f"timeout {format_time(self.timeout_ms / 1000)}", f"size {self.size}", f"l3proto {self.l3proto}"]

    def config(self, stateless: bool) -> dict:
        return {"protocol": L4_NAMES.get(self.l4proto, self.l4proto), "dport": self.dport,
                "timeout": self.timeout_ms, "size": self.size, "l3proto": self.l3proto}

    def kernel_refusal(self, family: str) -> str | None:
        return None if self.l3proto in ("ip", "ip6") else "Address family not supported by protocol"


@dataclass
class SynproxyObject(NftObject):
    mss: int | None = None
    wscale: int | None = None
    flags: int = 0  # NF_SYNPROXY_OPT_*

    def lines(self, stateless: bool) -> list[str]:
        out = []
        if self.mss is not None:
            out.append(f"mss {self.mss}")
        if self.wscale is not None:
            out.append(f"wscale {self.wscale}")
        if self.flags & (NF_SYNPROXY_OPT_TIMESTAMP | NF_SYNPROXY_OPT_SACK_PERM):
            out.append(f"{'timestamp' if self.flags & NF_SYNPROXY_OPT_TIMESTAMP else ''} "
                       f"{'sack-perm' if self.flags & NF_SYNPROXY_OPT_SACK_PERM else ''}")
        return out

    def config(self, stateless: bool) -> dict:
        out = {}
        if self.mss is not None:
            out["mss"] = self.mss
        if self.wscale is not None:
            out["wscale"] = self.wscale
        flags = [name for bit, name in ((NF_SYNPROXY_OPT_TIMESTAMP, "timestamp"),
                                        (NF_SYNPROXY_OPT_SACK_PERM, "sack-perm")) if self.flags & bit]
        if flags:
            out["flags"] = flags if len(flags) > 1 else flags[0]
        return out

    def evaluator(self, ctx: CompileCtx):
        """nft_synproxy_obj_eval(): the statement's eval with the object's settings."""
        return nft_synproxy_do_eval(NfSynproxyInfo(self.flags, self.wscale or 0, self.mss or 0))



# -------------------------------------------------------------- statements

class ObjRef(Stmt):
    """nft_objref: `counter name "c"`, `quota name "q"`, `limit name "l"`,
    `synproxy name "s"`, `ct helper|timeout|expectation set "x"`, the name
    given or looked up in a map (nft_objref_map_eval(): a miss breaks the rule)."""

    WORDS = {"counter": "counter name", "quota": "quota name", "limit": "limit name", "synproxy": "synproxy name",
             "ct helper": "ct helper set", "ct timeout": "ct timeout set", "ct expectation": "ct expectation set"}

    def __init__(self, kind: str, name: str | None = None, map_expr: MapExpr | None = None, loc=None):
        self.kind, self.name, self.map_expr, self.loc = kind, name, map_expr, loc
        self.objects: dict[str, NftObject] = {}  # bound: name -> the table's object
        self.needs_conntrack = kind.startswith("ct ") or kind == "synproxy"
        self.uses_synproxy = kind == "synproxy"

    def maps(self) -> list[MapExpr]:
        return [self.map_expr] if self.map_expr is not None else []

    def text(self, pctx: PrintCtx) -> str:
        target = f'"{self.name}"' if self.map_expr is None else self.map_expr.text(pctx)
        return f"{self.WORDS[self.kind]} {target}"

    def json(self, pctx: PrintCtx) -> list[dict]:
        if self.map_expr is None:
            return [{self.kind: self.name}]
        return [{self.kind: selector_json(self.map_expr, pctx)}]

    def names(self) -> list[str]:
        if self.map_expr is None:
            return [self.name]
        return [elem.data for elem in self.map_expr.ref.set.elements]

    def bind(self, objects: dict) -> str | None:
        """nft_objref_init(): each name must be an object of this kind in the
        table (ENOENT); the map's names are checked as its elements are."""
        bound = {}
        for name in self.names():
            obj = objects.get((self.kind, name))
            if obj is None:
                return ENOENT
            bound[name] = obj
        self.objects = bound
        return None

    def hook_refusal(self, family: str, hook: str, chain_type: str) -> str | None:
        """nft_synproxy_obj_validate(): synproxy only at input and forward."""
        if self.kind == "synproxy" and hook not in ("input", "forward"):
            return "Operation not supported"
        return None

    def compile(self, ctx: CompileCtx):
        evals = {name: obj.evaluator(ctx) for name, obj in self.objects.items()}
        if self.map_expr is None:
            return evals[self.name]
        lookup = self.map_expr.lookup(ctx)

        def objref_map(pkt):
            name = lookup(pkt)
            if name is None:
                return NFT_BREAK
            return evals[name](pkt)
        return objref_map
