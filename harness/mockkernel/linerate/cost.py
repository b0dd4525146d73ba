"""The CPU cost of a packet's path: named per-stage costs in nanoseconds, keyed
on the hops of its journey, that the line-rate engine charges to the core
whose queue received the packet.

`CostModel.path_counts(journey, kernel)` reads how many times the path pays
each cost (a chain hop pays `nf_chain` once and `nf_rule` per rule the kernel
evaluated to reach its verdict; a ROUTING hop pays `fib_lookup` and
`fib_lookup_per_doubling` log2(routes) times); `packet_ns()` is those counts
times the costs. The counts are linear in the costs, so calibrate.py fits the
costs from measured runs by least squares.

The default profile (`CostModel.default()`) reproduces the single-core
64-byte figures of the XDP paper (Hoiland-Jorgensen et al., "The eXpress Data
Path", CoNEXT 2018: Xeon E5-1650 v4 at 3.6 GHz, ConnectX-5, mlx5; the setups
are in the paper's repository, xdp-project/xdp-paper, benchmarks/*.org). A
figure of P Mpps is 1000/P ns per packet, and each anchor's path differs from
a cheaper one by the costs it adds, so the costs follow by difference:

    anchor              Mpps    ns/pkt   path (anchors.py: the DUT as the paper set it up)
    xdp_drop            24.0     41.667  driver_rx + xdp_prog
    xdp_tx              16.6     60.241  + xdp_tx                 (paper: 16.2-17.0)
    xdp_redirect        8.55    116.959  + xdp_redirect           (paper: 8.4-8.7)
    iptables_raw_drop   4.8     208.333  driver_rx + skb_build + ip_rcv + nf_chain + nf_rule
                                         + kfree_skb              (raw PREROUTING, 1 rule)
    xdp_pass_raw_drop   4.5     221.633  iptables_raw_drop + xdp_prog (the paper's 13.3 ns)
    filter_drop         3.32    301.205  raw path + fib (3 routes) + ip_local_deliver, dropped
                                         by filter INPUT's 1 rule instead
    conntrack           1.8     555.556  filter_drop + conntrack_in + conntrack_new + nf_rule
                                         (a ct state rule before the drop; each dropped packet
                                         allocates its entry and frees it)
    routing_1route      1.74    574.713  driver_rx + skb_build + ip_rcv + fib (3 routes)
                                         + ip_forward + neigh_output + dev_xmit
    routing_fulltable   1.37    729.927  routing_1route with 752,141 routes

"3 routes" is the main table of the benchmarks' DUT: p0's and p1's connected
/24s and the one route under test; the paper's full BGP table had 752,138
routes (and 4000 destinations, so the lookups missed the CPU caches as a full
table's do). Where an anchor difference covers several costs, the split
between them is an assumption, marked "split" below; costs no anchor measures
are estimates, marked "estimate". A calibration against your own DUT replaces
both (calibrate.py keeps what its runs cannot tell apart in these ratios).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.journey import Journey, Stage
from harness.mockkernel.ipv4.route import DstInput
from harness.mockkernel.net import RT_TABLE_LOCAL

if TYPE_CHECKING:
    from harness.mockkernel.kernel import Kernel

PROFILE_FORMAT = "packet-journey cost profile 1"


@dataclass(frozen=True)
class Cost:
    name: str
    ns: float
    meaning: str  # the kernel functions it stands for
    derivation: str


# Each cost with the kernel functions it stands for and its derivation from the
# anchors of the module docstring's table (ns/packet, 1000 / Mpps).
COSTS = (
    Cost("driver_rx", 28.367,
         "mlx5e_poll_rx_cq()/mlx5e_handle_rx_cqe(): the RX descriptor, its page from the page pool, "
         "and the packet's share of napi_poll()/net_rx_action(); every frame the NIC delivers",
         "xdp_drop - xdp_prog"),
    Cost("xdp_prog", 13.3,
         "mlx5e_xdp_handle(): the xdp_buff, bpf_prog_run_xdp() of a short JITed program, the verdict; "
         "XDP_DROP recycles the page at no further cost",
         "the paper's XDP_PASS overhead: raw drop at 4.8 Mpps, 4.5 with a counting XDP_PASS program"),
    Cost("xdp_tx", 18.574,
         "XDP_TX: mlx5e_xmit_xdp_frame() onto the same NIC's XDP send queue and its completion "
         "(mlx5e_poll_xdpsq_cq())", "xdp_tx - xdp_drop"),
    Cost("xdp_redirect", 75.292,
         "XDP_REDIRECT: xdp_do_redirect(), the devmap's bulk queue (dev_map_enqueue(), bq_xmit_all()), "
         "the other device's ndo_xdp_xmit and completion, xdp_do_flush()", "xdp_redirect - xdp_drop"),
    Cost("skb_build", 100.0,
         "build_skb() over the page (mlx5e_skb_from_cqe_linear()), eth_type_trans(), napi_gro_receive(), "
         "__netif_receive_skb_core()",
         "split: 100 of the 179.967 that iptables_raw_drop adds to driver_rx (allocating and "
         "initialising the skb is the stack's largest per-packet cost, the paper's argument for XDP)"),
    Cost("ip_rcv", 25.0, "ip_rcv(), ip_rcv_core(): header checks; ip_rcv_finish() up to the route lookup",
         "split: 25 of the 179.967"),
    Cost("nf_chain", 15.0,
         "nf_hook_slow() calling a base chain: nft_do_chain_ipv4() (iptables-nft) entering and leaving "
         "nft_do_chain()", "split: 15 of the 179.967"),
    Cost("nf_rule", 10.0, "nft_do_chain(): one rule evaluated, its expressions (payload/meta load, cmp, verdict)",
         "split: 10 of the 179.967"),
    Cost("kfree_skb", 29.967, "kfree_skb_reason(): releasing a dropped skb and its page (skb_release_data())",
         "iptables_raw_drop - driver_rx - skb_build - ip_rcv - nf_chain - nf_rule"),
    Cost("fib_lookup", 69.155,
         "ip_route_input_slow(): fib_lookup() -> fib_table_lookup() in a one-route LC-trie, the nexthop's "
         "cached dst (no route cache since 3.6: every packet looks up)",
         "filter_drop - iptables_raw_drop - ip_local_deliver - fib_lookup_per_doubling * log2(3)"),
    Cost("fib_lookup_per_doubling", 8.654,
         "fib_table_lookup(): the trie's depth, and the cache misses on the way down, grow with the log of "
         "the table's size; paid log2(routes in the tables a forwarded lookup searches) times",
         "(routing_fulltable - routing_1route) / log2(752141 / 3)"),
    Cost("ip_local_deliver", 10.0, "ip_local_deliver(): a packet routed to a local address, up to the INPUT hook",
         "split: 10 of the 92.872 that filter_drop adds to iptables_raw_drop"),
    Cost("ip_forward", 25.0, "ip_forward(): TTL, xfrm4_policy_check(), skb_cow(), ip_decrease_ttl()",
         "split: 25 of the 338.474 that routing_1route spends after the route lookup"),
    Cost("neigh_output", 40.0,
         "ip_forward_finish(), ip_output(), ip_finish_output2(), neigh_hh_output(): the output route up to "
         "dev_queue_xmit() (any NEIGH hop: ARP resolution and replies too)",
         "split: 40 of the 338.474"),
    Cost("dev_xmit", 273.474,
         "__dev_queue_xmit() through the device's default qdisc (sch_direct_xmit()), mlx5e_xmit(), and the "
         "TX completion freeing the skb (mlx5e_poll_tx_cq(), napi_consume_skb())",
         "routing_1route - driver_rx - skb_build - ip_rcv - fib (3 routes) - ip_forward - neigh_output"),
    Cost("conntrack_in", 100.0,
         "nf_conntrack_in(): the tuple, the hash lookup (resolve_normal_ct()), the protocol tracker, and "
         "the defrag hook that loading conntrack adds",
         "split: 100 of the 244.351 that conntrack adds to filter_drop and its second rule"),
    Cost("conntrack_new", 144.351,
         "init_conntrack(): allocating and initialising an entry with its extensions, and destroying it "
         "(nf_ct_destroy()) when its first packet is dropped before nf_confirm()",
         "conntrack - filter_drop - nf_rule - conntrack_in"),
    Cost("conntrack_confirm", 50.0, "__nf_conntrack_confirm(): inserting a new entry into the hash",
         "estimate: a third of conntrack_new"),
    Cost("nat_rewrite", 40.0, "nf_nat_packet(), nf_nat_ipv4_manip_pkt(): rewriting addresses and checksums",
         "estimate"),
    Cost("tc_classify", 30.0, "sch_handle_ingress()/egress, cls_bpf_classify() running a JITed program",
         "estimate: xdp_prog plus the clsact entry and the skb context"),
    Cost("qdisc", 30.0, "a qdisc configured with tc: its enqueue and dequeue (__dev_xmit_skb(), __qdisc_run()) "
         "beyond the default's in dev_xmit",
         "estimate"),
    Cost("l4_rcv", 60.0, "__udp4_lib_rcv()/tcp_v4_rcv()/icmp_rcv(): checksum and socket lookup", "estimate"),
    Cost("socket_queue", 150.0, "__udp_queue_rcv_skb(): queueing on the socket and waking its reader", "estimate"),
    Cost("ip_frag", 100.0, "ip_defrag() or ip_do_fragment(): one fragment queued, reassembled or cut",
         "estimate"),
)
COST_NAMES = tuple(cost.name for cost in COSTS)

_NF_STAGES = frozenset({Stage.NF_INGRESS, Stage.NF_PREROUTING, Stage.NF_INPUT, Stage.NF_FORWARD, Stage.NF_OUTPUT,
                        Stage.NF_POSTROUTING, Stage.NF})
_ROUTE_LOCAL = DstInput.LOCAL.value
_XDP_XMIT = {"TX": "xdp_tx", "REDIRECT": "xdp_redirect"}
_NOT_A_CHAIN_END = frozenset({"JUMP", "GOTO", "LOG"})  # hops inside a chain walk; its verdict hop counts it
_NF_FUNCTIONS = {"nf_conntrack_in": "conntrack_in", "nf_confirm": "conntrack_confirm",
                 "nf_nat_packet": "nat_rewrite", "nf_nat_icmp_reply_translation": "nat_rewrite"}
_STAGE_COSTS = {Stage.SKB: "skb_build", Stage.IP_RCV: "ip_rcv", Stage.IP_FORWARD: "ip_forward",
                Stage.NEIGH: "neigh_output", Stage.TC_INGRESS: "tc_classify", Stage.TC_EGRESS: "tc_classify",
                Stage.QDISC: "qdisc", Stage.L4: "l4_rcv", Stage.SOCKET: "socket_queue",
                Stage.IP_DEFRAG: "ip_frag", Stage.IP_OUTPUT: "ip_frag"}


class CostProfileError(ValueError):
    """A cost profile file that cannot be used; the message names the file and why."""


def read_json(path: str | Path, what: str, error: type[ValueError]):
    """The JSON in file `path`, or `error` naming it as `what` and why it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except OSError as err:
        raise error(f"{what} {path}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise error(f"{what} {path}: not JSON ({err})") from None


class CostModel:
    """Per-stage CPU costs in ns by name (every name of COST_NAMES)."""

    def __init__(self, costs: dict[str, float], name: str = "") -> None:
        missing = [n for n in COST_NAMES if n not in costs]
        unknown = [n for n in costs if n not in COST_NAMES]
        negative = [n for n, ns in costs.items() if not ns >= 0]
        if missing or unknown or negative:
            raise CostProfileError("; ".join(
                text for text in (missing and f"costs missing: {', '.join(missing)}",
                                  unknown and f"unknown costs: {', '.join(unknown)} (have: {', '.join(COST_NAMES)})",
                                  negative and f"costs not a non-negative number: {', '.join(negative)}") if text))
        self.costs = {n: float(costs[n]) for n in COST_NAMES}
        self.name = name

    @classmethod
    def default(cls) -> CostModel:
        return cls({cost.name: cost.ns for cost in COSTS}, "xdp-paper: Xeon E5-1650 v4, ConnectX-5, 64 B, one core")

    def packet_ns(self, journey: Journey, kernel: Kernel | None = None) -> float:
        """The CPU time of the path, with what it caused (an ICMP error or
        reply is sent from the same softirq). `kernel` sizes the FIB and the
        chains; without it a chain hop counts one rule and the FIB one route."""
        costs = self.costs
        return sum(costs[name] * count for name, count in path_counts(journey, kernel).items())

    def to_dict(self) -> dict:
        return {"format": PROFILE_FORMAT, "name": self.name, "costs_ns": dict(self.costs)}

    @classmethod
    def from_dict(cls, data: dict, source: str = "profile") -> CostModel:
        if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
            raise CostProfileError(f"{source}: not a cost profile (its \"format\" must be {PROFILE_FORMAT!r})")
        try:
            return cls(data["costs_ns"], data.get("name", ""))
        except (KeyError, TypeError) as err:
            raise CostProfileError(f"{source}: no \"costs_ns\" object of cost names to ns ({err})") from None
        except CostProfileError as err:
            raise CostProfileError(f"{source}: {err}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> CostModel:
        return cls.from_dict(read_json(path, "cost profile", CostProfileError), f"cost profile {path}")


def path_counts(journey: Journey, kernel: Kernel | None = None) -> dict[str, float]:
    """How many times the journey's path pays each cost (only those it pays)."""
    counts: dict[str, float] = {}

    def pay(name: str, times: float = 1) -> None:
        counts[name] = counts.get(name, 0) + times

    _count(journey, kernel, pay)
    return counts


def _count(journey: Journey, kernel: Kernel | None, pay) -> None:
    has_skb = xdp_xmit = False
    for hop in journey.hops:
        stage = hop.stage
        if stage == Stage.NIC_RX:
            if hop.verdict == "DMA":  # a MISSED frame never left the NIC
                pay("driver_rx")
        elif stage == Stage.XDP:
            pay("xdp_prog")
            if hop.verdict in _XDP_XMIT and not has_skb:  # generic XDP sends an skb: dev_xmit pays
                pay(_XDP_XMIT[hop.verdict])
                xdp_xmit = True
        elif stage == Stage.NIC_TX:
            if not xdp_xmit:
                pay("dev_xmit")
        elif stage == Stage.ROUTING:
            pay("fib_lookup")
            pay("fib_lookup_per_doubling", math.log2(fib_routes(kernel)))
            if hop.verdict == _ROUTE_LOCAL:
                pay("ip_local_deliver")
        elif stage in _NF_STAGES:
            _count_netfilter(hop, kernel, pay)
        elif stage in _STAGE_COSTS:
            pay(_STAGE_COSTS[stage])
            has_skb |= stage == Stage.SKB
    if journey.drop is not None and has_skb:
        pay("kfree_skb")
    if _conntrack_allocated(journey):
        pay("conntrack_new")
    for child in journey.children:
        _count(child, kernel, pay)


def _count_netfilter(hop, kernel: Kernel | None, pay) -> None:
    function_cost = _NF_FUNCTIONS.get(hop.where)
    if function_cost is not None:
        pay(function_cost)
    elif hop.verdict not in _NOT_A_CHAIN_END:
        pay("nf_chain")
        pay("nf_rule", rules_evaluated(hop.where, hop.summary, kernel))


def _conntrack_allocated(journey: Journey) -> bool:
    """A NEW packet that nf_confirm() inserted, or that was dropped before it:
    the entry was allocated for this packet (a NEW packet that went on
    unconfirmed found its unreplied entry). The journey cannot tell a dropped
    NEW packet whose entry an earlier packet confirmed: it is charged too."""
    new = confirmed = False
    for hop in journey.hops:
        if hop.where == "nf_conntrack_in":
            new = hop.verdict == "NEW"
        elif hop.where == "nf_confirm":
            confirmed = True
    return new and (confirmed or journey.drop is not None)


def fib_routes(kernel: Kernel | None) -> int:
    """Routes in the tables a forwarded packet's lookup searches: every table
    but local (whose host and broadcast entries the kernel keeps for its own
    addresses). At least 1."""
    if kernel is None:
        return 1
    return max(1, sum(len(routes) for table, routes in kernel.tables.items() if table != RT_TABLE_LOCAL))


def rules_evaluated(chain_id: str, summary: object, kernel: Kernel | None) -> int:
    """Rules nft_do_chain() evaluates in base chain `chain_id` to the hop's
    verdict, as the kernel walks a chain: in order, up to the rule that gave
    it, every rule for the policy. A verdict from a jumped-to chain counts
    the base chain's rules (the jump's position is not in the hop)."""
    if kernel is None:
        return 1
    rules = next((reg.hook.chain.rules for reg in kernel.nft.registrations.values()
                  if reg.hook.chain.id == chain_id), None)
    if rules is None:
        raise ValueError(f"no base chain {chain_id!r} in the kernel's ruleset: the journey is from another ruleset")
    for position, rule in enumerate(rules, 1):
        if rule.summary == summary:
            return position
    return max(1, len(rules))
