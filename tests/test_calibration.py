"""`python -m harness.mockkernel.linerate.calibrate measure` (harness/calibration.py):
the XDP paper's tests measured on a target into a runs file that the fit reads.

On the mock the measurement must give back the costs the mock runs on. On the netns
lab (root, iproute2, a C compiler, and bpftrace: an XDP program's drops are counted
by the kfree_skb tracer) it must measure a positive rate for the drop anchors; what
the rates are depends on this machine's load, so no figure is asserted there.
"""
from __future__ import annotations

import json
import os
import shutil

import pytest

from harness.mockkernel.linerate import calibrate
from harness.mockkernel.linerate.calibrate import fit, load_runs
from harness.mockkernel.linerate.cost import COST_NAMES, CostModel
from harness.mockkernel.target import MockTarget

# runs whose differences pin the XDP costs (cost.py's derivations), and two stack paths
MOCK_ANCHORS = ["xdp_drop", "xdp_tx", "xdp_redirect", "iptables_raw_drop", "xdp_pass_raw_drop", "filter_drop"]
LAB_ANCHORS = ["xdp_drop", "iptables_raw_drop", "filter_drop"]

needs_lab = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "ethtool", "sysctl", "tc", "cc", "iptables")),
    reason="the netns lab at rate needs root, iproute2, ethtool, procps, iptables and a C compiler (gcc)")
needs_bpftrace = pytest.mark.skipif(shutil.which("bpftrace") is None,
                                    reason="an XDP program's drops on the lab are counted by the kfree_skb tracer: "
                                           "apt-get install bpftrace")


def measure(tmp_path, target: str, anchors: list[str], duration: str) -> dict:
    runs = tmp_path / "runs.json"
    assert calibrate.main(["measure", "--target", target, "-o", str(runs), "--anchors", *anchors,
                           "--duration", duration]) == 0
    return json.loads(runs.read_text())


def test_measuring_the_mock_and_fitting_gives_back_the_costs_it_runs_on(bpf_objects, tmp_path, capsys):
    written = measure(tmp_path, "mock", MOCK_ANCHORS, "0.2")
    assert [run["name"] for run in written["runs"]] == MOCK_ANCHORS
    # from a flat prior with no pull towards it: the runs alone decide
    result = fit(load_runs(tmp_path / "runs.json"), CostModel({name: 50.0 for name in COST_NAMES}), prior_weight=0)
    fitted = {name: result.model.costs[name] for name in ("driver_rx", "xdp_prog", "xdp_tx", "xdp_redirect")}
    assert fitted == {"driver_rx": pytest.approx(28.367, rel=0.02), "xdp_prog": pytest.approx(13.3, rel=0.02),
                      "xdp_tx": pytest.approx(18.574, rel=0.02), "xdp_redirect": pytest.approx(75.292, rel=0.02)}
    assert "lower bound" not in capsys.readouterr().err  # 100 Gb/s offered more than the core took every time


def test_a_profile_fitted_to_measured_runs_is_what_cost_profile_loads(bpf_objects, tmp_path):
    measure(tmp_path, "mock", ["xdp_drop", "iptables_raw_drop"], "0.1")
    profile = tmp_path / "profile.json"
    assert calibrate.main([str(tmp_path / "runs.json"), "-o", str(profile)]) == 0
    assert MockTarget(cost=CostModel.load(profile)).cost.costs["driver_rx"] == pytest.approx(28.367, rel=0.02)


def test_a_drop_anchor_s_rate_counts_what_its_verdict_dropped_not_what_the_ring_missed(bpf_objects, tmp_path):
    (run,) = measure(tmp_path, "mock", ["filter_drop"], "0.1")["runs"]
    assert run["pps_per_core"] == pytest.approx(3.32e6, rel=0.01)  # the paper's figure the mock is calibrated to
    assert "dropped at NF_INPUT" in run["config"]
    assert run["counts"]["nf_rule"] == 1 and run["counts"]["kfree_skb"] == 1


@needs_lab
@needs_bpftrace
def test_measuring_the_lab_gives_a_positive_rate_for_the_xdp_and_netfilter_drops(bpf_objects, tmp_path, capsys):
    written = measure(tmp_path, "dut", LAB_ANCHORS, "0.3")
    rates = {run["name"]: run["pps_per_core"] for run in written["runs"]}
    assert list(rates) == LAB_ANCHORS
    assert all(pps > 0 for pps in rates.values()), rates
    assert "not a DUT fed by a NIC" in written["note"]
    assert "not a DUT fed by a NIC" in capsys.readouterr().err
