"""Builds the eBPF programs in `programs/` with clang, cached by content hash.

`build("xdp_drop_udp")` compiles programs/xdp_drop_udp.c to
programs/build/xdp_drop_udp.o with the same command the DUT side uses
(`clang -O2 -g -target bpf -I/usr/include/<arch>-linux-gnu`, libbpf-dev's
bpf_helpers.h) and returns its path. The object is rebuilt only when the
source, a header in programs/, the clang version or the flags change: the
hash of those is kept next to the object. Writes go through a temporary file
and a rename, so parallel test workers can build the same program.
"""
from __future__ import annotations

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
INSTALL_HINT = "apt-get install clang llvm libbpf-dev"
LIBBPF_HEADER = Path("/usr/include/bpf/bpf_helpers.h")


class BpfBuildError(RuntimeError):
    """clang or libbpf-dev is missing, or a program does not compile."""


def _arch_include() -> str:
    return f"-I/usr/include/{platform.machine()}-linux-gnu"


def clang_flags() -> list[str]:
    return ["-O2", "-g", "-target", "bpf", _arch_include()]


@cache
def clang_version() -> str:
    clang = shutil.which("clang")
    if clang is None:
        raise BpfBuildError(f"clang not found: eBPF programs need it ({INSTALL_HINT})")
    if not LIBBPF_HEADER.exists():
        raise BpfBuildError(f"{LIBBPF_HEADER} not found: eBPF programs need libbpf-dev ({INSTALL_HINT})")
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
    if obj.exists() and stamp.exists() and stamp.read_text() == key:
        return obj
    with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
        tmp_obj = Path(tmp) / obj.name
        result = subprocess.run(["clang", *clang_flags(), "-c", str(source), "-o", str(tmp_obj)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BpfBuildError(f"clang failed on {source.name}:\n{result.stderr}")
        os.replace(tmp_obj, obj)
        tmp_stamp = Path(tmp) / stamp.name
        tmp_stamp.write_text(key)
        os.replace(tmp_stamp, stamp)
    return obj


def build_all() -> dict[str, Path]:
    """Every programs/*.c, by program name."""
    return {source.stem: build(source) for source in sorted(PROGRAMS.glob("*.c"))}
