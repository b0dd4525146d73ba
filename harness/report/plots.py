"""PNG plots of line-rate results (matplotlib, Agg), and their Allure attachments
(with the tables and JSON harness/report/summary.py reads back).

- throughput and loss against offered load, one figure per frame size of an
  RFC 2544 report: every continuous trial (search, latency, loss curve) as a
  point, the NDR and PDR lower bounds as vertical lines;
- a latency histogram (LatencyStats.histogram: bucket lower bound in
  microseconds -> packets).

Figures are drawn on their own Agg canvas, never through pyplot, so plotting
changes no global matplotlib state and needs no display.
"""
from __future__ import annotations

import io
import json

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.rfc2544 import Phase, Report, SizeReport
from harness.traffic import LatencyStats, Result


def throughput_png(size: SizeReport, target: str) -> bytes:
    """Forwarded rate and loss ratio against offered load for one frame size."""
    figure = Figure(figsize=(9, 4))
    forwarded, loss = figure.subplots(1, 2)
    continuous = sorted((t for t in size.trials if t.phase != Phase.BACK_TO_BACK), key=lambda t: t.load_pps)
    offered = [t.load_pps for t in continuous]
    forwarded.plot(offered, [t.load_pps * (1 - t.loss_ratio) for t in continuous], "o-", markersize=3,
                   label="forwarded")
    forwarded.plot([0, size.max_pps], [0, size.max_pps], ":", color="grey", label="offered")
    loss.plot(offered, [100 * t.loss_ratio for t in continuous], "o-", markersize=3, color="tab:red")
    for goal, style in ((size.ndr, "--"), (size.pdr, "-.")):
        if goal and goal.lower_pps:
            name = "NDR" if goal.loss_ratio == 0 else f"PDR {100 * goal.loss_ratio:g}%"
            for axes in (forwarded, loss):
                axes.axvline(goal.lower_pps, linestyle=style, color="tab:green", label=name)
    forwarded.set(title=f"{size.frame_size}-byte frames on {target}", xlabel="offered load (pps)",
                  ylabel="forwarded (pps)")
    forwarded.legend(loc="upper left", fontsize="small")
    loss.set(title="frame loss", xlabel="offered load (pps)", ylabel="lost (% of offered)")
    return _png(figure)


def latency_histogram_png(stats: LatencyStats, title: str) -> bytes:
    """Packets per latency bucket, buckets labelled by their lower bound (us)."""
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    bounds = sorted(stats.histogram)
    axes.bar(range(len(bounds)), [stats.histogram[b] for b in bounds])
    axes.set_xticks(range(len(bounds)), [str(b) for b in bounds], rotation=45, fontsize="small")
    axes.set(title=f"{title}: min {stats.min_us:.1f} avg {stats.avg_us:.1f} max {stats.max_us:.1f} us",
             xlabel="latency bucket, from (us)", ylabel="packets")
    return _png(figure)


def report_pngs(report: Report) -> dict[str, bytes]:
    """Every plot of an RFC 2544 report, by file name."""
    out = {}
    for size in report.sizes:
        if any(t.phase != Phase.BACK_TO_BACK for t in size.trials):
            out[f"throughput-{size.frame_size}.png"] = throughput_png(size, report.target)
        for goal in (size.ndr, size.pdr):
            if goal and goal.latency and goal.latency.histogram:
                at = "ndr" if goal.loss_ratio == 0 else "pdr"
                out[f"latency-{size.frame_size}-{at}.png"] = latency_histogram_png(
                    goal.latency, f"{size.frame_size} B at {at.upper()} {goal.lower_pps:.0f} pps")
    return out


def attach(report: Report) -> None:
    """Attach the report's tables (text, and JSON for harness/report/summary.py) and
    plots to the running test's Allure result (nothing without allure-pytest)."""
    try:
        import allure
    except ImportError:
        return
    allure.attach(report.table(), name=f"RFC 2544 ({report.target}).txt", attachment_type=allure.attachment_type.TEXT)
    allure.attach(json.dumps(report.to_dict()), name=f"RFC 2544 ({report.target}).json",  # the sign-off summary's tables
                  attachment_type=allure.attachment_type.JSON)
    for name, png in report_pngs(report).items():
        allure.attach(png, name=f"{name.removesuffix('.png')} ({report.target})", attachment_type=allure.attachment_type.PNG)


def attach_traffic(result: Result) -> None:
    """Attach one `Target.traffic()` run to the running test's Allure result: its
    summary table and its JSON (nothing without allure-pytest)."""
    try:
        import allure
    except ImportError:
        return
    allure.attach(result.summary(), name=f"traffic ({result.target}).txt", attachment_type=allure.attachment_type.TEXT)
    allure.attach(json.dumps(result.to_dict()), name=f"traffic ({result.target}).json",
                  attachment_type=allure.attachment_type.JSON)


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
