"""bpftool v7.1.0 (libbpf 1.1, Debian bookworm) for the mock's BPF objects:
`prog show|list [PROG]`, `map show|list [MAP]`, `map dump MAP`, `map lookup|
update|delete|getnext MAP ...`, `net show|list [dev NAME]` and `version`, plain
or with `-j`/`--json` and `-p`/`--pretty`, printed as that bpftool prints them
(tools/bpf/bpftool prog.c, map.c, net.c, btf_dumper.c, json_writer.c, ported
below; formats checked against the real one on this machine's 6.18 kernel).

What the mock's objects report where the kernel knows more:
- ids are the mock runtime's own (maps and programs share one counter);
- `tag` is the kernel's (bpf/tag.py); `xlated` is the loaded instructions' size
  (the kernel's verifier rewrites, e.g. inlined array lookups, are not
  modelled); programs are not JIT-compiled ("not jited", `"jited": false`);
- `loaded_at` is MOCK_BOOT_TIME plus the virtual time of the load, uid 0;
- run statistics are always on (the lab enables them while it lives): each run
  counts a nominal MOCK_RUN_TIME_NS, so bpftool shows `run_time_ns`/`run_cnt`;
- map `memlock` is exact for arrays, LPM tries and devmaps (maps.py);
- BTF ids are per loaded object; key/value types print as btf_dumper formats them;
- `net show` lists XDP programs (native as "driver", generic as "generic") and
  clsact bpf filters (ingress then egress, in tc's order); `flow_dissector` is empty;
- every map and program is in the one namespace the mock models (on the real
  kernel BPF objects are global: `name` lookups may find other namespaces' maps).
`map dump` of an LPM trie lists entries in insertion order (the kernel walks
the trie). Other subcommands (load, pin, attach, prog dump/run, btf, link, ...)
and options (-f, -n, -m, -L, -B, -l) are not modelled and say so.
"""
from __future__ import annotations

import os
import struct
import time
from contextlib import contextmanager

from harness.mockkernel.bpf.btf import (
    KIND_ARRAY,
    KIND_CONST,
    KIND_DATASEC,
    KIND_ENUM,
    KIND_ENUM64,
    KIND_FWD,
    KIND_INT,
    KIND_PTR,
    KIND_RESTRICT,
    KIND_STRUCT,
    KIND_TYPE_TAG,
    KIND_TYPEDEF,
    KIND_UNION,
    KIND_VAR,
    KIND_VOLATILE,
    Btf,
)
from harness.mockkernel.bpf.maps import (
    BPF_ANY,
    BPF_EXIST,
    BPF_MAP_TYPE_PROG_ARRAY,
    BPF_NOEXIST,
    ENOENT,
    BpfMap,
    MapError,
)
from harness.mockkernel.bpf.tag import bpf_prog_calc_tag, loaded_insns
from harness.mockkernel.bpf.vm import MapReloc
from harness.mockkernel.cmd.args import ToolError, c_uint, not_modelled

VERSION = "bpftool v7.1.0\nusing libbpf v1.1\nfeatures: libbpf_strict\n"
VERSION_JSON = ('{"version":"7.1.0","libbpf_version":"1.1","features":'
                '{"libbfd":false,"libbpf_strict":true,"skeletons":false}}')
MOCK_BOOT_TIME = 1767225600  # 2026-01-01T00:00:00+0000: `loaded_at` = this + virtual time
MOCK_RUN_TIME_NS = 100  # the nominal cost of one program run in run_time_ns
BPF_OBJ_NAME_LEN = 16
BPF_PROG_STRUCT_SIZE = 72  # struct bpf_prog before its instructions (bpf_prog_size())
PAGE_SIZE = 4096
PROG_TYPE_NAMES = {"xdp": "xdp", "sched_cls": "sched_cls", "raw": "socket_filter"}

MAIN_USAGE = """Usage: bpftool [OPTIONS] OBJECT { COMMAND | help }
       bpftool batch file FILE
       bpftool version

       OBJECT := { prog | map | link | cgroup | perf | net | feature | btf | gen | struct_ops | iter }
       OPTIONS := { {-j|--json} [{-p|--pretty}] | {-d|--debug} | {-l|--legacy} |
                    {-V|--version} }"""
PROG_USAGE = """Usage: bpftool prog { show | list } [PROG]
       bpftool prog dump xlated PROG [{ file FILE | opcodes | visual | linum }]
       bpftool prog dump jited  PROG [{ file FILE | opcodes | linum }]
       bpftool prog pin   PROG FILE
       bpftool prog { load | loadall } OBJ  PATH \\
                         [type TYPE] [dev NAME] \\
                         [map { idx IDX | name NAME } MAP]\\
                         [pinmaps MAP_DIR]
       bpftool prog attach PROG ATTACH_TYPE [MAP]
       bpftool prog detach PROG ATTACH_TYPE [MAP]
       bpftool prog run PROG \\
                         data_in FILE \\
                         [data_out FILE [data_size_out L]] \\
                         [ctx_in FILE [ctx_out FILE [ctx_size_out M]]] \\
                         [repeat N]
       bpftool prog profile PROG [duration DURATION] METRICs
       bpftool prog tracelog
       bpftool prog help

       MAP := { id MAP_ID | pinned FILE | name MAP_NAME }
       PROG := { id PROG_ID | pinned FILE | tag PROG_TAG | name PROG_NAME }
       TYPE := { socket | kprobe | kretprobe | classifier | action |
                 tracepoint | raw_tracepoint | xdp | perf_event | cgroup/skb |
                 cgroup/sock | cgroup/dev | lwt_in | lwt_out | lwt_xmit |
                 lwt_seg6local | sockops | sk_skb | sk_msg | lirc_mode2 |
                 sk_reuseport | flow_dissector | cgroup/sysctl |
                 cgroup/bind4 | cgroup/bind6 | cgroup/post_bind4 |
                 cgroup/post_bind6 | cgroup/connect4 | cgroup/connect6 |
                 cgroup/getpeername4 | cgroup/getpeername6 |
                 cgroup/getsockname4 | cgroup/getsockname6 | cgroup/sendmsg4 |
                 cgroup/sendmsg6 | cgroup/recvmsg4 | cgroup/recvmsg6 |
                 cgroup/getsockopt | cgroup/setsockopt | cgroup/sock_release |
                 struct_ops | fentry | fexit | freplace | sk_lookup }
       ATTACH_TYPE := { sk_msg_verdict | sk_skb_verdict | sk_skb_stream_verdict |
                        sk_skb_stream_parser | flow_dissector }
       METRIC := { cycles | instructions | l1d_loads | llc_misses | itlb_misses | dtlb_misses }
       OPTIONS := { {-j|--json} [{-p|--pretty}] | {-d|--debug} | {-l|--legacy} |
                    {-f|--bpffs} | {-m|--mapcompat} | {-n|--nomount} |
                    {-L|--use-loader} }"""
MAP_USAGE = """Usage: bpftool map { show | list }   [MAP]
       bpftool map create     FILE type TYPE key KEY_SIZE value VALUE_SIZE \\
                                  entries MAX_ENTRIES name NAME [flags FLAGS] \\
                                  [inner_map MAP] [dev NAME]
       bpftool map dump       MAP
       bpftool map update     MAP [key DATA] [value VALUE] [UPDATE_FLAGS]
       bpftool map lookup     MAP [key DATA]
       bpftool map getnext    MAP [key DATA]
       bpftool map delete     MAP  key DATA
       bpftool map pin        MAP  FILE
       bpftool map event_pipe MAP [cpu N index M]
       bpftool map peek       MAP
       bpftool map push       MAP value VALUE
       bpftool map pop        MAP
       bpftool map enqueue    MAP value VALUE
       bpftool map dequeue    MAP
       bpftool map freeze     MAP
       bpftool map help

       MAP := { id MAP_ID | pinned FILE | name MAP_NAME }
       DATA := { [hex] BYTES }
       PROG := { id PROG_ID | pinned FILE | tag PROG_TAG | name PROG_NAME }
       VALUE := { DATA | MAP | PROG }
       UPDATE_FLAGS := { any | exist | noexist }
       TYPE := { hash | array | prog_array | perf_event_array | percpu_hash |
                 percpu_array | stack_trace | cgroup_array | lru_hash |
                 lru_percpu_hash | lpm_trie | array_of_maps | hash_of_maps |
                 devmap | devmap_hash | sockmap | cpumap | xskmap | sockhash |
                 cgroup_storage | reuseport_sockarray | percpu_cgroup_storage |
                 queue | stack | sk_storage | struct_ops | ringbuf | inode_storage |
                 task_storage | bloom_filter | user_ringbuf }
       OPTIONS := { {-j|--json} [{-p|--pretty}] | {-d|--debug} | {-l|--legacy} |
                    {-f|--bpffs} | {-n|--nomount} }"""
NET_USAGE = """Usage: bpftool net { show | list } [dev <devname>]
       bpftool net attach ATTACH_TYPE PROG dev <devname> [ overwrite ]
       bpftool net detach ATTACH_TYPE dev <devname>
       bpftool net help

       PROG := { id PROG_ID | pinned FILE | tag PROG_TAG | name PROG_NAME }
       ATTACH_TYPE := { xdp | xdpgeneric | xdpdrv | xdpoffload }
       OPTIONS := { {-j|--json} [{-p|--pretty}] | {-d|--debug} | {-l|--legacy} }

Note: Only xdp and tc attachments are supported now.
      For progs attached to cgroups, use "bpftool cgroup"
      to dump program attachments. For program types
      sk_{filter,skb,msg,reuseport} and lwt/seg6, please
      consult iproute2."""

# main.c's option table: short and long names; the ones the mock models
OPTIONS = {"-j": "json", "--json": "json", "-p": "pretty", "--pretty": "pretty", "-d": "debug",
           "--debug": "debug", "-h": "help", "--help": "help", "-V": "version", "--version": "version"}
UNMODELLED_OPTIONS = {"-l": "--legacy", "-f": "--bpffs", "-n": "--nomount", "-m": "--mapcompat",
                      "-L": "--use-loader", "-B": "--base-btf"}
# cmd_select() tables, in bpftool's order: the first command a token is a prefix of wins
OBJECTS = ("help", "batch", "prog", "map", "link", "cgroup", "perf", "net", "feature", "btf", "gen",
           "struct_ops", "iter", "version")
PROG_COMMANDS = ("show", "list", "help", "dump", "pin", "pinmaps", "load", "loadall", "attach", "detach",
                 "tracelog", "run", "profile")
MAP_COMMANDS = ("show", "list", "help", "dump", "update", "lookup", "getnext", "delete", "pin", "event_pipe",
                "create", "peek", "push", "enqueue", "pop", "dequeue", "freeze")
NET_COMMANDS = ("show", "list", "attach", "detach", "help")


class JsonWriter:
    """json_writer.c: a streaming writer; `pretty` adds newlines and 4-space indents
    only where jsonw_eol() runs (before names and closing brackets)."""

    def __init__(self, pretty: bool = False) -> None:
        self.out: list[str] = []
        self.depth = 0
        self.pretty = pretty
        self.sep = ""

    def _eol(self) -> None:
        if self.pretty:
            self.out.append("\n" + "    " * self.depth)

    def _eor(self) -> None:
        if self.sep:
            self.out.append(self.sep)
        self.sep = ","

    @staticmethod
    def quote(text: str) -> str:
        """jsonw_puts(), with its escapes (a backslash comes out as \\n, as there)."""
        escapes = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f", "\b": "\\b", "\\": "\\n",
                   '"': '\\"', "'": "\\'"}
        return '"' + "".join(escapes.get(c, c) for c in text) + '"'

    def _begin(self, c: str) -> None:
        self._eor()
        self.out.append(c)
        self.depth += 1
        self.sep = ""

    def _end(self, c: str) -> None:
        self.depth -= 1
        if self.sep:
            self._eol()
        self.out.append(c)
        self.sep = ","

    def start_object(self) -> None:
        self._begin("{")

    def end_object(self) -> None:
        self._end("}")

    def start_array(self) -> None:
        self._begin("[")

    def end_array(self) -> None:
        self._end("]")

    def name(self, name: str) -> None:
        self._eor()
        self._eol()
        self.sep = ""
        self.out.append(self.quote(name) + (": " if self.pretty else ":"))

    def raw(self, text: str) -> None:
        """jsonw_printf(): a value as printf formats it."""
        self._eor()
        self.out.append(text)

    def string(self, value: str) -> None:
        self._eor()
        self.out.append(self.quote(value))

    def field(self, name: str, value: int | bool | str | None) -> None:
        self.name(name)
        if value is None:
            self.raw("null")
        elif isinstance(value, bool):
            self.raw("true" if value else "false")
        elif isinstance(value, str):
            self.string(value)
        else:
            self.raw(str(value))

    def hex_data(self, data: bytes) -> None:
        """print_hex_data_json()."""
        self.start_array()
        for byte in data:
            self.raw(f'"0x{byte:02x}"')
        self.end_array()

    def text(self) -> str:
        """What jsonw_destroy() leaves on stdout: the document and a newline."""
        return "".join(self.out) + "\n"


class BtfDumper:
    """btf_dumper.c: a value as its BTF type describes it, into a JsonWriter;
    `plain` is bpftool's plain-text mode (pointers as %p, chars as 0x..)."""

    def __init__(self, btf: Btf, writer: JsonWriter, plain: bool) -> None:
        self.btf, self.jw, self.plain = btf, writer, plain

    def dump(self, type_id: int, data: bytes, bit_offset: int = 0) -> None:
        t = self.btf.types[type_id]
        kind = t.kind
        if kind == KIND_INT:
            self._int(t.extra[0], bit_offset, data)
        elif kind in (KIND_STRUCT, KIND_UNION):
            self._struct(t, data)
        elif kind == KIND_ARRAY:
            self._array(t, data)
        elif kind in (KIND_ENUM, KIND_ENUM64):
            self._enum(t, data)
        elif kind == KIND_PTR:
            value = int.from_bytes(data[:8], "little")
            self.jw.raw((hex(value) if value else "(nil)") if self.plain else str(value))
        elif kind == KIND_FWD:
            self.jw.raw("(fwd-kind-invalid)")
        elif kind in (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG):
            self.dump(self.btf.resolve(type_id).id, data, bit_offset)
        elif kind == KIND_VAR:
            self.jw.start_object()
            self.jw.name(t.name)
            self.dump(t.size_or_type, data, bit_offset)
            self.jw.end_object()
        elif kind == KIND_DATASEC:
            self.jw.start_object()
            self.jw.name(t.name)
            self.jw.start_array()
            for var_type, offset, _size in t.extra:
                self.dump(var_type, data[offset:])
            self.jw.end_array()
            self.jw.end_object()
        else:
            self.jw.raw("(unsupported-kind")

    def _int(self, int_data: int, bit_offset: int, data: bytes) -> None:
        encoding, offset, bits = (int_data >> 24) & 0x0F, (int_data >> 16) & 0xFF, int_data & 0xFF
        if bit_offset or offset or bits % 8:
            self._bitfield(bits, bit_offset + offset, data)
        elif bits == 128:
            self._int128(int.from_bytes(data[:16], "little"))
        elif encoding in (0, 1) and bits not in (8, 16, 32, 64):
            self._bitfield(bits, 0, data)
        elif encoding == 0:
            self.jw.raw(str(int.from_bytes(data[:bits // 8], "little")))
        elif encoding == 1:
            self.jw.raw(str(int.from_bytes(data[:bits // 8], "little", signed=True)))
        elif encoding == 2:
            char = data[0]
            if 0x20 <= char < 0x7F:
                self.jw.raw(f'"{chr(char)}"')
            else:
                self.jw.raw(f"0x{char:x}" if self.plain else f'"\\u00{char:02x}"')
        else:
            self.jw.raw("true" if int.from_bytes(data[:4], "little") else "false")

    def _bitfield(self, nr_bits: int, bit_offset: int, data: bytes) -> None:
        data = data[bit_offset // 8:]
        bit_offset %= 8
        nbytes = (bit_offset + nr_bits + 7) // 8
        value = int.from_bytes(data[:nbytes], "little") >> bit_offset
        self._int128(value & ((1 << nr_bits) - 1))

    def _int128(self, value: int) -> None:
        self.jw.raw(f"{value:#x}" if self.plain else f'"{value:#x}"')

    def _struct(self, t, data: bytes) -> None:
        self.jw.start_object()
        for member, member_type, offset in t.extra:
            bitfield_size = offset >> 24 if t.kind_flag else 0
            bit_offset = offset & 0xFFFFFF if t.kind_flag else offset
            self.jw.name(member)
            field = data[bit_offset // 8:]
            if bitfield_size:
                self._bitfield(bitfield_size, bit_offset % 8, field)
            else:
                self.dump(member_type, field, bit_offset % 8)
        self.jw.end_object()

    def _array(self, t, data: bytes) -> None:
        elem_type, _index_type, nelems = t.extra
        if self._is_str(elem_type, nelems, data):
            self.jw.string(data[:data.index(0)].decode())
            return
        size = self.btf.size_of(elem_type)
        self.jw.start_array()
        for i in range(nelems):
            self.dump(elem_type, data[i * size:])
        self.jw.end_array()

    def _is_str(self, elem_type: int, nelems: int, data: bytes) -> bool:
        """is_str_array(): char elements (typedefs do not count), NUL-terminated, printable."""
        elem = self.btf.types[elem_type]
        while elem is not None and elem.kind in (KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG):
            elem = self.btf.types[elem.size_or_type]
        if not nelems or elem is None or elem.kind != KIND_INT or elem.size_or_type != 1:
            return False
        if (elem.extra[0] >> 24) & 0x0F != 2 and elem.name != "char":
            return False
        for byte in data[:nelems]:
            if not byte:
                return True
            if byte <= 0x1F or byte >= 0x7F:
                return False
        return False

    def _enum(self, t, data: bytes) -> None:
        value = int.from_bytes(data[:t.size_or_type], "little", signed=t.kind == KIND_ENUM)
        name = next((n for n, v in t.extra if v == value), None)
        if name is not None:
            self.jw.string(name)
        else:
            self.jw.raw(str(value))


def _is_prefix(token: str, word: str) -> bool:
    return word.startswith(token)


def _select(token: str, commands: tuple[str, ...]) -> str | None:
    return next((command for command in commands if _is_prefix(token, command)), None)


def _value_fields(wtr: JsonWriter, bpf_map: BpfMap, value, write) -> None:
    """`"value": V`, or for a per-CPU map `"values": [{"cpu": N, "value": V}, ...]`,
    each V written by `write` (raw bytes or BTF-formatted)."""
    if not bpf_map.percpu:
        wtr.name("value")
        write(value)
        return
    wtr.name("values")
    wtr.start_array()
    for cpu, item in enumerate(value):
        wtr.start_object()
        wtr.field("cpu", cpu)
        wtr.name("value")
        write(item)
        wtr.end_object()
    wtr.end_array()


def _hex(data: bytes, sep: str = " ") -> str:
    """fprint_hex()."""
    return sep.join(f"{byte:02x}" for byte in data)


class Bpftool:
    """One invocation: options, the object's command, and what it prints."""

    def __init__(self, net, json_output: bool, pretty: bool) -> None:
        self.net = net
        self.rt = net.bpf
        self.json = json_output
        self.jw = JsonWriter(pretty) if json_output else None
        self.lines: list[str] = []  # plain stdout

    # output and errors ---------------------------------------------------------
    def stdout(self) -> str:
        return self.jw.text() if self.jw is not None else "".join(self.lines)

    def error(self, message: str, returncode: int = 255) -> ToolError:
        """p_err(): "Error: ..." on stderr, or {"error": ...} in the JSON output."""
        if self.jw is None:
            return ToolError(f"Error: {message}", returncode)
        self.jw.start_object()
        self.jw.field("error", message)
        self.jw.end_object()
        return self.failure(returncode)

    def failure(self, returncode: int) -> ToolError:
        """A failing exit with what bpftool printed so far (as the lab reports it)."""
        out = self.stdout().strip()
        return ToolError(out or f"exit status {returncode}", returncode)

    @staticmethod
    def usage(text: str) -> ToolError:
        return ToolError(text, 255)

    def errno_error(self, what: str, exc: MapError) -> ToolError:
        """A failed bpf() call: the errno's text, and -errno as the exit status."""
        return self.error(f"{what}: {os.strerror(exc.errno)}", -exc.errno & 0xFF)

    # objects ----------------------------------------------------------------------
    def programs(self) -> list:
        return [] if self.rt is None else [p for _, p in sorted(self.rt.progs.items())]

    def maps(self) -> list[BpfMap]:
        return [] if self.rt is None else [m for _, m in sorted(self.rt.maps.items())]

    def _parse_handle(self, args: list[str], kinds: str) -> list:
        """map_parse_fds() / prog_parse_fds(): `id N`, `name NAME` (every match),
        `tag TAG` (programs); consumes two tokens."""
        is_map = kinds == "map"
        keyword, value = args[0], args[1]
        del args[:2]
        if _is_prefix(keyword, "id"):
            ident = c_uint(value)
            if ident is None:
                raise self.error(f"can't parse {value} as ID")
            table = (self.rt.maps if is_map else self.rt.progs) if self.rt is not None else {}
            found = table.get(ident)
            if found is None:
                raise self.error(f"get {'map ' if is_map else ''}by id ({ident}): No such file or directory")
            return [found]
        if not is_map and _is_prefix(keyword, "tag"):
            try:
                tag = bytes.fromhex(value)
            except ValueError:
                tag = b""
            if len(tag) != 8:
                raise self.error("can't parse tag")
            return [p for p in self.programs() if bpf_prog_calc_tag(p) == tag.hex()]
        if _is_prefix(keyword, "name"):
            if is_map and len(value) > BPF_OBJ_NAME_LEN - 1:
                raise self.error("can't parse name")
            if is_map:
                return [m for m in self.maps() if m.name[:BPF_OBJ_NAME_LEN - 1] == value]
            return [p for p in self.programs() if _prog_name(p) == value]
        if _is_prefix(keyword, "pinned"):
            raise not_modelled("bpftool pinned objects (bpffs)")
        expected = "'id', 'name' or 'pinned'" if is_map else "'id', 'tag', 'name' or 'pinned'"
        raise self.error(f"expected {expected}, got: '{keyword}'?")

    def _matching(self, args: list[str], kind: str) -> list:
        """map_parse_fds() / prog_parse_fds() for commands taking every match:
        none is exit status 255."""
        found = self._parse_handle(args, kind)
        if not found:
            raise self.failure(255)
        return found

    def _the_one(self, args: list[str], kind: str):
        """map_parse_fd() / prog_parse_fd(): exactly one match."""
        found = self._parse_handle(args, kind)
        if len(found) > 1:
            raise self.error(f"several {'maps' if kind == 'map' else 'programs'} match this handle")
        if not found:
            raise self.failure(255)
        return found[0]

    def _one_map(self, args: list[str]) -> BpfMap:
        if len(args) < 2:
            raise self.usage(MAP_USAGE)
        return self._the_one(args, "map")

    def _listed(self, rest: list[str], kind: str, everything: list) -> tuple[list, bool]:
        """What `bpftool prog|map show [HANDLE]` shows, and whether that is all of them."""
        if len(rest) == 2:
            return self._matching(rest, kind), False
        if rest:
            raise self.error(f"what is '{rest[0]}'?")
        return everything, True

    @contextmanager
    def _json_array(self, several: bool):
        """In JSON several objects are an array; one named by its handle stands alone."""
        if self.jw is not None and several:
            self.jw.start_array()
        yield
        if self.jw is not None and several:
            self.jw.end_array()

    # prog ---------------------------------------------------------------------------
    def prog(self, args: list[str]) -> None:
        rest = self._show_args(args, "prog", PROG_COMMANDS, PROG_USAGE)
        if rest is None:
            return
        progs, everything = self._listed(rest, "prog", self.programs())
        with self._json_array(everything or len(progs) > 1):
            for prog in progs:
                self._show_prog(prog)

    def _show_prog(self, prog) -> None:
        type_name = PROG_TYPE_NAMES.get(prog.type, prog.type)
        tag = bpf_prog_calc_tag(prog)
        xlated = 8 * len(loaded_insns(prog))
        memlock = (BPF_PROG_STRUCT_SIZE + xlated + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE
        gpl = prog.license in ("GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL",
                               "Dual MPL/GPL")
        run_time_ns = prog.run_cnt * MOCK_RUN_TIME_NS
        loaded_at = MOCK_BOOT_TIME + int(prog.loaded_at)
        map_ids = [m.fd for m in _used_maps(prog)]
        jw = self.jw
        if jw is not None:
            jw.start_object()
            jw.field("id", prog.id)
            jw.field("type", type_name)
            jw.field("name", _prog_name(prog))
            jw.field("tag", tag)
            jw.field("gpl_compatible", gpl)
            if run_time_ns:
                jw.field("run_time_ns", run_time_ns)
                jw.field("run_cnt", prog.run_cnt)
            jw.field("loaded_at", loaded_at)
            jw.field("uid", 0)
            jw.field("bytes_xlated", xlated)
            jw.field("jited", False)
            jw.field("bytes_memlock", memlock)
            if map_ids:
                jw.name("map_ids")
                jw.start_array()
                for map_id in map_ids:
                    jw.raw(str(map_id))
                jw.end_array()
            if prog.btf_id:
                jw.field("btf_id", prog.btf_id)
            jw.end_object()
            return
        stats = f" run_time_ns {run_time_ns} run_cnt {prog.run_cnt}" if run_time_ns else ""
        when = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(loaded_at))
        text = (f"{prog.id}: {type_name}  name {_prog_name(prog)}  tag {tag}"
                f"{'  gpl' if gpl else ''}{stats}\n\tloaded_at {when}  uid 0\n"
                f"\txlated {xlated}B  not jited  memlock {memlock}B")
        if map_ids:
            text += "  map_ids " + ",".join(map(str, map_ids))
        if prog.btf_id:
            text += f"\n\tbtf_id {prog.btf_id}"
        self.lines.append(text + "\n")

    # map ----------------------------------------------------------------------------
    def map(self, args: list[str]) -> None:
        command = _select(args[0], MAP_COMMANDS) if args else "show"
        if command is None:
            raise self.usage(MAP_USAGE)
        rest = args[1:]
        if command == "help":
            self._help()
        elif command in ("show", "list"):
            self._map_show(rest)
        elif command == "dump":
            if len(rest) != 2:
                raise self.usage(MAP_USAGE)
            self._map_dump(self._matching(rest, "map"))
        elif command in ("update", "lookup", "getnext", "delete"):
            getattr(self, f"_map_{command}")(rest)
        else:
            raise not_modelled(f"bpftool map {command}")

    def _map_show(self, rest: list[str]) -> None:
        maps, everything = self._listed(rest, "map", self.maps())
        btf_id = 0
        with self._json_array(everything or len(maps) > 1):
            for bpf_map in maps:
                # listing them all, do_show() reuses one struct bpf_map_info and the kernel
                # does not clear btf_id for a map without BTF: it shows the previous one's
                btf_id = (bpf_map.btf_id or btf_id) if everything else bpf_map.btf_id
                self._show_map(bpf_map, btf_id)

    def _show_map(self, bpf_map: BpfMap, btf_id: int) -> None:
        memlock = bpf_map.memory_usage()
        frozen = int(bpf_map.frozen)
        jw = self.jw
        if jw is not None:
            jw.start_object()
            jw.field("id", bpf_map.fd)
            jw.field("type", bpf_map.type_name)
            if bpf_map.name:
                jw.field("name", bpf_map.name[:BPF_OBJ_NAME_LEN - 1])
            jw.field("flags", bpf_map.map_flags)
            jw.field("bytes_key", bpf_map.key_size)
            jw.field("bytes_value", bpf_map.value_size)
            jw.field("max_entries", bpf_map.max_entries)
            jw.field("bytes_memlock", memlock)
            jw.field("frozen", frozen)
            if btf_id:
                jw.field("btf_id", btf_id)
            jw.end_object()
            return
        text = self._map_header(bpf_map) + (f"\tkey {bpf_map.key_size}B  value {bpf_map.value_size}B  "
                                            f"max_entries {bpf_map.max_entries}  memlock {memlock}B")
        if btf_id or frozen:
            text += "\n\t"
        if btf_id:
            text += f"btf_id {btf_id}"
        if frozen:
            text += "  frozen" if btf_id else "frozen"
        self.lines.append(text + "\n")

    @staticmethod
    def _map_header(bpf_map: BpfMap) -> str:
        name = f"name {bpf_map.name[:BPF_OBJ_NAME_LEN - 1]}  " if bpf_map.name else ""
        return f"{bpf_map.fd}: {bpf_map.type_name}  {name}flags 0x{bpf_map.map_flags:x}\n"

    def _map_dump(self, maps: list[BpfMap]) -> None:
        several = len(maps) > 1
        btf_writer = None
        if self.jw is None and all(m.btf_id for m in maps):
            btf_writer = JsonWriter(pretty=True)
        wtr = self.jw if self.jw is not None else btf_writer
        if wtr is not None and several:
            wtr.start_array()
        for i, bpf_map in enumerate(maps):
            self._dump_one(bpf_map, wtr, several)
            if wtr is None and i != len(maps) - 1:
                self.lines.append("\n")
        if wtr is not None and several:
            wtr.end_array()
        if btf_writer is not None:
            self.lines.append(btf_writer.text())

    def _dump_one(self, bpf_map: BpfMap, wtr: JsonWriter | None, show_header: bool) -> None:
        """map_dump(): every key get_next_key yields, looked up."""
        if wtr is not None:
            if show_header:
                wtr.start_object()
                wtr.field("id", bpf_map.fd)
                wtr.field("type", bpf_map.type_name)
                if bpf_map.name:
                    wtr.field("name", bpf_map.name[:BPF_OBJ_NAME_LEN - 1])
                wtr.name("flags")
                wtr.raw(str(bpf_map.map_flags))
                wtr.name("elements")
            wtr.start_array()
        elif show_header:
            self.lines.append(self._map_header(bpf_map))
        count = 0
        for key in bpf_map.keys():
            try:
                value = bpf_map.lookup(key)
                err = 0 if value is not None else ENOENT
            except MapError as exc:
                value, err = None, exc.errno
            if err:
                self._entry_error(bpf_map, key, err)
                continue
            count += 1
            if self.jw is not None:
                self._entry_json(bpf_map, key, value)
            elif wtr is not None and bpf_map.btf_value_type_id:
                self._entry_btf(bpf_map, key, value, wtr, plain=True)
            else:
                self._entry_plain(bpf_map, key, value)
        if wtr is not None:
            wtr.end_array()
            if show_header:
                wtr.end_object()
        else:
            self.lines.append(f"Found {count} element{'s' if count != 1 else ''}\n")

    def _entry_error(self, bpf_map: BpfMap, key: bytes, err: int) -> None:
        """print_entry_error(): an array-like map's empty slot, or a failed lookup."""
        if bpf_map.map_type == BPF_MAP_TYPE_PROG_ARRAY and err == ENOENT:
            return
        if self.jw is not None:
            self.jw.start_object()
            self.jw.name("key")
            self.jw.hex_data(key)
            self.jw.name("value")
            self.jw.start_object()
            self.jw.field("error", os.strerror(err))
            self.jw.end_object()
            self.jw.end_object()
            return
        message = "<no entry>" if err == ENOENT else os.strerror(err)
        break_names = bpf_map.key_size > 16 or len(message) > 16
        single_line = bpf_map.key_size + len(message) <= 24 and not break_names
        sep = "\n" if break_names else " "
        self.lines.append(f"key:{sep}{_hex(key)}{'  ' if single_line else chr(10)}value:{sep}{message}\n")

    def _values(self, bpf_map: BpfMap, value) -> list[bytes]:
        return list(value) if bpf_map.percpu else [value]

    def _entry_json(self, bpf_map: BpfMap, key: bytes, value) -> None:
        """print_entry_json()."""
        jw = self.jw
        jw.start_object()
        jw.name("key")
        jw.hex_data(key)
        _value_fields(jw, bpf_map, value, jw.hex_data)
        if bpf_map.btf_value_type_id:
            jw.name("formatted")
            self._entry_btf(bpf_map, key, value, jw, plain=False)
        jw.end_object()

    @staticmethod
    def _entry_btf(bpf_map: BpfMap, key: bytes, value, wtr: JsonWriter, plain: bool) -> None:
        """do_dump_btf()."""
        dumper = BtfDumper(bpf_map.btf, wtr, plain)
        wtr.start_object()
        if bpf_map.btf_key_type_id:
            wtr.name("key")
            dumper.dump(bpf_map.btf_key_type_id, key)
        _value_fields(wtr, bpf_map, value, lambda item: dumper.dump(bpf_map.btf_value_type_id, item))
        wtr.end_object()

    def _entry_plain(self, bpf_map: BpfMap, key: bytes, value) -> None:
        """print_entry_plain()."""
        key_size, value_size = bpf_map.key_size, bpf_map.value_size
        if not bpf_map.percpu:
            break_names = key_size > 16 or value_size > 16
            single_line = key_size + value_size <= 24 and not break_names
            sep = "\n" if break_names else " "
            text = ""
            if key_size:
                text += f"key:{sep}{_hex(key)}" + ("  " if single_line else "\n")
            if value_size:
                text += f"value:{sep}{_hex(value)}"
            self.lines.append(text + "\n")
            return
        text = f"key:\n{_hex(key)}\n" if key_size else ""
        for cpu, item in enumerate(value):
            text += f"value (CPU {cpu:02d}):{chr(10) if value_size > 16 else ' '}{_hex(item)}\n"
        self.lines.append(text)

    def _print_key_value(self, bpf_map: BpfMap, key: bytes, value) -> None:
        """print_key_value(): a looked-up element."""
        if self.jw is not None:
            self._entry_json(bpf_map, key, value)
        elif bpf_map.btf_value_type_id:
            writer = JsonWriter(pretty=True)
            self._entry_btf(bpf_map, key, value, writer, plain=True)
            self.lines.append(writer.text())
        else:
            self._entry_plain(bpf_map, key, value)

    def _parse_bytes(self, args: list[str], name: str, n: int) -> bytes:
        """parse_bytes(): n bytes, each strtoul(base 0, or 16 after `hex`) truncated to a byte."""
        base = 0
        if args and _is_prefix(args[0], "hex"):
            base = 16
            del args[0]
        out = bytearray()
        while len(out) < n and args:
            token = args.pop(0)
            number = c_uint(token, base) if token else 0
            if number is None:
                raise self.error(f"error parsing byte: {token}")
            out.append(number & 0xFF)
        if len(out) != n:
            raise self.error(f"{name} expected {n} bytes got {len(out)}")
        return bytes(out)

    def _parse_elem(self, args: list[str], bpf_map: BpfMap, want_key: bool, want_value: bool,
                    flags: list[int] | None) -> tuple[bytes | None, bytes | None]:
        """parse_elem(): `key DATA`, `value VALUE` and update flags in any order."""
        key = value = None
        value_size = bpf_map.value_size if want_value else 0
        while True:
            if not args:
                if (key is not None or not want_key) and (value is not None or not want_value):
                    return key, value
                raise self.error(f"did not find {'key' if want_key and key is None else 'value'}")
            token = args[0]
            if _is_prefix(token, "key"):
                if not want_key or key is not None:
                    raise self.error("duplicate key" if bpf_map.key_size else "unnecessary key")
                del args[0]
                key = self._parse_bytes(args, "key", bpf_map.key_size)
            elif _is_prefix(token, "value"):
                if not want_value or value is not None:
                    raise self.error("duplicate value" if value_size else "unnecessary value")
                del args[0]
                value = self._prog_array_value(args) if bpf_map.map_type == BPF_MAP_TYPE_PROG_ARRAY \
                    else self._parse_bytes(args, "value", value_size)
            elif any(_is_prefix(token, word) for word in ("any", "noexist", "exist")):
                if flags is None or flags[1]:
                    raise self.error(f"flags specified multiple times: {token}")
                del args[0]
                flags[:] = [BPF_ANY if _is_prefix(token, "any") else BPF_NOEXIST if _is_prefix(token, "noexist")
                            else BPF_EXIST, 1]
            else:
                raise self.error(f"expected key or value, got: {token}")

    def _prog_array_value(self, args: list[str]) -> bytes:
        """A prog_array's value is a program (PROG), stored as its id."""
        if len(args) < 2:
            raise self.error("not enough value arguments for map of progs")
        return struct.pack("<I", self._the_one(args, "prog").id)

    def _map_update(self, rest: list[str]) -> None:
        if len(rest) < 2:
            raise self.usage(MAP_USAGE)
        bpf_map = self._one_map(rest)
        flags = [BPF_ANY, 0]
        key, value = self._parse_elem(rest, bpf_map, True, True, flags)
        values = [value] * self.rt.ncpus if bpf_map.percpu else value
        try:
            bpf_map.update_elem(key, values, flags[0])
        except MapError as exc:
            raise self.errno_error("update failed", exc) from None
        if self.jw is not None:
            self.jw.raw("null")

    def _map_lookup(self, rest: list[str]) -> None:
        if len(rest) < 2:
            raise self.usage(MAP_USAGE)
        bpf_map = self._one_map(rest)
        key, _ = self._parse_elem(rest, bpf_map, True, False, None)
        try:
            value = bpf_map.lookup(key)
        except MapError as exc:
            raise self.errno_error("lookup failed", exc) from None
        if value is None:
            if self.jw is not None:
                self.jw.raw("null")
            else:
                self.lines.append(f"key:\n{_hex(key)}\n\nNot found\n")
            raise self.failure(-ENOENT & 0xFF)
        self._print_key_value(bpf_map, key, value)

    def _map_getnext(self, rest: list[str]) -> None:
        if len(rest) < 2:
            raise self.usage(MAP_USAGE)
        bpf_map = self._one_map(rest)
        key = self._parse_elem(rest, bpf_map, True, False, None)[0] if rest else None
        next_key = bpf_map.get_next_key(key)
        if next_key is None:
            raise self.errno_error("can't get next key", MapError(ENOENT, "")) from None
        if self.jw is not None:
            self.jw.start_object()
            if key is not None:
                self.jw.name("key")
                self.jw.hex_data(key)
            else:
                self.jw.field("key", None)
            self.jw.name("next_key")
            self.jw.hex_data(next_key)
            self.jw.end_object()
            return
        text = f"key:\n{_hex(key)}\n" if key is not None else "key: None\n"
        self.lines.append(text + f"next key:\n{_hex(next_key)}\n")

    def _map_delete(self, rest: list[str]) -> None:
        if len(rest) < 2:
            raise self.usage(MAP_USAGE)
        bpf_map = self._one_map(rest)
        key, _ = self._parse_elem(rest, bpf_map, True, False, None)
        try:
            bpf_map.delete_elem(key)
        except MapError as exc:
            raise self.errno_error("delete failed", exc) from None
        if self.jw is not None:
            self.jw.raw("null")

    # net ----------------------------------------------------------------------------
    def net_cmd(self, args: list[str]) -> None:
        rest = self._show_args(args, "net", NET_COMMANDS, NET_USAGE)
        if rest is None:
            return
        devices = sorted(self.net.devices.values(), key=lambda d: d.ifindex)
        if rest:
            if len(rest) != 2 or not _is_prefix(rest[0], "dev"):
                raise self.usage(NET_USAGE)
            devices = [d for d in devices if d.name == rest[1]]
            if not devices:
                raise self.error(f"invalid devname {rest[1]}")
        attached = [(d, prog, mode) for d in devices
                    for prog, mode in ((d.xdp_prog, "driver"), (getattr(d, "xdp_generic_prog", None), "generic"))
                    if prog is not None]
        # netlink_get_filter() per device: clsact ingress, then egress, each in tc's filter order
        filters = [(d, f"clsact/{direction}", prog) for d in devices if d.clsact is not None
                   for direction in ("ingress", "egress")
                   for tp in d.clsact.chain(direction) for prog in tp.filters]
        jw = self.jw
        if jw is None:
            xdp = "".join(f"{d.name}({d.ifindex}) {mode} id {prog.id}\n" for d, prog, mode in attached)
            tc = "".join(f"{d.name}({d.ifindex}) {kind} {f.bpf_name} id {f.prog.id}\n" for d, kind, f in filters)
            self.lines.append(f"xdp:\n{xdp}\ntc:\n{tc}\nflow_dissector:\n\n")
            return
        sections = (
            ("xdp", [(("devname", d.name), ("ifindex", d.ifindex), ("mode", mode), ("id", prog.id))
                     for d, prog, mode in attached]),
            ("tc", [(("devname", d.name), ("ifindex", d.ifindex), ("kind", kind), ("name", f.bpf_name),
                     ("id", f.prog.id)) for d, kind, f in filters]),
            ("flow_dissector", []))
        jw.start_array()
        jw.start_object()
        for section, rows in sections:
            jw.name(section)
            jw.start_array()
            for row in rows:
                jw.start_object()
                for key, value in row:
                    jw.field(key, value)
                jw.end_object()
            jw.end_array()
        jw.end_object()
        jw.end_array()

    def _show_args(self, args: list[str], obj: str, commands, usage: str) -> list[str] | None:
        """do_prog()/do_net(): the arguments after `show`/`list` (the default
        command), or None once `help` is answered; other commands are not modelled."""
        command = _select(args[0], commands) if args else "show"
        if command is None:
            raise self.usage(usage)
        if command == "help":
            self._help()
            return None
        if command not in ("show", "list"):
            raise not_modelled(f"bpftool {obj} {command}")
        return args[1:]

    def _help(self) -> None:
        """Usage goes to stderr (exit 0); with -j, stdout says null."""
        if self.jw is not None:
            self.jw.raw("null")


def _prog_name(prog) -> str:
    """The kernel keeps 15 characters of a name; bpftool prints the whole
    function name from the program's BTF when there is one."""
    return prog.name if prog.btf_id else prog.name[:BPF_OBJ_NAME_LEN - 1]


def _used_maps(prog) -> list[BpfMap]:
    """prog->aux->used_maps: the maps the program's instructions load, first use first."""
    maps: list[BpfMap] = []
    sections = sorted(prog._info.reachable, key=lambda name: name != prog.section)
    for name in sections:
        relocs = prog._sections[name].relocs
        for pc in sorted(prog._info.reachable[name]):
            reloc = relocs.get(pc)
            if isinstance(reloc, MapReloc) and reloc.map not in maps:
                maps.append(reloc.map)
    return maps


def main(net, argv: list[str], stdin: str | None = None) -> str:
    """getopt_long() permutes: options may come anywhere; `--` ends them."""
    options, words = set(), []
    tokens = argv[1:]
    for i, token in enumerate(tokens):
        if token == "--":
            words += tokens[i + 1:]
            break
        if not token.startswith("-") or token == "-":
            words.append(token)
            continue
        shorts = [token] if token.startswith("--") else [f"-{c}" for c in token[1:]]
        for option in shorts:
            if option in OPTIONS:
                options.add(OPTIONS[option])
            elif option in UNMODELLED_OPTIONS or option in UNMODELLED_OPTIONS.values():
                raise not_modelled(f"bpftool option {option}")
            else:
                raise ToolError(f"Error: unrecognized option '{token}'\n{MAIN_USAGE}", 255)
    json_output = bool(options & {"json", "pretty"})
    tool = Bpftool(net, json_output, pretty="pretty" in options)
    obj = _select(words[0], OBJECTS) if words else None
    if "version" in options or obj == "version":
        return (VERSION_JSON + "\n") if json_output else VERSION
    if "help" in options or obj == "help":
        tool._help()
        return tool.stdout() if json_output else ""
    if obj is None:
        raise ToolError(MAIN_USAGE, 255)
    handlers = {"prog": tool.prog, "map": tool.map, "net": tool.net_cmd}
    if obj not in handlers:
        raise not_modelled(f"bpftool {obj}")
    handlers[obj](words[1:])
    return tool.stdout()
