"""Progress bars (rich, on stderr) for runs that take a while: RFC 2544 campaigns
and single `Target.traffic()` runs on every target.

The rule: a bar appears once its run has taken SHOW_AFTER wall seconds, only
when stderr is a terminal; `progress=True/False` (the commands' --progress /
--no-progress) or PJ_PROGRESS=1/0 force it on or off. A bar forced on or off
forces the bars of the runs inside it likewise (a campaign's trials). Bars that
are drawn at once share one live display, one line each: a trial's bar below its
campaign's, gone when the trial ends.
"""
from __future__ import annotations

import os
import sys
import time

SHOW_AFTER = 3.0  # wall seconds: shorter runs finish before a bar is worth drawing

_forced: bool | None = None  # what an enclosing bar forced on the bars inside it
_live = None  # the rich Progress the drawn bars share
_drawn = 0  # bars on it


def wanted(progress: bool | None) -> bool:
    """Whether a run draws a bar: `progress` if given, else the enclosing bar's
    forced setting, else PJ_PROGRESS=1/0, else whether stderr is a terminal."""
    for forced in (progress, _forced):
        if forced is not None:
            return forced
    setting = os.environ.get("PJ_PROGRESS")
    if setting in ("0", "1"):
        return setting == "1"
    return sys.stderr.isatty()


class ProgressBar:
    """A bar over `total` units of a run; `update()` is cheap while nothing is drawn.
    `detail` is formatted with completed=, total= and update()'s fields when drawn."""

    def __init__(self, description: str, total: float, detail: str = "{completed:g}/{total:g}",
                 progress: bool | None = None) -> None:
        self.description = description
        self.total = total
        self.detail = detail
        self.progress = progress
        self.wanted = wanted(progress)
        self.started = time.monotonic()
        self.task = None

    def __enter__(self) -> ProgressBar:
        global _forced
        self._outer_forced = _forced
        if self.progress is not None:
            _forced = self.progress
        return self

    def __exit__(self, *exc) -> None:
        global _forced, _live, _drawn
        _forced = self._outer_forced
        if self.task is None:
            return
        _drawn -= 1
        if _drawn:
            _live.remove_task(self.task)
        else:
            _live.stop()  # the last line stays on the terminal
            _live = None

    def update(self, completed: float, description: str | None = None, **fields) -> None:
        if not self.wanted or (self.task is None and time.monotonic() - self.started < SHOW_AFTER):
            return
        if description is not None:
            self.description = description
        detail = self.detail.format(completed=completed, total=self.total, **fields)
        if self.task is None:
            self.task = _shared_display().add_task(self.description, total=self.total, detail=detail)
        _live.update(self.task, completed=completed, description=self.description, detail=detail)


def _shared_display():
    global _live, _drawn
    if _live is None:
        from rich.console import Console  # rich only when a bar is drawn: a quick run never imports it
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        _live = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"),
                         TimeElapsedColumn(), console=Console(stderr=True))
        _live.start()
    _drawn += 1
    return _live
