"""harness/traffic.py: the rates a profile asks for, the frames a stream sends
(sizes, field variation, checksums as scapy computes them), the payload tag,
latency and sequence statistics as TRex counts them, and results that
round-trip through JSON. Expected values are written out literally."""
from __future__ import annotations

import json

import pytest
from scapy.layers.inet import IP, IPOption_NOP, TCP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from harness.traffic import (IMIX, TAG_LEN, LatencyRecorder, LatencyStats, Loss, Mode, PortStats, Profile, Rate,
                             RateUnit, Result, SequenceChecker, Stream, StreamStats, TrafficCaps, Vary, VaryMode,
                             histogram_bucket, l1_bits, l2_bits, mean_frame_len, read_tag, stream_frames, stream_pps,
                             tag_frame)

TEN_G = 10_000_000_000
MACS = {"src": "02:00:00:00:01:01", "dst": "02:00:00:00:00:01"}


def udp_packet(sport=1000, dport=53, payload=b"", src="10.0.0.2", dst="10.0.1.2", chksum=None):
    udp = UDP(sport=sport, dport=dport) if chksum is None else UDP(sport=sport, dport=dport, chksum=chksum)
    return Ether(**MACS) / IP(src=src, dst=dst, id=7) / udp / Raw(payload)


def rebuilt(frame: bytes) -> bytes:
    """The frame as scapy builds it with its lengths and checksums recomputed."""
    packet = Ether(frame)
    for layer in (IP, UDP, TCP):
        if layer in packet:
            del packet[layer].chksum
            if layer is not TCP:
                del packet[layer].len
    return bytes(packet)


# ------------------------------------------------------------------------ rates

def test_l1_and_l2_bits_count_fcs_preamble_and_gap():
    assert (l2_bits(60), l1_bits(60)) == (512, 672)
    assert (l2_bits(1514), l1_bits(1514)) == (12144, 12304)


@pytest.mark.parametrize("rate, frame_len, pps", [
    (Rate(100, RateUnit.PERCENT), 60, 14_880_952.38),   # 10G line rate at 64 bytes
    (Rate(100, RateUnit.PERCENT), 1514, 812_743.82),    # ... at 1518 bytes
    (Rate(50, RateUnit.PERCENT), 60, 7_440_476.19),
    (Rate(1e9, RateUnit.BPS_L1), 60, 1_488_095.24),
    (Rate(1e9, RateUnit.BPS_L2), 60, 1_953_125.0),      # 64 bytes with FCS: 512 bits
    (Rate(1234, RateUnit.PPS), 60, 1234.0),
])
def test_rate_in_packets_per_second(rate, frame_len, pps):
    assert rate.pps(frame_len, TEN_G) == pytest.approx(pps, abs=0.01)


def test_negative_rate_is_refused():
    with pytest.raises(ValueError, match="rate -1 pps is negative"):
        Rate(-1)


def test_imix_mean_length_and_line_rate():
    stream = Stream.of("p0", udp_packet(), sizes=IMIX)
    # (7 * 60 + 4 * 590 + 1 * 1514) / 12 bytes without FCS
    assert mean_frame_len(stream) == pytest.approx(4294 / 12)
    # 12 frames take 7 * 84 + 4 * 614 + 1538 = 4582 bytes of line
    assert stream_pps(stream, TEN_G) == pytest.approx(3_273_679.62, abs=0.01)


def test_short_frame_counts_as_padded_to_60_bytes():
    arp = Ether(**MACS) / ARP(psrc="10.0.0.2", pdst="10.0.0.1")
    stream = Stream.of("p0", arp)
    assert len(stream.frame) == 42
    assert mean_frame_len(stream) == 60
    assert stream_pps(stream, TEN_G) == pytest.approx(14_880_952.38, abs=0.01)


def test_shortfall_names_the_generator_and_its_limit():
    caps = TrafficCaps("AF_PACKET TX ring in the tester netns", 250_000, 1e9, frozenset({"latency"}))
    assert caps.shortfall(pps=200_000, bps_L1=134_400_000) is None
    assert caps.shortfall(pps=14_880_952) == (
        "the AF_PACKET TX ring in the tester netns generator offers too little per port: "
        "14.88 Mpps asked, 250.00 kpps at most")
    assert caps.shortfall(pps=300_000, bps_L1=10e9) == (
        "the AF_PACKET TX ring in the tester netns generator offers too little per port: "
        "300.00 kpps asked, 250.00 kpps at most; 10.00 Gbps (L1) asked, 1.00 Gbps at most")


# ---------------------------------------------------------------- Stream.of, checks

def test_udp_template_gets_room_for_the_tag_and_the_ethernet_minimum():
    stream = Stream.of("p0", udp_packet())
    # 42 bytes of headers, the UDP payload grown with zeros to 18 bytes: 60
    assert stream.frame == bytes(udp_packet(payload=bytes(18)))
    assert Ether(stream.frame)[UDP].len == 26 and Ether(stream.frame)[IP].len == 46
    assert rebuilt(stream.frame) == stream.frame


def test_udp_payload_past_the_minimum_is_kept():
    packet = udp_packet(payload=b"x" * 100)
    assert Stream.of("p0", packet, latency=True, id=3).frame == bytes(packet)


def test_latency_needs_a_udp_frame():
    syn = Ether(**MACS) / IP(src="10.0.0.2", dst="10.0.1.2") / TCP(sport=1000, dport=80, flags="S")
    with pytest.raises(ValueError, match="stream 2 asks for latency: only an IPv4/UDP frame carries the "
                                         "payload tag, this one is not UDP"):
        Stream.of("p0", syn, latency=True, id=2)
    arp = Ether(**MACS) / ARP()
    with pytest.raises(ValueError, match="this one is not IPv4"):
        Stream.of("p0", arp, latency=True)
    assert Stream.of("p0", syn).frame == bytes(syn)  # without latency a TCP stream is fine


def test_latency_on_a_constructed_stream_without_room_is_refused():
    with pytest.raises(ValueError, match="UDP payload of 4 bytes is shorter than the 16-byte tag"):
        Stream("p0", bytes(udp_packet(payload=b"abcd")), latency=True)


@pytest.mark.parametrize("fields, message", [
    ({"mode": Mode.SINGLE_BURST}, "a single_burst needs a count of packets, got None"),
    ({"sizes": ((60, 1),)}, r"sizes \(\(60, 1\),\) must be \(size >= 64 with FCS, weight >= 1\) pairs"),
    ({"vary": (Vary("tcp.dport", 2),)}, "cannot vary tcp.dport, the frame has no tcp header"),
])
def test_stream_refuses_what_it_cannot_send(fields, message):
    with pytest.raises(ValueError, match=message):
        Stream.of("p0", udp_packet(), **fields)


def test_sizes_cannot_cut_into_headers():
    with_options = Ether(**MACS) / IP(src="10.0.0.2", dst="10.0.1.2", options=b"\x01" * 40) / UDP()
    with pytest.raises(ValueError, match=r"cut into the frame's first 82 bytes \(its headers\)"):
        Stream.of("p0", with_options, sizes=((64, 1),))


@pytest.mark.parametrize("args, message", [
    (("ip.ttl", 2), "cannot vary 'ip.ttl': the fields a stream varies are eth.src, eth.dst"),
    (("ip.tos", 257), "vary ip.tos: 257 values by step 1 repeat after 256 in a 8-bit field"),
    (("udp.sport", 40000, VaryMode.INC, 2), "vary udp.sport: 40000 values by step 2 repeat after 32768"),
    (("ip.id", 0), "count 0 and step 1 must be at least 1"),
])
def test_vary_refuses_values_that_repeat_or_unknown_fields(args, message):
    with pytest.raises(ValueError, match=message):
        Vary(*args)


def test_profile_ids_are_unique_and_continuous_streams_need_a_duration():
    stream = Stream.of("p0", udp_packet())
    with pytest.raises(ValueError, match=r"stream ids \[0, 0\] repeat"):
        Profile((stream, stream))
    profile = Profile((stream, Stream.of("p1", udp_packet(), mode=Mode.SINGLE_BURST, count=10, id=1)))
    with pytest.raises(ValueError, match=r"streams \[0\] are continuous: traffic\(\) needs a duration"):
        profile.check_duration(None)
    profile.check_duration(1.0)
    Profile((Stream.of("p0", udp_packet(), mode=Mode.MULTI_BURST, count=5, bursts=3, ibg=0.1),)).check_duration(None)


# ------------------------------------------------------------------ stream_frames

def test_frames_of_a_plain_stream_are_its_template():
    stream = Stream.of("p0", udp_packet(payload=b"y" * 30))
    assert stream_frames(stream) == [bytes(udp_packet(payload=b"y" * 30))]


def test_short_non_ip_frame_is_padded_with_a_zero_trailer():
    arp = bytes(Ether(**MACS) / ARP(psrc="10.0.0.2", pdst="10.0.0.1"))
    assert stream_frames(Stream.of("p0", arp)) == [arp + bytes(18)]


def test_imix_sizes_interleave_as_trex_sends_them():
    frames = stream_frames(Stream.of("p0", udp_packet(), sizes=IMIX))
    assert [len(frame) for frame in frames] == [60, 590, 1514, 60, 590, 60, 60, 590, 60, 60, 590, 60]
    # the UDP payload grows with zeros; lengths and checksums as scapy makes them
    assert frames[1] == bytes(udp_packet(payload=bytes(548)))
    assert frames[2] == bytes(udp_packet(payload=bytes(1472)))


def test_sizes_trim_a_longer_payload():
    frames = stream_frames(Stream.of("p0", udp_packet(payload=bytes(range(100))), sizes=((64, 1), (128, 1))))
    assert frames == [bytes(udp_packet(payload=bytes(range(18)))), bytes(udp_packet(payload=bytes(range(82))))]


def test_varied_fields_with_checksums_as_scapy_computes_them():
    varies = (Vary("ip.src", 3), Vary("udp.sport", 3, VaryMode.DEC, step=500), Vary("ip.tos", 3, step=4))
    frames = stream_frames(Stream.of("p0", udp_packet(sport=1000, src="10.0.0.254", payload=b"data" * 5),
                                     vary=varies))
    expected = [("10.0.0.254", 1000, 0), ("10.0.0.255", 500, 4), ("10.0.1.0", 0, 8)]
    assert frames == [bytes(Ether(**MACS) / IP(src=src, dst="10.0.1.2", id=7, tos=tos) / UDP(sport=sport, dport=53)
                            / Raw(b"data" * 5)) for src, sport, tos in expected]


def test_port_increments_wrap_within_the_field():
    stream = Stream.of("p0", udp_packet(dport=65534), vary=(Vary("udp.dport", 4),))
    assert [Ether(frame)[UDP].dport for frame in stream_frames(stream)] == [65534, 65535, 0, 1]


def test_address_decrements_wrap_within_the_field():
    stream = Stream.of("p0", udp_packet(dst="0.0.0.1"), vary=(Vary("ip.dst", 3, VaryMode.DEC, step=2),))
    assert [Ether(frame)[IP].dst for frame in stream_frames(stream)] == ["0.0.0.1", "255.255.255.255",
                                                                         "255.255.255.253"]


def test_mac_variation_leaves_the_checksums():
    stream = Stream.of("p0", udp_packet(), vary=(Vary("eth.src", 2),))
    frames = stream_frames(stream)
    assert [Ether(frame).src for frame in frames] == ["02:00:00:00:01:01", "02:00:00:00:01:02"]
    assert frames[1][14:] == frames[0][14:]


def test_random_variation_is_a_seeded_permutation():
    vary = Vary("udp.sport", 16, VaryMode.RANDOM, seed=5)
    ports = [Ether(f)[UDP].sport for f in stream_frames(Stream.of("p0", udp_packet(sport=100), vary=(vary,)))]
    assert sorted(ports) == list(range(100, 116))
    assert ports != sorted(ports)
    again = [Ether(f)[UDP].sport for f in stream_frames(Stream.of("p0", udp_packet(sport=100), vary=(vary,)))]
    assert again == ports


def test_tcp_checksum_follows_a_varied_port():
    syn = Ether(**MACS) / IP(src="10.0.0.2", dst="10.0.1.2") / TCP(sport=1000, dport=80, flags="S", seq=1)
    frames = stream_frames(Stream.of("p0", syn, vary=(Vary("tcp.dport", 2),)))
    assert frames == [bytes(Ether(**MACS) / IP(src="10.0.0.2", dst="10.0.1.2") / TCP(sport=1000, dport=port,
                                                                                     flags="S", seq=1))
                      + bytes(6) for port in (80, 81)]


def test_vlan_tagged_frame_varies_behind_its_tag():
    tagged = Ether(**MACS) / Dot1Q(vlan=100) / IP(src="10.0.0.2", dst="10.0.1.2", id=7) / UDP(sport=1000, dport=53)
    frames = stream_frames(Stream.of("p0", tagged, vary=(Vary("ip.id", 2), Vary("udp.dport", 2))))
    assert frames == [bytes(Ether(**MACS) / Dot1Q(vlan=100) / IP(src="10.0.0.2", dst="10.0.1.2", id=ident)
                            / UDP(sport=1000, dport=dport) / Raw(bytes(TAG_LEN))) for ident, dport in ((7, 53), (8, 54))]


def test_sizes_behind_ip_options():
    options = IPOption_NOP() / IPOption_NOP() / IPOption_NOP() / IPOption_NOP()
    packet = Ether(**MACS) / IP(src="10.0.0.2", dst="10.0.1.2", options=options) / UDP(sport=1, dport=2)
    frames = stream_frames(Stream.of("p0", packet, sizes=((128, 1),)))
    assert frames == [bytes(Ether(**MACS) / IP(src="10.0.0.2", dst="10.0.1.2", options=options)
                            / UDP(sport=1, dport=2) / Raw(bytes(78)))]


def test_udp_without_checksum_stays_without():
    stream = Stream.of("p0", udp_packet(chksum=0), vary=(Vary("udp.dport", 2),), sizes=((128, 1),))
    assert {Ether(frame)[UDP].chksum for frame in stream_frames(stream)} == {0}


def test_every_vary_advances_on_every_packet():
    stream = Stream.of("p0", udp_packet(), vary=(Vary("udp.sport", 4), Vary("udp.dport", 6)))
    frames = stream_frames(stream)
    pairs = [(Ether(f)[UDP].sport, Ether(f)[UDP].dport) for f in frames]
    assert len(frames) == 12 and len(set(pairs)) == 12
    assert pairs[:7] == [(1000, 53), (1001, 54), (1002, 55), (1003, 56), (1000, 57), (1001, 58), (1002, 53)]
    imix_flows = stream_frames(Stream.of("p0", udp_packet(), sizes=IMIX, vary=(Vary("ip.src", 5),)))
    assert len(imix_flows) == 60


def test_a_cycle_too_long_is_refused():
    stream = Stream.of("p0", udp_packet(), vary=(Vary("udp.sport", 1031), Vary("udp.dport", 1033)))
    with pytest.raises(ValueError, match="1065023 frames in one cycle"):
        stream_frames(stream)


# -------------------------------------------------------------------- payload tag

def test_tag_is_the_last_16_bytes_of_the_udp_payload():
    frame = stream_frames(Stream.of("p0", udp_packet(payload=b"hello" * 8)))[0]
    tagged = tag_frame(frame, 7, 5, 123456789)
    # "<HHIQ": magic "PJ", stream 7, sequence 5, 123456789 ns; the UDP checksum covers it
    tag = bytes.fromhex("504a" "0700" "05000000" "15cd5b0700000000")
    assert tagged == bytes(udp_packet(payload=(b"hello" * 8)[:40 - TAG_LEN] + tag))
    assert read_tag(tagged) == (7, 5, 123456789)


def test_tag_goes_before_an_ethernet_trailer():
    frame = bytes(udp_packet(payload=bytes(16))) + b"\xee" * 4
    tagged = tag_frame(frame, 1, 2, 3)
    assert tagged[-4:] == b"\xee" * 4
    assert read_tag(tagged) == (1, 2, 3)


def test_tag_keeps_a_zero_udp_checksum_and_wraps_the_sequence():
    tagged = tag_frame(bytes(udp_packet(payload=bytes(20), chksum=0)), 65535, 2 ** 32 + 9, 1)
    assert Ether(tagged)[UDP].chksum == 0
    assert read_tag(tagged) == (65535, 9, 1)


def test_read_tag_of_frames_without_one():
    assert read_tag(bytes(udp_packet(payload=bytes(16)))) is None  # no magic
    assert read_tag(bytes(udp_packet(payload=b"PJ" * 4))) is None  # too short
    assert read_tag(bytes(Ether(**MACS) / ARP())) is None
    with pytest.raises(ValueError, match="tag_frame: only an IPv4/UDP frame carries the payload tag"):
        tag_frame(bytes(Ether(**MACS) / IP() / TCP()), 0, 0, 0)


# ------------------------------------------------------------ latency, sequence

def test_rfc3550_jitter_over_consecutive_packets():
    recorder = LatencyRecorder()
    for latency in (10, 14, 12, 12):
        recorder.add(latency)
    # J = 0 + (4 - 0)/16 = 0.25; + (2 - 0.25)/16 = 0.359375; + (0 - 0.359375)/16 = 0.3369140625
    assert recorder.stats() == LatencyStats(10, 12.0, 14, 0.3369140625, {10: 4})


def test_a_train_of_identical_latencies_is_the_same_as_its_packets():
    train = LatencyRecorder()
    train.add(10)
    train.add(14, count=3)
    # 0.25, then (0 - J)/16 twice: 0.25 * 15/16 * 15/16
    assert train.stats() == LatencyStats(10, 13.0, 14, 0.2197265625, {10: 4})
    assert train.packets == 4


def test_no_latency_recorded_gives_zero_stats():
    assert LatencyRecorder().stats() == LatencyStats()


@pytest.mark.parametrize("latency, bucket", [
    (0.5, 0), (1, 1), (3.7, 3), (9.99, 9), (10, 10), (19.9, 10), (99.9, 90), (100, 100), (150, 100),
    (999.5, 900), (1234, 1000), (25000, 20000),
])
def test_histogram_buckets_by_leading_digit(latency, bucket):
    assert histogram_bucket(latency) == bucket


def _checker(*seqs: int) -> SequenceChecker:
    checker = SequenceChecker()
    for seq in seqs:
        checker.see(seq)
    return checker


def _counts(checker: SequenceChecker) -> tuple[int, ...]:
    return (checker.dropped, checker.seq_too_high, checker.seq_too_low, checker.out_of_order, checker.duplicates,
            checker.expected)


def test_sequence_gap_then_late_packets_as_trex_counts_them():
    # 5 skips 3 and 4 (thought lost); they arrive late (out of order, not lost);
    # 4 again is out of order too (only expected - 1 counts as a duplicate)
    assert _counts(_checker(0, 1, 2, 5, 3, 4, 4, 6)) == (0, 1, 3, 3, 0, 7)


def test_duplicate_of_the_last_packet_in_order():
    assert _counts(_checker(0, 1, 1, 2)) == (0, 0, 1, 0, 1, 3)


def test_lost_packets_stay_counted():
    assert _counts(_checker(0, 4, 5, 9)) == (6, 2, 0, 0, 0, 10)


def test_trains_count_as_their_packets():
    train = SequenceChecker()
    train.see(0, 10)
    train.see(8, 4)  # 8 late, 9 again, 10 and 11 in order
    assert _counts(train) == _counts(_checker(*range(10), 8, 9, 10, 11)) == (0, 0, 2, 1, 1, 12)
    late = SequenceChecker()
    late.see(0, 10)
    late.see(5, 3)
    assert _counts(late) == (0, 0, 3, 3, 0, 10)


def test_sequence_numbers_wrap_at_32_bits():
    checker = SequenceChecker()
    checker.expected = 2 ** 32 - 2
    checker.see(2 ** 32 - 2, 4)
    checker.see(2)
    assert _counts(checker) == (0, 0, 0, 0, 0, 3)


# ------------------------------------------------------------- results, JSON

def _result() -> Result:
    latency = LatencyStats(1.5, 2.3, 7.0, 0.13, {1: 10, 2: 980, 7: 1})
    return Result(
        target="mock", duration=1.0,
        ports={"p0": PortStats(opackets=1000, obytes=60000, tx_pps=1000, tx_bps=512000, tx_bps_L1=672000),
               "p1": PortStats(ipackets=990, ibytes=59400, rx_pps=990, rx_bps=506880, rx_bps_L1=665280)},
        streams={0: StreamStats(0, opackets=1000, ipackets=990, obytes=60000, ibytes=59400, out_of_order=2,
                                latency=latency),
                 1: StreamStats(1, opackets=0)},
        losses=[Loss("NIC_RX", "RX_RING_FULL", "p0 rx ring", 10)],
        paths=[("NIC_RX > XDP > NIC_TX", 990)],
        notes=["paths: counted per train"])


def test_loss_ratio_per_stream_and_total():
    result = _result()
    assert (result.loss_ratio(0), result.loss_ratio(1), result.loss_ratio()) == (0.01, 0.0, 0.01)
    result.streams[1] = StreamStats(1, opackets=1000, ipackets=1002)  # duplicates are not negative loss
    assert (result.loss_ratio(1), result.loss_ratio()) == (0.0, 0.005)
    assert Result("mock", 0.0).loss_ratio() == 0.0


def test_result_round_trips_through_json():
    result = _result()
    data = json.loads(json.dumps(result.to_dict()))
    assert data["streams"]["0"]["latency"]["histogram"] == {"1": 10, "2": 980, "7": 1}
    assert Result.from_dict(data) == result


def test_profile_round_trips_through_json():
    profile = Profile((
        Stream.of("p0", udp_packet(), rate=Rate(1e9, RateUnit.BPS_L1), sizes=IMIX,
                  vary=(Vary("ip.src", 100), Vary("udp.sport", 7, VaryMode.RANDOM, seed=3)), latency=True),
        Stream.of("p1", udp_packet(), mode=Mode.MULTI_BURST, count=32, bursts=4, ibg=0.001, id=1),
    ))
    data = json.loads(json.dumps(profile.to_dict()))
    assert data["streams"][0]["frame"] == profile.streams[0].frame.hex()
    assert data["streams"][0]["rate"] == {"value": 1e9, "unit": "bps_L1"}
    assert Profile.from_dict(data) == profile


def test_summary_reads_like_trex_console():
    assert _result().summary() == """\
traffic on mock: 1.000 s
port       p0           p1
opackets   1,000        0
ipackets   0            990
tx_pps     1.00 kpps    0.00 pps
rx_pps     0.00 pps     990.00 pps
tx_bps_L1  672.00 kbps  0.00 bps
rx_bps_L1  0.00 bps     665.28 kbps
stream  opackets  ipackets  lost  loss    latency min/avg/max us  jitter us  ooo  dup
0       1,000     990       10    1.000%  1.5/2.3/7.0             0.13       2    0
1       0         0         0     0.000%  -                       -          0    0
losses:
  stage   reason        where       packets
  NIC_RX  RX_RING_FULL  p0 rx ring  10
notes:
  paths: counted per train"""


def test_empty_trains_count_nothing_and_negative_ones_are_refused():
    recorder, checker = LatencyRecorder(), SequenceChecker()
    recorder.add(5.0)
    recorder.add(50.0, count=0)
    checker.see(0)
    checker.see(9, count=0)
    assert recorder.stats() == LatencyStats(5.0, 5.0, 5.0, 0.0, {5: 1})
    assert _counts(checker) == (0, 0, 0, 0, 0, 1)
    with pytest.raises(ValueError, match="a train of -1 packets"):
        recorder.add(1.0, count=-1)
    with pytest.raises(ValueError, match="a train of -2 packets"):
        checker.see(1, count=-2)
