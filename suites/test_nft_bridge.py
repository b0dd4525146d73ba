"""The nft bridge family on both targets: its five hooks with the bridge's own
standard priorities (nftables src/rule.c bridge_std_prios: dstnat -300,
filter -200, out 100, srcnat 300, each name at its hooks), `ether` and `vlan`
header fields with their implicit dependencies (`ether type 8021q` before a
vlan field, `meta protocol ip` before an ip one) left out of the listing, and
what nft 1.0.6 and the lab's 6.18 kernel refuse in a bridge table, with their
messages. The expected listings and errors were recorded from nft 1.0.6 on
the lab's kernel.
"""
from __future__ import annotations

import json

import pytest

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from harness.target import CommandError
from harness.testing import bridge_up, counted_by_comment

pytestmark = pytest.mark.requires("nftables")

BRIDGE_RULESET = """
table bridge filter {
    chain pre { type filter hook prerouting priority dstnat; policy accept; }
    chain early { type filter hook prerouting priority -301; }
    chain inp { type filter hook input priority filter - 5; }
    chain forward {
        type filter hook forward priority -200; policy drop;
        ether saddr 02:00:00:00:00:01 ether type ip counter accept
        ether daddr ff:ff:ff:ff:ff:ff drop
        ether type vlan vlan id 5 accept
        vlan id 10 vlan pcp 3 ip saddr 10.0.0.1 accept
        vlan type arp accept
        vlan dei 1 vlan cfi 1 accept
        ether type 8021ad vlan id 4 accept
        ether type ip ip saddr 1.2.3.4 accept
        ether type ip tcp dport 22 accept
        ip daddr 10.0.0.2 tcp dport 80 drop
        ether type ip ether saddr 00:11:22:33:44:55 ether daddr 00:11:22:33:44:66 accept
        vlan id 3 ether saddr 00:11:22:33:44:55 accept
        ether saddr 00:11:22:33:44:55 counter ether type ip
        ether daddr & ff:00:00:00:00:00 == 01:00:00:00:00:00 accept
        ether daddr 01:00:5e:00:00:00/24 accept
        ether saddr . ether type { 02:00:00:00:00:01 . ip } accept
        ether type { ip, arp } accept
        iifname "veth0" oifname "eth0" notrack
    }
    chain out { type filter hook output priority out; }
    chain post { type filter hook postrouting priority 301; }
    chain later { type filter hook forward priority 0; }
}
"""

BRIDGE_LISTING = """table bridge filter {
	chain pre {
		type filter hook prerouting priority dstnat; policy accept;
	}

	chain early {
		type filter hook prerouting priority dstnat - 1; policy accept;
	}

	chain inp {
		type filter hook input priority filter - 5; policy accept;
	}

	chain forward {
		type filter hook forward priority filter; policy drop;
		ether saddr 02:00:00:00:00:01 ether type ip counter packets 0 bytes 0 accept
		ether daddr ff:ff:ff:ff:ff:ff drop
		vlan id 5 accept
		vlan id 10 vlan pcp 3 ip saddr 10.0.0.1 accept
		ether type 8021q vlan type arp accept
		vlan dei 1 vlan dei 1 accept
		ether type 8021ad vlan id 4 accept
		ip saddr 1.2.3.4 accept
		ether type ip tcp dport 22 accept
		ip daddr 10.0.0.2 tcp dport 80 drop
		ether daddr 00:11:22:33:44:66 ether saddr 00:11:22:33:44:55 ether type ip accept
		ether saddr 00:11:22:33:44:55 vlan id 3 accept
		counter packets 0 bytes 0 ether saddr 00:11:22:33:44:55 ether type ip
		ether daddr & ff:00:00:00:00:00 == 01:00:00:00:00:00 accept
		ether daddr 01:00:5e:00:00:00/24 accept
		ether saddr . ether type { 02:00:00:00:00:01 . ip } accept
		ether type { ip, arp } accept
		iifname "veth0" oifname "eth0" notrack
	}

	chain out {
		type filter hook output priority out; policy accept;
	}

	chain post {
		type filter hook postrouting priority srcnat + 1; policy accept;
	}

	chain later {
		type filter hook forward priority 0; policy accept;
	}
}
"""


def test_a_bridge_table_lists_as_nft_prints_it(target):
    target.sh("nft -f -", stdin=BRIDGE_RULESET)
    assert target.sh("nft list table bridge filter") == BRIDGE_LISTING


def test_a_bridge_listing_loads_back_to_itself(target):
    target.sh("nft -f -", stdin=BRIDGE_RULESET)
    listed = target.sh("nft list ruleset")
    target.sh("nft flush ruleset")
    target.sh("nft -f -", stdin=listed)
    assert target.sh("nft list ruleset") == listed


def _caret(command: str, text: str, occurrence: int = 1) -> str:
    """The error's command line and nft's caret line under `text` in it."""
    start = -1
    for _ in range(occurrence):
        start = command.index(text, start + 1)
    return f"{command}\n{' ' * start}{'^' * len(text)}"


@pytest.mark.parametrize("command, message, token", [
    ('add chain bridge filter n { type nat hook prerouting priority dstnat; }',
     "Could not process rule: No such file or directory", "nat"),
    ('add chain bridge filter r { type route hook output priority 0; }',
     "Could not process rule: No such file or directory", "route"),
    ('add chain bridge filter i { type filter hook ingress priority 0; }',
     "The bridge family does not support this hook", "ingress"),
    ('add chain bridge filter x { type filter hook postrouting priority out; }',
     "invalid priority expression value in this context.", "priority out"),
    ("add rule bridge filter forward ether type ip vlan id 3 accept",
     "conflicting protocols specified: ether vs. vlan", "vlan id"),
    ("add rule bridge filter forward meta ibrname br0", "Could not process rule: Operation not supported",
     "meta ibrname"),
    ("add rule bridge filter forward obrname br0", "Could not process rule: Operation not supported", "obrname"),
    ("add rule bridge filter forward meta ibrvproto vlan", "Could not process rule: Operation not supported",
     "meta ibrvproto"),
    ("add rule bridge filter forward meta ibrpvid 70000", "Value 70000 exceeds valid range 0-65535", "70000"),
    ("add rule bridge filter forward ct state established", "Could not process rule: Protocol error", "ct state"),
    ("add rule bridge filter forward ct mark set 1", "Could not process rule: Protocol error", "ct mark set 1"),
    ("add rule bridge filter forward masquerade", "NAT is only supported for IPv4/IPv6", "masquerade"),
    ("add rule bridge filter forward ip saddr 1.1.1.1 dnat to 2.2.2.2", "NAT is only supported for IPv4/IPv6",
     "dnat"),
    ("add rule bridge filter forward meta nfproto ipv4", "meta nfproto is only useful in the inet family",
     "meta nfproto"),
    ("add rule bridge filter forward ether saddr foo", "Invalid LL address", "foo"),
    ("add rule bridge filter forward ether saddr 0x112233445566", "Invalid LL address", "0x112233445566"),
    ("add rule bridge filter forward ether type foo", "Could not parse Ethernet protocol", "foo"),
    ("add rule bridge filter forward vlan id 4096", "Value 4096 exceeds valid range 0-4095", "4096"),
    ("add rule bridge filter forward reject", "Could not process rule: No such file or directory", "reject"),
    ("add rule bridge filter forward ether type ip reject with icmpx port-unreachable",
     "Could not process rule: No such file or directory", "reject"),
], ids=["nat chain", "route chain", "ingress hook", "out at postrouting", "ether then vlan", "meta ibrname",
        "obrname", "meta ibrvproto", "ibrpvid range", "ct state", "ct mark set", "masquerade", "dnat",
        "meta nfproto", "ether saddr word", "ether saddr number", "ether type word", "vlan id range",
        "reject", "reject with icmpx"])
def test_what_nft_and_the_kernel_refuse_in_a_bridge_table(target, command, message, token):
    """`meta ibr*`, conntrack and reject are refused by the kernel: the lab's is
    built without CONFIG_NFT_BRIDGE_META, CONFIG_NF_CONNTRACK_BRIDGE and
    CONFIG_NFT_BRIDGE_REJECT."""
    target.sh("nft -f -", stdin=BRIDGE_RULESET)
    before = target.sh("nft list ruleset")
    with pytest.raises(CommandError) as refused:
        target.sh(f"nft {command}")
    assert str(refused.value).split("failed: ", 1)[1] == f"Error: {message}\n{_caret(command, token)}"
    assert target.sh("nft list ruleset") == before


def test_meta_ibrname_is_refused_in_the_ip_family_too(target):
    """nft_meta_bridge.c is the only place the key is known; nft_meta_get_init() says EOPNOTSUPP."""
    target.sh("nft add table ip filter")
    target.sh("nft add chain ip filter c")
    with pytest.raises(CommandError) as refused:
        target.sh("nft add rule ip filter c meta ibrname br0")
    assert str(refused.value).split("failed: ", 1)[1] == \
        "Error: Could not process rule: Operation not supported\n" + \
        _caret("add rule ip filter c meta ibrname br0", "meta ibrname")


JSON_RULES = """
table bridge filter {
    chain forward {
        type filter hook forward priority -200; policy drop;
        ether saddr 02:00:00:00:00:01 ether type ip counter accept
        vlan id 10 vlan pcp 3 ip saddr 10.0.0.1 accept
        ether daddr 01:00:5e:00:00:00/24 accept
    }
}
"""


def test_a_bridge_table_lists_as_nft_prints_it_in_json(target):
    target.sh("nft -f -", stdin=JSON_RULES)
    table, *listed = json.loads(target.sh("nft -j list table bridge filter"))["nftables"][1:]
    assert (table["table"]["family"], table["table"]["name"]) == ("bridge", "filter")  # its handle is the namespace's

    def match(proto: str, fld: str, right) -> dict:
        return {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": fld}}, "right": right}}
    rule = {"family": "bridge", "table": "filter", "chain": "forward"}
    assert listed == [
        {"chain": {"family": "bridge", "table": "filter", "name": "forward", "handle": 1, "type": "filter",
                   "hook": "forward", "prio": -200, "policy": "drop"}},
        {"rule": {**rule, "handle": 2, "expr": [match("ether", "saddr", "02:00:00:00:00:01"),
                                                 match("ether", "type", "ip"),
                                                 {"counter": {"packets": 0, "bytes": 0}}, {"accept": None}]}},
        {"rule": {**rule, "handle": 3, "expr": [match("vlan", "id", 10), match("vlan", "pcp", 3),
                                                 match("ip", "saddr", "10.0.0.1"), {"accept": None}]}},
        {"rule": {**rule, "handle": 4, "expr": [match("ether", "daddr",
                                                       {"prefix": {"addr": "01:00:5e:00:00:00", "len": 24}}),
                                                 {"accept": None}]}},
    ]



VLAN_SET = """
table bridge t {
    chain forward {
        type filter hook forward priority filter; policy accept;
        vlan id 10 vlan id set 20
    }
    chain postrouting {
        type filter hook postrouting priority srcnat; policy accept;
        vlan id 20 counter comment "retagged"
        vlan id 10 counter comment "still 10"
    }
}
"""


def test_vlan_id_set_retags_a_bridged_frame(target):
    """`vlan id set 20` writes the tag's TCI under the id's mask (nft_payload_set_eval();
    a tag the receiving device took out of the frame is skb->vlan_tci, which
    nft_payload_set_vlan() writes): the bridge's postrouting chain sees VLAN 20.
    (The frame leaving p1 is not compared: the lab's capture loses a tag held
    out of band.)"""
    bridge_up(target, ports=("p0", "p1"))
    target.sh("nft -f -", stdin=VLAN_SET)
    assert "vlan id 10 vlan id set 20" in target.sh("nft list table bridge t")
    payload = IP(src="192.0.2.1", dst="192.0.2.2", id=9) / UDP(sport=7, dport=9)
    target.send("p0", Ether(src="02:00:00:00:aa:01", dst="02:00:00:00:aa:02") / Dot1Q(vlan=10, prio=1) / payload)
    assert counted_by_comment(target) == {"retagged": 1, "still 10": 0}
