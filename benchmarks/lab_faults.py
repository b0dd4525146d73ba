"""The lab under faults: N small pytest sessions on --target=dut, each with one
injected fault, and what each left behind.

Each run is a dedicated session of three tests (SESSION below: configure the DUT with
ip, nft and tc, wait a little, check the DUT is fresh) run by `python -m pytest` in a
process group of its own, sometimes with two xdist workers. One fault per run, drawn
with a seeded random generator:

  sigint / sigint-group   SIGINT to the pytest process / to its whole group (Ctrl-C)
  sigterm-group           SIGTERM to the group (`timeout`, a CI runner)
  sigkill / sigkill-worker  SIGKILL of the pytest process / of one xdist worker
  netns-deleted           `ip netns delete` of one of the run's lab namespaces
  bpftrace-killed         SIGKILL of the run's drop tracer (bpftrace -p PID)
  tool-missing            a test's PATH loses nft mid-test
  hang                    `tc` hangs (a stand-in that sleeps), the command timeout at 1 s
at a random moment of the run (the kills and the deletion), or from within a test.
Some runs go to the stand-in lab instead: the pytest process of a `--lab` session
killed mid-run (standin-client), or the stand-in lab's own `up` process killed while
it builds or serves (standin-owner).

After each run the campaign waits until every process the run made has exited (up to
SETTLE seconds: reapers finishing, workers stopped by PR_SET_PDEATHSIG), then counts
what is left: namespaces, their bind mounts and files carrying a pid of the run
(reaper.leftovers_of()), processes of the run still alive, links that appeared in the
host's namespace (read from /sys/class/net, never changed), files left in the run's
TMPDIR, what changed in the host's namespace (nftables tables, qdiscs, routes, rules,
addresses, links, forwarding/rp_filter/IPv6 sysctls: all read, never changed), pinned
eBPF objects in /sys/fs/bpf, DUT journals left (dutstate.py: the campaign gives the
runs a journal directory of their own), and on the stand-in lab the test namespaces
(pjports...) and processes (DUT agents and their reapers, TRex clients) left in its
namespaces, what changed on its DUT (the same network state as the host's: port
names, MACs, MTUs, sysctls, nftables, qdiscs, routes) and the files in the DUT's
temporary directory (the agent's code, eBPF objects put there). A change is counted
by the run that made it. At the end, the stand-in lab taken down, its station's
journal and claim lock must be gone too. Anything left is printed; what a run left
in its namespaces and processes is removed so the next run starts clean. The
campaign is its processes' child subreaper, so the run's orphans stay its
descendants.

    python -m benchmarks lab_faults                        (200 runs)
    python -m benchmarks lab_faults --runs 50 --seed 7 [--minutes M]   (nice -n 19 recommended)

Prints `figure lab.fault_runs N count` and `figure lab.leftovers N count`. Needs root.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harness.drivers.dutstate import journal_dir, journal_path
from harness.drivers.netns import NETNS_RUN_DIR, delete_namespace, pids_in
from harness.drivers.reaper import leftovers_of
from harness.labfile import load_lab, lock_path

LAB_NAMESPACE = re.compile(r"^pj(?:lab)?(\d+)x\d+-")
REPO = Path(__file__).resolve().parent.parent
RUNS = 200
SEED = 17
PR_SET_CHILD_SUBREAPER = 36  # include/uapi/linux/prctl.h
SESSION_TIMEOUT = 180.0  # a run that has not ended by then is killed, and counted as a hang
SETTLE = 60.0  # how long the run's processes may take to exit after the run
POLL = 0.05  # how often the run's process tree is read
# when in the run a kill or deletion lands: seconds after the start (pytest's start-up
# takes about 1.5 s here; the three tests a few more)
FAULT_AT = (0.5, 6.0)
NETNS_FAULTS = ("sigint", "sigint-group", "sigterm-group", "sigkill", "sigkill-worker", "netns-deleted",
                "bpftrace-killed", "tool-missing", "hang")
STANDIN_CLIENT_FAULTS = ("sigint", "sigkill", "sigkill-worker", "sigterm-group")
STANDIN_SHARE = 0.15  # of the runs go to the stand-in lab, a third of those to kill its `up`

SESSION = '''
import os, shutil, time

FAULT = os.environ.get("PJ_FAULT", "")


def test_configure(target, tmp_path, monkeypatch):
    if FAULT == "hang":
        from harness.drivers import netns
        bin = tmp_path / "bin"
        bin.mkdir()
        (bin / "tc").write_text("#!/bin/sh\\nsleep 600\\n")
        (bin / "tc").chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin}:{os.environ['PATH']}")
        monkeypatch.setattr(netns, "COMMAND_TIMEOUT", 1.0)
    target.sh("ip addr add 10.0.0.1/24 dev p0")
    target.sh("tc qdisc show dev p0")
    if FAULT == "tool-missing":
        bin = tmp_path / "only-ip"
        bin.mkdir()
        os.symlink(shutil.which("ip"), bin / "ip")
        monkeypatch.setenv("PATH", str(bin))
    target.sh("nft add table ip t")
    target.sh("nft add chain ip t c { type filter hook input priority 0; }")


def test_wait(target):
    target.sh("ip link set p1 mtu 1400")
    time.sleep(1.0)


def test_fresh(target):
    assert target.sh("ip -4 addr show dev p0") == ""
    time.sleep(0.5)
'''


@dataclass
class Run:
    number: int
    lab: str  # netns, standin-client, standin-owner
    fault: str
    workers: int
    at: float
    pids: set[int] = field(default_factory=set)
    outcome: str = ""
    seconds: float = 0.0
    left: list[str] = field(default_factory=list)


def _children_of(pids: set[int]) -> set[int]:
    """Every process whose parent is in `pids`, and theirs, from /proc."""
    parents: dict[int, int] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rpartition(")")[2].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    tree, grown = set(pids), True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in tree and pid not in tree}
        tree |= more
        grown = bool(more)
    return tree


def _started_by(pid: int, ancestors: set[int]) -> bool:
    """Whether an ancestor of `pid` is in `ancestors` (an sshd session of the stand-in lab)."""
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rpartition(")")[2].split()[1])
        except (FileNotFoundError, ProcessLookupError):
            return False
        if pid in ancestors:
            return True
    return False


def _alive(pid: int) -> bool:
    """Running, and not a zombie (a zombie is reaped below)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _reap_zombies(pids: set[int]) -> None:
    """Our orphaned descendants (we are their subreaper) that exited."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def _host_links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def _lines(argv: list[str]) -> list[str]:
    """The non-empty output lines of a command that only reads."""
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def _network_state(netns: str | None) -> dict[str, str]:
    """What a namespace's network configuration holds, read only, as {item: value}:
    its nftables tables, qdiscs, routes of every table, rules, addresses, links (name,
    MAC, MTU, state, XDP) and forwarding/rp_filter/IPv6 sysctls; None: the host's."""
    inside = ["ip", "netns", "exec", netns] if netns else []
    state: dict[str, str] = {}
    state.update({f"nft {line}": "" for line in _lines([*inside, "nft", "list", "tables"])})
    state.update({f"qdisc {line}": "" for line in _lines([*inside, "tc", "qdisc", "show"])})
    state.update({f"route {line}": "" for line in _lines([*inside, "ip", "route", "show", "table", "all"])})
    state.update({f"rule {line}": "" for line in _lines([*inside, "ip", "rule", "show"])})
    state.update({f"address {line.partition(': ')[2]}": "" for line in _lines([*inside, "ip", "-o", "addr", "show"])})
    for line in _lines([*inside, "ip", "-o", "link", "show"]):
        name, _, rest = line.partition(": ")[2].partition(": ")
        state[f"link {name.partition('@')[0]}"] = rest
    for line in _lines([*inside, "sysctl", "-a", "-r", r"^net\.(ipv4\.(ip_forward|conf\.)|ipv6\.conf\.)"]):
        key, _, value = line.partition(" = ")
        state[f"sysctl {key}"] = value
    return state


def _host_state() -> dict[str, str]:
    """The host's network configuration, its bpffs pins and the DUT journals the
    harness keeps (journal_dir(), the campaign's own): none is ever a run's to change."""
    return {**_network_state(None), **_bpf_pins(),
            **{f"file {path}": "" for path in sorted(journal_dir().glob("*"))}}


def _bpf_pins() -> dict[str, str]:
    """Pinned eBPF objects in the host's bpffs (which no namespace deletion removes)."""
    return {f"bpf pin {path}": "" for path in sorted(Path("/sys/fs/bpf").rglob("*"))}


def _changes(where: str, baseline: dict[str, str], before: dict[str, str], after: dict[str, str]) -> list[str]:
    """What differs after a run from both the state before it and the baseline (a
    difference an earlier run left is counted once, and one put right is not)."""
    changed = []
    for key in sorted(baseline.keys() | before.keys() | after.keys()):
        now = after.get(key)
        if now != baseline.get(key) and now != before.get(key):
            then = before.get(key)
            what = "appeared" if then is None else "gone" if now is None else f"{then!r} -> {now!r}"
            changed.append(f"{where}: {key}: {what}")
    return changed


def _lab_namespaces_of(pids: set[int]) -> list[str]:
    """The lab namespaces (pj<pid>x..., pjlab<pid>x...) made by one of `pids`."""
    if not os.path.isdir(NETNS_RUN_DIR):
        return []
    return [name for name in sorted(os.listdir(NETNS_RUN_DIR))
            if (match := LAB_NAMESPACE.match(name)) and int(match[1]) in pids]


def _bpftrace_of(pids: set[int]) -> list[int]:
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if argv[0].endswith(b"bpftrace") and b"-p" in argv and int(argv[argv.index(b"-p") + 1]) in pids:
            found.append(int(entry))
    return found


def _workers(pytest_pid: int) -> list[int]:
    return sorted(pid for pid in _children_of({pytest_pid}) - {pytest_pid} if _is_python(pid))


def _is_python(pid: int) -> bool:
    """An xdist worker: python, and not a reaper or another harness helper."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return b"python" in argv.split(b"\0")[0] and b"harness.drivers" not in argv


class Campaign:
    def __init__(self, runs: int, seed: int, workdir: Path) -> None:
        self.runs, self.random, self.workdir = runs, random.Random(seed), workdir
        (workdir / "test_faulted.py").write_text(SESSION)
        self.standin = None
        self.standin_baseline: dict[str, set[int]] = {}
        self.dut_baseline: dict[str, str] = {}  # the stand-in DUT's state once built
        self.host_baseline = _host_state()
        self.baseline: set[int] = set()  # our descendants before a run: the stand-in lab's, our reaper

    # the stand-in lab the standin-client runs test against ---------------------------------
    def _standin(self):
        if self.standin is None:
            from harness.drivers.standin_lab import StandinLab
            self.standin = StandinLab(1, self.workdir / "standin")
            self.standin_baseline = self._standin_processes()
            self.dut_baseline = self._dut_state()
        return self.standin

    def _dut_state(self) -> dict[str, str]:
        """The stand-in DUT's network configuration and the files in its temporary directory."""
        station = self._standin().stations[0]
        return {**_network_state(station.dut_netns),
                **{f"file {path}": "" for path in sorted(station.dut_tmp.rglob("*"))}}

    def station_files(self) -> list[Path]:
        """What the harness keeps on this host for the stand-in lab's station while
        the lab lives: its DUT's journal (while a session holds it) and its claim lock."""
        station = load_lab(self.standin.lab_file).stations[0]
        return [journal_path(station.dut), journal_path(station.dut).with_suffix(".part"), lock_path(station)]

    def _standin_namespaces(self) -> list[str]:
        station = self.standin.stations[0]
        return [self.standin.ctl, station.dut_netns, station.trex_netns]

    def _standin_processes(self) -> dict[str, set[int]]:
        return {name: set(pids_in(name)) for name in self._standin_namespaces()}

    def _standin_left(self) -> list[str]:
        prefix = f"pjports{os.stat(os.path.join(NETNS_RUN_DIR, self.standin.stations[0].dut_netns)).st_ino}-"
        left = [f"namespace {name}" for name in os.listdir(NETNS_RUN_DIR) if name.startswith(prefix)]
        for name, pids in self._standin_processes().items():
            left += [f"process {pid} in {name}: {_cmdline(pid)}" for pid in sorted(pids - self.standin_baseline[name])]
        return left

    # one run ---------------------------------------------------------------------------------
    def plan(self, number: int) -> Run:
        draw = self.random.random()
        at = self.random.uniform(*FAULT_AT)
        if draw < STANDIN_SHARE / 3:
            return Run(number, "standin-owner", self.random.choice(("sigkill", "sigint")), 0,
                       self.random.uniform(0.2, 6.0))
        if draw < STANDIN_SHARE:
            fault = self.random.choice(STANDIN_CLIENT_FAULTS)
            return Run(number, "standin-client", fault, 1 if fault == "sigkill-worker" else 0, at)
        fault = self.random.choice(NETNS_FAULTS)
        workers = 2 if fault == "sigkill-worker" else self.random.choice((0, 0, 2))
        return Run(number, "netns", fault, workers, at)

    def run(self, run: Run) -> Run:
        directory = Path(tempfile.mkdtemp(prefix=f"run{run.number}-", dir=self.workdir))
        tmp = directory / "tmp"
        tmp.mkdir()
        links_before, host_before = _host_links(), _host_state()
        dut_before = self._dut_state() if run.lab == "standin-client" else {}
        env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp),
               "PJ_FAULT": run.fault if run.fault in ("hang", "tool-missing") else ""}
        if run.lab == "standin-owner":
            argv = [sys.executable, "-m", "harness.drivers.standin_lab", "up", "--stations", "1",
                    "--dir", str(directory / "lab")]
        else:
            argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--target=dut",
                    f"--basetemp={directory / 'basetemp'}", str(self.workdir / "test_faulted.py")]
            if run.workers:
                argv += ["-n", str(run.workers)]
            if run.lab == "standin-client":
                argv.append(f"--lab={self._standin().lab_file}")
        self.baseline = _children_of({os.getpid()})
        started = time.monotonic()
        with open(directory / "output", "wb") as output:
            process = subprocess.Popen(argv, cwd=directory, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                       stderr=subprocess.STDOUT, process_group=0)
        run.pids.add(process.pid)
        injected = run.fault in ("hang", "tool-missing")
        while process.poll() is None:
            run.pids |= _children_of({process.pid})
            elapsed = time.monotonic() - started
            if not injected and elapsed >= run.at:
                injected = self._inject(run, process)
            if elapsed > SESSION_TIMEOUT:
                run.outcome = "hung: killed"
                os.killpg(process.pid, signal.SIGKILL)
            time.sleep(POLL)
        run.outcome = run.outcome or (f"exit {process.returncode}" + ("" if injected else " before the fault"))
        self._settle(run)
        run.left = self._left(run, links_before, tmp)
        run.left += _changes("host", self.host_baseline, host_before, _host_state())
        if run.lab == "standin-client":
            run.left += _changes("stand-in DUT", self.dut_baseline, dut_before, self._dut_state())
        self._clean(run)
        shutil.rmtree(directory, ignore_errors=True)
        run.seconds = time.monotonic() - started
        return run

    def _inject(self, run: Run, process: subprocess.Popen) -> bool:
        """Inject the run's fault now if there is something to hit; whether it was."""
        pid = process.pid
        with contextlib.suppress(ProcessLookupError):
            if run.fault == "sigint":
                os.kill(pid, signal.SIGINT)
            elif run.fault == "sigint-group":
                os.killpg(pid, signal.SIGINT)
            elif run.fault == "sigterm-group":
                os.killpg(pid, signal.SIGTERM)
            elif run.fault == "sigkill":
                os.kill(pid, signal.SIGKILL)
            elif run.fault == "sigkill-worker":
                workers = _workers(pid)
                if not workers:
                    return False
                os.kill(self.random.choice(workers), signal.SIGKILL)
            elif run.fault == "netns-deleted":
                namespaces = _lab_namespaces_of(run.pids)
                if not namespaces:
                    return False
                subprocess.run(["ip", "netns", "delete", self.random.choice(namespaces)], capture_output=True,
                               check=False)
            elif run.fault == "bpftrace-killed":
                tracers = _bpftrace_of(run.pids)
                if not tracers:
                    return False
                os.kill(self.random.choice(tracers), signal.SIGKILL)
        return True

    def _settle(self, run: Run) -> None:
        """Wait until every process of the run has exited, at most SETTLE seconds."""
        deadline = time.monotonic() + SETTLE
        while time.monotonic() < deadline:
            run.pids |= _children_of(run.pids) | self._orphans()
            _reap_zombies(run.pids)
            if not any(_alive(pid) for pid in run.pids):
                break
            time.sleep(POLL)
        if run.lab == "standin-client":  # DUT agents end once their SSH session has dropped
            while self._standin_left() and time.monotonic() < deadline:
                time.sleep(POLL)

    def _orphans(self) -> set[int]:
        """Our descendants that are not the stand-in lab's or ours from before the run:
        processes of the run orphaned between two looks at its tree (we are their subreaper)."""
        standin = {pid for name in self._standin_namespaces() for pid in pids_in(name)} if self.standin else set()
        return {pid for pid in _children_of({os.getpid()}) - self.baseline - standin
                if not _started_by(pid, standin | self.baseline)}

    def _left(self, run: Run, links_before: set[str], tmp: Path) -> list[str]:
        run.pids |= self._orphans()
        left = [thing for pid in sorted(run.pids) for thing in leftovers_of(pid)]
        left += [f"process {pid}: {_cmdline(pid)}" for pid in sorted(run.pids) if _alive(pid)]
        left += [f"link {name} in the host's namespace" for name in sorted(_host_links() - links_before)]
        left += [f"file {path}" for path in sorted(tmp.rglob("*"))]
        if run.lab == "standin-client":
            left += self._standin_left()
        return left

    def _clean(self, run: Run) -> None:
        """Remove what the run left, so the next one starts clean."""
        for pid in run.pids:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for name in _lab_namespaces_of(run.pids):
            delete_namespace(name)
        _reap_zombies(run.pids)

    def close(self) -> list[str]:
        """Take the stand-in lab down; what is left of it on this host then."""
        if self.standin is None:
            return []
        files = self.station_files()
        namespaces = self._standin_namespaces()
        self.standin.close()
        return [f"file {path} (the stand-in lab's station)" for path in files if path.exists()] + \
            [f"namespace {name}" for name in namespaces if os.path.exists(os.path.join(NETNS_RUN_DIR, name))]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:100]
    except FileNotFoundError:
        return "(gone)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lab_faults", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--minutes", type=float, default=None,
                        help="start no run after this many minutes; the figures count the runs made")
    args = parser.parse_args(argv if argv is not None else [])
    if os.geteuid() != 0:
        print("lab_faults: needs root (network namespaces)", file=sys.stderr)
        return 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    workdir = Path(tempfile.mkdtemp(prefix="pj-lab-faults-"))
    # the runs' DUT journals (dutstate.journal_dir()) where only they write: each one left is theirs
    os.environ["XDG_STATE_HOME"] = str(workdir / "state")
    campaign = Campaign(args.runs, args.seed, workdir)
    leftovers, kinds = 0, Counter()
    stop_at = time.monotonic() + args.minutes * 60 if args.minutes is not None else None
    try:
        for number in range(args.runs):
            if stop_at is not None and time.monotonic() > stop_at:
                break
            run = campaign.run(campaign.plan(number))
            kinds[(run.lab, run.fault)] += 1
            leftovers += len(run.left)
            print(f"run {number}: {run.lab} {run.fault} at {run.at:.1f} s (-n {run.workers}): {run.outcome}, "
                  f"{len(run.left)} left ({run.seconds:.0f} s)", file=sys.stderr, flush=True)
            for thing in run.left:
                print(f"    left: {thing}", file=sys.stderr, flush=True)
    finally:
        left = campaign.close()
        shutil.rmtree(workdir, ignore_errors=True)
    leftovers += len(left)
    for thing in left:
        print(f"    left at the end: {thing}", file=sys.stderr)
    for (lab, fault), count in sorted(kinds.items()):
        print(f"# {count:4d} runs: {lab} {fault}", file=sys.stderr)
    print(f"figure lab.fault_runs {sum(kinds.values())} count")
    print(f"figure lab.leftovers {leftovers} count")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
