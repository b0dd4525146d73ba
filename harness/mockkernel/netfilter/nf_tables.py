"""nf_tables: the ruleset, its transactions and its hooks
(net/netfilter/nf_tables_api.c, nft_chain_nat.c; nftables src/rule.c for
listing). The datapath is in nf_tables_core.py.

`NfTables` is a namespace's nf_tables state (`net.nft`). `execute()` runs
the commands of one `nft` invocation as the kernel runs a batch: applied in
place by a Transaction that can undo them, validated at commit where
something needs it (and replayed to place a validation error), any refusal
undoing all of it. A commit compiles the chains the transaction changed into
closures (nft_exprs; a rule once, until it or a set it looks up changes) and
(re)binds each base chain to its hook: filter and route chains as HookEntries
on `net.nf_hooks` at their priority (inet tables register for IPv4 and IPv6,
netdev ingress and egress chains as NFPROTO_NETDEV hook 0 and 1 for their devices), nat chains
through nf_nat_register_fn() as the NAT core's lookups (of IPv4, IPv6, or for
inet both). A base chain keeps its
registration (and so its place among equal priorities) while its hook, type
and priority stay the same. Rules using conntrack hold one nf_ct_netns_get() per family.

Commands are checked as nft checks them first (its cache: missing tables
and chains with its misspelling suggestions, named sets, types) and then as
the kernel does (ENOENT, EEXIST, EBUSY, EOPNOTSUPP and EMLINK from
nft_table_validate(): NAT only in nat chains at their hooks, reject not in
postrouting, `rt mtu` only at forward, output and postrouting, no jump loops), with nft's messages and locations.

Handles follow the kernel: tables are numbered per namespace, chains, sets
(anonymous ones too) and rules per table, in the order nft creates them.
Flowtables (nf_tables_newflowtable(), nf_tables_delflowtable()) are objects of
their table with their own handle; a commit keeps each one's flow table
(nf_flow_table_core.py) and registers its ingress hook on its devices
(nft_register_flowtable_net_hooks()). Left out: objects, table flags, chain
renames, set element updates from the datapath, NFT_MSG_GETGEN.
"""
from __future__ import annotations

import contextlib
import copy
import gc
import json
from dataclasses import dataclass, field

from harness.journey import RuleCounter
from harness.mockkernel.netfilter import nf_nat, nft_json
from harness.mockkernel.netfilter.core import (HOOK_NAMES, NF_ACCEPT, NF_ARP_IN, NF_ARP_OUT, NF_NETDEV_EGRESS,
                                               NF_NETDEV_INGRESS, NFPROTO_ARP, NFPROTO_BRIDGE, NFPROTO_INET,
                                               NFPROTO_IPV4, NFPROTO_IPV6, NFPROTO_NETDEV)
from harness.mockkernel.netfilter.nf_conntrack_core import nf_ct_netns_get, nf_ct_netns_put
from harness.mockkernel.netfilter.nf_synproxy import nf_synproxy_fini, nf_synproxy_init
from harness.mockkernel.netfilter.nf_tables_bridge import nft_bridge_refusal
from harness.mockkernel.netfilter.nft_dynset import Meter
from harness.mockkernel.netfilter.nf_flow_table_core import NfFlowtable, nf_flow_table_free
from harness.mockkernel.netfilter.nf_flow_table_inet import NF_FLOWTABLE_TYPES
from harness.mockkernel.netfilter.nft_flow_offload import FlowOffload
from harness.mockkernel.netfilter.nf_tables_core import (BaseChainHook, RtChain, RtRule, compile_chain,
                                                         new_rt_chain)
from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_exprs import (NAT_HOOKS, Counter, Fib, MapExpr, Match, Nat, PrintCtx,
                                                    Reject, SetRef, Verdict, VerdictMap, fib_refused, rule_text,
                                                    selector_parts)
from harness.mockkernel.netfilter.nft_parser import (ChainSpec, Command, NftError, NftErrors, ParseCtx, SetSpec,
                                                     element_error, parse, prio_text, resolve_elements)
from harness.mockkernel.netfilter.nft_objects import NftObject, ObjRef
from harness.mockkernel.netfilter.nft_rt import loads_tcpmss, tcpmss_refused
from harness.mockkernel.netfilter.nft_set import (NftSet, SetError, add_elements, delete_elements, expired,
                                                  format_elements, format_time)

PF = {"ip": NFPROTO_IPV4, "inet": NFPROTO_INET, "ip6": NFPROTO_IPV6, "netdev": NFPROTO_NETDEV,
      "bridge": NFPROTO_BRIDGE, "arp": NFPROTO_ARP}
HOOK_NUMBERS = {name: i for i, name in enumerate(HOOK_NAMES)}
# the NAT cores a nat chain of each family joins (nft_chain_nat.c: inet's both)
NAT_FAMILIES = {"ip": (NFPROTO_IPV4,), "ip6": (NFPROTO_IPV6,), "inet": (NFPROTO_IPV4, NFPROTO_IPV6)}
# the conntrack a table of each family gets (nf_ct_netns_get(): inet's, the bridge's and netdev's both)
CT_FAMILIES = {"ip": (NFPROTO_IPV4,), "ip6": (NFPROTO_IPV6,)}
BOTH_CT_FAMILIES = (NFPROTO_IPV4, NFPROTO_IPV6)
NETDEV_HOOKS = {"ingress": NF_NETDEV_INGRESS, "egress": NF_NETDEV_EGRESS}
# nft_chain_filter.c nft_chain_filter_arp: input and output only (forward is EOPNOTSUPP)
ARP_HOOKS = {"input": NF_ARP_IN, "output": NF_ARP_OUT}
CHAIN_TYPE_HOOKS = {"filter": set(HOOK_NAMES) | set(NETDEV_HOOKS), "nat": {"prerouting", "input", "output",
                                                                      "postrouting"},
                    "route": {"output"}}
REJECT_HOOKS = {"prerouting", "input", "forward", "output", "ingress"}
ENOENT = "No such file or directory"
EEXIST = "File exists"
EBUSY = "Device or resource busy"
EOPNOTSUPP = "Operation not supported"
EMLINK = "Too many links"
EINVAL = "Invalid argument"


# ------------------------------------------------------------------ model

@dataclass
class NftRule:
    handle: int
    stmts: list
    comment: object = None
    xt: object = None  # the iptables rule it was made from (iptables-nft)

    def text(self, pctx: PrintCtx) -> str:
        return rule_text(self.stmts, self.comment, pctx)


@dataclass
class NftChain:
    name: str
    handle: int
    base: ChainSpec | None = None
    policy: str = "accept"
    rules: list[NftRule] = field(default_factory=list)
    # a base chain made with counters (NFTA_CHAIN_COUNTERS, as iptables-nft
    # makes its builtin chains): the packets its policy decided
    stats: Counter | None = None


@dataclass
class NftTable:
    family: str
    name: str
    handle: int
    chains: dict[str, NftChain] = field(default_factory=dict)
    sets: dict[str, NftSet] = field(default_factory=dict)
    objects: dict[tuple[str, str], NftObject] = field(default_factory=dict)  # (kind, name): counters, quotas...
    flowtables: dict[str, "NftFlowtable"] = field(default_factory=dict)
    hgenerator: int = 0  # table->hgenerator

    def alloc_handle(self) -> int:
        self.hgenerator += 1
        return self.hgenerator


@dataclass
class NftFlowtable:
    """struct nft_flowtable: its hook (always ingress) and priority, the devices of
    its hook list in the order they were added, and its flags (NFT_FLOWTABLE_COUNTER,
    NFT_FLOWTABLE_HW_OFFLOAD)."""

    name: str
    handle: int
    priority: int
    devices: list[str] = field(default_factory=list)
    counter: bool = False
    offload: bool = False

    def key(self, table: NftTable) -> tuple:
        """What names its flow table across commits (and across iptables-nft's copies)."""
        return table.family, table.name, self.name, self.handle


@dataclass
class Ruleset:
    tables: list[NftTable] = field(default_factory=list)
    table_handle: int = 0  # nft_net->table_handle

    def find(self, family: str, name: str) -> NftTable | None:
        return next((t for t in self.tables if t.family == family and t.name == name), None)


# ------------------------------------------------------------------ hooks

@dataclass
class Registration:
    signature: tuple  # (family, type, hook, priority, devices)
    hook: BaseChainHook
    handle: object  # HookEntry, or the NAT core's registration


class FlowtableHook:
    """A flowtable's ingress hook: its type's hook function (nf_flow_table_inet.py)
    for the packets its devices receive."""

    def __init__(self, flow_table: NfFlowtable, hookfn, devices: set[str]):
        self.flow_table, self.type_hook, self.devices = flow_table, hookfn, devices

    def hookfn(self, skb, state) -> int:
        if state.in_dev.name not in self.devices:
            return NF_ACCEPT
        return self.type_hook(self.flow_table, skb, state)


# ------------------------------------------------------------------ state

@dataclass
class TableChanges:
    """What a transaction changed in one table, for its commit to compile."""

    chains: set[str] = field(default_factory=set)  # chains whose rules or policy changed
    sets: set[str] = field(default_factory=set)  # named sets whose elements changed
    replaced: set[int] = field(default_factory=set)  # handles of rules replaced


class TableRuntime:
    """A table's compiled chains, kept across commits as the kernel keeps each
    chain's rule blob and rebuilds only the chains a transaction changed
    (nf_tables_commit_chain_prepare()). A chain keeps its RtChain for its
    life, so the jumps compiled into other chains stay valid, and its
    compiled rules by handle, so a recompile compiles only the rules that
    are new, replaced, or look up a set whose elements changed (lookups are
    built from the elements at compile time)."""

    def __init__(self, net, table: NftTable):
        self.net, self.table = net, table
        self.chains: dict[str, RtChain] = {}
        self.sources: dict[str, NftChain] = {}  # the chain each RtChain was compiled from
        self.compiled: dict[str, dict[int, RtRule]] = {}  # chain -> rule handle -> RtRule
        # chain -> handle of each rule that needs conntrack -> the families whose conntrack it takes
        self.conntrack: dict[str, dict[int, tuple[int, ...]]] = {}
        self.synproxy: dict[str, set[int]] = {}  # chain -> handles of its rules with a SYN proxy
        self.update(TableChanges())

    @property
    def needs_conntrack(self) -> bool:
        return any(self.conntrack.values()) or self.uses_synproxy

    @property
    def conntrack_families(self) -> set[int]:
        """The families whose conntrack the table's rules take (nf_ct_netns_get() in each
        expression's init), a SYN proxy its table's."""
        families = {pf for rules in self.conntrack.values() for pfs in rules.values() for pf in pfs}
        if self.uses_synproxy:
            families.update(CT_FAMILIES.get(self.table.family, BOTH_CT_FAMILIES))
        return families

    def _conntrack_families(self, rule) -> tuple[int, ...]:
        """nf_ct_netns_get()'s families for `rule`: its table's (an inet table's both), or
        a statement's own (Stmt.conntrack_family: nft_nat_init()'s NAT family)."""
        families = set()
        for stmt in rule.stmts:
            if stmt.needs_conntrack:
                own = getattr(stmt, "conntrack_family", None)
                families.update(CT_FAMILIES[own] if own else CT_FAMILIES.get(self.table.family, BOTH_CT_FAMILIES))
        return tuple(sorted(families))

    @property
    def uses_synproxy(self) -> bool:
        """A synproxy statement or object (nft_synproxy_do_init(): conntrack and the proxy's hooks)."""
        return any(self.synproxy.values()) or any(kind == "synproxy" for kind, _ in self.table.objects)

    def update(self, changes: TableChanges) -> None:
        table, changed = self.table, set(changes.chains)
        for name in self.chains.keys() - table.chains.keys():
            for state in (self.chains, self.sources, self.compiled, self.conntrack, self.synproxy):
                del state[name]
        for name, chain in table.chains.items():
            if self.sources.get(name) is not chain:  # new, or deleted and made again
                changed.add(name)
                self.chains.setdefault(name, new_rt_chain(table, name))
                self.compiled[name], self.conntrack[name], self.synproxy[name] = {}, {}, set()
        stale = set(changes.replaced)
        if changes.sets:
            for name, chain in table.chains.items():
                users = [r.handle for r in chain.rules if any(_uses_set(r, s) for s in changes.sets)]
                if users:
                    changed.add(name)
                    stale.update(users)
        for name in changed:
            self._compile(table.chains[name], stale)

    def _compile(self, chain: NftChain, stale: set[int]) -> None:
        cache = self.compiled[chain.name]
        for handle in stale & cache.keys():
            del cache[handle]
        fresh = [rule for rule in chain.rules if rule.handle not in cache]
        compile_chain(self.net, self.table, chain, self.chains, cache)
        handles = {rule.handle for rule in chain.rules}
        for handle in cache.keys() - handles:
            del cache[handle]
        conntrack = self.conntrack[chain.name]
        for handle in conntrack.keys() - handles:
            del conntrack[handle]
        conntrack.update((r.handle, self._conntrack_families(r)) for r in fresh
                         if any(s.needs_conntrack for s in r.stmts))
        synproxy = self.synproxy[chain.name]
        synproxy.intersection_update(handles)
        synproxy.update(r.handle for r in fresh if any(s.uses_synproxy for s in r.stmts))
        self.sources[chain.name] = chain


class NfTables:
    """struct nftables_pernet: the committed ruleset, its compiled chains and
    their registrations."""

    def __init__(self, net) -> None:
        self.net = net
        self.ruleset = Ruleset()
        self.base_seq = 0  # nft_net->base_seq: a new generation per commit, for readers that cache
        self.runtime: dict[int, TableRuntime] = {}  # id(table) ->
        self.registrations: dict[tuple, Registration] = {}
        self.flow_tables: dict[tuple, NfFlowtable] = {}  # NftFlowtable.key() -> its flow table
        self.flowtable_registrations: dict[tuple, Registration] = {}
        self.ct_families: set[int] = set()  # the families whose conntrack this ruleset holds
        self.synproxy_families: set[int] = set()  # the families whose SYN proxy hooks it holds

    def execute(self, text: str, source: str | None, opts: "ListOptions", check_only: bool = False) -> str:
        """Parse and run one nft invocation as nfnetlink_rcv_batch() runs its
        batch; returns what nft prints. Raises NftError (nothing changed).

        Every command is applied to the live ruleset through a Transaction that
        can undo it. A command nft itself refuses (its cache checks) stops
        everything: nothing reached the kernel. A command the kernel refuses is
        recorded and the batch goes on, as the kernel processes every message;
        any refusal aborts it. Without refusals the commit first validates the
        tables that need it (nf_tables_validate()); a table that fails makes
        the kernel abort and replay the batch (-EAGAIN) with that table (and any
        table the replay creates) in NFT_VALIDATE_DO, where each new rule or
        element revalidates it, so the refusals fall on the commands that made
        the table invalid and every later one. Handles taken stay taken.
        `nft -c` validates on the abort path (NFNL_ABORT_VALIDATE) and replays
        once, with only the table that failed in NFT_VALIDATE_DO: a table the
        batch creates is not, and a replay without errors passes the check."""
        numeric_proto = types.NUMERIC_PROTO.set(opts.numeric_proto)
        try:
            return self._execute(text, source, opts, check_only)
        finally:
            types.NUMERIC_PROTO.reset(numeric_proto)

    def _execute(self, text: str, source: str | None, opts: "ListOptions", check_only: bool) -> str:
        with _without_cyclic_gc():
            devices = {d.name: d.ifindex for d in self.net.devices.values()}
            replay: set[int] | None = None
            while True:
                txn = Transaction(self, opts, replay, new_tables_validated=not check_only)
                output = txn.process(parse(text, source, ParseCtx(devices)))
                if txn.errors:
                    txn.abort()
                    raise NftErrors(txn.errors)  # the kernel's refusals, one record a refused command
                invalid = None if check_only and replay is not None else txn.validate()
                if invalid is None:
                    break
                txn.abort()
                replay = (replay or set()) | {id(invalid)}
            if check_only or not txn.changed:
                txn.abort()
            else:
                self.commit(txn.touched)
            return output

    def batch(self, fn):
        """iptables-nft's transaction: fn(work) -> (result, changed) on a copy
        of the ruleset; committed when it returns changed, discarded if it
        raises. Its tables are new objects, so a commit compiles them all."""
        work = copy.deepcopy(self.ruleset)
        result, changed = fn(work)
        if changed:
            self.ruleset = work
            self.commit({})
        return result

    def flow_table(self, key: tuple) -> NfFlowtable:
        """The flow table of the flowtable `key` names (made by the commit that adds it,
        or by the first rule compiled that uses it)."""
        flow_table = self.flow_tables.get(key)
        if flow_table is None:
            family, table, name, _ = key
            flow_table = self.flow_tables[key] = NfFlowtable(self.net, family, table, name)
        return flow_table

    def commit(self, touched: dict[int, TableChanges]) -> None:
        """nf_tables_commit(): compile what the transaction changed (by table
        id) and the tables not compiled yet, then bind base chains to their
        hooks, and flowtables to theirs."""
        runtime, updated = {}, set()
        for table in self.ruleset.tables:
            known = self.runtime.get(id(table))
            if known is None or known.table is not table:
                known = TableRuntime(self.net, table)
                updated.add(id(table))
            elif id(table) in touched:
                known.update(touched[id(table)])
                updated.add(id(table))
            runtime[id(table)] = known
        self.runtime = runtime
        self.base_seq += 1
        wanted: dict[tuple, tuple] = {}
        for compiled in runtime.values():
            table = compiled.table
            for chain in table.chains.values():
                if chain.base is not None:
                    spec = chain.base
                    signature = (table.family, spec.type, spec.hook, spec.priority, tuple(spec.devices))
                    wanted[(table.family, table.name, chain.name)] = (signature, compiled.chains[chain.name],
                                                                      id(table) in updated)
        for key, reg in list(self.registrations.items()):
            if key not in wanted or wanted[key][0] != reg.signature:
                self._unregister(reg)
                del self.registrations[key]
        for key, (signature, rt_chain, recompiled) in wanted.items():
            if key not in self.registrations:
                self.registrations[key] = self._register(signature, rt_chain)
            elif recompiled:
                self.registrations[key].hook.set_chain(rt_chain)  # its hops name rules that may be gone
        self._commit_flowtables()
        ct_families = {pf for compiled in runtime.values() for pf in compiled.conntrack_families}
        for pf in sorted(ct_families - self.ct_families):
            nf_ct_netns_get(self.net, pf)
        for pf in sorted(self.ct_families - ct_families):
            nf_ct_netns_put(self.net, pf)
        self.ct_families = ct_families
        synproxy_families = {pf for compiled in runtime.values() if compiled.uses_synproxy
                             for pf in CT_FAMILIES.get(compiled.table.family, BOTH_CT_FAMILIES)}
        for pf in sorted(synproxy_families - self.synproxy_families):
            nf_synproxy_init(self.net, pf)
        for pf in sorted(self.synproxy_families - synproxy_families):
            nf_synproxy_fini(self.net, pf)
        self.synproxy_families = synproxy_families

    def _commit_flowtables(self) -> None:
        """Each flowtable's flow table kept while the flowtable is (its counter flag as
        now), freed when it goes (nf_flow_table_free()); its hook registered at
        NF_NETDEV_INGRESS at its priority, for its devices (one registration per
        flowtable here, the kernel's one per device), again when they change."""
        flowtables = {ft.key(t): ft for t in self.ruleset.tables for ft in t.flowtables.values()}
        for key in [k for k in self.flow_tables if k not in flowtables]:
            nf_flow_table_free(self.flow_tables.pop(key))
        for key, reg in list(self.flowtable_registrations.items()):
            if key not in flowtables or reg.signature != (flowtables[key].priority, tuple(flowtables[key].devices)):
                self.net.nf_hooks.unregister(reg.handle)
                del self.flowtable_registrations[key]
        for key, ft in flowtables.items():
            flow_table = self.flow_table(key)
            flow_table.counter = ft.counter
            if key not in self.flowtable_registrations and ft.devices:
                signature = (ft.priority, tuple(ft.devices))
                hook = FlowtableHook(flow_table, NF_FLOWTABLE_TYPES[key[0]], set(ft.devices))
                handle = self.net.nf_hooks.register(NFPROTO_NETDEV, NF_NETDEV_INGRESS, ft.priority,
                                                    f"flowtable {' '.join(map(str, key[:3]))}", hook.hookfn)
                self.flowtable_registrations[key] = Registration(signature, hook, handle)

    def _register(self, signature: tuple, rt_chain: RtChain) -> Registration:
        family, chain_type, hook, priority, devices = signature
        base_hook = BaseChainHook(rt_chain, chain_type, list(devices))
        name, fn = f"nft {rt_chain.id}", base_hook.hookfn
        if family == "netdev":
            handle = self.net.nf_hooks.register(NFPROTO_NETDEV, NETDEV_HOOKS[hook], priority, name, fn)
        elif family == "arp":
            handle = self.net.nf_hooks.register(NFPROTO_ARP, ARP_HOOKS[hook], priority, name, fn)
        elif chain_type == "nat" and family in NAT_FAMILIES:
            handle = nf_nat.nf_nat_register_fn(self.net, HOOK_NUMBERS[hook], priority, name, fn, NAT_FAMILIES[family])
        else:
            handle = self.net.nf_hooks.register(PF[family], HOOK_NUMBERS[hook], priority, name, fn)
        return Registration(signature, base_hook, handle)

    def _unregister(self, reg: Registration) -> None:
        family, chain_type = reg.signature[:2]
        if chain_type == "nat" and family in NAT_FAMILIES:
            nf_nat.nf_nat_unregister_fn(self.net, reg.handle)
        else:
            self.net.nf_hooks.unregister(reg.handle)


# ------------------------------------------------------------------ commands

@dataclass
class ListOptions:
    handles: bool = False  # -a
    stateless: bool = False  # -s
    json: bool = False  # -j
    numeric_proto: bool = False  # -p


class Transaction:
    """One batch applied to the live ruleset (nf_tables_api.c's NFT_MSG_*
    handlers, with nft's own checks before them), undoable as the kernel's
    commit list is: each list or dict a command changes (a table's chains or
    sets, a chain's rules, a set's elements) is copied the first time, so
    abort() puts the originals back and a batch costs what it changes.
    Handles taken stay taken (the kernel does not roll back
    table->hgenerator); only a refusal by nft itself gives them back.

    `replay` is None on the first pass, else the ids of the tables the kernel
    replays in NFT_VALIDATE_DO; tables the replay creates are in it too when
    `new_tables_validated` (a commit's replay sets nft_net->validate_state,
    which a new table starts from)."""

    def __init__(self, nft: NfTables, opts: ListOptions, replay: set[int] | None = None,
                 new_tables_validated: bool = True):
        self.ruleset, self.net, self.opts, self.replay = nft.ruleset, nft.net, opts, replay
        self.new_tables_validated = new_tables_validated
        self.changed = False
        self.errors: list[NftError] = []  # the kernel's refusals, in batch order
        self.touched: dict[int, TableChanges] = {}  # by table id: what the commit compiles
        self.undo: list[tuple] = []  # (object, attribute, original value)
        self.saved: set[tuple] = set()
        self.handles = (self.ruleset.table_handle, [(t, t.hgenerator) for t in self.ruleset.tables])
        self.need_validation: set[int] = set()  # NFT_VALIDATE_NEED tables, by id
        self.created: set[int] = set()  # new tables in NFT_VALIDATE_DO
        self.table_errors: dict[int, str | None] = {}  # DO tables: the last walk's error (None: valid)
        self.new_sets: set[int] = set()  # sets this batch creates (by id): nft may still change their flags

    def process(self, commands: list[Command]) -> str:
        """Apply every command; the kernel's refusals are collected in `errors`.
        A refusal by nft itself undoes everything and is raised."""
        output = []
        for cmd in commands:
            try:
                output.append(self.apply(cmd))
            except NftError as err:
                if not _from_kernel(err):
                    self.abort()
                    self.ruleset.table_handle = self.handles[0]
                    for table, hgenerator in self.handles[1]:
                        table.hgenerator = hgenerator
                    raise
                self.errors.append(err)
        return "".join(output)

    def apply(self, cmd: Command) -> str:
        result = getattr(self, f"{cmd.op}_{cmd.obj}")(cmd)
        if cmd.op != "list":
            self.changed = True
        return result or ""

    def abort(self) -> None:
        for obj, attr, value in reversed(self.undo):
            setattr(obj, attr, value)
        self.undo.clear()

    # -- undo records

    def _save(self, obj, attr: str) -> None:
        """Record obj.attr as it was before this transaction first changes it."""
        key = (id(obj), attr)
        if key not in self.saved:
            self.saved.add(key)
            self.undo.append((obj, attr, getattr(obj, attr)))

    def _own(self, obj, attr: str):
        """obj.attr (a list or dict), copied for this transaction to change."""
        if (id(obj), attr) not in self.saved:
            self._save(obj, attr)
            setattr(obj, attr, copy.copy(getattr(obj, attr)))
        return getattr(obj, attr)

    def _changes(self, table: NftTable) -> TableChanges:
        return self.touched.setdefault(id(table), TableChanges())

    def _rules(self, table: NftTable, chain: NftChain) -> list[NftRule]:
        self._changes(table).chains.add(chain.name)
        return self._own(chain, "rules")

    def _elements(self, table: NftTable, nset: NftSet) -> list:
        self._changes(table).sets.add(nset.name)  # lookups are built from the elements at commit
        return self._own(nset, "elements")

    # -- validation (nft_table_validate())

    def validate(self) -> NftTable | None:
        """nf_tables_validate() at commit: the first table needing validation
        that fails it, or None."""
        return next((t for t in self.ruleset.tables
                     if id(t) in self.need_validation and table_error(t) is not None), None)

    def _validity_changed(self, table: NftTable, cmd: Command, refusable: bool) -> None:
        """After a new rule or set elements: outside NFT_VALIDATE_DO the table
        needs validation at commit if what was added is something validation
        can refuse (NAT, reject, a jump; the kernel marks any expression with a
        ->validate op, which gives the same verdicts); in it, the whole table
        is validated now and its error is this command's. What cannot be
        refused leaves the last walk's answer as it was."""
        if self.replay is None or (id(table) not in self.replay and id(table) not in self.created):
            if refusable:
                self.need_validation.add(id(table))
            return
        if refusable or id(table) not in self.table_errors:
            self.table_errors[id(table)] = table_error(table)
        error = self.table_errors[id(table)]
        if error is not None:
            raise NftError(f"Could not process rule: {error}", cmd.loc)

    def _shrunk(self, table: NftTable) -> None:
        """Something left the table: a walk may now answer differently."""
        self.table_errors.pop(id(table), None)

    # -- lookups (nft's cache checks and the kernel's ENOENT)

    def table(self, cmd: Command, suggest: str | None = "table", kernel: bool = True) -> NftTable:
        """The command's table. A missing one is nft's error: with a suggestion
        from table_lookup_fuzzy() (suggest="table") or, for rules, from the
        tables holding a chain of a similar name (suggest="chain")."""
        table = self.ruleset.find(cmd.family, cmd.table)
        if table is not None:
            return table
        if suggest == "table":
            fuzzy = _fuzzy(cmd.table, self.ruleset.tables, lambda t: t.name)
        else:
            chains = [(t, c) for t in self.ruleset.tables for c in t.chains.values()]
            hit = _fuzzy(cmd.name, chains, lambda tc: tc[1].name) if suggest == "chain" else None
            fuzzy = hit[0] if hit else None
        if fuzzy is not None:
            raise NftError(f"{ENOENT}; did you mean table ‘{fuzzy.name}’ in family {fuzzy.family}?",
                           cmd.locs["table"])
        raise NftError(f"Could not process rule: {ENOENT}" if kernel else ENOENT, cmd.locs["table"])

    def chain(self, cmd: Command, table: NftTable, suggest: bool = True, kernel: bool = True) -> NftChain:
        if cmd.handle is not None and cmd.name is None:
            chain = next((c for c in table.chains.values() if c.handle == cmd.handle), None)
            loc = cmd.locs["handle"]
        else:
            chain, loc = table.chains.get(cmd.name), cmd.locs["name"]
        if chain is None:
            chains = [(t, c) for t in self.ruleset.tables for c in t.chains.values()]
            hit = _fuzzy(cmd.name, chains, lambda tc: tc[1].name) if suggest and cmd.name else None
            if hit is not None:
                raise NftError(f"{ENOENT}; did you mean chain ‘{hit[1].name}’ in table {hit[0].family} "
                               f"‘{hit[0].name}’?", loc)
            raise NftError(f"Could not process rule: {ENOENT}" if kernel else ENOENT, loc)
        return chain

    def named_set(self, cmd: Command, table: NftTable, kernel: bool, any_kind: bool = False) -> NftSet:
        """The command's set (or map). A missing name is nft's error, with a
        suggestion if one is near (not for `list`), else the kernel's when
        nft leaves the check to it; a set of the other kind is ENOENT."""
        if cmd.handle is not None and cmd.name is None:
            nset = next((s for s in table.sets.values() if s.handle == cmd.handle), None)
            loc = cmd.locs["handle"]
        else:
            nset, loc = table.sets.get(cmd.name), cmd.locs["name"]
        if nset is None and cmd.name is not None and cmd.op != "list" and \
                (not kernel or self._nearest_set(cmd.name) is not None):
            raise self.set_not_found(cmd.name, loc)
        if nset is None or (cmd.obj == "map") != nset.is_map and not any_kind:
            raise NftError(f"Could not process rule: {ENOENT}" if kernel else ENOENT, loc)
        return nset

    # -- tables

    def add_table(self, cmd: Command) -> None:
        if self.ruleset.find(cmd.family, cmd.table) is None:
            self.ruleset.table_handle += 1
            table = NftTable(cmd.family, cmd.table, self.ruleset.table_handle)
            self._own(self.ruleset, "tables").append(table)
            if self.new_tables_validated:
                self.created.add(id(table))

    def create_table(self, cmd: Command) -> None:
        if self.ruleset.find(cmd.family, cmd.table) is not None:
            raise NftError(f"Could not process rule: {EEXIST}", cmd.locs["table"])
        self.add_table(cmd)

    def delete_table(self, cmd: Command) -> None:
        if cmd.handle is not None:
            table = next((t for t in self.ruleset.tables if t.family == cmd.family and t.handle == cmd.handle),
                         None)
            if table is None:
                raise NftError(f"Could not process rule: {ENOENT}", cmd.locs["handle"])
        else:
            table = self.table(cmd)
        self._own(self.ruleset, "tables").remove(table)

    def flush_table(self, cmd: Command) -> None:
        table = self.table(cmd)
        for chain in table.chains.values():
            self._rules(table, chain).clear()
        self._shrunk(table)

    def flush_ruleset(self, cmd: Command) -> None:
        self._save(self.ruleset, "tables")
        self.ruleset.tables = [t for t in self.ruleset.tables if cmd.family_given and t.family != cmd.family]

    # -- chains

    def add_chain(self, cmd: Command, exclusive: bool = False) -> None:
        table = self.table(cmd, suggest=None, kernel=False)
        chain = table.chains.get(cmd.name)
        if chain is not None and exclusive:
            raise NftError(f"Could not process rule: {EEXIST}", cmd.locs["name"])
        if cmd.chain is not None:
            self._check_chain_spec(cmd, table)
        if cmd.policy is not None and cmd.chain is None and (chain is None or chain.base is None):
            raise NftError(f"Could not process rule: {EOPNOTSUPP}", cmd.locs["policy"])
        if chain is None:
            chain = NftChain(cmd.name, table.alloc_handle(), cmd.chain)
            self._own(table, "chains")[cmd.name] = chain
            self._changes(table)
        elif cmd.chain is not None and (chain.base is None or _spec_key(chain.base) != _spec_key(cmd.chain)):
            raise NftError(f"Could not process rule: {EOPNOTSUPP}", cmd.loc)
        if cmd.policy is not None:
            self._save(chain, "policy")
            chain.policy = cmd.policy
            self._changes(table).chains.add(chain.name)

    def create_chain(self, cmd: Command) -> None:
        self.add_chain(cmd, exclusive=True)

    def _check_chain_spec(self, cmd: Command, table: NftTable) -> None:
        spec = cmd.chain
        if table.family in ("bridge", "arp") and spec.type != "filter":  # nft_chain_filter.c has no other
            raise NftError(f"Could not process rule: {ENOENT}", spec.type_loc)
        if spec.hook not in CHAIN_TYPE_HOOKS[spec.type] or (table.family == "inet" and spec.hook in NETDEV_HOOKS) \
                or (table.family == "arp" and spec.hook not in ARP_HOOKS):
            raise NftError(f"Could not process rule: {EOPNOTSUPP}", cmd.loc)

    def delete_chain(self, cmd: Command) -> None:
        table = self.table(cmd)
        chain = self.chain(cmd, table)
        if any(_jumps_to(rule, chain.name) for other in table.chains.values() for rule in other.rules):
            raise NftError(f"Could not process rule: {EBUSY}", cmd.locs.get("name") or cmd.locs["handle"])
        del self._own(table, "chains")[chain.name]
        self._changes(table)
        self._shrunk(table)

    def flush_chain(self, cmd: Command) -> None:
        table = self.table(cmd)
        self._rules(table, self.chain(cmd, table)).clear()
        self._shrunk(table)

    # -- rules

    def add_rule(self, cmd: Command) -> None:
        self._new_rule(cmd, after=True)

    def insert_rule(self, cmd: Command) -> None:
        self._new_rule(cmd, after=False)

    def replace_rule(self, cmd: Command) -> None:
        table = self.table(cmd, suggest="chain")
        chain = self.chain(cmd, table)
        stmts = self._rule_stmts(cmd, table)
        index = self._rule_index(chain, cmd.handle, cmd.locs["handle"])
        self._rules(table, chain)[index] = self._bind_rule(cmd, table, stmts, cmd.handle)
        self._changes(table).replaced.add(cmd.handle)
        self._shrunk(table)  # the rule replaced may have been what the table's last walk refused
        self._validity_changed(table, cmd, refusable(stmts))

    def delete_rule(self, cmd: Command) -> None:
        table = self.table(cmd, suggest="chain")
        chain = self.chain(cmd, table)
        del self._rules(table, chain)[self._rule_index(chain, cmd.handle, cmd.locs["handle"])]
        self._shrunk(table)

    def _new_rule(self, cmd: Command, after: bool) -> None:
        """nf_tables_newrule(): the handle is allocated before the expressions
        are initialised, so a rule the kernel refuses still uses one."""
        table = self.table(cmd, suggest="chain")
        chain = self.chain(cmd, table)
        stmts = self._rule_stmts(cmd, table)
        if cmd.index is not None and cmd.index >= len(chain.rules):
            raise NftError(ENOENT, cmd.locs["position"])
        if cmd.position is not None:
            index = self._rule_index(chain, cmd.position, cmd.locs["position"]) + after
        elif cmd.index is not None:
            index = cmd.index + after
        else:
            index = len(chain.rules) if after else 0
        self._rules(table, chain).insert(index, self._bind_rule(cmd, table, stmts, table.alloc_handle()))
        self._validity_changed(table, cmd, refusable(stmts))

    @staticmethod
    def _rule_index(chain: NftChain, handle: int, loc) -> int:
        for i, rule in enumerate(chain.rules):
            if rule.handle == handle:
                return i
        raise NftError(f"Could not process rule: {ENOENT}", loc)

    def _rule_stmts(self, cmd: Command, table: NftTable) -> list:
        """The rule's statements with named sets bound (nft's own check), and
        its anonymous sets created: they take handles before the rule. The
        statements are the command's own (a replay parses the batch again)."""
        stmts = cmd.rule.stmts
        uses = [(ref, stmt, None) for stmt in stmts for ref in [_set_ref(stmt)] if ref is not None]
        uses += [(m.ref, stmt, m) for stmt in stmts for m in stmt.maps()]
        for ref, stmt, map_expr in uses:
            if ref.name is not None:
                self._bind_set(ref, table, stmt, map_expr)
        for ref, _, _ in uses:
            if ref.name is None:
                ref.set.handle = table.alloc_handle()
        for meter in (s for s in stmts if isinstance(s, Meter)):
            self._declare_meter(meter, table)
        return stmts

    def _declare_meter(self, meter: Meter, table: NftTable) -> None:
        """The set nft declares for a meter (implicit_set_declaration()), sent
        before the rule: a set of that name is EEXIST, and the rule binding
        it EINVAL; another meter's is EOPNOTSUPP (the flags differ from an
        anonymous set's), and the rule binding that bound set EBUSY (the rule
        has its handle by then: nf_tables_newrule())."""
        if meter.name in table.sets:
            self.errors.append(NftError(f"Could not process rule: {EEXIST}", meter.key_loc))
            table.alloc_handle()
            raise NftError(f"Could not process rule: {EINVAL}", meter.loc)
        if any(m.name == meter.name for m in _meters(table)):
            self.errors.append(NftError(f"Could not process rule: {EOPNOTSUPP}", meter.key_loc))
            table.alloc_handle()
            raise NftError(f"Could not process rule: {EBUSY}", meter.loc)
        meter.set.handle = table.alloc_handle()

    def _bind_rule(self, cmd: Command, table: NftTable, stmts: list, handle: int) -> NftRule:
        """nf_tables_newrule()'s expression init: jump targets must exist, and the
        lab kernel's refusals of bridge expressions (nft_bridge_refusal())."""
        for stmt in stmts:
            refusal = nft_bridge_refusal(stmt, table.family) or stmt.kernel_refusal(table.family)
            if refusal is not None:
                loc = stmt.loc if isinstance(stmt, Match) else (getattr(stmt, "keyword_loc", None) or stmt.loc) \
                    if isinstance(stmt, Reject) else stmt.span  # a reject is located at its keyword
                raise NftError(f"Could not process rule: {refusal}", loc)
            for verdict in _verdicts(stmt):
                self._check_jump(verdict, table)
            if isinstance(stmt, FlowOffload):
                ft = table.flowtables.get(stmt.flowtable)  # nft_flow_offload_init(): nft_flowtable_lookup()
                if ft is None:
                    raise NftError(f"Could not process rule: {ENOENT}", stmt.span)
                stmt.key = ft.key(table)
            if isinstance(stmt, ObjRef):
                refusal = stmt.bind(table.objects)
                if refusal is not None:
                    raise NftError(f"Could not process rule: {refusal}", stmt.loc if stmt.name else stmt.span)
        return NftRule(handle, stmts, cmd.rule.comment)

    def _bind_set(self, ref: SetRef, table: NftTable, stmt, map_expr: MapExpr | None) -> None:
        """nft's checks of a named set in a rule (evaluate.c): a lookup takes
        a set or a map, `vmap` a verdict map, `map` a map whose key and data
        types are those of its key expression and of the statement."""
        nset = table.sets.get(ref.name)
        if nset is None:
            raise self.set_not_found(ref.name, ref.loc)
        if (isinstance(stmt, VerdictMap) or map_expr is not None) and not nset.is_map:
            raise NftError("Expression is not a map", ref.loc)
        if isinstance(stmt, VerdictMap) and nset.data_type != "verdict":
            raise NftError(f"datatype mismatch: expected netfilter verdict, expression has type "
                           f"{nset.data_type.desc}", stmt.span)
        if getattr(stmt, "sets_eval_flag", False) and id(nset) in self.new_sets:
            nset.flags.add("dynamic")  # stmt_evaluate_set(): NFT_SET_EVAL on a set nft has yet to send
        if map_expr is not None:
            self._check_map(nset, stmt, map_expr)
        elif isinstance(stmt, Match) and stmt.rhs is ref and len(nset.key_types) == 1 \
                and stmt.lhs.dtype is not None and stmt.lhs.dtype.desc != nset.key_types[0].desc:
            # expr_evaluate_relational(): datatype_equal() of the key and the set's type
            raise NftError(f"datatype mismatch, expected {stmt.lhs.dtype.desc}, expression has type "
                           f"{nset.key_types[0].desc}", ref.loc, (stmt.loc,))
        ref.set = nset

    @staticmethod
    def _check_map(nset: NftSet, stmt, map_expr: MapExpr) -> None:
        key_type = types.type_of(nset.key_types)
        if key_type.name != map_expr.key_type.name:
            raise NftError(f"datatype mismatch, map expects {key_type.desc}, mapping expression has type "
                           f"{map_expr.key_type.desc}", map_expr.ref.loc, (map_expr.key_loc,))
        data = nset.data_type
        if data == "verdict" or data.name not in {t.name for t in map_expr.wants}:
            has = "netfilter verdict" if data == "verdict" else data.desc
            # a NAT statement is named by its keyword, the others by their whole text
            related = stmt.loc if isinstance(stmt, Nat) else stmt.span
            raise NftError(f"datatype mismatch: expected {map_expr.wants[0].desc}, expression has type {has}",
                           map_expr.loc, (related,))
        map_expr.dtype = data

    def set_not_found(self, name: str, loc) -> NftError:
        """nft's set_not_found(): ENOENT, with the named set or map of the
        nearest name in any table (set_lookup_fuzzy())."""
        hit = self._nearest_set(name)
        if hit is None:
            return NftError(ENOENT, loc)
        table, nset = hit
        return NftError(f"{ENOENT}; did you mean {'map' if nset.is_map else 'set'} ‘{nset.name}’ in table "
                        f"{table.family} ‘{table.name}’?", loc)

    def _nearest_set(self, name: str) -> tuple[NftTable, NftSet] | None:
        named = [(t, s) for t in self.ruleset.tables for s in t.sets.values() if not s.anonymous]
        return _fuzzy(name, named, lambda ts: ts[1].name)

    @staticmethod
    def _check_jump(verdict: Verdict, table: NftTable) -> None:
        target = table.chains.get(verdict.chain)
        if target is None:
            raise NftError(f"Could not process rule: {ENOENT}", verdict.loc)
        if target.base is not None:
            raise NftError(f"Could not process rule: {EOPNOTSUPP}", verdict.loc)

    # -- sets

    def add_set(self, cmd: Command, exclusive: bool = False) -> None:
        table = self.table(cmd, suggest=None, kernel=False)
        spec = cmd.set
        existing = table.sets.get(spec.name)
        if existing is not None:
            if exclusive:
                raise NftError(f"Could not process rule: {EEXIST}", cmd.locs["name"])
            nset = existing
        else:
            if {"interval", "dynamic"} <= set(spec.flags):
                # nft_select_set_ops(): no backend takes NFT_SET_INTERVAL with NFT_SET_EVAL
                # (rbtree and pipapo have no update operation, the hashes no intervals)
                raise NftError(f"Could not process rule: {EOPNOTSUPP}", cmd.loc)
            nset = _new_set(spec, table.alloc_handle())
            self.new_sets.add(id(nset))
            self._own(table, "sets")[spec.name] = nset
        if spec.elements:
            self._add_elements(nset, spec.elements, table, cmd)

    add_map = add_set

    def create_set(self, cmd: Command) -> None:
        self.add_set(cmd, exclusive=True)

    create_map = create_set

    def delete_set(self, cmd: Command) -> None:
        """`delete set` and `delete map` take either (nft checks only the name)."""
        table = self.table(cmd)
        nset = self.named_set(cmd, table, kernel=True, any_kind=True)
        if any(_uses_set(rule, nset.name) for chain in table.chains.values() for rule in chain.rules):
            raise NftError(f"Could not process rule: {EBUSY}", cmd.locs.get("name") or cmd.locs["handle"])
        del self._own(table, "sets")[nset.name]

    delete_map = delete_set

    def flush_set(self, cmd: Command) -> None:
        table = self.table(cmd)
        self._elements(table, self.named_set(cmd, table, kernel=False)).clear()
        self._shrunk(table)

    flush_map = flush_set

    def add_element(self, cmd: Command) -> None:
        table = self.table(cmd, kernel=False)
        nset = table.sets.get(cmd.name)
        if nset is None:
            raise self.set_not_found(cmd.name, cmd.locs["name"])
        self._add_elements(nset, cmd.elements, table, cmd)

    create_element = add_element

    def delete_element(self, cmd: Command) -> None:
        table = self.table(cmd, kernel=False)
        nset = table.sets.get(cmd.name)
        if nset is None:
            raise self.set_not_found(cmd.name, cmd.locs["name"])
        elements = resolve_elements(cmd.elements, nset, need_data=False)
        self._elements(table, nset)
        try:
            delete_elements(nset, elements)
        except SetError as err:
            raise element_error(err, cmd.elements, cmd.loc) from None
        self._shrunk(table)

    def _add_elements(self, nset: NftSet, syntax, table: NftTable, cmd: Command) -> None:
        def verdict(v: Verdict) -> Verdict:
            if not isinstance(v, Verdict):  # a word in a verdict's place: datatype.c verdict_type has no parser
                raise NftError("Can't parse symbolic netfilter verdict expressions", v.loc)
            if v.chain is not None:
                self._check_jump(v, table)
            return v
        # nft refuses data for a set's elements itself in a declaration, the kernel in `add element`
        not_a_map = NftError("set is not a map", origin="netlink: ") if cmd.obj == "element" else \
            NftError("set is not a map", cmd.set.elements_loc)
        elements = resolve_elements(syntax, nset, verdict, not_a_map=not_a_map)
        self._elements(table, nset)
        try:
            add_elements(nset, elements, self.net.clock.now, merge=False)
        except SetError as err:
            raise element_error(err, syntax, cmd.loc) from None
        self._validity_changed(table, cmd, any(isinstance(e.data, Verdict) and e.data.chain for e in elements))

    # -- listing

    # -- stateful objects (nf_tables_newobj(), nf_tables_delobj(), nf_tables_getobj())

    def add_obj(self, cmd: Command, exclusive: bool = False) -> None:
        """A new object takes the table's next handle; adding an existing one
        changes nothing but its configuration is checked (nft_obj_init)."""
        table = self.table(cmd, suggest=None, kernel=False)
        obj = cmd.object
        if getattr(obj, "l3proto", False) is None:
            obj.l3proto = table.family
        refusal = obj.kernel_refusal(table.family)
        if refusal is not None:
            raise NftError(f"Could not process rule: {refusal}", cmd.locs.get("refusal", cmd.loc))
        key = (cmd.obj_kind, cmd.name)
        if key in table.objects:
            if exclusive:
                raise NftError(f"Could not process rule: {EEXIST}", cmd.locs["name"])
            return
        obj.handle = table.alloc_handle()
        self._own(table, "objects")[key] = obj

    def create_obj(self, cmd: Command) -> None:
        self.add_obj(cmd, exclusive=True)

    def _object(self, cmd: Command, table: NftTable) -> NftObject:
        if cmd.handle is not None:
            obj = next((o for o in table.objects.values() if o.kind == cmd.obj_kind and o.handle == cmd.handle), None)
        else:
            obj = table.objects.get((cmd.obj_kind, cmd.name))
        if obj is None:
            raise NftError(f"Could not process rule: {ENOENT}" if cmd.op == "delete" else ENOENT,
                           cmd.locs.get("name") or cmd.locs["handle"])
        return obj

    def delete_obj(self, cmd: Command) -> None:
        table = self.table(cmd)
        obj = self._object(cmd, table)
        if any(isinstance(stmt, ObjRef) and obj in stmt.objects.values()
               for chain in table.chains.values() for rule in chain.rules for stmt in rule.stmts):
            raise NftError(f"Could not process rule: {EBUSY}", cmd.locs.get("name") or cmd.locs["handle"])
        del self._own(table, "objects")[(obj.kind, obj.name)]

    def list_obj(self, cmd: Command) -> str:
        table = self.table(cmd, suggest=None, kernel=False)
        return self._objects_text([(table, [self._object(cmd, table)])])

    def reset_obj(self, cmd: Command) -> str:
        out = self.list_obj(cmd)
        self._object(cmd, self.table(cmd, suggest=None, kernel=False)).reset()
        return out

    def list_objs(self, cmd: Command) -> str:
        """`list counters|quotas|limits|synproxys [table F T]`: each table that has one."""
        tables = [self.table(cmd, suggest=None, kernel=False)] if cmd.table else self._tables(cmd)
        return self._objects_text([(t, [o for o in t.objects.values() if o.kind == cmd.obj_kind]) for t in tables])

    def reset_objs(self, cmd: Command) -> str:
        """`reset counters|quotas`: listed as they were, then zeroed (the dump's reset)."""
        out = self.list_objs(cmd)
        tables = [self.table(cmd, suggest=None, kernel=False)] if cmd.table else self._tables(cmd)
        for table in tables:
            for obj in table.objects.values():
                if obj.kind == cmd.obj_kind:
                    obj.reset()
        return out

    def _objects_text(self, tables: list) -> str:
        if self.opts.json:
            return self._json([o.json(t, self.opts.stateless) for t, objs in tables for o in objs])
        return "".join(f"table {t.family} {t.name} {{\n" + "".join(o.text(self.opts.stateless, self.opts.handles)
                                                                    for o in objs) + "}\n"
                       for t, objs in tables if objs)

    def _tables(self, cmd: Command) -> list[NftTable]:
        return [t for t in self.ruleset.tables if not cmd.family_given or t.family == cmd.family]

    def _json(self, objects: list[dict]) -> str:
        return json.dumps({"nftables": [nft_json.METAINFO] + objects}) + "\n"

    def list_ruleset(self, cmd: Command) -> str:
        if self.opts.json:
            return self._json(nft_json.ruleset_objects(self._tables(cmd), self.net.clock.now, self.opts.stateless))
        return "".join(self._table_text(t) for t in self._tables(cmd))

    def list_table(self, cmd: Command) -> str:
        table = self.table(cmd, suggest=None, kernel=False)
        if self.opts.json:
            return self._json(nft_json.ruleset_objects([table], self.net.clock.now, self.opts.stateless))
        return self._table_text(table)

    def list_chain(self, cmd: Command) -> str:
        table = self.table(cmd, suggest=None, kernel=False)
        chain = self.chain(cmd, table, suggest=False, kernel=False)
        if self.opts.json:
            pctx = PrintCtx(now=self.net.clock.now, stateless=self.opts.stateless, family=table.family)
            return self._json([nft_json.chain_json(table, chain)] +
                              [nft_json.rule_json(table, chain, r, pctx) for r in chain.rules])
        return f"table {table.family} {table.name} {{\n{self._chain_text(table, chain, self.opts.handles)}}}\n"

    def list_set(self, cmd: Command) -> str:
        table = self.table(cmd, suggest=None, kernel=False)
        nset = self.named_set(cmd, table, kernel=False)
        if self.opts.json:
            return self._json([nft_json.set_json(table, nset, self.net.clock.now)])
        return f"table {table.family} {table.name} {{\n{self._set_text(nset, self.opts.handles)}}}\n"

    list_map = list_set

    def list_tables(self, cmd: Command) -> str:
        if self.opts.json:
            return self._json([nft_json.table_json(t) for t in self._tables(cmd)])
        return "".join(f"table {t.family} {t.name}\n" for t in self._tables(cmd))

    def list_chains(self, cmd: Command) -> str:
        if self.opts.json:
            return self._json([nft_json.chain_json(t, c) for t in self._tables(cmd) for c in t.chains.values()])
        return self._list_each(cmd, lambda table: "".join(
            self._chain_head(table, c, self.opts.handles) + "\t}\n" for c in table.chains.values()))

    def list_sets(self, cmd: Command) -> str:
        wanted = lambda s: s.is_map == (cmd.obj == "maps")  # noqa: E731
        if self.opts.json:
            return self._json([nft_json.set_json(t, s, self.net.clock.now) for t in self._tables(cmd)
                               for s in t.sets.values() if wanted(s)])
        return self._list_each(cmd, lambda table: "".join(
            self._set_text(s, self.opts.handles) for s in table.sets.values() if wanted(s)))

    list_maps = list_sets

    def list_meters(self, cmd: Command) -> str:
        if self.opts.json:
            return self._json([nft_json.set_json(t, m.set, self.net.clock.now) for t in self._tables(cmd)
                               for m in _meters(t)])
        return self._list_each(cmd, lambda table: "".join(
            self._set_text(m.set, self.opts.handles, self._pctx(table)) for m in _meters(table)))

    # -- flowtables (nf_tables_api.c; nft_flow_offload.py, nf_flow_table_*.py)

    def add_flowtable(self, cmd: Command, exclusive: bool = False) -> None:
        """nf_tables_newflowtable(). An existing flowtable is EEXIST for `create`, else
        updated (nft_flowtable_update()): a hook or priority other than its own (nft sends
        hook 0 priority 0 when the block names none) and a change of `flags offload` are
        EOPNOTSUPP, devices it has are skipped, the others added, and its counter flag
        follows the command. A new one takes the table's next handle first, then:
        families other than ip, ip6 and inet have no flowtable type (ENOENT), a hook
        other than ingress is EOPNOTSUPP (nft_flowtable_parse_hook()), a device named
        twice EEXIST (nf_tables_parse_netdev_hooks()), and then its hooks register."""
        table = self.table(cmd, kernel=False)
        spec = cmd.flowtable
        ft = table.flowtables.get(cmd.name)
        if ft is not None:
            if exclusive:
                raise NftError(f"Could not process rule: {EEXIST}", cmd.locs["name"])
            if spec.hook not in (None, "ingress") or spec.priority != ft.priority or spec.offload != ft.offload:
                raise NftError(f"Could not process rule: {EOPNOTSUPP}", cmd.loc)
            added = self._flowtable_devices(cmd, table, ft, [d for d in spec.devices or () if d not in ft.devices])
            self._save(ft, "devices")
            self._save(ft, "counter")
            ft.devices, ft.counter = ft.devices + added, spec.counter
            return
        handle = table.alloc_handle()
        if table.family not in NF_FLOWTABLE_TYPES:  # nft_flowtable_type_get()
            raise NftError(f"Could not process rule: {ENOENT}", cmd.loc)
        if spec.hook not in (None, "ingress"):
            raise NftError(f"Could not process rule: {EOPNOTSUPP}", cmd.loc)
        ft = NftFlowtable(cmd.name, handle, spec.priority, counter=spec.counter, offload=spec.offload)
        ft.devices = self._flowtable_devices(cmd, table, ft, list(spec.devices or ()))
        self._own(table, "flowtables")[cmd.name] = ft

    def create_flowtable(self, cmd: Command) -> None:
        self.add_flowtable(cmd, exclusive=True)

    def _flowtable_devices(self, cmd: Command, table: NftTable, ft: NftFlowtable, devices: list[str]) -> list[str]:
        """The devices a flowtable's hooks take: each once (nf_tables_parse_netdev_hooks():
        EEXIST), none another flowtable of the table has (nft_register_flowtable_net_hooks():
        EEXIST), and with `flags offload` none that exists here: the type's setup
        (nf_flow_table_offload_setup()) needs ndo_setup_tc, which the veth, dummy and
        bridge devices lack (EOPNOTSUPP). A name no device has is kept, as a netdev
        chain's is: its hook waits for the device (nft_netdev_hook_alloc() of 6.16 on)."""
        if len(set(devices)) != len(devices) or any(
                d in other.devices for other in table.flowtables.values() if other is not ft for d in devices):
            raise NftError(f"Could not process rule: {EEXIST}", cmd.loc)
        if ft.offload and any(self.net.dev_by_name(d) is not None for d in devices):
            raise NftError(f"Could not process rule: {EOPNOTSUPP}", cmd.loc)
        return devices

    def delete_flowtable(self, cmd: Command) -> None:
        """nf_tables_delflowtable(): ENOENT at its name or handle; with devices only those
        leave it (nft_delflowtable_hook(): one it does not have is ENOENT); a flowtable a
        rule's `flow add` holds is EBUSY (flowtable->use)."""
        table = self.table(cmd, suggest=None)
        where = cmd.locs.get("name") or cmd.locs["handle"]
        if cmd.name is not None:
            ft = table.flowtables.get(cmd.name)
        else:
            ft = next((f for f in table.flowtables.values() if f.handle == cmd.handle), None)
        if ft is None:
            raise NftError(f"Could not process rule: {ENOENT}", where)
        if cmd.flowtable is not None:
            gone = cmd.flowtable.devices or []
            if any(d not in ft.devices for d in gone):
                raise NftError(f"Could not process rule: {ENOENT}", cmd.loc)
            self._save(ft, "devices")
            ft.devices = [d for d in ft.devices if d not in gone]
            return
        if any(_flowtable_user(rule, ft.name) for chain in table.chains.values() for rule in chain.rules):
            raise NftError(f"Could not process rule: {EBUSY}", where)
        del self._own(table, "flowtables")[ft.name]

    def list_flowtable(self, cmd: Command) -> str:
        """do_list_flowtable(): the table's line around the flowtable; a missing one is
        nft's ENOENT at its name."""
        table = self.table(cmd, suggest=None, kernel=False)
        ft = table.flowtables.get(cmd.name)
        if ft is None:
            raise NftError(ENOENT, cmd.locs["name"])
        if self.opts.json:
            return self._json([nft_json.flowtable_json(table, ft)])
        return f"table {table.family} {table.name} {{\n{self._flowtable_text(table, ft)}}}\n"

    def list_flowtables(self, cmd: Command) -> str:
        """do_list_flowtables(): every table (of the family), its flowtables inside."""
        if self.opts.json:
            return self._json([nft_json.flowtable_json(t, ft) for t in self._tables(cmd)
                               for ft in t.flowtables.values()])
        return self._list_each(cmd, lambda table: "".join(self._flowtable_text(table, ft)
                                                          for ft in table.flowtables.values()))

    def _flowtable_text(self, table: NftTable, ft: NftFlowtable) -> str:
        """src/rule.c flowtable_print_declaration(): the priority as prio2str() names it for
        NFPROTO_NETDEV ingress, the devices sorted (netlink_delinearize_flowtable()'s qsort)."""
        lines = [f"\tflowtable {ft.name} {{" + (f" # handle {ft.handle}" if self.opts.handles else ""),
                 f"\t\thook ingress priority {prio_text(ft.priority, 'netdev', 'ingress')}"]
        if ft.devices:
            lines.append(f"\t\tdevices = {{ {', '.join(sorted(ft.devices))} }}")
        if ft.offload:
            lines.append("\t\tflags offload")
        if ft.counter:
            lines.append("\t\tcounter")
        return "\n".join(lines) + "\n\t}\n"

    def list_meter(self, cmd: Command) -> str:
        table = self.table(cmd, suggest=None, kernel=False)
        meter = next((m for m in _meters(table) if m.name == cmd.name), None)
        if meter is None:
            raise NftError(ENOENT, cmd.locs["name"])
        if self.opts.json:
            return self._json([nft_json.set_json(table, meter.set, self.net.clock.now)])
        return f"table {table.family} {table.name} {{\n{self._set_text(meter.set, self.opts.handles, self._pctx(table))}}}\n"

    def _pctx(self, table: NftTable) -> PrintCtx:
        return PrintCtx(now=self.net.clock.now, stateless=self.opts.stateless, family=table.family)

    def _list_each(self, cmd: Command, body) -> str:
        """`list chains|sets|maps`: every table, its objects back to back."""
        return "".join(f"table {t.family} {t.name} {{\n{body(t)}}}\n" for t in self._tables(cmd))

    def _table_text(self, table: NftTable) -> str:
        head = f"table {table.family} {table.name} {{" + (f" # handle {table.handle}" if self.opts.handles else "")
        items = [o.text(self.opts.stateless, self.opts.handles) for o in table.objects.values()]
        items += [self._set_text(s, self.opts.handles) for s in table.sets.values()]
        items += [self._flowtable_text(table, ft) for ft in table.flowtables.values()]
        items += [self._chain_text(table, c, self.opts.handles) for c in table.chains.values()]
        return head + "\n" + "\n".join(items) + "}\n"

    def _chain_head(self, table: NftTable, chain: NftChain, handles: bool) -> str:
        text = f"\tchain {chain.name} {{" + (f" # handle {chain.handle}" if handles else "") + "\n"
        if chain.base is not None:
            spec = chain.base
            device = f' device "{spec.devices[0]}"' if spec.devices else ""
            text += (f"\t\ttype {spec.type} hook {spec.hook}{device} priority "
                     f"{prio_text(spec.priority, table.family, spec.hook)}; policy {chain.policy};\n")
        return text

    def _chain_text(self, table: NftTable, chain: NftChain, handles: bool) -> str:
        pctx = PrintCtx(now=self.net.clock.now, stateless=self.opts.stateless, family=table.family)
        lines = [self._chain_head(table, chain, handles)]
        for rule in chain.rules:
            lines.append(f"\t\t{rule.text(pctx)}" + (f" # handle {rule.handle}" if handles else "") + "\n")
        return "".join(lines) + "\t}\n"

    def _set_text(self, nset: NftSet, handles: bool, pctx: PrintCtx | None = None) -> str:
        kind = "meter" if nset.meter else "map" if nset.is_map else "set"
        lines = [f"\t{kind} {nset.name} {{" + (f" # handle {nset.handle}" if handles else "")]
        if nset.typeof:
            data = f" : {nset.data_typeof}" if nset.is_map else ""
            lines.append(f"\t\ttypeof {nset.typeof}{data}")
        else:
            data = f" : {nset.data_type if isinstance(nset.data_type, str) else nset.data_type.name}" \
                if nset.is_map else ""
            lines.append(f"\t\ttype {nset.type_text()}{data}")
        if nset.size:
            lines.append(f"\t\tsize {nset.size}")
        # set_print_declaration(): "timeout" is left out of the test with a default
        # timeout, not out of the list it prints when another flag opens it
        shown = {"constant", "interval", "dynamic"} | ({"timeout"} if not nset.timeout else set())
        if nset.flags & shown:
            lines.append("\t\tflags " + ",".join(f for f in ("constant", "dynamic", "interval", "timeout")
                                                 if f in nset.flags))
        if nset.auto_merge:
            lines.append("\t\tauto-merge")
        if nset.timeout:
            lines.append(f"\t\ttimeout {format_time(nset.timeout)}")
        if nset.gc_interval:
            lines.append(f"\t\tgc-interval {format_time(nset.gc_interval)}")
        if nset.comment is not None:
            lines.append(f'\t\tcomment "{nset.comment}"')
        if any(not expired(e, self.net.clock.now) for e in nset.elements):
            lines.append(f"\t\telements = {format_elements(nset, self.net.clock.now, pctx)}")
        return "\n".join(lines) + "\n\t}\n"


def _spec_key(spec: ChainSpec) -> tuple:
    return spec.type, spec.hook, spec.priority, tuple(spec.devices)


def _new_set(spec: SetSpec, handle: int) -> NftSet:
    return NftSet(spec.name, spec.key_types, "verdict" if spec.data_type == "verdict" else spec.data_type,
                  set(spec.flags), handle=handle, timeout=spec.timeout, gc_interval=spec.gc_interval,
                  size=spec.size, auto_merge=spec.auto_merge, typeof=spec.typeof,
                  data_typeof=spec.data_typeof, comment=spec.comment)


def _verdicts(stmt) -> list[Verdict]:
    """The jumps and gotos a statement can take (vmap data included)."""
    if isinstance(stmt, Verdict) and stmt.chain:
        return [stmt]
    if isinstance(stmt, VerdictMap) and stmt.ref.name is None:
        return [e.data for e in stmt.ref.set.elements if e.data.chain]
    return []


def _targets(stmt, table: NftTable) -> list[str]:
    if isinstance(stmt, VerdictMap) and stmt.ref.name is not None:
        nset = table.sets[stmt.ref.name]
        return [e.data.chain for e in nset.elements if e.data.chain]
    return [v.chain for v in _verdicts(stmt)]


def _jumps_to(rule: NftRule, name: str) -> bool:
    return any(isinstance(s, Verdict) and s.chain == name or
               isinstance(s, VerdictMap) and any(e.data.chain == name for e in s.ref.set.elements)
               for s in rule.stmts)


def _flowtable_user(rule: NftRule, name: str) -> bool:
    return any(isinstance(s, FlowOffload) and s.flowtable == name for s in rule.stmts)


def _meters(table: NftTable) -> list[Meter]:
    """The table's meters, in the order their sets were made."""
    meters = [s for c in table.chains.values() for r in c.rules for s in r.stmts if isinstance(s, Meter)]
    return sorted(meters, key=lambda m: m.set.handle)


def _set_ref(stmt) -> SetRef | None:
    """The set a match looks up, or a verdict map's map."""
    if isinstance(stmt, VerdictMap):
        return stmt.ref
    rhs = getattr(stmt, "rhs", None)
    return rhs if isinstance(rhs, SetRef) else None


def _uses_set(rule: NftRule, name: str) -> bool:
    return any(ref.name == name for s in rule.stmts
               for ref in [_set_ref(s)] + [m.ref for m in s.maps()] if ref is not None)


@contextlib.contextmanager
def _without_cyclic_gc():
    """A batch allocates what outlives it (rules, compiled closures) and little
    garbage: the cyclic collector's passes over the growing heap find nothing
    and, for a 10k-rule load, cost as much as the load itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def table_error(table: NftTable) -> str | None:
    """nft_table_validate(): from every base chain, what its rules reach must
    suit its type and hook, and must not loop; the error of the first rule
    that does not (None: the table is valid)."""
    for chain in table.chains.values():
        if chain.base is not None:
            error = _chain_error(table, chain, chain, [])
            if error is not None:
                return error
    return None


def _chain_error(table: NftTable, base: NftChain, chain: NftChain, path: list[str]) -> str | None:
    if chain.name in path:
        return EMLINK
    hook = base.base.hook
    for rule in chain.rules:
        for stmt in rule.stmts:
            if isinstance(stmt, Nat) and (base.base.type != "nat" or hook not in NAT_HOOKS_BY_NAME[stmt.kind]):
                return EOPNOTSUPP
            if isinstance(stmt, Reject) and hook not in REJECT_HOOKS:
                return EOPNOTSUPP
            if tcpmss_refused(stmt, table.family, hook) or fib_refused(stmt, table.family, hook):
                return EOPNOTSUPP
            refusal = stmt.hook_refusal(table.family, hook, base.base.type)
            for part in selector_parts(stmt) if refusal is None else ():
                if hasattr(part, "hook_refusal"):  # ipsec, osf, socket: their validate()
                    refusal = refusal or part.hook_refusal(table.family, hook)
            if refusal is not None:
                return refusal
            for target in _targets(stmt, table):
                error = _chain_error(table, base, table.chains[target], path + [chain.name])
                if error is not None:
                    return error
    return None


def refusable(stmts: list) -> bool:
    """Whether nft_table_validate() can refuse a rule for these statements (NAT,
    reject, a jump, `rt mtu`, a statement with its own hook_refusal())."""
    return any(isinstance(s, (Nat, Reject, VerdictMap)) or isinstance(s, Verdict) and s.chain
               or loads_tcpmss(s) or any(isinstance(p, Fib) for p in selector_parts(s))
               or s.validates
               or any(hasattr(p, "hook_refusal") for p in selector_parts(s)) for s in stmts)


def _from_kernel(err: NftError) -> bool:
    """An error the kernel returned (nft prints it with the command's place),
    not one of nft's own checks."""
    return err.message.startswith("Could not process rule") or err.origin == "netlink: "


NAT_HOOKS_BY_NAME = {kind: {HOOK_NAMES[h] for h in hooks} for kind, hooks in NAT_HOOKS.items()}


def _fuzzy(name: str, candidates, key):
    """nft's misspell suggestion (src/misspell.c), including its distance quirks."""
    best, best_distance = None, None
    for obj in candidates:
        other = key(obj)
        longest, shortest = max(len(name), len(other)), min(len(name), len(other))
        if longest <= 1:
            continue
        threshold = max(-(-longest // 3), 1) if longest - shortest <= 1 else -(-(longest + 2) // 3)
        distance = _string_distance(other, name)
        if distance <= threshold and (best_distance is None or distance < best_distance):
            best, best_distance = obj, distance
    return best


def _string_distance(a: str, b: str) -> int:
    """string_distance() exactly as nft computes it: characters compared one
    position late (the terminating NUL included) and rows stored with a stride
    of len(b), so neighbouring cells overlap."""
    la, lb = len(a), len(b)
    sa, sb = a + "\0", b + "\0"
    cells = [0] * ((la + 1) * (lb + 1) + 1)

    def at(i: int, j: int) -> int:
        return i * lb + j

    for i in range(la + 1):
        cells[at(i, 0)] = i
    for j in range(lb + 1):
        cells[at(0, j)] = j
    for i in range(1, la + 1):
        for j in range(1, lb + 1):
            sub = 0 if sa[i] == sb[j] else 1
            value = min(cells[at(i - 1, j)] + 1, cells[at(i, j - 1)] + 1, cells[at(i - 1, j - 1)] + sub)
            if i > 1 and j > 1 and sa[i] == sb[j - 1] and sa[i - 1] == sb[j]:
                value = min(value, cells[at(i - 2, j - 2)] + sub)
            cells[at(i, j)] = value
    return cells[at(la, lb)]


# ------------------------------------------------------------------ observations

def counters(net) -> list[RuleCounter]:
    """Every rule with a counter, in listing order; the rule text is nft's
    listing with the counter's values left out (`... counter drop`)."""
    out = []
    nft = getattr(net, "nft", None)
    if nft is None:
        return out
    for table in nft.ruleset.tables:
        pctx = PrintCtx(now=net.clock.now, stateless=True, family=table.family)
        for chain in table.chains.values():
            for rule in chain.rules:
                for stmt in rule.stmts:
                    if isinstance(stmt, Counter):
                        out.append(RuleCounter(table.family, table.name, chain.name, rule.text(pctx).strip(),
                                               stmt.packets, stmt.bytes))
    return out
