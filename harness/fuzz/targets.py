"""What a fuzzing campaign feeds, and what counts as the mock coping.

Each target owns a mock DUT (or an eBPF runtime), draws its cases from a
hypothesis strategy (frames.py, commands.py, bpf.py) or decodes them from raw
bytes (atheris), and runs one case in `execute()`. A case the mock handles as
Linux does returns normally: a frame dropped (with its drop reason in the
journey), a command failing with the tool's error (CommandError), an object or
program refused (BpfLoadError), a program stopped by a fault (BpfFault: the hook
aborts it, as the kernel's would never need to). Anything else raised out of the
mock is a crash, which the campaign (campaign.py) records.

The fuzzing DUT (`fuzz_dut()`): the suites' router plan (p0 10.0.0.1, p1 10.0.1.1,
IPv6 on both), p2 a port of bridge br0 (10.0.2.1), p1 and p2 at MTU 9198 (frames
up to 9,216 bytes), an inet filter table with conntrack, sets, limits and TCP
option rules, IPv4 and IPv6 NAT, a bridge table, an iptables REJECT rule, XDP
(xdp_blocklist) on p0, TC programs (tc_mark, tc_nat) on p1, a UDP socket on port
53 and a TCP listener on port 22. It is built anew every `RESET_EVERY` cases so
state (conntrack, reassembly queues, virtual time) builds up between.
"""
from __future__ import annotations

import json
import random
import struct
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether

from harness import bpf_build
from harness.fuzz import bpf as bpf_strategies
from harness.fuzz import commands, frames
from harness.mockkernel.bpf import BpfFault, BpfLoadError, BpfRuntime, SkBuffCtx
from harness.mockkernel.target import MockTarget
from harness.target import MAX_L2_OVERHEAD, MIN_FRAME_LEN, PORTS, TargetError
from harness.testing.plan import ipv6_on, plan_hosts6, plan_router

RESET_EVERY = 1000
XDP_PROGRAM, TC_PROGRAMS = "xdp_blocklist", ("tc_mark", "tc_nat")
JUMBO_MTU = frames.MAX_FRAME - MAX_L2_OVERHEAD

RULESET = """
table inet filter {
    set blocked { type ipv4_addr; elements = { 198.18.0.1, 10.0.3.2 } }
    chain input {
        type filter hook input priority filter; policy accept;
        ct state invalid counter drop
        ip saddr @blocked drop
        tcp dport 22 ct state new accept
        tcp flags syn tcp option maxseg size 1-500 drop
        icmp type echo-request limit rate 100/second accept
        meta l4proto ipv6-icmp accept
        udp dport 53 counter accept
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state established,related accept
        tcp flags syn tcp option maxseg size set rt mtu
        ip protocol gre drop
        iifname "p0" oifname "p1" accept
        ip6 nexthdr udp accept
    }
}
table ip nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "p0" tcp dport 8080 dnat to 10.0.1.2:80
        iifname "p0" udp dport 5353 dnat to 10.0.1.2
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "p1" masquerade
    }
}
table ip6 nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "p1" masquerade
    }
}
table bridge filter {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ether type arp accept
        vlan id 100 drop
    }
}
"""


@cache
def objects() -> dict[str, str]:
    """The clang-built objects the DUT and the ELF target use, by program name."""
    return {name: str(bpf_build.build(name)) for name in
            {XDP_PROGRAM, *TC_PROGRAMS, *bpf_strategies.ELF_PROGRAMS}}


def fuzz_dut(seed: int = 0) -> MockTarget:
    """The representative DUT every frame and command case runs on (module docstring)."""
    target = MockTarget(seed)
    plan_router(target)
    ipv6_on(target)
    plan_hosts6(target)
    target.sh("nft -f -", stdin=RULESET)
    target.sh("iptables -A INPUT -p tcp --dport 23 -j REJECT --reject-with tcp-reset")
    for command in ("ip link add br0 type bridge", "ip addr flush dev p2", "ip link set p2 master br0",
                    "ip link set br0 up", "ip addr add 10.0.2.1/24 dev br0", f"ip link set p1 mtu {JUMBO_MTU}",
                    f"ip link set p2 mtu {JUMBO_MTU}", f"ip link set dev p0 xdp obj {objects()[XDP_PROGRAM]} sec xdp",
                    "tc qdisc add dev p1 clsact",
                    f"tc filter add dev p1 ingress bpf da obj {objects()['tc_mark']} sec tc",
                    f"tc filter add dev p1 egress bpf da obj {objects()['tc_nat']} sec tc/egress"):
        target.sh(command)
    target.socket("udp", bind=("0.0.0.0", 53))
    target.socket("tcp", bind=("0.0.0.0", 22)).listen(16)
    return target


class FuzzTarget:
    """One thing to fuzz: `strategy` draws a case, `execute(case)` runs it."""

    name = ""
    strategy: st.SearchStrategy

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def execute(self, case: Any) -> None:
        raise NotImplementedError

    def from_bytes(self, data: bytes) -> Any:
        """A case decoded from a coverage-guided fuzzer's raw input."""
        raise NotImplementedError

    @staticmethod
    def describe(case: Any) -> str:
        """The case as JSON, for a crash record (bytes as hex)."""
        return json.dumps(case, default=lambda b: b.hex() if isinstance(b, (bytes, bytearray)) else repr(b))

    def from_json(self, case: Any) -> Any:
        """The case `describe()` wrote, for a replay."""
        return case

    def mutate(self, case: Any, rng: random.Random) -> Any:
        """A havoc variant of `case` (bytes overwritten, cut, grown; words
        replaced), cheap next to drawing a new case from the strategy."""
        raise NotImplementedError


class DutTarget(FuzzTarget):
    """A target that runs on fuzz_dut(), rebuilt every RESET_EVERY cases."""

    def __init__(self, seed: int = 0) -> None:
        self.seed, self.runs, self._dut = seed, 0, None

    @property
    def dut(self) -> MockTarget:
        if self._dut is None or self.runs % RESET_EVERY == 0:
            if self._dut is not None:
                self._dut.close()
            self._dut = fuzz_dut(self.seed + self.runs)
        return self._dut

    def close(self) -> None:
        if self._dut is not None:
            self._dut.close()
            self._dut = None


INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x40, 0x45, 0x60, 0x08, 0x11, 0x06, 0x3A, 0x2C)


def havoc_bytes(data: bytes, rng: random.Random, limit: int) -> bytes:
    """libFuzzer-like havoc: one to four bytes overwritten (random or interesting
    values), the data cut short, or grown with random bytes up to `limit`."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        how = rng.randrange(5)
        if how <= 2 and out:
            out[rng.randrange(len(out))] = rng.choice(INTERESTING) if how == 0 else rng.randrange(256)
        elif how == 3 and out:
            del out[rng.randrange(len(out)):]
        elif len(out) < limit:
            at = rng.randrange(len(out) + 1)
            out[at:at] = rng.randbytes(rng.randint(1, min(64, limit - len(out))))
    return bytes(out)


def _send(dut: MockTarget, port: int, frame: bytes) -> None:
    """A frame onto the wire of DUT port `port` (one the port's MTU lets in: a
    longer one goes to p1, whose MTU takes every length). One shorter than an
    Ethernet header never reaches the DUT: the tester's AF_PACKET socket refuses
    it (dev_validate_header()), and so does the target, with a TargetError."""
    name = PORTS[port].name
    if len(frame) > dut.kernel.dev_by_name(name).mtu + MAX_L2_OVERHEAD:
        name = PORTS[1].name
    try:
        dut.send(name, [frame])
    except TargetError:
        if len(frame) >= MIN_FRAME_LEN:
            raise
    dut.frame_log.clear()


class FramesTarget(DutTarget):
    """The datapath: frames into every port (frames.frame_cases())."""

    name = "frames"
    strategy = frames.frame_cases()

    def execute(self, case: list) -> None:
        dut = self.dut
        self.runs += 1
        for step in case:
            if isinstance(step, float):
                dut.wait(step)
            else:
                _send(dut, *step)
        dut.kernel.tracer.journeys.clear()
        dut.kernel.tracer.drops.clear()

    def length_sweep(self) -> Iterator[list]:
        """One frame of every length from 0 to 9,216 bytes, in turn into each port:
        a probe's headers (so the frame gets past Ethernet and IP) cut to the
        length or followed by random bytes up to it."""
        rng = random.Random(self.seed)
        for length in range(frames.MAX_FRAME + 1):
            port, probe = PROBES[length % len(PROBES)]
            yield [(port, (probe + rng.randbytes(max(0, length - len(probe))))[:length])]

    def from_json(self, case: list) -> list:
        return [step if isinstance(step, float) else (step[0], bytes.fromhex(step[1])) for step in case]

    def mutate(self, case: list, rng: random.Random) -> list:
        case = list(case)
        sends = [i for i, step in enumerate(case) if not isinstance(step, float)]
        if not sends:
            return case
        i = rng.choice(sends)
        port, frame = case[i]
        how = rng.randrange(6)
        if how == 0:
            case.insert(rng.randrange(len(case) + 1), (port, frame))  # a duplicate, anywhere in the train
        elif how == 1:
            case[i] = (rng.randrange(len(PORTS)), frame)
        else:
            case[i] = (port, havoc_bytes(frame, rng, frames.MAX_FRAME))
        return case

    def from_bytes(self, data: bytes) -> list:
        """Frames from raw bytes: a byte of port, two of length, then the frame."""
        case, pos = [], 0
        while pos + 3 <= len(data) and len(case) < 8:
            port, length = data[pos] % len(PORTS), struct.unpack_from("!H", data, pos + 1)[0] % (frames.MAX_FRAME + 1)
            case.append((port, data[pos + 3:pos + 3 + length]))
            pos += 3 + length
        return case or [(0, data)]


# a frame of each kind the DUT answers (a UDP query to its socket, a TCP SYN to
# forward, an IPv6 echo request), sent after a command case to find the
# configuration a command left the datapath in
PROBES = [(port.index, bytes(Ether(src=port.peer_mac, dst=port.mac) / packet)) for port, packet in (
    (PORTS[0], IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=53, dport=53)),
    (PORTS[0], IP(src="10.0.0.2", dst="10.0.1.2") / TCP(sport=1024, dport=80, flags="S", options=[("MSS", 1460)])),
    (PORTS[1], IPv6(src="2001:db8:1::2", dst="2001:db8:1::1") / ICMPv6EchoRequest(id=1, seq=10)))]


class CommandTarget(DutTarget):
    """One front end's command text (commands.command_cases()), then, if a command
    succeeded, the probe frames through the configuration it left."""

    def __init__(self, tool: str, seed: int = 0) -> None:
        super().__init__(seed)
        self.name = tool
        self.strategy = commands.command_cases(tool)
        self.vocabulary = commands.vocabulary(tool)

    def execute(self, case: list) -> None:
        dut = self.dut
        self.runs += 1
        changed = False
        for argv, stdin in case:
            argv = [word.replace(commands.XDP_OBJECT, objects()[XDP_PROGRAM]).replace(commands.TC_OBJECT,
                                                                                      objects()["tc_mark"])
                    for word in argv]
            try:
                dut.sh(argv, stdin)
                changed = True
            except TargetError:
                pass  # the tool's error: what a bad command must give
        if not changed:
            return  # a failed command changes nothing the probes would find
        for port, frame in PROBES:
            _send(dut, port, frame)
        dut.wait(0.1)
        dut.kernel.tracer.journeys.clear()
        dut.kernel.tracer.drops.clear()

    def mutate(self, case: list, rng: random.Random) -> list:
        case = list(case)
        i = rng.randrange(len(case))
        argv, stdin = case[i]
        if stdin is not None and rng.random() < 0.5:
            case[i] = (argv, havoc_bytes(stdin.encode(), rng, 4096).decode("utf-8", "replace"))
        else:
            argv = list(argv)
            j = rng.randrange(1, len(argv)) if len(argv) > 1 else 1
            word = rng.choice(commands.HOSTILE + self.vocabulary)
            if j < len(argv) and rng.random() < 0.7:
                argv[j] = word
            else:
                argv.insert(j, word)
            case[i] = (argv, stdin)
        return case

    def from_bytes(self, data: bytes) -> list:
        """A command from raw bytes: words split at spaces, NULs and newlines kept."""
        text = data.decode("utf-8", "replace")
        argv, _, stdin = text.partition("\n")
        return [([self.name, *argv.split(" ")], stdin or None)]


def _run_program(prog, frame: bytes) -> None:
    """Run a loaded program on `frame` as its hook would; a fault aborts it."""
    try:
        if prog.type == "xdp":
            prog.run_xdp(frame, 2, "")
        elif prog.type == "sched_cls":
            prog.run(SkBuffCtx(bytearray(frame), 0, len(frame)))
        else:
            prog.run_raw(bytearray(frame))
    except BpfFault:
        pass


class ElfTarget(FuzzTarget):
    """The ELF loader: mutated clang-built objects (bpf.elf_cases()), loaded then run."""

    name = "elf"

    def __init__(self, seed: int = 0) -> None:
        self.data = {name: open(objects()[name], "rb").read() for name in bpf_strategies.ELF_PROGRAMS}
        self.strategy = bpf_strategies.elf_cases(self.data)

    def execute(self, case: tuple) -> None:
        name, patches, cut = case
        self.load(bpf_strategies.apply_patches(self.data[name], patches, cut))

    def from_json(self, case: list) -> tuple:
        name, patches, cut = case
        return name, [(offset, bytes.fromhex(value)) for offset, value in patches], cut

    def mutate(self, case: tuple, rng: random.Random) -> tuple:
        name, patches, cut = case
        size = len(self.data[name])
        patches = patches + [(rng.randrange(size), rng.randbytes(rng.choice((1, 2, 4, 8))))
                             for _ in range(rng.randint(1, 3))]
        return name, patches, rng.randrange(size) if rng.random() < 0.1 else cut

    @staticmethod
    def load(data: bytes) -> None:
        try:
            obj = BpfRuntime().load_object(data)
        except BpfLoadError:
            return
        for name in obj.programs:
            try:
                prog = obj.program(name)
            except BpfLoadError:
                continue
            _run_program(prog, PROBES[0][1])

    def from_bytes(self, data: bytes) -> tuple:
        """Patches from raw bytes: each (u16 offset into the object, a byte); the
        first byte picks the object."""
        if not data:
            return bpf_strategies.ELF_PROGRAMS[0], [], None
        name = bpf_strategies.ELF_PROGRAMS[data[0] % len(bpf_strategies.ELF_PROGRAMS)]
        size = len(self.data[name])
        patches = [(struct.unpack_from("<H", data, i)[0] % size, data[i + 2:i + 3]) for i in range(1, len(data) - 2, 3)]
        return name, patches, None


class BytecodeTarget(FuzzTarget):
    """The verifier and the VM: drawn bytecode (bpf.bytecode_cases()), loaded then run."""

    name = "bytecode"
    strategy = bpf_strategies.bytecode_cases()

    def execute(self, case: tuple) -> None:
        prog_type, code = case
        try:
            prog = BpfRuntime().load_program(code, prog_type, "fuzz")
        except BpfLoadError:
            return
        _run_program(prog, PROBES[1][1])

    def from_json(self, case: list) -> tuple:
        return case[0], bytes.fromhex(case[1])

    def mutate(self, case: tuple, rng: random.Random) -> tuple:
        prog_type, code = case
        code = havoc_bytes(code, rng, 8 * 64)
        return prog_type, code[:len(code) - len(code) % 8]

    def from_bytes(self, data: bytes) -> tuple:
        prog_type = bpf_strategies.PROG_TYPES[data[0] % 3] if data else "xdp"
        code = data[1:]
        return prog_type, code[:len(code) - len(code) % 8]


TOOLS = ("ip", "tc", "sysctl", "ethtool", "bpftool", "iptables", "ss", "conntrack", "bridge", "nstat", "nft")
TARGETS: dict[str, Callable[[int], FuzzTarget]] = {
    "frames": FramesTarget, **{tool: (lambda seed, tool=tool: CommandTarget(tool, seed)) for tool in TOOLS},
    "elf": ElfTarget, "bytecode": BytecodeTarget}
