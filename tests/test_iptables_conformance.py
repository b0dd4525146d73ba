"""The project's iptables conformance corpus (tests/iptables_corpus/*.rules,
hand-written rule lines) against iptables-nft 1.8.9: the answers the real
iptables and ip6tables gave in a network namespace are kept in
tests/golden/iptables/corpus.json (tests/golden/record_iptables); with root
and the tools, the live ones are asked again and must still be those. The
figures are `python -m benchmarks iptables_conformance`'s.
"""
from __future__ import annotations

import pytest

from benchmarks.iptables_conformance import golden, load_corpus, replay_real
from tests.test_nft import _live_tools_missing

CASES = load_corpus()


def test_every_corpus_case_has_a_recorded_answer():
    recorded = golden()
    assert sorted(recorded) == sorted(c.key for c in CASES)


def test_recorded_answers_are_what_the_real_iptables_answers():
    missing = _live_tools_missing(("iptables", "ip6tables", "iptables-save", "nft"))
    if missing:
        pytest.skip(missing)
    live, recorded = replay_real(CASES), golden()
    changed = [key for key in recorded if live[key] != recorded[key]]
    assert not changed, f"{len(changed)} cases answer otherwise now (re-record?): {changed[:5]}"
