"""Scripts in google/packetdrill's format (suites/packetdrill/*.pkt), one test each,
run on the target by harness/packetdrill (docs/packetdrill.md): the DUT is the
script's local side on p0, the remote side is the tester port. Their times need
departure times of the frames (a lab's TRex stamps fetch times)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.packetdrill import parse_file, run_script

SCRIPTS = sorted((Path(__file__).parent / "packetdrill").glob("*.pkt"))


@pytest.mark.requires("frame_times")
@pytest.mark.parametrize("script", SCRIPTS, ids=[path.stem for path in SCRIPTS])
def test_packetdrill_script(target, script: Path):
    run_script(target, parse_file(os.path.relpath(script)))
