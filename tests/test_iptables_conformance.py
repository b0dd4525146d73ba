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

import pytest

from benchmarks.iptables_conformance import NOT_MODELLED, golden, load_corpus, replay_mock, replay_real, verdict
from tests.test_nft import _live_tools_missing

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
