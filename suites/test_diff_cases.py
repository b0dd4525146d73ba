"""Scenarios the differential runner (python -m harness.diff) generated, on which
the mock once differed from the real kernel: each case (diff_cases/*.json) holds
the scenario and what the kernel did with it; every target must do the same
(frames out, drop reasons, and where the case recorded them, the nft rule
counters and the conntrack entries).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.bpf_build import ToolchainMissing, build
from harness.diff.cases import Outcome, replay
from harness.diff.explained import frame_differences
from harness.diff.scenario import Scenario
from harness.target import CommandError

CASES = sorted((Path(__file__).parent / "diff_cases").glob("*.json"))


@pytest.mark.requires("nftables")
@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
def test_the_target_does_with_a_generated_scenario_what_the_kernel_did(target, path):
    case = json.loads(path.read_text())
    drop_reasons = "drop_reasons" in target.capabilities
    scenario = Scenario.from_json(case["scenario"])
    if "refused" in case["kernel"]:  # the kernel refused the setup: every target must
        with pytest.raises(CommandError):
            replay(target, scenario, drop_reasons)
        return
    kernel = Outcome.from_json(case["kernel"])
    for program in scenario.programs:  # built from programs/ when the case runs
        needs = "xdp" if program.hook.startswith("xdp") else "tc"
        if needs not in target.capabilities:
            pytest.skip(f"the case attaches {program.name} ({program.hook}): this target has no {needs}")
        try:
            build(program.name)
        except ToolchainMissing as exc:
            pytest.skip(str(exc))
    try:
        got = replay(target, scenario, drop_reasons)
    except CommandError as exc:
        if "refused on a lab DUT" not in str(exc):
            raise
        pytest.skip(f"a setup command a lab DUT refuses: {exc}")  # lo, input/output policy drop (dutstate.py)
    assert frame_differences(kernel.left, got.left) == []
    if drop_reasons:
        assert got.drops == kernel.drops
    if kernel.state is not None:
        assert got.state.counters == kernel.state.counters
        if "conntrack" in target.capabilities:
            assert got.conntrack_texts() == kernel.conntrack_texts()
