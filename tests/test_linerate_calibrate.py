"""`python -m harness.mockkernel.linerate.calibrate`: fitting the per-stage
costs to measured runs. The runs here are the XDP paper's tests, their counts
read from the mock's journeys of the paper's configurations, with the paper's
figures as the measurements."""
from __future__ import annotations

import json

import pytest

from harness.mockkernel.linerate import calibrate
from harness.mockkernel.linerate.anchors import ANCHORS, ROUTED, base_dut, frame
from harness.mockkernel.linerate.calibrate import Run, RunsError, fit, load_runs, run_from_journeys
from harness.mockkernel.linerate.cost import COST_NAMES, CostModel
from harness.mockkernel.target import MockTarget

PAPER_PPS = {"xdp_drop": 24.0e6, "xdp_tx": 16.6e6, "xdp_redirect": 8.55e6, "iptables_raw_drop": 4.8e6,
             "xdp_pass_raw_drop": 4.5e6, "filter_drop": 3.32e6, "conntrack": 1.8e6, "routing_1route": 1.74e6}


@pytest.fixture(scope="module")
def paper_runs(bpf_objects) -> list[Run]:
    runs = []
    for anchor in ANCHORS:
        if anchor.name in PAPER_PPS:
            target = MockTarget()
            base_dut(target)
            anchor.configure(target, bpf_objects)
            target.send("p0", [frame(anchor.dst), frame(anchor.dst)])
            runs.append(run_from_journeys(anchor.name, [(target.journeys()[-1], 1)], PAPER_PPS[anchor.name],
                                          target.kernel))
    return runs


def flat_prior() -> CostModel:
    return CostModel({name: 50.0 for name in COST_NAMES}, "flat")


@pytest.mark.parametrize("prior_weight", [calibrate.DEFAULT_PRIOR_WEIGHT, 0.0])
def test_a_fit_from_a_flat_prior_reproduces_every_run_within_a_percent(paper_runs, prior_weight):
    result = fit(paper_runs, flat_prior(), prior_weight)
    assert [(run.name, pytest.approx(run.pps_per_core, rel=0.01)) for run in paper_runs] == \
        [(run.name, pps) for run, pps, _ in result.residuals()]


def test_costs_no_run_exercises_keep_the_prior_s_value(paper_runs):
    result = fit(paper_runs, flat_prior())
    assert result.kept == ["conntrack_confirm", "nat_rewrite", "tc_classify", "qdisc", "l4_rcv", "socket_queue",
                           "ip_frag"]
    assert [result.model.costs[name] for name in result.kept] == [50.0] * 7


def test_a_fit_never_gives_a_negative_cost():
    # two runs that only a negative cost would fit exactly: xdp_prog would be -10 ns
    runs = [Run("drop", {"driver_rx": 1}, 1e9 / 40), Run("drop with a program", {"driver_rx": 1, "xdp_prog": 1},
                                                         1e9 / 30)]
    result = fit(runs, flat_prior(), prior_weight=0)
    assert result.model.costs["xdp_prog"] == 0
    assert 30 <= result.model.costs["driver_rx"] <= 40


def test_a_run_averages_the_counts_of_its_paths():
    target = MockTarget()
    base_dut(target)
    target.sh("iptables -A FORWARD -p udp --dport 9 -j DROP")
    port_10 = frame(ROUTED).replace((9).to_bytes(2, "big") + (26).to_bytes(2, "big"),
                                    (10).to_bytes(2, "big") + (26).to_bytes(2, "big"))
    target.send("p0", [frame(ROUTED), port_10])
    dropped, forwarded = target.journeys()
    assert forwarded.hops[-1].stage == "NIC_TX", forwarded.render()
    run = run_from_journeys("mix", [(dropped, 3), (forwarded, 1)], 2e6, target.kernel)
    assert (run.counts["kfree_skb"], run.counts["dev_xmit"], run.counts["driver_rx"]) == (0.75, 0.25, 1.0)


def test_the_command_prints_the_residuals_and_writes_a_profile_the_mock_loads(paper_runs, tmp_path, capsys):
    runs_file, profile = tmp_path / "runs.json", tmp_path / "profile.json"
    runs_file.write_text(json.dumps({"runs": [run.to_dict() for run in paper_runs]}))
    assert calibrate.main([str(runs_file), "-o", str(profile), "--name", "paper"]) == 0
    out = capsys.readouterr().out
    # the default profile fits the paper already: 1e9 / (28.367 + 13.300) ns for XDP_DROP
    assert "run                        measured pps      model pps  residual\n" \
           "xdp_drop                     24,000,000     23,999,808    -0.00%\n" in out
    assert "rms relative residual 0.00% over 8 runs\n" in out
    assert f"wrote {profile}\n" in out
    model = CostModel.load(profile)
    assert model.name == "paper"
    assert [run.name for run in load_runs(runs_file)] == list(PAPER_PPS)


def test_a_runs_file_naming_an_unknown_cost_is_refused_naming_it(tmp_path, capsys):
    runs_file = tmp_path / "runs.json"
    runs_file.write_text(json.dumps({"runs": [{"name": "ring", "counts": {"driver_rx": 1, "ring": 1},
                                               "pps_per_core": 1e6}]}))
    assert calibrate.main([str(runs_file), "-o", str(tmp_path / "profile.json")]) == 1
    assert capsys.readouterr().err.startswith("calibrate: ring: unknown costs ring (have: driver_rx, ")
    with pytest.raises(RunsError, match="no \"runs\" list"):
        runs_file.write_text("{}")
        load_runs(runs_file)
