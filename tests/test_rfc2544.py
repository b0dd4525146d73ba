"""harness/rfc2544.py against a DUT whose answers are known in closed form.

`CapacityDut` forwards at most CAPACITY packets per second and buffers BUFFER
packets: a continuous trial at L pps for d seconds delivers min(L, CAPACITY) * d;
a burst of N packets at RATE pps lasts N / RATE seconds, during which the DUT
forwards N * CAPACITY / RATE of them and holds BUFFER, so it loses
max(0, N - BUFFER - N * CAPACITY // RATE). Every expected value below is written
out from those numbers, never from the code under test.
"""
from __future__ import annotations

import json

import pytest
from MLRsearch import MeasurementResult
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from harness import progress, rfc2544
from harness.rfc2544 import Phase, Settings, TrafficMeasurer
from harness.target import PORTS
from harness.traffic import (LatencyStats, Mode, Profile, Result, Stream, StreamStats, TrafficCaps)

CAPACITY = 250_000  # pps the DUT forwards
BUFFER = 1000  # packets the DUT holds
RATE = 1_000_000  # the generator's packet rate: every frame size's maximum rate
LOSSLESS_LATENCY = LatencyStats(min_us=4.0, avg_us=5.0, max_us=6.0, jitter_us=0.5, histogram={4: 10})
FRAME = Ether(src="02:00:00:00:01:01", dst="02:00:00:00:00:01") / IP(src="10.0.0.2", dst="10.0.1.2") / \
    UDP(sport=1024, dport=1024)


class CapacityDut:
    """Target.traffic() of a DUT of CAPACITY pps and BUFFER packets behind a
    generator of RATE pps (`sends`: the share of the intended packets it sends;
    `lags`: how much longer than asked it takes to send them)."""

    name = "capacity"
    ports = PORTS

    def __init__(self, sends: float = 1.0, capacity: int = CAPACITY, lags: float = 1.0) -> None:
        self.sends = sends
        self.lags = lags
        self.capacity = capacity
        self.profiles: list[tuple[Profile, float | None]] = []
        self.commands: list[str] = []
        self.closed = False

    def sh(self, command: str) -> str:
        self.commands.append(command)
        return ""

    def close(self) -> None:
        self.closed = True

    def traffic_caps(self) -> TrafficCaps:
        return TrafficCaps("closed-form model", max_pps=RATE, max_bps_L1=100e9, observes=frozenset({"latency"}))

    def traffic(self, profile: Profile, duration: float | None = None) -> Result:
        self.profiles.append((profile, duration))
        (stream,) = profile.streams
        pps = stream.rate.value
        if stream.mode is Mode.SINGLE_BURST:
            sent = stream.count
            received = min(sent, BUFFER + sent * self.capacity // RATE)
        else:
            sent = round(pps * duration * self.sends)
            received = min(sent, round(self.capacity * duration))
        stats = StreamStats(stream.id, opackets=sent, ipackets=received,
                            latency=LOSSLESS_LATENCY if stream.latency else None)
        return Result(self.name, (duration or sent / pps) * self.lags, streams={stream.id: stats})


def campaign(dut: CapacityDut, **settings) -> rfc2544.Report:
    return rfc2544.run(dut, PORTS[0], FRAME, sizes=(64,), settings=Settings(**settings), progress=False)


def test_ndr_is_within_mlrsearch_relative_width_below_the_capacity():
    size = campaign(CapacityDut(), phases=(Phase.SEARCH,)).sizes[0]
    # relative width 0.005: lower >= upper * 0.995, and the capacity lies between them
    assert 248_750 <= size.ndr.lower_pps <= 250_000 < size.ndr.upper_pps <= 251_257
    assert size.ndr.conditional_pps == size.ndr.lower_pps  # no loss at an NDR lower bound


def test_pdr_at_half_a_percent_lies_between_capacity_and_capacity_over_0_995():
    size = campaign(CapacityDut(), phases=(Phase.SEARCH,)).sizes[0]
    # loss ratio 1 - 250000 / L <= 0.005 for L <= 251256.28
    assert 250_000 <= size.pdr.lower_pps <= 251_257 < size.pdr.upper_pps <= 252_520
    # conditional throughput: what the DUT forwarded at the lower bound, the offered count rounded to a packet
    assert size.pdr.conditional_pps == pytest.approx(250_000, abs=1)


@pytest.mark.parametrize("capacity, lower, upper", [(2_000_000, 1_000_000, None), (500, None, 1000.0)])
def test_a_dut_faster_than_the_maximum_or_slower_than_the_minimum_load_leaves_one_bound(capacity, lower, upper):
    size = campaign(CapacityDut(capacity=capacity), phases=(Phase.SEARCH, Phase.LATENCY)).sizes[0]
    assert (size.ndr.lower_pps, size.ndr.upper_pps) == (lower, upper)
    assert "-" in rfc2544.Report("capacity", "", Settings(), [size]).throughput_table().splitlines()[2].split()


def test_every_search_trial_is_recorded_with_what_the_target_answered():
    dut = CapacityDut()
    size = campaign(dut, phases=(Phase.SEARCH,)).sizes[0]
    assert len(size.trials) == len(dut.profiles) >= 3
    first = size.trials[0]
    assert (first.phase, first.load_pps, first.duration) == (Phase.SEARCH, 1_000_000, 1.0)
    assert (first.intended, first.offered, first.received) == (1_000_000, 1_000_000, 250_000)
    assert first.loss_ratio == 0.75
    assert [t.result.streams[0].opackets for t in size.trials] == [t.offered for t in size.trials]


def test_unsent_packets_count_as_loss():
    """A generator that sends 80% of what it was asked looks like 20% loss at
    every load: the NDR search finds no lower bound above the minimum load."""
    measurer = TrafficMeasurer(CapacityDut(sends=0.8), Stream("p0", bytes(FRAME)), 64)
    measured = measurer.measure(intended_duration=1.0, intended_load=100_000.0)
    assert isinstance(measured, MeasurementResult)
    assert (measured.intended_count, measured.offered_count, measured.loss_count) == (100_000, 80_000, 0)
    assert measured.loss_ratio == pytest.approx(0.2)


@pytest.mark.parametrize("lags, intended, loss_ratio", [(1.25, 125_000, 0.2), (1.01, 100_000, 0.0)])
def test_a_generator_falling_behind_the_load_loses_what_it_did_not_send_in_time(lags, intended, loss_ratio):
    """100,000 packets sent over 1.25 s instead of 1 s: at 100 kpps, 125,000 were due;
    1% late is within the 2% a generator's scheduling may take."""
    measured = TrafficMeasurer(CapacityDut(lags=lags), Stream("p0", bytes(FRAME)), 64).measure(1.0, 100_000.0)
    assert (measured.intended_count, measured.offered_count, measured.forwarding_count) == (intended, 100_000, 100_000)
    assert measured.loss_ratio == pytest.approx(loss_ratio)


def test_trials_hand_the_target_the_stream_at_the_intended_rate_and_duration():
    dut = CapacityDut()
    TrafficMeasurer(dut, Stream("p0", bytes(FRAME), id=3), 64).run(123_456.0, duration=0.5)
    (profile, duration), = dut.profiles
    (stream,) = profile.streams
    assert (stream.port, stream.id, stream.mode, stream.rate.value, stream.rate.unit, duration) == \
        ("p0", 3, Mode.CONTINUOUS, 123_456.0, "pps", 0.5)


def test_latency_is_measured_once_at_each_found_rate():
    size = campaign(CapacityDut(), phases=(Phase.SEARCH, Phase.LATENCY)).sizes[0]
    latency_trials = [t for t in size.trials if t.phase == Phase.LATENCY]
    assert [t.load_pps for t in latency_trials] == [size.ndr.lower_pps, size.pdr.lower_pps]
    assert size.ndr.latency == size.pdr.latency == LOSSLESS_LATENCY


def test_latency_without_a_throughput_search_is_an_error_naming_it():
    with pytest.raises(ValueError, match="run the throughput search first"):
        campaign(CapacityDut(), phases=(Phase.LATENCY,))


def test_loss_curve_steps_down_by_10_percent_until_two_lossless_trials():
    size = campaign(CapacityDut(), phases=(Phase.LOSS_CURVE,)).sizes[0]
    # loss = 1 - 250000 / load, at 100%, 90%, ... of 1 Mpps; lossless from 20% (200 kpps) on
    assert [(percent, load) for percent, load, _ in size.loss_curve] == \
        [(100, 1e6), (90, 9e5), (80, 8e5), (70, 7e5), (60, 6e5), (50, 5e5), (40, 4e5), (30, 3e5), (20, 2e5),
         (10, 1e5)]
    assert [loss for _, _, loss in size.loss_curve] == pytest.approx(
        [0.75, 0.72222, 0.6875, 0.64286, 0.58333, 0.5, 0.375, 0.16667, 0.0, 0.0], abs=1e-5)


def test_back_to_back_is_the_longest_lossless_burst():
    size = campaign(CapacityDut(), phases=(Phase.BACK_TO_BACK,), b2b_repeats=2).sizes[0]
    # N - N // 4 <= 1000 holds up to N = 1333
    assert size.back_to_back == [1333, 1333]
    assert not size.back_to_back_capped
    bursts = [t for t in size.trials if t.phase == Phase.BACK_TO_BACK]
    assert bursts[0].intended == 2_000_000  # 2 s at 1 Mpps first
    assert all(t.load_pps == 1_000_000 for t in bursts)


def test_back_to_back_that_never_loses_reports_the_longest_burst_tried_as_a_floor():
    size = campaign(CapacityDut(), phases=(Phase.BACK_TO_BACK,), b2b_repeats=1, b2b_duration=0.001).sizes[0]
    assert (size.back_to_back, size.back_to_back_capped) == ([1000], True)
    assert ">=1000.0" in size_table(size)


def size_table(size) -> str:
    report = rfc2544.Report("capacity", "closed form", Settings(), [size])
    return report.table()


def test_frames_are_sized_with_fcs_and_refuse_sizes_without_room_for_the_tag():
    assert [len(rfc2544.sized_frame(FRAME, size)) for size in rfc2544.FRAME_SIZES] == \
        [60, 124, 252, 508, 1020, 1276, 1514]
    frame = Ether(rfc2544.sized_frame(FRAME, 64))
    assert (frame[IP].len, frame[UDP].len) == (46, 26)
    with pytest.raises(ValueError, match="the latency tag needs 16"):
        rfc2544.sized_frame(FRAME, 60)


def test_maximum_rate_is_the_l1_line_rate_capped_by_the_generator():
    class TenGig(CapacityDut):
        def traffic_caps(self) -> TrafficCaps:
            return TrafficCaps("10G", max_pps=10e6, max_bps_L1=10e9, observes=frozenset())
    # 10e9 / (8 * (1514 + 4 + 20)) for 1518 bytes; 64 bytes would be 14.88 Mpps: the generator's 10 Mpps
    assert rfc2544.max_load(TenGig(), 1518) == pytest.approx(812_743.8)
    assert rfc2544.max_load(TenGig(), 64) == 10e6


def test_report_prints_every_table_and_every_trial():
    report = campaign(CapacityDut(), b2b_repeats=1)
    text = report.table()
    for title in ("throughput (26.1)", "latency (26.2)", "frame loss rate (26.3)", "back-to-back (26.4)", "Trials"):
        assert title in text
    trial_rows = text.split("Trials, in the order run")[1].splitlines()[2:]
    assert len(trial_rows) == len(report.trials())
    assert trial_rows[0].split() == ["1", "64", "throughput", "search", "1000000.0", "1.0000", "1.0000", "1000000",
                                     "1000000", "250000", "75.0000"]


def test_plots_are_pngs_of_each_size_and_each_latency_histogram(monkeypatch):
    import allure

    from harness.report import plots
    report = campaign(CapacityDut(), b2b_repeats=1)
    pngs = plots.report_pngs(report)
    assert sorted(pngs) == ["latency-64-ndr.png", "latency-64-pdr.png", "throughput-64.png"]
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in pngs.values())
    attached = []
    monkeypatch.setattr(allure, "attach", lambda body, name, attachment_type: attached.append((name, attachment_type)))
    plots.attach(report)
    assert attached == [("RFC 2544 (capacity).txt", allure.attachment_type.TEXT),
                        ("RFC 2544 (capacity).json", allure.attachment_type.JSON),
                        ("throughput-64 (capacity)", allure.attachment_type.PNG),
                        ("latency-64-ndr (capacity)", allure.attachment_type.PNG),
                        ("latency-64-pdr (capacity)", allure.attachment_type.PNG)]


def test_progress_bar_is_drawn_on_stderr_when_asked(monkeypatch, capsys):
    monkeypatch.setattr(progress, "SHOW_AFTER", 0.0)
    rfc2544.run(CapacityDut(), PORTS[0], FRAME, sizes=(64,), settings=Settings(phases=(Phase.SEARCH,)),
                progress=True)
    assert "RFC 2544" in capsys.readouterr().err


@pytest.mark.parametrize("setting, wanted", [("0", False), ("1", True)])
def test_pj_progress_forces_the_bar_off_or_on(monkeypatch, capsys, setting, wanted):
    monkeypatch.setattr(progress, "SHOW_AFTER", 0.0)
    monkeypatch.setenv("PJ_PROGRESS", setting)
    rfc2544.run(CapacityDut(), PORTS[0], FRAME, sizes=(64,), settings=Settings(phases=(Phase.SEARCH,)))
    assert ("RFC 2544" in capsys.readouterr().err) is wanted


def test_command_line_sets_up_forwarding_through_conntrack_and_writes_tables_and_plots(monkeypatch, tmp_path,
                                                                                      capsys):
    dut = CapacityDut()
    monkeypatch.setattr(rfc2544, "_make_target", lambda name: dut)
    assert rfc2544.main(["--sizes", "64", "--conntrack", "--b2b-repeats", "1", "--out", str(tmp_path)]) == 0
    assert dut.commands == [
        "sysctl -w net.ipv4.ip_forward=1", "ip addr add 10.0.0.1/24 dev p0", "ip addr add 10.0.1.1/24 dev p1",
        "ip neigh replace 10.0.1.2 lladdr 02:00:00:00:01:02 dev p1 nud permanent", "nft add table ip bench",
        "nft add chain ip bench forward { type filter hook forward priority 0 ; policy drop ; }",
        "nft add rule ip bench forward ct state new,established accept"]
    assert dut.closed
    printed = capsys.readouterr().out
    assert "on capacity, forwarding p0 -> p1 through conntrack" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "latency-64-ndr.png", "latency-64-pdr.png", "report.json", "report.txt", "throughput-64.png"]
    assert (tmp_path / "report.txt").read_text() in printed
    written = json.loads((tmp_path / "report.json").read_text())
    (size,) = written["sizes"]
    assert (written["scenario"], size["frame_size"], size["back_to_back"]) == \
        ("forwarding p0 -> p1 through conntrack", 64, [1333])
    assert [Result.from_dict(t["result"]).streams[0].ipackets for t in size["trials"]][:1] == [250_000]


@pytest.mark.parametrize("load, sent, intended", [(1_751_585.9, 175_158, 175_158), (1_751_585.9, 175_159, 175_159),
                                                  (1_751_585.9, 175_157, 175_159)])
def test_a_generator_rounding_the_trial_to_whole_packets_loses_nothing(load, sent, intended):
    """175,158.59 packets are due in 0.1 s: 175,158 or 175,159 sent is the whole trial."""
    class Rounding(CapacityDut):
        def traffic(self, profile: Profile, duration: float | None = None) -> Result:
            (stream,) = profile.streams
            return Result(self.name, duration, streams={stream.id: StreamStats(stream.id, sent, sent)})
    measured = TrafficMeasurer(Rounding(), Stream("p0", bytes(FRAME)), 64).measure(0.1, load)
    assert (measured.intended_count, measured.offered_count) == (intended, sent)
