"""python -m harness.packetdrill [--target mock|dut] SCRIPT...: run packetdrill scripts,
each on a fresh target, and say which pass; a failure prints the runner's message.
The exit status is the number of scripts that failed (at most 100)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from harness.packetdrill import ScriptFailure, ScriptSyntaxError, parse_file, run_script
from harness.target import Target, TargetError

MAX_STATUS = 100


def fresh_target(kind: str) -> Target:
    if kind == "mock":
        from harness.mockkernel.target import MockTarget
        return MockTarget()
    from harness.drivers.dut import NetnsTarget
    return NetnsTarget()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.packetdrill", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=("mock", "dut"), default="mock")
    parser.add_argument("scripts", nargs="+", metavar="SCRIPT")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.scripts:
        target = fresh_target(args.target)
        try:
            run_script(target, parse_file(path))
            print(f"PASS {path}")
        except (ScriptFailure, ScriptSyntaxError, TargetError) as err:
            failed += 1
            print(f"FAIL {path}\n{err}\n")
        except Exception as err:  # a target's own bug: shown with its type, the run goes on
            failed += 1
            print(f"FAIL {path}\n{type(err).__name__}: {err}\n")
        finally:
            target.close()
    print(f"{len(args.scripts) - failed} of {len(args.scripts)} passed on {args.target}")
    return min(failed, MAX_STATUS)


if __name__ == "__main__":
    sys.exit(main())
