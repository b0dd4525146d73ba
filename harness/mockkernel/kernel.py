"""A booted mock DUT: one network namespace with its runtime state.

`Kernel` is `struct net` (configuration, net.py) plus what the running stack
keeps per namespace: sockets, reassembly queues, inet peers, the ICMP credit,
the tracer, the NICs. Boot sets the DUT's known sysctls first (so devices
inherit conf/default, as devices created after the writes do on the lab),
then IPv4 (inet_init(): what it registers with the core) and IPv6
(inet6_init()), creates lo and the
ports p0..pN, and brings them up (dev_change_flags()) with 127.0.0.1/8 on lo,
as the kernel does for a new namespace's loopback. Commands reach a booted
kernel through the front ends (cmd/), from the target (target.py sh()).
"""
from __future__ import annotations

import random

from harness.dropreason import DropReason
from harness.journey import Drop, Hop, Journey, Stage
from harness.mockkernel.bpf.syscall import NR_CPUS
from harness.mockkernel.bridge.br_device import br_init
from harness.mockkernel.clock import Clock
from harness.mockkernel.core.dev import SoftnetData, net_rx_action
from harness.mockkernel.core.ethtool import ethtool_set_features
from harness.mockkernel.core.net_procfs import dev_proc_net_init
from harness.mockkernel.core.rtnetlink import dev_change_flags, register_netdevice
from harness.mockkernel.ipv4.af_inet import inet_init
from harness.mockkernel.ipv6.af_inet6 import inet6_init
from harness.mockkernel.net import Net, NetDevice
from harness.mockkernel.netfilter.br_netfilter import br_netfilter_init
from harness.mockkernel.netfilter.core import NfHooks
from harness.mockkernel.netfilter.nf_conntrack_core import ConntrackTable, nf_conntrack_pernet_init
from harness.mockkernel.netfilter.nf_conntrack_reasm import nf_ct_frag6_pernet_init
from harness.mockkernel.netfilter.nf_tables import NfTables
from harness.mockkernel.nic import Nic
from harness.mockkernel.sched.sch_generic import qdisc_init_net
from harness.mockkernel.tracer import Tracer
from harness.mockkernel.wire import summarize_frame
from harness.mockkernel.wire.ethernet import mac_to_bytes
from harness.target import DUT_PORT_OFFLOADS, DUT_SYSCTLS, PORTS


class Kernel(Net):
    def __init__(self, seed: int = 0) -> None:
        super().__init__(Clock())
        self.tracer = Tracer()
        self.random = random.Random(seed)
        self.nics: dict[str, Nic] = {}
        self.udp_sockets: dict = {}
        self.ping_sockets: dict = {}
        self.ipfrags: dict = {}
        self.nf_frags: dict = {}  # nf_defrag_ipv6's reassembly queues (netfilter/nf_conntrack_reasm.py)
        self.inet_peers: dict = {}
        self.icmp_global_credit = 0
        self.icmp_global_stamp = -1.0
        self.icmp_xmit_locked = False  # ipv4_icmp_sk's lock, held while icmp_push_reply() sends
        self.nf_hooks = NfHooks()
        self.conntrack = ConntrackTable(seed)
        self.nft = NfTables(self)
        self.nat_lookups: dict = {}
        self.nat_seq = 0
        self.bpf = None  # the eBPF runtime, created by the first program load
        self.ncpus = NR_CPUS  # the CPUs the line-rate model runs NAPI on (RX queue i on CPU i % ncpus)
        self.softnet = [SoftnetData() for _ in range(self.ncpus)]
        self.this_cpu = 0  # the CPU the receive softirq runs on: the line-rate model moves it to a queue's
        self.rss_key: bytes | None = None  # netdev_rss_key: drawn at the first RSS setup
        self._boot()

    def _boot(self) -> None:
        inet_init(self)  # before the DUT's sysctls: it registers TCP's
        inet6_init(self)
        br_init(self)
        br_netfilter_init(self)  # built in (CONFIG_BRIDGE_NETFILTER=y): its sysctls in every namespace
        for name, value in DUT_SYSCTLS.items():
            self.sysctl.write(name, value)
        dev_proc_net_init(self)
        nf_conntrack_pernet_init(self)
        nf_ct_frag6_pernet_init(self)
        qdisc_init_net(self)
        register_netdevice(self, NetDevice("lo", 1, "loopback", bytes(6), mtu=65536))
        for port in PORTS:
            dev = NetDevice(port.name, port.index + 2, "veth", mac_to_bytes(port.mac))
            register_netdevice(self, dev)
            self.nics[dev.name] = Nic(dev)
            ethtool_set_features(dev, DUT_PORT_OFFLOADS)  # as every lab sets its DUT ports
        for dev in list(self.devices.values()):
            dev_change_flags(self, dev, True)

    def receive(self, port: str, frames: list[bytes]) -> None:
        """Frames arrive on `port` from the wire: DMA into its RX ring (counting
        the ones that find it full), then the softirq polls everything."""
        nic = self.nics[port]
        for frame in nic.dma_rx_burst(frames):
            self._ring_full(nic, frame)
        net_rx_action(self)

    def _ring_full(self, nic: Nic, frame: bytes) -> None:
        """The NIC had no descriptor: no skb ever exists and no kfree_skb fires (the
        driver counts rx_missed_errors); the journey names it with FULL_RING, the
        DropReason dropreason-core.h gives a full ring, located at that counter."""
        summary = summarize_frame(bytearray(frame), 0)
        drop = Drop(DropReason.FULL_RING, Stage.NIC_RX, f"{nic.dev.name} rx_missed_errors", summary)
        self.tracer.journeys.append(Journey(summary, [Hop(Stage.NIC_RX, nic.dev.name, "MISSED")], drop))
        self.tracer.drops.append(drop)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
