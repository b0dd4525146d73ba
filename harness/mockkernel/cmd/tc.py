"""`tc` (iproute2 6.1 tc/tc.c, tc_filter.c, f_bpf.c, lib/bpf_legacy.c with
libbpf): the objects, and the bpf classifier; qdiscs and classes are
tc_qdisc.py's.

    tc filter add|replace dev X ingress|egress [pref N] [handle H] [protocol P]
              bpf [da|direct-action] obj F [sec S]
    tc filter del dev X ingress|egress [pref N [protocol P] [handle H bpf]]
    tc [-s] filter show dev X ingress|egress

    tc filter add dev X parent CLASSID [pref N] [protocol P] [handle MARK[/MASK]]
              fw|matchall classid|flowid CLASSID
    tc filter del dev X parent CLASSID [pref N]

The kernel side is sched/ (sch_ingress.py, cls_api.py, cls_classid.py); this module parses
and prints, as tc prints on the lab (one line for the classifier, one per
program, each with a trailing space; `-s` adds nothing for bpf filters).
Kernel refusals print "Error: <extack>." and, for
filters, "We have an error talking to the kernel" (exit 2). tc loads the
object itself (libbpf): the section defaults to "classifier", a missing one
is "object file doesn't contain sec S", an unreadable file "Cannot
initialize ELF context!", each followed by "Unable to load program" (exit 1).
Every add loads the object anew (its maps are new ones, as without pinning).
Any other classifier tc knows (u32, flower, ...), action or option is an error
naming it; a kind tc has no module for is tc's "Unknown filter" when options
follow it, else the kernel's "TC classifier not found". Listing the filters of a
classful qdisc is not modelled (this kernel builds neither fw nor matchall: no
recorded output to follow).
"""
from __future__ import annotations

import os

from harness.mockkernel.bpf.tag import bpf_prog_calc_tag
from harness.mockkernel.cmd import tc_qdisc
from harness.mockkernel.cmd.bpf_legacy import bpf_obj_open
from harness.mockkernel.cmd.args import Args, ToolError, c_uint, not_modelled
from harness.mockkernel.cmd.iputils import device, duparg, invarg, matches
from harness.mockkernel.core.errors import RtnlError
from harness.mockkernel.sched import cls_api, sch_ingress
from harness.mockkernel.cmd.tc_util import TC_H_ROOT, get_tc_classid
from harness.mockkernel.sched.cls_api import ETH_P_ALL
from harness.mockkernel.sched.cls_classid import ClassidFilter, tc_del_classid_filters, tc_new_classid_filter
from harness.mockkernel.sched.sch_api import qdisc_lookup
from harness.mockkernel.sched.cls_bpf import ClsBpfProg

USAGE = ("Usage:\ttc [ OPTIONS ] OBJECT { COMMAND | help }\n"
         "\ttc [-force] -batch filename\n"
         "where  OBJECT := { qdisc | class | filter | chain |\n"
         "\t\t    action | monitor | exec }\n"
         "       OPTIONS := { -V[ersion] | -s[tatistics] | -d[etails] | -r[aw] |\n"
         "\t\t    -o[neline] | -j[son] | -p[retty] | -c[olor]\n"
         "\t\t    -b[atch] [filename] | -n[etns] name | -N[umeric] |\n"
         "\t\t     -nm | -nam[es] | { -cf | -conf } path\n"
         "\t\t     -br[ief] }")
BPF_USAGE = """Usage: ... bpf ...

BPF use case:
 bytecode BPF_BYTECODE
 bytecode-file FILE

eBPF use case:
 object-file FILE [ section CLS_NAME ] [ export UDS_FILE ] [ verbose ] [ direct-action ] [ skip_hw | skip_sw ]
 object-pinned FILE [ direct-action ] [ skip_hw | skip_sw ]

Common remaining options:
 [ action ACTION_SPEC ]
 [ classid CLASSID ]

Where BPF_BYTECODE := 's,c t f k,c t f k,c t f k,...'
c,t,f,k and s are decimals; s denotes number of 4-tuples

Where FILE points to a file containing the BPF_BYTECODE string,
an ELF file containing eBPF map definitions and bytecode, or a
pinned eBPF program.

Where CLS_NAME refers to the section name containing the
classifier (default 'classifier').

Where UDS_FILE points to a unix domain socket file in order
to hand off control of all created eBPF maps to an agent.

ACTION_SPEC := ... look at individual actions
NOTE: CLASSID is parsed as hexadecimal input."""
TALKING = "We have an error talking to the kernel"
# ll_proto_n2a() names of the EtherTypes a filter may name
PROTOCOLS = {"all": ETH_P_ALL, "ip": 0x0800, "arp": 0x0806, "ipv6": 0x86DD, "802.1Q": 0x8100}
PROTOCOL_NAMES = {value: name for name, value in PROTOCOLS.items()}
FILTER_KINDS = ("u32", "matchall", "flower", "basic", "fw", "route", "cgroup", "flow", "bpf")


def main(net, argv: list[str], stdin: str | None = None) -> str:
    tokens = Args(argv[1:], ToolError("Command line is not complete. Try option \"help\"", 255))
    stats = False
    while tokens and tokens.peek().startswith("-"):
        opt = tokens.pop().lstrip("-")
        if opt and "statistics".startswith(opt):
            stats = True
        else:
            raise not_modelled(f"tc option -{opt}")
    if not tokens:
        raise ToolError(USAGE, 255)
    obj = tokens.pop()
    if matches(obj, "qdisc"):
        return tc_qdisc.do_qdisc(net, tokens, stats)
    if matches(obj, "class"):
        return tc_qdisc.do_class(net, tokens, stats)
    if matches(obj, "filter"):
        return _filter(net, tokens)
    if any(matches(obj, o) for o in ("chain", "action", "actions", "monitor", "exec", "help")):
        raise not_modelled(f"tc {obj}")
    raise ToolError(f'Object "{obj}" is unknown, try "tc help".', 1)


# ------------------------------------------------------------------ filter

class FilterArgs:
    """What tc_filter_modify() collects before the classifier's options."""

    def __init__(self) -> None:
        self.dev = self.direction = self.prio = self.protocol = self.handle = self.kind = None
        self.parent = None  # a classful qdisc's class id (`parent 1:`)
        self.handle_text = None


def _filter(net, tokens: Args) -> str:
    verb = tokens.pop() if tokens else "show"
    if matches(verb, "show") or verb in ("list", "lst"):
        return _filter_show(net, tokens)
    if verb in ("add", "replace") or (verb != "" and matches(verb, "delete")):
        deleting = verb not in ("add", "replace")
        args = _filter_args(tokens)
        if args.dev is None:
            raise ToolError('Not enough information: "dev" argument is required.', 1)
        dev = device(net, args.dev)
        if args.parent is not None:
            return _classful_filter(dev, args, tokens, deleting)
        if args.direction is None:
            raise not_modelled("tc filter without ingress, egress or parent")
        if args.kind in FILTER_KINDS and args.kind != "bpf":
            raise not_modelled(f"tc filter {args.kind} on clsact")
        if args.handle_text is not None:
            args.handle = c_uint(args.handle_text)
            if args.handle is None:
                raise ToolError('Illegal "handle"', 1)
        if deleting:
            if tokens:
                raise not_modelled(f'tc filter del argument "{tokens.peek()}"')
            return _kernel(lambda: cls_api.tc_del_tfilter(sch_ingress.filter_chain(dev, args.direction), args.prio,
                                                         args.protocol, args.handle))
        if args.kind is None:
            raise ToolError('Unknown filter "(null)", hence option "(null)" is unparsable', 1)
        if args.kind not in FILTER_KINDS:
            _kernel_call(lambda: sch_ingress.filter_chain(dev, args.direction))
            raise no_such_classifier()
        make = _bpf_opts(net, tokens)
        chain = _kernel_call(lambda: sch_ingress.filter_chain(dev, args.direction))
        if make is None:  # cls_bpf_set_parms(): neither classic bytecode nor a program fd is -EINVAL
            raise ToolError(f"RTNETLINK answers: Invalid argument\n{TALKING}", 2)
        return _kernel(lambda: cls_api.tc_new_tfilter(chain, args.prio, args.protocol or ETH_P_ALL, args.handle,
                                                      make, replace=verb == "replace"))
    if verb in ("change", "get"):
        raise not_modelled(f"tc filter {verb}")
    raise ToolError(f'Command "{verb}" is unknown, try "tc filter help".', 255)


def _filter_args(tokens: Args) -> FilterArgs:
    args = FilterArgs()
    while tokens:
        token = tokens.pop()
        if token == "dev":
            value = tokens.pop()
            if args.dev is not None:
                raise duparg("dev", value)
            args.dev = value
        elif token in ("ingress", "egress"):
            args.direction = token
        elif token == "handle":
            value = tokens.pop()
            if args.handle_text is not None:
                raise duparg("handle", value)
            args.handle_text = value
        elif matches(token, "preference") or matches(token, "priority"):
            value = tokens.pop()
            if args.prio is not None:
                raise duparg("priority", value)
            args.prio = c_uint(value)
            if args.prio is None or args.prio > 0xFFFF:
                raise invarg("invalid priority value", value)
        elif matches(token, "protocol"):
            value = tokens.pop()
            if args.protocol is not None:
                raise duparg("protocol", value)
            args.protocol = PROTOCOLS.get(value)
            if args.protocol is None:
                raise not_modelled(f'tc filter protocol "{value}"')
        elif token in ("root", "parent"):
            value = "root" if token == "root" else tokens.pop()
            args.parent = get_tc_classid(value)
            if args.parent is None:
                raise invarg("Invalid parent ID", value)
        elif token in ("chain", "block", "estimator"):
            raise not_modelled(f"tc filter {token}")
        else:
            if token not in FILTER_KINDS and tokens:  # tc has no f_<kind>: parse_nofopt() takes no options
                raise ToolError(f'Unknown filter "{token}", hence option "{tokens.peek()}" is unparsable', 1)
            if token in FILTER_KINDS and token not in ("bpf", "fw", "matchall"):
                raise not_modelled(f'tc filter "{token}"')
            args.kind = token
            break
    return args


def no_such_classifier() -> ToolError:
    """A kind no classifier module registered: tcf_proto_lookup_ops() (net/sched/cls_api.c),
    once the parent qdisc is found."""
    return ToolError(f"Error: TC classifier not found.\n{TALKING}", 2)


def _classful_filter(dev, args: FilterArgs, tokens: Args, deleting: bool) -> str:
    """A filter on a classful qdisc (`parent X:`), fw or matchall picking a class."""
    q = qdisc_lookup(dev, dev.qdisc.handle if args.parent == TC_H_ROOT else args.parent & 0xFFFF0000)
    if deleting:
        if tokens:
            raise not_modelled(f'tc filter del argument "{tokens.peek()}"')
        if q is None:
            raise ToolError(f"Error: Parent Qdisc doesn't exists.\n{TALKING}", 2)
        return _kernel(lambda: tc_del_classid_filters(q, args.prio))
    if args.kind not in FILTER_KINDS and args.kind is not None:
        if q is None:
            raise ToolError(f"Error: Parent Qdisc doesn't exists.\n{TALKING}", 2)
        raise no_such_classifier()
    if args.kind not in ("fw", "matchall"):
        raise not_modelled(f"tc filter {args.kind} on a classful qdisc")
    handle, mask = 0, 0xFFFFFFFF
    if args.kind == "fw":
        if args.handle_text is None:
            raise not_modelled("tc filter fw without a handle (the mark as the class id)")
        handle_text, _, mask_text = args.handle_text.partition("/")
        handle, mask = c_uint(handle_text), c_uint(mask_text) if mask_text else 0xFFFFFFFF
        if handle is None:
            raise ToolError('Illegal "handle"', 1)
        if mask is None:
            raise ToolError('Illegal "handle" mask', 1)
    classid = None
    while tokens:
        token = tokens.pop()
        if token in ("classid", "flowid"):
            value = tokens.pop()
            classid = get_tc_classid(value)
            if classid is None:
                raise ToolError('Illegal "classid"', 1)
        else:
            raise not_modelled(f"tc filter {args.kind} {token}")
    if classid is None:
        raise not_modelled(f"tc filter {args.kind} without a classid")
    if q is None:
        raise ToolError(f"Error: Parent Qdisc doesn't exists.\n{TALKING}", 2)
    filt = ClassidFilter(args.kind, 0, args.protocol or ETH_P_ALL, classid, handle & mask, mask)
    return _kernel(lambda: tc_new_classid_filter(q, filt, args.prio))


def _bpf_opts(net, tokens: Args):
    """f_bpf.c bpf_parse_opt(): obj F [sec S], da; the loader for the new filter, or
    None when no program was named (tc sends the filter without one)."""
    path = None
    section = "classifier"
    direct = False
    while tokens:
        token = tokens.pop()
        if matches(token, "object-file") or token == "obj":
            path = tokens.pop()
            while tokens and tokens.peek() in ("section", "sec", "verbose"):
                if tokens.pop() != "verbose":
                    section = tokens.pop()
        elif matches(token, "direct-action") or token == "da":
            direct = True
        elif token in ("run", "bytecode", "bytecode-file", "object-pinned", "fd", "classid", "flowid",
                       "skip_hw", "skip_sw", "action", "police", "export"):
            raise not_modelled(f"tc filter bpf {token}")
        elif path is None:  # bpf_parse_opt() hands the first word it does not know to bpf_parse_common()
            raise ToolError(f'What mode is "{token}"?\nUnable to parse bpf command line', 1)
        else:
            raise ToolError(f'What is "{token}"?\n{BPF_USAGE}', 1)
    if path is None:
        return None
    prog = _load(net, path, section)
    bpf_name = f"{os.path.basename(path)}:[{section}]"
    return lambda handle: ClsBpfProg(handle, prog, bpf_name, direct)


def _load(net, path: str, section: str):
    """libbpf: open the object, load its maps and the section's program."""
    obj = bpf_obj_open(net, path, 1, "\nUnable to load program")
    progs = [p for p in obj.programs.values() if p.section == section]
    if not progs:
        if section in obj.unsupported.values():
            raise not_modelled(f"tc filter bpf with section {section} (not a program type the mock runs)")
        raise ToolError(f"object file doesn't contain sec {section}\nUnable to load program", 1)
    if progs[0].type != "sched_cls":
        raise not_modelled(f"tc filter bpf with a {progs[0].type} program (section {section})")
    return progs[0]


def _kernel_call(fn):
    try:
        return fn()
    except RtnlError as err:
        raise ToolError(f"{err}\n{TALKING}", 2) from None


def _kernel(fn) -> str:
    _kernel_call(fn)
    return ""


def _filter_show(net, tokens: Args) -> str:
    args = _filter_args(tokens)
    if args.kind is not None or args.prio is not None or args.protocol is not None or args.handle_text is not None:
        raise not_modelled("tc filter show with a selector")
    if args.parent is not None:
        raise not_modelled("tc filter show of a classful qdisc's filters")
    if args.dev is None or args.direction is None:
        if args.dev is not None:
            device(net, args.dev)
        return ""  # the root of noqueue, or no device: nothing to list
    q = device(net, args.dev).clsact
    if q is None:
        return ""
    out = []
    for tp in q.chain(args.direction):
        head = f"filter protocol {PROTOCOL_NAMES[tp.protocol]} pref {tp.prio} bpf chain 0 "
        out.append(head + "\n")
        for f in tp.filters:
            prog = f.prog
            da = "direct-action " if f.exts_integrated else ""
            out.append(f"{head}handle {f.handle:#x} {f.bpf_name} {da}not_in_hw id {prog.id} name {prog.name[:15]} "
                       f"tag {bpf_prog_calc_tag(prog)} jited \n")
    return "".join(out)
