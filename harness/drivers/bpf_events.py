"""Reading eBPF programs' events on the real kernel: BPF ring buffers and perf
event arrays, through the bpf(2) and perf_event_open(2) system calls (ctypes),
as libbpf's ring_buffer__consume() and perf_buffer__consume() do.

BPF objects are global, not namespaced: the host process reaches a map of a
program attached in the lab's DUT namespace by its id (BPF_MAP_GET_FD_BY_ID).

- BPF_MAP_TYPE_RINGBUF (kernel/bpf/ringbuf.c): the consumer page is mapped
  read/write at offset 0, the producer page and the data area read-only at
  offset PAGE_SIZE (ringbuf_map_mmap_kern maps the data pages twice, so a
  record that wraps reads contiguously). Each record has an 8-byte header
  (u32 len with BPF_RINGBUF_BUSY_BIT and BPF_RINGBUF_DISCARD_BIT, u32 pg_off)
  and takes len + 8 rounded up to 8 bytes; reading stops at a busy record and
  skips discarded ones; consumer_pos is written back after each record.
- BPF_MAP_TYPE_PERF_EVENT_ARRAY (kernel/bpf/arraymap.c, kernel/trace/
  bpf_trace.c): bpf_perf_event_output() writes into the perf event its CPU's
  slot holds, and returns -ENOENT for an empty slot, so the reader exists
  before the traffic: one PERF_COUNT_SW_BPF_OUTPUT event per online CPU, its
  ring (1 + 2^n pages) mapped, its fd put into the CPU's slot. A sample's raw
  data is what the program wrote (the data, then the BPF_F_CTXLEN_MASK bytes
  of the packet) padded so that u32 size + data is a multiple of 8
  (perf_prepare_sample(); perf_output_sample() skips the padding, so it
  holds whatever the ring held there: zeros only on a fresh ring; seen on the
  lab); PERF_RECORD_LOST says how many samples a full ring
  lost. Samples carry PERF_SAMPLE_TIME, so the CPUs' rings merge in the order
  the samples were produced. Closing the map fd removes the slots this reader
  filled (perf_event_fd_array_release()).
"""
from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import platform
import struct
from dataclasses import dataclass

from harness.target import PERF_RING_PAGES, EventReader, TargetError

SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
SYS_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "riscv64": 241, "ppc64le": 319, "s390x": 331}
# bpf(2) commands and map types (include/uapi/linux/bpf.h)
BPF_MAP_UPDATE_ELEM, BPF_MAP_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD = 2, 14, 15
BPF_MAP_TYPE_PERF_EVENT_ARRAY, BPF_MAP_TYPE_RINGBUF = 4, 27
BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT, BPF_RINGBUF_HDR_SZ = 1 << 31, 1 << 30, 8
# perf_event_open(2) (include/uapi/linux/perf_event.h)
PERF_TYPE_SOFTWARE, PERF_COUNT_SW_BPF_OUTPUT = 1, 10
PERF_SAMPLE_TIME, PERF_SAMPLE_RAW = 1 << 2, 1 << 10
PERF_ATTR_SIZE_VER5 = 112
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_RECORD_LOST, PERF_RECORD_SAMPLE = 2, 9
# struct perf_event_mmap_page: data_head, data_tail, data_offset, data_size
PERF_MMAP_DATA = struct.Struct("<QQQQ")
PERF_MMAP_DATA_OFFSET = 1024
PAGE_SIZE = mmap.PAGESIZE
_U64 = struct.Struct("<Q")
_PERF_HEADER = struct.Struct("<IHH")
# struct bpf_map_info: type, id, key_size, value_size, max_entries
_MAP_INFO = struct.Struct("<IIIII")
MAP_INFO_SIZE = 88


def _syscall_number(table: dict[str, int], name: str) -> int:
    number = table.get(platform.machine())
    if number is None:
        raise TargetError(f"{name}(2) syscall number unknown for {platform.machine()}")
    return number


_libc = ctypes.CDLL(None, use_errno=True)


def bpf(cmd: int, attr: bytes, what: str) -> int:
    """bpf(2) with `attr` (zero-padded to the kernel's minimum); TargetError naming `what`."""
    buf = ctypes.create_string_buffer(attr, max(len(attr), 16))
    ret = _libc.syscall(ctypes.c_long(_syscall_number(SYS_BPF, "bpf")), ctypes.c_long(cmd), buf,
                        ctypes.c_ulong(len(buf)))
    if ret < 0:
        err = ctypes.get_errno()
        raise TargetError(f"{what}: {os.strerror(err)}")
    return ret


def map_fd_by_id(map_id: int) -> int:
    """BPF_MAP_GET_FD_BY_ID: a read/write fd of map `map_id` (needs CAP_SYS_ADMIN)."""
    return bpf(BPF_MAP_GET_FD_BY_ID, struct.pack("<III", map_id, 0, 0), f"BPF_MAP_GET_FD_BY_ID {map_id}")


@dataclass(frozen=True)
class MapInfo:
    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int


def map_info(fd: int) -> MapInfo:
    """BPF_OBJ_GET_INFO_BY_FD of a map fd."""
    info = ctypes.create_string_buffer(MAP_INFO_SIZE)
    attr = struct.pack("<IIQ", fd, MAP_INFO_SIZE, ctypes.addressof(info))
    bpf(BPF_OBJ_GET_INFO_BY_FD, attr, "BPF_OBJ_GET_INFO_BY_FD")
    return MapInfo(*_MAP_INFO.unpack_from(info.raw))


def map_update(fd: int, key: bytes, value: bytes, what: str) -> None:
    """BPF_MAP_UPDATE_ELEM with BPF_ANY."""
    key_buf, value_buf = ctypes.create_string_buffer(key, len(key)), ctypes.create_string_buffer(value, len(value))
    attr = struct.pack("<IIQQQ", fd, 0, ctypes.addressof(key_buf), ctypes.addressof(value_buf), 0)
    bpf(BPF_MAP_UPDATE_ELEM, attr, what)


def online_cpus() -> list[int]:
    """The CPUs of /sys/devices/system/cpu/online ("0-3,6")."""
    with open("/sys/devices/system/cpu/online") as f:
        spec = f.read().strip()
    cpus: list[int] = []
    for part in spec.split(","):
        first, _, last = part.partition("-")
        cpus += range(int(first), int(last or first) + 1)
    return cpus


def open_event_reader(map_id: int) -> RingBufReader | PerfEventArrayReader:
    """The reader for ring buffer or perf event array map `map_id`; it owns the
    map fd once made (closed here if making it fails)."""
    fd = map_fd_by_id(map_id)
    try:
        info = map_info(fd)
        if info.type == BPF_MAP_TYPE_RINGBUF:
            return RingBufReader(fd, info)
        if info.type == BPF_MAP_TYPE_PERF_EVENT_ARRAY:
            return PerfEventArrayReader(fd, info)
        raise TargetError(f"map {map_id} is of type {info.type}: events are read from ringbuf ({BPF_MAP_TYPE_RINGBUF})"
                          f" and perf_event_array ({BPF_MAP_TYPE_PERF_EVENT_ARRAY}) maps")
    except BaseException:
        os.close(fd)
        raise


class RingBufReader(EventReader):
    """The consumer of one BPF ring buffer (libbpf ringbuf_process_ring())."""

    kind = "ringbuf"
    lost = 0  # the producer drops records itself (bpf_ringbuf_reserve() returns NULL): nothing to count

    def __init__(self, fd: int, info: MapInfo) -> None:
        self.fd, self.map_id = fd, info.id
        self.size = info.max_entries
        self._consumer = self._data = None
        try:
            self._consumer = mmap.mmap(fd, PAGE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
            self._data = mmap.mmap(fd, PAGE_SIZE + 2 * self.size, mmap.MAP_SHARED, mmap.PROT_READ,
                                   offset=PAGE_SIZE)
        except OSError as exc:
            self._unmap()
            raise TargetError(f"mmap of ring buffer map {self.map_id}: {exc.strerror}") from exc

    def read(self) -> list[bytes]:
        records = []
        consumer, data, mask = self._consumer, self._data, self.size - 1
        cons_pos = _U64.unpack_from(consumer, 0)[0]
        while True:
            prod_pos = _U64.unpack_from(data, 0)[0]
            if cons_pos >= prod_pos:
                return records
            while cons_pos < prod_pos:
                at = PAGE_SIZE + (cons_pos & mask)
                length = struct.unpack_from("<I", data, at)[0]
                if length & BPF_RINGBUF_BUSY_BIT:
                    return records
                size = length & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT)
                if not length & BPF_RINGBUF_DISCARD_BIT:
                    records.append(data[at + BPF_RINGBUF_HDR_SZ:at + BPF_RINGBUF_HDR_SZ + size])
                cons_pos += (size + BPF_RINGBUF_HDR_SZ + 7) & ~7
                _U64.pack_into(consumer, 0, cons_pos)  # x86 stores are releases; the record is copied out

    def _unmap(self) -> None:
        for area in (self._consumer, self._data):
            if area is not None:
                area.close()
        self._consumer = self._data = None

    def close(self) -> None:
        self._unmap()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _PerfRing:
    """One CPU's PERF_COUNT_SW_BPF_OUTPUT event and its mapped ring."""

    def __init__(self, cpu: int) -> None:
        self.cpu = cpu
        self.area: mmap.mmap | None = None
        attr = bytearray(PERF_ATTR_SIZE_VER5)
        struct.pack_into("<IIQQQ", attr, 0, PERF_TYPE_SOFTWARE, PERF_ATTR_SIZE_VER5, PERF_COUNT_SW_BPF_OUTPUT,
                         1, PERF_SAMPLE_TIME | PERF_SAMPLE_RAW)
        struct.pack_into("<I", attr, 48, 1)  # wakeup_events
        buf = ctypes.create_string_buffer(bytes(attr), len(attr))
        fd = _libc.syscall(ctypes.c_long(_syscall_number(SYS_PERF_EVENT_OPEN, "perf_event_open")), buf,
                           ctypes.c_long(-1), ctypes.c_long(cpu), ctypes.c_long(-1),
                           ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC))
        if fd < 0:
            raise TargetError(f"perf_event_open(PERF_COUNT_SW_BPF_OUTPUT, cpu {cpu}): "
                              f"{os.strerror(ctypes.get_errno())}")
        self.fd = fd
        try:
            self.area = mmap.mmap(fd, (1 + PERF_RING_PAGES) * PAGE_SIZE, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
            fcntl.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)
        except OSError as exc:
            self.close()
            raise TargetError(f"perf event ring of cpu {cpu}: {exc.strerror}") from exc

    def read(self) -> tuple[list[tuple[int, int, bytes]], int]:
        """(time, cpu, raw data) of each sample since the last read, and the samples lost."""
        area = self.area
        head, tail, offset, size = PERF_MMAP_DATA.unpack_from(area, PERF_MMAP_DATA_OFFSET)
        samples, lost = [], 0
        while tail < head:
            start = offset + tail % size
            header = self._bytes(start, _PERF_HEADER.size, offset, size)
            kind, _, length = _PERF_HEADER.unpack(header)
            record = self._bytes(start, length, offset, size)
            if kind == PERF_RECORD_SAMPLE:
                time, raw_size = struct.unpack_from("<QI", record, 8)
                samples.append((time, self.cpu, record[20:20 + raw_size]))
            elif kind == PERF_RECORD_LOST:
                lost += struct.unpack_from("<Q", record, 16)[0]  # id, then lost
            tail += length
        _U64.pack_into(area, PERF_MMAP_DATA_OFFSET + 8, tail)  # data_tail
        return samples, lost

    def _bytes(self, start: int, length: int, offset: int, size: int) -> bytes:
        """`length` bytes of the ring from `start`, which may wrap past its end."""
        end = offset + size
        if start + length <= end:
            return self.area[start:start + length]
        return self.area[start:end] + self.area[offset:offset + length - (end - start)]

    def close(self) -> None:
        if self.area is not None:
            self.area.close()
            self.area = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class PerfEventArrayReader(EventReader):
    """The perf events of a perf event array's slots, one per online CPU."""

    kind = "perf_event_array"

    def __init__(self, fd: int, info: MapInfo) -> None:
        self.fd, self.map_id = fd, info.id
        self.lost = 0
        self._rings: list[_PerfRing] = []
        try:
            for cpu in online_cpus():
                if cpu >= info.max_entries:
                    raise TargetError(f"perf event array {info.id} has {info.max_entries} slots; cpu {cpu} is online")
                ring = _PerfRing(cpu)
                self._rings.append(ring)
                map_update(fd, struct.pack("<I", cpu), struct.pack("<I", ring.fd),
                           f"perf event array {info.id}: slot of cpu {cpu}")
        except BaseException:
            self._close_rings()  # the map fd is the caller's until this returns
            raise

    def read(self) -> list[bytes]:
        samples = []
        for ring in self._rings:
            got, lost = ring.read()
            samples += got
            self.lost += lost
        samples.sort(key=lambda sample: sample[0])  # by time: the CPUs' rings merged
        return [raw for _, _, raw in samples]

    def close(self) -> None:
        if self.fd >= 0:  # first: the slots this fd filled are emptied
            os.close(self.fd)
            self.fd = -1
        self._close_rings()

    def _close_rings(self) -> None:
        for ring in self._rings:
            ring.close()
        self._rings = []
