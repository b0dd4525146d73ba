"""The mock's eBPF events (perf event array slots and rings, the ring buffer's
room) and its cpumap (updates as cpu_map_update_elem() takes them, the
redirected frame going up the stack)."""
from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness import bpfmaps
from harness.mockkernel.bpf import BpfRuntime, MapError
from harness.mockkernel.bpf.maps import (BPF_MAP_TYPE_CPUMAP, BPF_MAP_TYPE_PERF_EVENT_ARRAY,
                                         BPF_MAP_TYPE_RINGBUF)
from harness.mockkernel.target import MockTarget
from harness.target import PERF_RING_PAGES, PORTS, TargetError

ENOENT, EOPNOTSUPP, ENOSPC = 2, 95, 28


@pytest.fixture(scope="module")
def objects(bpf_objects):
    """Object paths by program name, as text for the command lines."""
    return {name: str(bpf_objects[name]) for name in ("xdp_events", "xdp_cpumap")}


@pytest.fixture
def rt():
    return BpfRuntime(ncpus=2)


@pytest.fixture
def target():
    dut = MockTarget()
    dut.sh("ip addr add 10.0.0.1/24 dev p0")
    yield dut
    dut.close()


def udp(dport: int = 7000, payload: bytes = b"x" * 18) -> bytes:
    return bytes(Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) / IP(src="10.0.0.2", dst="10.0.0.1") /
                 UDP(sport=1, dport=dport) / payload)


# perf event array ---------------------------------------------------------------

def test_perf_output_into_an_empty_slot_is_enoent_and_stores_nothing(rt):
    perf = rt.create_map(BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 0, name="perf")
    assert perf.max_entries == 2  # libbpf sizes it to the possible CPUs
    assert perf.output(0, b"lost") == -ENOENT
    ring = perf.open_ring(0, 4096)
    assert perf.output(0, b"kept") == 0
    assert [raw for _, raw in ring.drain()] == [b"kept"]  # 4 + 4 bytes: no padding


def test_perf_output_into_another_cpus_slot_is_eopnotsupp(rt):
    perf = rt.create_map(BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 0, name="perf")
    perf.open_ring(1, 4096)
    rt.cpu = 0
    assert perf.output(1, b"x") == -EOPNOTSUPP


@pytest.mark.parametrize("size, padded", [(4, 4), (12, 12), (26, 28), (1, 4), (5, 12)])
def test_perf_raw_data_is_padded_so_size_and_data_fill_8_byte_units_with_zeros_on_the_mock(rt, size, padded):
    perf = rt.create_map(BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 0, name="perf")
    ring = perf.open_ring(0, 4096)
    perf.output(0, b"\xff" * size)
    [(_, raw)] = ring.drain()
    assert raw == b"\xff" * size + bytes(padded - size)


def test_a_full_perf_ring_loses_samples_and_reports_them_with_the_next_that_fits(rt):
    perf = rt.create_map(BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 0, name="perf")
    ring = perf.open_ring(0, 256)
    sample = bytes(28)  # 8 header + 8 time + 4 size + 28 = 48 bytes in the ring
    assert [perf.output(0, sample) for _ in range(7)] == [0] * 5 + [-ENOSPC] * 2  # 5 * 48 = 240 < 256
    records = ring.drain()
    assert len(records) == 5 and all(raw == sample for _, raw in records)
    assert perf.output(0, sample) == 0
    assert [record for _, record in ring.drain()] == [2, sample]  # PERF_RECORD_LOST, then the sample


def test_perf_reader_merges_the_cpus_in_the_order_produced_and_counts_lost(target, objects):
    target.sh(f"ip link set dev p0 xdp obj {objects['xdp_events']} sec xdp")
    perf_map = target.kernel.bpf.maps[bpfmaps.map_of(target, "p0", "perf_events").id]
    reader = target.bpf_events(perf_map.fd)
    for cpu, data in ((1, b"a"), (0, b"b"), (1, b"c")):
        target.kernel.bpf.cpu = cpu
        assert perf_map.output(cpu, data) == 0
    assert reader.read() == [b"a" + bytes(3), b"b" + bytes(3), b"c" + bytes(3)]
    ring_bytes = PERF_RING_PAGES * 4096
    target.kernel.bpf.cpu = 0
    fit = (ring_bytes - 1) // 24  # 20 bytes of sample header and size, 4 of data
    assert [perf_map.output(0, b"d") for _ in range(fit + 3)].count(-ENOSPC) == 3
    assert (len(reader.read()), reader.lost) == (fit, 0)
    perf_map.output(0, b"e")
    assert (reader.read(), reader.lost) == ([b"e" + bytes(3)], 3)


def test_closing_the_target_empties_the_perf_slots(target, objects):
    target.sh(f"ip link set dev p0 xdp obj {objects['xdp_events']} sec xdp")
    map_id = bpfmaps.map_of(target, "p0", "perf_events").id
    target.bpf_events(map_id)
    perf_map = target.kernel.bpf.maps[map_id]
    assert sorted(perf_map.rings) == [0, 1]
    target.close()
    assert perf_map.rings == {}
    assert perf_map.output(0, b"x") == -ENOENT


def test_event_readers_exist_only_for_ring_buffers_and_perf_event_arrays(target, objects):
    with pytest.raises(TargetError, match="No such file"):
        target.bpf_events(12345)
    target.sh(f"ip link set dev p0 xdp obj {objects['xdp_cpumap']} sec xdp")
    with pytest.raises(TargetError, match="cpumap map"):
        target.bpf_events(bpfmaps.map_of(target, "p0", "cpu_map").id)


# ring buffer ----------------------------------------------------------------------

def test_ring_buffer_producer_stays_within_size_minus_one_of_the_consumer(rt):
    ringbuf = rt.create_map(BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, name="rb")
    assert ringbuf.reserve(4096 - 8) == 0  # would put the producer a whole ring ahead
    addr = ringbuf.reserve(4096 - 16)
    assert addr
    ringbuf.commit(addr, discard=False)
    assert [len(record) for record in ringbuf.consume()] == [4080]


def test_ring_buffer_reader_drains_submitted_records_in_order_and_skips_discarded(target, objects):
    target.sh(f"ip link set dev p0 xdp obj {objects['xdp_events']} sec xdp")
    reader = target.bpf_events(bpfmaps.map_of(target, "p0", "events").id)
    ringbuf = target.kernel.bpf.maps[reader.ringbuf.fd]
    first = ringbuf.reserve(8)
    assert ringbuf.output(b"second!!") == 0
    assert reader.read() == []  # the first record is still reserved
    ringbuf.commit(first, discard=True)
    assert reader.read() == [b"second!!"]


# cpumap ---------------------------------------------------------------------------

def cpumap_val(qsize: int, prog_fd: int = 0) -> bytes:
    return struct.pack("<II", qsize, prog_fd)


@pytest.mark.parametrize("key, value, flags, errno", [
    (2, cpumap_val(64), 0, 7),  # key past max_entries: E2BIG
    (0, cpumap_val(64), 1, 17),  # BPF_NOEXIST, even on an empty slot: EEXIST
    (0, cpumap_val(64), 3, 22),  # unknown flags: EINVAL
    (0, cpumap_val(16385), 0, 75),  # qsize over 16384: EOVERFLOW
    (0, cpumap_val(64, prog_fd=5), 0, 12),  # a second program: ENOMEM (not modelled)
])
def test_cpumap_update_refusals_follow_cpu_map_update_elem(rt, key, value, flags, errno):
    cpu_map = rt.create_map(BPF_MAP_TYPE_CPUMAP, 4, 8, 2, name="cpus")
    with pytest.raises(MapError) as exc:
        cpu_map.update_elem(struct.pack("<I", key), value, flags)
    assert exc.value.errno == errno


def test_cpumap_slot_of_a_cpu_that_is_not_possible_is_enodev_and_qsize_0_empties_a_slot(rt):
    cpu_map = rt.create_map(BPF_MAP_TYPE_CPUMAP, 4, 8, 4, name="cpus")
    with pytest.raises(MapError) as exc:
        cpu_map.update_elem(struct.pack("<I", 2), cpumap_val(64))
    assert exc.value.errno == 19
    cpu_map.update_elem(struct.pack("<I", 1), cpumap_val(64), 2)  # BPF_EXIST on an empty slot is fine
    assert cpu_map.lookup(struct.pack("<I", 1)) == cpumap_val(64)
    cpu_map.update_elem(struct.pack("<I", 1), cpumap_val(0))
    assert cpu_map.lookup(struct.pack("<I", 1)) is None
    assert (cpu_map.map_flags, cpu_map.memory_usage()) == (0, 304 + 4 * 8)  # memlock as bpftool shows on 6.18


def test_a_frame_redirected_to_a_cpu_goes_up_the_stack_with_a_cpumap_hop(target, objects):
    target.sh(f"ip link set dev p0 xdp obj {objects['xdp_cpumap']} sec xdp")
    bpfmaps.map_of(target, "p0", "cpu_map").update(bpfmaps.u32(0), cpumap_val(64))
    sock = target.socket("udp", ("10.0.0.1", 7000))
    target.send("p0", udp())
    assert sock.recv() == (b"x" * 18, ("10.0.0.2", 1))
    [journey] = target.journeys()
    stages = [(hop.stage, hop.verdict, hop.summary) for hop in journey.hops]
    assert ("XDP", "REDIRECT", "cpumap cpu 0") in stages
    assert [stage for stage, _, _ in stages][-1] == "SOCKET"


def test_redirect_map_into_a_cpumap_with_the_broadcast_flag_aborts(rt):
    cpu_map = rt.create_map(BPF_MAP_TYPE_CPUMAP, 4, 8, 2, name="cpus")
    cpu_map.update_elem(struct.pack("<I", 0), cpumap_val(64))
    assert rt.helpers.bpf_xdp_redirect_map(cpu_map.addr, 0, 1 << 3, 0, 0) == 0  # XDP_ABORTED
