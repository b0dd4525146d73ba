"""The lab's counters around a traffic run: where the DUT lost packets at rate.

Read before and after a run, their differences go into the Result:
- the DUT's and the tester's devices, /proc/net/dev of each namespace (dev_seq_printf_stats()
  in net/core/net-procfs.c): rx/tx drops. A veth counts a frame its peer's backlog
  refused as a tx drop of the sending end (veth_xmit() in drivers/net/veth.c).
- the DUT's qdiscs, `tc -s -j qdisc show`: drops, overlimits, requeues.
- /proc/net/softnet_stat (softnet_seq_show() in net/core/net-procfs.c): per CPU,
  packets processed, dropped (input_pkt_queue full: netdev_max_backlog) and
  time_squeeze (net_rx_action() out of budget or time). The file is per CPU for the
  whole host, whichever namespace reads it: other labs' and the host's packets
  count too.
- the DUT's nft rule counters (`nft -a list ruleset`): a rule that drops counts its
  packets.

Where the drop tracer counted the run's drops (kfree_skb.py), they are the losses and
these counters are notes beside them; without it, the counters that name a drop
(qdisc drops, softnet drops, dropping nft rules) are the losses.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace

from harness.drivers.netns import NetnsLab, require_tool
from harness.drivers.nftrace import parse_ruleset, rule_counters
from harness.dropreason import DropReason
from harness.journey import Stage
from harness.traffic import Loss

# /proc/net/dev after "name:": rx bytes packets errs drop fifo frame compressed multicast,
# tx bytes packets errs drop fifo colls carrier compressed
PROC_NET_DEV_FIELDS = {"rx_dropped": 3, "tx_dropped": 11}
PROC_NET_DEV_TX_PACKETS = {"tx_packets": 9}  # what a port sent (the kernel anchors of benchmarks/)
# /proc/net/softnet_stat columns (hex): processed, dropped, time_squeeze; the 13th is
# the CPU's number (online CPUs only have a line)
SOFTNET_FIELDS = ("processed", "dropped", "time_squeeze")
SOFTNET_CPU = 12
QDISC_FIELDS = ("drops", "overlimits", "requeues")


@dataclass(frozen=True)
class Snapshot:
    devices: dict[tuple[str, str, str], int]  # ("DUT" or "tester", device, counter) -> value
    qdiscs: dict[tuple[str, str, str, str], int]  # (device, kind, handle, counter) -> value
    softnet: dict[tuple[int, str], int]  # (cpu, counter) -> value
    nft_drops: dict[str, int]  # a dropping rule's "family table chain: rule" -> packets


def device_counters(proc_net_dev: str, fields: dict[str, int] = PROC_NET_DEV_FIELDS) -> dict[str, dict[str, int]]:
    """/proc/net/dev's counters by device: the drop counters, or `fields` (name -> column)."""
    devices = {}
    for line in proc_net_dev.splitlines()[2:]:
        name, _, numbers = line.partition(":")
        values = numbers.split()
        devices[name.strip()] = {counter: int(values[i]) for counter, i in fields.items()}
    return devices


def softnet_counters(softnet_stat: str) -> dict[tuple[int, str], int]:
    """/proc/net/softnet_stat by (cpu, counter): one line per online CPU, in hex."""
    counters = {}
    for line in softnet_stat.splitlines():
        values = line.split()
        cpu = int(values[SOFTNET_CPU], 16)
        counters.update({(cpu, counter): int(value, 16) for counter, value in zip(SOFTNET_FIELDS, values)})
    return counters


def qdisc_counters(tc_json: str) -> dict[tuple[str, str, str, str], int]:
    return {(qdisc["dev"], qdisc["kind"], qdisc["handle"], counter): qdisc.get(counter, 0)
            for qdisc in json.loads(tc_json or "[]") for counter in QDISC_FIELDS}


def qdisc_backlog(lab: NetnsLab) -> int:
    """Packets queued in the DUT's qdiscs right now."""
    require_tool("tc")
    return sum(qdisc.get("qlen", 0) for qdisc in json.loads(lab.run(lab.dut, ["tc", "-s", "-j", "qdisc", "show"]) or "[]"))


def side_devices(side: str, proc_net_dev: str) -> dict[tuple[str, str, str], int]:
    """The drop counters of one side's devices, keyed as Snapshot.devices."""
    return {(side, device, counter): value for device, counters in device_counters(proc_net_dev).items()
            for counter, value in counters.items()}


def take(lab: NetnsLab, nft: bool) -> Snapshot:
    """The DUT's counters now; `nft`: the DUT has nftables to list. The tester's
    devices are the caller's to add (with_tester())."""
    require_tool("tc")
    devices = side_devices("DUT", lab.read_proc_net(lab.dut, "dev"))
    nft_drops = {}
    if nft:
        listing = lab.run(lab.dut, ["nft", "-a", "list", "ruleset"])
        nft_drops = {f"{c.family} {c.table} {c.chain}: {c.rule}": c.packets
                     for c in rule_counters(parse_ruleset(listing)) if c.rule.split()[-1:] == ["drop"]}
    return Snapshot(devices, qdisc_counters(lab.run(lab.dut, ["tc", "-s", "-j", "qdisc", "show"])),
                    softnet_counters(lab.read_proc_net(lab.dut, "softnet_stat")), nft_drops)


def with_tester(snapshot: Snapshot, proc_net_dev: str) -> Snapshot:
    """`snapshot` with the tester's devices' counters (its /proc/net/dev) added."""
    return replace(snapshot, devices={**snapshot.devices, **side_devices("tester", proc_net_dev)})


def _grown(before: dict, after: dict) -> dict:
    return {key: value - before.get(key, 0) for key, value in after.items() if value > before.get(key, 0)}


def compare(before: Snapshot, after: Snapshot) -> tuple[list[Loss], list[str]]:
    """The losses the counters name, and a note for every counter that grew."""
    losses, notes = [], []
    for (side, device, counter), grown in _grown(before.devices, after.devices).items():
        notes.append(f"{side} {device} {counter} +{grown}")
    for (device, kind, handle, counter), grown in _grown(before.qdiscs, after.qdiscs).items():
        notes.append(f"qdisc {kind} {handle} dev {device} {counter} +{grown}")
        if counter == "drops":
            losses.append(Loss(Stage.QDISC, DropReason.QDISC_DROP, f"qdisc {kind} {handle} dev {device}", grown))
    softnet = _grown(before.softnet, after.softnet)
    for (cpu, counter), grown in softnet.items():
        if counter != "processed":
            notes.append(f"softnet_stat cpu{cpu} {counter} +{grown} (per CPU for the whole host, not the DUT's "
                         "namespace alone)")
            if counter == "dropped":
                losses.append(Loss(Stage.NAPI, DropReason.CPU_BACKLOG, f"softnet_stat cpu{cpu} (whole host)", grown))
    for rule, grown in _grown(before.nft_drops, after.nft_drops).items():
        notes.append(f"nft {rule}: +{grown} packets")
        losses.append(Loss(Stage.NF, DropReason.NETFILTER_DROP, f"nft {rule}", grown))
    return losses, notes
