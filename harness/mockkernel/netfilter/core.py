"""Netfilter hooks (net/netfilter/core.c): registration and nf_hook_slow(),
and the netdev ingress and egress hooks (include/linux/netfilter_netdev.h
nf_hook_ingress(), nf_hook_egress()).

Everything that runs at a hook registers a `HookEntry` for (family, hook) with a
priority: nf_tables base chains, conntrack (-200 in, INT_MAX confirm), NAT
(-100 / +100), defrag (-400). nf_hook() runs a hook's entries in priority order
(at equal priority the one registered last first, as nf_hook_entries_grow()
inserts it, seen on the lab) until one returns NF_DROP or
NF_STOLEN; NF_DROP frees the packet with NETFILTER_DROP in nf_hook_slow(). An
entry that drops with its own reason or location frees the packet itself with
NF_DROP_REASON() and returns NF_STOLEN, as include/linux/netfilter.h has it
(nft_do_chain() does). NF_QUEUE (the queue number in its upper bits) goes to
nf_queue() (nf_queue.py), which frees the packet or, bypassed, lets the hook
go on with its next entry. As the kernel's nf_hook_entries blob, each (family, hook) keeps
its entries in one tuple rebuilt at (un)registration, so a packet costs no
sorting or copying; a hook with no entries costs a list index.

nft chains `type filter hook ingress device "pN" priority P` (family netdev)
register at NFPROTO_NETDEV hook NF_NETDEV_INGRESS; __netif_receive_skb_core()
runs them through nf_hook_ingress() right after TC ingress, before the protocol
handler, with the receiving device as the state's input device (each chain
keeps to its own devices). The skb's data is at the network header then. A
drop frees the packet with NETFILTER_DROP at nft_do_chain (seen on the lab),
its journey stage NF_INGRESS.

Chains `type filter hook egress device "pN" priority P` register at
NF_NETDEV_EGRESS; __dev_queue_xmit() runs them through nf_hook_egress() first,
before TC egress (sch_handle_egress()) and the qdisc, with the transmitting
device as the state's output device and no input device (net/core/dev.c of
6.x; so tc sees what nft let through, and can set a mark nft never sees). The
skb's data is at the MAC header then. NF_DROP frees it in nf_hook_slow()
(NETFILTER_DROP), journey stage NF_EGRESS. TC's own ingress and egress runs set
skb->nf_skip_egress: a frame TC redirects to a device's egress skips that
device's netdev egress chains (nf_skip_egress(): here skb_do_redirect()'s
transmit marks the skb's cb with NF_SKIP_EGRESS, which nf_hook_egress() takes).

Hook entries get the skb and an `NfHookState` and return a verdict. They record
what they do in the packet's journey themselves (a chain, rule and verdict for
nf_tables; the conntrack state; the NAT rewrite).
"""
from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.skbuff import SkBuff, kfree_skb

_new_tuple = tuple.__new__

NFPROTO_INET, NFPROTO_IPV4, NFPROTO_ARP, NFPROTO_NETDEV, NFPROTO_BRIDGE, NFPROTO_IPV6 = 1, 2, 3, 5, 7, 10
NF_INET_PRE_ROUTING, NF_INET_LOCAL_IN, NF_INET_FORWARD, NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING = range(5)
NF_NETDEV_INGRESS, NF_NETDEV_EGRESS = 0, 1
NF_ARP_IN, NF_ARP_OUT, NF_ARP_FORWARD = 0, 1, 2  # include/uapi/linux/netfilter_arp.h
# the journey stage of an ARP hook: arp_rcv()'s is the host's input, arp_xmit()'s its output
ARP_HOOK_STAGES = (Stage.NF_INPUT, Stage.NF_OUTPUT, Stage.NF_FORWARD)
# include/uapi/linux/netfilter_bridge.h: the bridge's hooks, numbered as the inet ones
NF_BR_PRE_ROUTING, NF_BR_LOCAL_IN, NF_BR_FORWARD, NF_BR_LOCAL_OUT, NF_BR_POST_ROUTING = range(5)
HOOK_NAMES = ("prerouting", "input", "forward", "output", "postrouting")
HOOK_STAGES = (Stage.NF_PREROUTING, Stage.NF_INPUT, Stage.NF_FORWARD, Stage.NF_OUTPUT, Stage.NF_POSTROUTING)
NF_INGRESS_STAGE = Stage.NF_INGRESS  # the netdev ingress hook's, bound once (per packet: see Stage)
NF_EGRESS_STAGE = Stage.NF_EGRESS
NF_DROP, NF_ACCEPT, NF_STOLEN, NF_QUEUE, NF_REPEAT = 0, 1, 2, 3, 4
NF_VERDICT_MASK = 0xFF  # the verdict; NF_DROP_REASON() puts an errno above it, NF_QUEUE_NR() a queue number
NF_VERDICT_QBITS = 16  # include/uapi/linux/netfilter.h: the queue number above the verdict's code
NF_VERDICT_FLAG_QUEUE_BYPASS = 0x00008000
NF_SKIP_EGRESS = "nf_skip_egress"  # skb->nf_skip_egress, set while TC runs (kept in the control block)
NF_BRIDGE = "nf_bridge"  # the skb's nf_bridge_info (br_netfilter.py): an skb extension, kept in its control block

# include/uapi/linux/netfilter_ipv4.h
NF_IP_PRI_CONNTRACK_DEFRAG = -400
NF_IP_PRI_RAW = -300
NF_IP_PRI_CONNTRACK = -200
NF_IP_PRI_MANGLE = -150
NF_IP_PRI_NAT_DST = -100
NF_IP_PRI_FILTER = 0
NF_IP_PRI_SECURITY = 50
NF_IP_PRI_NAT_SRC = 100
NF_IP_PRI_CONNTRACK_HELPER = 300
NF_IP_PRI_CONNTRACK_CONFIRM = 2**31 - 1


class NfHookState(namedtuple("NfHookState", ("hook", "pf", "in_dev", "out_dev", "net", "stage"))):
    """struct nf_hook_state: where the packet is: hook number, family, the
    input and output NetDevice (or None), the namespace, and the journey
    stage, from the hook number unless given (a tuple: one per hook call, so
    the stage is a field rather than a property run by every hop)."""

    __slots__ = ()

    def __new__(cls, hook: int, pf: int, in_dev, out_dev, net, stage: Stage | None = None):
        return _new_tuple(cls, (hook, pf, in_dev, out_dev, net, HOOK_STAGES[hook] if stage is None else stage))


@dataclass(order=True, frozen=True, slots=True)
class HookEntry:
    """struct nf_hook_ops: `fn(skb, state)` returns NF_ACCEPT, NF_DROP or
    NF_STOLEN (the packet is the entry's now, or already freed)."""

    priority: int
    seq: int
    name: str = field(compare=False)
    fn: Callable[[SkBuff, NfHookState], int] = field(compare=False)


class NfHooks:
    """The hook table of one namespace: `entries` per (pf, hook), each a tuple
    in priority order replaced whole at (un)registration, as the kernel swaps
    its nf_hook_entries blob (a packet running the old one finishes with it);
    IPv4's and IPv6's hook functions also in `ipv4` and `ipv6`, indexed by hook
    number, for nf_hook()."""

    def __init__(self) -> None:
        self.entries: dict[tuple[int, int], tuple[HookEntry, ...]] = {}
        self.ipv4: list[tuple[Callable[[SkBuff, NfHookState], int], ...]] = [()] * len(HOOK_NAMES)
        self.ipv6: list[tuple[Callable[[SkBuff, NfHookState], int], ...]] = [()] * len(HOOK_NAMES)
        self.ingress_active = False  # nf_hook_ingress_active(): any netdev ingress entry
        self.egress_active = False  # nf_hook_egress_active(): any netdev egress entry
        self._seq = 0

    def register(self, pf: int, hook: int, priority: int, name: str,
                 fn: Callable[[SkBuff, NfHookState], int]) -> HookEntry:
        """nf_register_net_hook(). NFPROTO_INET registers for IPv4 (and IPv6)."""
        self._seq += 1
        entry = HookEntry(priority, -self._seq, name, fn)
        pfs = (NFPROTO_IPV4, NFPROTO_IPV6) if pf == NFPROTO_INET else (pf,)
        for family in pfs:
            self._replace((family, hook), sorted(self.entries.get((family, hook), ()) + (entry,)))
        return entry

    def unregister(self, entry: HookEntry) -> None:
        for key, entries in list(self.entries.items()):
            if entry in entries:
                self._replace(key, [e for e in entries if e is not entry])

    def _replace(self, key: tuple[int, int], entries: list[HookEntry]) -> None:
        if entries:
            self.entries[key] = tuple(entries)
        else:
            del self.entries[key]
        pf, hook = key
        if pf == NFPROTO_IPV4:
            self.ipv4[hook] = tuple(entry.fn for entry in entries)
        elif pf == NFPROTO_IPV6:
            self.ipv6[hook] = tuple(entry.fn for entry in entries)
        elif key == (NFPROTO_NETDEV, NF_NETDEV_INGRESS):
            self.ingress_active = bool(entries)
        elif key == (NFPROTO_NETDEV, NF_NETDEV_EGRESS):
            self.egress_active = bool(entries)


class NfBridgeHookState(namedtuple("NfBridgeHookState", NfHookState._fields + ("okfn",))):
    """nf_hook_state at an NFPROTO_BRIDGE hook, with the hook's okfn, as the
    kernel's state carries it: br_netfilter's entries take the frame
    (NF_STOLEN) and go on with it themselves (br_nf_hook_thresh())."""

    __slots__ = ()


def NF_HOOK_BRIDGE(skb, hook: int, in_dev, out_dev, okfn) -> None:
    """NF_HOOK(NFPROTO_BRIDGE, hook, ...) as net/bridge calls it: the hook's
    entries in priority order, then okfn(skb) if they all accepted."""
    entries = skb.net.nf_hooks.entries.get((NFPROTO_BRIDGE, hook))
    if entries:
        state = NfBridgeHookState(hook, NFPROTO_BRIDGE, in_dev, out_dev, skb.net, HOOK_STAGES[hook], okfn)
        if nf_hook_slow(skb, state, entries) != NF_ACCEPT:
            return
    okfn(skb)


def NF_HOOK_ARP(skb, hook: int, in_dev, out_dev, okfn) -> None:
    """NF_HOOK(NFPROTO_ARP, hook, ...) as net/ipv4/arp.c calls it: NF_ARP_IN in
    arp_rcv() before arp_process(), NF_ARP_OUT in arp_xmit() before
    arp_xmit_finish(); okfn(skb) if every entry accepted."""
    entries = skb.net.nf_hooks.entries.get((NFPROTO_ARP, hook))
    if entries:
        state = NfHookState(hook, NFPROTO_ARP, in_dev, out_dev, skb.net, ARP_HOOK_STAGES[hook])
        if nf_hook_slow(skb, state, entries) != NF_ACCEPT:
            return
    okfn(skb)


def nf_hook_ingress(skb) -> bool:
    """True if the packet goes on (no chain, or every chain accepted it)."""
    entries = skb.net.nf_hooks.entries.get((NFPROTO_NETDEV, NF_NETDEV_INGRESS))
    if not entries:
        return True
    state = NfHookState(NF_NETDEV_INGRESS, NFPROTO_NETDEV, skb.dev, None, skb.net, NF_INGRESS_STAGE)
    return nf_hook_slow(skb, state, entries) == NF_ACCEPT


def nf_hook_egress(skb, dev) -> bool:
    """nf_hook_egress(): True if the packet goes on to TC egress (no chain, a
    frame TC redirected here, or every chain accepted it); a drop frees it."""
    entries = skb.net.nf_hooks.entries.get((NFPROTO_NETDEV, NF_NETDEV_EGRESS))
    if not entries or (skb.cb and skb.cb.pop(NF_SKIP_EGRESS, False)):
        return True
    state = NfHookState(NF_NETDEV_EGRESS, NFPROTO_NETDEV, None, dev, skb.net, NF_EGRESS_STAGE)
    return nf_hook_slow(skb, state, entries) == NF_ACCEPT


def nf_hook(skb: SkBuff, hook: int, in_dev, out_dev, hookfns: tuple, pf: int = NFPROTO_IPV4) -> bool:
    """nf_hook() for NFPROTO_IPV4 (or `pf` NFPROTO_IPV6) past its static key:
    run `hookfns` (the hook's entries, nf_hooks.ipv4[hook] or .ipv6[hook]);
    True when all accepted and the caller goes on to okfn. As NF_HOOK() is
    inlined into the kernel's callers, each caller writes it out:
        hookfns = net.nf_hooks.ipv4[HOOK]
        if hookfns and not nf_hook(skb, HOOK, in_dev, out_dev, hookfns):
            return
        okfn(skb)
    so a hook with no entries costs a list index, as nf_hooks_needed's static
    key makes it cost a jump. nf_hook_slow()'s loop is written out here (a
    call less per hook with entries); the state is built with tuple.__new__:
    NfHookState's own __new__ is a Python function."""
    state = _new_tuple(NfHookState, (hook, pf, in_dev, out_dev, skb.net, HOOK_STAGES[hook]))
    for fn in hookfns:
        verdict = fn(skb, state)
        if verdict != NF_ACCEPT:
            if verdict == NF_DROP:
                nf_hook_drop(skb, state)
            elif verdict & NF_VERDICT_MASK == NF_QUEUE and nf_queue(skb, state, verdict):
                continue
            return False
    return True


def nf_hook_slow(skb: SkBuff, state: NfHookState, entries: tuple[HookEntry, ...]) -> int:
    for entry in entries:
        verdict = entry.fn(skb, state)
        if verdict == NF_ACCEPT:
            continue
        if verdict == NF_DROP:
            nf_hook_drop(skb, state)
        elif verdict & NF_VERDICT_MASK == NF_QUEUE and nf_queue(skb, state, verdict):
            continue
        return verdict
    return NF_ACCEPT


def nf_hook_drop(skb: SkBuff, state: NfHookState) -> None:
    """nf_hook_slow()'s NF_DROP: the packet is freed there, NETFILTER_DROP."""
    kfree_skb(skb, DropReason.NETFILTER_DROP, state.stage, "nf_hook_slow")


def nf_queue(skb: SkBuff, state: NfHookState, verdict: int) -> bool:
    """net/netfilter/nf_queue.c nf_queue() for nf_hook_slow()'s NF_QUEUE: the
    packet to the queue handler (nfnetlink_queue), for the program bound to the
    queue number in the verdict's upper 16 bits. No program binds a queue on the
    mock (there is no libnetfilter_queue reader), so __nf_queue() always fails as
    nfqnl_enqueue_packet() does when instance_lookup() finds none: -ESRCH. Then
    with NF_VERDICT_FLAG_QUEUE_BYPASS it returns 1 (True here) and the hook goes
    on with its next entry, as if this one had accepted; else kfree_skb() frees
    the packet (NOT_SPECIFIED, at nf_queue on the lab)."""
    queuenum = verdict >> NF_VERDICT_QBITS
    if verdict & NF_VERDICT_FLAG_QUEUE_BYPASS:
        skb.net.tracer.hop(skb, state.stage, "nf_queue", "BYPASS", f"queue {queuenum}: no program bound to it")
        return True
    kfree_skb(skb, DropReason.NOT_SPECIFIED, state.stage, "nf_queue")
    return False


def NF_QUEUE_NR(queuenum: int, bypass: bool = False) -> int:
    """include/uapi/linux/netfilter.h NF_QUEUE_NR(), with NF_VERDICT_FLAG_QUEUE_BYPASS if `bypass`."""
    return (queuenum << NF_VERDICT_QBITS) | NF_QUEUE | (NF_VERDICT_FLAG_QUEUE_BYPASS if bypass else 0)


def NF_DROP_REASON(skb: SkBuff, state: NfHookState, reason: DropReason, err: int, location: str) -> int:
    """include/linux/netfilter.h NF_DROP_REASON(): the entry frees the packet
    itself (kfree_skb_reason() inlined into `location`, where the drop is seen)
    and returns NF_STOLEN with `err` in the verdict's upper 16 bits."""
    kfree_skb(skb, reason, state.stage, location)
    return (err << 16) | NF_STOLEN


def nf_ct_attach(new: SkBuff, skb: SkBuff) -> None:
    """nf_ct_attach() (net/netfilter/core.c): `new`, sent in answer to `skb`, joins
    skb's conntrack entry through the attach conntrack registered (nf_ct_hook,
    here the namespace's `nf_ct_attach`: nf_conntrack_attach()); nothing for a
    packet conntrack never saw."""
    if skb.nfct is not None:
        skb.net.nf_ct_attach(new, skb)
