"""Loading clang-built BPF ELF objects, as libbpf's bpf_object__open() and load do.

Models tools/lib/bpf/libbpf.c: program sections and their types (`xdp`,
`xdp.frags`, `xdp/devmap`, `xdp/cpumap`, `tc`, `classifier`, `tc/ingress`,
`tc/egress`, `tcx/*`), one program per global function in such a section;
subprograms in `.text`; the `license` section; maps from BTF (`.maps`, read
with btf.py) or the legacy `maps` section (struct bpf_map_def); global data
sections (`.data*`, `.rodata*`, `.bss*`) as single-element array maps named
the way libbpf names them ("<obj>.rodata", `.rodata` read-only to programs
and frozen); and relocations: R_BPF_64_64 on LD_IMM64 against a map or a
global data symbol, R_BPF_64_32 on calls into `.text`. Programs are
translated when the object loads. Left out: CO-RE (.BTF.ext), externs
(kconfig, ksyms), callbacks (BPF_PSEUDO_FUNC), map-in-map, `.struct_ops`,
prog-array initialisation from BTF `values`.

A malformed object is refused as libbpf refuses it, with LIBBPF_ERRNO__FORMAT
("BPF object format invalid"): section headers or data past the end of the
file (libelf's elf_getdata() fails), no SHT_SYMTAB section, a code section
whose size is not a whole number of instructions (bpf_object__add_programs()),
a relocation outside its section or against a symbol that does not exist
(bpf_object__collect_prog_relos()), anything else the ELF reader cannot parse.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from elftools.common.exceptions import ELFError
from elftools.construct import ConstructError
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from harness.mockkernel.bpf.btf import Btf, BtfError, MapDef
from harness.mockkernel.bpf.core import BpfProgram
from harness.mockkernel.bpf.insn import BPF_CALL, BPF_JMP, BPF_PSEUDO_CALL, LD_IMM64, decode
from harness.mockkernel.bpf.maps import (BPF_F_MMAPABLE, BPF_F_RDONLY_PROG, BPF_MAP_TYPE_ARRAY, NO_BTF_MAP_TYPES,
                                         BpfMap, MapError)
from harness.mockkernel.bpf.vm import BpfLoadError, CallReloc, CodeSection, MapReloc

if TYPE_CHECKING:
    from harness.mockkernel.bpf.syscall import BpfRuntime

R_BPF_64_64, R_BPF_64_32 = 1, 10
SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4
BPF_OBJ_NAME_LEN = 16
_MAP_DEF = struct.Struct("<IIIII")  # legacy struct bpf_map_def
_DATA_PREFIXES = (".data", ".rodata", ".bss")


def program_type(section: str) -> str | None:
    """libbpf's section_defs[] for the types the mock runs."""
    if section in ("xdp", "xdp.frags") or section.startswith(("xdp/", "xdp.frags/")):
        return "xdp"
    if section in ("tc", "classifier", "tc/ingress", "tc/egress") or section.startswith("tcx/"):
        return "sched_cls"
    return None


def internal_map_name(obj_name: str, section: str) -> str:
    """libbpf's internal_map_name(): "<obj prefix><section>" in 15 characters."""
    suffix_len = max(7, len(section))
    prefix_len = 0 if "." in section[1:] else min(BPF_OBJ_NAME_LEN - suffix_len - 1, len(obj_name))
    name = (obj_name[:prefix_len] + section[:suffix_len])[:BPF_OBJ_NAME_LEN - 1]
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name)


class BpfObject:
    """struct bpf_object after load: programs and maps by name."""

    def __init__(self, name: str, license: str) -> None:
        self.name = name
        self.license = license
        self.programs: dict[str, BpfProgram] = {}
        self.maps: dict[str, BpfMap] = {}
        self.unsupported: dict[str, str] = {}  # program name -> section of a type the mock does not run
        self._data_maps: dict[str, BpfMap] = {}  # by section name
        self._vars: dict[str, tuple[BpfMap, int, int]] = {}

    def __repr__(self) -> str:
        return f"<BpfObject {self.name}: programs {list(self.programs)}, maps {list(self.maps)}>"

    def program(self, name: str | None = None) -> BpfProgram:
        """A program by function name or by section (`sec` of `tc ... obj X.o sec S`);
        the only program when `name` is None."""
        if name is None:
            if len(self.programs) != 1:
                raise KeyError(f"{self.name}: {len(self.programs)} programs, name one of {list(self.programs)}")
            return next(iter(self.programs.values()))
        if name in self.programs:
            return self.programs[name]
        by_section = [p for p in self.programs.values() if p.section == name]
        if by_section:
            return by_section[0]
        if name in self.unsupported or name in self.unsupported.values():
            raise BpfLoadError(f"{self.name}: program {name} is of a type the mock does not run "
                               f"(section {self.unsupported.get(name, name)})")
        raise KeyError(f"{self.name}: no program or section {name!r}; have {list(self.programs)}")

    def map(self, name: str) -> BpfMap:
        """A map by name; global data also by section (".bss", ".data", ".rodata")."""
        found = self.maps.get(name) or self._data_maps.get(name)
        if found is None:
            raise KeyError(f"{self.name}: no map {name!r}; have {list(self.maps)}")
        return found

    def global_var(self, name: str) -> bytes:
        """The current bytes of a global variable (in .data, .rodata or .bss)."""
        if name not in self._vars:
            raise KeyError(f"{self.name}: no global variable {name!r}; have {list(self._vars)}")
        bpf_map, offset, size = self._vars[name]
        return bpf_map.lookup(bytes(4))[offset:offset + size]


class _Loader:
    def __init__(self, runtime: BpfRuntime, data: bytes, name: str) -> None:
        self.runtime = runtime
        try:
            self.elf = ELFFile(io.BytesIO(data))
        except ELFError as exc:
            raise BpfLoadError(f"{name}: not an ELF object ({exc})") from None
        if self.elf["e_machine"] != "EM_BPF" or not self.elf.little_endian or self.elf.elfclass != 64:
            raise BpfLoadError(f"{name}: not a 64-bit little-endian BPF object")
        self.name = name
        self.sections = list(self.elf.iter_sections())
        for index, sec in enumerate(self.sections):
            if sec["sh_type"] != "SHT_NOBITS" and sec["sh_offset"] + sec["sh_size"] > len(data):
                raise format_invalid(f"{name}: elf: failed to get section({index}) data: "
                                     "invalid section header")
        symtabs = [sec for sec in self.sections if sec["sh_type"] == "SHT_SYMTAB"]
        if len(symtabs) > 1:
            raise format_invalid(f"{name}: elf: multiple symbol tables")
        if not symtabs or not isinstance(symtabs[0], SymbolTableSection):
            raise BpfLoadError(f"{name}: no symbol table")
        self.symtab = symtabs[0]
        license_sec = self.elf.get_section_by_name("license")
        license = license_sec.data().split(b"\0", 1)[0].decode("latin-1") if license_sec is not None else ""
        self.obj = BpfObject(name, license)
        self.map_by_symbol: dict[tuple[int, str], BpfMap] = {}  # (section index, symbol) -> map
        self.data_by_index: dict[int, BpfMap] = {}
        self.btf: Btf | None = None
        self.btf_id = 0  # the id BPF_BTF_LOAD gives the object's BTF, shared by its maps and programs

    def _symbols_in(self, index: int) -> list:
        return sorted((s for s in self.symtab.iter_symbols() if s["st_shndx"] == index),
                      key=lambda s: s["st_value"])

    def _create(self, name: str, definition: MapDef) -> BpfMap:
        try:
            bpf_map = self.runtime.create_map(definition.type, definition.key_size, definition.value_size,
                                              definition.max_entries, definition.map_flags, name)
        except MapError as exc:
            raise BpfLoadError(f"{self.name}: {exc.strerror}") from None
        self.obj.maps[name] = bpf_map
        self._attach_btf(bpf_map, definition)
        return bpf_map

    def _attach_btf(self, bpf_map: BpfMap, definition: MapDef) -> None:
        """libbpf's bpf_object__create_map(): key and value types go with the map,
        except for the types whose values the kernel refuses to describe (libbpf
        leaves them out, or retries without BTF when map_check_no_btf() refuses)."""
        if self.btf is None or not definition.value_type_id or bpf_map.map_type in NO_BTF_MAP_TYPES:
            return
        bpf_map.btf, bpf_map.btf_id = self.btf, self.btf_id
        bpf_map.btf_key_type_id, bpf_map.btf_value_type_id = definition.key_type_id, definition.value_type_id

    def load_maps(self) -> None:
        btf_sec = self.elf.get_section_by_name(".BTF")
        try:
            self.btf = Btf(btf_sec.data()) if btf_sec is not None else None
            btf_defs = self.btf.map_defs() if self.btf is not None else {}
        except BtfError as exc:
            raise BpfLoadError(f"{self.name}: {exc}") from None
        if self.btf is not None:
            self.btf_id = self.runtime.new_btf_id()
        for index, sec in enumerate(self.sections):
            if sec.name == ".maps":
                for sym in self._symbols_in(index):
                    if sym.name not in btf_defs:
                        raise BpfLoadError(f"{self.name}: map {sym.name} in .maps has no BTF definition")
                    self.map_by_symbol[(index, sym.name)] = self._create(sym.name, btf_defs[sym.name])
            elif sec.name == "maps":
                for sym in self._symbols_in(index):
                    if sym["st_info"]["type"] == "STT_SECTION":
                        continue
                    fields = _MAP_DEF.unpack_from(sec.data(), sym["st_value"])
                    self.map_by_symbol[(index, sym.name)] = self._create(sym.name, MapDef(sym.name, *fields))

    def load_global_data(self) -> None:
        for index, sec in enumerate(self.sections):
            if not sec.name.startswith(_DATA_PREFIXES) or not sec["sh_flags"] & SHF_ALLOC or not sec["sh_size"]:
                continue
            readonly = sec.name.startswith(".rodata")
            name = internal_map_name(self.name, sec.name)
            datasec = self.btf.datasec(sec.name) if self.btf is not None else None
            flags = BPF_F_MMAPABLE | (BPF_F_RDONLY_PROG if readonly else 0)
            bpf_map = self._create(name, MapDef(name, BPF_MAP_TYPE_ARRAY, 4, sec["sh_size"], 1, flags,
                                                0, datasec.id if datasec is not None else 0))
            if sec["sh_type"] != "SHT_NOBITS":
                bpf_map.update_elem(bytes(4), sec.data())
            bpf_map.frozen = readonly
            self.data_by_index[index] = bpf_map
            self.obj._data_maps[sec.name] = bpf_map
            for sym in self._symbols_in(index):
                if sym["st_info"]["type"] == "STT_OBJECT":
                    self.obj._vars[sym.name] = (bpf_map, sym["st_value"], sym["st_size"])
            if datasec is not None:
                self._fixup_datasec(datasec)

    def _fixup_datasec(self, datasec) -> None:
        """libbpf's btf_fixup_datasec(): clang leaves the variables' offsets to the
        linker, libbpf fills them in from the symbol table."""
        entries = []
        for var_type, offset, size in datasec.extra:
            var_btf = self.btf.type_by_id(var_type, datasec.id)
            var = self.obj._vars.get(var_btf.name) if var_btf is not None else None
            entries.append((var_type, var[1] if var is not None else offset, size))
        datasec.extra = tuple(entries)

    def code_sections(self) -> dict[str, CodeSection]:
        code: dict[int, CodeSection] = {}
        for index, sec in enumerate(self.sections):
            if sec["sh_type"] == "SHT_PROGBITS" and sec["sh_flags"] & SHF_EXECINSTR and sec["sh_size"]:
                if sec["sh_size"] % 8:
                    raise format_invalid(f"{self.name}: sec '{sec.name}': corrupted program code section size: "
                                         f"{sec['sh_size']}")
                code[index] = CodeSection(sec.name, decode(sec.data()), {})
        for sec in self.sections:
            if isinstance(sec, RelocationSection) and sec["sh_info"] in code:
                target = code[sec["sh_info"]]
                for number, reloc in enumerate(sec.iter_relocations()):
                    self._relocate(target, reloc, code, sec.name, number)
        return {section.name: section for section in code.values()}

    def _relocate(self, section: CodeSection, reloc, code: dict[int, CodeSection], relo_sec: str,
                  number: int) -> None:
        offset, sym_index = reloc["r_offset"], reloc["r_info_sym"]
        if offset % 8 or offset >= 8 * len(section.insns):
            raise format_invalid(f"{self.name}: sec '{relo_sec}': invalid offset {offset:#x} for relo #{number}")
        if sym_index >= self.symtab.num_symbols():
            raise format_invalid(f"{self.name}: sec '{relo_sec}': symbol #{sym_index} not found for relo #{number}")
        pc = offset // 8
        sym = self.symtab.get_symbol(sym_index)
        sym_index = sym["st_shndx"]
        insn = section.insns[pc]
        where = f"{self.name}: {section.name} insn {pc}: relocation against {sym.name or 'section'}"
        if sym_index == "SHN_UNDEF":
            raise BpfLoadError(f"{where}: externs (kconfig, ksyms) are not supported")
        if insn.code == LD_IMM64 and reloc["r_info_type"] == R_BPF_64_64:
            bpf_map = self.map_by_symbol.get((sym_index, sym.name))
            if bpf_map is not None:
                section.relocs[pc] = MapReloc(bpf_map)
                return
            if sym_index in self.data_by_index:
                section.relocs[pc] = MapReloc(self.data_by_index[sym_index], insn.imm + sym["st_value"])
                return
            if sym_index in code:
                raise BpfLoadError(f"{where}: callbacks (BPF_PSEUDO_FUNC) are not supported")
        if insn.code == BPF_JMP | BPF_CALL and insn.src == BPF_PSEUDO_CALL and sym_index in code:
            section.relocs[pc] = CallReloc(code[sym_index].name, sym["st_value"] // 8 + insn.imm + 1)
            return
        raise BpfLoadError(f"{where}: relocation type {reloc['r_info_type']} on this instruction is not supported")

    def load_programs(self, sections: dict[str, CodeSection]) -> None:
        for index, sec in enumerate(self.sections):
            if sec.name not in sections or sec.name == ".text":
                continue
            prog_type = program_type(sec.name)
            for sym in self._symbols_in(index):
                if sym["st_info"]["type"] != "STT_FUNC":
                    continue
                if prog_type is None:
                    self.obj.unsupported[sym.name] = sec.name
                    continue
                prog = BpfProgram(self.runtime, sym.name, prog_type, sections, sec.name,
                                  sym["st_value"] // 8, self.obj.license)
                prog.btf_id = self.btf_id
                self.obj.programs[sym.name] = prog


def load_object(runtime: BpfRuntime, source: str | os.PathLike | bytes, name: str | None = None) -> BpfObject:
    """Open an object file (a path or its bytes), create its maps, relocate and
    translate its programs. `name` defaults to the file name up to its first dot."""
    if isinstance(source, (bytes, bytearray)):
        data, default_name = bytes(source), "obj"
    else:
        path = Path(source)
        data, default_name = path.read_bytes(), path.name.split(".", 1)[0]
    name = name or default_name
    try:
        loader = _Loader(runtime, data, name)
        loader.load_maps()
        loader.load_global_data()
        sections = loader.code_sections()
    except (ELFError, ConstructError, struct.error, UnicodeDecodeError, zlib.error, BtfError, OverflowError) as exc:
        raise format_invalid(f"{name}: elf: {exc}") from None
    loader.load_programs(sections)
    return loader.obj


def format_invalid(message: str) -> BpfLoadError:
    """libbpf's -LIBBPF_ERRNO__FORMAT, after what it warned."""
    return BpfLoadError(f"{message}: BPF object format invalid")
