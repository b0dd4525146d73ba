"""eBPF events read by the test on both targets (ring buffer and perf event
array records of programs/xdp_events.c), and XDP_REDIRECT into a cpumap
(programs/xdp_cpumap.c): the frame goes up the stack from the CPU's kthread."""
from __future__ import annotations

import os
import struct

import pytest
from scapy.layers.inet import ICMP, UDP
from scapy.layers.l2 import ARP, Ether

from harness import bpfmaps
from harness.packets import to_bytes
from harness.target import PERF_RING_PAGES, CommandError, TargetError
from harness.testing import icmp_socket_mask

pytestmark = [pytest.mark.requires("xdp"), pytest.mark.requires("bpftool")]

RINGBUF_SIZE = 4096  # max_entries of `events` in xdp_events.c
RECORD_SPACE = 8 + 16  # a 12-byte event: 8-byte header, rounded up to 8
SAMPLE_SIZE = 12 + 14  # the event and the frame's Ethernet header (BPF_F_CTXLEN_MASK)


def attach(target, port, obj):
    target.sh(f"ip link set dev {port} xdp obj {obj} sec xdp")


def event(frame: bytes) -> bytes:
    """struct event of xdp_events.c for an Ethernet/IPv4 frame: addresses as on
    the wire, the frame's length, protocol and TTL."""
    ip = frame[14:34]
    return ip[12:16] + ip[16:20] + struct.pack("<HBB", len(frame), ip[9], ip[8])


def unpadded(samples: list[bytes], size: int) -> list[bytes]:
    """The first `size` bytes of perf samples of `size` bytes of data: the kernel
    pads each so that the u32 size and the data fill a multiple of 8 bytes
    (perf_prepare_sample()) and leaves the padding as the ring held it."""
    assert {len(sample) for sample in samples} <= {size + (-(4 + size) % 8)}
    return [sample[:size] for sample in samples]


@pytest.mark.requires("bpf_events")
def test_each_ipv4_frame_gives_one_ring_buffer_record_and_one_perf_sample_and_arp_none(target, hosts, bpf_objects):
    h0 = hosts[0]
    attach(target, "p0", bpf_objects["xdp_events"])
    ringbuf = target.bpf_events(bpfmaps.map_of(target, "p0", "events").id)
    perf = target.bpf_events(bpfmaps.map_of(target, "p0", "perf_events").id)
    sock = target.socket("udp", (h0.dut_ip, 7000))
    frames = [to_bytes(h0.to_dut(src=src, ttl=ttl, id=ident) / UDP(sport=1000 + ident, dport=7000) / (b"x" * size))
              for ident, (src, ttl, size) in enumerate((("10.0.0.2", 64, 18), ("10.0.0.7", 3, 100),
                                                         ("10.9.8.7", 200, 333)))]
    for frame in frames:
        target.send(h0.port, frame)
        sock.recv()  # the program ran before the datagram reached the socket
    arp_sync(target, h0)  # an ARP frame: no record
    assert ringbuf.read() == [event(frame) for frame in frames]
    assert unpadded(perf.read(), SAMPLE_SIZE) == [event(frame) + frame[:14] for frame in frames]
    assert (ringbuf.read(), perf.read(), perf.lost) == ([], [], 0)


@pytest.mark.requires("bpf_events")
def test_perf_samples_are_stored_only_once_a_reader_filled_the_cpu_slots(target, hosts, bpf_objects):
    h0 = hosts[0]
    attach(target, "p0", bpf_objects["xdp_events"])
    ringbuf = target.bpf_events(bpfmaps.map_of(target, "p0", "events").id)
    sock = target.socket("udp", (h0.dut_ip, 7000))
    frames = [to_bytes(h0.to_dut(id=ident) / UDP(sport=1000 + ident, dport=7000) / (b"y" * 20)) for ident in (1, 2)]
    target.send(h0.port, frames[0])
    sock.recv()
    perf = target.bpf_events(bpfmaps.map_of(target, "p0", "perf_events").id)  # -ENOENT for the first frame
    target.send(h0.port, frames[1])
    sock.recv()
    assert unpadded(perf.read(), SAMPLE_SIZE) == [event(frames[1]) + frames[1][:14]]
    assert ringbuf.read() == [event(frame) for frame in frames]


@pytest.mark.requires("bpf_events")
def test_a_full_ring_buffer_loses_the_records_that_find_no_room(target, hosts, bpf_objects):
    h0 = hosts[0]
    attach(target, "p0", bpf_objects["xdp_events"])
    ringbuf = target.bpf_events(bpfmaps.map_of(target, "p0", "events").id)
    # to an address the DUT neither owns nor routes (forwarding off): dropped after XDP, no replies
    frames = [to_bytes(h0.to_dut(dst="10.0.5.5", id=ident, ttl=ident % 255 + 1) / UDP(sport=2000, dport=7000) /
                       (b"z" * 18)) for ident in range(200)]
    target.send(h0.port, frames)
    arp_sync(target, h0)
    # the producer stays within size - 1 bytes of the consumer (__bpf_ringbuf_reserve())
    fit = (RINGBUF_SIZE - 1) // RECORD_SPACE
    assert ringbuf.read() == [event(frame) for frame in frames[:fit]]
    target.send(h0.port, frames[0])
    arp_sync(target, h0)
    assert ringbuf.read() == [event(frames[0])]
    assert ringbuf.lost == 0  # the kernel does not count them


@pytest.fixture
def one_cpu():
    """This process on CPU 0 only: a veth runs XDP in the softirq of the sending
    CPU, so every sample goes to that CPU's ring."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    yield
    os.sched_setaffinity(0, before)


@pytest.mark.requires("bpf_events")
def test_a_full_perf_ring_loses_samples_and_reports_them_with_the_next_sample_that_fits(target, hosts, bpf_objects,
                                                                                          one_cpu):
    h0 = hosts[0]
    attach(target, "p0", bpf_objects["xdp_events"])
    perf = target.bpf_events(bpfmaps.map_of(target, "p0", "perf_events").id)
    frames = [to_bytes(h0.to_dut(dst="10.0.5.5", id=ident) / UDP(sport=2000, dport=7000) / (b"z" * 18))
              for ident in range(700)]
    for start in range(0, len(frames), 100):  # within the port's rx ring of 256
        target.send(h0.port, frames[start:start + 100])
        arp_sync(target, h0)
    # 8 header + 8 time + 4 size + 28 raw bytes (26 padded) per sample, within size - 1 of the reader
    fit = (PERF_RING_PAGES * 4096 - 1) // 48
    assert unpadded(perf.read(), SAMPLE_SIZE) == [event(frame) + frame[:14] for frame in frames[:fit]]
    assert perf.lost == 0  # not reported yet
    target.send(h0.port, frames[0])
    arp_sync(target, h0)
    assert unpadded(perf.read(), SAMPLE_SIZE) == [event(frames[0]) + frames[0][:14]]
    assert perf.lost == len(frames) - fit


def arp_sync(target, host) -> None:
    """Ask the DUT for its MAC and wait for the answer: the frames sent before
    have been through XDP (the program passes ARP without a record)."""
    target.send(host.port, Ether(src=host.mac, dst="ff:ff:ff:ff:ff:ff") /
                ARP(hwsrc=host.mac, psrc=host.ip, pdst=host.dut_ip))
    target.expect(host.port, Ether(src=host.port.mac, dst=host.mac) /
                  ARP(op=2, hwsrc=host.port.mac, psrc=host.dut_ip, hwdst=host.mac, pdst=host.ip))


@pytest.mark.requires("bpf_events")
def test_an_event_reader_needs_a_ring_buffer_or_perf_event_array(target, hosts, bpf_objects):
    attach(target, "p0", bpf_objects["xdp_cpumap"])
    with pytest.raises(TargetError, match="ringbuf"):
        target.bpf_events(bpfmaps.map_of(target, "p0", "cpu_map").id)


# cpumap -----------------------------------------------------------------------

def cpumap_val(qsize: int, prog_fd: int = 0) -> bytes:
    """struct bpf_cpumap_val: u32 qsize, u32 bpf_prog.fd."""
    return struct.pack("<II", qsize, prog_fd)


def echo(host, seq: int):
    return host.to_dut() / ICMP(id=77, seq=seq) / b"cpumap"


def echo_reply(host, seq: int):
    return icmp_socket_mask(host.from_dut(src=host.dut_ip, dst=host.ip, ttl=64, flags=0) /
                            ICMP(type=0, id=77, seq=seq) / b"cpumap")


def test_a_frame_redirected_into_a_filled_cpumap_slot_goes_up_the_stack(target, hosts, bpf_objects):
    h0 = hosts[0]
    attach(target, "p0", bpf_objects["xdp_cpumap"])
    cpu_map = bpfmaps.map_of(target, "p0", "cpu_map")
    cpu_map.update(bpfmaps.u32(0), cpumap_val(192))
    assert cpu_map.lookup(bpfmaps.u32(0)) == cpumap_val(192)  # qsize, no second program
    target.send(h0.port, echo(h0, 1))
    target.expect(h0.port, echo_reply(h0, 1))
    sock = target.socket("udp", (h0.dut_ip, 7000))
    target.send(h0.port, h0.to_dut() / UDP(sport=1234, dport=7000) / b"through cpu 0")
    assert sock.recv() == (b"through cpu 0", (h0.ip, 1234))


@pytest.mark.requires("drop_reasons")
def test_a_redirect_into_an_empty_cpumap_slot_is_aborted_and_dropped(target, hosts, bpf_objects):
    h0 = hosts[0]
    attach(target, "p0", bpf_objects["xdp_cpumap"])
    cpu_map = bpfmaps.map_of(target, "p0", "cpu_map")
    target.send(h0.port, echo(h0, 1))
    target.expect_nothing([h0.port])
    # bpf_redirect_map() found no entry and returned its flags' action, XDP_ABORTED
    assert [(d.reason, d.stage, d.location) for d in target.drops()] == \
        [("NOT_SPECIFIED", "XDP", "veth_xdp_rcv_skb")]
    cpu_map.update(bpfmaps.u32(0), cpumap_val(64))
    cpu_map.update(bpfmaps.u32(0), cpumap_val(0))  # qsize 0 empties the slot again
    assert cpu_map.lookup(bpfmaps.u32(0)) is None
    target.send(h0.port, echo(h0, 2))
    target.expect_nothing([h0.port])


@pytest.mark.parametrize("key, value, error", [
    (1, cpumap_val(64), "Argument list too long"),  # past max_entries: E2BIG
    (0, cpumap_val(16385), "Value too large for defined data type"),  # qsize over 16384: EOVERFLOW
    (0, cpumap_val(64, prog_fd=99), "Cannot allocate memory"),  # no program behind the fd: ENOMEM
])
def test_cpumap_updates_the_kernel_refuses(target, hosts, bpf_objects, key, value, error):
    attach(target, "p0", bpf_objects["xdp_cpumap"])
    cpu_map = bpfmaps.map_of(target, "p0", "cpu_map")
    with pytest.raises(CommandError, match=error):
        cpu_map.update(bpfmaps.u32(key), value)
    assert cpu_map.lookup(bpfmaps.u32(0)) is None

