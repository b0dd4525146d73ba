"""The project's iptables conformance corpus (tests/iptables_corpus/*.rules,
hand-written rule lines) against iptables-nft 1.8.9: the answers the real
iptables and ip6tables gave in a network namespace are kept in
tests/golden/iptables/corpus.json (tests/golden/record_iptables); with root
and the tools, the live ones are asked again and must still be those. The
mock must answer each case as the real tool did (accept or refuse with the
same message and status, save and list alike), or refuse it naming what it
does not model. The figures are `python -m benchmarks iptables_conformance`'s.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks.iptables_conformance import NOT_MODELLED, golden, load_corpus, replay_mock, replay_real, verdict
from tests.test_nft import RealTools, _live_tools_missing

GOLDEN_DIR = Path(__file__).resolve().parent / "golden" / "iptables"
CASES = load_corpus()
RECORDED = golden()


def test_every_corpus_case_has_a_recorded_answer():
    assert sorted(RECORDED) == sorted(c.key for c in CASES)


def test_recorded_answers_are_what_the_real_iptables_answers():
    missing = _live_tools_missing(("iptables", "ip6tables", "iptables-save", "nft"))
    if missing:
        pytest.skip(missing)
    live = replay_real(CASES)
    changed = [key for key in RECORDED if live[key] != RECORDED[key]]
    assert not changed, f"{len(changed)} cases answer otherwise now (re-record?): {changed[:5]}"


@pytest.fixture(scope="module")
def mock_answers() -> dict[str, dict]:
    return replay_mock(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.key for c in CASES])
def test_mock_answers_as_the_real_iptables(case, mock_answers):
    """An accepted rule's warnings on stderr aside (the mock's commands have only stdout)."""
    mock, real = mock_answers[case.key], RECORDED[case.key]
    if mock["status"] != 0 and NOT_MODELLED in mock["error"]:
        return  # a refusal naming what the mock leaves out: counted by the benchmark as not_modelled
    assert verdict(mock, real) in ("listed_identical", "refused_same_message"), (mock, real)


# Rulesets as real hosts load them, each in one iptables-restore: a container host's, a
# Kubernetes node's service NAT, a small router's (written for this project).
RESTORED = {
    "container_host": """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-USER -j RETURN
COMMIT
""",
    "service_nat": """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:SERVICES - [0:0]
:SVC-DNS - [0:0]
:SEP-1 - [0:0]
:SEP-2 - [0:0]
:MARK-MASQ - [0:0]
:SVC-POSTROUTING - [0:0]
-A PREROUTING -m comment --comment "service portals" -j SERVICES
-A OUTPUT -m comment --comment "service portals" -j SERVICES
-A POSTROUTING -m comment --comment "service postrouting rules" -j SVC-POSTROUTING
-A MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A SVC-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A SVC-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A SVC-POSTROUTING -m comment --comment "traffic requiring SNAT" -j MASQUERADE --random-fully
-A SERVICES -d 10.96.0.10/32 -p udp -m comment --comment "dns cluster IP" -m udp --dport 53 -j SVC-DNS
-A SVC-DNS -m comment --comment "dns -> 10.244.0.2:53" -m statistic --mode random --probability 0.50000000000 -j SEP-1
-A SVC-DNS -j SEP-2
-A SEP-1 -s 10.244.0.2/32 -j MARK-MASQ
-A SEP-1 -p udp -m udp -j DNAT --to-destination 10.244.0.2:53
-A SEP-2 -s 10.244.0.3/32 -j MARK-MASQ
-A SEP-2 -p udp -m udp -j DNAT --to-destination 10.244.0.3:53
COMMIT
""",
    "router": """*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -j CONNMARK --restore-mark
-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:LOGDROP - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -m conntrack --ctstate INVALID -j DROP
-A INPUT -p icmp -m icmp --icmp-type 8 -m limit --limit 5/sec -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m recent --set --name ssh --rsource
-A INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m recent --update --seconds 60 --hitcount 4 --name ssh --rsource -j LOGDROP
-A INPUT -p tcp -m multiport --dports 22,80,443 -j ACCEPT
-A INPUT -p udp -m udp --dport 51820 -m hashlimit --hashlimit-upto 50/sec --hashlimit-burst 100 --hashlimit-mode srcip --hashlimit-name wg -j ACCEPT
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i lan0 -o wan0 -j ACCEPT
-A LOGDROP -m limit --limit 1/min -j LOG --log-prefix "ssh brute: "
-A LOGDROP -j DROP
COMMIT
""",
}


@pytest.fixture
def real_iptables(request) -> RealTools:
    return RealTools(request, GOLDEN_DIR, "iptables 1.8.9 (nf_tables), nft 1.0.6")


@pytest.mark.parametrize("ruleset", sorted(RESTORED))
def test_a_restored_ruleset_saves_and_lists_as_real_iptables(real_iptables, ruleset):
    """One iptables-restore transaction, then what iptables-save, nft and
    iptables -L -n -v show for it."""
    steps = [(["iptables-restore"], RESTORED[ruleset]), (["iptables-save"], None), (["nft", "list", "ruleset"], None),
             (["iptables", "-L", "-n", "-v"], None), (["iptables", "-t", "nat", "-L", "-n"], None)]
    real_iptables.assert_same_as_real(steps, lambda argv, out: re.sub(r"^#.*\n", "", out, flags=re.M),
                                      ("iptables", "iptables-restore", "iptables-save", "nft"))
