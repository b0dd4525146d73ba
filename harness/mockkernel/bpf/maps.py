"""BPF maps: the kernel-side data structures and their two interfaces.

Models kernel/bpf/hashtab.c (hash, per-CPU hash, LRU hash and LRU per-CPU
hash), arraymap.c (array, per-CPU array, prog array, perf event array, and
the .data/.rodata/.bss arrays libbpf makes for global data), lpm_trie.c,
devmap.c (devmap, devmap_hash), cpumap.c and ringbuf.c. Programs reach a map
through helpers (`lookup_addr`, `update`, `delete` return an address or a
negative errno, as the helpers do); user space through bpftool-like calls
(`lookup`, `update_elem`, `delete_elem`, `dump`, `get_next_key`) that raise
`MapError` with the errno the bpf() syscall would return.

Every value lives in its own region of the address space, so a program's
access beyond its value faults. Per-CPU values are one region per possible
CPU; a program sees the current CPU's (runtime.cpu). Left out: preallocation
and the LRU's per-CPU free lists (eviction here is exact least-recently-used
once the map is full), iteration in the kernel's bucket order (dumps come in
insertion order), map-in-map, BPF_F_LOCK, mmapable arrays, ringbuf
notifications (user space reads records with `consume()`).
"""
from __future__ import annotations

import os
import struct
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.mockkernel.bpf.syscall import BpfRuntime

# include/uapi/linux/bpf.h enum bpf_map_type
(BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PROG_ARRAY, BPF_MAP_TYPE_PERF_EVENT_ARRAY,
 BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY) = range(1, 7)
BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH, BPF_MAP_TYPE_LPM_TRIE = 9, 10, 11
BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_CPUMAP, BPF_MAP_TYPE_DEVMAP_HASH, BPF_MAP_TYPE_RINGBUF = 14, 16, 25, 27
MAP_TYPE_NAMES = {BPF_MAP_TYPE_HASH: "hash", BPF_MAP_TYPE_ARRAY: "array", BPF_MAP_TYPE_PROG_ARRAY: "prog_array",
                  BPF_MAP_TYPE_PERF_EVENT_ARRAY: "perf_event_array", BPF_MAP_TYPE_PERCPU_HASH: "percpu_hash",
                  BPF_MAP_TYPE_PERCPU_ARRAY: "percpu_array", BPF_MAP_TYPE_LRU_HASH: "lru_hash",
                  BPF_MAP_TYPE_LRU_PERCPU_HASH: "lru_percpu_hash", BPF_MAP_TYPE_LPM_TRIE: "lpm_trie",
                  BPF_MAP_TYPE_DEVMAP: "devmap", BPF_MAP_TYPE_CPUMAP: "cpumap",
                  BPF_MAP_TYPE_DEVMAP_HASH: "devmap_hash", BPF_MAP_TYPE_RINGBUF: "ringbuf"}

# update flags and map flags
BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
BPF_F_NO_PREALLOC, BPF_F_RDONLY_PROG, BPF_F_MMAPABLE = 0x01, 0x80, 0x400
BPF_RINGBUF_HDR_SZ = 8
PAGE_SIZE = 4096
EPERM, ENOENT, E2BIG, EAGAIN, EFAULT, ENODEV, EEXIST, EINVAL, ENOSPC = 1, 2, 7, 11, 14, 19, 17, 22, 28
ENOMEM, EOVERFLOW, EOPNOTSUPP = 12, 75, 95


# struct sizes on this kernel (6.18 x86_64), read back from bpftool's memlock
BPF_ARRAY_SIZE, LPM_TRIE_NODE_SIZE, BPF_DTAB_SIZE, BPF_DTAB_NETDEV_SIZE = 312, 32, 344, 64
BPF_CPU_MAP_SIZE = 304
# map types libbpf creates without BTF key/value types (bpf_object__create_map(),
# and prog_array, which map_check_no_btf() refuses so libbpf retries without)
NO_BTF_MAP_TYPES = frozenset({BPF_MAP_TYPE_PERF_EVENT_ARRAY, BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_DEVMAP_HASH,
                              BPF_MAP_TYPE_CPUMAP, BPF_MAP_TYPE_PROG_ARRAY})


def _page_align(n: int) -> int:
    return (n + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE


class MapError(OSError):
    """A bpf() map command failed; `errno` is what the kernel returns."""


_U32 = struct.Struct("<I")


def _round8(n: int) -> int:
    return (n + 7) & ~7


class BpfMap:
    """struct bpf_map: attributes, an fd, and the map's own address (what an
    LD_IMM64 of the map yields; loads and stores through it fault)."""

    map_type = 0
    percpu = False
    prog_updates = False  # whether programs may call bpf_map_update_elem/delete_elem on it

    def __init__(self, runtime: BpfRuntime, name: str, key_size: int, value_size: int, max_entries: int,
                 map_flags: int = 0) -> None:
        self.runtime = runtime
        self.name = name
        self.key_size, self.value_size = key_size, value_size
        self.max_entries, self.map_flags = max_entries, map_flags
        self.frozen = False  # BPF_MAP_FREEZE: user space may no longer write
        self.btf = None  # the object's Btf, when the map was created with key/value types
        self.btf_id = self.btf_key_type_id = self.btf_value_type_id = 0
        self.check_attrs()
        # (key,) from a region and offset, as lookup_addr takes it
        self.read_key = struct.Struct(f"{key_size}s").unpack_from
        self.fd = 0
        self.addr = runtime.mem.map(self, f"map {name}")

    @property
    def type_name(self) -> str:
        return MAP_TYPE_NAMES[self.map_type]

    def check_attrs(self) -> None:
        """map_alloc_check(): the attributes this type accepts."""
        if self.key_size <= 0 or self.value_size <= 0 or self.max_entries <= 0:
            raise MapError(EINVAL, f"map {self.name}: key_size, value_size and max_entries must be positive")

    def _values(self, value: bytes | list[bytes]) -> list[bytes]:
        """A value as given to update: per-CPU maps take one per possible CPU."""
        values = value if self.percpu else [value]
        if self.percpu and len(values) != self.runtime.ncpus:
            raise MapError(EINVAL, f"map {self.name}: give one value per possible CPU ({self.runtime.ncpus})")
        for item in values:
            if len(item) != self.value_size:
                raise MapError(EINVAL, f"map {self.name}: value is {len(item)} bytes, not {self.value_size}")
        return values

    def _check_key(self, key: bytes) -> bytes:
        key = bytes(key)
        if len(key) != self.key_size:
            raise MapError(EINVAL, f"map {self.name}: key is {len(key)} bytes, not {self.key_size}")
        return key

    # program side: an address (0 when there is none) or 0 / -errno

    def lookup_addr(self, key: bytes | int) -> int:
        """The address of the value for `key` as read_key() gives it (bytes; an array's index)."""
        raise MapError(EINVAL, f"bpf_map_lookup_elem is not allowed on {self.type_name} maps")

    def update(self, key: bytes, values: list[bytes], flags: int) -> int:
        return -EINVAL

    def delete(self, key: bytes) -> int:
        return -EINVAL

    # user space (bpftool map lookup/update/delete/dump/getnext)

    def lookup(self, key: bytes) -> bytes | list[bytes] | None:
        raise MapError(EINVAL, f"lookup is not supported on {self.type_name} maps")

    def update_elem(self, key: bytes, value: bytes | list[bytes], flags: int = BPF_ANY) -> None:
        if self.frozen:
            raise MapError(EPERM, f"map {self.name} is frozen")
        err = self.update(self._check_key(key), self._values(value), flags)
        if err:
            raise MapError(-err, f"map {self.name}: update: {os.strerror(-err)}")

    def delete_elem(self, key: bytes) -> None:
        err = self.delete(self._check_key(key))
        if err:
            raise MapError(-err, f"map {self.name}: delete: {os.strerror(-err)}")

    def keys(self) -> list[bytes]:
        return []

    def get_next_key(self, key: bytes | None) -> bytes | None:
        """The key after `key` (the first one for None), None at the end."""
        keys = self.keys()
        if key is None or key not in keys:
            return keys[0] if keys else None
        index = keys.index(key) + 1
        return keys[index] if index < len(keys) else None

    def dump(self) -> list[tuple[bytes, bytes | list[bytes]]]:
        return [(key, self.lookup(key)) for key in self.keys()]

    def memory_usage(self) -> int:
        """The `memlock` of /proc/PID/fdinfo (bpf_map_memory_usage(), map_mem_usage):
        exact for arrays, LPM tries and devmaps (the kernel's formulas with this
        kernel's struct sizes); for other types the entries' keys and values only."""
        ncopies = self.runtime.ncpus if self.percpu else 1
        return len(self.keys()) * (self.key_size + _round8(self.value_size) * ncopies)


class _Elem:
    """One hash/trie element: the key as stored and one region per CPU."""

    __slots__ = ("addrs", "key", "values")

    def __init__(self, key: bytes, values: list[bytearray], addrs: list[int]) -> None:
        self.key, self.values, self.addrs = key, values, addrs


class HashMap(BpfMap):
    """BPF_MAP_TYPE_HASH (and the per-CPU variant): exact-match keys."""

    map_type = BPF_MAP_TYPE_HASH
    prog_readonly = False
    prog_updates = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._elems: dict[object, _Elem] = self._new_table()

    def _new_table(self) -> dict:
        return {}

    def _index(self, key: bytes) -> object:
        """The table key for `key` (the trie masks it to its prefix)."""
        return key

    def _key_error(self, key: bytes) -> int:
        """0 when the key is acceptable for update, else -errno."""
        return 0

    def _find(self, key: bytes) -> _Elem | None:
        """The element a lookup of `key` finds (an exact match; the trie overrides)."""
        return self._elems.get(key)

    def lookup_addr(self, key: bytes) -> int:
        elem = self._elems.get(key)  # what _find() does, without the call (the trie overrides both)
        if elem is None:
            return 0
        return elem.addrs[self.runtime.cpu] if self.percpu else elem.addrs[0]

    def _region(self, buf: bytearray) -> bytearray | memoryview:
        return memoryview(buf).toreadonly() if self.prog_readonly else buf

    def _full(self) -> bool:
        return len(self._elems) >= self.max_entries

    def _make_room(self) -> int:
        return -E2BIG

    def update(self, key: bytes, values: list[bytes], flags: int) -> int:
        if flags not in (BPF_ANY, BPF_NOEXIST, BPF_EXIST):
            return -EINVAL
        err = self._key_error(key)
        if err:
            return err
        index = self._index(key)
        elem = self._elems.get(index)
        if elem is not None:
            if flags == BPF_NOEXIST:
                return -EEXIST
            for buf, value in zip(elem.values, values):
                buf[:] = value
            elem.key = key
            return 0
        if flags == BPF_EXIST:
            return -ENOENT
        if self._full():
            err = self._make_room()
            if err:
                return err
        bufs = [bytearray(value) for value in values]
        name = f"map {self.name} value"
        self._elems[index] = _Elem(key, bufs, [self.runtime.mem.map(self._region(buf), name) for buf in bufs])
        return 0

    def delete(self, key: bytes) -> int:
        elem = self._elems.pop(self._index(key), None)
        if elem is None:
            return -ENOENT
        for addr in elem.addrs:
            self.runtime.release(addr)
        return 0

    def lookup(self, key: bytes) -> bytes | list[bytes] | None:
        elem = self._find(self._check_key(key))
        if elem is None:
            return None
        values = [bytes(buf) for buf in elem.values]
        return values if self.percpu else values[0]

    def keys(self) -> list[bytes]:
        return [elem.key for elem in self._elems.values()]


class PercpuHashMap(HashMap):
    map_type = BPF_MAP_TYPE_PERCPU_HASH
    percpu = True


class LruHashMap(HashMap):
    """BPF_MAP_TYPE_LRU_HASH: when full, an update evicts the least recently
    used element (a program's lookup counts as a use)."""

    map_type = BPF_MAP_TYPE_LRU_HASH

    def _new_table(self) -> dict:
        return OrderedDict()

    def lookup_addr(self, key: bytes) -> int:
        addr = super().lookup_addr(key)
        if addr:
            self._elems.move_to_end(self._index(key))
        return addr

    def _make_room(self) -> int:
        _, elem = self._elems.popitem(last=False)
        for addr in elem.addrs:
            self.runtime.release(addr)
        return 0


class LruPercpuHashMap(LruHashMap):
    map_type = BPF_MAP_TYPE_LRU_PERCPU_HASH
    percpu = True


class LpmTrieMap(HashMap):
    """BPF_MAP_TYPE_LPM_TRIE: keys are `struct bpf_lpm_trie_key` (u32
    prefixlen, then the data in network order); a lookup finds the entry with
    the longest prefix that matches the key's first prefixlen bits."""

    map_type = BPF_MAP_TYPE_LPM_TRIE

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_prefixlen = (self.key_size - 4) * 8
        self._prefixlens: list[int] = []  # of the entries, longest first
        self._key_fields = struct.Struct(f"<I{self.key_size - 4}s")  # prefixlen, data

    def check_attrs(self) -> None:
        super().check_attrs()
        if not self.map_flags & BPF_F_NO_PREALLOC:
            raise MapError(EINVAL, f"lpm_trie map {self.name} needs BPF_F_NO_PREALLOC")
        if not 5 <= self.key_size <= 4 + 256:
            raise MapError(EINVAL, f"lpm_trie map {self.name}: key_size must be 4 + 1..256")

    def _split(self, key: bytes) -> tuple[int, int]:
        prefixlen, data = self._key_fields.unpack(key)
        return prefixlen, int.from_bytes(data, "big")

    def _masked(self, prefixlen: int, data: int) -> tuple[int, int]:
        return prefixlen, data >> (self.max_prefixlen - prefixlen) if prefixlen else 0

    def _index(self, key: bytes) -> object:
        return self._masked(*self._split(key))

    def _key_error(self, key: bytes) -> int:
        return -EINVAL if self._split(key)[0] > self.max_prefixlen else 0

    def _make_room(self) -> int:
        return -ENOSPC

    def update(self, key: bytes, values: list[bytes], flags: int) -> int:
        err = super().update(key, values, flags)
        prefixlen = self._split(key)[0]
        if not err and prefixlen not in self._prefixlens:
            self._prefixlens = sorted([*self._prefixlens, prefixlen], reverse=True)
        return err

    def memory_usage(self) -> int:
        """trie_mem_usage(): (struct lpm_trie_node + data) per entry."""
        return len(self._elems) * (LPM_TRIE_NODE_SIZE + self.key_size - 4)

    def lookup_addr(self, key: bytes) -> int:
        elem = self._find(key)
        return 0 if elem is None else elem.addrs[0]

    def _find(self, key: bytes) -> _Elem | None:
        """The longest matching prefix no longer than the key's prefixlen."""
        prefixlen, data = self._split(key)
        elems, max_prefixlen = self._elems, self.max_prefixlen
        for length in self._prefixlens:
            if length <= prefixlen:
                elem = elems.get((length, data >> (max_prefixlen - length) if length else 0))
                if elem is not None:
                    return elem
        return None


ARRAY_PREALLOC_LIMIT = 1 << 28  # bytes an array map may preallocate on the mock (the kernel: what vmalloc finds)


class ArrayMap(BpfMap):
    """BPF_MAP_TYPE_ARRAY (and per-CPU): max_entries preallocated zeroed
    values indexed by a u32 key; elements are never deleted. With
    BPF_F_RDONLY_PROG (libbpf's .rodata) programs cannot write."""

    map_type = BPF_MAP_TYPE_ARRAY
    prog_updates = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.elem_size = _round8(self.value_size)
        ncpus = self.runtime.ncpus if self.percpu else 1
        if self.elem_size * self.max_entries * ncpus > ARRAY_PREALLOC_LIMIT:
            # array_map_alloc(): bpf_map_area_alloc() of every element fails, -ENOMEM
            raise MapError(ENOMEM, f"{self.type_name} map {self.name}: preallocating {self.max_entries} values of "
                                   f"{self.elem_size} bytes is more memory than the mock kernel gives a map "
                                   f"({ARRAY_PREALLOC_LIMIT} bytes)")
        self._data = [bytearray(self.elem_size * self.max_entries) for _ in range(ncpus)]
        self._addrs: list[dict[int, int]] = [{} for _ in range(ncpus)]  # per CPU: index -> address
        self.read_key = _U32.unpack_from  # a program's key is the index

    def check_attrs(self) -> None:
        super().check_attrs()
        if self.key_size != 4:
            raise MapError(EINVAL, f"{self.type_name} map {self.name}: key_size must be 4")

    def element_addr(self, index: int, cpu: int = 0) -> int:
        """The address of value `index` (its region is made on first use)."""
        addr = self._addrs[cpu].get(index)
        if addr is None:
            start = index * self.elem_size
            view = memoryview(self._data[cpu])[start:start + self.value_size]
            if self.map_flags & BPF_F_RDONLY_PROG:
                view = view.toreadonly()
            addr = self._addrs[cpu][index] = self.runtime.mem.map(view, f"map {self.name} value[{index}]")
        return addr

    def value_address(self, offset: int) -> int:
        """BPF_PSEUDO_MAP_VALUE: the address of byte `offset` of value 0."""
        if not 0 <= offset < self.value_size:
            raise MapError(EINVAL, f"map {self.name}: offset {offset} is outside the value")
        return self.element_addr(0) + offset

    def _index_of(self, key: bytes) -> int:
        return int.from_bytes(key, "little")

    def lookup_addr(self, index: int) -> int:
        cpu = self.runtime.cpu if self.percpu else 0
        addr = self._addrs[cpu].get(index)
        if addr is not None:
            return addr
        return self.element_addr(index, cpu) if index < self.max_entries else 0

    def update(self, key: bytes, values: list[bytes], flags: int) -> int:
        index = self._index_of(key)
        if flags not in (BPF_ANY, BPF_NOEXIST, BPF_EXIST):
            return -EINVAL
        if index >= self.max_entries:
            return -E2BIG
        if flags == BPF_NOEXIST:
            return -EEXIST
        start = index * self.elem_size
        for data, value in zip(self._data, values):
            data[start:start + self.value_size] = value
        return 0

    def lookup(self, key: bytes) -> bytes | list[bytes] | None:
        index = self._index_of(self._check_key(key))
        if index >= self.max_entries:
            return None
        start = index * self.elem_size
        values = [bytes(data[start:start + self.value_size]) for data in self._data]
        return values if self.percpu else values[0]

    def keys(self) -> list[bytes]:
        return [struct.pack("<I", i) for i in range(self.max_entries)]

    def memory_usage(self) -> int:
        """array_map_mem_usage()."""
        entries = self.max_entries
        if self.percpu:
            return BPF_ARRAY_SIZE + entries * 8 + entries * self.elem_size * self.runtime.ncpus
        if self.map_flags & BPF_F_MMAPABLE:
            return _page_align(BPF_ARRAY_SIZE) + _page_align(entries * self.elem_size)
        return BPF_ARRAY_SIZE + entries * self.elem_size


class PercpuArrayMap(ArrayMap):
    map_type = BPF_MAP_TYPE_PERCPU_ARRAY
    percpu = True


class RedirectMap(HashMap):
    """Maps that name redirect targets: BPF_MAP_TYPE_DEVMAP (u32 index below
    max_entries -> ifindex), DEVMAP_HASH (any u32 key -> ifindex) and CPUMAP
    (cpu index -> queue size). The value's first u32 is the ifindex or queue
    size; programs may look entries up but not change them."""

    map_type = BPF_MAP_TYPE_DEVMAP
    prog_readonly = True
    prog_updates = False
    indexed = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.map_flags |= BPF_F_RDONLY_PROG  # dev_map_init_map(): lookups return a pointer into the entry

    def keys(self) -> list[bytes]:
        """An indexed map iterates every index, present or not (dev_map_get_next_key())."""
        if self.indexed:
            return [struct.pack("<I", i) for i in range(self.max_entries)]
        return super().keys()

    def memory_usage(self) -> int:
        """dev_map_mem_usage()."""
        slots = self.max_entries * 8 if self.indexed else 0
        return BPF_DTAB_SIZE + slots + len(self._elems) * BPF_DTAB_NETDEV_SIZE

    def check_attrs(self) -> None:
        super().check_attrs()
        if self.key_size != 4 or self.value_size not in (4, 8):
            raise MapError(EINVAL, f"{self.type_name} map {self.name}: key_size 4, value_size 4 or 8")

    def _key_error(self, key: bytes) -> int:
        if self.indexed and struct.unpack("<I", key)[0] >= self.max_entries:
            return -E2BIG
        return 0

    def update(self, key: bytes, values: list[bytes], flags: int) -> int:
        net = self.runtime.net
        if net is not None and struct.unpack_from("<I", values[0])[0] not in net.devices:
            return -EINVAL  # __dev_map_alloc_node(): no such device (checked on the lab)
        return super().update(key, values, flags)

    def target(self, key: int) -> int | None:
        """The ifindex a redirect to entry `key` goes to."""
        elem = self._elems.get(struct.pack("<I", key & 0xFFFFFFFF))
        return None if elem is None else struct.unpack_from("<I", elem.values[0])[0]

    def targets(self) -> list[int]:
        return [struct.unpack_from("<I", elem.values[0])[0] for elem in self._elems.values()]


class DevMapHash(RedirectMap):
    map_type = BPF_MAP_TYPE_DEVMAP_HASH
    indexed = False


class CpuMap(RedirectMap):
    """BPF_MAP_TYPE_CPUMAP (kernel/bpf/cpumap.c): slot N holds struct
    bpf_cpumap_val {u32 qsize; u32 bpf_prog fd} for CPU N, whose kthread
    builds skbs of the frames redirected there. cpu_map_update_elem(): flags
    above BPF_EXIST are -EINVAL, a key past max_entries -E2BIG, BPF_NOEXIST
    always -EEXIST, qsize above 16384 -EOVERFLOW, a CPU that is not possible
    -ENODEV, qsize 0 empties the slot. The second XDP program a value may
    name is not modelled: a non-zero fd is -ENOMEM, what 6.18 returns for an
    fd it cannot load (bpftool passes the fd number as is, so from the
    command line none loads). Unlike a devmap, programs get no read access
    (map_flags stay as created; the verifier allows only bpf_redirect_map)."""

    map_type = BPF_MAP_TYPE_CPUMAP
    QSIZE_MAX = 16384

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.map_flags &= ~BPF_F_RDONLY_PROG

    def update(self, key: bytes, values: list[bytes], flags: int) -> int:
        cpu = struct.unpack("<I", key)[0]
        if flags > BPF_EXIST:
            return -EINVAL
        if cpu >= self.max_entries:
            return -E2BIG
        if flags == BPF_NOEXIST:
            return -EEXIST
        qsize, prog_fd = struct.unpack("<II", values[0].ljust(8, b"\0"))
        if qsize > self.QSIZE_MAX:
            return -EOVERFLOW
        if cpu >= self.runtime.ncpus:
            return -ENODEV
        if qsize == 0:
            HashMap.delete(self, key)
            return 0
        if prog_fd:
            return -ENOMEM
        return HashMap.update(self, key, values, BPF_ANY)

    def memory_usage(self) -> int:
        """cpu_map_mem_usage(): the map and its slot pointers (entries are not counted)."""
        return BPF_CPU_MAP_SIZE + self.max_entries * 8

    def delete(self, key: bytes) -> int:
        if struct.unpack("<I", key)[0] >= self.max_entries:
            return -EINVAL
        HashMap.delete(self, key)
        return 0

    def target(self, key: int) -> int | None:
        """The CPU a redirect to entry `key` goes to."""
        return key if struct.pack("<I", key & 0xFFFFFFFF) in self._elems else None


class ProgArrayMap(BpfMap):
    """BPF_MAP_TYPE_PROG_ARRAY: program fds by index, for bpf_tail_call()."""

    map_type = BPF_MAP_TYPE_PROG_ARRAY

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._progs: dict[int, object] = {}

    def check_attrs(self) -> None:
        super().check_attrs()
        if self.key_size != 4 or self.value_size != 4:
            raise MapError(EINVAL, f"prog_array map {self.name}: key_size and value_size must be 4")

    def update(self, key: bytes, values: list[bytes], flags: int) -> int:
        index = struct.unpack("<I", key)[0]
        if index >= self.max_entries:
            return -E2BIG
        prog = self.runtime.progs.get(struct.unpack("<I", values[0])[0])
        if prog is None:
            return -EINVAL
        self._progs[index] = prog
        return 0

    def delete(self, key: bytes) -> int:
        return 0 if self._progs.pop(struct.unpack("<I", key)[0], None) is not None else -ENOENT

    def program(self, index: int):
        return self._progs.get(index)

    def lookup(self, key: bytes) -> bytes | None:
        prog = self._progs.get(struct.unpack("<I", self._check_key(key))[0])
        return None if prog is None else struct.pack("<I", prog.id)

    def keys(self) -> list[bytes]:
        return [struct.pack("<I", i) for i in sorted(self._progs)]


class PerfRing:
    """The ring of one CPU's PERF_COUNT_SW_BPF_OUTPUT event, as a reader opened
    it with PERF_SAMPLE_TIME | PERF_SAMPLE_RAW (kernel/events/ring_buffer.c
    perf_output_begin()): a sample takes an 8-byte header, the u64 time, the
    u32 raw size and the raw data; a PERF_RECORD_LOST (24 bytes) goes in
    before the next sample that fits after some were lost."""

    SAMPLE_OVERHEAD, LOST_RECORD = 20, 24

    def __init__(self, cpu: int, size: int) -> None:
        self.cpu, self.size = cpu, size
        self.records: list[tuple[int, bytes] | tuple[int, int]] = []  # (seq, raw) samples, (seq, n) losses
        self.used = 0
        self.pending_lost = 0

    def output(self, seq: int, raw: bytes) -> int:
        need = self.SAMPLE_OVERHEAD + len(raw) + (self.LOST_RECORD if self.pending_lost else 0)
        if self.used + need > self.size - 1:  # CIRC_SPACE(): the head never reaches the tail
            self.pending_lost += 1
            return -ENOSPC
        if self.pending_lost:
            self.records.append((seq, self.pending_lost))
            self.pending_lost = 0
        self.records.append((seq, raw))
        self.used += need
        return 0

    def drain(self) -> list[tuple[int, bytes] | tuple[int, int]]:
        records, self.records, self.used = self.records, [], 0
        return records


class PerfEventArrayMap(BpfMap):
    """BPF_MAP_TYPE_PERF_EVENT_ARRAY: bpf_perf_event_output() appends a sample
    to the ring of the perf event in the slot of the running CPU. A slot holds
    an event only while a reader has one open there (`open_ring()`): an empty
    slot is -ENOENT and another CPU's event -EOPNOTSUPP, and the sample is
    not stored (__bpf_perf_event_output()). The raw data is padded so that the
    u32 size and the data fill a multiple of 8 bytes (perf_prepare_sample());
    the kernel skips the padding (stale ring bytes), the mock writes zeros."""

    map_type = BPF_MAP_TYPE_PERF_EVENT_ARRAY

    def __init__(self, runtime: BpfRuntime, name: str, key_size: int, value_size: int, max_entries: int,
                 map_flags: int = 0) -> None:
        super().__init__(runtime, name, key_size, value_size, max_entries or runtime.ncpus, map_flags)
        self.rings: dict[int, PerfRing] = {}
        self._seq = 0

    def open_ring(self, cpu: int, size: int) -> PerfRing:
        """A reader's perf event on `cpu` with a `size`-byte ring, put in its slot."""
        if cpu >= self.max_entries:
            raise MapError(E2BIG, f"perf event array {self.name} has {self.max_entries} slots, not {cpu + 1}")
        ring = self.rings[cpu] = PerfRing(cpu, size)
        return ring

    def close_ring(self, ring: PerfRing) -> None:
        if self.rings.get(ring.cpu) is ring:
            del self.rings[ring.cpu]

    def output(self, index: int, sample: bytes) -> int:
        if index >= self.max_entries:
            return -E2BIG
        ring = self.rings.get(index)
        if ring is None:
            return -ENOENT
        if ring.cpu != self.runtime.cpu:
            return -EOPNOTSUPP
        self._seq += 1
        return ring.output(self._seq, sample + bytes(-(len(sample) + 4) % 8))


class _Record:
    __slots__ = ("addr", "data", "state")

    def __init__(self, data: bytearray, addr: int) -> None:
        self.data, self.addr, self.state = data, addr, "busy"


class RingBufMap(BpfMap):
    """BPF_MAP_TYPE_RINGBUF: a byte ring of max_entries (a power-of-two
    multiple of the page size). Each record takes an 8-byte header plus its
    length rounded up to 8; a reserve or output that does not fit fails.
    Records are consumed in reservation order, stopping at one still
    reserved (neither submitted nor discarded), as the kernel's consumer does."""

    map_type = BPF_MAP_TYPE_RINGBUF

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._records: list[_Record] = []
        self._used = 0

    def check_attrs(self) -> None:
        size = self.max_entries
        if self.key_size or self.value_size or size < PAGE_SIZE or size & (size - 1):
            raise MapError(EINVAL, f"ringbuf map {self.name}: key/value size 0, size a power-of-2 pages")

    def reserve(self, size: int) -> int:
        need = BPF_RINGBUF_HDR_SZ + _round8(size)
        if size <= 0 or self._used + need > self.max_entries - 1:  # the producer stays within size - 1
            return 0
        data = bytearray(size)
        record = _Record(data, self.runtime.mem.map(data, f"ringbuf {self.name} record"))
        self._records.append(record)
        self._used += need
        self.runtime.ringbuf_records[record.addr] = self
        return record.addr

    def commit(self, addr: int, discard: bool) -> None:
        """bpf_ringbuf_submit()/discard() of a record reserve() returned."""
        record = next(r for r in self._records if r.addr == addr and r.state == "busy")
        record.state = "discarded" if discard else "committed"
        del self.runtime.ringbuf_records[addr]
        self.runtime.release(addr)

    def output(self, data: bytes) -> int:
        addr = self.reserve(len(data))
        if not addr:
            return -EAGAIN
        self._records[-1].data[:] = data
        self.commit(addr, discard=False)
        return 0

    def consume(self) -> list[bytes]:
        """Submitted records up to the first one still reserved (ring_buffer__consume)."""
        out = []
        while self._records and self._records[0].state != "busy":
            record = self._records.pop(0)
            self._used -= BPF_RINGBUF_HDR_SZ + _round8(len(record.data))
            if record.state == "committed":
                out.append(bytes(record.data))
        return out


MAP_CLASSES: dict[int, type[BpfMap]] = {cls.map_type: cls for cls in (
    HashMap, ArrayMap, ProgArrayMap, PerfEventArrayMap, PercpuHashMap, PercpuArrayMap, LruHashMap,
    LruPercpuHashMap, LpmTrieMap, RedirectMap, CpuMap, DevMapHash, RingBufMap)}
