"""`python -m harness.drivers.trex_standin --ports t0,t1,t2 --bind ADDR --sync-port 4501
--async-port 4500`: serve as a TRex stand-in (run it inside the namespace holding the
ports); prints `ready` once both sockets are bound, serves until SIGTERM or SIGINT."""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from harness.drivers.trex_standin.server import TrexStandin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.drivers.trex_standin", description=__doc__)
    parser.add_argument("--ports", required=True, help="interface names, comma separated: TRex port i is the i-th")
    parser.add_argument("--bind", default="*", help="address to listen on (default: all)")
    parser.add_argument("--sync-port", type=int, default=4501)
    parser.add_argument("--async-port", type=int, default=4500)
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    standin = TrexStandin(args.ports.split(","), args.bind, args.sync_port, args.async_port)
    try:
        print(f"TRex stand-in (not TRex) serving ports {args.ports} on {args.bind}:{args.sync_port}/"
              f"{args.async_port}", file=sys.stderr, flush=True)
        print("ready", flush=True)
        standin.serve(lambda: not stopping.is_set())
    finally:
        standin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
