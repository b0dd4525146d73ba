"""iproute2's lib/bpf_legacy.c, the object loader `ip link ... xdp obj` and
`tc ... bpf obj` share: a path that is no readable ELF file fails in
bpf_elf_ctx_init() with one message, whatever is wrong with it."""
from __future__ import annotations

import os

from harness.mockkernel.bpf import BpfLoadError
from harness.mockkernel.bpf.syscall import bpf_runtime
from harness.mockkernel.cmd.args import ToolError

ELF_CONTEXT_ERROR = "Cannot initialize ELF context!"


def bpf_obj_open(net, path: str, status: int, trailer: str = ""):
    """The loaded object at `path`; ToolError(`status`) as bpf_elf_ctx_init()
    (elf_begin() on a missing file, a directory or bytes that are no ELF) or
    the loader's own refusal, each followed by the tool's `trailer` line."""
    if not os.path.isfile(path):
        raise ToolError(ELF_CONTEXT_ERROR + trailer, status)
    try:
        return bpf_runtime(net).load_object(path)
    except BpfLoadError as err:
        message = ELF_CONTEXT_ERROR if "not an ELF object" in str(err) else str(err)
        raise ToolError(message + trailer, status) from None
