"""The clang-built programs in programs/ on the mock, and the same objects on the real kernel.

Loading (ELF sections, BTF maps, global data, relocations), then each
program's verdict and rewrite on crafted frames, maps from user space, and
the helpers behind them. Where the host allows (root, bpftool), the same .o
runs in the real kernel through `bpftool prog run` (BPF_PROG_TEST_RUN) with
the same frame and map contents, inside a private mount namespace with its
own bpffs (and a private network namespace when routes matter), and the
return value, output frame, __sk_buff and maps must match the mock's.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, Ether

from harness import bpf_build
from harness.mockkernel.bpf import (
    TC_ACT_OK,
    TC_ACT_REDIRECT,
    TC_ACT_SHOT,
    XDP_DROP,
    XDP_PASS,
    XDP_REDIRECT,
    XDP_TX,
    BpfFault,
    BpfLoadError,
    BpfRuntime,
    MapError,
    Redirect,
    SkBuffCtx,
    XdpMd,
)
from harness.mockkernel.bpf.asm import assemble
from harness.mockkernel.bpf.maps import (
    BPF_F_NO_PREALLOC,
    BPF_MAP_TYPE_ARRAY,
    BPF_MAP_TYPE_LPM_TRIE,
    BPF_MAP_TYPE_LRU_HASH,
    BPF_MAP_TYPE_PERCPU_ARRAY,
)
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.target import sh

MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


@pytest.fixture
def rt() -> BpfRuntime:
    return BpfRuntime()


def udp(src="10.1.2.3", dst="10.0.0.1", sport=1000, dport=9, payload=b"x" * 18, **ip) -> bytes:
    return bytes(Ether(src=MAC_A, dst=MAC_B) / IP(src=src, dst=dst, **ip) / UDP(sport=sport, dport=dport) / payload)


def tcp(src="10.1.2.3", dst="10.0.0.1", dport=80) -> bytes:
    return bytes(Ether(src=MAC_A, dst=MAC_B) / IP(src=src, dst=dst) / TCP(sport=1000, dport=dport))


def xdp(prog, frame: bytes, **fields) -> tuple[int, XdpMd]:
    ctx = XdpMd.from_frame(frame, **fields)
    return prog.run(ctx), ctx


def tc(prog, frame: bytes, **fields) -> tuple[int, SkBuffCtx]:
    ctx = SkBuffCtx(bytearray(frame), 0, len(frame), **fields)
    return prog.run(ctx), ctx


def lpm_key(prefix: str) -> bytes:
    addr, plen = prefix.split("/")
    return struct.pack("<I", int(plen)) + bytes(int(b) for b in addr.split("."))


# the real kernel through bpftool

# the verifier's check_helper_call() when the type's get_func_proto() offers no such helper
HELPER_REFUSED = re.compile(r"program of this type cannot use helper \S+")


@dataclass
class KernelRun:
    retval: int
    data: bytes
    ctx: bytes = b""
    maps: dict[str, list] = field(default_factory=dict)


class Bpftool:
    """`bpftool prog run` of one program of an object in a throwaway mount
    namespace (and network namespace): loadall with pinned maps on a private
    bpffs, map updates, BPF_PROG_TEST_RUN, map dumps; the namespaces take
    every pin with them when the script ends."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def run(self, obj: Path, prog: str, frame: bytes, *, tc: bool = False, updates=(), tail_calls=(),
            ctx: bytes | None = None, dump=(), setup: str = "") -> KernelRun:
        work = self.workdir
        (work / "in").write_bytes(frame)
        fs = work / "fs"
        lines = ["set -e", f"mkdir -p {fs}", f"mount -t bpf bpf {fs}", f"mkdir {fs}/maps", setup,
                 f"bpftool prog loadall {obj} {fs}/progs {'type tc' if tc else ''} pinmaps {fs}/maps"]
        lines += [f"bpftool map update pinned {fs}/maps/{name} key hex {key.hex(' ')} value hex {value.hex(' ')}"
                  for name, key, value in updates]
        lines += [f"bpftool map update pinned {fs}/maps/{name} key hex {key.hex(' ')} value pinned {fs}/progs/{target}"
                  for name, key, target in tail_calls]
        ctx_args = ""
        if ctx is not None:
            (work / "ctx_in").write_bytes(ctx)
            ctx_args = f"ctx_in {work}/ctx_in ctx_out {work}/ctx_out"
        lines.append(f"bpftool -j prog run pinned {fs}/progs/{prog} data_in {work}/in data_out {work}/out "
                     f"{ctx_args} repeat 1 > {work}/run.json")
        lines += [f"bpftool -j map dump pinned {fs}/maps/{name} > {work}/map.{name}.json" for name in dump]
        script = work / "run.sh"
        script.write_text("\n".join(lines) + "\n")
        result = subprocess.run(["unshare", "--mount", "--net", "--propagation", "private", "sh", str(script)],
                                capture_output=True, text=True, check=False)
        if result.returncode:
            refused = HELPER_REFUSED.search(result.stderr)
            if refused:  # a property of the kernel's build, not of the program or the mock
                pytest.skip(f"kernel {os.uname().release} refuses {obj.name} at load: {refused.group(0)}")
            raise AssertionError(f"bpftool on the real kernel failed:\n{result.stderr}")
        maps = {name: json.loads((work / f"map.{name}.json").read_text()) for name in dump}
        return KernelRun(json.loads((work / "run.json").read_text())["retval"], (work / "out").read_bytes(),
                         (work / "ctx_out").read_bytes() if ctx is not None else b"", maps)


@pytest.fixture
def kernel(tmp_path) -> Bpftool:
    if os.geteuid() != 0 or shutil.which("bpftool") is None or shutil.which("unshare") is None:
        pytest.skip("running objects on the real kernel needs root, bpftool and unshare")
    return Bpftool(tmp_path)


def hex_bytes(values: list[str]) -> bytes:
    return bytes(int(v, 16) for v in values)


def xdp_md(frame: bytes, ingress_ifindex: int) -> bytes:
    """A struct xdp_md for BPF_PROG_TEST_RUN's ctx_in: the whole frame, that ingress device."""
    return struct.pack("<IIIIII", 0, len(frame), 0, ingress_ifindex, 0, 0)


def sk_buff(mark: int = 0, priority: int = 0) -> bytes:
    ctx = bytearray(192)
    struct.pack_into("<I", ctx, 8, mark)
    struct.pack_into("<I", ctx, 32, priority)
    return bytes(ctx)


# loading


def test_programs_are_found_by_function_and_by_section(rt, bpf_objects):
    nat = rt.load_object(bpf_objects["tc_nat"])
    assert nat.program("tc/ingress") is nat.program("tc_dnat")
    assert (nat.program("tc_snat").type, nat.program("tc_snat").section) == ("sched_cls", "tc/egress")
    drop = rt.load_object(bpf_objects["xdp_drop_udp"])
    assert (drop.program().name, drop.program().type, drop.license) == ("xdp_drop_udp", "xdp", "GPL")


def test_btf_map_definitions_are_read_from_the_maps_section(rt, bpf_objects):
    blocklist = rt.load_object(bpf_objects["xdp_blocklist"]).map("blocklist")
    assert (blocklist.type_name, blocklist.key_size, blocklist.value_size, blocklist.max_entries,
            blocklist.map_flags) == ("lpm_trie", 8, 8, 1024, BPF_F_NO_PREALLOC)
    counters = rt.load_object(bpf_objects["xdp_counters"])
    assert [(m.type_name, m.value_size) for m in counters.maps.values()] == [("percpu_array", 16), ("array", 8)]


def test_global_data_sections_become_maps_named_as_libbpf_names_them(rt, bpf_objects):
    obj = rt.load_object(bpf_objects["xdp_global_data"])
    assert list(obj.maps) == ["xdp_glob.rodata", "xdp_glob.data", "xdp_glob.bss"]
    assert obj.global_var("drop_port") == struct.pack("<H", 9)
    assert obj.global_var("match_verdict") == struct.pack("<I", XDP_DROP)
    assert obj.global_var("packets_seen") == bytes(8)
    with pytest.raises(MapError, match="frozen"):
        obj.map(".rodata").update_elem(bytes(4), bytes(obj.map(".rodata").value_size))


def test_legacy_maps_section_and_unsupported_program_types(rt, bpf_objects, tmp_path):
    source = tmp_path / "legacy_maps_test.c"
    source.write_text("""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct bpf_map_def { unsigned int type, key_size, value_size, max_entries, map_flags; };
struct bpf_map_def SEC("maps") legacy = { BPF_MAP_TYPE_HASH, 4, 8, 16, 0 };
SEC("xdp") int uses_legacy(struct xdp_md *ctx)
{
    __u32 key = 1;
    return bpf_map_lookup_elem(&legacy, &key) ? XDP_DROP : XDP_PASS;
}
SEC("kprobe/do_nothing") int probe(void *ctx) { return 0; }
char LICENSE[] SEC("license") = "GPL";
""")
    obj = rt.load_object(bpf_objects[source])
    legacy = obj.map("legacy")
    assert (legacy.type_name, legacy.key_size, legacy.value_size, legacy.max_entries) == ("hash", 4, 8, 16)
    assert xdp(obj.program("uses_legacy"), udp())[0] == XDP_PASS
    legacy.update_elem(struct.pack("<I", 1), bytes(8))
    assert xdp(obj.program("uses_legacy"), udp())[0] == XDP_DROP
    with pytest.raises(BpfLoadError, match="kprobe/do_nothing"):
        obj.program("probe")


def test_an_object_that_is_not_bpf_elf_is_refused(rt):
    with pytest.raises(BpfLoadError, match="not an ELF object"):
        rt.load_object(b"not an object")


def test_a_missing_clang_names_the_debian_package(monkeypatch):
    bpf_build.clang_version.cache_clear()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    try:
        with pytest.raises(bpf_build.ToolchainMissing, match=r"clang not found.*apt-get install clang\)"):
            bpf_build.build("xdp_drop_udp")
    finally:
        bpf_build.clang_version.cache_clear()


def test_missing_libbpf_headers_name_the_debian_package(monkeypatch, tmp_path):
    bpf_build.clang_version.cache_clear()
    monkeypatch.setattr(bpf_build, "LIBBPF_HEADER", tmp_path / "bpf_helpers.h")
    try:
        with pytest.raises(bpf_build.ToolchainMissing, match=r"bpf_helpers.h not found.*apt-get install libbpf-dev\)"):
            bpf_build.build("xdp_drop_udp")
    finally:
        bpf_build.clang_version.cache_clear()


def test_a_program_that_does_not_compile_is_an_error_with_clangs_output(bpf_objects, tmp_path):
    source = tmp_path / "broken_program.c"
    source.write_text('#include <linux/bpf.h>\nSEC("xdp") int broken(struct xdp_md *ctx) { return XDP_PASS }\n')
    with pytest.raises(bpf_build.CompileError, match=r"(?s)clang failed on .*broken_program.c.*error: expected ';'"):
        bpf_objects[source]


# XDP programs


@pytest.mark.parametrize("frame, verdict", [
    (udp(), XDP_DROP),
    (tcp(), XDP_PASS),
    (bytes(Ether(src=MAC_A, dst=MAC_B) / ARP()), XDP_PASS),
    (udp()[:30], XDP_PASS),
], ids=["udp dropped", "tcp passes", "arp passes", "truncated ip header passes"])
def test_xdp_drop_udp(rt, bpf_objects, frame, verdict):
    assert xdp(rt.load_object(bpf_objects["xdp_drop_udp"]).program(), frame)[0] == verdict


def test_xdp_drop_udp_matches_the_kernel(rt, bpf_objects, kernel):
    for frame in (udp(), tcp()):
        verdict, ctx = xdp(rt.load_object(bpf_objects["xdp_drop_udp"]).program(), frame)
        real = kernel.run(bpf_objects["xdp_drop_udp"], "xdp_drop_udp", frame)
        assert (real.retval, real.data) == (verdict, ctx.packet())


def test_lpm_blocklist_drops_sources_in_listed_prefixes_and_counts_them(rt, bpf_objects):
    obj = rt.load_object(bpf_objects["xdp_blocklist"])
    blocklist = obj.map("blocklist")
    blocklist.update_elem(lpm_key("10.1.0.0/16"), bytes(8))
    blocklist.update_elem(lpm_key("10.1.2.0/24"), bytes(8))
    prog = obj.program()
    assert [xdp(prog, udp(src=src))[0] for src in ("10.1.2.3", "10.1.9.9", "10.2.0.1")] == \
           [XDP_DROP, XDP_DROP, XDP_PASS]
    # the longest prefix counted each drop
    assert blocklist.lookup(lpm_key("10.1.2.0/24")) == struct.pack("<Q", 1)
    assert blocklist.lookup(lpm_key("10.1.0.0/16")) == struct.pack("<Q", 1)
    blocklist.delete_elem(lpm_key("10.1.0.0/16"))
    assert xdp(prog, udp(src="10.1.9.9"))[0] == XDP_PASS


def test_lpm_blocklist_matches_the_kernel(rt, bpf_objects, kernel):
    obj = rt.load_object(bpf_objects["xdp_blocklist"])
    obj.map("blocklist").update_elem(lpm_key("10.1.0.0/16"), bytes(8))
    verdict, _ = xdp(obj.program(), udp())
    real = kernel.run(bpf_objects["xdp_blocklist"], "xdp_blocklist", udp(),
                      updates=[("blocklist", lpm_key("10.1.0.0/16"), bytes(8))], dump=["blocklist"])
    assert real.retval == verdict == XDP_DROP
    assert [(hex_bytes(e["key"]), hex_bytes(e["value"])) for e in real.maps["blocklist"]] == \
           obj.map("blocklist").dump()


def test_counters_per_cpu_and_shared(bpf_objects):
    rt = BpfRuntime(ncpus=2)
    obj = rt.load_object(bpf_objects["xdp_counters"])
    prog = obj.program()
    frame = udp()
    for cpu in (0, 1, 1):
        rt.cpu = cpu
        assert xdp(prog, frame)[0] == XDP_PASS
    per_cpu = obj.map("proto_stats").lookup(struct.pack("<I", 17))
    assert [struct.unpack("<QQ", v) for v in per_cpu] == [(1, len(frame)), (2, 2 * len(frame))]
    assert obj.map("proto_packets").lookup(struct.pack("<I", 17)) == struct.pack("<Q", 3)


def test_counters_match_the_kernel(bpf_objects, kernel):
    rt = BpfRuntime(ncpus=os.cpu_count())
    obj = rt.load_object(bpf_objects["xdp_counters"])
    xdp(obj.program(), udp())
    real = kernel.run(bpf_objects["xdp_counters"], "xdp_counters", udp(), dump=["proto_stats", "proto_packets"])
    key = struct.pack("<I", 17).hex()
    real_stats = next(e for e in real.maps["proto_stats"] if hex_bytes(e["key"]).hex() == key)
    summed = [sum(x) for x in zip(*(struct.unpack("<QQ", hex_bytes(v["value"])) for v in real_stats["values"]))]
    mock_stats = obj.map("proto_stats").lookup(bytes.fromhex(key))
    assert summed == [sum(x) for x in zip(*(struct.unpack("<QQ", v) for v in mock_stats))] == [1, len(udp())]
    real_packets = {hex_bytes(e["key"]): hex_bytes(e["value"]) for e in real.maps["proto_packets"]}
    assert real_packets == dict(obj.map("proto_packets").dump())


def test_tx_reflector_swaps_addresses_and_fixes_the_checksum(rt, bpf_objects):
    frame = udp(src="10.1.2.3", dst="10.0.0.1", sport=1000, dport=7, ttl=3)
    verdict, ctx = xdp(rt.load_object(bpf_objects["xdp_tx_reflector"]).program(), frame)
    assert verdict == XDP_TX
    out = Ether(ctx.packet())
    assert (out.src, out.dst, out[IP].src, out[IP].dst, out[IP].ttl, out[UDP].sport, out[UDP].dport) == \
           (MAC_B, MAC_A, "10.0.0.1", "10.1.2.3", 64, 7, 1000)
    recomputed = out[IP].copy()
    del recomputed.chksum
    assert out[IP].chksum == IP(bytes(recomputed)).chksum


def test_tx_reflector_matches_the_kernel(rt, bpf_objects, kernel):
    frame = udp(ttl=3)
    verdict, ctx = xdp(rt.load_object(bpf_objects["xdp_tx_reflector"]).program(), frame)
    real = kernel.run(bpf_objects["xdp_tx_reflector"], "xdp_tx_reflector", frame)
    assert (real.retval, real.data) == (verdict, ctx.packet())


def test_redirect_through_a_devmap(rt, bpf_objects):
    obj = rt.load_object(bpf_objects["xdp_redirect_devmap"])
    obj.map("tx_port").update_elem(struct.pack("<I", 2), struct.pack("<I", 3))
    verdict, ctx = xdp(obj.program(), udp(), ingress_ifindex=2)
    assert (verdict, ctx.redirect) == (XDP_REDIRECT, Redirect("dev", 3))
    verdict, ctx = xdp(obj.program(), udp(), ingress_ifindex=4)
    assert (verdict, ctx.redirect) == (XDP_PASS, None)


def test_devmap_entries_must_name_devices_of_the_namespace(bpf_objects):
    rt = BpfRuntime(net=Kernel())
    tx_port = rt.load_object(bpf_objects["xdp_redirect_devmap"]).map("tx_port")
    tx_port.update_elem(struct.pack("<I", 0), struct.pack("<I", 2))
    with pytest.raises(MapError) as error:
        tx_port.update_elem(struct.pack("<I", 1), struct.pack("<I", 99))
    assert error.value.errno == 22  # EINVAL, as __dev_map_alloc_node() returns (bpftool on the lab)


def test_redirect_through_a_devmap_matches_the_kernel(rt, bpf_objects, kernel):
    """In the kernel's private namespace only lo (ifindex 1) exists."""
    obj = rt.load_object(bpf_objects["xdp_redirect_devmap"])
    obj.map("tx_port").update_elem(struct.pack("<I", 1), struct.pack("<I", 1))
    verdict, ctx = xdp(obj.program(), udp(), ingress_ifindex=1)
    real = kernel.run(bpf_objects["xdp_redirect_devmap"], "xdp_redirect_devmap", udp(), ctx=xdp_md(udp(), 1),
                      updates=[("tx_port", struct.pack("<I", 1), struct.pack("<I", 1))])
    assert (real.retval, real.data) == (verdict, ctx.packet()) == (XDP_REDIRECT, udp())


def test_global_data_and_a_bpf_to_bpf_call(rt, bpf_objects):
    obj = rt.load_object(bpf_objects["xdp_global_data"])
    prog = obj.program()
    assert [xdp(prog, frame)[0] for frame in (udp(dport=9), udp(dport=53), tcp())] == [XDP_DROP, XDP_PASS, XDP_PASS]
    assert struct.unpack("<QQ", obj.map(".bss").lookup(bytes(4))) == (3, 2)
    assert rt.trace_pipe == ["udp to port 9: verdict 1"]  # as the kernel's trace_pipe shows it
    obj.map(".data").update_elem(bytes(4), struct.pack("<I", XDP_TX))
    assert xdp(prog, udp(dport=9))[0] == XDP_TX


def test_global_data_matches_the_kernel(rt, bpf_objects, kernel):
    obj = rt.load_object(bpf_objects["xdp_global_data"])
    verdict, _ = xdp(obj.program(), udp(dport=9))
    real = kernel.run(bpf_objects["xdp_global_data"], "xdp_global_data", udp(dport=9), dump=["xdp_glob_bss"])
    assert real.retval == verdict
    assert hex_bytes(real.maps["xdp_glob_bss"][0]["value"]) == obj.map(".bss").lookup(bytes(4))


def test_tail_call_dispatch_through_a_prog_array(rt, bpf_objects):
    obj = rt.load_object(bpf_objects["xdp_tailcall"])
    dispatch, leaf = obj.program("xdp_dispatch"), obj.program("xdp_drop_leaf")
    assert xdp(dispatch, udp())[0] == XDP_PASS
    obj.map("jmp_table").update_elem(struct.pack("<I", 17), struct.pack("<I", leaf.fd))
    assert [xdp(dispatch, frame)[0] for frame in (udp(), tcp())] == [XDP_DROP, XDP_PASS]
    assert (dispatch.run_cnt, leaf.run_cnt) == (3, 0)  # bpf_stats counts the program the hook ran


def test_tail_call_matches_the_kernel(rt, bpf_objects, kernel):
    obj = rt.load_object(bpf_objects["xdp_tailcall"])
    obj.map("jmp_table").update_elem(struct.pack("<I", 17), struct.pack("<I", obj.program("xdp_drop_leaf").fd))
    real = kernel.run(bpf_objects["xdp_tailcall"], "xdp_dispatch", udp(),
                      tail_calls=[("jmp_table", struct.pack("<I", 17), "xdp_drop_leaf")])
    assert real.retval == xdp(obj.program("xdp_dispatch"), udp())[0] == XDP_DROP


def test_events_through_the_ring_buffer_and_perf_event_array(bpf_objects):
    rt = BpfRuntime(ncpus=2)
    rt.cpu = 1
    obj = rt.load_object(bpf_objects["xdp_events"])
    rings = [obj.map("perf_events").open_ring(cpu, 4096) for cpu in (0, 1)]
    frame = udp(ttl=17)
    assert xdp(obj.program(), frame)[0] == XDP_PASS
    record = struct.pack("<4s4sHBB", bytes([10, 1, 2, 3]), bytes([10, 0, 0, 1]), len(frame), 17, 17)
    assert obj.map("events").consume() == [record]
    assert obj.map("events").consume() == []
    # the raw sample: the event, the frame's first 14 bytes, zeros to 4 + size = 32
    assert [ring.drain() for ring in rings] == [[], [(1, record + frame[:14] + bytes(2))]]


def test_ring_buffer_refuses_records_that_do_not_fit(rt):
    ringbuf = rt.create_map(27, 0, 0, 4096, name="rb")
    assert [ringbuf.output(bytes(2000)) for _ in range(3)] == [0, 0, -11]  # -EAGAIN
    assert len(ringbuf.consume()) == 2
    assert ringbuf.output(bytes(2000)) == 0


def test_ipip_encapsulation_with_adjust_head_and_csum_diff(rt, bpf_objects):
    frame = udp()
    verdict, ctx = xdp(rt.load_object(bpf_objects["xdp_adjust"]).program("xdp_ipip_encap"), frame)
    assert verdict == XDP_PASS
    out = Ether(ctx.packet())
    outer = out[IP]
    assert (outer.proto, outer.src, outer.dst, outer.len, outer.flags.DF) == (4, "10.99.0.1", "10.99.0.2",
                                                                             len(frame) - 14 + 20, 1)
    assert bytes(outer.payload) == frame[14:]
    recomputed = outer.copy()
    del recomputed.chksum
    assert outer.chksum == IP(bytes(recomputed)).chksum
    assert ctx.data == 256 - 20


def test_adjust_tail_trims_and_adjust_meta_prepends_metadata(rt, bpf_objects):
    frame = udp(payload=b"y" * 100)
    verdict, ctx = xdp(rt.load_object(bpf_objects["xdp_adjust"]).program("xdp_trim"), frame)
    assert (verdict, ctx.packet()) == (XDP_PASS, frame[:64])
    verdict, ctx = xdp(rt.load_object(bpf_objects["xdp_meta"]).program("xdp_meta_mark"), frame)
    assert (verdict, ctx.data - ctx.data_meta, bytes(ctx.buf[ctx.data_meta:ctx.data])) == \
           (XDP_PASS, 4, struct.pack("<I", 0xFEEDBEEF))


@pytest.mark.parametrize("obj, prog", [("xdp_adjust", "xdp_ipip_encap"), ("xdp_adjust", "xdp_trim"),
                                       ("xdp_meta", "xdp_meta_mark")])
def test_adjust_helpers_match_the_kernel(rt, bpf_objects, kernel, obj, prog):
    frame = udp(payload=b"y" * 100)
    verdict, ctx = xdp(rt.load_object(bpf_objects[obj]).program(prog), frame)
    real = kernel.run(bpf_objects[obj], prog, frame)
    # test_run's data_out starts at data_meta: the metadata, then the frame
    assert (real.retval, real.data) == (verdict, bytes(ctx.buf[ctx.data_meta:ctx.data_end]))


def test_adjust_head_refuses_to_eat_the_ethernet_header(rt):
    prog = rt.load_program(assemble("mov r2, 60\ncall 44\nexit"), "xdp")
    verdict, ctx = xdp(prog, bytes(60))
    assert verdict == (-22) & 0xFFFFFFFF and ctx.data == 256  # -EINVAL, nothing moved


# TC programs


def test_tc_dnat_rewrites_the_destination_and_both_checksums(rt, bpf_objects):
    obj = rt.load_object(bpf_objects["tc_nat"])
    obj.map("dnat").update_elem(bytes([10, 0, 0, 1]), bytes([192, 168, 7, 9]))
    for frame in (udp(), tcp()):
        verdict, ctx = tc(obj.program("tc/ingress"), frame)
        assert verdict == TC_ACT_OK
        out = Ether(ctx.packet())
        assert out[IP].dst == "192.168.7.9"
        expected = Ether(frame)
        expected[IP].dst = "192.168.7.9"
        del expected[IP].chksum
        del expected[IP].payload.chksum
        assert ctx.packet() == bytes(expected)


def test_tc_dnat_keeps_a_zero_udp_checksum(rt, bpf_objects):
    obj = rt.load_object(bpf_objects["tc_nat"])
    obj.map("dnat").update_elem(bytes([10, 0, 0, 1]), bytes([192, 168, 7, 9]))
    _, ctx = tc(obj.program("tc_dnat"), _udp_without_checksum())
    assert Ether(ctx.packet())[UDP].chksum == 0


def test_tc_snat_rewrites_the_source_on_egress_only_for_listed_addresses(rt, bpf_objects):
    obj = rt.load_object(bpf_objects["tc_nat"])
    obj.map("snat").update_elem(bytes([10, 1, 2, 3]), bytes([203, 0, 113, 5]))
    assert Ether(tc(obj.program("tc_snat"), udp())[1].packet())[IP].src == "203.0.113.5"
    assert tc(obj.program("tc_snat"), udp(src="10.9.9.9"))[1].packet() == udp(src="10.9.9.9")


def _udp_without_checksum() -> bytes:
    frame = Ether(udp())
    frame[UDP].chksum = 0
    return bytes(frame)


@pytest.mark.parametrize("frame", [udp(), tcp(), _udp_without_checksum()], ids=["udp", "tcp", "udp checksum 0"])
def test_tc_nat_matches_the_kernel(rt, bpf_objects, kernel, frame):
    obj = rt.load_object(bpf_objects["tc_nat"])
    entry = (bytes([10, 0, 0, 1]), bytes([192, 168, 7, 9]))
    obj.map("dnat").update_elem(*entry)
    verdict, ctx = tc(obj.program("tc_dnat"), frame)
    real = kernel.run(bpf_objects["tc_nat"], "tc_dnat", frame, tc=True, updates=[("dnat", *entry)])
    assert (real.retval, real.data) == (verdict, ctx.packet())


def test_tc_mark_sets_mark_and_priority_for_listed_ports(rt, bpf_objects):
    obj = rt.load_object(bpf_objects["tc_mark"])
    obj.map("port_policy").update_elem(struct.pack("<H", 5000), struct.pack("<II", 0x2A, 6))
    _, ctx = tc(obj.program(), udp(dport=5000), mark=1)
    assert (ctx.mark, ctx.priority) == (0x2A, 6)
    _, ctx = tc(obj.program(), tcp(dport=22), mark=1)
    assert (ctx.mark, ctx.priority) == (1, 0)


def test_tc_mark_matches_the_kernel(rt, bpf_objects, kernel):
    obj = rt.load_object(bpf_objects["tc_mark"])
    policy = (struct.pack("<H", 5000), struct.pack("<II", 0x2A, 6))
    obj.map("port_policy").update_elem(*policy)
    verdict, ctx = tc(obj.program(), udp(dport=5000), mark=1)
    real = kernel.run(bpf_objects["tc_mark"], "tc_mark", udp(dport=5000), tc=True, ctx=sk_buff(mark=1),
                      updates=[("port_policy", *policy)])
    assert real.retval == verdict
    assert struct.unpack_from("<I", real.ctx, 8)[0] == ctx.mark
    assert struct.unpack_from("<I", real.ctx, 32)[0] == ctx.priority


# bpf_fib_lookup against the mock's routing tables, and the kernel's

FIB_SETUP = [
    "ip link add p0 type veth peer name p1",
    "ip link set p0 address 02:00:00:00:00:01",
    "ip link set p1 address 02:00:00:00:00:02",
    "ip link set p1 mtu 1000",
    "ip link set p0 up",
    "ip link set p1 up",
    "ip addr add 10.0.0.1/24 dev p0",
    "ip addr add 10.0.1.1/24 dev p1",
    "ip route add 10.0.2.0/24 via 10.0.1.2 dev p1",
    "ip route add blackhole 10.0.9.0/24",
    "ip route add 10.0.3.0/24 via 10.0.1.2 dev p1 mtu 100",
    "ip neigh replace 10.0.1.2 lladdr 02:00:00:00:01:02 dev p1 nud permanent",
    "sysctl -qw net.ipv4.ip_forward=1",
]


def _mock_fib_kernel() -> Kernel:
    """FIB_SETUP on the mock, whose p0 and p1 (ifindex 2 and 3) already exist with those MACs."""
    kernel = Kernel()
    for command in FIB_SETUP[3:]:
        sh(kernel, command.replace("-qw", "-w").split())
    return kernel


FIB_CASES = [("10.0.2.7", 200, XDP_REDIRECT), ("10.0.1.9", 200, XDP_PASS), ("10.0.9.1", 200, XDP_DROP),
             ("10.0.0.1", 200, XDP_PASS), ("10.0.2.7", 1200, XDP_PASS), ("10.0.3.7", 200, XDP_REDIRECT)]
FIB_CASE_IDS = ["via gateway", "no neighbour yet", "blackhole", "local", "bigger than the device mtu",
                "a route's mtu metric does not count"]


def _fib_frame(dst: str, payload: int) -> bytes:
    return udp(src="10.0.0.2", dst=dst, ttl=5, payload=b"z" * payload)


@pytest.mark.parametrize("dst, payload, verdict", FIB_CASES, ids=FIB_CASE_IDS)
def test_fib_lookup_forwarder(bpf_objects, dst, payload, verdict):
    rt = BpfRuntime(net=_mock_fib_kernel())
    frame = _fib_frame(dst, payload)
    got, ctx = xdp(rt.load_object(bpf_objects["xdp_fib_forward"]).program(), frame, ingress_ifindex=2)
    assert got == verdict
    if verdict == XDP_REDIRECT:
        out = Ether(ctx.packet())
        assert (out.src, out.dst, out[IP].ttl, ctx.redirect) == ("02:00:00:00:00:02", "02:00:00:00:01:02", 4,
                                                                 Redirect("dev", 3))
        recomputed = out[IP].copy()
        del recomputed.chksum
        assert out[IP].chksum == IP(bytes(recomputed)).chksum


def test_fib_lookup_needs_forwarding_on_the_ingress_device(bpf_objects):
    kernel = _mock_fib_kernel()
    sh(kernel, ["sysctl", "-w", "net.ipv4.ip_forward=0"])
    rt = BpfRuntime(net=kernel)
    assert xdp(rt.load_object(bpf_objects["xdp_fib_forward"]).program(), udp(dst="10.0.2.7"), ingress_ifindex=2)[0] == \
           XDP_PASS


@pytest.mark.parametrize("dst, payload", [case[:2] for case in FIB_CASES], ids=FIB_CASE_IDS)
def test_fib_lookup_forwarder_matches_the_kernel(bpf_objects, kernel, dst, payload):
    rt = BpfRuntime(net=_mock_fib_kernel())
    frame = _fib_frame(dst, payload)
    verdict, ctx = xdp(rt.load_object(bpf_objects["xdp_fib_forward"]).program(), frame, ingress_ifindex=2)
    real = kernel.run(bpf_objects["xdp_fib_forward"], "xdp_fib_forward", frame, ctx=xdp_md(frame, 2),
                      setup="\n".join(FIB_SETUP))
    assert (real.retval, real.data) == (verdict, ctx.packet())


def test_fib_lookup_without_a_namespace_is_a_clear_fault(rt, bpf_objects):
    with pytest.raises(BpfFault, match="bpf_fib_lookup: this runtime has no network namespace"):
        xdp(rt.load_object(bpf_objects["xdp_fib_forward"]).program(), udp(), ingress_ifindex=2)


# maps from user space


def test_array_map_user_space_semantics(rt):
    array = rt.create_map(BPF_MAP_TYPE_ARRAY, 4, 8, 2, name="a")
    assert array.lookup(struct.pack("<I", 1)) == bytes(8)
    with pytest.raises(MapError) as error:
        array.update_elem(struct.pack("<I", 2), bytes(8))
    assert error.value.errno == 7  # E2BIG
    with pytest.raises(MapError):
        array.delete_elem(struct.pack("<I", 0))
    assert [k for k, _ in array.dump()] == [struct.pack("<I", 0), struct.pack("<I", 1)]


def test_lru_hash_evicts_the_least_recently_used(rt):
    lru = rt.create_map(BPF_MAP_TYPE_LRU_HASH, 4, 4, 2, name="lru")
    for key in (1, 2):
        lru.update_elem(struct.pack("<I", key), struct.pack("<I", key))
    lru.lookup_addr(struct.pack("<I", 1))  # a program's lookup counts as a use
    lru.update_elem(struct.pack("<I", 3), struct.pack("<I", 3))
    assert sorted(struct.unpack("<I", key)[0] for key, _ in lru.dump()) == [1, 3]


def test_percpu_values_are_given_per_cpu():
    rt = BpfRuntime(ncpus=2)
    percpu = rt.create_map(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4, 1, name="p")
    percpu.update_elem(bytes(4), [struct.pack("<I", 1), struct.pack("<I", 2)])
    assert percpu.lookup(bytes(4)) == [struct.pack("<I", 1), struct.pack("<I", 2)]
    with pytest.raises(MapError, match="one value per possible CPU"):
        percpu.update_elem(bytes(4), struct.pack("<I", 1))


def test_lpm_trie_needs_no_prealloc_and_bounds_the_prefix(rt):
    with pytest.raises(MapError, match="BPF_F_NO_PREALLOC"):
        rt.create_map(BPF_MAP_TYPE_LPM_TRIE, 8, 4, 4, name="t")
    trie = rt.create_map(BPF_MAP_TYPE_LPM_TRIE, 8, 4, 4, BPF_F_NO_PREALLOC, name="t")
    with pytest.raises(MapError):
        trie.update_elem(lpm_key("10.0.0.0/33"), bytes(4))
    trie.update_elem(lpm_key("0.0.0.0/0"), struct.pack("<I", 7))
    assert trie.lookup(lpm_key("192.0.2.1/32")) == struct.pack("<I", 7)


def test_hash_map_update_flags(rt):
    table = rt.create_map(1, 4, 4, 1, name="h")
    key = struct.pack("<I", 1)
    with pytest.raises(MapError) as error:
        table.update_elem(key, bytes(4), flags=2)  # BPF_EXIST
    assert error.value.errno == 2
    table.update_elem(key, bytes(4), flags=1)  # BPF_NOEXIST
    with pytest.raises(MapError) as error:
        table.update_elem(key, bytes(4), flags=1)
    assert error.value.errno == 17
    with pytest.raises(MapError) as error:
        table.update_elem(struct.pack("<I", 2), bytes(4))
    assert error.value.errno == 7  # full
    assert table.get_next_key(None) == key and table.get_next_key(key) is None


def test_an_icmp_frame_passes_every_l4_specific_program(rt, bpf_objects):
    frame = bytes(Ether(src=MAC_A, dst=MAC_B) / IP(src="10.1.2.3", dst="10.0.0.1") / ICMP())
    assert xdp(rt.load_object(bpf_objects["xdp_drop_udp"]).program(), frame)[0] == XDP_PASS
    assert xdp(rt.load_object(bpf_objects["xdp_tx_reflector"]).program(), frame)[0] == XDP_PASS
    assert tc(rt.load_object(bpf_objects["tc_mark"]).program(), frame)[0] == TC_ACT_OK


def csum_diff_frame(from_: bytes, to: bytes, seed: int) -> bytes:
    """xdp_csum_diff's input: sizes, seed, then `from` and `to` padded to 32 bytes."""
    return struct.pack("<BBxxI", len(from_), len(to), seed) + from_.ljust(32, b"\0") + to.ljust(32, b"\0")


CSUM_DIFF_CASES = {
    "push 20 bytes": (b"", bytes(range(1, 21)), 0),
    "pull 8 bytes with a seed": (b"\xde\xad\xbe\xef\xde\xad\xbe\xef", b"", 0x1234),
    "diff 4 for 4": (b"\x0a\x00\x00\x01", b"\x0a\x00\x01\x02", 0),
    "diff with a seed": (bytes(range(8)), bytes(range(100, 112)), 0xFFFF0001),
    "all ones": (b"", b"\xff" * 4, 0xFFFFFFFF),
    "nothing but the seed": (b"", b"", 0x89ABCDEF),
    "sizes not a multiple of 4": (b"\x01\x02\x03", b"\x04\x05\x06\x07\x08", 7),
}


@pytest.mark.parametrize("case", CSUM_DIFF_CASES)
def test_csum_diff_matches_the_kernel(rt, kernel, bpf_objects, case):
    frame = csum_diff_frame(*CSUM_DIFF_CASES[case])
    obj = bpf_objects["xdp_csum_diff"]
    verdict, _ = xdp(rt.load_object(obj).program("xdp_csum_diff"), frame)
    assert verdict == kernel.run(obj, "xdp_csum_diff", frame).retval


# IPv6 frames

def udp6(dport: int, *exthdrs, hlim: int = 9) -> bytes:
    packet = IPv6(src="2001:db8::a", dst="2001:db8::b", hlim=hlim)
    for header in exthdrs:
        packet = packet / header
    return bytes(Ether(src=MAC_A, dst=MAC_B) / packet / UDP(sport=1000, dport=dport) / b"six")


IPV6_FRAMES = {
    "udp": udp6(7777), "udp to the discard port": udp6(9), "ipv4": udp(),
    "udp behind hop-by-hop": udp6(9, IPv6ExtHdrHopByHop()),
    "udp behind hop-by-hop and destination options": udp6(9, IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt()),
    "udp to another port behind destination options": udp6(53, IPv6ExtHdrDestOpt()),
    "udp behind five extension headers": udp6(9, *[IPv6ExtHdrDestOpt()] * 5),
}
XDP_IPV6_VERDICTS = {"udp": XDP_TX, "udp to the discard port": XDP_DROP, "ipv4": XDP_PASS,
                     "udp behind hop-by-hop": XDP_PASS, "udp behind hop-by-hop and destination options": XDP_PASS,
                     "udp to another port behind destination options": XDP_PASS,
                     "udp behind five extension headers": XDP_PASS}
TC_IPV6_VERDICTS = {"udp": TC_ACT_REDIRECT, "udp to the discard port": TC_ACT_SHOT, "ipv4": TC_ACT_OK,
                    "udp behind hop-by-hop": TC_ACT_SHOT, "udp behind hop-by-hop and destination options": TC_ACT_SHOT,
                    "udp to another port behind destination options": TC_ACT_REDIRECT,
                    "udp behind five extension headers": TC_ACT_REDIRECT}


@pytest.mark.parametrize("name", IPV6_FRAMES)
def test_xdp_ipv6_reflector_verdicts(rt, bpf_objects, name):
    verdict, ctx = xdp(rt.load_object(bpf_objects["xdp_ipv6_reflector"]).program(), IPV6_FRAMES[name])
    assert verdict == XDP_IPV6_VERDICTS[name]
    if verdict == XDP_TX:
        assert ctx.packet() == bytes(Ether(src=MAC_B, dst=MAC_A) / IPv6(src="2001:db8::b", dst="2001:db8::a", hlim=64)
                                     / UDP(sport=7777, dport=1000) / b"six")


@pytest.mark.parametrize("name", IPV6_FRAMES)
def test_xdp_ipv6_reflector_matches_the_kernel(rt, bpf_objects, kernel, name):
    verdict, ctx = xdp(rt.load_object(bpf_objects["xdp_ipv6_reflector"]).program(), IPV6_FRAMES[name])
    real = kernel.run(bpf_objects["xdp_ipv6_reflector"], "xdp_ipv6_reflector", IPV6_FRAMES[name])
    assert (real.retval, real.data) == (verdict, ctx.packet())


@pytest.mark.parametrize("name", IPV6_FRAMES)
def test_tc_ipv6_exthdr_walk_verdicts(rt, bpf_objects, name):
    verdict, ctx = tc(rt.load_object(bpf_objects["tc_ipv6_exthdr"]).program(), IPV6_FRAMES[name], ifindex=3)
    assert verdict == TC_IPV6_VERDICTS[name]
    assert ctx.redirect == (Redirect("dev", 3) if verdict == TC_ACT_REDIRECT else None)


@pytest.mark.parametrize("name", IPV6_FRAMES)
def test_tc_ipv6_exthdr_walk_matches_the_kernel(rt, bpf_objects, kernel, name):
    verdict, _ = tc(rt.load_object(bpf_objects["tc_ipv6_exthdr"]).program(), IPV6_FRAMES[name])
    real = kernel.run(bpf_objects["tc_ipv6_exthdr"], "tc_ipv6_exthdr", IPV6_FRAMES[name], tc=True, ctx=sk_buff())
    assert real.retval == verdict


# bpf_fib_lookup for IPv6 against the mock's FIB6, and the kernel's

FIB6_SETUP = [
    "ip link add p1 type veth peer name p0",  # the peer registers first: p0 is ifindex 2 as on the mock
    "ip link set p0 address 02:00:00:00:00:01",
    "ip link set p1 address 02:00:00:00:00:02",
    "ip link set p1 mtu 1400",
    "ip link set p0 up",
    "ip link set p1 up",
    "sysctl -qw net.ipv6.conf.all.disable_ipv6=0",
    "sysctl -qw net.ipv6.conf.all.forwarding=1",
    "ip -6 addr add 2001:db8::1/64 dev p0 nodad",
    "ip -6 addr add 2001:db8:1::1/64 dev p1 nodad",
    "ip -6 route add 2001:db8:2::/64 via 2001:db8:1::2 dev p1",
    "ip -6 route add 2001:db8:3::/64 via 2001:db8:1::2 dev p1 mtu 1300",
    "ip -6 route add blackhole 2001:db8:9::/64",
    "ip -6 route add unreachable 2001:db8:8::/64",
    "ip -6 route add prohibit 2001:db8:7::/64",
    "ip -6 route add 2001:db8:5::/64 via 2001:db8:1::3 dev p1 metric 7 table 100",
    "ip -6 route add 2001:db8:6::/64 via 2001:db8:1::4 dev p1",
    "ip -6 neigh add 2001:db8:1::2 lladdr 02:00:00:00:00:99 dev p1 nud permanent",
    "ip -6 neigh add 2001:db8:1::4 dev p1 nud failed",
]
SKIP_NEIGH, DIRECT, TBID, SRC = 4, 1, 8, 16
(FIB_SUCCESS, FIB_BLACKHOLE, FIB_UNREACHABLE, FIB_PROHIBIT, FIB_NOT_FWDED, FIB_FWD_DISABLED,
 FIB_NO_NEIGH, FIB_FRAG_NEEDED) = 0, 1, 2, 3, 4, 5, 7, 8
# (destination, payload bytes, flags, return code, (ifindex, nexthop, metric, mtu_result) on success)
FIB6_CASES = {
    "via gateway": ("2001:db8:2::7", 100, SKIP_NEIGH, FIB_SUCCESS, (3, "2001:db8:1::2", 1024, 1400)),
    "connected": ("2001:db8:1::9", 100, SKIP_NEIGH, FIB_SUCCESS, (3, "2001:db8:1::9", 256, 1400)),
    "blackhole": ("2001:db8:9::1", 100, SKIP_NEIGH, FIB_BLACKHOLE, None),
    "unreachable": ("2001:db8:8::1", 100, SKIP_NEIGH, FIB_UNREACHABLE, None),
    "prohibit": ("2001:db8:7::1", 100, SKIP_NEIGH, FIB_PROHIBIT, None),
    "local": ("2001:db8::1", 100, SKIP_NEIGH, FIB_NOT_FWDED, None),
    "no route": ("2001:db9::1", 100, SKIP_NEIGH, FIB_NOT_FWDED, None),
    "link-local": ("fe80::1", 100, SKIP_NEIGH, FIB_NOT_FWDED, None),
    "bigger than the device mtu": ("2001:db8:2::7", 1400, SKIP_NEIGH, FIB_FRAG_NEEDED, None),
    "a route's mtu metric does not count": ("2001:db8:3::7", 1300, SKIP_NEIGH, FIB_SUCCESS,
                                            (3, "2001:db8:1::2", 1024, 1400)),
    "direct, main table": ("2001:db8:2::7", 100, SKIP_NEIGH | DIRECT, FIB_SUCCESS, (3, "2001:db8:1::2", 1024, 1400)),
    "direct, table 100": ("2001:db8:5::7", 100, SKIP_NEIGH | DIRECT | TBID, FIB_SUCCESS,
                          (3, "2001:db8:1::3", 7, 1400)),
    "a valid neighbour": ("2001:db8:2::7", 100, 0, FIB_SUCCESS, (3, "2001:db8:1::2", 1024, 1400)),
    "no neighbour entry": ("2001:db8:1::9", 100, 0, FIB_NO_NEIGH, None),
    "a failed neighbour": ("2001:db8:6::7", 100, 0, FIB_NO_NEIGH, None),
    "source chosen on the way out": ("2001:db8:2::7", 100, SKIP_NEIGH | SRC, FIB_SUCCESS,
                                     (3, "2001:db8:1::2", 1024, 1400)),
}


def _mock_fib6_kernel() -> Kernel:
    kernel = Kernel()
    for command in FIB6_SETUP[3:]:
        sh(kernel, command.replace("-qw", "-w").split())
    return kernel


def _fib6_frame(dst: str, payload: int, flags: int, tbid: int = 0) -> bytes:
    question = bytes([flags, 0, 0, 0]) + struct.pack("<I", tbid) + bytes(payload - 8)
    return bytes(Ether(src=MAC_A, dst=MAC_B) / IPv6(src="2001:db8::2", dst=dst, fl=0x12345) /
                 UDP(sport=1000, dport=53) / question)


def _fib6_answer(packet: bytes) -> tuple[int, bytes]:
    payload = packet[14 + 40 + 8:]
    return payload[1], payload[8:8 + 64]


@pytest.mark.parametrize("name", FIB6_CASES)
def test_fib_lookup_ipv6(bpf_objects, name):
    dst, payload, flags, rc, success = FIB6_CASES[name]
    rt = BpfRuntime(net=_mock_fib6_kernel())
    frame = _fib6_frame(dst, payload, flags, tbid=100 if flags & TBID else 0)
    verdict, ctx = xdp(rt.load_object(bpf_objects["xdp_fib6_probe"]).program(), frame, ingress_ifindex=2)
    got_rc, params = _fib6_answer(ctx.packet())
    assert (verdict, got_rc) == (XDP_TX, rc)
    if success is not None:
        ifindex, nexthop, metric, mtu = success
        assert (struct.unpack_from("<I", params, 8)[0], params[32:48], struct.unpack_from("<I", params, 12)[0],
                struct.unpack_from("<H", params, 6)[0]) == (ifindex, socket.inet_pton(socket.AF_INET6, nexthop),
                                                            metric, mtu)
    elif rc == FIB_FRAG_NEEDED:
        assert struct.unpack_from("<H", params, 6)[0] == 1400
    if rc == FIB_SUCCESS and not flags & SKIP_NEIGH:  # smac the egress port's, dmac the neighbour's
        assert (params[52:58], params[58:64]) == (bytes.fromhex("020000000002"), bytes.fromhex("020000000099"))
    if flags & SRC:  # p1's own address: rule 5 of RFC 6724 (the outgoing interface) decides the tie
        assert params[16:32] == socket.inet_pton(socket.AF_INET6, "2001:db8:1::1")


def test_fib_lookup_ipv6_needs_forwarding_on_the_ingress_device(bpf_objects):
    kernel = _mock_fib6_kernel()
    sh(kernel, ["sysctl", "-w", "net.ipv6.conf.p0.forwarding=0"])
    rt = BpfRuntime(net=kernel)
    _, ctx = xdp(rt.load_object(bpf_objects["xdp_fib6_probe"]).program(), _fib6_frame("2001:db8:2::7", 100, SKIP_NEIGH),
                 ingress_ifindex=2)
    assert _fib6_answer(ctx.packet())[0] == FIB_FWD_DISABLED


@pytest.mark.parametrize("name", FIB6_CASES)
def test_fib_lookup_ipv6_matches_the_kernel(bpf_objects, kernel, name):
    dst, payload, flags, _, _ = FIB6_CASES[name]
    rt = BpfRuntime(net=_mock_fib6_kernel())
    frame = _fib6_frame(dst, payload, flags, tbid=100 if flags & TBID else 0)
    verdict, ctx = xdp(rt.load_object(bpf_objects["xdp_fib6_probe"]).program(), frame, ingress_ifindex=2)
    real = kernel.run(bpf_objects["xdp_fib6_probe"], "xdp_fib6_probe", frame, ctx=xdp_md(frame, 2),
                      setup="\n".join(FIB6_SETUP))
    assert (real.retval, real.data) == (verdict, ctx.packet())
