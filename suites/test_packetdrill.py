"""Scripts in google/packetdrill's format (suites/packetdrill/*.pkt), one test each,
run on the target by harness/packetdrill (docs/packetdrill.md): the DUT is the
script's local side on p0, the remote side is the tester port. Their times need
departure times of the frames (a lab's TRex stamps fetch times).

Every script passes on the real kernel (the netns lab). Where the mock still
differs from it, the script is listed in MOCK_DIVERGES with what the mock leaves
out: it runs on the mock as a strict xfail, so it fails the run the day the mock
gets it right (and the entry must go) as much as if it broke elsewhere."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.packetdrill import parse_file, run_script

SCRIPTS = sorted((Path(__file__).parent / "packetdrill").glob("*.pkt"))

MOCK_DIVERGES: dict[str, str] = {}  # script stem: what the mock leaves out


@pytest.mark.requires("frame_times")
@pytest.mark.parametrize("script", SCRIPTS, ids=[path.stem for path in SCRIPTS])
def test_packetdrill_script(target, script: Path, request):
    if target.name == "mock" and script.stem in MOCK_DIVERGES:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"mock diverges: {MOCK_DIVERGES[script.stem]}"))
    run_script(target, parse_file(os.path.relpath(script)))
