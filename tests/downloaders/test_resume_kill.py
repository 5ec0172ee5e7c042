"""SIGKILL a download mid-file in another process; the rerun resumes from the partial bytes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from dl_helpers import downloads, payload

from omnimedseg.downloaders import download_dataset
from omnimedseg.downloaders.emulators import ZenodoEmulator

CHILD = """
import sys
from pathlib import Path
from omnimedseg.downloaders import download_dataset
from omnimedseg.registry import Card
download_dataset(Card.from_toml(Path(sys.argv[1])))
"""


def test_sigkill_mid_file_then_rerun_resumes_and_verifies(emulator, make_card):
    big = payload(4 << 20, 7)
    emu = emulator(ZenodoEmulator)
    emu.add_record("101", {"big.bin": big})
    card = make_card("zenodo", "101", {"big.bin": big}, version="101")
    emu.inject("throttle", times=1, bps=2 << 20, match="big.bin")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(card.path)], env=dict(os.environ))
    part = downloads() / "big.bin.part"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < 1 << 20):
        assert child.poll() is None, "the child finished or failed before it could be killed"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    kept = part.stat().st_size
    assert 0 < kept < len(big) and not (downloads() / "big.bin").exists()
    served_before = emu.bytes_served("big.bin")

    download_dataset(card)

    assert (downloads() / "big.bin").read_bytes() == big
    resumed = [r for r in emu.requests if r.headers.get("Range")]
    assert resumed and resumed[-1].headers["Range"] == f"bytes={kept}-"
    transferred = emu.bytes_served("big.bin") - served_before
    assert transferred == len(big) - kept  # only the missing bytes crossed the wire
