"""The DUT half of `--target=dut`: everything that observes or acts on the DUT's
network namespace, whichever side of the wires the frames come from.

`DutSide(lab)` holds the observers of dut.py's module doc (drops from `skb:kfree_skb`,
nftrace, XDP and TC run counts, conntrack through ctnetlink, rule and load counters)
and the application sockets and eBPF event readers of a test. `lab` is anything with
NetnsLab's interface as the observers use it (`dut`, `dut_inode`, `run`, `socket`,
`read_proc_net`, `inside`, `other_addresses`, `host_inodes`, `lab_ifindexes`,
`owns_namespace`):
the netns lab's DUT namespace (NetnsTarget), or `HereLab`, the namespace this process
runs in (the agent on a lab DUT, drivers/agent.py, which serves a DutSide to the
harness over SSH).

A configuration command runs between `before_command(argv)` (which returns the argv
to run) and `after_command(argv, output)`; a traffic run between `begin_load_run()`
and `end_load_run()`. Every method takes and returns plain data, so that the agent can
serve it remotely (application sockets and event readers stay in the agent, which
hands out handles to them).
"""
from __future__ import annotations

import errno
import fcntl
import gzip
import json
import os
import select
import shutil
import socket
import struct
import tempfile
import termios
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from harness.drivers import load_counters, nfnetlink
from harness.drivers.bpf_events import open_event_reader
from harness.drivers.ct_table import HostConntrackTable
from harness.drivers.kfree_skb import KfreeSkbTracer, NetnsDrops
from harness.drivers.netns import NetnsLab, require_tool
from harness.drivers.reaper import reaper
from harness.drivers.nftrace import NftTrace, hide_trace_table, parse_ruleset, rule_counters
from harness.drivers.xdpstats import BpfRunObserver
from harness.dropreason import DropReason
from harness.journey import CtEntry, Drop, Journey, RuleCounter, Stage
from harness.target import (
    PORTS,
    AppSocket,
    CommandError,
    EventReader,
    Port,
    StreamSocket,
    TargetError,
    TcpInfo,
    TcpState,
    check_readable,
)
from harness.traffic import Loss

# What `sh()` runs: the configuration tools operators use, the counters' readers
# (nstat, ss; cat of /proc/net/* and /proc/sys/* only), nothing else.
SH_PROGRAMS = frozenset({
    "ip", "nft", "iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore",
    "tc", "sysctl", "ethtool", "conntrack", "bpftool", "nstat", "ss", "cat", "bridge",
})
# The ones that change nf_tables rulesets (iptables is iptables-nft on Debian).
RULESET_PROGRAMS = frozenset({"nft", "iptables", "iptables-restore", "ip6tables", "ip6tables-restore"})

MAX_DATAGRAM = 65535
# Application sockets by `proto`: the IP protocol of the SOCK_DGRAM socket, and the
# /proc/net table listing it (a ping socket is SOCK_DGRAM + IPPROTO_ICMP).
APP_SOCKETS = {"udp": (socket.IPPROTO_UDP, "udp"), "icmp": (socket.IPPROTO_ICMP, "icmp")}
# the /proc/net file of each protocol's IPv6 sockets (udp6_seq_show(), ping_v6_seq_show())
APP_SOCKETS6 = {"udp": (socket.IPPROTO_UDP, "udp6"), "icmp": (socket.IPPROTO_ICMPV6, "icmp6")}
# Fields of a /proc/net/udp and /proc/net/icmp row (udp4_format_sock(), ping_v4_format_sock())
PROC_NET_INODE = 9
PROC_NET_DROPS = 12

# struct tcp_info (include/uapi/linux/tcp.h) up to tcpi_rcv_wnd (Linux 6.2), in order:
# (field, struct format); the kernel copies min(optlen, sizeof) bytes.
TCP_INFO_FIELDS = (
    ("state", "B"), ("ca_state", "B"), ("retransmits", "B"), ("probes", "B"), ("backoff", "B"),
    ("options", "B"), ("wscale", "B"), ("app_limited", "B"),
    ("rto", "I"), ("ato", "I"), ("snd_mss", "I"), ("rcv_mss", "I"),
    ("unacked", "I"), ("sacked", "I"), ("lost", "I"), ("retrans", "I"), ("fackets", "I"),
    ("last_data_sent", "I"), ("last_ack_sent", "I"), ("last_data_recv", "I"), ("last_ack_recv", "I"),
    ("pmtu", "I"), ("rcv_ssthresh", "I"), ("rtt", "I"), ("rttvar", "I"), ("snd_ssthresh", "I"),
    ("snd_cwnd", "I"), ("advmss", "I"), ("reordering", "I"), ("rcv_rtt", "I"), ("rcv_space", "I"),
    ("total_retrans", "I"), ("pacing_rate", "Q"), ("max_pacing_rate", "Q"), ("bytes_acked", "Q"),
    ("bytes_received", "Q"), ("segs_out", "I"), ("segs_in", "I"), ("notsent_bytes", "I"), ("min_rtt", "I"),
    ("data_segs_in", "I"), ("data_segs_out", "I"), ("delivery_rate", "Q"), ("busy_time", "Q"),
    ("rwnd_limited", "Q"), ("sndbuf_limited", "Q"), ("delivered", "I"), ("delivered_ce", "I"),
    ("bytes_sent", "Q"), ("bytes_retrans", "Q"), ("dsack_dups", "I"), ("reord_seen", "I"),
    ("rcv_ooopack", "I"), ("snd_wnd", "I"), ("rcv_wnd", "I"),
)
TCP_INFO = struct.Struct("=" + "".join(fmt for _, fmt in TCP_INFO_FIELDS))  # each field is aligned: no padding
TCP_INFO_NAMES = tuple(name for name, _ in TCP_INFO_FIELDS)
# setsockopt(TCP_REPAIR, TCP_REPAIR_ON) (include/uapi/linux/tcp.h): a socket in repair
# mode closes without a segment (tcp_disconnect())
TCP_REPAIR, TCP_REPAIR_ON = 19, 1
# tcp_ioctl(): SIOCINQ is FIONREAD, SIOCOUTQ is TIOCOUTQ (include/uapi/linux/sockios.h)
SIOCINQ, SIOCOUTQ = termios.FIONREAD, termios.TIOCOUTQ


def check_command(argv: Sequence[str]) -> None:
    """CommandError unless `argv` is a configuration command a target runs (SH_PROGRAMS;
    `cat` of the kernel's counters only). Checked where the test runs, before anything
    reaches the DUT."""
    if not argv:
        raise CommandError(argv, "empty command")
    if argv[0] not in SH_PROGRAMS:
        raise CommandError(argv, f"`{argv[0]}` is not a configuration command this target runs; "
                                 f"it runs {', '.join(sorted(SH_PROGRAMS))}")
    if argv[0] == "cat":
        check_readable(argv)


# nf_flow_table (the flow tables), nf_flow_table_inet (the ip, ip6 and inet flowtable
# types) and nft_flow_offload (`flow add @ft`)
FLOWTABLE_CONFIG = ("CONFIG_NF_FLOW_TABLE", "CONFIG_NF_FLOW_TABLE_INET", "CONFIG_NFT_FLOW_OFFLOAD")


def kernel_config(option: str) -> bool:
    """Whether this kernel was built with `option` (=y or =m), as /proc/config.gz
    (CONFIG_IKCONFIG_PROC) or /boot/config-RELEASE says; False when neither is there."""
    for path, opener in (("/proc/config.gz", gzip.open), (f"/boot/config-{os.uname().release}", open)):
        try:
            with opener(path, "rt") as config:
                return any(line.startswith((f"{option}=y", f"{option}=m")) for line in config)
        except OSError:
            continue
    return False


@dataclass
class LoadRunObservation:
    """What the DUT saw of a traffic run: its counters before and after, and the drops
    the tracer counted meanwhile, by (reason, stage, location); None without drop
    reasons (`no_drop_reasons` says why)."""

    before: load_counters.Snapshot
    after: load_counters.Snapshot
    drop_counts: dict[tuple[DropReason, Stage, str], int] | None
    no_drop_reasons: str = ""

    def losses(self, tester_before: str | None = None,
               tester_after: str | None = None) -> tuple[list[Loss], list[str]]:
        """The run's losses and notes; `tester_before`/`after`: the tester's
        /proc/net/dev around the run, where the tester is a namespace of this host."""
        before, after = self.before, self.after
        if tester_before is not None and tester_after is not None:
            before = load_counters.with_tester(before, tester_before)
            after = load_counters.with_tester(after, tester_after)
        counter_losses, notes = load_counters.compare(before, after)
        if self.drop_counts is None:
            notes.append(f"no drop reasons ({self.no_drop_reasons}): losses are what the counters name")
            return counter_losses, notes
        return [Loss(stage, reason, where, packets) for (reason, stage, where), packets
                in sorted(self.drop_counts.items(), key=lambda item: -item[1])], notes


class DutSide:
    """The observers of one DUT namespace and the test's applications in it (module doc).

    `nftrace=False` leaves packets untraced (load runs: tracing costs the kernel a
    netlink message per chain and rule a packet crosses). Closing it leaves `lab` open.
    """

    def __init__(self, lab: NetnsLab, nftrace: bool = True) -> None:
        self.lab = lab
        self._closed = False
        self._sockets: list[DutSocket | DutStreamSocket] = []
        self._event_readers: list[EventReader] = []
        self._drops: NetnsDrops | None = None
        self._nftrace: NftTrace | None = None
        self._bpf_runs: BpfRunObserver | None = None
        self._load_run: ExitStack | None = None
        self._nstat_history = os.path.join(tempfile.gettempdir(), f"{lab.dut}.nstat")
        reaper().path(self._nstat_history)
        self._conntrack_table = HostConntrackTable(lab)
        capabilities = {"kernel", "frames", "sockets"}
        try:
            try:
                self._drops = KfreeSkbTracer.shared(lab.host_inodes, lab.lab_ifindexes).watch(lab)
                capabilities.add("drop_reasons")
            except TargetError as exc:  # bpftrace missing or failing: no drop reasons
                self._no_drop_reasons = str(exc)
            if shutil.which("nft"):
                capabilities.add("nftables")
                if nftrace:
                    capabilities.add("nftrace")  # netfilter hops, netdev ingress included
            if os.path.isdir("/proc/sys/net/ipv6"):  # a kernel built with IPv6 and not booted ipv6.disable=1
                capabilities.add("ipv6")
            capabilities.add("xdp")  # native XDP: `ip link set dev pN xdp obj ...`
            capabilities.add("tc")  # clsact + cls_bpf: `tc filter add dev pN ingress bpf da obj ...`
            capabilities.add("bpf_events")  # ring buffers and perf event arrays read through bpf(2)
            if shutil.which("bpftool"):
                capabilities.add("bpftool")
                try:
                    self._bpf_runs = BpfRunObserver(lab)
                    capabilities.update({"journey.xdp", "journey.tc"})  # TC ingress and egress
                except TargetError as exc:  # no BPF_ENABLE_STATS: program runs are not counted
                    self._no_xdp_journeys = str(exc)
            if kernel_config("CONFIG_BRIDGE_VLAN_FILTERING"):
                capabilities.add("bridge_vlan_filtering")  # `ip link add ... type bridge vlan_filtering 1`
            if kernel_config("CONFIG_NFT_QUEUE"):
                capabilities.add("nft_queue")  # nft's `queue` statement (the netns lab's 6.18 has none: ENOENT)
            if all(kernel_config(option) for option in FLOWTABLE_CONFIG):
                capabilities.add("nft_flowtable")  # flowtables and `flow add` (the netns lab's 6.18: ENOENT)
            try:
                nfnetlink.check_conntrack(lab)
                capabilities.add("conntrack")
            except (TargetError, OSError) as exc:  # no ctnetlink in this kernel
                self._no_conntrack = str(exc)
        except BaseException:
            self.close()
            raise
        self.capabilities = frozenset(capabilities)

    # configuration -----------------------------------------------------------
    def before_command(self, argv: list[str]) -> list[str]:
        """Get ready for configuration command `argv` (check_command() passed): read
        what was traced so far, against the ruleset it ran through. The argv to run."""
        require_tool(argv[0])
        if argv[0] == "nstat":  # its history file is per user, in /tmp: give this DUT its own
            return ["env", f"NSTAT_HISTORY={self._nstat_history}", *argv]
        if argv[0] in RULESET_PROGRAMS and "nftrace" in self.capabilities:
            # pj_trace is there before the test's first ruleset, and back after a flush
            if self._nftrace is None:
                self._nftrace = NftTrace(self.lab)
            self._nftrace.before_ruleset_command()
        return argv

    def after_command(self, argv: list[str], output: str | None) -> str | None:
        """After `argv` ran, even if it failed (`output` None): put back the pj_trace
        tables it deleted, and count each send's XDP and TC runs from the first
        program attached. Its output as the test's own configuration would give it."""
        if argv[0] in RULESET_PROGRAMS and "nftrace" in self.capabilities:
            self._nftrace.after_ruleset_command()
            return hide_trace_table(argv, output) if argv[0] == "nft" and output is not None else output
        if output is not None and self._bpf_runs is not None and attaches_bpf(argv):
            self._bpf_runs.active = True  # from now on each send is counted
        return output

    def port_mtu(self, port: str) -> int:
        link = json.loads(self.lab.run(self.lab.dut, ["ip", "-json", "link", "show", port]))
        return link[0]["mtu"]

    # frames ------------------------------------------------------------------
    def before_send(self, port: Port, frames: list[bytes]) -> None:
        """`frames` are about to enter DUT `port`: snapshot the XDP and TC counters."""
        if self._bpf_runs is not None:
            self._bpf_runs.before_send(port, frames)

    # applications, observation -----------------------------------------------
    def socket(self, proto: str, bind: tuple[str, int] | None, rcvbuf: int | None, sndbuf: int | None,
               timeout: float, family: int = socket.AF_INET) -> AppSocket | StreamSocket:
        """An application's socket in the DUT namespace (Target.socket()); `timeout`:
        how long its waits take by default (the target's positive timeout)."""
        if proto == "tcp":
            sock: AppSocket | StreamSocket = DutStreamSocket.open(self.lab, bind, rcvbuf, sndbuf, timeout,
                                                                  self._sockets, family)
        else:
            if bind is None:
                raise TargetError(f"a {proto} socket needs an address to bind to")
            sock = DutSocket(self.lab, proto, bind, rcvbuf, sndbuf, timeout, family)
            self._sockets.append(sock)
        return sock

    def journeys(self, frames_out: list[bytes], drops: list[Drop] | None) -> list[Journey]:
        """The netfilter hops of every traced packet (once the test configured nftables),
        with its drop; drops of other packets as journeys of their own; XDP hops first.
        `drops`: what drops() returned just before (None: no drop reasons), which synced
        the DUT before the caller collected `frames_out`, the frames that left the DUT
        since reset()."""
        if self._nftrace is None:
            journeys = [Journey(packet=drop.packet, drop=drop) for drop in
                        (drops if drops is not None else self.drops())]
        else:
            readable = "conntrack" in self.capabilities
            journeys = self._nftrace.journeys(drops or [], frames_out, self.conntrack if readable else None)
        return self._bpf_runs.merge(journeys) if self._bpf_runs is not None else journeys

    def drops(self) -> list[Drop]:
        if self._drops is None:
            raise TargetError(f"this target cannot see drop reasons: {self._no_drop_reasons}")
        return self._drops.drops()

    def counters(self) -> list[RuleCounter]:
        """Every rule with an anonymous counter, from `nft -a list ruleset`: the rule's
        text as nft lists it, less `counter packets N bytes M` and its handle."""
        require_tool("nft")
        return rule_counters(parse_ruleset(self.lab.run(self.lab.dut, ["nft", "-a", "list", "ruleset"])))

    def conntrack(self) -> list[CtEntry]:
        """The namespace's conntrack table, less the connections of addresses that are
        not the test's (a lab DUT's management: the harness's own SSH session)."""
        if "conntrack" not in self.capabilities:
            raise TargetError(f"this target cannot read the conntrack table: {self._no_conntrack}")
        entries = nfnetlink.conntrack_entries(self.lab)
        if others := self.lab.other_addresses():
            return [entry for entry in entries if others.isdisjoint(entry.original[:2] + entry.reply[:2])]
        return entries

    def conntrack_create(self, entries: Iterable[CtEntry]) -> None:
        if "conntrack" not in self.capabilities:
            raise TargetError(f"this target cannot create conntrack entries: {self._no_conntrack}")
        entries = list(entries)
        self._conntrack_table.claim_for(len(entries))
        nfnetlink.create_entries(self.lab, entries)

    def bpf_events(self, map_id: int) -> EventReader:
        reader = open_event_reader(map_id)
        self._event_readers.append(reader)
        return reader

    # traffic at rate -----------------------------------------------------------
    def begin_load_run(self) -> None:
        """A traffic run starts: trace nothing (no nftrace), count drops in the kernel
        rather than report them one by one, and take the counters."""
        stack = ExitStack()
        try:
            if self._nftrace is not None:
                stack.enter_context(self._nftrace.untraced())
            self._drop_counts = stack.enter_context(self._drops.counting()) if self._drops is not None else None
            self._counters_before = load_counters.take(self.lab, "nftables" in self.capabilities)
        except BaseException:
            stack.close()
            raise
        self._load_run = stack

    def proc_net_dev(self) -> str:
        """The DUT's /proc/net/dev: whether its devices still move packets (draining)."""
        return self.lab.read_proc_net(self.lab.dut, "dev")

    def qdisc_backlog(self) -> int:
        return load_counters.qdisc_backlog(self.lab)

    def end_load_run(self) -> LoadRunObservation:
        """The run is over (or failed): take the counters, stop counting drops, trace
        again. What the DUT saw of it."""
        if self._load_run is None:
            raise TargetError("end_load_run() without begin_load_run()")
        stack, self._load_run = self._load_run, None
        with stack:
            after = load_counters.take(self.lab, "nftables" in self.capabilities)
        return LoadRunObservation(self._counters_before, after, self._drop_counts,
                                  "" if self._drops is not None else self._no_drop_reasons)

    # phases --------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every observation so far (a new phase of the test). First the drops:
        their sentinel syncs the DUT, so what was sent has left it."""
        if self._drops is not None:
            self._drops.clear()
        if self._nftrace is not None:
            self._nftrace.clear()
        if self._bpf_runs is not None:
            self._bpf_runs.clear()

    def close(self) -> None:
        """Release the test's sockets, readers and observers; safe twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._load_run is not None:
                self._load_run.close()
            for sock in self._sockets:  # a listener's release() appends what it accepts: seen here too
                if isinstance(sock, DutStreamSocket):
                    sock.release()
                else:
                    sock.close()
            if not self.lab.owns_namespace and any(isinstance(sock, DutStreamSocket) for sock in self._sockets):
                self._destroy_tcp_left_behind()
            for reader in self._event_readers:
                reader.close()
            if self._nftrace is not None:  # its reader thread stops before the lab closes its sockets
                self._nftrace.close()
            if self._drops is not None:
                self._drops.close()
            if self._bpf_runs is not None:
                self._bpf_runs.close()
        finally:
            try:
                self._conntrack_table.release()
            finally:
                if os.path.exists(self._nstat_history):
                    os.unlink(self._nstat_history)


    def _destroy_tcp_left_behind(self) -> None:
        """In a namespace that outlives the test (a lab DUT's own), the connections its
        sockets leave (TIME_WAIT for 60 s, orphans still closing) would meet the next
        test: destroyed by their local address on the ports with SOCK_DESTROY (`ss -K`,
        tcp_abort(), which takes TIME_WAIT too; CONFIG_INET_DIAG_DESTROY)."""
        ports = {port.name for port in PORTS}
        local = sorted(address["local"] for link in json.loads(self.lab.run(self.lab.dut, ["ip", "-j", "addr"]))
                       if link["ifname"] in ports for address in link.get("addr_info", []))
        if local:
            # an IPv6 address in brackets, or ss would read its last group as a port
            where = " or ".join(f"src [{address}]" if ":" in address else f"src {address}" for address in local)
            self.lab.run(self.lab.dut, ["ss", "-K", "-tn", "state", "all", f"( {where} )"])


def attaches_bpf(argv: Sequence[str]) -> bool:
    """`argv` attaches (or detaches) an XDP program or a TC filter to a port."""
    return (argv[:3] == ["ip", "link", "set"] and bool({"xdp", "xdpdrv", "xdpgeneric"} & set(argv))
            or argv[:3] == ["tc", "filter", "add"])


class DutSocket(AppSocket):
    """A UDP socket or ICMP ping socket of an application in the DUT namespace."""

    def __init__(self, lab: NetnsLab, proto: str, bind: tuple[str, int], rcvbuf: int | None,
                 sndbuf: int | None, timeout: float, family: int = socket.AF_INET):
        if proto not in APP_SOCKETS:
            raise TargetError(f"socket proto {proto!r} is not supported; use 'udp', 'icmp' or 'tcp'")
        ipproto, self._proc_net = (APP_SOCKETS6 if family == socket.AF_INET6 else APP_SOCKETS)[proto]
        self.lab, self.proto, self.bind, self.timeout = lab, proto, bind, timeout
        self.sock = lab.socket(lab.dut, family, socket.SOCK_DGRAM, ipproto)
        try:
            set_buffers(self.sock, rcvbuf, sndbuf)
            self.sock.bind(bind)
        except OSError as exc:
            self.sock.close()
            raise TargetError(f"{proto} socket bind {bind}: {exc.strerror}") from exc
        self.sock.setblocking(False)
        self.inode = os.fstat(self.sock.fileno()).st_ino

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        """As the application calls it: the kernel's errors (EPERM from a netfilter
        drop on output, ENETUNREACH, ...) reach the caller as OSError."""
        self.sock.sendto(data, addr)

    def recv(self) -> tuple[bytes, tuple[str, int]]:
        ready, _, _ = select.select([self.sock], [], [], self.timeout)
        if not ready:
            raise TargetError(f"{self.proto} socket {self.bind}: nothing received in {self.timeout} s")
        return self._recvfrom()

    def recv_all(self) -> list[tuple[bytes, tuple[str, int]]]:
        datagrams = []
        while True:
            try:
                datagrams.append(self._recvfrom())
            except BlockingIOError:
                return datagrams

    def _recvfrom(self) -> tuple[bytes, tuple[str, int]]:
        data, peer = self.sock.recvfrom(MAX_DATAGRAM)
        return data, peer[:2]  # an IPv6 peer's flow info and scope id are left out

    def drops(self) -> int:
        """The `drops` column of this socket's line in /proc/net/udp (or icmp)."""
        for line in self.lab.read_proc_net(self.lab.dut, self._proc_net).splitlines()[1:]:
            fields = line.split()
            if int(fields[PROC_NET_INODE]) == self.inode:
                return int(fields[PROC_NET_DROPS])
        raise TargetError(f"{self.proto} socket {self.bind} (inode {self.inode}) is not in "
                          f"/proc/net/{self._proc_net} of {self.lab.dut}")

    def close(self) -> None:
        self.sock.close()


def set_buffers(sock: socket.socket, rcvbuf: int | None, sndbuf: int | None) -> None:
    """SO_RCVBUF/SO_SNDBUF as given (the kernel doubles them, capped by rmem_max/wmem_max)."""
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)


def tcp_info_of(raw: bytes, queues: Callable[[], tuple[int, int]]) -> TcpInfo:
    """TcpInfo from the bytes of getsockopt(TCP_INFO); `queues()` answers SIOCINQ and
    SIOCOUTQ, asked of any socket but a listener (tcp_ioctl() refuses it EINVAL)."""
    if len(raw) < TCP_INFO.size:
        raise TargetError(f"TCP_INFO gave {len(raw)} bytes, not {TCP_INFO.size}: this kernel predates "
                          "tcpi_rcv_wnd (Linux 6.2)")
    tcpi = dict(zip(TCP_INFO_NAMES, TCP_INFO.unpack(raw[:TCP_INFO.size])))
    state = TcpState(tcpi["state"])
    if state == TcpState.TCP_LISTEN:  # tcp_get_info(): the accept queue and its limit
        recv_q, send_q = tcpi["unacked"], tcpi["sacked"]
    else:
        recv_q, send_q = queues()
    return TcpInfo(
        state=state, recv_q=recv_q, send_q=send_q, cwnd=tcpi["snd_cwnd"], ssthresh=tcpi["snd_ssthresh"],
        rtt_us=tcpi["rtt"], rttvar_us=tcpi["rttvar"], rto_ms=tcpi["rto"] // 1000, mss=tcpi["snd_mss"],
        rcv_wnd=tcpi["rcv_wnd"], snd_wnd=tcpi["snd_wnd"], retrans=tcpi["retrans"],
        total_retrans=tcpi["total_retrans"], lost=tcpi["lost"], sacked=tcpi["sacked"],
        unacked=tcpi["unacked"], delivered=tcpi["delivered"], bytes_acked=tcpi["bytes_acked"],
        bytes_received=tcpi["bytes_received"])


# What poll(2) waits for on each StreamSocket.wait() event; POLLERR and POLLHUP end every wait.
WAIT_EVENTS = {
    "readable": select.POLLIN | select.POLLRDHUP,
    "writable": select.POLLOUT,
    "connected": select.POLLOUT,
}


class DutStreamSocket(StreamSocket):
    """A TCP socket of an application in the DUT namespace: a real non-blocking
    socket; the kernel's errors reach the caller as the OSError Python raises for
    their errno. `opened`: the DutSide's sockets, which accept() adds to, so that
    every socket of a test is closed with it."""

    def __init__(self, sock: socket.socket, timeout: float, opened: list) -> None:
        sock.setblocking(False)
        self.sock, self.timeout, self._opened = sock, timeout, opened
        opened.append(self)

    @classmethod
    def open(cls, lab: NetnsLab, bind: tuple[str, int] | None, rcvbuf: int | None, sndbuf: int | None,
             timeout: float, opened: list, family: int = socket.AF_INET) -> DutStreamSocket:
        sock = lab.socket(lab.dut, family, socket.SOCK_STREAM)
        try:
            set_buffers(sock, rcvbuf, sndbuf)
            if bind is not None:
                sock.bind(bind)
        except BaseException:
            sock.close()
            raise
        return cls(sock, timeout, opened)

    def bind(self, addr: tuple[str, int]) -> None:
        self.sock.bind(addr)

    def listen(self, backlog: int) -> None:
        self.sock.listen(backlog)

    def accept(self) -> tuple[DutStreamSocket, tuple[str, int]]:
        sock, peer = self.sock.accept()
        return DutStreamSocket(sock, self.timeout, self._opened), peer[:2]

    def connect(self, addr: tuple[str, int]) -> None:
        self.sock.connect(addr)

    def send(self, data: bytes) -> int:
        return self.sock.send(data)

    def recv(self, bufsize: int) -> bytes:
        return self.sock.recv(bufsize)

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()

    def release(self) -> None:
        """At the end of the test: gone without a segment on the wire (no FIN, no RST, no
        TIME_WAIT), so none reaches the next test (a lab's capture runs across tests):
        closed in repair mode (CAP_NET_ADMIN). A listener accepts what its queue holds
        first, which the DutSide then releases too (closing it would reset them)."""
        if self.sock.fileno() == -1:
            return
        if self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            while True:
                try:
                    self.accept()
                except BlockingIOError:
                    break
        else:
            self.sock.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON)
        self.sock.close()

    def setsockopt(self, level: int, name: int, value: int | bytes) -> None:
        self.sock.setsockopt(level, name, value)

    def getsockopt(self, level: int, name: int) -> int:
        return self.sock.getsockopt(level, name)

    def wait(self, event: str, timeout: float | None = None) -> bool:
        if event not in WAIT_EVENTS:
            raise TargetError(f"a socket waits for {', '.join(WAIT_EVENTS)}, not {event!r}")
        if self.sock.fileno() == -1:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        poller = select.poll()
        poller.register(self.sock, WAIT_EVENTS[event])
        seconds = self.timeout if timeout is None else timeout
        if not poller.poll(max(seconds, 0.0) * 1000):
            return False
        if event == "connected":
            self._check_connected()
        return True

    def _check_connected(self) -> None:
        """After POLLOUT, POLLERR or POLLHUP: raise what ended the handshake, as a
        blocking connect() would (SO_ERROR, read and cleared), or ENOTCONN if the
        socket is not connected at all."""
        error = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            raise OSError(error, os.strerror(error))
        if self.info().state in (TcpState.TCP_CLOSE, TcpState.TCP_LISTEN):
            raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))

    def info(self) -> TcpInfo:
        raw = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO.size)
        return tcp_info_of(raw, lambda: (self._ioctl(SIOCINQ), self._ioctl(SIOCOUTQ)))

    def _ioctl(self, request: int) -> int:
        return struct.unpack("i", fcntl.ioctl(self.sock.fileno(), request, bytes(4)))[0]
