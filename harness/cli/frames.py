"""The frames `journey` sends: from a scapy expression, hex, or a pcap file.

A scapy expression is evaluated by walking its syntax tree, never by eval():
the only names are scapy's layer classes (Ether, IP, UDP, ...), the only
operations calling a layer with arguments, stacking with `/`, and `+`/`*` on
literals (b"x" * 100), so a command line can build any frame and run nothing else.
Fields the expression leaves unset default to the addressing plan of the port
the frame goes into (frames.fill_defaults()); hex and pcap frames are sent as given.
"""
from __future__ import annotations

import ast
import itertools
import os
import re
from functools import cache

import scapy.layers.all  # noqa: F401  (every layer: the names expressions use, and decoding for the output)
from scapy.config import conf
from scapy.error import Scapy_Exception
from scapy.layers.inet import IP
from scapy.layers.l2 import ARP, Dot3, Ether
from scapy.packet import Packet
from scapy.utils import PcapReader

from harness.target import Port
from harness.testing import Host

MAX_FRAMES = 10_000  # one expression, hex string or pcap: a run the text output can still show
MAX_SEQUENCE = 65_535  # the longest bytes/str/list an expression may build: a frame's ceiling
HEX = re.compile(r"(?:0x)?[0-9a-fA-F]{2}(?:[\s:]*[0-9a-fA-F]{2})*")
PCAP_SUFFIXES = (".pcap", ".pcapng", ".cap")
BROADCAST = "ff:ff:ff:ff:ff:ff"
ARP_WHO_HAS = 1


class FrameError(ValueError):
    """The frames cannot be built; the message names the cause."""


def read_frames(text: str, port: Port) -> list[bytes]:
    """The frames `text` names: a pcap file (a path that exists, or ends in .pcap),
    hex digits (spaces and colons allowed), or else a scapy expression."""
    if os.path.isfile(text) or text.endswith(PCAP_SUFFIXES):
        return pcap_frames(text)
    if HEX.fullmatch(text.strip()):
        return [bytes.fromhex(re.sub(r"[\s:]", "", text.strip().removeprefix("0x")))]
    return expression_frames(text, port)


def pcap_frames(path: str) -> list[bytes]:
    try:
        with PcapReader(path) as reader:
            packets = list(itertools.islice(reader, MAX_FRAMES + 1))
    except FileNotFoundError:
        raise FrameError(f"no pcap file {path!r}") from None
    except (Scapy_Exception, OSError) as exc:
        raise FrameError(f"{path}: not a pcap file scapy can read: {exc}") from None
    if not packets:
        raise FrameError(f"{path}: the capture holds no frames")
    if len(packets) > MAX_FRAMES:
        raise FrameError(f"{path}: more than {MAX_FRAMES} frames; cut it with `editcap -r {path} out.pcap 1-N`")
    others = {type(packet).__name__ for packet in packets if not isinstance(packet, Ether)}
    if others:
        raise FrameError(f"{path}: frames must be Ethernet (the DUT ports are), the capture has {sorted(others)}")
    return [bytes(packet) for packet in packets]


def expression_frames(text: str, port: Port) -> list[bytes]:
    """The frames of a scapy expression: one, or each of an implicit set
    (UDP(dport=(53, 55)) is three), with unset fields from the plan."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise FrameError(f"not a scapy expression: {exc.msg} at column {exc.offset}: {text!r}") from None
    try:
        packet = _evaluate(tree.body)
        if not isinstance(packet, Packet):
            raise FrameError(f"{text!r} is a {type(packet).__name__}, not a packet: write layers such as "
                             "Ether()/IP(dst='10.0.1.2')/UDP(dport=53)")
        if not isinstance(packet, Ether):
            packet = Ether() / packet
        if (count := packet.__iterlen__()) > MAX_FRAMES:  # scapy's count of an implicit set, before building it
            raise FrameError(f"{text!r} makes {count} frames, more than {MAX_FRAMES}; narrow its ranges")
        fill_defaults(packet, port)
        return [bytes(one) for one in packet]
    except FrameError:
        raise
    except Exception as exc:  # scapy's own complaint about a field or a stacking
        raise FrameError(f"scapy cannot build {text!r}: {type(exc).__name__}: {exc}") from None


def fill_defaults(packet, port: Port) -> None:
    """Set what the expression left unset as a host on `port`'s wire sends it (the
    addressing plan), in every layer of the stack: Ether from the tester port's MAC
    to the DUT port's (broadcast for an ARP request), IP and ARP from the host's
    address. Left to scapy, an unset Ether dst makes it ARP (or solicit) for the
    destination on this machine's own network, and sources come from its routes."""
    host = Host(port)
    for layer in packet.iterpayloads():
        if isinstance(layer, (Ether, Dot3)):
            request = isinstance(layer.payload, ARP) and layer.payload.op == ARP_WHO_HAS
            _default(layer, dst=BROADCAST if request else port.mac, src=host.mac)
        elif isinstance(layer, ARP):
            _default(layer, hwsrc=host.mac, psrc=host.ip)
        elif isinstance(layer, IP):
            _default(layer, src=host.ip)


def _default(layer, **values: str) -> None:
    for name, value in values.items():
        if name not in layer.fields:
            layer.setfieldval(name, value)


@cache
def scapy_layers() -> dict[str, type]:
    """Every layer class scapy knows, by name: the names an expression may use."""
    return {layer.__name__: layer for layer in conf.layers}


def _evaluate(node: ast.expr):
    match node:
        case ast.Constant(value=value) if isinstance(value, (str, bytes, int, float, bool)) or value is None:
            return value
        case ast.Name(id=name):  # a bare layer name is the layer with its defaults: Ether/IP/UDP
            return _layer(name)()
        case ast.Call(func=ast.Name(id=name), args=args, keywords=keywords):
            if any(keyword.arg is None for keyword in keywords):
                raise FrameError(f"`**` arguments are not allowed in a frame expression (in {name}())")
            return _layer(name)(*map(_evaluate, args), **{k.arg: _evaluate(k.value) for k in keywords})
        case ast.BinOp(left=left, op=ast.Div(), right=right):
            return _evaluate(left) / _evaluate(right)
        case ast.BinOp(left=left, op=ast.Add() | ast.Sub() | ast.Mult() as op, right=right):
            return _arithmetic(_evaluate(left), op, _evaluate(right))
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            value = _evaluate(operand)
            if not isinstance(value, (int, float)):
                raise FrameError(f"`-` applies to a number, not a {type(value).__name__}")
            return -value
        case ast.Tuple(elts=elements) | ast.List(elts=elements):
            values = [_evaluate(element) for element in elements]
            return tuple(values) if isinstance(node, ast.Tuple) else values
    raise FrameError(f"`{ast.unparse(node)}` is not allowed in a frame expression: only scapy layers called "
                     "with literal arguments, `/` between layers, and + - * on literals")


def _layer(name: str) -> type:
    try:
        return scapy_layers()[name]
    except KeyError:
        raise FrameError(f"unknown name {name!r}: a frame expression uses scapy's layers only "
                         "(Ether, Dot1Q, ARP, IP, ICMP, UDP, TCP, Raw, ...)") from None


def _arithmetic(left, op: ast.operator, right):
    """+, - and * on literals; a sequence built by them stays within MAX_SEQUENCE."""
    sequences = (str, bytes, list, tuple)
    if isinstance(op, ast.Mult) and isinstance(left, int) and isinstance(right, sequences):
        left, right = right, left
    if isinstance(op, ast.Mult) and isinstance(left, sequences) and isinstance(right, int):
        length = len(left) * right
    elif isinstance(op, ast.Add) and isinstance(left, sequences) and type(left) is type(right):
        length = len(left) + len(right)
    elif isinstance(left, (int, float)) and isinstance(right, (int, float)):
        length = 0
    else:
        raise FrameError(f"cannot apply `{type(op).__name__}` to {type(left).__name__} and {type(right).__name__} "
                         "in a frame expression")
    if length > MAX_SEQUENCE:
        raise FrameError(f"the expression builds a {length}-element {type(left).__name__}: "
                         f"at most {MAX_SEQUENCE} (the longest frame)")
    match op:
        case ast.Add():
            return left + right
        case ast.Sub():
            return left - right
    return left * right
