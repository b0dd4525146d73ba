"""nft netdev `fwd` and `dup` on the mock (netfilter/nft_fwd_netdev.py,
nft_dup_netdev.py, nf_dup_netdev.py): listed and refused as nft 1.0.6 lists and
refuses them (answers recorded in tests/golden/nft/ by tests/golden/record_nft),
and run on crafted frames as nft_fwd_netdev_eval(), nft_fwd_neigh_eval() and
nft_dup_netdev_eval() run them, the outcomes written out by hand."""
from __future__ import annotations

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from harness.mockkernel.target import MockTarget
from test_nft import _without_json_handles, real_tools  # noqa: F401

NETDEV = ('table netdev n {\n\tchain i {\n\t\ttype filter hook ingress device "p0" priority filter;\n\t}\n'
          '\tchain e {\n\t\ttype filter hook egress device "p0" priority filter;\n\t}\n\tchain r {\n\t}\n}\n'
          'table ip t {\n\tchain c {\n\t\ttype filter hook input priority filter;\n\t}\n}\n'
          'table inet t {\n\tchain c {\n\t\ttype filter hook input priority filter;\n\t}\n}\n')
RULES = [
    "netdev n i fwd to p1", "netdev n e fwd to p2", "netdev n r fwd to p1", "netdev n i fwd to 1",
    "netdev n i fwd to meta mark map { 1 : p1, 2 : p2 }", "netdev n i fwd ip to 1.2.3.4 device p1",
    "netdev n i fwd ip6 to 2001:db8::1 device p2", "netdev n i fwd ip to ip saddr map { 1.1.1.1 : 2.2.2.2 } device p1",
    "netdev n i dup to p1", "netdev n i dup to p1 counter accept", "netdev n e dup to meta mark map { 1 : p1 }",
    # refused: by the grammar, by stmt_evaluate_fwd()/_dup(), by the datatypes
    "netdev n i fwd to p9", "netdev n i fwd ip to 1.2.3.4", "netdev n i fwd ip6 to 1.2.3.4 device p1",
    "netdev n i fwd inet to 1.2.3.4 device p1", "netdev n i fwd to p1 accept", "netdev n i fwd to p1 counter",
    "netdev n i dup to p1 device p1", "netdev n i fwd", "netdev n i fwd to", "netdev n i dup",
    "ip t c fwd to p1", "ip t c fwd ip to 1.2.3.4 device p1", "inet t c dup to p1",
]


def test_fwd_and_dup_list_back_or_are_refused_as_real_nft_does(real_tools):
    steps = [(["nft", "-f", "-"], NETDEV)]
    steps += [(["nft", "add", "rule", *rule.split()], None) for rule in RULES]
    steps += [(["nft", "-a", "list", "ruleset"], None), (["nft", "-j", "list", "ruleset"], None)]
    real_tools.assert_same_as_real(steps, _without_json_handles)


def _netdev_ingress(target, *rules: str) -> None:
    body = "".join(f"  {rule}\n" for rule in rules)
    target.sh("nft -f -", stdin=f'table netdev n {{\n chain i {{\n type filter hook ingress device "p0" priority 0;\n'
                                f"{body} }}\n}}\n")


def test_fwd_steals_the_packet_and_its_journey_goes_on_out_of_the_other_device():
    target = MockTarget()
    _netdev_ingress(target, 'fwd to "p1"')
    frame = Ether(dst=target.ports[0].mac, src="02:00:00:00:00:01") / IP(src="10.0.0.2", dst="10.0.0.1", ttl=1) / \
        UDP(sport=1, dport=2)
    target.send("p0", frame)
    target.expect("p1", frame)
    (journey,) = target.journeys()
    hops = [(h.stage, h.where, h.verdict) for h in journey.hops if h.stage in ("NF_INGRESS", "NIC_TX")]
    assert hops == [("NF_INGRESS", "nf_fwd_netdev_egress", "FWD"), ("NIC_TX", "p1", hops[1][2]),
                    ("NF_INGRESS", "netdev n i", "STOLEN")]
    assert journey.drop is None


def test_fwd_to_an_unresolved_neighbour_queues_the_packet_and_asks_for_it():
    target = MockTarget()
    target.sh("ip addr add 10.0.1.1/24 dev p1")
    target.sh("ip link set p1 up")
    _netdev_ingress(target, 'fwd ip to 10.0.1.7 device "p1"')
    target.send("p0", Ether(dst=target.ports[0].mac) / IP(src="10.0.0.2", dst="10.9.9.9", ttl=3) / UDP(dport=9))
    request = Ether(target.frame_left("p1", "the ARP request for the neighbour"))
    assert (request.dst, request[ARP].op, request[ARP].pdst, request[ARP].psrc) == (
        "ff:ff:ff:ff:ff:ff", 1, "10.0.1.7", "10.0.1.1")
