"""XDP and TC hops of the real kernel, from program run counts and the devices'
counters.

The kernel does not trace XDP verdicts per packet; what it counts is enough when
frames arrive one at a time:

- run statistics: `bpftool prog show id N` gives `run_cnt` (and run_time_ns) of
  a program while statistics are enabled. The lab enables them with the bpf()
  command BPF_ENABLE_STATS (BPF_STATS_RUN_TIME), not with the global sysctl
  `kernel.bpf_stats_enabled`: the sysctl is host state every process shares
  (pytest-xdist workers' labs would switch it off under each other when restoring
  it, and a killed run would leave it on), while the command's fd keeps
  statistics on exactly as long as the lab holds it, counted per holder, and the
  kernel drops it when the process dies. The sysctl reads 0 meanwhile.
- veth's per-queue XDP counters (`ethtool -S pN`, veth_get_ethtool_stats()):
  rx_queue_Q_xdp_packets (frames through the XDP path), _xdp_drops (XDP_DROP and
  XDP_ABORTED alike: veth_xdp_rcv_skb() counts both there), _xdp_tx, _xdp_redirect,
  and tx_queue_Q_xdp_xmit on the port frames were redirected or sent out of.

Before each send the lab snapshots them for every DUT port with a program; the
difference up to the next snapshot (or up to `journeys()`) belongs to that send.
With one frame per send the verdict is exact: DROP, TX, REDIRECT (to the port
whose xdp_xmit rose) or PASS. A program attached in generic mode (`xdpgeneric`,
`bpftool net show` "mode": "generic") runs in do_xdp_generic(), which veth's
counters never see: its hop has no verdict (its drop still comes from the drop
tracer). Several frames in one send get one verdict if they
all got the same; otherwise each gets a hop without a verdict whose summary gives
the counts. What the lab cannot tell: ABORTED from DROP (both are drops; the mock
says ABORTED), and a frame that was still in flight when the next snapshot was
taken (veth runs XDP in the softirq of the sending call, so this needs a full
backlog). The hops are `Hop("XDP", port, verdict, summary)`, as on the mock,
followed for TX and REDIRECT by `Hop("NIC_TX", egress port, "XMIT")`.

TC from the run counts of the clsact programs of each port, by direction
(`bpftool net show` lists them as clsact/ingress and clsact/egress), and the
counters that tell one TC action from another:

- the clsact qdisc's `drops` (`tc -s -j qdisc show`): tc_run() (net/core/dev.c)
  counts a TC_ACT_SHOT there with mini_qdisc_qstats_cpu_drop(), in either
  direction: mini_qdisc_pair_init() (net/sched/sch_generic.c) points the
  ingress and the egress miniq at the one qdisc's per-CPU stats (its `packets`
  count both directions' classified packets too);
- each port's transmit counters (/proc/net/dev: tx packets + tx drop): a frame
  the egress programs let through reaches its port's driver; one they
  bpf_redirect()ed out of another device (skb_do_redirect() -> __bpf_tx_skb()
  -> dev_queue_xmit()) reaches that device's instead. A redirect into a
  device's ingress (BPF_F_INGRESS: dev_forward_skb()) counts nowhere;
- Ip InReceives (/proc/net/snmp of the DUT namespace), counted by ip_rcv_core()
  for a frame that reached IPv4 (after its OTHERHOST check).

cls_bpf itself counts nothing per filter: in direct-action mode
cls_bpf_classify() (net/sched/cls_bpf.c) returns the program's code through
cls_bpf_exec_opcode() and runs no actions, and `tc -s filter show` prints only
actions' statistics (tcf_exts_dump_stats()): a `da` filter shows none (seen on
the lab).

With one frame per send, the verdicts (the summary says what each came from):

    TC_INGRESS SHOT      the qdisc's drops rose
               REDIRECT an IPv4 frame that never reached ip_rcv (InReceives
                        unchanged) reached one DUT port's driver or egress
                        programs (then NIC_TX there, or that port's TC_EGRESS)
               none     otherwise: OK, UNSPEC, STOLEN, TRAP and a redirect
                        into a device's ingress count alike (the summary says
                        whether IP counted the frame)
    TC_EGRESS  SHOT     the qdisc's drops rose
               OK       the port's driver took the frame: TC_ACT_OK, or a code
                        direct-action turns into UNSPEC (PIPE, RECLASSIFY,
                        QUEUED, ...), which sch_handle_egress() handles alike;
                        the counters cannot tell them apart (the mock names the
                        program's code). Then NIC_TX there.
               REDIRECT one other DUT port took it instead (NIC_TX there, or
                        that port's own TC_EGRESS hop)
               none     nothing took it and nothing dropped it: STOLEN, TRAP,
                        a redirect into a device's ingress, a redirect that
                        failed (the drop says so)

Several frames in one send share a verdict when the counts fit every one of
them (each counter moved by the number of frames); otherwise each gets a hop
without a verdict whose summary gives the counts. A TC egress that ran fewer
times than frames were sent gives no hop: which of them crossed it is unknown.
A port with programs in both directions shares one drop counter: when both ran
for one frame, the drops are egress's (its programs ran on something the
frame caused, so ingress let it through); with several frames they are
nobody's and neither hop gets a verdict.

Whose hop: TC egress on the port the frame came in on (not redirected there)
ran on packets the DUT sent in answer (an echo reply, an ICMP error): their
hops go to the answer's journey (nftrace's child of the frame's, or a child of
its own without tracing); on any other port, on the frame itself, forwarded or
redirected. A TC_EGRESS hop goes after the journey's netfilter hops (after
NF_POSTROUTING and its NAT rewrite, before NIC_TX), as on the mock. What the
lab cannot see: which program of several gave the verdict (one hop per port
and direction; the mock gives one per program run), a frame forwarded back
out of the port it came in on (taken for an answer), and other packets
crossing the same egress in the same send (an ARP request for an unresolved
neighbour counts like the frame).
"""
from __future__ import annotations

import json
import os
import re
import socket
import struct
from dataclasses import dataclass, field

from harness.drivers.bpf_events import bpf
from harness.drivers.kfree_skb import TC_REDIRECT_LOCATIONS, KfreeSkbEvent
from harness.journey import Hop, Journey, Stage
from harness.mockkernel.wire import ethernet
from harness.mockkernel.wire.ethernet import ETH_HLEN, ETH_P_IP
from harness.mockkernel.wire.ipv4 import IPV4_MIN_HLEN, Ipv4Packet
from harness.target import PORTS, Port

BPF_ENABLE_STATS, BPF_STATS_RUN_TIME = 32, 0  # bpf(2) command and stats type
COUNTER = re.compile(r"^\s*(rx|tx)_queue_\d+_(xdp_\w+): (\d+)$")
DIRECTIONS = ("ingress", "egress")
# /proc/net/dev after "name:": 8 receive columns, then bytes packets errs drop ... of transmit
PROC_NET_DEV_TX_PACKETS, PROC_NET_DEV_TX_DROP = 9, 11
AFTER_TC_EGRESS = frozenset({Stage.QDISC, Stage.NIC_TX})
ENDS = frozenset({"DROP", "SHOT"})
# "10.0.0.2 > 10.0.1.2 udp id=4 ttl=63 len=29": protocol, IP ID and length survive forwarding and NAT
PACKET_KEY = re.compile(r" (\S+(?: \d+)?) id=(\d+) ttl=\d+ len=(\d+)")


def enable_run_stats() -> int:
    """An fd that keeps BPF run statistics on until it is closed (kernel 5.8+)."""
    return bpf(BPF_ENABLE_STATS, struct.pack("<I", BPF_STATS_RUN_TIME),
               "BPF_ENABLE_STATS (needs CAP_SYS_ADMIN and Linux 5.8+)")


@dataclass
class PortCounters:
    """One DUT port at one moment: its XDP program (id, run_cnt), veth's counters,
    its clsact programs' run counts by direction, the clsact qdisc's drops and
    what its driver took to transmit."""

    prog_id: int | None = None
    run_cnt: int = 0
    generic: bool = False  # the XDP program is attached in generic mode (veth counts none of its verdicts)
    counters: dict[str, int] = field(default_factory=dict)  # "rx_xdp_drops", "tx_xdp_xmit", ...
    tc_runs: dict[str, dict[int, int]] = field(default_factory=dict)  # direction -> program id -> run_cnt
    clsact_drops: int = 0
    sent: int = 0  # tx packets + tx drop

    def tc_ran(self, later: PortCounters, direction: str) -> int:
        """Runs of the programs attached in `direction` at both moments."""
        now = later.tc_runs.get(direction, {})
        return sum(now[prog] - runs for prog, runs in self.tc_runs.get(direction, {}).items() if prog in now)

    def delta(self, later: PortCounters, name: str) -> int:
        return later.counters.get(name, 0) - self.counters.get(name, 0)


@dataclass
class Snapshot:
    ports: dict[str, PortCounters]
    ip_in_receives: int = 0  # Ip InReceives of the DUT namespace


@dataclass
class Send:
    port: Port
    frames: list[bytes]
    before: Snapshot


@dataclass
class PortDelta:
    """What one port counted during one send."""

    ingress_runs: int
    egress_runs: int
    clsact_drops: int
    sent: int

    @classmethod
    def between(cls, before: PortCounters, after: PortCounters) -> PortDelta:
        return cls(before.tc_ran(after, "ingress"), before.tc_ran(after, "egress"),
                   after.clsact_drops - before.clsact_drops, after.sent - before.sent)

    def drops(self, direction: str, frames: int) -> int | None:
        """The drops that belong to `direction`; None when both directions ran on
        several frames, so the shared counter belongs to neither (module doc)."""
        if not (self.ingress_runs and self.egress_runs):
            return self.clsact_drops
        if frames == 1:
            return self.clsact_drops if direction == "egress" else 0
        return None if self.clsact_drops else 0


@dataclass
class FrameHops:
    """One sent frame's hops: `first` before anything else in its journey (XDP,
    TC ingress), `egress` its own TC egress crossings (forwarded or redirected),
    `answers` the TC egress hops of each packet the DUT sent in answer to it."""

    first: list[Hop] = field(default_factory=list)
    egress: list[Hop] = field(default_factory=list)
    answers: list[list[Hop]] = field(default_factory=list)

    @property
    def dropped_at(self) -> str | None:
        own = self.first + self.egress
        return own[-1].stage if own and own[-1].verdict in ENDS else None

    def __bool__(self) -> bool:
        return bool(self.first or self.egress or self.answers)


def frame_summary(frame: bytes) -> str:
    """The packet line the lab's journeys give an IPv4 frame (kfree_skb.py's format)."""
    ethertype = ethernet.ethertype(frame, 0) if len(frame) >= ETH_HLEN else 0
    if len(frame) < ETH_HLEN + IPV4_MIN_HLEN or ethertype != ETH_P_IP:
        return KfreeSkbEvent(0, 0, "", ethertype, len(frame), "", "", 0, 0, 0, 0, 0).summary()
    ip = Ipv4Packet(frame, ETH_HLEN)
    saddr, daddr = socket.inet_ntoa(ip.saddr_bytes), socket.inet_ntoa(ip.daddr_bytes)
    return KfreeSkbEvent(0, 0, "", ETH_P_IP, ip.tot_len, saddr, daddr, ip.protocol, ip.id, ip.ttl, ip.tot_len,
                         ip.frag_off).summary()


def packet_key(summary: str) -> tuple[str, ...] | None:
    """What identifies a packet line across forwarding and NAT: protocol, IP ID, length."""
    match = PACKET_KEY.search(summary)
    return match.groups() if match else None


def sent_by_port(proc_net_dev: str) -> dict[str, int]:
    """Frames each device's driver took to transmit (tx packets + tx drop), from /proc/net/dev."""
    out = {}
    for line in proc_net_dev.splitlines()[2:]:
        name, _, columns = line.partition(":")
        values = columns.split()
        out[name.strip()] = int(values[PROC_NET_DEV_TX_PACKETS]) + int(values[PROC_NET_DEV_TX_DROP])
    return out


def ip_in_receives(proc_net_snmp: str) -> int:
    names, values = (line.split() for line in proc_net_snmp.splitlines() if line.startswith("Ip:"))
    return int(values[names.index("InReceives")])


def tc_ingress_hop(port: str, delta: PortDelta, frames: int, reached_ip: int | None,
                   deltas: dict[str, PortDelta]) -> tuple[Hop, str | None]:
    """The TC ingress hop of `frames` that came in on `port`, and the port they were
    redirected out of. `reached_ip`: how many reached ip_rcv (None: not all IPv4)."""
    shot = delta.drops("ingress", frames)
    if shot is None:
        return Hop(Stage.TC_INGRESS, port, "", shared_drops(port, delta, frames)), None
    if shot == frames:
        return Hop(Stage.TC_INGRESS, port, "SHOT", f"clsact drops +{shot}"), None
    if shot:
        return Hop(Stage.TC_INGRESS, port, "", f"{frames} frames in one send: {shot} dropped "
                                            "(the counters do not say which)"), None
    if reached_ip:
        return Hop(Stage.TC_INGRESS, port, "", "reached ip_rcv: OK, UNSPEC or a redirect into a device's ingress"), None
    if reached_ip == 0:
        taken = [name for name, other in deltas.items() if frames in (other.sent, other.egress_runs)]
        if len(taken) == 1:
            return Hop(Stage.TC_INGRESS, port, "REDIRECT", f"never counted by ip_rcv, {taken[0]} took it"), taken[0]
        return Hop(Stage.TC_INGRESS, port, "", "never counted by ip_rcv, no port took it: STOLEN, TRAP, a redirect "
                                           "into a device's ingress or one that failed, or a drop before IP "
                                           "counted it (netdev ingress, OTHERHOST)"), None
    return Hop(Stage.TC_INGRESS, port, "", "ran, not dropped: OK, UNSPEC, STOLEN, TRAP and REDIRECT count alike "
                                       "for a frame that is not IPv4"), None


def tc_egress_hops(port: str, delta: PortDelta, frames: int,
                   deltas: dict[str, PortDelta]) -> tuple[list[Hop], str | None]:
    """The TC egress hop of `frames` packets that each crossed `port` (then NIC_TX
    where they left, unless that port's own TC_EGRESS hop follows), and the port
    they were redirected to."""
    shot = delta.drops("egress", frames)
    if shot is None:
        return [Hop(Stage.TC_EGRESS, port, "", shared_drops(port, delta, frames))], None
    if delta.egress_runs == frames:
        if shot == frames and not delta.sent:
            return [Hop(Stage.TC_EGRESS, port, "SHOT", f"clsact drops +{shot}")], None
        if not shot and delta.sent == frames:
            return [Hop(Stage.TC_EGRESS, port, "OK", f"{port} took it: OK, or a code direct-action makes UNSPEC"),
                    Hop(Stage.NIC_TX, port, "XMIT")], None
        elsewhere = {name: other for name, other in deltas.items()
                     if name != port and (other.sent or other.egress_runs)}
        if not shot and not delta.sent and len(elsewhere) == 1:
            (target, other), = elsewhere.items()
            if frames in (other.sent, other.egress_runs):
                hops = [Hop(Stage.TC_EGRESS, port, "REDIRECT", f"{target} took it instead")]
                return hops + ([] if other.egress_runs else [Hop(Stage.NIC_TX, target, "XMIT")]), target
        if not shot and not delta.sent and not elsewhere:
            return [Hop(Stage.TC_EGRESS, port, "", "nothing took it, nothing dropped it: STOLEN, TRAP, a redirect "
                                               "into a device's ingress or one that failed")], None
    taken = ", ".join(f"{name} {other.sent}" for name, other in deltas.items() if other.sent)
    return [Hop(Stage.TC_EGRESS, port, "", f"ran {delta.egress_runs} times for {frames} frame(s) sent: clsact drops "
                                       f"+{shot}, taken by {taken or 'no port'} (the counters do not say which "
                                       "packet got which)")], None


def shared_drops(port: str, delta: PortDelta, frames: int) -> str:
    return (f"{frames} frames in one send: clsact drops +{delta.clsact_drops} on {port}, whose ingress and egress "
            "share the counter")


def frame_hops(send: Send, after: Snapshot) -> list[FrameHops]:
    """Each frame's XDP hops, its TC ingress hop, then the TC egress hops (module doc)."""
    n = len(send.frames)
    deltas = {p.name: PortDelta.between(send.before.ports[p.name], after.ports[p.name]) for p in PORTS}
    came_in = send.port.name
    first: list[Hop] = []
    redirected_to = None
    if deltas[came_in].ingress_runs:
        ipv4 = all(len(frame) >= ETH_HLEN and ethernet.ethertype(frame, 0) == ETH_P_IP for frame in send.frames)
        reached_ip = after.ip_in_receives - send.before.ip_in_receives if ipv4 else None
        hop, redirected_to = tc_ingress_hop(came_in, deltas[came_in], n, reached_ip, deltas)
        first.append(hop)
    egress = {name: tc_egress_hops(name, delta, n, deltas) for name, delta in deltas.items() if delta.egress_runs >= n}
    if redirected_to is not None and redirected_to not in egress:
        first.append(Hop(Stage.NIC_TX, redirected_to, "XMIT"))
    path = egress_path(egress, came_in, redirected_to)
    own = [hop for name in path for hop in egress[name][0]]
    answers = [egress[came_in][0]] if came_in in egress and came_in not in path else []
    out = []
    for hops in xdp_hops(send, after):
        passed = not hops or hops[0].verdict in ("PASS", "")
        out.append(FrameHops(hops + first, own, answers) if passed else FrameHops(hops))
    return out


def egress_path(egress: dict[str, tuple[list[Hop], str | None]], came_in: str, start: str | None) -> list[str]:
    """The ports whose TC egress the frame itself crossed, in order: where its TC
    ingress redirected it, then every port but the one it came in on that no
    egress redirected to, each followed by where its egress redirected it."""
    targets = {target for _, target in egress.values()}
    heads = [start] if start in egress else []
    heads += [name for name in egress if name not in (came_in, start) and name not in targets]
    path: list[str] = []
    for name in heads:
        while name in egress and name not in path:
            path.append(name)
            name = egress[name][1]
    return path


def xdp_hops(send: Send, after: Snapshot) -> list[list[Hop]]:
    name = send.port.name
    before, now = send.before.ports[name], after.ports[name]
    n = len(send.frames)
    ran = now.run_cnt - before.run_cnt if now.prog_id == before.prog_id else 0
    packets = before.delta(now, "rx_xdp_packets")
    if now.prog_id is None or not (ran or packets):
        return [[] for _ in send.frames]
    if now.generic:
        # do_xdp_generic() (net/core/dev.c) counts no verdict in veth's stats: those
        # count veth_xdp_rcv()'s native path only (veth_get_ethtool_stats())
        summary = "generic XDP: the device counts no verdict (do_xdp_generic())"
        return [[Hop(Stage.XDP, name, "", summary)] for _ in send.frames]
    counts = {"DROP": before.delta(now, "rx_xdp_drops"), "TX": before.delta(now, "rx_xdp_tx"),
              "REDIRECT": before.delta(now, "rx_xdp_redirect")}
    counts["PASS"] = max(max(ran, packets) - sum(counts.values()), 0)
    egress = [p.name for p in PORTS if send.before.ports[p.name].delta(after.ports[p.name], "tx_xdp_xmit")]
    given = [verdict for verdict, count in counts.items() if count]
    if len(given) == 1 and counts[given[0]] == n:
        verdict = given[0]
        hops = [Hop(Stage.XDP, name, verdict)]
        if verdict == "TX":
            hops.append(Hop(Stage.NIC_TX, name, "XMIT"))
        elif verdict == "REDIRECT" and len(egress) == 1:
            hops.append(Hop(Stage.NIC_TX, egress[0], "XMIT"))
        return [list(hops) for _ in send.frames]
    tally = ", ".join(f"{verdict} {count}" for verdict, count in counts.items() if count)
    summary = f"{n} frames in one send: {tally} (veth counters do not say which frame got which)"
    return [[Hop(Stage.XDP, name, "", summary)] for _ in send.frames]


def merge(journeys: list[Journey], hops: list[tuple[bytes, FrameHops]]) -> list[Journey]:
    """Put each frame's hops in its journey: XDP and TC ingress first, TC egress
    after its netfilter hops, its answers' TC egress in their journeys (nftrace's
    children of it, else new ones). The frame's journey is the traced packet with
    the same header line or the drop of that packet where the hops say it ended
    (see _journey_of), or a journey of its own (XDP TX or REDIRECT, a frame
    nothing else saw)."""
    out = list(journeys)
    taken: set[int] = set()
    for frame, found in hops:
        journey = _journey_of(frame, found, out, taken)
        journey.hops[:0] = found.first
        place_egress(journey, found.egress)
        name_failed_redirect(journey)
        for i, answer in enumerate(found.answers):
            child = journey.children[i] if i < len(journey.children) else _answer_journey(answer, out, taken, journey)
            place_egress(child, answer)
    return out


def _journey_of(frame: bytes, hops: FrameHops, out: list[Journey], taken: set[int]) -> Journey:
    """The traced packet with the frame's header line, else the drop of that packet
    (a forwarded one's drop has another TTL, maybe another source), else a drop
    naming no packet where the frame's hops end, else a new one."""
    summary = frame_summary(frame)
    key = packet_key(summary)
    untaken = [j for j in out if id(j) not in taken]
    same = [j for j in untaken if str(j.packet) == summary]
    candidates = same + [j for j in untaken if j not in same and _is_drop_of(j, key)]
    dropped_at = hops.dropped_at
    if dropped_at is None:
        # a hop without a verdict may have ended there (a redirect that failed)
        passed = {hop.stage for hop in hops.first + hops.egress if hop.verdict}
        match = next((j for j in candidates if j.drop is None or j.drop.stage not in passed), None)
    else:
        match = next((j for j in candidates if j.drop is not None and j.drop.stage == dropped_at), None)
        traced = next((j for j in same if j.drop is None), None)
        if dropped_at == "TC_EGRESS" and traced is not None and (match is None or match not in same):
            # nftrace gives it a drop of the headers SNAT wrote only where the conntrack entry names them
            if match is not None:
                traced.drop = match.drop
                out.remove(match)
            match = traced
    if match is None:
        # a drop the tracer could not name a packet for (a malformed header: "ipv4")
        # at the stage the frame's hops end at, or at a generic XDP run (no verdict:
        # a drop in do_xdp_generic() is its verdict). Not at a TC hop without one:
        # that is OK or a pass the counters cannot tell, and the drop another frame's
        dropped_at_xdp = {hop.stage for hop in hops.first if not hop.verdict and hop.stage == Stage.XDP}
        ends = {dropped_at} if dropped_at is not None else dropped_at_xdp
        match = next((j for j in untaken if j not in candidates and _is_drop_of(j, None)
                      and packet_key(j.drop.packet) is None and j.drop.stage in ends), None)
    if match is None:
        match = Journey(packet=summary)
        out.append(match)
    taken.add(id(match))
    return match


def name_failed_redirect(journey: Journey) -> None:
    """The TC hop without a verdict at the stage of a drop in skb_do_redirect() or
    __bpf_redirect: only TC_ACT_REDIRECT leads there, so its program redirected."""
    drop = journey.drop
    if drop is None or drop.location not in TC_REDIRECT_LOCATIONS:
        return
    at = next((i for i in range(len(journey.hops) - 1, -1, -1) if journey.hops[i].stage == drop.stage), None)
    if at is not None and not journey.hops[at].verdict:
        journey.hops[at] = journey.hops[at]._replace(verdict="REDIRECT",
                                                     summary=f"the redirect failed: freed in {drop.location}")


def _is_drop_of(journey: Journey, key: tuple[str, ...] | None) -> bool:
    """Whether `journey` is only a drop (no packet was traced with it) of the packet
    `key` identifies (of any packet if None)."""
    return (not journey.hops and journey.drop is not None
            and (key is None or packet_key(journey.drop.packet) == key))


def _answer_journey(hops: list[Hop], out: list[Journey], taken: set[int], parent: Journey) -> Journey:
    """The journey of an answer nftrace did not trace: its TC egress drop's, or a new one."""
    child = None
    if hops[-1].verdict in ENDS:
        child = next((j for j in out if id(j) not in taken and _is_drop_of(j, None)
                      and j.drop.stage == hops[-1].stage), None)
    if child is not None:
        out.remove(child)
    else:
        child = Journey(packet=f"a packet the DUT sent in answer out of {hops[0].where} (not traced)")
    taken.add(id(child))
    parent.children.append(child)
    return child


def place_egress(journey: Journey, hops: list[Hop]) -> None:
    """After the journey's hops up to the packet leaving (NF_POSTROUTING and its NAT), before QDISC and NIC_TX."""
    at = len(journey.hops)
    while at and journey.hops[at - 1].stage in AFTER_TC_EGRESS:
        at -= 1
    journey.hops[at:at] = hops


class BpfRunObserver:
    """XDP and TC hops of the frames the lab sends (module doc)."""

    def __init__(self, lab) -> None:
        self.lab = lab
        self._stats_fd = enable_run_stats()
        self._sends: list[Send] = []
        self.active = False  # set once a test attaches XDP or TC: until then nothing is read

    def snapshot(self) -> Snapshot:
        attached = json.loads(self.lab.run(self.lab.dut, ["bpftool", "-j", "net", "show"]))[0]
        progs = {entry["devname"]: entry["id"] for entry in attached["xdp"]}
        generic = {entry["devname"] for entry in attached["xdp"] if entry.get("mode") == "generic"}
        native = any(name not in generic for name in progs)
        tc: dict[str, dict[str, list[int]]] = {}
        for entry in attached["tc"]:
            direction = entry["kind"].removeprefix("clsact/")
            if direction in DIRECTIONS:
                tc.setdefault(entry["devname"], {}).setdefault(direction, []).append(entry["id"])
        run_cnt = self._run_counts([*progs.values(), *(i for dev in tc.values() for ids in dev.values() for i in ids)])
        sent = sent_by_port(self.lab.read_proc_net(self.lab.dut, "dev")) if tc else {}
        out = Snapshot({})
        if any("ingress" in dev for dev in tc.values()):
            out.ip_in_receives = ip_in_receives(self.lab.read_proc_net(self.lab.dut, "snmp"))
        for port in PORTS:
            state = PortCounters(sent=sent.get(port.name, 0))
            prog_id = progs.get(port.name)
            if prog_id is not None:
                state.prog_id = prog_id
                state.run_cnt = run_cnt.get(prog_id, 0)
                state.generic = port.name in generic
            if port.name in tc:
                state.tc_runs = {direction: {prog: run_cnt.get(prog, 0) for prog in ids}
                                 for direction, ids in tc[port.name].items()}
                qdiscs = json.loads(self.lab.run(self.lab.dut, ["tc", "-s", "-j", "qdisc", "show", "dev", port.name]))
                state.clsact_drops = sum(q.get("drops", 0) for q in qdiscs if q["kind"] == "clsact")
            # veth's XDP counters tell native programs' verdicts only (xdp_hops()): without
            # one, no `ethtool -S` (a process per port per send)
            for line in self.lab.run(self.lab.dut, ["ethtool", "-S", port.name]).splitlines() if native else ():
                match = COUNTER.match(line)
                if match:
                    name = f"{match.group(1)}_{match.group(2)}"
                    state.counters[name] = state.counters.get(name, 0) + int(match.group(3))
            out.ports[port.name] = state
        return out

    def _run_counts(self, prog_ids: list[int]) -> dict[int, int]:
        """run_cnt of each program, from one `bpftool prog show id N` per program."""
        counts = {}
        for prog_id in prog_ids:
            info = json.loads(self.lab.run(self.lab.dut, ["bpftool", "-j", "prog", "show", "id", str(prog_id)]))
            counts[prog_id] = info.get("run_cnt", 0)
        return counts

    def before_send(self, port: Port, frames: list[bytes]) -> None:
        if self.active:
            self._sends.append(Send(port, list(frames), self.snapshot()))

    def hops(self) -> list[tuple[bytes, FrameHops]]:
        """(frame, its hops) for every frame sent since the last clear() that has any."""
        if not self._sends:
            return []
        snapshots = [send.before for send in self._sends] + [self.snapshot()]
        out = []
        for send, after in zip(self._sends, snapshots[1:]):
            out += [(frame, hops) for frame, hops in zip(send.frames, frame_hops(send, after)) if hops]
        return out

    def merge(self, journeys: list[Journey]) -> list[Journey]:
        return merge(journeys, self.hops())

    def clear(self) -> None:
        self._sends.clear()

    def close(self) -> None:
        if self._stats_fd is not None:
            os.close(self._stats_fd)
            self._stats_fd = None
