"""A real OpenSSH server (Debian's openssh-server) inside a lab network namespace:
the stand-in lab's DUT is reached over real SSH, as a lab DUT is.

`start_sshd()` generates an ed25519 host key and an ed25519 user key with
ssh-keygen, writes an sshd_config that allows root in by that key only, starts
`/usr/sbin/sshd -D -e -f CONFIG` with `ip netns exec`, and returns once a socket
opened inside the namespace gets the server's SSH banner. Everything (keys,
authorized_keys, known_hosts, pid file, log) lives in `workdir`; the host's own
sshd configuration and keys are neither read nor touched.

The host's network namespace is refused (`refuse_host_netns`). sshd needs its
privilege separation directory, /run/sshd (compiled in as _PATH_PRIVSEP_CHROOT_DIR;
Debian's unit creates it as RuntimeDirectory): created, empty and root-owned,
when missing.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.drivers.netns import NETNS_RUN_DIR, inside_netns, refuse_host_netns, require_root
from harness.target import TargetError, TargetUnavailable

# sshd re-executes itself, which needs an absolute path.
SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")
# Until the server answers with its banner; sshd starts in milliseconds.
START_TIMEOUT = 10.0
RETRY_INTERVAL = 0.02


@dataclass
class Sshd:
    """A running sshd: its address, the user key that logs in as root, a known_hosts
    file naming its host key (`host_key_line` is that line)."""

    netns: str
    address: str
    port: int
    user_key: Path
    known_hosts: Path
    host_key_line: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        """Stop the server and its sessions (each a process of its own session, which
        the listener's SIGTERM leaves running), as a DUT going down would; safe twice."""
        if self.process.poll() is None:
            for session in _children(self.process.pid):
                with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                    os.kill(session, signal.SIGKILL)
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Sshd:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_sshd(netns: str, listen: str, workdir: Path, port: int = 22, tmpdir: Path | None = None) -> Sshd:
    """Start sshd inside namespace `netns` on `listen`:`port`, keys and config in
    `workdir`; return once it answers (module doc). `tmpdir`: its sessions' TMPDIR
    (a DUT's temporary directory of its own, where what the harness leaves shows)."""
    require_root("sshd in a lab namespace")
    if not os.access(SSHD, os.X_OK):
        raise TargetUnavailable(f"{SSHD} is not installed: `apt-get install openssh-server`")
    netns_path = os.path.join(NETNS_RUN_DIR, netns)
    refuse_host_netns(os.stat(netns_path).st_ino, f"start sshd in {netns}")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    host_key = _keygen(workdir / "ssh_host_ed25519_key", f"packet-journey sshd {netns}")
    user_key = _keygen(workdir / "id_ed25519", f"packet-journey user for {netns}")
    authorized_keys = workdir / "authorized_keys"
    authorized_keys.write_text(user_key.with_suffix(".pub").read_text())
    host_key_line = f"{_known_hosts_name(listen, port)} {_public_key(host_key)}"
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(host_key_line + "\n")
    config = workdir / "sshd_config"
    config.write_text(_sshd_config(workdir, listen, port, host_key, authorized_keys, tmpdir))
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    log = workdir / "sshd.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(["ip", "netns", "exec", netns, SSHD, "-D", "-e", "-f", str(config)],
                                   stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                   start_new_session=True)
    sshd = Sshd(netns, listen, port, user_key, known_hosts, host_key_line, process, log)
    try:
        _wait_for_banner(sshd, netns_path)
    except BaseException:
        sshd.stop()
        raise
    return sshd


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc/PID/stat)."""
    children = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                # the command name may hold spaces and parentheses: fields follow the last ')'
                if int(f.read().rpartition(")")[2].split()[1]) == pid:
                    children.append(int(entry))
        except (FileNotFoundError, ProcessLookupError):  # it exited meanwhile
            continue
    return children


def _keygen(path: Path, comment: str) -> Path:
    for old in (path, path.with_suffix(".pub")):
        old.unlink(missing_ok=True)
    result = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise TargetError(f"ssh-keygen could not write {path}: {result.stderr.strip()}")
    return path


def _public_key(private_key: Path) -> str:
    """`ssh-ed25519 AAAA...`, without the comment."""
    return " ".join(private_key.with_suffix(".pub").read_text().split()[:2])


def _known_hosts_name(address: str, port: int) -> str:
    """The host as known_hosts names it: `[addr]:port` off port 22 (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT")."""
    return address if port == 22 else f"[{address}]:{port}"


def _sshd_config(workdir: Path, listen: str, port: int, host_key: Path, authorized_keys: Path,
                 tmpdir: Path | None) -> str:
    # StrictModes refuses authorized_keys under a group- or world-writable directory (/tmp)
    strict = "no" if _writable_by_others(workdir) else "yes"
    return "\n".join([
        f"ListenAddress {listen}",
        f"Port {port}",
        f"HostKey {host_key}",
        f"PidFile {workdir / 'sshd.pid'}",
        f"AuthorizedKeysFile {authorized_keys}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        f"StrictModes {strict}",
        "Subsystem sftp internal-sftp",
        # bash run by sshd sources ~/.bashrc only as a top-level shell (shell.c,
        # run_startup_files()); this host's root .bashrc may be slow (pyenv init)
        "SetEnv SHLVL=1" + (f' "TMPDIR={tmpdir}"' if tmpdir else ""),
        "LogLevel VERBOSE",
        "",
    ])


def _writable_by_others(path: Path) -> bool:
    """Whether `path` or a directory above it is group- or world-writable."""
    return any(os.stat(directory).st_mode & (stat.S_IWGRP | stat.S_IWOTH)
               for directory in (path, *path.parents))


def _wait_for_banner(sshd: Sshd, netns_path: str) -> None:
    """Connect from inside the namespace until the server sends `SSH-2.0-`."""
    family = socket.AF_INET6 if ":" in sshd.address else socket.AF_INET
    deadline = time.monotonic() + START_TIMEOUT
    reason: object = "no SSH banner"
    while True:
        if sshd.process.poll() is not None:
            raise TargetError(f"sshd in {sshd.netns} exited with status {sshd.process.returncode}: "
                              f"{sshd.log.read_text().strip()}")
        with inside_netns(netns_path):
            probe = socket.socket(family, socket.SOCK_STREAM)
        with probe:
            probe.settimeout(max(deadline - time.monotonic(), RETRY_INTERVAL))
            try:
                probe.connect((sshd.address, sshd.port))
                if probe.recv(8).startswith(b"SSH-2.0-"):
                    return
            except OSError as exc:
                reason = exc
        if time.monotonic() > deadline:
            raise TargetError(f"sshd in {sshd.netns} does not answer on {sshd.address}:{sshd.port} "
                              f"after {START_TIMEOUT:.0f} s ({reason}); its log {sshd.log}: "
                              f"{sshd.log.read_text().strip()}")
        time.sleep(RETRY_INTERVAL)
