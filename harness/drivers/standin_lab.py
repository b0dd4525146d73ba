"""The stand-in lab: on this machine, what `--lab=LAB.yaml` drives in a real lab, so
every line of the lab path runs here and in CI. Not hardware, and named so throughout.

One station (N stations are N copies, K = 0..N-1):

    ctl netns pjlab<pid>x<n>-ctl     the harness's side: its SSH client socket and its
                                     TRex client process live here, never in the host's
      c<K>d 10.254.K.1/30  <-veth->  mgmt0 10.254.K.2/30   DUT netns ...-s<K>-dut
                                       OpenSSH (Debian's sshd) on 10.254.K.2:22
                                       ens1f0 ens1f1 ens1f2 (MACs 02:00:00:aa:0K:0N, mtu 1500)
      c<K>t 10.253.K.1/30  <-veth->  mgmt1 10.253.K.2/30   TRex netns ...-s<K>-trex
                                       TRex stand-in (harness.drivers.trex_standin)
                                       on 10.253.K.2:4501 (sync) and :4500 (async)
                                       t0 t1 t2 <-veth-> ens1f0 ens1f1 ens1f2

The DUT's SSH sessions have a temporary directory of their own, DIR/s<K>/dut-tmp
(TMPDIR), standing for a DUT's /tmp: whatever the harness leaves on the DUT shows
there.

The DUT's ports are deliberately not p0..p2 and carry other MACs than the harness's
PORTS: the harness renames them and sets their MACs when it takes the station, and
puts them back when it leaves, as on a real DUT. The stand-in's ports t0..t2 run an
XDP_PASS program (a veth delivers XDP_TX/XDP_REDIRECT frames only to a peer in NAPI
mode, as the netns lab's tester ends get lazily), frags-aware (programs/xdp_pass_frags.c)
so the DUT's ports keep their largest MTU, and have GRO off, so every frame the DUT
sends is seen as sent. Both lab namespaces have IPv6 off, so nothing speaks on
its own.

Every link is created inside the namespaces (`ip -n CTL link add c0d ... peer name
mgmt0 netns DUT`); the host's namespace is never entered. `lab_file` is a lab.yaml
that `harness.labfile.load_lab()` accepts, with each station's SSH user key and
known_hosts beside it. `close()` stops the stand-ins and sshd, kills whatever else
still runs in the lab's namespaces (SSH sessions) and deletes them, and removes what
the harness keeps on this host for each of its stations, of no use once its DUT is
gone: the DUT's journal (dutstate.py) and the station's claim lock (labfile.py). Its
reaper does the same if it is killed; a process starting a stand-in lab removes the
namespaces and journals of dead processes' labs.

    python -m harness.drivers.standin_lab up --stations N --dir DIR   (prints DIR/lab.yaml)
    python -m harness.drivers.standin_lab down --dir DIR
"""
from __future__ import annotations

import argparse
import atexit
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

import harness
from harness import bpf_build
from harness.drivers.netns import (
    NETNS_RUN_DIR,
    TESTER_MTU,
    TESTER_SYSCTLS,
    _pid_alive,
    close_all,
    delete_namespace,
    orphaned_namespaces,
    refuse_host_netns,
    require_root,
    require_tool,
    run_argv,
)
from harness.drivers.dutstate import journal_dir, journal_path
from harness.drivers.reaper import reaper
from harness.drivers.sshd import Sshd, start_sshd
from harness.labfile import load_lab, lock_path
from harness.target import PORTS, TargetError, TargetUnavailable

MAX_STATIONS = 256  # the station number is the third octet of its addresses
DUT_PORTS = tuple(f"ens1f{port.index}" for port in PORTS)
DUT_PORT_MTU = 1500
DUT_PORT_SPEED = "10G"  # what veth reports (10000 Mb/s in ethtool)
DUT_MANAGEMENT = "mgmt0"
TREX_MANAGEMENT = "mgmt1"
SSH_USER = "root"
TREX_SYNC_PORT = 4501
TREX_ASYNC_PORT = 4500
# The stand-in binds its ZMQ sockets in well under a second; the rest is slack for a busy machine.
READY_TIMEOUT = 30.0
READY_POLL = 0.02
STOP_TIMEOUT = 5.0
DOWN_TIMEOUT = 300.0  # `down` waits this long for `up` to tear everything down
PIDFILE = "standin-lab.pid"
LAB_FILE = "lab.yaml"
# The directory holding the `harness` package, for the stand-in's `python -m`.
PACKAGE_ROOT = Path(harness.__file__).resolve().parent.parent

_NAME = re.compile(r"^pjlab(\d+)x\d+-")
# a DUT journal of a station of ours (dutstate.journal_path(): the ctl namespace it is reached from)
_JOURNAL_VIA = re.compile(r"^dut-.*-via-pjlab(\d+)x\d+-ctl\.(?:json|part)$")


def dut_port_mac(station: int, index: int) -> str:
    """A DUT port's MAC before the harness sets PORTS' (02:00:00:aa:0K:0N)."""
    return f"02:00:00:aa:{station:02x}:{index:02x}"


@dataclass
class StandinStation:
    """Station `name` of the stand-in lab: its namespaces, addresses and servers."""

    name: str
    dut_netns: str
    trex_netns: str
    dut_address: str
    trex_address: str
    dut_tmp: Path
    sshd: Sshd | None = None
    trex_standin: subprocess.Popen | None = None


class StandinLab:
    """The stand-in lab of `stations` stations, its files in `workdir` (module doc)."""

    def __init__(self, stations: int, workdir: str | os.PathLike) -> None:
        if not 1 <= stations <= MAX_STATIONS:
            raise ValueError(f"a stand-in lab has 1 to {MAX_STATIONS} stations, not {stations}")
        require_root("the stand-in lab")
        for program in ("ip", "sysctl", "ethtool"):
            require_tool(program)
        _start_process_lifecycle()
        self.workdir = Path(workdir).resolve()
        self.lab_file = self.workdir / LAB_FILE
        prefix = f"pjlab{os.getpid()}x{next(_instance_numbers)}"
        self.ctl = f"{prefix}-ctl"
        self.stations = [StandinStation(f"standin-{k}", f"{prefix}-s{k}-dut", f"{prefix}-s{k}-trex",
                                        f"10.254.{k}.2", f"10.253.{k}.2", self.workdir / f"s{k}" / "dut-tmp")
                         for k in range(stations)]
        self._namespaces: list[str] = []
        self._station_files: list[Path] = []  # journals and claim locks of its stations (harness side)
        _live_labs.add(self)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._add_netns(self.ctl)
        xdp_pass = bpf_build.build("xdp_pass_frags")
        for k, station in enumerate(self.stations):
            self._wire(k, station, xdp_pass)
            station.dut_tmp.mkdir(parents=True, exist_ok=True)
            station.sshd = start_sshd(station.dut_netns, station.dut_address, self.workdir / f"s{k}" / "sshd",
                                      tmpdir=station.dut_tmp)
            station.trex_standin = self._start_trex_standin(k, station)
        self._write_lab_file()
        lab = load_lab(self.lab_file)  # the harness must accept what it is handed
        for station in lab.stations:  # what the harness keeps of a station on this host goes with the lab
            journal = journal_path(station.dut)
            for path in (journal, journal.with_suffix(".part"), lock_path(station)):
                reaper().path(path)
                self._station_files.append(path)

    def _add_netns(self, name: str) -> None:
        """A namespace with IPv6 off (set before any link exists, so each inherits it) and lo up."""
        reaper().netns(name)  # before it exists: deleted even if we die making it
        self._namespaces.append(name)
        run_argv(["ip", "netns", "add", name])
        refuse_host_netns(os.stat(netns_path(name)).st_ino, f"set up {name}")
        run_argv(["ip", "netns", "exec", name, "sysctl", "-q", "-w",
              *(f"{key}={value}" for key, value in TESTER_SYSCTLS.items())])
        run_argv(["ip", "-n", name, "link", "set", "lo", "up"])

    def _wire(self, k: int, station: StandinStation, xdp_pass: Path) -> None:
        dut, trex = station.dut_netns, station.trex_netns
        self._add_netns(dut)
        self._add_netns(trex)
        _batch(self.ctl, [
            f"link add c{k}d type veth peer name {DUT_MANAGEMENT} netns {dut}",
            f"link add c{k}t type veth peer name {TREX_MANAGEMENT} netns {trex}",
            f"addr add 10.254.{k}.1/30 dev c{k}d",
            f"addr add 10.253.{k}.1/30 dev c{k}t",
            f"link set c{k}d up",
            f"link set c{k}t up",
        ])
        _batch(trex, [
            *(f"link add {port.peer} address {port.peer_mac} mtu {TESTER_MTU} type veth peer name {name} "
              f"address {dut_port_mac(k, port.index)} mtu {DUT_PORT_MTU} netns {dut}"
              for port, name in zip(PORTS, DUT_PORTS)),
            f"addr add {station.trex_address}/30 dev {TREX_MANAGEMENT}",
            f"link set {TREX_MANAGEMENT} up",
            *(f"link set {port.peer} up" for port in PORTS),
            *(f"link set dev {port.peer} xdp obj {xdp_pass} sec xdp.frags" for port in PORTS),
        ])
        for port in PORTS:
            run_argv(["ip", "netns", "exec", trex, "ethtool", "-K", port.peer, "gro", "off"])
        # each DUT port up once, then down: the kernel gives a device its default root qdisc at its first
        # open (net/sched/sch_generic.c, dev_activate()) and nothing takes it back, as on a NIC that has
        # been up before; a port still on noop_qdisc would carry the harness's first use after it
        _batch(dut, [f"addr add {station.dut_address}/30 dev {DUT_MANAGEMENT}", f"link set {DUT_MANAGEMENT} up",
                     *(f"link set {name} {state}" for state in ("up", "down") for name in DUT_PORTS)])

    def _start_trex_standin(self, k: int, station: StandinStation) -> subprocess.Popen:
        """`python -m harness.drivers.trex_standin` in the TRex namespace, once it says `ready`."""
        directory = self.workdir / f"s{k}"
        stdout, log = directory / "trex-standin.out", directory / "trex-standin.log"
        argv = [sys.executable, "-m", "harness.drivers.trex_standin", "--ports", ",".join(p.peer for p in PORTS),
                "--bind", station.trex_address, "--sync-port", str(TREX_SYNC_PORT),
                "--async-port", str(TREX_ASYNC_PORT)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
        with open(stdout, "wb") as out, open(log, "wb") as err:
            # its own session: a Ctrl-C at the terminal reaches `up`, which stops it in order
            process = subprocess.Popen(["ip", "netns", "exec", station.trex_netns, *argv], stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=err, env=env, start_new_session=True)
        station.trex_standin = process
        deadline = time.monotonic() + READY_TIMEOUT
        while "ready" not in stdout.read_text().splitlines():
            if process.poll() is not None:
                raise TargetUnavailable(f"the TRex stand-in in {station.trex_netns} exited with status "
                                        f"{process.returncode} before it was ready; {log}: {_tail(log)}")
            if time.monotonic() > deadline:
                raise TargetUnavailable(f"the TRex stand-in in {station.trex_netns} did not print `ready` "
                                        f"within {READY_TIMEOUT:.0f} s; {log}: {_tail(log)}")
            time.sleep(READY_POLL)
        return process

    def _write_lab_file(self) -> None:
        stations = []
        for station in self.stations:
            stations.append({
                "name": station.name,
                "dut": {
                    "host": station.dut_address, "port": station.sshd.port, "user": SSH_USER,
                    "key": str(station.sshd.user_key.relative_to(self.workdir)),
                    "known_hosts": str(station.sshd.known_hosts.relative_to(self.workdir)),
                    "become": "root", "python": "python3",
                    "interfaces": [{"port": port.name, "name": name, "speed": DUT_PORT_SPEED}
                                   for port, name in zip(PORTS, DUT_PORTS)],
                    "allow": list(DUT_PORTS),
                    "management": [DUT_MANAGEMENT],
                    "via_netns": self.ctl,
                },
                "trex": {
                    "host": station.trex_address, "sync_port": TREX_SYNC_PORT, "async_port": TREX_ASYNC_PORT,
                    "ports": {port.index: port.name for port in PORTS},
                    "via_netns": self.ctl,
                },
            })
        header = (f"# The STAND-IN lab, not hardware: written by `python -m harness.drivers.standin_lab` (pid "
                  f"{os.getpid()}).\n# Each DUT is a network namespace of this machine running OpenSSH, each "
                  "TRex a stand-in\n# server (harness/drivers/trex_standin) speaking TRex's JSON-RPC; both are "
                  f"reached from\n# namespace {self.ctl}. It goes away with the lab.\n")
        text = yaml.safe_dump({"stations": stations}, sort_keys=False, default_flow_style=None, width=100)
        self.lab_file.write_text(header + text)

    def close(self) -> None:
        """Stop every process the lab started or that runs in its namespaces, delete the
        namespaces; safe twice, and after a build that failed half-way."""
        try:
            for station in self.stations:
                if station.trex_standin is not None:
                    _stop(station.trex_standin)
                if station.sshd is not None:
                    station.sshd.stop()
        finally:  # whatever still runs in a namespace dies with it
            failures = []
            for name in reversed(self._namespaces):
                if failure := delete_namespace(name):
                    failures.append(failure)
                else:
                    self._namespaces.remove(name)
            _live_labs.discard(self)
            for path in self._station_files:
                path.unlink(missing_ok=True)
        if failures:
            raise TargetError("stand-in lab teardown failed: " + "; ".join(failures))

    def __enter__(self) -> StandinLab:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StandinLab({self.ctl}, {len(self.stations)} stations, {self.lab_file})"


def netns_path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def _batch(netns: str, commands: list[str]) -> None:
    run_argv(["ip", "-n", netns, "-batch", "-"], stdin="\n".join(commands))


def _tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) or "(empty)"


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# process lifecycle: stale labs, exit ----------------------------------------------

_instance_numbers = itertools.count()
_live_labs: set[StandinLab] = set()
_lifecycle_lock = threading.Lock()
_lifecycle_started = False


def _start_process_lifecycle() -> None:
    """Once per process: remove the labs of dead processes, close ours at exit."""
    global _lifecycle_started
    with _lifecycle_lock:
        if _lifecycle_started:
            return
        _lifecycle_started = True
        remove_stale_labs()
        atexit.register(close_live_labs)


def remove_stale_labs() -> list[str]:
    """Delete `pjlab<pid>...` namespaces whose process is gone, with whatever still
    runs in them (a killed `up` leaves its sshd and stand-ins behind), and the DUT
    journals naming them (a lab whose reaper was killed too); the names deleted."""
    removed = orphaned_namespaces(_NAME)
    for name in removed:
        if failure := delete_namespace(name):
            raise TargetError(f"removing a stale stand-in lab failed: {failure}")
    if journal_dir().is_dir():
        for journal in journal_dir().iterdir():
            via = _JOURNAL_VIA.search(journal.name)
            if via and not _pid_alive(int(via[1])):
                journal.unlink(missing_ok=True)
    return removed


def close_live_labs() -> None:
    close_all(_live_labs)


# command line ----------------------------------------------------------------------

def up(stations: int, directory: Path) -> int:
    """Build the lab, print its lab file, keep it until SIGTERM/SIGINT (`down`)."""
    pidfile = directory / PIDFILE
    if pidfile.exists() and _pid_alive(holder := int(pidfile.read_text())):
        print(f"a stand-in lab is already up in {directory} (pid {holder}): "
              f"python -m harness.drivers.standin_lab down --dir {directory}", file=sys.stderr)
        return 1
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        with StandinLab(stations, directory) as lab:
            pidfile.write_text(f"{os.getpid()}\n")
            print(lab.lab_file, flush=True)
            stopping.wait()
    except (TargetError, bpf_build.BpfBuildError, ValueError) as exc:
        print(f"stand-in lab: {exc}", file=sys.stderr)
        return 1
    finally:
        pidfile.unlink(missing_ok=True)  # the lab is down: `down` waits for this
    return 0


def down(directory: Path) -> int:
    """Signal the `up` serving `directory` and wait until it has torn the lab down."""
    pidfile = directory / PIDFILE
    try:
        pid = int(pidfile.read_text())
    except FileNotFoundError:
        print(f"no stand-in lab is up in {directory} (no {pidfile})", file=sys.stderr)
        return 1
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pidfile.unlink(missing_ok=True)
        print(f"the stand-in lab's process {pid} is gone; its namespaces go at the next `up`", file=sys.stderr)
        return 1
    # `up` removes the pidfile once the lab is down (a zombie `up` would still look alive)
    deadline = time.monotonic() + DOWN_TIMEOUT
    while pidfile.exists() and _pid_alive(pid):
        if time.monotonic() > deadline:
            print(f"the stand-in lab's process {pid} did not finish tearing down", file=sys.stderr)
            return 1
        time.sleep(READY_POLL)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.drivers.standin_lab",
                                     description="the stand-in lab: DUTs over real SSH and TRex stand-ins "
                                                 "in network namespaces of this machine (root)")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="build the lab, print its lab file, stay up until `down`")
    start.add_argument("--stations", type=int, default=1)
    start.add_argument("--dir", type=Path, required=True, help="where lab.yaml, keys and logs go")
    stop = commands.add_parser("down", help="tear down the lab `up` serves from DIR")
    stop.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.stations, args.dir)
    return down(args.dir)


if __name__ == "__main__":
    sys.exit(main())
