"""nft bridge chains at their NFPROTO_BRIDGE hooks (NF_HOOK_BRIDGE as net/bridge
calls it): `ether`/`vlan` fields read from the MAC header in front of the
network header, a drop frees the frame with NETFILTER_DROP at the hook's stage
(nft_do_chain), an accept goes on to okfn, and chains run by priority."""
from __future__ import annotations

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from harness.dropreason import DropReason
from harness.journey import Stage
from harness.mockkernel.core.dev import eth_type_trans
from harness.mockkernel.core.skbuff import SkBuff
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.netfilter.core import NF_BR_FORWARD, NF_BR_PRE_ROUTING, NF_HOOK_BRIDGE
from harness.mockkernel.target import sh

SRC_MAC, DST_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"


def _frame_skb(k: Kernel, frame) -> SkBuff:
    skb = SkBuff(bytes(frame))
    skb.dev, skb.net = k.dev_by_name("p0"), k
    eth_type_trans(skb)
    return skb


def _run(k: Kernel, frame, hook: int = NF_BR_FORWARD) -> bool:
    """Whether the frame went on past the hook."""
    passed = []
    NF_HOOK_BRIDGE(_frame_skb(k, frame), hook, k.dev_by_name("p0"), k.dev_by_name("p1"), passed.append)
    return bool(passed)


def _bridge_table(k: Kernel, rules: str, hook: str = "forward") -> None:
    sh(k, ["nft", "-f", "-"], f"table bridge t {{\n chain c {{\n type filter hook {hook} priority filter;\n"
                               f"{rules}\n }}\n}}\n")


def test_ether_saddr_and_type_drop_only_the_frames_they_name():
    k = Kernel()
    _bridge_table(k, "ether saddr 02:00:00:00:00:01 ether type ip counter drop")
    udp = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(dport=53)
    assert not _run(k, Ether(src=SRC_MAC, dst=DST_MAC) / udp)
    assert _run(k, Ether(src="02:00:00:00:00:09", dst=DST_MAC) / udp)
    assert _run(k, Ether(src=SRC_MAC, dst=DST_MAC, type=0x86DD) / bytes(40))
    drop = k.tracer.drops[-1]
    assert (drop.reason, drop.stage) == (DropReason.NETFILTER_DROP, Stage.NF_FORWARD)
    # skb->len counts from the network header at the bridge's hooks: IP + UDP
    assert "counter packets 1 bytes 28 drop" in sh(k, ["nft", "list", "ruleset"])


def test_vlan_id_and_pcp_read_the_tag_after_the_mac_addresses():
    k = Kernel()
    _bridge_table(k, "vlan id 10 vlan pcp 3 drop")
    payload = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(dport=53)
    assert not _run(k, Ether(src=SRC_MAC, dst=DST_MAC) / Dot1Q(vlan=10, prio=3) / payload)
    assert _run(k, Ether(src=SRC_MAC, dst=DST_MAC) / Dot1Q(vlan=10, prio=2) / payload)
    assert _run(k, Ether(src=SRC_MAC, dst=DST_MAC) / Dot1Q(vlan=11, prio=3) / payload)
    assert _run(k, Ether(src=SRC_MAC, dst=DST_MAC) / payload)  # no tag: `ether type 8021q` fails first


def test_ip_fields_in_a_bridge_chain_match_the_network_header():
    k = Kernel()
    _bridge_table(k, "ip daddr 10.0.0.2 udp dport 53 drop", hook="prerouting")
    frame = Ether(src=SRC_MAC, dst=DST_MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(dport=53)
    assert not _run(k, frame, NF_BR_PRE_ROUTING)
    assert _run(k, frame, NF_BR_FORWARD)  # a prerouting chain leaves the other hooks alone
    assert _run(k, Ether(src=SRC_MAC, dst=DST_MAC) / IP(src="10.0.0.1", dst="10.0.0.3") / UDP(dport=53),
                NF_BR_PRE_ROUTING)
    assert k.tracer.drops[-1].stage == Stage.NF_PREROUTING


def test_the_chain_of_lower_priority_decides_first():
    k = Kernel()
    sh(k, ["nft", "-f", "-"], "table bridge t {\n"
       " chain late { type filter hook forward priority filter + 1; counter drop; }\n"
       " chain early { type filter hook forward priority filter; counter accept; }\n}\n")
    assert not _run(k, Ether(src=SRC_MAC, dst=DST_MAC) / IP() / UDP())
    listing = sh(k, ["nft", "list", "ruleset"])
    assert listing.count("counter packets 1 bytes 28") == 2  # accept goes on to the next chain, which drops


def test_a_vlan_tag_the_bridge_holds_out_of_band_is_read_where_it_was_in_the_frame():
    """A received frame's tag is out of the frame (skb->vlan_proto, vlan_tci:
    skb_vlan_untag() in __netif_receive_skb_core()); nft_payload_copy_vlan() shows
    it to `ether type` and `vlan` loads in place."""
    k = Kernel()
    _bridge_table(k, "ether type 8021q vlan id 10 vlan pcp 5 ether saddr 02:00:00:00:00:01 drop")
    untagged = Ether(src=SRC_MAC, dst=DST_MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(dport=53)
    for tci, goes_on in ((5 << 13 | 10, False), (5 << 13 | 11, True), (4 << 13 | 10, True)):
        skb = _frame_skb(k, untagged)
        skb.vlan_proto, skb.vlan_tci = 0x8100, tci
        passed = []
        NF_HOOK_BRIDGE(skb, NF_BR_FORWARD, k.dev_by_name("p0"), k.dev_by_name("p1"), passed.append)
        assert bool(passed) is goes_on, hex(tci)
    assert _run(k, untagged)  # no tag at all: `ether type 8021q` fails
