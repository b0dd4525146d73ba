"""The eBPF maps of the programs attached to DUT ports, read and written the same
way on every target: through `target.sh("bpftool -j ...")` and bpftool's JSON.

    blocklist = bpfmaps.map_of(target, "p0", "blocklist")       # the XDP program's map
    blocklist.update(lpm_key("10.0.1.0", 24), u64(0))
    blocklist.lookup(lpm_key("10.0.1.5", 32))                   # bytes, or None
    [entry.formatted for entry in blocklist.dump()]             # as BTF describes them

Maps are found through the program attached to the port (`bpftool net show dev
pN` -> the program's id -> `bpftool prog show id N` -> its `map_ids`), never by
a global map name: BPF objects are not namespaced, so on the lab `bpftool map
show name blocklist` can find another test's map (parallel workers load the same
objects). Ids are looked up once per `map_of()`; a program re-attached later has
new maps.

Why a module over `target.sh()` rather than a Target method: bpftool is the
interface operators use on both targets and the mock models it (cmd/bpftool.py),
so one implementation serves every target and exercises the mock's bpftool
against the real one's JSON; a Target method would need two implementations
saying the same thing.
"""
from __future__ import annotations

import ipaddress
import json
import struct
from dataclasses import dataclass
from typing import Any

from harness.target import CommandError, Target, TargetError

HOOKS = ("xdp", "tc/ingress", "tc/egress")


def _bpftool(target: Target, args: str) -> Any:
    return json.loads(target.sh(f"bpftool -j {args}"))


def program_of(target: Target, port: str, hook: str = "xdp") -> dict:
    """`bpftool -j prog show id N` of the program attached at `hook` of DUT `port`:
    id, name, tag, map_ids, run_cnt (when statistics are on), ..."""
    if hook not in HOOKS:
        raise TargetError(f"hook {hook!r}: use one of {', '.join(HOOKS)}")
    name = target.port(port).name
    attached = _bpftool(target, f"net show dev {name}")[0]
    if hook == "xdp":
        ids = [entry["id"] for entry in attached["xdp"]]
    else:
        ids = [entry["id"] for entry in attached["tc"] if entry.get("kind", "").endswith(hook.split("/")[1])]
    if not ids:
        raise TargetError(f"no {hook} program is attached to {name} on {target.name}")
    return _bpftool(target, f"prog show id {ids[0]}")


@dataclass(frozen=True)
class Entry:
    """One element as bpftool dumps it: raw bytes (one value per possible CPU for
    per-CPU maps) and, for maps with BTF, the `formatted` key/value(s)."""

    key: bytes
    value: bytes | list[bytes]
    formatted: dict | None


class MapHandle:
    """A map by id, as `bpftool map ... id N` reaches it."""

    def __init__(self, target: Target, info: dict) -> None:
        self.target = target
        self.info = info
        self.id = info["id"]
        self.name = info.get("name", "")
        self.key_size, self.value_size = info["bytes_key"], info["bytes_value"]

    def __repr__(self) -> str:
        return f"<map {self.name} id {self.id} on {self.target.name}>"

    def update(self, key: bytes, value: bytes, flag: str = "any") -> None:
        """`bpftool map update`: flag any, noexist or exist. Per-CPU maps get the
        value on every CPU. CommandError with bpftool's message on failure."""
        self.target.sh(f"bpftool -j map update id {self.id} key hex {key.hex(' ')} "
                       f"value hex {value.hex(' ')} {flag}")

    def delete(self, key: bytes) -> None:
        self.target.sh(f"bpftool -j map delete id {self.id} key hex {key.hex(' ')}")

    def lookup(self, key: bytes) -> bytes | list[bytes] | None:
        """The value (per CPU for per-CPU maps), or None when there is no entry."""
        try:
            entry = _bpftool(self.target, f"map lookup id {self.id} key hex {key.hex(' ')}")
        except CommandError as exc:
            if exc.returncode == 254:  # -ENOENT: bpftool printed null
                return None
            raise
        return _entry(entry).value

    def dump(self) -> list[Entry]:
        """Every element; an array-like map's empty slots (devmap) are left out."""
        items = _bpftool(self.target, f"map dump id {self.id}")
        return [_entry(item) for item in items if not isinstance(item.get("value"), dict)]

    def values(self) -> dict[bytes, bytes]:
        """Key -> value of every element, per-CPU values summed as u64 counters."""
        return {entry.key: sum_percpu(entry.value) for entry in self.dump()}


def _entry(item: dict) -> Entry:
    if "values" in item:
        value: bytes | list[bytes] = [_bytes(per_cpu["value"]) for per_cpu in item["values"]]
    else:
        value = _bytes(item["value"])
    return Entry(_bytes(item["key"]), value, item.get("formatted"))


def _bytes(hex_list: list[str]) -> bytes:
    return bytes(int(byte, 16) for byte in hex_list)


def map_of(target: Target, port: str, name: str, hook: str = "xdp") -> MapHandle:
    """The map called `name` used by the program attached at `hook` of DUT `port`."""
    prog = program_of(target, port, hook)
    for map_id in prog.get("map_ids", []):
        info = _bpftool(target, f"map show id {map_id}")
        if info.get("name") == name:
            return MapHandle(target, info)
    raise TargetError(f"program {prog['name']} (id {prog['id']}) on {target.port(port).name} has no map "
                      f"named {name!r}")


def run_count(target: Target, port: str, hook: str = "xdp") -> int:
    """How many times the program at `hook` of `port` ran (statistics on)."""
    return program_of(target, port, hook).get("run_cnt", 0)


# keys and values, as the programs in programs/ lay them out -------------------------

def u32(value: int) -> bytes:
    return struct.pack("<I", value)


def u64(value: int) -> bytes:
    return struct.pack("<Q", value)


def lpm_key(address: str, prefixlen: int) -> bytes:
    """struct bpf_lpm_trie_key for IPv4: u32 prefixlen (host order), the address
    in network order."""
    return struct.pack("<I", prefixlen) + ipaddress.IPv4Address(address).packed


def sum_percpu(value: bytes | list[bytes]) -> bytes:
    """A per-CPU value as its u64 fields summed over the CPUs (a plain value as is)."""
    if isinstance(value, bytes):
        return value
    width = len(value[0])
    fields = [sum(struct.unpack_from("<Q", v, off)[0] for v in value) for off in range(0, width - width % 8, 8)]
    return b"".join(struct.pack("<Q", f) for f in fields) + value[0][width - width % 8:]
