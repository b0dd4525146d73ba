"""The journey drawn on the reference's map (harness/report/journey_map.py), its JSON
form and the side-by-side of one test on two targets in an allure-results directory."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness.dropreason import DropReason
from harness.journey import Drop, Hop, Journey, Stage, journey_of_path, journeys_from_json, journeys_to_json, \
    path_text, render_all
from harness.mockkernel.target import MockTarget
from harness.report.journey_map import MAX_HEIGHT, add_side_by_side, journey_map_pages, journey_map_svg, \
    side_by_side_svg, wire_journeys

pytest_plugins = ["pytester"]
SVG = "{http://www.w3.org/2000/svg}"

# a UDP datagram to a closed port: up the inbound column, dropped at L4, answered with an ICMP error
PORT_UNREACHABLE = Journey(
    "02:00:00:00:01:01 > 02:00:00:00:00:01 IPv4 10.0.0.2 > 10.0.0.1 udp id=1 ttl=64 len=28",
    [Hop(Stage.NIC_RX, "p0", "DMA", "rx ring of 256"), Hop(Stage.NAPI, "p0 poll", "", "softirq round 1"),
     Hop(Stage.SKB, "napi_alloc_skb"), Hop(Stage.IP_RCV, "ip_rcv_core", "OK"),
     Hop(Stage.NF_PREROUTING, "ip nat pre", "ACCEPT", "policy"),
     Hop(Stage.ROUTING, "ip_route_input_slow", "LOCAL", "local"),
     Hop(Stage.NF_INPUT, "ip f in", "ACCEPT", "policy"), Hop(Stage.L4, "__udp4_lib_rcv", "", "dport 7 no socket")],
    Drop(DropReason.NO_SOCKET, Stage.L4, "__udp4_lib_rcv"),
    [Journey("icmp_send type 3 code 3: 10.0.0.1 > 10.0.0.2 icmp id=5306 ttl=64 len=56",
             [Hop(Stage.NF_OUTPUT, "nf_conntrack_in", "RELATED_REPLY", "10.0.0.2:1 > 10.0.0.1:7"),
              Hop(Stage.NEIGH, "neigh_hh_output", "PERMANENT"), Hop(Stage.NIC_TX, "p0", "XMIT")])])

# forwarded with a DNAT in PREROUTING and a masquerade in POSTROUTING
FORWARDED = Journey(
    "02:00:00:00:01:01 > 02:00:00:00:00:01 IPv4 10.0.0.2 > 10.0.0.1 udp id=1 ttl=5 len=28",
    [Hop(Stage.NIC_RX, "p0", "DMA"), Hop(Stage.NF_PREROUTING, "ip nat pre", "ACCEPT", "rule 3: dnat to 10.0.1.2"),
     Hop(Stage.NF_PREROUTING, "nf_nat_packet", "DNAT", "daddr 10.0.0.1:53 -> 10.0.1.2:53"),
     Hop(Stage.ROUTING, "ip_route_input_slow", "FORWARD", "p1"), Hop(Stage.IP_FORWARD, "ip_forward", "OK"),
     Hop(Stage.NF_FORWARD, "ip f fwd", "ACCEPT", "policy"),
     Hop(Stage.NF_POSTROUTING, "nf_nat_packet", "SNAT", "saddr 10.0.0.2:1 -> 10.0.1.1:1"),
     Hop(Stage.NIC_TX, "p1", "XMIT")])


def _map(svg: str, target: str = "", rank: int = 1) -> ET.Element:
    root = ET.fromstring(svg)
    return next(g for g in root.iter(f"{SVG}g") if g.get("class") == "map"
                and g.get("data-rank") == str(rank) and (not target or g.get("data-target") == target))


def _shown(text: ET.Element) -> str:
    """A text element's words on the picture (its <title> is the hover text)."""
    title = text.find(f"{SVG}title")
    return title.tail if title is not None else text.text


def _texts(svg: str, css: str | None = None) -> list[str]:
    return [_shown(t) for t in ET.fromstring(svg).iter(f"{SVG}text") if css is None or t.get("class") == css]


def _notes(svg: str, css: str) -> set[str]:
    """The notes beside the boxes, whole (a note wrapped in two lines has itself as the hover text of each)."""
    return {t.findtext(f"{SVG}title") or t.text for t in ET.fromstring(svg).iter(f"{SVG}text") if t.get("class") == css}


def _badges(group: ET.Element) -> dict[str, str]:
    return {t.text: t.get("data-stage") for t in group.iter(f"{SVG}text") if t.get("class") == "badge-text"}


def _boxes(group: ET.Element, css: str) -> set[str]:
    return {r.get("data-stage") for r in group.iter(f"{SVG}rect") if r.get("class") == css}


def test_the_map_numbers_the_stages_a_packet_crossed_in_order_and_its_caused_packet_apart():
    group = _map(journey_map_svg([PORT_UNREACHABLE], "mock"))
    badges = _badges(group)
    assert [badges[str(n)] for n in range(1, 9)] == [
        "NIC_RX", "NAPI", "SKB", "IP_RCV", "NF_PREROUTING", "ROUTING.in", "NF_INPUT", "L4.in"]
    assert [badges[f"a{n}"] for n in range(1, 4)] == ["NF_OUTPUT", "NEIGH", "NIC_TX"]
    assert _boxes(group, "box crossed") == {"NIC_RX", "NAPI", "SKB", "IP_RCV", "NF_PREROUTING", "ROUTING.in",
                                            "NF_INPUT"}
    assert _boxes(group, "box dropped") == {"L4.in"}
    assert _boxes(group, "box caused-box") == {"NF_OUTPUT", "NEIGH", "NIC_TX"}
    assert {"XDP", "TC_INGRESS", "SOCKET.in", "NF_FORWARD", "SOCKET.out"} <= _boxes(group, "box")


def test_the_drop_reads_with_its_reason_and_kernel_function_and_the_caused_packet_is_named():
    svg = journey_map_svg([PORT_UNREACHABLE])
    assert _texts(svg, "note-drop") == ["DROP NO_SOCKET in __udp4_lib_rcv"]
    assert "a: caused icmp_send type 3 code 3" in _texts(svg, "note-caused")  # on the link to it
    assert {"a: neigh_hh_output: PERMANENT", "a: p0: XMIT",
            "a: nf_conntrack_in: RELATED_REPLY 10.0.0.2:1 > 10.0.0.1:7"} <= _notes(svg, "note-caused")


def test_a_forwarded_packet_crosses_the_forward_path_with_its_rewrites_and_ttl_beside_the_boxes():
    svg = journey_map_svg([FORWARDED])
    badges = _badges(_map(svg))
    assert [badges[str(n)] for n in range(1, 8)] == [
        "NIC_RX", "NF_PREROUTING", "ROUTING.in", "IP_FORWARD", "NF_FORWARD", "NF_POSTROUTING", "NIC_TX"]
    notes = _notes(svg, "note")
    assert "nf_nat_packet: DNAT daddr 10.0.0.1:53 -> 10.0.1.2:53" in notes
    assert "nf_nat_packet: SNAT saddr 10.0.0.2:1 -> 10.0.1.1:1" in notes
    assert "ip_forward: OK, ttl 5 -> 4" in notes  # ip_decrease_ttl() in ip_forward()


def test_the_map_has_a_legend_of_its_marks():
    legend = next(g for g in ET.fromstring(journey_map_svg([FORWARDED])).iter(f"{SVG}g") if g.get("id") == "legend")
    texts = {_shown(t) for t in legend.iter(f"{SVG}text")}
    assert {"stage crossed", "order crossed", "not crossed", "not observed by this target",
            "dropped: reason and kernel function beside it", "netfilter", "TC, qdisc"} <= texts


def test_a_717_packet_test_is_a_small_picture_of_its_distinct_paths_with_counts():
    dut = MockTarget()
    for command in ("ip addr add 10.0.0.1/24 dev p0", "ip addr add 10.0.1.1/24 dev p1",
                    "ip neigh replace 10.0.1.2 lladdr 02:00:00:00:01:02 dev p1 nud permanent",
                    "sysctl -w net.ipv4.ip_forward=1"):
        dut.sh(command)
    dut.sh("nft -f -", "table ip f {\n chain in { type filter hook input priority 0; policy drop; }\n}\n")
    frame = Ether(src="02:00:00:00:01:01", dst="02:00:00:00:00:01")
    packets = [frame / IP(src="10.0.0.2", dst="10.0.1.2") / UDP(sport=1024 + i, dport=9) for i in range(700)] \
        + [frame / IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=1024 + i, dport=9) for i in range(17)]
    for burst in range(0, len(packets), 100):  # within the rx ring of 256
        dut.send("p0", packets[burst:burst + 100])
    svg = journey_map_svg(dut.journeys(), "mock")
    root = ET.fromstring(svg)
    assert int(root.get("height")) <= MAX_HEIGHT <= 2000
    texts = _texts(svg)
    assert texts[0].startswith("mock: 717 packets on ")
    assert "mock path 1 of 2: 700 packets (98%)" in texts  # a flow per source port, one path
    assert "mock path 2 of 2: 17 packets (2%)" in texts  # the INPUT chain's policy drop


def test_paths_past_the_maps_are_listed_with_their_counts():
    journeys = [Journey(f"packet to port {port}", [Hop(Stage.NIC_RX, f"p{port % 3}"), Hop(Stage.L4, f"port {port}")])
                for port in range(20) for _ in range(20 - port)]
    svg = journey_map_svg(journeys)
    assert len([g for g in ET.fromstring(svg).iter(f"{SVG}g") if g.get("class") == "map"]) == 3
    texts = _texts(svg)
    assert "17 more paths, 153 packets:" in texts
    assert "     17 x NIC_RX[p0] > L4[port 3]" in texts
    assert "... 9 more paths: every path is in the journeys' text attachment" in texts


def test_the_maps_come_a_page_each_small_enough_to_read_in_a_report_panel():
    journeys = [Journey(f"packet to port {port}", [Hop(Stage.NIC_RX, "p0"), Hop(Stage.L4, f"port {port}")])
                for port in range(5) for _ in range(5 - port)]
    pages = journey_map_pages(journeys, "mock")
    assert len(pages) == 3
    for rank, page in enumerate(pages, 1):
        root = ET.fromstring(page)
        assert [g.get("data-rank") for g in root.iter(f"{SVG}g") if g.get("class") == "map"] == [str(rank)]
        assert int(root.get("width")) <= 1100 and int(root.get("height")) <= 700
        assert ("2 more paths, 3 packets:" in _texts(page)) == (rank == 1)


def test_side_by_side_outlines_where_the_targets_differ_among_the_stages_both_observe():
    mock = Journey("udp", [Hop(Stage.NIC_RX, "p0", "DMA"), Hop(Stage.NF_PREROUTING, "ip f pre", "ACCEPT"),
                           Hop(Stage.ROUTING, "ip_route_input_slow", "LOCAL"), Hop(Stage.NF_INPUT, "ip f in", "ACCEPT"),
                           Hop(Stage.L4, "__udp4_lib_rcv"), Hop(Stage.SOCKET, "udp", "QUEUED")])
    dut = Journey("udp", [Hop(Stage.NF_PREROUTING, "ip f pre", "ACCEPT"), Hop(Stage.NF_INPUT, "ip f in", "DROP")],
                  Drop(DropReason.NETFILTER_DROP, Stage.NF_INPUT, "nft_do_chain"))
    netfilter = frozenset(stage for stage in Stage if stage.startswith("NF"))
    svg = side_by_side_svg({"mock": [mock], "dut": [dut]}, {"mock": frozenset(Stage), "dut": netfilter})
    # NIC_RX, routing, L4 and the socket are not the netns lab's to see: not differences
    assert _boxes(_map(svg, "mock"), "differs") == {"NF_INPUT"}
    assert _boxes(_map(svg, "dut"), "differs") == {"NF_INPUT"}
    assert {"NIC_RX", "L4.in", "SOCKET.in"} <= _boxes(_map(svg, "dut"), "box unobserved")
    same = side_by_side_svg({"mock": [mock], "dut": [mock]})
    assert _boxes(_map(same, "mock"), "differs") == set()


def test_side_by_side_pairs_each_path_with_the_other_targets_most_like_it_whatever_their_order():
    accepted = Journey("new from inside", [Hop(Stage.NF_FORWARD, "ip filter forward", "ACCEPT"),
                                           Hop(Stage.NIC_TX, "p1", "XMIT")])
    dropped = Journey("new from outside", [Hop(Stage.NF_FORWARD, "ip filter forward", "DROP")],
                      Drop(DropReason.NETFILTER_DROP, Stage.NF_FORWARD, "nft_do_chain"))
    svg = side_by_side_svg({"mock": [dropped, accepted], "dut": [accepted, dropped]})
    for rank, stages in ((1, {"NF_FORWARD"}), (2, {"NF_FORWARD", "NIC_TX"})):
        assert set(_badges(_map(svg, "mock", rank)).values()) == set(_badges(_map(svg, "dut", rank)).values()) == stages
        assert _boxes(_map(svg, "dut", rank), "differs") == set()
    assert _texts(svg)[0] == "mock: 2 packets on 2 distinct paths | dut: 2 packets on 2 distinct paths; 0 boxes differ"


def test_a_journey_goes_to_json_and_back_whole_and_a_path_line_back_to_its_hops():
    data = json.loads(json.dumps(journeys_to_json([PORT_UNREACHABLE, FORWARDED])))
    assert data["journeys"][0]["drop"] == {"reason": "NO_SOCKET", "stage": "L4", "location": "__udp4_lib_rcv"}
    assert data["journeys"][1]["hops"][0] == {"stage": "NIC_RX", "where": "p0", "verdict": "DMA"}
    back = journeys_from_json(data)
    assert render_all(back) == render_all([PORT_UNREACHABLE, FORWARDED])
    folded = journeys_from_json(journeys_to_json([FORWARDED, PORT_UNREACHABLE, FORWARDED], whole=1))
    assert [j.packet for j in folded] == [FORWARDED.packet]
    assert folded.paths == [(path_text(PORT_UNREACHABLE), 1), (path_text(FORWARDED), 1)]
    parsed = journey_of_path("NF_OUTPUT[nf_conntrack_in] -> RELATED_REPLY (10.0.0.2:1 > 10.0.0.1:7) > "
                             "NIC_TX[p0] -> XMIT > DROP NO_SOCKET at L4 in __udp4_lib_rcv > caused: (NIC_TX[p1])")
    assert parsed.hops == [Hop("NF_OUTPUT", "nf_conntrack_in", "RELATED_REPLY", "10.0.0.2:1 > 10.0.0.1:7"),
                           Hop("NIC_TX", "p0", "XMIT")]
    assert parsed.drop == ("NO_SOCKET", "L4", "__udp4_lib_rcv", "")
    assert parsed.children[0].hops == [Hop("NIC_TX", "p1")]


def test_a_target_that_recorded_no_journey_is_drawn_from_its_frames():
    frame = bytes(Ether(src="02:00:00:00:01:01", dst="02:00:00:00:00:01") / IP(src="10.0.0.2", dst="10.0.0.1") / UDP())
    journeys = wire_journeys([("sent into", "p0", frame), ("left", "p1", frame)])
    assert [j.hops for j in journeys] == [[Hop("NIC_RX", "p0", "", "frame on the wire")],
                                          [Hop("NIC_TX", "p1", "", "frame on the wire")]]
    assert journeys[0].packet.startswith("Ether / IP / UDP 10.0.0.2:domain > 10.0.0.1:domain")


def _result(path, name: str, target: str, journeys: list[Journey], observed: list[str]) -> None:
    (path / f"{name}-{target}-journeys.json").write_text(json.dumps(
        {"target": target, "observed": observed, **journeys_to_json(journeys)}))
    (path / f"{name}-{target}-result.json").write_text(json.dumps({
        "name": name, "fullName": f"suites.test_x#{name}", "status": "passed",
        "parameters": [{"name": "target", "value": target}],
        "attachments": [{"name": f"journeys ({target}).json", "source": f"{name}-{target}-journeys.json",
                         "type": "application/json"}]}))


def test_each_result_of_a_test_seen_on_two_targets_gets_the_maps_side_by_side_once(tmp_path):
    _result(tmp_path, "test_a", "mock", [FORWARDED, PORT_UNREACHABLE], [stage.value for stage in Stage])
    _result(tmp_path, "test_a", "dut", [PORT_UNREACHABLE], ["NF_PREROUTING", "NF_INPUT", "L4"])
    _result(tmp_path, "test_b", "mock", [FORWARDED], [stage.value for stage in Stage])
    assert add_side_by_side(tmp_path) == 2
    assert add_side_by_side(tmp_path) == 2  # again: replaces its own attachment
    for target in ("mock", "dut"):
        result = json.loads((tmp_path / f"test_a-{target}-result.json").read_text())
        added = [a for a in result["attachments"] if a["type"] == "image/svg+xml"]
        assert [a["name"] for a in added] == ["journeys side by side (mock | dut)",
                                              "journeys side by side (mock | dut), path 2"]
        root = ET.fromstring((tmp_path / added[0]["source"]).read_text())
        assert {g.get("data-target") for g in root.iter(f"{SVG}g") if g.get("class") == "map"} == {"mock", "dut"}
    assert len(list(tmp_path.glob("*-attachment.svg"))) == 4  # the first call's are gone
    alone = json.loads((tmp_path / "test_b-mock-result.json").read_text())
    assert [a["name"] for a in alone["attachments"]] == ["journeys (mock).json"]


def test_a_run_with_allure_attaches_the_map_text_and_json_and_a_line_rate_runs_paths_with_counts(pytester, allure_run):
    pytester.makepyfile("""
        from harness.traffic import Mode, Profile, Rate, Stream

        FRAME = bytes.fromhex("020000000001020000000101080045000020000100004011" + "00" * 20)

        def test_send(target):
            target.send("p0", FRAME)

        def test_burst(target):
            target.traffic(Profile([Stream("p0", FRAME, Rate(1000), mode=Mode.SINGLE_BURST, count=1500)]))
    """)
    allure_run("--target=mock").assert_outcomes(passed=2)
    results = {r["name"]: r for r in (json.loads(p.read_text()) for p in (pytester.path / "results").glob("*-result.json"))}
    attachments = {a["name"]: (pytester.path / "results" / a["source"]) for a in results["test_send"]["attachments"]}
    assert {"journeys (mock)", "journeys (mock).txt", "journeys (mock).json"} <= attachments.keys()
    assert _texts(attachments["journeys (mock)"].read_text())[0] == "mock: 1 packet on 1 distinct path"
    data = json.loads(attachments["journeys (mock).json"].read_text())
    assert data["target"] == "mock" and data["journeys"][0]["hops"][0]["stage"] == "NIC_RX"
    # a burst's 1,500 packets, where the journeys keep the line-rate model's probes
    [page] = [a for a in results["test_burst"]["attachments"] if a["name"].startswith("traffic paths")]
    assert page["name"] == "traffic paths (mock)"
    svg = (pytester.path / "results" / page["source"]).read_text()
    assert _texts(svg)[0] == "mock: 1,500 packets on 1 distinct path"
