"""Builds the eBPF programs in `programs/` with clang, cached by content hash.

`build("xdp_drop_udp")` compiles programs/xdp_drop_udp.c to
programs/build/xdp_drop_udp.o with the same command the DUT side uses
(`clang -O2 -g -target bpf -I/usr/include/<arch>-linux-gnu`, libbpf-dev's
bpf_helpers.h) and returns its path. The object is rebuilt only when the
source, a header in programs/, the clang version or the flags change: the
hash of those is kept next to the object. Parallel test workers (pytest-xdist)
take a lock per object, so a program is compiled once however many workers
ask for it; the object is written to a temporary file and renamed into place.

A missing toolchain is `ToolchainMissing`, naming the Debian package to
install; a program that does not compile is `CompileError`, with clang's
output. The pytest plugin's `bpf_objects` fixture skips on the first and
fails on the second.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

PROGRAMS = Path(__file__).resolve().parent.parent / "programs"
BUILD = PROGRAMS / "build"
LIBBPF_HEADER = Path("/usr/include/bpf/bpf_helpers.h")
KERNEL_UAPI_HEADER = Path("/usr/include/linux/bpf.h")


class BpfBuildError(RuntimeError):
    """An eBPF program could not be built."""


class ToolchainMissing(BpfBuildError):
    """clang, or the headers the programs include, are not installed."""


class CompileError(BpfBuildError):
    """clang refused a program; the message carries its output."""


def _arch_include() -> str:
    return f"-I/usr/include/{platform.machine()}-linux-gnu"


def clang_flags() -> list[str]:
    return ["-O2", "-g", "-target", "bpf", _arch_include()]


@cache
def clang_version() -> str:
    """`clang --version`, once the toolchain is known to be complete (else ToolchainMissing)."""
    clang = shutil.which("clang")
    if clang is None:
        raise ToolchainMissing("clang not found: building the eBPF programs needs it "
                               "(Debian package clang: apt-get install clang)")
    for header, package in ((LIBBPF_HEADER, "libbpf-dev"), (KERNEL_UAPI_HEADER, "linux-libc-dev")):
        if not header.exists():
            raise ToolchainMissing(f"{header} not found: the eBPF programs include it "
                                   f"(Debian package {package}: apt-get install {package})")
    return subprocess.run([clang, "--version"], capture_output=True, text=True, check=True).stdout


def source_path(program: str | os.PathLike) -> Path:
    """programs/NAME.c for a bare name ("xdp_drop_udp" or "xdp_drop_udp.c"), else the path given."""
    path = Path(program)
    if path.parent == Path(".") and not path.exists():
        path = PROGRAMS / path.with_suffix(".c").name
    if not path.exists():
        raise BpfBuildError(f"no eBPF source {path}")
    return path


def _content_hash(source: Path) -> str:
    digest = hashlib.sha256()
    digest.update(clang_version().encode())
    digest.update(" ".join(clang_flags()).encode())
    digest.update(source.read_bytes())
    for header in sorted(source.parent.glob("*.h")):
        digest.update(header.name.encode() + header.read_bytes())
    return digest.hexdigest()


def build(program: str | os.PathLike) -> Path:
    """The object file for `program`, compiled unless an up-to-date one is cached."""
    source = source_path(program)
    key = _content_hash(source)
    BUILD.mkdir(parents=True, exist_ok=True)
    obj = BUILD / source.with_suffix(".o").name
    stamp = obj.with_suffix(".o.sha256")
    with open(obj.with_suffix(".o.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker compiling it: wait, then find it built
        if obj.exists() and stamp.exists() and stamp.read_text() == key:
            return obj
        with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
            tmp_obj = Path(tmp) / obj.name
            result = subprocess.run(["clang", *clang_flags(), "-c", str(source), "-o", str(tmp_obj)],
                                    capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise CompileError(f"clang failed on {source}:\n{result.stderr}")
            os.replace(tmp_obj, obj)
            tmp_stamp = Path(tmp) / stamp.name
            tmp_stamp.write_text(key)
            os.replace(tmp_stamp, stamp)
    return obj


def build_all() -> dict[str, Path]:
    """Every programs/*.c, by program name."""
    return {source.stem: build(source) for source in sorted(PROGRAMS.glob("*.c"))}


class Objects:
    """Built objects by program name (or source path), each built at most once:
    `objects["xdp_drop_udp"]` is programs/build/xdp_drop_udp.o."""

    def __init__(self) -> None:
        clang_version()
        self._built: dict[str, Path] = {}

    def __getitem__(self, program: str | os.PathLike) -> Path:
        key = os.fspath(program)
        if key not in self._built:
            self._built[key] = build(program)
        return self._built[key]
