"""A bpf_conformance plugin: run one program on the mock's VM, print r0.

The public eBPF conformance suite (github.com/Alan-Jowett/bpf_conformance)
starts its plugin once per test as `plugin "<memory hex>" "<options>"` and
writes the program's bytecode to stdin as hex bytes; the plugin prints r0 in
hex and exits 0, or reports an error on stderr and exits non-zero. As in its
reference plugins, r1 points to the memory and r2 is its length (the "raw"
program type: only the map, time, random and trace helpers exist). Accepted
arguments, as the reference plugins take them: `--program <hex>` instead of
stdin, the memory, `--debug` (print the translated program on stderr).

    bpf_conformance_runner --test_file_directory tests \\
        --plugin_path "python3 -m harness.mockkernel.bpf.conformance"
"""
from __future__ import annotations

import sys

from harness.mockkernel.bpf.syscall import BpfRuntime
from harness.mockkernel.bpf.vm import BpfFault, BpfLoadError


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    program_hex = None
    if args[:1] == ["--program"] and len(args) > 1:
        program_hex, args = args[1], args[2:]
    memory_hex = args.pop(0) if args and not args[0].startswith("--") else ""
    debug = "--debug" in args
    unexpected = [a for a in args if a and a != "--debug"]
    if unexpected:
        print(f"Unexpected arguments: {' '.join(unexpected)} (this plugin takes [--program HEX] [MEMORY] [--debug])",
              file=sys.stderr)
        return 1
    if program_hex is None:
        program_hex = sys.stdin.readline()
    try:
        program, memory = bytes.fromhex(program_hex), bytes.fromhex(memory_hex)
        prog = BpfRuntime().load_program(program, "raw", "conformance")
        if debug:
            print(prog.dump(), file=sys.stderr)
        r0 = prog.run_raw(bytearray(memory))
    except (BpfLoadError, BpfFault, ValueError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"{r0:x}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
