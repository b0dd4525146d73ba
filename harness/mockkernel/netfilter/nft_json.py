"""`nft -j list ...`: the ruleset in nftables' JSON schema 1 (src/json.c).

Objects are listed as nft 1.0.6 lists them (metainfo, then per table: the
table, its sets and maps, its chains, then its rules), rules after the same
postprocessing as the text listing (nft_exprs.delinearize). Left out: JSON
input (`nft -j -f`).
"""
from __future__ import annotations

from harness.mockkernel.netfilter import nft_bitwise, nft_ct, nft_set_pipapo
from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_exprs import (Counter, Ct, CtSet, Fib, MapExpr, Match, Meta,
                                                    MetaSet, Nat, Notrack, Payload, PrintCtx, Prefix,
                                                    Range, Reject, SetRef, Value, Verdict, VerdictMap, Xt,
                                                    delinearize)
from harness.mockkernel.netfilter.nft_compat import XtCompat
from harness.mockkernel.netfilter.nft_exthdr import Exthdr6, TcpOption, TcpOptionSet
from harness.mockkernel.netfilter.nft_payload_set import PayloadSet
from harness.mockkernel.netfilter.nft_set import CATCHALL, expired, sort_elements

METAINFO = {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}


def table_json(table) -> dict:
    return {"table": {"family": table.family, "name": table.name, "handle": table.handle}}


def chain_json(table, chain) -> dict:
    out = {"family": table.family, "table": table.name, "name": chain.name, "handle": chain.handle}
    if chain.base is not None:  # 1.0.6 leaves a netdev chain's device out
        spec = chain.base
        out.update(type=spec.type, hook=spec.hook, prio=spec.priority, policy=chain.policy)
    return {"chain": out}


def flowtable_json(table, ft) -> dict:
    """src/json.c flowtable_print_json(): one device as a string, more as a list (sorted,
    as netlink_delinearize_flowtable() sorts them); no flags in 1.0.6's."""
    out = {"family": table.family, "name": ft.name, "table": table.name, "handle": ft.handle, "hook": "ingress",
           "prio": ft.priority}
    devices = sorted(ft.devices)
    if devices:
        out["dev"] = devices[0] if len(devices) == 1 else devices
    return {"flowtable": out}


def set_json(table, nset, now: float) -> dict:
    kind = "meter" if nset.meter else "map" if nset.is_map else "set"
    out = {"family": table.family, "name": nset.name, "table": table.name,
           "type": [t.name for t in nset.key_types] if len(nset.key_types) > 1 else nset.key_types[0].name,
           "handle": nset.handle}
    if nset.is_map:
        data = nset.data_type
        out["map"] = data if isinstance(data, str) else getattr(data, "base", data).name  # json.c: no "interval"
    if nset.comment is not None:
        out["comment"] = nset.comment
    if nset.size:
        out["size"] = nset.size
    flags = [f for f in ("constant", "interval", "timeout") if f in nset.flags]  # 1.0.6: no "dynamic"
    if flags:
        out["flags"] = flags
    if nset.timeout:
        out["timeout"] = int(nset.timeout)
    if nset.gc_interval:
        out["gc-interval"] = int(nset.gc_interval)
    if any(not expired(e, now) for e in nset.elements):
        out["elem"] = elements_json(nset, now)
    return {kind: out}


def elements_json(nset, now: float = 0.0) -> list:
    out = []
    for elem in sort_elements(nset):
        if expired(elem, now):
            continue
        if elem.key is CATCHALL:
            key = "*"
        elif nft_set_pipapo.is_pipapo(nset):
            key = nft_set_pipapo.element_json(nset.key_types, elem, _interval)
        elif nset.interval:
            key = _interval(nset.key_types[0], elem.key, elem.high)
        elif len(nset.key_types) > 1:
            key = {"concat": [value_json(t, k) for t, k in zip(nset.key_types, elem.key)]}
        elif nset.key_types[0].bitmask:
            key = flags_json(nset.key_types[0], elem.key)
        else:
            key = value_json(nset.key_types[0], elem.key)
        if nset.is_map:
            data = verdict_json(elem.data) if nset.data_type == "verdict" else value_json(nset.data_type, elem.data)
            key = [key, data]
        if elem.exprs is not None:  # set_elem_expr_json(): the value, its timeouts, its statements
            key = {"val": key}
            if elem.timeout is not None:
                key["timeout"] = int(elem.timeout)
            if elem.expires is not None:
                key["expires"] = int(max(elem.expires - now, 0.0))
            for stmt in elem.exprs:
                key.update(stmt_json(stmt, PrintCtx(now=now))[0])
            key = {"elem": key}
        out.append(key)
    return out


def flags_json(dtype, value):
    """Bits OR-ed as nft delinearizes them: a name, or nested `|` of two operands."""
    if value in dtype.names:
        return dtype.names[value]
    names = dtype.bit_names(value)
    tree = names[0] if names else 0
    for name in names[1:]:
        tree = {"|": [tree, name]}
    return tree


def _interval(dtype, low, high):
    if low == high:
        return value_json(dtype, low)
    plen = types.prefix_len(dtype, low, high)
    if plen is not None:
        return {"prefix": {"addr": value_json(dtype, low), "len": plen}}
    return range_json(dtype, low, high)


def range_json(dtype, low, high) -> dict:
    """json.c range_expr_json(): the ends with protocols as numbers
    (NFT_CTX_OUTPUT_NUMERIC_PROTO), services too."""
    if dtype is types.inet_proto or dtype is types.inet_service:
        return {"range": [low, high]}
    return {"range": [value_json(dtype, low), value_json(dtype, high)]}


def value_json(dtype, value):
    """A constant as json.c prints it: numbers for integer types, names for
    symbolic ones, lists for several bits, concatenations as `concat`."""
    if hasattr(dtype, "json_value"):  # a type of its own module prints its own JSON
        return dtype.json_value(value)
    if isinstance(dtype, types.ConcatType):
        return {"concat": [_interval(part.base, *v) if isinstance(part, types.IntervalType) else value_json(part, v)
                           for part, v in zip(dtype.parts, value)]}
    if isinstance(dtype, types.IntervalType):
        low, high = value
        if low == high and dtype.base.prefix_ok:  # as IntervalType.format(): one address a full-length prefix
            return {"prefix": {"addr": value_json(dtype.base, low), "len": dtype.base.size}}
        return _interval(dtype.base, low, high)
    if hasattr(dtype, "json_value"):  # types with a json.c printer of their own (time, ct label, ct event)
        return dtype.json_value(value)
    if dtype is types.boolean:
        return bool(value)
    if isinstance(dtype, types.BitmaskType):
        names = dtype.format(value).split(",")
        return names if len(names) > 1 else names[0]
    if isinstance(dtype, types.SymbolicType) and value not in dtype.names:
        return value  # symbolic_constant_json(): the base type's number
    if isinstance(dtype, (types.SymbolicType, types.Ipv4AddrType, types.Ipv6AddrType, types.EtherAddrType,
                          types.TcHandleType)):
        text = dtype.format(value)
        return int(text) if text.isdigit() else text
    if isinstance(dtype, types.IfaceIndexType):
        return dtype.format(value).strip('"')
    return value


def selector_json(lhs, ctx: PrintCtx) -> dict:
    if hasattr(lhs, "json"):  # a selector of its own module prints its own JSON
        return lhs.json(ctx)
    if lhs.is_binop:
        return nft_bitwise.tree_json(lhs.tree(), lhs.dtype, lambda node: selector_json(node, ctx), value_json)
    if isinstance(lhs, Payload):
        return {"payload": {"protocol": lhs.proto_name(ctx), "field": lhs.field.name}}
    if isinstance(lhs, Meta):
        return {"meta": {"key": lhs.key}}
    if isinstance(lhs, Ct):
        return {"ct": lhs.ct_json() if hasattr(lhs, "ct_json") else {"key": lhs.key}}
    if isinstance(lhs, Fib):
        return {"fib": {"result": lhs.result, "flags": list(lhs.flags)}}
    if isinstance(lhs, Exthdr6):
        return {"exthdr": lhs.json_text()}
    if isinstance(lhs, TcpOption):
        return {"tcp option": {"name": lhs.name, **({"field": lhs.field} if lhs.field else {})}}
    if isinstance(lhs, MapExpr):
        data = f"@{lhs.ref.name}" if lhs.ref.name else {"set": elements_json(lhs.ref.set)}
        return {"map": {"key": selector_json(lhs.key, ctx), "data": data}}
    return {"concat": [selector_json(p, ctx) for p in lhs.parts]}


def _right(match: Match, ctx: PrintCtx):
    rhs, dtype = match.rhs, match.lhs.dtype
    if isinstance(rhs, SetRef):
        return f"@{rhs.name}" if rhs.name else {"set": elements_json(rhs.set)}
    if isinstance(rhs, Range):
        return range_json(dtype, rhs.low, rhs.high)
    if isinstance(rhs, Prefix):  # json.c prefix_expr_json(): the address as its type prints in JSON
        return {"prefix": {"addr": value_json(dtype, rhs.addr), "len": rhs.plen}}
    return value_json(dtype, rhs.value)


def match_json(match: Match, ctx: PrintCtx) -> list[dict]:
    """As the text listing: a merged load is its fields again (raw `th`
    without a protocol), `x & bits == 0` is `!`, `x & bits != 0` is `in`."""
    lhs = match.lhs
    if isinstance(lhs, Payload) and len(lhs.fields) > 1:
        if lhs.proto == "th" and ctx.l4 not in ("tcp", "udp"):
            left = {"payload": {"base": "th", "offset": lhs.offset * 8, "len": lhs.bits}}
            return [{"match": {"op": "==" if match.op != "!=" else "!=", "left": left, "right": match.rhs.value}}]
        return [match_json(part, ctx)[0] for part in _split(match)]
    left, dtype = selector_json(lhs, ctx), lhs.dtype
    op = {"implicit": "in" if match.is_flags else "=="}.get(match.op, match.op)
    right = _right(match, ctx)
    if dtype is not None and dtype.bitmask and match.mask is None and match.op in ("==", "!=") \
            and isinstance(match.rhs, Value):
        right = dtype.names.get(match.rhs.value, match.rhs.value)  # a plain compare: a symbol or the number
    if match.mask is not None and dtype.bitmask and right == value_json(dtype, 0):
        op, right = ("!" if match.op == "==" else "in"), value_json(dtype, match.mask)
    elif match.mask is not None:
        mask = value_json(dtype, match.mask)
        if isinstance(match.rhs, SetRef) and isinstance(mask, list):
            mask = flags_json(dtype, match.mask)
        left = {"&": [left, mask]}
    return [{"match": {"op": op, "left": left, "right": right}}]


def _split(match: Match) -> list[Match]:
    payload, value, parts, remaining = match.lhs, match.rhs.value, [], match.lhs.bits
    for fld in payload.fields:
        remaining -= fld.bits
        parts.append(Match(Payload((fld,)), match.op, Value((value >> remaining) & ((1 << fld.bits) - 1))))
    return parts


def verdict_json(verdict: Verdict) -> dict:
    if verdict.chain:
        return {verdict.kind: {"target": verdict.chain}}
    return {verdict.kind: None}


def stmt_json(stmt, ctx: PrintCtx) -> list[dict]:
    """One statement as json.c prints it (an xt extension as its inner statement;
    one nft_compat runs, by its kind and name as xt_stmt_json() prints it)."""
    if hasattr(stmt, "json"):  # a statement of its own module prints itself
        return stmt.json(ctx)
    if isinstance(stmt, XtCompat):
        return [{"xt": {"type": stmt.kind, "name": stmt.name}}]
    if isinstance(stmt, Xt):
        return stmt_json(stmt.inner, ctx) if stmt.inner is not None else [{"xt": None}]
    if isinstance(stmt, Match):
        return match_json(stmt, ctx)
    if isinstance(stmt, Verdict):
        return [verdict_json(stmt)]
    if isinstance(stmt, VerdictMap):
        data = f"@{stmt.ref.name}" if stmt.ref.name else {"set": elements_json(stmt.ref.set)}
        return [{"vmap": {"key": selector_json(stmt.lhs, ctx), "data": data}}]
    if isinstance(stmt, Counter):
        return [{"counter": None if ctx.stateless else {"packets": stmt.packets, "bytes": stmt.bytes}}]
    if isinstance(stmt, nft_ct.CtKeySet):
        return [stmt.mangle_json(value_json, lambda node: selector_json(node, ctx))]
    if isinstance(stmt, nft_ct.ConnLimit):
        return [stmt.connlimit_json()]
    if isinstance(stmt, (MetaSet, CtSet)):
        key = {"meta": {"key": stmt.key}} if isinstance(stmt, MetaSet) else {"ct": {"key": stmt.key}}
        if not isinstance(stmt.value, int):
            value = selector_json(stmt.value, ctx)
        else:
            value = value_json(Meta.TYPES["priority"], stmt.value) if stmt.key == "priority" else stmt.value
        return [{"mangle": {"key": key, "value": value}}]
    if isinstance(stmt, PayloadSet):
        return [{"mangle": {"key": selector_json(stmt.lhs, ctx),
                            "value": value_json(stmt.fld.dtype, stmt.value)}}]
    if isinstance(stmt, TcpOptionSet):
        value = stmt.value if isinstance(stmt.value, int) else selector_json(stmt.value, ctx)
        return [{"mangle": {"key": selector_json(stmt.option, ctx), "value": value}}]
    if isinstance(stmt, Notrack):
        return [{"notrack": None}]
    if isinstance(stmt, Reject):
        if stmt.kind == "tcp reset":
            return [{"reject": {"type": "tcp reset"}}]
        return [{"reject": {"type": stmt.kind, "expr": stmt.CODE_TYPES[stmt.kind].format(stmt.code)}}]
    if isinstance(stmt, Nat):
        return [nat_json(stmt, ctx)]
    raise TypeError(f"no JSON for {stmt!r}")


def nat_json(nat: Nat, ctx: PrintCtx) -> dict:
    out = {}
    family = nat.shown_family(ctx)
    if family:
        out["family"] = family
    if nat.addr_map is not None:
        out["addr"] = selector_json(nat.addr_map, ctx)
    if nat.port_map is not None:
        out["port"] = selector_json(nat.port_map, ctx)
    if nat.addr:
        low, high = nat.addr
        plen = types.prefix_len(nat.addr_type, low, high) if low != high else None
        if plen is not None:
            out["addr"] = {"prefix": {"addr": nat.addr_type.format(low), "len": plen}}
        else:
            low, high = (nat.addr_type.format(a) for a in nat.addr)
            out["addr"] = low if low == high else {"range": [low, high]}
    if nat.ports:
        out["port"] = nat.ports[0] if nat.ports[0] == nat.ports[1] else {"range": list(nat.ports)}
    flags = [f for f in ("random", "fully-random", "persistent") if f in nat.flags] + (["netmap"] if nat.prefix else [])
    if flags:
        out["flags"] = flags if len(flags) > 1 else flags[0]
    if nat.prefix:
        out["type_flags"] = "prefix"
    return {nat.kind: out or None}


def rule_json(table, chain, rule, pctx: PrintCtx) -> dict:
    out = {"family": table.family, "table": table.name, "chain": chain.name, "handle": rule.handle}
    if rule.comment is not None:
        out["comment"] = rule.comment.text
    out["expr"] = [j for stmt, ctx in delinearize(rule.stmts, pctx) for j in stmt_json(stmt, ctx)]
    return {"rule": out}


def ruleset_objects(tables, now: float, stateless: bool) -> list[dict]:
    """The objects of `nft -j list ruleset` for these tables."""
    out = []
    for table in tables:
        out.append(table_json(table))
        out += [obj.json(table, stateless) for obj in table.objects.values()]
        out += [set_json(table, s, now) for s in table.sets.values()]
        out += [flowtable_json(table, ft) for ft in table.flowtables.values()]
        out += [chain_json(table, c) for c in table.chains.values()]
        pctx = PrintCtx(now=now, stateless=stateless, family=table.family)
        out += [rule_json(table, c, r, pctx) for c in table.chains.values() for r in c.rules]
    return out
