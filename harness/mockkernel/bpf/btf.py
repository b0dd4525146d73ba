"""A small BTF reader: enough of the .BTF section to read BTF-defined maps.

Models what libbpf (tools/lib/bpf/btf.c, libbpf.c parse_btf_map_def) reads
from an object: the type table (include/uapi/linux/btf.h) and, for each
variable of the `.maps` DATASEC, its map definition. A map definition is a
struct whose integer attributes (`type`, `key_size`, `value_size`,
`max_entries`, `map_flags`) are encoded as `int (*name)[N]` (a pointer to an
array of N elements) and whose `key`/`value` are pointers to the key and
value types. Left out: CO-RE (.BTF.ext), line info, map-in-map `values`
initialisation, and every kind's details beyond sizes and names.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

BTF_MAGIC = 0xEB9F

# include/uapi/linux/btf.h BTF_KIND_*
(KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_FWD, KIND_TYPEDEF,
 KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_FUNC, KIND_FUNC_PROTO, KIND_VAR, KIND_DATASEC,
 KIND_FLOAT, KIND_DECL_TAG, KIND_TYPE_TAG, KIND_ENUM64) = range(1, 20)
_MODIFIERS = (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG)
_HEADER = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")


class BtfError(ValueError):
    """Malformed or unsupported BTF."""


@dataclass
class BtfType:
    id: int
    kind: int
    name: str
    size_or_type: int
    vlen: int
    # kind-specific: INT (encoding << 24 | offset << 16 | bits,); ARRAY (elem_type,
    # index_type, nelems); STRUCT/UNION members (name, type, bit offset); ENUM/ENUM64
    # (name, value) pairs; DATASEC entries (var type, offset, size); VAR linkage
    extra: tuple = ()
    kind_flag: bool = False  # STRUCT/UNION: member offsets carry bitfield sizes


@dataclass
class MapDef:
    """A map definition as libbpf reads it (struct bpf_map_def / BTF map)."""

    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int = 0
    key_type_id: int = 0  # BTF type ids of the key and value (0: none), as libbpf passes them
    value_type_id: int = 0


class Btf:
    def __init__(self, data: bytes) -> None:
        if len(data) < _HEADER.size:
            raise BtfError("BTF section too short for its header")
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HEADER.unpack_from(data)
        if magic != BTF_MAGIC:
            raise BtfError(f"bad BTF magic {magic:#x} (big-endian objects are not supported)")
        self._strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
        self.types: list[BtfType | None] = [None]  # type id 0 is void
        self._parse_types(data[hdr_len + type_off:hdr_len + type_off + type_len])

    def _string(self, offset: int) -> str:
        """The string at `offset`; one outside the string section, or not ended by a
        NUL, refused as libbpf's btf_validate_str() refuses it."""
        end = self._strings.find(b"\0", offset)
        if offset >= len(self._strings) or end < 0:
            raise BtfError(f"invalid string offset {offset}")
        return self._strings[offset:end].decode("utf-8", "replace")

    def _parse_types(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            name_off, info, size_or_type = _TYPE.unpack_from(data, pos)
            pos += _TYPE.size
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            extra: tuple = ()
            if kind in (KIND_INT, KIND_VAR, KIND_DECL_TAG):
                extra = struct.unpack_from("<I", data, pos)
                pos += 4
            elif kind == KIND_ARRAY:
                extra = struct.unpack_from("<III", data, pos)
                pos += 12
            elif kind in (KIND_STRUCT, KIND_UNION):
                members = []
                for _ in range(vlen):
                    m_name, m_type, m_offset = struct.unpack_from("<III", data, pos)
                    members.append((self._string(m_name), m_type, m_offset))
                    pos += 12
                extra = tuple(members)
            elif kind == KIND_DATASEC:
                extra = tuple(struct.unpack_from("<III", data, pos + 12 * i) for i in range(vlen))
                pos += 12 * vlen
            elif kind == KIND_ENUM:
                extra = tuple((self._string(n), v) for n, v in
                              (struct.unpack_from("<Ii", data, pos + 8 * i) for i in range(vlen)))
                pos += 8 * vlen
            elif kind == KIND_ENUM64:
                extra = tuple((self._string(n), lo | hi << 32) for n, lo, hi in
                              (struct.unpack_from("<III", data, pos + 12 * i) for i in range(vlen)))
                pos += 12 * vlen
            elif kind == KIND_FUNC_PROTO:
                pos += 8 * vlen
            elif kind not in (KIND_PTR, KIND_FWD, KIND_FUNC, KIND_FLOAT, *_MODIFIERS):
                raise BtfError(f"unknown BTF kind {kind} at type {len(self.types)}")
            self.types.append(BtfType(len(self.types), kind, self._string(name_off), size_or_type, vlen, extra,
                                      bool(info >> 31)))

    def type_by_id(self, type_id: int, referrer: int = 0) -> BtfType | None:
        """Type `type_id` (None: void), refused as libbpf's btf_validate_id() refuses
        an id past the last type ("invalid referenced type ID")."""
        if not 0 <= type_id < len(self.types):
            raise BtfError(f"type [{referrer}]: invalid referenced type ID {type_id}")
        return self.types[type_id]

    def resolve(self, type_id: int) -> BtfType:
        """Skip typedefs and qualifiers; a chain of them that loops is refused, as
        the kernel's btf_resolve() refuses it ("Loop detected")."""
        btf_type = self.type_by_id(type_id)
        for _ in range(len(self.types)):
            if btf_type is None or btf_type.kind not in _MODIFIERS:
                break
            btf_type = self.type_by_id(btf_type.size_or_type, btf_type.id)
        else:
            raise BtfError(f"type [{type_id}]: Loop detected")
        if btf_type is None:
            raise BtfError(f"type {type_id} resolves to void")
        return btf_type

    def size_of(self, type_id: int, depth: int = 0) -> int:
        btf_type = self.resolve(type_id)
        if btf_type.kind == KIND_PTR:
            return 8
        if btf_type.kind == KIND_ARRAY:
            if depth > len(self.types):  # an array of itself, however far round
                raise BtfError(f"type [{type_id}]: Loop detected")
            elem_type, _index_type, nelems = btf_type.extra
            return nelems * self.size_of(elem_type, depth + 1)
        if btf_type.kind in (KIND_INT, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_ENUM64, KIND_FLOAT):
            return btf_type.size_or_type
        raise BtfError(f"type {type_id} ({btf_type.name or 'anonymous'}) has no size")

    def datasec(self, name: str) -> BtfType | None:
        return next((t for t in self.types[1:] if t.kind == KIND_DATASEC and t.name == name), None)

    def map_defs(self) -> dict[str, MapDef]:
        """Each variable of the `.maps` DATASEC, by variable name."""
        maps_sec = self.datasec(".maps")
        if maps_sec is None:
            return {}
        defs = {}
        for var_type, _offset, _size in maps_sec.extra:
            var = self.type_by_id(var_type, maps_sec.id)
            if var is None:
                raise BtfError(f"type [{maps_sec.id}]: variable of type void")
            defs[var.name] = self._map_def(var.name, self.resolve(var.size_or_type))
        return defs

    def _map_def(self, name: str, struct_type: BtfType) -> MapDef:
        if struct_type.kind != KIND_STRUCT:
            raise BtfError(f"map {name}: definition is not a struct")
        attrs = {"map_flags": 0, "key_size": 0, "value_size": 0, "max_entries": 0}
        type_ids = {"key": 0, "value": 0}
        for member, member_type, _offset in struct_type.extra:
            pointer = self.resolve(member_type)
            if member in ("key", "value"):
                attrs[f"{member}_size"] = self.size_of(pointer.size_or_type)
                type_ids[member] = pointer.size_or_type
            elif member in ("type", "key_size", "value_size", "max_entries", "map_flags", "pinning",
                            "numa_node", "map_extra"):
                array = self.resolve(pointer.size_or_type) if pointer.kind == KIND_PTR else None
                if array is None or array.kind != KIND_ARRAY:
                    raise BtfError(f"map {name}: {member} is not __uint(...)")
                attrs[member] = array.extra[2]
            else:
                raise BtfError(f"map {name}: attribute {member!r} is not supported by the mock loader")
        if "type" not in attrs:
            raise BtfError(f"map {name}: no map type")
        return MapDef(name, attrs["type"], attrs["key_size"], attrs["value_size"], attrs["max_entries"],
                      attrs["map_flags"], type_ids["key"], type_ids["value"])
