"""The mock's per-CPU backlog (net/core/dev.c): netif_rx() -> enqueue_to_backlog()
queues on this CPU's input_pkt_queue up to netdev_max_backlog (+1: the test is
`qlen <= max_backlog`), drops the rest CPU_BACKLOG, and net_rx_action() polls
the backlog as a NAPI (process_backlog()). Mock only: on the netns lab a tester
port's veth sends each frame through the backlog and its softirq runs before
the next frame is sent, so no flood of the lab's fills it."""
from __future__ import annotations

import json

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.journey import Stage
from harness.mockkernel import target as mock_target
from harness.mockkernel.kernel import Kernel
from harness.target import PORTS

P1_IFINDEX = 3  # lo is 1, p0 2


@pytest.fixture
def k(bpf_objects):
    """p0's TC ingress redirects every UDP datagram into p1's ingress (tc_redirect:
    BPF_F_INGRESS, dev_forward_skb() -> netif_rx())."""
    kernel = Kernel()
    for line in ("ip addr add 10.0.0.1/24 dev p0", "tc qdisc add dev p0 clsact",
                 f"tc filter add dev p0 ingress bpf da obj {bpf_objects['tc_redirect']} sec tc"):
        sh(kernel, line)
    return kernel


def sh(k, line: str) -> str:
    return mock_target.sh(k, line.split())


def redirected_into_p1(count: int) -> list[bytes]:
    """Frames to p0's MAC: on p1 they are another host's (ip_rcv_core() frees them
    OTHERHOST), so every frame the backlog let through ends in a drop too."""
    return [bytes(Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) / IP(src="10.0.0.2", dst="10.0.0.1", id=seq) /
                  UDP(sport=1, dport=9) / bytes([P1_IFINDEX, 1])) for seq in range(count)]


def softnet_columns(k, cpu: int = 0) -> list[int]:
    return [int(column, 16) for column in sh(k, "cat /proc/net/softnet_stat").splitlines()[cpu].split()]


def test_a_redirect_flood_over_netdev_max_backlog_drops_the_excess_cpu_backlog(k):
    """One NAPI poll of 40 frames queues 40 skbs to the backlog before it runs:
    11 fit (max_backlog 10, `qlen <= max_backlog`), 29 are freed CPU_BACKLOG in
    enqueue_to_backlog(), counted in softnet_data's dropped and p1's rx_dropped."""
    sh(k, "sysctl -w net.core.netdev_max_backlog=10")
    k.receive("p0", redirected_into_p1(40))
    assert [(d.reason.name, d.stage, d.location) for d in k.tracer.drops] == (
        [("CPU_BACKLOG", Stage.NIC_RX, "enqueue_to_backlog")] * 29 + [("OTHERHOST", Stage.IP_RCV, "ip_rcv_core")] * 11)
    assert [journey.drop.reason.name for journey in k.tracer.journeys[:11]] == ["OTHERHOST"] * 11
    columns = softnet_columns(k)
    assert columns[:3] == [51, 29, 0]  # processed: 40 from p0's ring, 11 from the backlog
    assert columns[11:] == [0, 0, 0, 0]  # the backlog is empty again
    p1 = json.loads(sh(k, "ip -s -j link show dev p1"))[0]["stats64"]["rx"]
    assert p1["dropped"] == 29


def test_within_netdev_max_backlog_every_redirected_frame_is_received(k):
    k.receive("p0", redirected_into_p1(200))
    assert [d.reason.name for d in k.tracer.drops] == ["OTHERHOST"] * 200
    assert softnet_columns(k)[:2] == [400, 0]


def test_the_backlog_polls_spend_the_softirq_rounds_netdev_budget(k):
    """A full ring of 256: round 1 polls p0 64, the backlog 64, p0 64, the backlog
    64, then p0 the 44 the budget of 300 has left; p0's 173rd frame waits for
    round 2 (without the backlog's polls all 256 would fit in round 1)."""
    k.receive("p0", redirected_into_p1(256))
    rounds = [next(hop.summary for hop in journey.hops if hop.stage is Stage.NAPI) for journey in k.tracer.journeys]
    assert rounds == ["softirq round 1"] * 172 + ["softirq round 2"] * 84


def test_a_datagram_to_127_0_0_1_passes_the_backlog_before_sendto_returns():
    """loopback_xmit() -> netif_rx() from process context: the softirq that
    netif_rx()'s local_bh_enable() runs delivers it (processed 1) before the
    sender goes on."""
    target = mock_target.MockTarget()
    receiver = target.socket("udp", ("127.0.0.1", 4000))
    target.socket("udp", ("127.0.0.1", 4001)).sendto(b"to myself", ("127.0.0.1", 4000))
    assert receiver.recv() == (b"to myself", ("127.0.0.1", 4001))
    columns = softnet_columns(target.kernel)
    assert (columns[:2], columns[11]) == ([1, 0], 0)
