"""TRex's field engine (STLVM) on bytes: the frames a stream's VM makes, in order.

Follows trex-core src/stx/stl/trex_stl_stream_vm.{h,cpp} and the add_stream parser
in src/stx/stl/trex_stl_rpc_cmds.cpp (TrexRpcCmdAddStream::parse_vm*); the JSON is
what the client's trex/stl/trex_stl_packet_builder_scapy.py (CTRexVmEngine.get_json)
sends. Per frame the instructions run in order on a copy of the stream's packet:
- flow_var inc/dec: the variable's memory starts one step before init_value
  (StreamVmInstructionFlowMan::set_bss_init_value() stores peek_prev()), so the first
  frame carries init_value; each frame steps it with inc_mod()/dec_mod(), wrapping
  from max to min (inc) or min to max (dec) with the wrap taking one step. A range
  that is not a multiple of the step is padded to one (handle_range_padding()).
  With a value_list the variable walks the list's indices (inc_mod_list/dec_mod_list),
  from the first element (inc) or the last (dec).
- flow_var random: min + rand % (max - min + 1), rand TRex's fastrand() (vm_rand16,
  vm_rand32, vm_rand64), seeded with the stream's random_seed (TRex seeds its cores'
  generators itself: the values are TRex's distribution, not its exact sequence).
- write_flow_var: (value + add_value) truncated to the variable's size, written at
  pkt_offset big- or little-endian (StreamDPOpPktWr8/16/32/64).
- write_mask_flow_var: StreamDPOpPktWrMask::wr(), read-modify-write under a mask.
- fix_checksum_ipv4: the IPv4 header checksum at pkt_offset (StreamDPOpIpv4Fix).
- fix_checksum_hw: what the NIC's offload puts on the wire (StreamDPOpHwCsFix):
  IPv4's header checksum, and the TCP/UDP checksum over the pseudo-header and the
  segment (IPv4 or IPv6; l4_type 17 only the IPv4 header).
- trim_pkt_size: the frame is cut to the variable's value (StreamDPOpPktSizeChange).
A stream's packet shorter than 60 bytes is padded with zeros to 60 (add_stream).

The frames repeat with the variables' common period (the least common multiple of
each one's); a period longer than MAX_CYCLE frames is cut at MAX_CYCLE, and a stream
with a random variable repeats its first `cache` frames (the VM's cache_size, TRex's
own way to repeat a VM's output) or RANDOM_CYCLE. Not implemented, refused naming
it: next_var (chained variables), flow_var_rand_limit, tuple_flow_var,
fix_checksum_icmpv6.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from harness.mockkernel.wire import ipv4, tcp, udp
from harness.mockkernel.wire.checksum import checksum
from harness.mockkernel.wire.ipv4 import IPPROTO_TCP, IPPROTO_UDP

MIN_FRAME = 60
MAX_CYCLE = 4096
RANDOM_CYCLE = 1024
SIZES = (1, 2, 4, 8)
L4_TYPE_UDP, L4_TYPE_TCP, L4_TYPE_IP = 11, 13, 17  # CTRexVmInsFixHwCs
IPV6_HLEN, IPV6_PAYLOAD_LEN, IPV6_ADDRS = 40, 4, 8  # struct ipv6hdr: size, payload_len, saddr (daddr after)
_WRITE = {1: "B", 2: "H", 4: "I", 8: "Q"}


class VmError(Exception):
    """A VM TRex would refuse, or one the stand-in does not implement: says which instruction."""


def inc_mod(low: int, high: int, value: int, step: int) -> int:
    """trex_stl_stream_vm.h inc_mod(): the restart from `high` to `low` takes one step."""
    left = high - value
    return value + step if step <= left else low + (step - left - 1)


def dec_mod(low: int, high: int, value: int, step: int) -> int:
    left = value - low
    return value - step if step <= left else high - (step - left - 1)


class FastRand:
    """trex_stl_stream_vm.h fastrand(): 214013 * seed + 2531011, 15 bits per draw."""

    def __init__(self, seed: int):
        self.seed = seed & 0xFFFFFFFF

    def rand16(self) -> int:
        self.seed = (214013 * self.seed + 2531011) & 0xFFFFFFFF
        return (self.seed >> 16) & 0x7FFF

    def rand32(self) -> int:
        return ((self.rand16() << 16) + self.rand16()) & 0xFFFFFFFF

    def rand64(self) -> int:
        return (self.rand32() << 32) + self.rand32()


@dataclass
class FlowVar:
    name: str
    size: int
    op: str
    low: int
    high: int
    step: int
    init: int
    values: list[int] | None  # value_list: the variable walks its indices

    def period(self) -> int | None:
        """Frames until the value repeats; None for a random variable."""
        if self.op == "random":
            return None
        span = self.high - self.low + 1
        return span // math.gcd(span, self.step % span or span)

    def first_state(self) -> int:
        """The memory before the first frame: init stepped back once (peek_prev())."""
        if self.values is not None:
            return self.init
        back = dec_mod if self.op == "inc" else inc_mod
        return back(self.low, self.high, self.init, self.step % (self.high - self.low + 1))


def _get(inst: dict, name: str, types=(int,)):
    value = inst.get(name)
    if not isinstance(value, types) or isinstance(value, bool) and bool not in types:
        raise VmError(f"VM instruction '{inst.get('type')}': field '{name}' is missing or not "
                      f"{' or '.join(t.__name__ for t in types)}")
    return value


def parse_flow_var(inst: dict) -> FlowVar:
    """TrexRpcCmdAddStream::parse_vm_instr_flow_var(), check_min_max() and the padding."""
    name = _get(inst, "name", (str,))
    if inst.get("next_var"):
        raise VmError(f"flow_var '{name}': next_var (chained variables) is not implemented by the TRex stand-in")
    size, op, step = _get(inst, "size"), _get(inst, "op", (str,)), _get(inst, "step")
    if size not in SIZES:
        raise VmError(f"flow_var '{name}': size {size} is not one of 1, 2, 4, 8")
    if op not in ("inc", "dec", "random"):
        raise VmError(f"flow_var '{name}': op '{op}' is not one of inc, dec, random")
    if step == 0:
        raise VmError("VM: step cannot be 0")
    limit = (1 << (8 * size)) - 1
    values = inst.get("value_list")
    if values is not None:
        if step > len(values):
            raise VmError("VM: step cannot be bigger than list size")
        if any(not 0 <= v <= limit for v in values):
            raise VmError(f"VM: requested value is bigger than {limit}")
        return FlowVar(name, size, op, 0, len(values) - 1, step, 0 if op == "inc" else len(values) - 1, values)
    init, low, high = _get(inst, "init_value"), _get(inst, "min_value"), _get(inst, "max_value")
    if high < low:
        raise VmError(f"VM: requested flow var max value: '{high}' is smaller than min value: {low}")
    if not low <= init <= high:
        raise VmError(f"VM: requested flow var init value: '{init}' should be in range from min value "
                      f"'{low}' to max value '{high}'")
    if size < 8 and max(init, low, high, step) > limit:
        raise VmError(f"VM: requested value is bigger than {limit}")
    pad = (high - low + 1) % step
    if pad and op == "inc":
        high += step - pad
    elif pad and op == "dec":
        if low < step - pad:
            raise VmError("VM: could not pad range to be a true cycle - '(max_value - min_value + 1) % step' "
                          "should be zero")
        low -= step - pad
    return FlowVar(name, size, op, low, high, step, init, None)


class StreamVm:
    """One stream's VM, compiled from its JSON: frames() runs it."""

    def __init__(self, packet: bytes, vm: dict, random_seed: int = 0):
        self.packet = packet + bytes(max(0, MIN_FRAME - len(packet)))
        self.instructions = vm.get("instructions", [])
        self.cache = vm.get("cache", 0)
        self.random_seed = random_seed
        self.vars: dict[str, FlowVar] = {}
        for inst in self.instructions:
            kind = inst.get("type")
            if kind == "flow_var":
                var = parse_flow_var(inst)
                self.vars[var.name] = var
            elif kind in ("write_flow_var", "write_mask_flow_var", "trim_pkt_size"):
                self._var_of(inst)
            elif kind not in ("fix_checksum_ipv4", "fix_checksum_hw"):
                raise VmError(f"VM instruction '{kind}' is not implemented by the TRex stand-in")
            self._check_offsets(inst)

    def _var_of(self, inst: dict) -> FlowVar:
        name = _get(inst, "name", (str,))
        if name not in self.vars:
            raise VmError(f"VM instruction '{inst['type']}' uses flow var '{name}', which no earlier flow_var defines")
        return self.vars[name]

    def _check_offsets(self, inst: dict) -> None:
        kind = inst["type"]
        if kind == "write_flow_var":
            end = _get(inst, "pkt_offset") + self.vars[inst["name"]].size
        elif kind == "write_mask_flow_var":
            end = _get(inst, "pkt_offset") + _get(inst, "pkt_cast_size")
        elif kind == "fix_checksum_ipv4":
            end = _get(inst, "pkt_offset") + 20
        elif kind == "fix_checksum_hw":
            if _get(inst, "l2_len") < 14:
                raise VmError(f"fix_checksum_hw: l2 offset {inst['l2_len']} is lower than 14")
            end = inst["l2_len"] + _get(inst, "l3_len") + (8 if _get(inst, "l4_type") != L4_TYPE_IP else 0)
        else:
            return
        if end > len(self.packet):
            raise VmError(f"VM instruction '{kind}' reaches byte {end} of a {len(self.packet)}-byte packet")

    def cycle(self) -> int:
        """How many frames frames() makes: the variables' common period. Over
        MAX_CYCLE it is refused rather than cut short, which would send fewer distinct
        frames than the profile asks for."""
        periods = [var.period() for var in self.vars.values()]
        if None in periods:
            return self.cache or RANDOM_CYCLE
        period = math.lcm(1, *periods)
        if period > MAX_CYCLE and not self.cache:
            raise VmError(f"VM: its frames repeat after {period}; the TRex stand-in makes a VM's frames ahead "
                          f"and holds at most {MAX_CYCLE} (a real TRex computes each frame as it sends it)")
        return min(period, self.cache or MAX_CYCLE)

    def frames(self) -> list[bytes]:
        """The frames the stream sends, in order, for one cycle()."""
        if not self.vars and not self.instructions:
            return [self.packet]
        state = {var.name: var.first_state() for var in self.vars.values()}
        rand = FastRand(self.random_seed)
        values: dict[str, int] = {}
        out = []
        for _ in range(self.cycle()):
            frame = bytearray(self.packet)
            length = len(frame)
            for inst in self.instructions:
                kind = inst["type"]
                if kind == "flow_var":
                    var = self.vars[inst["name"]]
                    values[var.name] = self._step(var, state, rand)
                elif kind == "write_flow_var":
                    var = self.vars[inst["name"]]
                    fmt = (">" if inst.get("is_big_endian", True) else "<") + _WRITE[var.size]
                    value = (values[var.name] + inst.get("add_value", 0)) & ((1 << (8 * var.size)) - 1)
                    struct.pack_into(fmt, frame, inst["pkt_offset"], value)
                elif kind == "write_mask_flow_var":
                    write_mask(frame, inst, values[inst["name"]], self.vars[inst["name"]].size)
                elif kind == "trim_pkt_size":
                    length = min(values[inst["name"]], len(frame))
                elif kind == "fix_checksum_ipv4":
                    fix_ipv4(frame, inst["pkt_offset"])
                else:
                    fix_hw(frame, inst["l2_len"], inst["l3_len"], inst["l4_type"])
            out.append(bytes(frame[:length]))
        return out

    @staticmethod
    def _step(var: FlowVar, state: dict[str, int], rand: FastRand) -> int:
        """run_inc/run_dec/run_rand: the variable's value for this frame."""
        if var.op == "random":
            if var.values is not None:
                return var.values[rand.rand16() % len(var.values)]
            draw = {1: rand.rand16, 2: rand.rand16, 4: rand.rand32, 8: rand.rand64}[var.size]()
            span = var.high - var.low + 1
            return draw if span == 1 << 64 else var.low + draw % span
        if var.values is not None:  # the value at the index, then the index moves
            index = state[var.name]
            step = var.step if var.op == "inc" else -var.step
            state[var.name] = (index + step) % len(var.values)
            return var.values[index]
        step = var.step % (var.high - var.low + 1)
        move = inc_mod if var.op == "inc" else dec_mod
        state[var.name] = move(var.low, var.high, state[var.name], step)
        return state[var.name]


def write_mask(frame: bytearray, inst: dict, value: int, var_size: int) -> None:
    """StreamDPOpPktWrMask::wr(): (value + add_value) shifted, written under `mask`."""
    value = (value + inst.get("add_value", 0)) & 0xFFFFFFFF
    shift = inst.get("shift", 0)
    value = (value << shift if shift > 0 else value >> -shift) & 0xFFFFFFFF
    size, mask = inst["pkt_cast_size"], inst["mask"]
    if size not in (1, 2, 4):
        raise VmError(f"write_mask_flow_var: pkt_cast_size {size} is not 1, 2 or 4")
    fmt = (">" if inst.get("is_big_endian", True) else "<") + _WRITE[size]
    old = struct.unpack_from(fmt, frame, inst["pkt_offset"])[0]
    struct.pack_into(fmt, frame, inst["pkt_offset"], ((old & ~mask) | (value & mask)) & ((1 << (8 * size)) - 1))


def fix_ipv4(frame: bytearray, offset: int) -> None:
    """StreamDPOpIpv4Fix: the header checksum over IHL words."""
    ipv4.fill_checksum(frame, offset)


def fix_hw(frame: bytearray, l2_len: int, l3_len: int, l4_type: int) -> None:
    """StreamDPOpHwCsFix as the NIC completes it: IPv4's header checksum, then the
    TCP/UDP checksum over the pseudo-header and the segment."""
    header = ipv4.Ipv4Packet(frame, l2_len)
    if header.version == 4:
        fix_ipv4(frame, l2_len)
        proto, start = header.protocol, l2_len + header.header_len
        length = header.tot_len - header.header_len
        pseudo = ipv4.pseudo_header_sum(frame, l2_len, proto, length)
    elif header.version == 6 and l4_type in (L4_TYPE_TCP, L4_TYPE_UDP):
        proto = IPPROTO_TCP if l4_type == L4_TYPE_TCP else IPPROTO_UDP
        start = l2_len + l3_len
        payload_len = int.from_bytes(frame[l2_len + IPV6_PAYLOAD_LEN:l2_len + IPV6_PAYLOAD_LEN + 2], "big")
        length = payload_len - (l3_len - IPV6_HLEN)  # less the extension headers before L4
        addresses = frame[l2_len + IPV6_ADDRS:l2_len + IPV6_HLEN]
        pseudo = 0xFFFF - checksum(addresses, proto + length)  # csum_ipv6_magic()'s sum
    else:
        raise VmError(f"fix_checksum_hw works on IPv4 or IPv6 (TCP or UDP), not IP version {header.version}")
    if proto not in (IPPROTO_TCP, IPPROTO_UDP) or l4_type == L4_TYPE_IP:
        return
    field = start + (tcp.CHECK if proto == IPPROTO_TCP else udp.CHECK)
    frame[field:field + 2] = bytes(2)
    value = checksum(frame[start:start + length], pseudo)
    if proto == IPPROTO_UDP and value == 0:
        value = 0xFFFF  # RFC 768: a computed 0 goes out as all ones, 0 meaning "no checksum"
    frame[field:field + 2] = value.to_bytes(2, "big")
