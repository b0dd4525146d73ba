"""`tc qdisc` and `tc class` (iproute2 6.1 tc/tc_qdisc.c, tc/tc_class.c and the
kinds' q_*.c): parsing each kind's options as tc does, sending what tc sends
(sched/sch_api.py is the kernel side), and printing the dump as tc prints it.

    tc qdisc add|change|replace|link|del dev X [handle H] root|parent CLASSID|clsact KIND [OPTIONS]
    tc [-s] qdisc [show [dev X]]
    tc [-s] class show dev X

Kinds modelled: pfifo, bfifo, tbf, noqueue, clsact. Another kind iproute2 knows is
an error naming it (not modelled); a word tc has no module for goes to the kernel as
tc sends it, which does not know it either. Parse errors print tc's message and
usage (exit 1); kernel refusals "Error: <extack>." (exit 2).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.mockkernel.cmd.args import Args, ToolError, not_modelled
from harness.mockkernel.cmd.iputils import device, duparg, invarg, matches
from harness.mockkernel.cmd.tc_util import (TC_H_ROOT, calc_xmitsize, get_qdisc_handle, get_rate64, get_size,
                                            get_tc_classid, get_time, rtable_cell_log, sprint_rate, sprint_size,
                                            sprint_tc_classid, sprint_time, tick2time)
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.sched import sch_ingress
from harness.mockkernel.sched.sch_api import qdisc_dump_order, tc_delete_qdisc, tc_modify_qdisc
from harness.mockkernel.sched.sch_fifo import Pfifo
from harness.mockkernel.sched.sch_tbf import PSCHED_SHIFT, TbfQopt

QDISC_USAGE = """Usage: tc qdisc [ add | del | replace | change | show ] dev STRING
       [ handle QHANDLE ] [ root | ingress | clsact | parent CLASSID ]
       [ estimator INTERVAL TIME_CONSTANT ]
       [ stab [ help | STAB_OPTIONS] ]
       [ ingress_block BLOCK_INDEX ] [ egress_block BLOCK_INDEX ]
       [ [ QDISC_KIND ] [ help | OPTIONS ] ]

       tc qdisc { show | list } [ dev STRING ] [ QDISC_ID ] [ invisible ]
Where:
QDISC_KIND := { [p|b]fifo | tbf | prio | cbq | red | etc. }
OPTIONS := ... try tc qdisc add <desired QDISC_KIND> help
STAB_OPTIONS := ... try tc qdisc add stab help
QDISC_ID := { root | ingress | handle QHANDLE | parent CLASSID }"""
# the q_*.c modules iproute2 6.1 builds: a kind the mock does not model is named as such
TC_QDISC_KINDS = ("atm", "cake", "cbq", "cbs", "choke", "codel", "drr", "dsmark", "etf", "ets", "fq", "fq_pie",
                  "gred", "hfsc", "hhf", "ingress", "mq", "mqprio", "multiq", "pie", "plug", "prio", "qfq", "red",
                  "rr", "sfb", "sfq", "skbprio", "taprio", "pfifo_head_drop", "pfifo_fast", "htb", "netem",
                  "fq_codel")
TC_H_CLSACT = 0xFFFFFFF1
FIFO_USAGE = "Usage: ... <[p|b]fifo | pfifo_head_drop> [ limit NUMBER ]"
TBF_USAGE = ("Usage: ... tbf limit BYTES burst BYTES[/BYTES] rate KBPS [ mtu BYTES[/BYTES] ]\n"
             "\t[ peakrate KBPS ] [ latency TIME ] [ overhead BYTES ] [ linklayer TYPE ]")


def parse_error(message: str) -> ToolError:
    """A kind's parse_qopt() failed: its message on stderr, tc exits 1."""
    return ToolError(message, 1)


@dataclass(frozen=True)
class QdiscUtil:
    """struct qdisc_util: a kind's option parser and printer, and what the kernel's
    class dump gives for its classes, as tc prints them."""

    parse_qopt: Callable[[str, Args, str], object]
    print_qopt: Callable[[object], str]
    print_classes: Callable[[object, str, bool], list[str]] = lambda q, on, stats: []


# ------------------------------------------------------------------ the kinds (q_*.c)

def fifo_parse_opt(kind: str, tokens: Args, dev: str) -> int | None:
    limit = None
    while tokens:
        token = tokens.pop()
        if token == "limit":
            value = tokens.pop()
            limit = get_size(value)
            if limit is None:
                raise parse_error(f'{kind}: Illegal value for "limit": "{value}"')
        elif token == "help":
            raise parse_error(FIFO_USAGE)
        else:
            raise parse_error(f'{kind}: unknown parameter "{token}"\n{FIFO_USAGE}')
    return limit


def fifo_print_opt(q) -> str:
    return f"limit {sprint_size(q.limit)}" if q.kind == "bfifo" else f"limit {q.limit}p"


def tbf_parse_opt(kind: str, tokens: Args, dev: str) -> TbfQopt:
    """q_tbf.c tbf_parse_opt()"""
    limit = latency = buffer = mtu = mpu = overhead = rate = peakrate = 0
    rcell_log = pcell_log = -1

    def illegal(name: str, value: str) -> ToolError:
        return parse_error(f'tbf: illegal value for "{name}": "{value}"')

    def duplicate(what: str) -> ToolError:
        return parse_error(f'tbf: duplicate "{what}" specification')

    def size_and_cell(name: str, value: str) -> tuple[int, int]:
        size_text, _, cell_text = value.partition("/")
        size = get_size(size_text)
        cell = -1
        if cell_text:
            cells = [i for i in range(32) if str(1 << i) == cell_text]
            if not cells:
                size = None
            else:
                cell = cells[0]
        if size is None:
            raise illegal(name, value)
        return size, cell

    while tokens:
        token = tokens.pop()
        if matches(token, "limit"):
            value = tokens.pop()
            if limit:
                raise duplicate("limit")
            if latency:
                raise parse_error('tbf: specifying both "latency" and "limit" is not allowed')
            limit = get_size(value)
            if limit is None:
                raise illegal("limit", value)
        elif matches(token, "latency"):
            value = tokens.pop()
            if latency:
                raise duplicate("latency")
            if limit:
                raise parse_error('tbf: specifying both "limit" and "/latency" is not allowed')
            latency = get_time(value)
            if latency is None:
                raise illegal("latency", value)
        elif matches(token, "burst") or token in ("buffer", "maxburst"):
            value = tokens.pop()
            if buffer:
                raise duplicate("buffer/burst/maxburst")
            buffer, rcell_log = size_and_cell(token, value)
        elif token in ("mtu", "minburst"):
            value = tokens.pop()
            if mtu:
                raise duplicate("mtu/minburst")
            mtu, pcell_log = size_and_cell(token, value)
        elif token == "mpu":
            value = tokens.pop()
            if mpu:
                raise duplicate("mpu")
            mpu = get_size(value)
            if mpu is None:
                raise illegal("mpu", value)
        elif token == "rate" or matches(token, "peakrate"):
            name = "rate" if token == "rate" else "peakrate"
            value = tokens.pop()
            if (rate if name == "rate" else peakrate):
                raise duplicate(name)
            if "%" in value:
                raise not_modelled(f"tc qdisc tbf {name} in percent of the link speed")
            parsed = get_rate64(value)
            if parsed is None:
                raise illegal(name, value)
            if name == "rate":
                rate = parsed
            else:
                peakrate = parsed
        elif matches(token, "overhead"):
            value = tokens.pop()
            if overhead:
                raise duplicate("overhead")
            if not value.isdigit() or int(value) > 0xFFFF:
                raise illegal("overhead", value)
            overhead = int(value)
        elif matches(token, "linklayer"):
            raise not_modelled("tc qdisc tbf linklayer")
        elif token == "help":
            raise parse_error(TBF_USAGE)
        else:
            raise parse_error(f'tbf: unknown parameter "{token}"\n{TBF_USAGE}')
    problems = []
    if not rate:
        problems.append('tbf: the "rate" parameter is mandatory.')
    if not buffer:
        problems.append('tbf: the "burst" parameter is mandatory.')
    if peakrate and not mtu:
        problems.append('tbf: when "peakrate" is specified, "mtu" must also be specified.')
    if not limit and not latency:
        problems.append('tbf: either "limit" or "latency" is required.')
    if problems:
        raise parse_error("\n".join(problems) + "\n" + TBF_USAGE)
    if not limit:
        lim = rate * latency / 1e6 + buffer
        if peakrate:
            lim = min(lim, peakrate * latency / 1e6 + mtu)
        limit = int(lim) & 0xFFFFFFFF
    return TbfQopt(limit=limit, rate=rate, burst=buffer, peakrate=peakrate, pburst=mtu if peakrate else 0,
                   overhead=overhead, mpu=mpu, cell_log=rcell_log if rcell_log >= 0 else rtable_cell_log(mtu),
                   pcell_log=pcell_log if pcell_log >= 0 else rtable_cell_log(mtu))


def tbf_print_opt(q) -> str:
    """q_tbf.c tbf_print_opt() over what tbf_dump() sends."""
    rate = q.rate.rate_bytes_ps
    buffer_ticks = (q.buffer >> PSCHED_SHIFT) & 0xFFFFFFFF
    out = f"rate {sprint_rate(rate)} burst {sprint_size(calc_xmitsize(rate, buffer_ticks))} "
    latency = 1e6 * (q.limit / rate) - tick2time(buffer_ticks)
    if q.peak is not None:
        peak = q.peak.rate_bytes_ps
        mtu_ticks = (q.mtu >> PSCHED_SHIFT) & 0xFFFFFFFF
        out += f"peakrate {sprint_rate(peak)} "
        if mtu_ticks:
            out += f"minburst {sprint_size(calc_xmitsize(peak, mtu_ticks))} "
        latency = max(latency, 1e6 * (q.limit / peak) - tick2time(mtu_ticks))
    if latency >= 0:
        out += f"lat {sprint_time(int(latency))} "
    else:
        out += f"limit {sprint_size(q.limit)} "
    if q.qopt.overhead:
        out += f"overhead {q.qopt.overhead} "
    return out


def tbf_print_classes(q, on: str, stats: bool) -> list[str]:
    """tbf_dump_class(): the one class, its leaf the child (no statistics)."""
    leaf = q.child.handle if q.child is not None else 0
    line = f"class tbf {sprint_tc_classid(q.handle | 1)} {on}parent {sprint_tc_classid(q.handle)} "
    line += (f"leaf {leaf >> 16:x}: " if leaf else "") + "\n"
    return [line + ("\n" if stats else "")]


def no_options(kind: str, tokens: Args, dev: str) -> None:
    if tokens:
        raise parse_error(f"qdisc '{kind}' does not support option parsing")


KINDS: dict[str, QdiscUtil] = {
    "pfifo": QdiscUtil(fifo_parse_opt, fifo_print_opt),
    "bfifo": QdiscUtil(fifo_parse_opt, fifo_print_opt),
    "tbf": QdiscUtil(tbf_parse_opt, tbf_print_opt, tbf_print_classes),
    "noqueue": QdiscUtil(no_options, lambda q: ""),
}


# ------------------------------------------------------------------ tc qdisc

def do_qdisc(net, tokens: Args, stats: bool) -> str:
    if not tokens:
        return qdisc_list(net, tokens, stats)
    verb = tokens.pop()
    if matches(verb, "add"):
        return qdisc_modify(net, tokens, "add")
    if matches(verb, "change"):
        return qdisc_modify(net, tokens, "change")
    if matches(verb, "replace"):
        return qdisc_modify(net, tokens, "replace")
    if matches(verb, "link"):
        return qdisc_modify(net, tokens, "link")
    if matches(verb, "delete"):
        return qdisc_modify(net, tokens, "delete")
    if matches(verb, "list") or matches(verb, "show") or matches(verb, "lst"):
        return qdisc_list(net, tokens, stats)
    if matches(verb, "help"):
        raise not_modelled("tc qdisc help")
    raise ToolError(f'Command "{verb}" is unknown, try "tc qdisc help".', 255)


# nlmsg flags of each verb: (NLM_F_CREATE, NLM_F_REPLACE, NLM_F_EXCL)
VERB_FLAGS = {"add": (True, False, True), "change": (False, False, False), "replace": (True, True, False),
              "link": (False, True, False)}


def qdisc_modify(net, tokens: Args, verb: str) -> str:
    """tc_qdisc_modify()"""
    name = kind = None
    handle = parent = 0
    while tokens:
        token = tokens.pop()
        if token == "dev":
            value = tokens.pop()
            if name is not None:
                raise duparg("dev", value)
            name = value
        elif token == "handle":
            if handle:
                raise duparg("handle", token)
            value = tokens.pop()
            handle = get_qdisc_handle(value)
            if handle is None:
                raise invarg("invalid qdisc ID", value)
        elif token == "root":
            if parent:
                raise ToolError('Error: "root" is duplicate parent ID', 255)
            parent = TC_H_ROOT
        elif token == "clsact":
            if parent:
                raise ToolError('Error: "clsact" is a duplicate parent ID', 255)
            parent, kind = TC_H_CLSACT, "clsact"
            break
        elif token == "parent":
            value = tokens.pop()
            if parent:
                raise duparg("parent", value)
            parent = get_tc_classid(value)
            if parent is None:
                raise invarg("invalid parent ID", value)
        elif token in ("ingress", "estimator", "stab", "ingress_block", "egress_block") or \
                (token and any(matches(token, w) for w in ("estimator", "stab", "ingress_block", "egress_block"))):
            raise not_modelled(f"tc qdisc {token}")
        elif matches(token, "help"):
            raise ToolError(QDISC_USAGE, 255)
        else:
            kind = token
            break
    options = None
    util = KINDS.get(kind) if kind is not None else None
    if kind == "clsact":
        if tokens:
            raise parse_error("qdisc 'clsact' does not support option parsing")
    elif util is not None:
        options = util.parse_qopt(kind, tokens, name or "")
    elif kind in TC_QDISC_KINDS:
        raise not_modelled(f"tc qdisc {kind}")
    elif kind is not None and tokens:
        raise parse_error(f'Unknown qdisc "{kind}", hence option "{tokens.peek()}" is unparsable')
    elif kind is None and tokens:
        raise ToolError(f'Garbage instead of arguments "{tokens.peek()} ...". Try "tc qdisc help".', 255)
    if name is None:
        raise ToolError("RTNETLINK answers: No such device", 2)  # ifindex 0
    dev = device(net, name)
    try:
        if kind == "clsact" or parent == TC_H_CLSACT:
            if verb == "delete":
                sch_ingress.qdisc_destroy_clsact(dev)
            else:
                sch_ingress.qdisc_create_clsact(dev, replace=verb == "replace")
        elif verb == "delete":
            tc_delete_qdisc(net, dev, parent, handle, kind)
        else:
            create, replace, excl = VERB_FLAGS[verb]
            tc_modify_qdisc(net, dev, parent, handle, kind, options, create=create, replace=replace, excl=excl)
    except RtnlError as err:
        raise ToolError(str(err), 2) from None
    return ""


def qdisc_list(net, tokens: Args, stats: bool) -> str:
    """tc_qdisc_list() + print_qdisc()"""
    name = None
    invisible = False
    while tokens:
        token = tokens.pop()
        if token == "dev":
            name = tokens.pop()
        elif token == "invisible":
            invisible = True
        elif token in ("root", "ingress", "clsact") or matches(token, "parent") or matches(token, "handle"):
            raise not_modelled(f"tc qdisc show {token}")
        else:
            raise ToolError(f'What is "{token}"? Try "tc qdisc help".', 255)
    devices = [device(net, name)] if name else sorted(net.devices.values(), key=lambda d: d.ifindex)
    out = []
    for dev in devices:
        on = "" if name else f"dev {dev.name} "
        # a device never up has the noop qdisc, which a dump leaves out (TCQ_F_BUILTIN)
        for q in qdisc_dump_order(dev, invisible):
            out.append(print_qdisc(q, on, stats))
        q = dev.clsact
        if q is not None:
            out.append(f"qdisc clsact ffff: {on}parent ffff:fff1 \n" +
                       (_stats(q.bytes, q.packets, q.drops, 0, 0, 0) if stats else ""))
    return "".join(out)


def print_qdisc(q, on: str, stats: bool) -> str:
    where = "root " if q.parent == TC_H_ROOT else f"parent {sprint_tc_classid(q.parent)} "
    refcnt = f"refcnt {q.refcnt_root} " if q.parent == TC_H_ROOT else ""
    line = f"qdisc {q.kind} {q.handle >> 16:x}: {on}{where}{refcnt}{KINDS[q.kind].print_qopt(q)}\n"
    if stats:
        line += _stats(q.bytes, q.packets, q.drops, q.overlimits, q.backlog, q.qlen)
    return line


def _stats(nbytes: int, packets: int, drops: int, overlimits: int, backlog: int, qlen: int) -> str:
    """print_tcstats2_attr(): the basic and queue statistics."""
    return (f" Sent {nbytes} bytes {packets} pkt (dropped {drops}, overlimits {overlimits} requeues 0) \n"
            f" backlog {sprint_size(backlog)} {qlen}p requeues 0\n")


# ------------------------------------------------------------------ tc class

def do_class(net, tokens: Args, stats: bool) -> str:
    verb = tokens.pop() if tokens else "show"
    if matches(verb, "show") or matches(verb, "list") or matches(verb, "lst"):
        return class_list(net, tokens, stats)
    raise not_modelled(f"tc class {verb}")


def class_list(net, tokens: Args, stats: bool) -> str:
    """tc_class_list() + print_class()"""
    name = None
    while tokens:
        token = tokens.pop()
        if token == "dev":
            name = tokens.pop()
        else:
            raise not_modelled(f'tc class show argument "{token}"')
    if name is None:
        raise ToolError('Not enough information: "dev" argument is required.', 1)
    dev = device(net, name)
    out = []
    for q in qdisc_dump_order(dev, True):
        out += KINDS[q.kind].print_classes(q, "", stats)
    return "".join(out)
