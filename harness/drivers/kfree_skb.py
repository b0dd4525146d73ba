"""Drop reasons of the real kernel, from the `skb:kfree_skb` tracepoint (bpftrace).

kfree_skb_reason() fires `skb:kfree_skb` with the `SKB_DROP_REASON_*` number and the
caller's address (`location`; after inlining, the function that really dropped).
One bpftrace per process (`KfreeSkbTracer.shared()`, started on first use, shared by
every lab of the process) prints each drop outside the host's namespaces: the skb's
netns inode (its device's, else its socket's), reason, location, skb->protocol and
the IPv4 header the skb's network header points at.

Each lab watches its DUT namespace (`NetnsDrops`). A drop is reported some time after
it happened, so `NetnsDrops.drops()` first sends a sentinel into the namespace and
waits until the tracer prints its drop: everything dropped before it is then in.
The sentinel is a frame on the namespace's `lo` for another MAC, dropped OTHERHOST
in ip_rcv_core() before any hook: no netfilter counter, conntrack entry, ICMP error
or SNMP counter sees it (only `lo`'s own rx counters).
"""
from __future__ import annotations

import itertools
import os
import re
import socket
import struct
import subprocess
import tempfile
import threading
import time
from typing import NamedTuple

from harness.drivers.netns import HOST_NETNS_INODES, NetnsLab, require_root, require_tool
from harness.journey import Drop
from harness.target import TargetError

TRACEFS = "/sys/kernel/tracing"
KFREE_SKB_FORMAT = f"{TRACEFS}/events/skb/kfree_skb/format"
STARTUP_TIMEOUT = 30.0
SENTINEL_TIMEOUT = 2.0

# skb->network_header when no header was set: (typeof(skb->network_header))~0U
PROGRAM = r"""
BEGIN { printf("ready\n"); }

tracepoint:skb:kfree_skb
{
  $skb = (struct sk_buff *)args->skbaddr;
  $netns = (uint32)0;
  if ($skb->dev != 0) {
    $netns = $skb->dev->nd_net.net->ns.inum;
  } else if ($skb->sk != 0) {
    $netns = $skb->sk->__sk_common.skc_net.net->ns.inum;
  }
  if ($netns != 0 && HOST_FILTER) {
    $saddr = (uint32)0; $daddr = (uint32)0; $ipproto = (uint8)0;
    $id = (uint16)0; $ttl = (uint8)0; $tot_len = (uint16)0;
    if ($skb->network_header != 0xffff) {
      $iph = $skb->head + $skb->network_header;
      if ((*(uint8 *)$iph >> 4) == 4) {
        $tot_len = *(uint16 *)($iph + 2);
        $id = *(uint16 *)($iph + 4);
        $ttl = *(uint8 *)($iph + 8);
        $ipproto = *(uint8 *)($iph + 9);
        $saddr = *(uint32 *)($iph + 12);
        $daddr = *(uint32 *)($iph + 16);
      }
    }
    printf("drop %u %u %s %u %u %u %u %u %u %u\n", $netns, args->reason, ksym(args->location),
           args->protocol, $saddr, $daddr, $ipproto, $id, $ttl, $tot_len);
  }
}
"""

# Where the kernel drops, by the function kfree_skb_reason() was called from
# (as inlined on 6.x: ip_rcv_core, ip_rcv_finish_core and ip_error are not).
LOCATION_STAGES = {
    "ip_rcv_core": "IP_RCV",
    "ip_rcv": "IP_RCV",
    "ip_rcv_finish_core": "ROUTING",
    "ip_rcv_finish": "ROUTING",
    "ip_route_input_slow": "ROUTING",
    "ip_route_input_noref": "ROUTING",
    "fib_validate_source": "ROUTING",
    "ip_error": "ROUTING",
    "ip_defrag": "IP_DEFRAG",
    "ip_frag_queue": "IP_DEFRAG",
    "ip_frag_reasm": "IP_DEFRAG",
    "ip_expire": "IP_DEFRAG",
    "inet_frag_rbtree_purge": "IP_DEFRAG",
    "inet_frag_destroy": "IP_DEFRAG",
    "ip_forward": "IP_FORWARD",
    "ip_local_deliver_finish": "L4",
    "ip_protocol_deliver_rcu": "L4",
    "__udp4_lib_rcv": "L4",
    "udp_queue_rcv_one_skb": "SOCKET",
    "__udp_queue_rcv_skb": "SOCKET",
    "udp_rcv_segment": "L4",
    "icmp_rcv": "L4",
    "ping_rcv": "L4",
    "tcp_v4_rcv": "L4",
    "nf_hook_slow": "NF",
    "sch_handle_ingress": "TC_INGRESS",
    "tcf_classify": "TC_INGRESS",
    "sch_handle_egress": "TC_EGRESS",
    "__dev_queue_xmit": "QDISC",
    "dev_qdisc_enqueue": "QDISC",
    "__qdisc_run": "QDISC",
    "qdisc_drop": "QDISC",
    "ip_finish_output2": "NEIGH",
    "ip_do_fragment": "IP_OUTPUT",
    "ip_fragment": "IP_OUTPUT",
    "neigh_invalidate": "NEIGH",
    "__neigh_event_send": "NEIGH",
    "neigh_resolve_output": "NEIGH",
    "enqueue_to_backlog": "NAPI",
    "do_xdp_generic": "XDP",
    "veth_xdp_rcv_skb": "XDP",
}

# Reasons that name their stage whatever function dropped them.
REASON_STAGES = {
    "SOCKET_RCVBUFF": "SOCKET",
    "TC_INGRESS": "TC_INGRESS",
    "TC_EGRESS": "TC_EGRESS",
    "XDP": "XDP",
    "QDISC_DROP": "QDISC",
    "CPU_BACKLOG": "NAPI",
}

IP_PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp"}
ETHERTYPES = {0x0800: "ipv4", 0x0806: "arp", 0x86DD: "ipv6"}

SENTINEL_ADDR = "127.0.0.1"
SENTINEL_IPPROTO = 253  # RFC 3692 experimentation
SENTINEL_OTHERHOST_MAC = bytes.fromhex("020000000000")  # lo's address is 00:00:00:00:00:00


def drop_reason_names(format_text: str) -> dict[int, str]:
    """SKB_DROP_REASON_* numbers to names, from the tracepoint's `__print_symbolic`
    list: the enum changes between kernels, the format file is this kernel's."""
    symbolic = format_text.partition("__print_symbolic(REC->reason,")[2]
    names = {int(number): name for number, name in re.findall(r'\{\s*(\d+),\s*"(\w+)"\s*\}', symbolic)}
    if not names:
        raise TargetError("cannot read the drop reasons from the skb:kfree_skb format "
                          f"({KFREE_SKB_FORMAT}): no __print_symbolic(REC->reason, ...) list")
    return names


def stage_of(reason: str, location: str) -> str:
    return REASON_STAGES.get(reason) or LOCATION_STAGES.get(location, "UNKNOWN")


class KfreeSkbEvent(NamedTuple):
    """One line of the tracer: addresses in dotted form, the rest host order."""

    netns: int
    reason: int
    location: str
    protocol: int
    saddr: str
    daddr: str
    ipproto: int
    id: int
    ttl: int
    tot_len: int

    @classmethod
    def parse(cls, line: str) -> KfreeSkbEvent:
        _, netns, reason, location, protocol, saddr, daddr, ipproto, ident, ttl, tot_len = line.split()
        return cls(int(netns), int(reason), location, int(protocol), _ipv4(saddr), _ipv4(daddr),
                   int(ipproto), socket.ntohs(int(ident)), int(ttl), socket.ntohs(int(tot_len)))

    def summary(self) -> str:
        if self.tot_len:
            proto = IP_PROTOCOLS.get(self.ipproto, f"proto {self.ipproto}")
            return f"{self.saddr} > {self.daddr} {proto} id={self.id} ttl={self.ttl} len={self.tot_len}"
        return ETHERTYPES.get(self.protocol, f"ethertype {self.protocol:#06x}")


def _ipv4(loaded: str) -> str:
    """The address as bpftrace loaded it: network-order bytes read as a host u32."""
    return socket.inet_ntoa(struct.pack("=I", int(loaded)))


def mount_tracefs() -> None:
    """bpftrace finds tracepoints through tracefs, which a fresh machine may not mount."""
    if os.path.exists(KFREE_SKB_FORMAT):
        return
    result = subprocess.run([require_tool("mount"), "-t", "tracefs", "nodev", TRACEFS],
                            capture_output=True, text=True)
    if result.returncode != 0 or not os.path.exists(KFREE_SKB_FORMAT):
        raise TargetError(f"tracefs is not mounted at {TRACEFS} and mounting it failed "
                          f"({result.stderr.strip() or 'no skb:kfree_skb tracepoint'}): "
                          f"`mount -t tracefs nodev {TRACEFS}`")


class KfreeSkbTracer:
    """The process's bpftrace on `skb:kfree_skb`, dispatching drops to the watched
    namespaces. `startup_seconds` is how long bpftrace took to attach."""

    _shared: KfreeSkbTracer | None = None
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls) -> KfreeSkbTracer:
        with cls._shared_lock:
            if cls._shared is None or cls._shared.exited:
                cls._shared = cls()
            return cls._shared

    def __init__(self) -> None:
        require_root("tracing drops with bpftrace")
        bpftrace = require_tool("bpftrace")
        mount_tracefs()
        with open(KFREE_SKB_FORMAT) as f:
            self.reasons = drop_reason_names(f.read())
        host_filter = " && ".join(f"$netns != {inode}" for inode in sorted(HOST_NETNS_INODES))
        self._watched: dict[int, NetnsDrops] = {}
        self.lock = threading.Condition()
        self._ready = threading.Event()
        self.exited = False
        self._stderr = tempfile.TemporaryFile(mode="w+")
        started = time.monotonic()
        # -p: bpftrace exits when this process does, even one killed by SIGKILL
        self._process = subprocess.Popen(
            [bpftrace, "-B", "none", "-p", str(os.getpid()), "-e", PROGRAM.replace("HOST_FILTER", host_filter)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        threading.Thread(target=self._read, name="kfree_skb tracer", daemon=True).start()
        # BEGIN runs once every probe is attached
        if not self._ready.wait(STARTUP_TIMEOUT) or self.exited:
            self._process.kill()
            raise TargetError(f"bpftrace on skb:kfree_skb did not start: {self.failure()}")
        self.startup_seconds = time.monotonic() - started

    def _read(self) -> None:
        for line in self._process.stdout:
            if line.startswith("drop "):
                event = KfreeSkbEvent.parse(line)
                with self.lock:
                    watcher = self._watched.get(event.netns)
                    if watcher is not None:
                        watcher.record(event)
                        self.lock.notify_all()
            elif line == "ready\n":
                self._ready.set()
        with self.lock:
            self.exited = True
            self.lock.notify_all()
        self._ready.set()

    def failure(self) -> str:
        """What bpftrace said, for an error message."""
        self._stderr.seek(0)
        said = "\n".join(line for line in self._stderr.read().splitlines()
                         if "RLIMIT_MEMLOCK" not in line)  # harmless: BPF memory is memcg-accounted
        status = self._process.poll()
        return f"bpftrace {'exited with status ' + str(status) if status is not None else 'is running'}" + \
            (f": {said.strip()}" if said.strip() else "")

    def watch(self, lab: NetnsLab) -> NetnsDrops:
        """Start recording the drops in `lab`'s DUT namespace."""
        watcher = NetnsDrops(self, lab)
        with self.lock:
            self._watched[lab.dut_inode] = watcher
        return watcher

    def unwatch(self, watcher: NetnsDrops) -> None:
        with self.lock:
            if self._watched.get(watcher.netns) is watcher:
                del self._watched[watcher.netns]


class NetnsDrops:
    """The drops of one namespace since it was watched (or last cleared)."""

    def __init__(self, tracer: KfreeSkbTracer, lab: NetnsLab):
        self.tracer = tracer
        self.netns = lab.dut_inode
        self._events: list[KfreeSkbEvent] = []
        self._sentinel_ids = itertools.cycle(range(1, 0x10000))  # IP IDs, 0 = none seen
        self._sentinel_seen = 0
        self._lo = lab.socket(lab.dut, socket.AF_PACKET, socket.SOCK_RAW)
        self._lo.bind(("lo", 0))

    def record(self, event: KfreeSkbEvent) -> None:
        """Called by the tracer with its lock held."""
        if self._is_sentinel(event):
            self._sentinel_seen = event.id
        else:
            self._events.append(event)

    def drops(self) -> list[Drop]:
        """Every drop so far, complete up to this call."""
        self.sync()
        with self.tracer.lock:
            events = list(self._events)
        names = self.tracer.reasons
        drops = []
        for event in events:
            reason = names.get(event.reason, str(event.reason))
            drops.append(Drop(reason, stage_of(reason, event.location), event.location, event.summary()))
        return drops

    def clear(self) -> None:
        """Forget every drop up to now."""
        self.sync()
        with self.tracer.lock:
            self._events.clear()

    def sync(self) -> None:
        """Drop a sentinel and wait until the tracer reports it (or fail saying why)."""
        ident = next(self._sentinel_ids)
        started = time.monotonic()
        self._lo.send(self._sentinel_frame(ident))
        with self.tracer.lock:
            seen = self.tracer.lock.wait_for(
                lambda: self._sentinel_seen == ident or self.tracer.exited, SENTINEL_TIMEOUT)
        if not seen or self._sentinel_seen != ident:
            raise TargetError(f"the drop tracer did not report the sentinel drop within "
                              f"{time.monotonic() - started:.1f} s, so drops cannot be complete: "
                              f"{self.tracer.failure()}")

    def close(self) -> None:
        self.tracer.unwatch(self)
        self._lo.close()

    def _is_sentinel(self, event: KfreeSkbEvent) -> bool:
        return (event.location == "ip_rcv_core" and event.ipproto == SENTINEL_IPPROTO
                and event.saddr == SENTINEL_ADDR and event.daddr == SENTINEL_ADDR)

    @staticmethod
    def _sentinel_frame(ident: int) -> bytes:
        addr = socket.inet_aton(SENTINEL_ADDR)
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20, ident, 0, 64, SENTINEL_IPPROTO, 0, addr, addr)
        return SENTINEL_OTHERHOST_MAC + bytes(6) + struct.pack("!H", 0x0800) + header
