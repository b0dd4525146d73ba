"""The host kernel's own verifier, where this process may load programs (root, bpf(2)).

`HostVerifier.verify_object()` does the same for a clang-built ELF object, as
the real loaders do it: bpftool's `prog loadall` (libbpf: maps created,
relocations applied, every program loaded) in a mount namespace of its own
with a private bpffs and tmpfs, so the pins and the object's copy vanish with
it whatever happens to this process. None when the kernel loads every
program, the verifier's log of the first it refuses otherwise. An object
libbpf itself cannot open or prepare (no verifier log: the legacy `maps`
section of iproute2's loader, a section type libbpf does not know) gets no
host verdict. The answers are kept per object digest.

`HostVerifier.verify()` hands bytecode to BPF_PROG_LOAD (kernel/bpf/syscall.c
bpf_prog_load, which runs bpf_check()) with a log buffer and closes the
program again: None when the kernel accepts it, the verifier's log when it
refuses. Maps the bytecode names by BPF_PSEUDO_MAP_FD are the mock's; the
host gets maps of the same type, sizes and flags for the load and the
immediates are rewritten to their fds. A BpfRuntime made with
`host_verifier=HostVerifier()` passes every raw program through it after the
mock's verifier, so a refusal shows the kernel's own log.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import struct
import subprocess

from harness.mockkernel.bpf.insn import BPF_PSEUDO_MAP_FD, LD_IMM64, decode, encode

BPF_MAP_CREATE, BPF_PROG_LOAD = 0, 5
PROG_TYPES = {"sched_cls": 3, "xdp": 6}  # enum bpf_prog_type
LOG_SIZE = 1 << 20
_SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine)
# run by `unshare --mount`: the object arrives on stdin, bpftool pins into a bpffs nobody else sees
LOADALL = ("mount -t tmpfs tmpfs /tmp && mount -t bpf bpf /sys/fs/bpf && cat > /tmp/object.o && "
           "exec bpftool prog loadall /tmp/object.o /sys/fs/bpf/object")
LOADALL_TIMEOUT = 120  # seconds: the verifier's 1M-instruction walks take a few
# libbpf's warning around a refused program's log (libbpf.c bpf_object_load_prog)
PROG_LOAD_LOG = re.compile(r"prog '([^']*)': -- BEGIN PROG LOAD LOG --\n(.*?)\n-- END PROG LOAD LOG --", re.S)


class HostVerifier:
    """BPF_PROG_LOAD on the host, for its verifier's decision and log."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self._objects: dict[bytes, str | None] = {}

    @classmethod
    def shared(cls) -> HostVerifier | None:
        """The process's host verifier where there may be one (root, bpf(2)), else None."""
        global _SHARED
        if _SHARED is None and cls.available():
            _SHARED = cls()
        return _SHARED

    @staticmethod
    def available() -> bool:
        """Whether this process may load programs: root, on an architecture whose bpf(2) number we know."""
        return _SYS_BPF is not None and os.geteuid() == 0

    def _bpf(self, cmd: int, attr: bytes) -> int:
        buf = ctypes.create_string_buffer(attr, len(attr))
        fd = self.libc.syscall(_SYS_BPF, cmd, buf, len(attr))
        if fd < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
        return fd

    def _map_like(self, bpf_map) -> int:
        attr = struct.pack("<IIIII", bpf_map.map_type, bpf_map.key_size, bpf_map.value_size,
                           bpf_map.max_entries, bpf_map.map_flags).ljust(72, b"\0")
        return self._bpf(BPF_MAP_CREATE, attr)

    def verify(self, bytecode: bytes, prog_type: str, map_by_fd=None) -> str | None:
        """None when the host's verifier accepts the program, else its log (the
        lines before the "processed N insns" summary)."""
        insns = decode(bytecode)
        fds: list[int] = []
        try:
            for pc, insn in enumerate(insns):
                if insn.code == LD_IMM64 and insn.src == BPF_PSEUDO_MAP_FD and map_by_fd is not None:
                    bpf_map = map_by_fd(insn.imm)
                    if bpf_map is not None:
                        fds.append(self._map_like(bpf_map))
                        insns[pc] = insn._replace(imm=fds[-1])
            return self._load(encode(insns), PROG_TYPES[prog_type])
        finally:
            for fd in fds:
                os.close(fd)

    def verify_object(self, data: bytes) -> str | None:
        """"" when the host kernel loads every program of the ELF object; None
        without a verdict (libbpf cannot prepare it, bpftool or unshare
        missing); else "prog 'NAME': " and the verifier's log of the program
        it refuses."""
        digest = hashlib.sha256(data).digest()
        if digest not in self._objects:
            self._objects[digest] = self._loadall(data)
        return self._objects[digest]

    @staticmethod
    def _loadall(data: bytes) -> str | None:
        if not (shutil.which("bpftool") and shutil.which("unshare")):
            return None
        try:
            result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", LOADALL],
                                    input=data, capture_output=True, timeout=LOADALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            return None
        if result.returncode == 0:
            return ""
        refused = PROG_LOAD_LOG.search(result.stderr.decode(errors="replace"))
        if refused is None:
            return None
        return f"prog '{refused[1]}': {_verdict_lines(refused[2])}"

    def _load(self, bytecode: bytes, prog_type: int) -> str | None:
        """As libbpf loads: without a log first (a long program's log would not fit
        and fail the load with ENOSPC), again with one when refused; the log
        rotates, so it ends with the refusal."""
        insns, license = ctypes.create_string_buffer(bytecode, len(bytecode)), ctypes.create_string_buffer(b"GPL")
        log = ctypes.create_string_buffer(LOG_SIZE)
        for log_level, log_size in ((0, 0), (1, LOG_SIZE)):
            attr = struct.pack("<IIQQIIQ", prog_type, len(bytecode) // 8, ctypes.addressof(insns),
                               ctypes.addressof(license), log_level, log_size,
                               ctypes.addressof(log) if log_size else 0).ljust(128, b"\0")
            try:
                fd = self._bpf(BPF_PROG_LOAD, attr)
            except OSError:
                continue
            os.close(fd)
            return None
        return _verdict_lines(log.value.decode(errors="replace"))


def _verdict_lines(log: str) -> str:
    """The log without what follows the refusal's message: the closing
    statistics ("processed N insns ...") and an infinite loop's two states."""
    lines = log.rstrip("\n").split("\n")
    while lines and lines[-1].startswith(("processed ", "verification time", "cur state:", "old state:")):
        lines.pop()
    return "\n".join(lines)


_SHARED: HostVerifier | None = None
