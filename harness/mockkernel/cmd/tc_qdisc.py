"""`tc qdisc` and `tc class` (iproute2 6.1 tc/tc_qdisc.c, tc/tc_class.c and the
kinds' q_*.c): parsing each kind's options as tc does, sending what tc sends
(sched/sch_api.py is the kernel side), and printing the dump as tc prints it.

    tc qdisc add|change|replace|link|del dev X [handle H] root|parent CLASSID|clsact KIND [OPTIONS]
    tc [-s] qdisc [show [dev X] [invisible]]
    tc class add|change|replace|del dev X [parent CLASSID|root] [classid CLASSID] htb OPTIONS
    tc [-s] class show dev X

Kinds modelled: pfifo, bfifo, pfifo_fast, tbf, htb (qdisc and classes), netem and
fq_codel (mock-only: the lab's kernel lacks them; their printing follows q_netem.c
and q_fq_codel.c, unrecorded),
noqueue, clsact. The
kernel's warnings on success (htb's "quantum of class ... is big") are not printed.
Another kind iproute2 knows is
an error naming it (not modelled); a word tc has no module for goes to the kernel as
tc sends it, which does not know it either. Parse errors print tc's message and
usage (exit 1); kernel refusals "Error: <extack>." (exit 2).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.mockkernel.cmd.args import Args, ToolError, c_uint, not_modelled
from harness.mockkernel.cmd.iputils import device, duparg, invarg, matches
from harness.mockkernel.cmd.tc_util import (TC_H_ROOT, calc_xmitsize, calc_xmittime, get_qdisc_handle, get_rate64,
                                            get_size, get_tc_classid, rtable_cell_log, sprint_rate, sprint_size,
                                            sprint_tc_classid, sprint_time, tick2time, time2tick)
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.lib.libc import strtod
from harness.mockkernel.lib.utils_math import get_time
from harness.mockkernel.sched import sch_ingress
from harness.mockkernel.sched.sch_api import qdisc_dump_order, tc_ctl_tclass, tc_delete_qdisc, tc_modify_qdisc
from harness.mockkernel.sched.sch_fq_codel import FqCodelOpt
from harness.mockkernel.sched.sch_htb import HtbGlob, HtbOpt
from harness.mockkernel.sched.sch_netem import U32, NetemQopt
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
    parse_copt: Callable[[str, Args, str], object] | None = None
    print_xstats: Callable[[object], str] | None = None


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


HTB_USAGE = """Usage: ... qdisc add ... htb [default N] [r2q N]
                      [direct_qlen P] [offload]
 default  minor id of class to which unclassified packets are sent {0}
 r2q      DRR quantums are computed as rate in Bps/r2q {10}
 debug    string of 16 numbers each 0-3 {0}

 direct_qlen  Limit of the direct queue {in packets}
 offload  enable hardware offload
... class add ... htb rate R1 [burst B1] [mpu B] [overhead O]
                      [prio P] [slot S] [pslot PS]
                      [ceil R2] [cburst B2] [mtu MTU] [quantum Q]
 rate     rate allocated to this class (class can still borrow)
 burst    max bytes burst which can be accumulated during idle period {computed}
 mpu      minimum packet size used in rate computations
 overhead per-packet size overhead used in rate computations
 linklay  adapting to a linklayer e.g. atm
 ceil     definite upper class rate (no borrows) {rate}
 cburst   burst but for ceil {computed}
 mtu      max packet size we create rate map for {1600}
 prio     priority of leaf; lower are served first {0}
 quantum  how much bytes to serve from leaf at once {use r2q}

TC HTB version 3.3"""
HZ = 1_000_000_000  # get_hz(): /proc/net/psched's clock resolution


def _u32(value: str, base: int = 10) -> int | None:
    """get_u32()"""
    try:
        number = int(value, base) if value.strip() == value and value else None
    except ValueError:
        return None
    return number if number is not None and 0 <= number <= 0xFFFFFFFF else None


def htb_parse_opt(kind: str, tokens: Args, dev: str) -> HtbGlob:
    """q_htb.c htb_parse_opt()"""
    glob = HtbGlob()
    while tokens:
        token = tokens.pop()
        if matches(token, "r2q"):
            glob.rate2quantum = _u32(tokens.pop())
            if glob.rate2quantum is None:
                raise parse_error(f'Illegal "r2q"\n{HTB_USAGE}')
        elif matches(token, "default"):
            glob.defcls = _u32(tokens.pop(), 16)
            if glob.defcls is None:
                raise parse_error(f'Illegal "default"\n{HTB_USAGE}')
        elif matches(token, "direct_qlen"):
            glob.direct_qlen = _u32(tokens.pop())
            if glob.direct_qlen is None:
                raise parse_error(f'Illegal "direct_qlen"\n{HTB_USAGE}')
        elif matches(token, "debug") or matches(token, "offload"):
            raise not_modelled(f"tc qdisc htb {token}")
        else:
            raise parse_error(f'What is "{token}"?\n{HTB_USAGE}')
    return glob


def htb_parse_class_opt(kind: str, tokens: Args, dev: str) -> HtbOpt:
    """q_htb.c htb_parse_class_opt()"""
    values = {"prio": 0, "mtu": 1600, "mpu": 0, "overhead": 0, "quantum": 0}
    buffer = cbuffer = rate = ceil = 0
    cell_log = ccell_log = -1
    while tokens:
        token = tokens.pop()
        name = next((n for n in ("prio", "mtu", "mpu", "overhead", "quantum") if matches(token, n)), None)
        if name is not None:
            value = _u32(tokens.pop())
            if value is None or (name in ("mpu", "overhead") and value > 0xFFFF):
                raise parse_error(f'Illegal "{name}"\n{HTB_USAGE}')
            values[name] = value
        elif matches(token, "linklayer"):
            raise not_modelled("tc class htb linklayer")
        elif matches(token, "burst") or token in ("buffer", "maxburst", "cbuffer", "cmaxburst") or \
                matches(token, "cburst"):
            ceil_side = token.startswith("c")
            size_text, _, cell_text = tokens.pop().partition("/")
            size = get_size(size_text)
            cell = -1
            if cell_text:
                cells = [i for i in range(32) if str(1 << i) == cell_text]
                size, cell = (size, cells[0]) if cells else (None, -1)
            if size is None:
                raise parse_error(f'Illegal "{token}"\n{HTB_USAGE}')
            if ceil_side:
                cbuffer, ccell_log = size, cell
            else:
                buffer, cell_log = size, cell
        elif token in ("rate", "ceil"):
            if (rate if token == "rate" else ceil):
                raise parse_error(f'Double "{token}" spec')
            value = tokens.pop()
            if "%" in value:
                raise not_modelled(f"tc class htb {token} in percent of the link speed")
            parsed = get_rate64(value)
            if parsed is None:
                raise parse_error(f'Illegal "{token}"\n{HTB_USAGE}')
            if token == "rate":
                rate = parsed
            else:
                ceil = parsed
        elif token == "help":
            raise parse_error(HTB_USAGE)
        else:
            raise parse_error(f'What is "{token}"?\n{HTB_USAGE}')
    if not rate:
        raise parse_error('"rate" is required.')
    ceil = ceil or rate
    mtu = values["mtu"]
    buffer = buffer or int(rate / HZ + mtu)
    cbuffer = cbuffer or int(ceil / HZ + mtu)
    return HtbOpt(rate=rate, ceil=ceil, buffer=calc_xmittime(rate, buffer), cbuffer=calc_xmittime(ceil, cbuffer),
                  quantum=values["quantum"], prio=values["prio"], overhead=values["overhead"], mpu=values["mpu"],
                  cell_log=cell_log if cell_log >= 0 else rtable_cell_log(mtu),
                  ccell_log=ccell_log if ccell_log >= 0 else rtable_cell_log(mtu))


def htb_print_opt(q) -> str:
    """htb_print_opt() of the qdisc (TCA_HTB_INIT, TCA_HTB_DIRECT_QLEN)."""
    default = f"{q.defcls:#x}" if q.defcls else "0"  # printf's %#llx prints 0 bare
    return f"r2q {q.rate2quantum} default {default} direct_packets_stat {q.direct_pkts} direct_qlen {q.direct_qlen}"


def htb_print_class(cl) -> str:
    """htb_print_opt() of a class (TCA_HTB_PARMS from htb_dump_class())."""
    rate, ceil = cl.rate.rate_bytes_ps, cl.ceil.rate_bytes_ps
    out = f"prio {cl.prio} " if cl.level == 0 else ""
    out += f"rate {sprint_rate(rate)} "
    if cl.opt.overhead:
        out += f"overhead {cl.opt.overhead} "
    out += f"ceil {sprint_rate(ceil)} "
    buffer = calc_xmitsize(rate, (cl.buffer >> PSCHED_SHIFT) & 0xFFFFFFFF)
    cbuffer = calc_xmitsize(ceil, (cl.cbuffer >> PSCHED_SHIFT) & 0xFFFFFFFF)
    return out + f"burst {sprint_size(buffer)} cburst {sprint_size(cbuffer)} "


def htb_print_classes(q, on: str, stats: bool) -> list[str]:
    """print_class() over htb_walk(): each class, with -s its counters and
    htb_print_xstats() (tokens as htb_dump_class_stats() gives them: ticks)."""
    out = []
    for cl in q.classes():
        parent = f"parent {sprint_tc_classid(cl.parent.classid)} " if cl.parent is not None else "root "
        leaf = cl.leaf.handle if cl.leaf is not None else 0
        line = f"class htb {sprint_tc_classid(cl.classid)} {on}{parent}" + (f"leaf {leaf >> 16:x}: " if leaf else "")
        line += htb_print_class(cl) + "\n"
        if stats:
            qlen, backlog = (cl.leaf.qlen, cl.leaf.backlog) if cl.leaf is not None else (0, 0)
            line += _stats(cl.bytes, cl.packets, cl.drops, cl.overlimits, backlog, qlen)
            line += (f" lended: {cl.lends} borrowed: {cl.borrows} giants: {cl.giants}\n"
                     f" tokens: {_ticks(cl.tokens)} ctokens: {_ticks(cl.ctokens)}\n\n")
        out.append(line)
    return out


def _ticks(ns: int) -> int:
    """PSCHED_NS2TICKS() clamped to an int."""
    return max(min(ns >> PSCHED_SHIFT, 0x7FFFFFFF), -0x80000000)


NETEM_USAGE = """Usage: ... netem [ limit PACKETS ]
                 [ delay TIME [ JITTER [CORRELATION]]]
                 [ distribution {uniform|normal|pareto|paretonormal} ]
                 [ corrupt PERCENT [CORRELATION]]
                 [ duplicate PERCENT [CORRELATION]]
                 [ loss random PERCENT [CORRELATION]]
                 [ loss state P13 [P31 [P32 [P23 P14]]]
                 [ loss gemodel PERCENT [R [1-H [1-K]]]
                 [ ecn ]
                 [ reorder PERCENT [CORRELATION] [ gap DISTANCE ]]
                 [ rate RATE [PACKETOVERHEAD] [CELLSIZE] [CELLOVERHEAD]]
                 [ slot MIN_DELAY [MAX_DELAY] [packets MAX_PACKETS] [bytes MAX_BYTES]]
                 [ slot distribution {uniform|normal|pareto|paretonormal|custom}
                   DELAY JITTER [packets MAX_PACKETS] [bytes MAX_BYTES]]"""


def netem_parse_opt(kind: str, tokens: Args, dev: str) -> NetemQopt:
    """q_netem.c netem_parse_opt(): delay/latency, loss [random], duplicate, reorder,
    gap, rate, limit."""
    opt = NetemQopt()

    def illegal(what: str) -> ToolError:
        return parse_error(f'Illegal "{what}"')

    def percent(value: str, what: str) -> int:
        parsed = strtod(value)
        if parsed is None or parsed[1] not in ("", "%") or not 0 <= parsed[0] <= 100:
            raise illegal(what)
        return int(round(parsed[0] / 100 * U32))

    def ticks(value: str, what: str) -> int:
        usecs = get_time(value)
        if usecs is None:
            raise illegal(what)
        return time2tick(usecs)

    def next_is_number() -> bool:
        return bool(tokens) and tokens.peek()[:1].isdigit()

    while tokens:
        token = tokens.pop()
        if matches(token, "limit"):
            opt.limit = get_size(tokens.pop())
            if opt.limit is None:
                raise illegal("limit")
        elif matches(token, "latency") or matches(token, "delay"):
            opt.latency = ticks(tokens.pop(), "latency")
            if next_is_number():
                opt.jitter = ticks(tokens.pop(), "latency")
                if next_is_number():
                    opt.delay_corr = percent(tokens.pop(), "latency")
        elif matches(token, "loss") or matches(token, "drop"):
            if opt.loss:
                raise illegal("duplicate loss argument\n")
            value = tokens.pop()
            if value == "random":
                value = tokens.pop()
            elif not value[:1].isdigit():
                raise not_modelled(f"tc qdisc netem loss {value}")
            opt.loss = percent(value, "loss percent")
            if next_is_number():
                opt.loss_corr = percent(tokens.pop(), "loss correlation")
        elif matches(token, "reorder"):
            opt.reorder = percent(tokens.pop(), "reorder")
            if next_is_number():
                opt.reorder_corr = percent(tokens.pop(), "reorder")
        elif matches(token, "gap"):
            opt.gap = c_uint(tokens.pop())
            if opt.gap is None:
                raise illegal("gap")
        elif matches(token, "duplicate"):
            opt.duplicate = percent(tokens.pop(), "duplicate")
            if next_is_number():
                opt.dup_corr = percent(tokens.pop(), "duplicate")
        elif matches(token, "rate"):
            value = tokens.pop()
            if "%" in value:
                raise not_modelled("tc qdisc netem rate in percent of the link speed")
            opt.rate = get_rate64(value)
            if opt.rate is None:
                raise illegal("rate")
            if tokens and (tokens.peek()[:1].isdigit() or tokens.peek()[:1] == "-"):
                overhead = tokens.pop()
                if not overhead.lstrip("-").isdigit():
                    raise illegal("rate")
                opt.packet_overhead = int(overhead)
                if next_is_number():
                    raise not_modelled("tc qdisc netem rate with a cell size")
        elif token in ("distribution", "corrupt", "ecn", "slot") or \
                any(matches(token, w) for w in ("distribution", "corrupt", "slot")):
            raise not_modelled(f"tc qdisc netem {token}")
        else:
            raise parse_error((f'What is "{token}"?\n' if token != "help" else "") + NETEM_USAGE)
    if opt.reorder:
        if not opt.latency:
            raise parse_error(f"reordering not possible without specifying some delay\n{NETEM_USAGE}")
        opt.gap = opt.gap or 1
    elif opt.gap:
        raise parse_error(f"gap specified without reorder probability\n{NETEM_USAGE}")
    return opt


def _percent(per: int) -> str:
    """__print_percent(): "%g%%" of the scaled probability."""
    return f"{100.0 * per / U32:g}%"


def netem_print_opt(q) -> str:
    """q_netem.c netem_print_opt() over what netem_dump() sends."""
    opt = q.qopt
    out = f"limit {q.limit}"
    latency, jitter = min(q.latency >> PSCHED_SHIFT, U32), min(q.jitter >> PSCHED_SHIFT, U32)
    if latency:
        out += f" delay {sprint_time(tick2time(latency))}"
        if jitter:
            out += f"  {sprint_time(tick2time(jitter))}"
            if opt.delay_corr:
                out += f" {_percent(opt.delay_corr)}"
    if q.loss:
        out += f" loss {_percent(q.loss)}" + (f" {_percent(opt.loss_corr)}" if opt.loss_corr else "")
    if opt.duplicate:
        out += f" duplicate {_percent(opt.duplicate)}" + (f" {_percent(opt.dup_corr)}" if opt.dup_corr else "")
    if q.reorder:
        out += f" reorder {_percent(q.reorder)}" + (f" {_percent(opt.reorder_corr)}" if opt.reorder_corr else "")
    if opt.rate:
        out += f" rate {sprint_rate(opt.rate)}" + (f" packetoverhead {opt.packet_overhead}"
                                                    if opt.packet_overhead else "")
    if q.gap:
        out += f" gap {q.gap}"
    return out


FQ_CODEL_USAGE = ("Usage: ... fq_codel\t[ limit PACKETS ] [ flows NUMBER ]\n"
                  "[ memory_limit BYTES ]\n[ target TIME ] [ interval TIME ]\n[ quantum BYTES ] [ [no]ecn ]\n"
                  "[ ce_threshold TIME ]\n[ ce_threshold_selector VALUE/MASK ]\n[ drop_batch SIZE ]")


def fq_codel_parse_opt(kind: str, tokens: Args, dev: str) -> FqCodelOpt:
    """q_fq_codel.c fq_codel_parse_opt()"""
    opt = FqCodelOpt()
    numbers = {"limit": "limit", "flows": "flows", "quantum": "quantum", "drop_batch": "drop_batch"}
    while tokens:
        token = tokens.pop()
        if token in numbers:
            value = c_uint(tokens.pop())
            if value is None:
                raise parse_error(f'Illegal "{token}"')
            setattr(opt, numbers[token], value)
        elif token in ("target", "interval"):
            value = get_time(tokens.pop())
            if value is None:
                raise parse_error(f'Illegal "{token}"')
            setattr(opt, f"{token}_us", value)
        elif token == "memory_limit":
            opt.memory_limit = get_size(tokens.pop())
            if opt.memory_limit is None:
                raise parse_error('Illegal "memory_limit"')
        elif token in ("ecn", "noecn"):
            opt.ecn = token == "ecn"
        elif token in ("ce_threshold", "ce_threshold_selector"):
            raise not_modelled(f"tc qdisc fq_codel {token}")
        else:
            raise parse_error((f'What is "{token}"?\n' if token != "help" else "") + FQ_CODEL_USAGE)
    return opt


def fq_codel_print_opt(q) -> str:
    """fq_codel_print_opt() over fq_codel_dump()'s attributes (all of them, always)."""
    return (f"limit {q.limit}p flows {q.flows_cnt} quantum {q.quantum} target {sprint_time(q.target)} "
            f"interval {sprint_time(q.interval)} memory_limit {sprint_size(q.memory_limit)} "
            + ("ecn " if q.ecn else "") + f"drop_batch {q.drop_batch_size} ")


def fq_codel_print_xstats(q) -> str:
    """fq_codel_print_xstats() of TCA_FQ_CODEL_XSTATS_QDISC."""
    out = f"  maxpacket {q.maxpacket} drop_overlimit {q.drop_overlimit} new_flow_count {q.new_flow_count} ecn_mark 0"
    if q.memory_usage:
        out += f" memory_used {q.memory_usage}"
    if q.drop_overmemory:
        out += f" drop_overmemory {q.drop_overmemory}"
    return out + f"\n  new_flows_len {len(q.new_flows)} old_flows_len {len(q.old_flows)}\n"


def no_options(kind: str, tokens: Args, dev: str) -> None:
    """A kind without parse_qopt (tc_qdisc_modify() returns -1)."""
    if tokens:
        raise ToolError(f"qdisc '{kind}' does not support option parsing", 255)


def pfifo_fast_print_opt(q) -> str:
    """prio_print_opt() (tc prints pfifo_fast as prio)."""
    return "bands 3 priomap " + " ".join(map(str, q.PRIO2BAND))


KINDS: dict[str, QdiscUtil] = {
    "pfifo": QdiscUtil(fifo_parse_opt, fifo_print_opt),
    "bfifo": QdiscUtil(fifo_parse_opt, fifo_print_opt),
    "tbf": QdiscUtil(tbf_parse_opt, tbf_print_opt, tbf_print_classes),
    "noqueue": QdiscUtil(no_options, lambda q: ""),
    "pfifo_fast": QdiscUtil(no_options, pfifo_fast_print_opt),
    "netem": QdiscUtil(netem_parse_opt, netem_print_opt),
    "fq_codel": QdiscUtil(fq_codel_parse_opt, fq_codel_print_opt, print_xstats=fq_codel_print_xstats),
    "htb": QdiscUtil(htb_parse_opt, htb_print_opt, htb_print_classes, htb_parse_class_opt),
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
        no_options(kind, tokens, name or "")
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
        if KINDS[q.kind].print_xstats is not None:
            line += KINDS[q.kind].print_xstats(q)
    return line


def _stats(nbytes: int, packets: int, drops: int, overlimits: int, backlog: int, qlen: int) -> str:
    """print_tcstats2_attr(): the basic and queue statistics."""
    return (f" Sent {nbytes} bytes {packets} pkt (dropped {drops}, overlimits {overlimits} requeues 0) \n"
            f" backlog {sprint_size(backlog)} {qlen}p requeues 0\n")


# ------------------------------------------------------------------ tc class

CLASS_USAGE = """Usage: tc class [ add | del | change | replace | show ] dev STRING
       [ classid CLASSID ] [ root | parent CLASSID ]
       [ [ QDISC_KIND ] [ help | OPTIONS ] ]

       tc class show [ dev STRING ] [ root | parent CLASSID ]
Where:
QDISC_KIND := { prio | cbq | etc. }
OPTIONS := ... try tc class add <desired QDISC_KIND> help"""


def do_class(net, tokens: Args, stats: bool) -> str:
    if not tokens:
        return class_list(net, tokens, stats)
    verb = tokens.pop()
    for name in ("add", "change", "replace", "delete"):
        if matches(verb, name):
            return class_modify(net, tokens, name)
    if matches(verb, "show") or matches(verb, "list") or matches(verb, "lst"):
        return class_list(net, tokens, stats)
    if matches(verb, "help"):
        raise not_modelled("tc class help")
    raise ToolError(f'Command "{verb}" is unknown, try "tc class help".', 255)


def class_modify(net, tokens: Args, verb: str) -> str:
    """tc_class_modify()"""
    name = kind = None
    classid = parent = 0
    while tokens:
        token = tokens.pop()
        if token == "dev":
            value = tokens.pop()
            if name is not None:
                raise duparg("dev", value)
            name = value
        elif token == "classid":
            value = tokens.pop()
            if classid:
                raise duparg("classid", value)
            classid = get_tc_classid(value)
            if classid is None:
                raise invarg("invalid class ID", value)
        elif token == "handle":
            raise ToolError('Error: try "classid" instead of "handle"', 255)
        elif token == "root":
            if parent:
                raise ToolError('Error: "root" is duplicate parent ID.', 255)
            parent = TC_H_ROOT
        elif token == "parent":
            value = tokens.pop()
            if parent:
                raise duparg("parent", value)
            parent = get_tc_classid(value)
            if parent is None:
                raise invarg("invalid parent ID", value)
        elif matches(token, "estimator"):
            raise not_modelled("tc class estimator")
        elif matches(token, "help"):
            raise ToolError(CLASS_USAGE, 255)
        else:
            kind = token
            break
    options = None
    util = KINDS.get(kind) if kind is not None else None
    if util is not None:
        if util.parse_copt is None:
            raise ToolError(f'Error: Qdisc "{kind}" is classless.', 1)
        options = util.parse_copt(kind, tokens, name or "")
    elif kind in TC_QDISC_KINDS:
        raise not_modelled(f"tc class {kind}")
    elif kind is not None and tokens:
        raise parse_error(f'Unknown qdisc "{kind}", hence option "{tokens.peek()}" is unparsable')
    elif tokens:
        raise ToolError(f'Garbage instead of arguments "{tokens.peek()} ...". Try "tc class help".', 255)
    if name is None:
        raise ToolError("RTNETLINK answers: No such device", 2)
    dev = device(net, name)
    try:
        tc_ctl_tclass(net, dev, verb, parent, classid, kind, options)
    except RtnlError as err:
        raise ToolError(str(err), 2) from None
    return ""


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
