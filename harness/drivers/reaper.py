"""What a lab's process made, reclaimed when that process dies without cleaning up.

The labs name what they make after the process that made it (`pj<pid>x<n>-dut`,
`pjlab<pid>x<n>-...`) and delete it in close(), at exit and on SIGTERM. A process
killed by SIGKILL (an xdist worker, a test run stopped hard) runs none of that. So a
process, before it makes its first namespace or temporary file, starts its reaper:
`python -m harness.drivers.reaper PID`, in a session of its own (a Ctrl-C or a
signal to the process group does not reach it), reading a pipe whose write end only
the owner holds. The owner writes each thing it makes down the pipe *before* making
it; the kernel closes the write end when the owner dies, however it dies, and the
reaper, reading end of file, kills the owner's processes it was told of (bpftrace)
and every process inside the owner's namespaces (an sshd, a TRex stand-in, an
agent, pjgen), moves a DUT agent's ports home from the test's namespace
(portsnetns.py), deletes the namespaces (their veths go with them), restores a lab
DUT from the journal the owner left (dutstate.py: the ports' names, MACs and
sysctls, the test's changes) and removes its files (a DUT agent's session directory
among them). After a clean close there is nothing left to find, and the reaper just
exits.

It only ever deletes a namespace whose name carries its owner's pid, never the
host's (`refuse_host_netns`), and files it was told of. A reaper that was itself
killed leaves the last line of defence: each lab removes at its start the
namespaces of processes that are gone (netns.remove_stale_labs()).
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h
# the directory holding the `harness` package, for the reaper's `python -m`
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


class Reaper:
    """This process's reaper (module doc): `netns(name)` and `path(path)` before
    making the namespace or file."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
        self.owner = os.getpid()
        self._lock = threading.Lock()
        # its own session: a Ctrl-C at the terminal or a signal to our group spares it
        self._process = subprocess.Popen([sys.executable, "-m", "harness.drivers.reaper", str(self.owner)],
                                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, cwd="/", env=env,
                                         start_new_session=True)

    @property
    def pid(self) -> int:
        return self._process.pid

    def netns(self, name: str) -> None:
        if not carries_pid(name, self.owner):
            raise ValueError(f"namespace {name} does not carry its owner's pid {self.owner}")
        self._tell(f"netns {name}")

    def path(self, path: str | os.PathLike) -> None:
        self._tell(f"path {os.path.abspath(path)}")

    def ports_netns(self, name: str) -> None:
        """A namespace holding a DUT's ports (portsnetns.py): emptied, its ports moved
        back into the reaper's namespace (the owner's), before it is deleted; deleting
        it with them would destroy a veth port and move a NIC to the host's."""
        if not carries_pid(name, self.owner):
            raise ValueError(f"namespace {name} does not carry its owner's pid {self.owner}")
        self._tell(f"ports {name}")

    def journal(self, path: str | os.PathLike, lab_file: str | os.PathLike) -> None:
        """A lab DUT's journal (dutstate.py) that the owner writes: if the owner dies
        leaving it, the DUT is restored from it (its station in `lab_file`)."""
        self._tell(f"journal {json.dumps([os.path.abspath(path), os.path.abspath(lab_file)])}")

    def process(self, pid: int) -> None:
        """A process of ours to kill with us (bpftrace, which by itself notices our
        death only at its next look), named with its start time so that a reused pid
        is never taken for it."""
        self._tell(f"process {pid} {_start_time(pid)}")

    def _tell(self, line: str) -> None:
        with self._lock:
            self._process.stdin.write(line.encode() + b"\n")
            self._process.stdin.flush()


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Have the kernel send this process `signum` when its parent dies (prctl(2)
    PR_SET_PDEATHSIG): an xdist worker whose controller was killed stops at once,
    through its SIGTERM handler (the labs' teardown), instead of finishing its test."""
    parent = os.getppid()
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:  # it died before the call: nobody will send the signal
        os.kill(os.getpid(), signum)


def carries_pid(name: str, pid: int) -> bool:
    return re.search(rf"(?<!\d){pid}(?!\d)", name) is not None


_reapers: dict[int, Reaper] = {}
_reapers_lock = threading.Lock()


def reaper() -> Reaper:
    """This process's reaper, started at the first call (a forked child gets its own)."""
    with _reapers_lock:
        if os.getpid() not in _reapers:
            _reapers[os.getpid()] = Reaper()
        return _reapers[os.getpid()]


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat, the process's start time in clock ticks after boot."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[19]
    except (FileNotFoundError, ProcessLookupError):
        return None


def reap(owner: int, namespaces: list[str], paths: list[str], processes: list[str] = (),
         ports_namespaces: list[str] = (), journals: list[str] = ()) -> list[str]:
    """Put back and delete what `owner` left: kill its processes and those in its
    namespaces, move its DUT ports home, delete the namespaces, restore a lab DUT from
    a journal it left, remove its files. The failures."""
    for process in processes:
        pid, _, started = process.partition(" ")
        if _start_time(int(pid)) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    # the reaper process's side: these import this module
    from harness.drivers.netns import delete_namespace
    failures = []
    if ports_namespaces:
        from harness.drivers.portsnetns import empty_namespace
        for name in ports_namespaces:
            if carries_pid(name, owner):
                failures += empty_namespace(name)
    for name in namespaces:
        if carries_pid(name, owner) and (failure := delete_namespace(name)):
            failures.append(failure)
    for journal in journals:
        path, lab_file = json.loads(journal)
        if os.path.exists(path):  # a clean release removed it: nothing to load
            from harness.drivers.dutstate import recover_journal_of
            failures += recover_journal_of(owner, path, lab_file)
    for path in paths:
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            failures.append(f"{path}: {exc.strerror}")
    return failures


def leftovers_of(pid: int) -> list[str]:
    """What process `pid`, now gone, left behind, each named: namespaces and their bind
    mounts carrying its pid, its files in the temporary directory (`pj<pid>x...`,
    `pjgen<pid>-...`), and processes still bound to it (its reaper, a bpftrace `-p pid`)."""
    from harness.drivers.netns import NETNS_RUN_DIR  # the reaper process's side: netns imports this module
    tmp = tempfile.gettempdir()
    found = [f"namespace {name}" for name in sorted(os.listdir(NETNS_RUN_DIR))
             if name.startswith("pj") and carries_pid(name, pid)] if os.path.isdir(NETNS_RUN_DIR) else []
    with open("/proc/self/mountinfo") as f:
        found += [f"mount {fields[4]}" for fields in map(str.split, f)
                  if fields[4].startswith(NETNS_RUN_DIR + "/pj") and carries_pid(os.path.basename(fields[4]), pid)
                  and f"namespace {os.path.basename(fields[4])}" not in found]
    found += [f"file {os.path.join(tmp, name)}" for name in sorted(os.listdir(tmp))
              if re.match(rf"pj(gen)?{pid}[x-]", name)]
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")[:-1]
        except (FileNotFoundError, ProcessLookupError):
            continue
        reaps = argv[-2:] == ["harness.drivers.reaper", str(pid)]
        traces = argv[:1] and os.path.basename(argv[0]) == "bpftrace" and "-p" in argv and \
            argv[argv.index("-p") + 1:][:1] == [str(pid)]
        if reaps or traces:
            found.append(f"process {entry}: {' '.join(argv).strip()[:80]}")
    return found


def main(argv: list[str]) -> int:
    owner = int(argv[0])
    # only end of file ends it: not a terminal's hangup or Ctrl-C
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    told: dict[str, list[str]] = {"netns": [], "path": [], "process": [], "ports": [], "journal": []}
    for line in sys.stdin.buffer:
        kind, _, name = line.decode().rstrip("\n").partition(" ")
        told[kind].append(name)
    failures = reap(owner, told["netns"], told["path"], told["process"], told["ports"], told["journal"])
    for failure in failures:
        print(f"packet-journey reaper of pid {owner}: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
