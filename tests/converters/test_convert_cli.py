"""`omnimedseg convert --raw/-j/--keep-going/--scheduler`, resuming after SIGKILL, failed runs keeping old output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import pytest

from omnimedseg.converters._run import CASE_RECORDS, convert_dataset
from omnimedseg.converters._validate import validate_converted
from omnimedseg.errors import ConversionError
from tests.converters import contract_data as data
from tests.converters._outputs import files_by_name
from tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _converters(monkeypatch):
    data.use_test_converters(monkeypatch)


def _out(root: Path, dataset_id: str = "brain4d") -> Path:
    return root / "converted" / dataset_id / "1.0.0"


def test_cli_raw_with_root_and_jobs_equals_one_job(tmp_path):
    data.brain_card(tmp_path / "cards")
    raw = tmp_path / "release"
    data.make_brain(raw, n=4, listed_extra=1)
    results = {}
    for jobs in ("1", "2"):
        root = tmp_path / f"root{jobs}"
        result = run_cli("--root", root, "--registry", tmp_path / "cards", "convert", "brain4d", "--raw", raw,
                         "-j", jobs)
        assert result.exit_code == 0, result.output
        assert "4 cases converted" in result.output
        assert "1 absent cases (no raw files present; listed in dataset.json): BRATS_004" in result.output
        results[jobs] = files_by_name(_out(root))
    assert results["1"] == results["2"]
    provenance = json.loads(results["1"]["provenance.json"])
    assert provenance["raw_verified"] is False and provenance["metadata_sources"] == {
        "cases.txt": provenance["metadata_sources"]["cases.txt"]}
    assert validate_converted(_out(tmp_path / "root1"), raw).ok


def test_cli_keep_going_lists_failures(tmp_path):
    data.brain_card(tmp_path / "cards")
    raw = tmp_path / "release"
    ids = data.make_brain(raw, n=3)
    broken = raw / "labelsTr" / f"{ids[2]}.nii.gz"
    intact = broken.read_bytes()
    broken.write_bytes(intact[:40])  # truncated gzip
    args = ("--root", tmp_path / "root", "--registry", tmp_path / "cards", "convert", "brain4d", "--raw", raw)
    failed = run_cli(*args)
    assert failed.exit_code == 1
    line = failed.output.strip().splitlines()[-1]
    assert line.startswith(f"Error: brain4d: case {ids[2]}: {broken}: ") and "expected" in line
    assert not _out(tmp_path / "root").exists()
    result = run_cli(*args, "--keep-going", "--json")
    # the rest is converted, but a partial dataset is not a success: exit 1, report then error
    assert result.exit_code == 1, result.output
    report, error = (json.loads(line) for line in result.stdout.splitlines())
    assert report["cases"] == 2 and [f["case_id"] for f in report["failed"]] == [ids[2]]
    assert error["kind"] == "ConversionError" and "1 case(s) failed" in error["error"]
    assert "omnimedseg convert brain4d --force --keep-going" in error["error"]
    dataset = json.loads((_out(tmp_path / "root") / "dataset.json").read_text())
    assert [f["case_id"] for f in dataset["failed"]] == [ids[2]] and str(broken.name) in dataset["failed"][0]["error"]
    # a rerun finds the complete output and still says that cases are missing from it
    again = run_cli(*args, "--keep-going")
    assert again.exit_code == 1 and "already converted" in again.output, again.output
    assert f"FAILED {ids[2]}: " in again.output
    assert again.output.strip().splitlines()[-1].startswith("Error: brain4d: 1 case(s) failed")
    # fixed raw data: --force converts every case and succeeds
    broken.write_bytes(intact)
    fixed = run_cli(*args, "--force", "--keep-going")
    assert fixed.exit_code == 0, fixed.output
    assert json.loads((_out(tmp_path / "root") / "dataset.json").read_text()).get("failed", []) == []


def test_failed_rerun_leaves_the_previous_complete_output_intact(tmp_path):
    card = data.brain_card(tmp_path / "cards")
    raw = tmp_path / "release"
    ids = data.make_brain(raw, n=2)
    out = convert_dataset(card, tmp_path / "root", raw=raw)
    before = files_by_name(out)
    image = raw / "imagesTr" / f"{ids[1]}.nii.gz"
    image.write_bytes(b"not a nifti")
    with pytest.raises(ConversionError, match=rf"case {ids[1]}: {image}: not a readable NIfTI"):
        convert_dataset(card, tmp_path / "root", raw=raw, force=True)
    assert files_by_name(out) == before


def _start_convert(root: Path, cards: Path, raw: Path) -> subprocess.Popen:
    code = ("import sys; from tests.converters import contract_data as d; d.use_test_converters(); "
            "from omnimedseg.cli import main; main(sys.argv[1:])")
    return subprocess.Popen([sys.executable, "-c", code, "-q", "--root", str(root), "--registry", str(cards),
                             "convert", "brain4d", "--raw", str(raw)], cwd=REPO,
                            env={**os.environ, "OMNIMEDSEG_GZIP_THREADS": "1"})


def test_sigkill_half_way_then_rerun_converts_only_the_missing_cases(tmp_path):
    card = data.brain_card(tmp_path / "cards")
    raw = tmp_path / "release"
    ids = data.make_brain(raw, n=40, shape=(24, 24, 16))
    root = tmp_path / "root"
    partial = _out(root).with_name(".1.0.0.partial")
    process = _start_convert(root, tmp_path / "cards", raw)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if len(list((partial / CASE_RECORDS).glob("*.json"))) >= 5:
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the conversion finished before it could be killed"
    finished = sorted(p.stem for p in (partial / CASE_RECORDS).glob("*.json"))
    assert 5 <= len(finished) < len(ids) and not _out(root).exists()
    kept = {p.relative_to(partial).as_posix(): p.stat().st_mtime_ns
            for case in finished for sub in ("images", "masks") for p in (partial / sub / case).rglob("*")}
    kept.update({f"ignore/{c}.nii.gz": (partial / "ignore" / f"{c}.nii.gz").stat().st_mtime_ns for c in finished})
    out = convert_dataset(card, root, raw=raw)
    for rel, mtime in kept.items():
        assert (out / rel).stat().st_mtime_ns == mtime, f"{rel} was converted again"
    reference = convert_dataset(card, tmp_path / "uninterrupted", raw=raw)
    assert files_by_name(out) == files_by_name(reference)
    assert validate_converted(out, raw).ok


def test_resume_redoes_a_case_whose_output_was_damaged(tmp_path):
    card = data.brain_card(tmp_path / "cards")
    raw = tmp_path / "release"
    ids = data.make_brain(raw, n=3)
    broken = raw / "labelsTr" / f"{ids[2]}.nii.gz"
    good = broken.read_bytes()
    broken.write_bytes(b"garbage")
    with pytest.raises(ConversionError):
        convert_dataset(card, tmp_path / "root", raw=raw)
    partial = _out(tmp_path / "root").with_name(".1.0.0.partial")
    damaged = partial / "masks" / ids[0] / "tumour.nii.gz"
    damaged.write_bytes(b"changed on disk")
    broken.write_bytes(good)
    out = convert_dataset(card, tmp_path / "root", raw=raw)
    assert nib.load(out / "masks" / ids[0] / "tumour.nii.gz").shape == (9, 8, 6)
    assert files_by_name(out) == files_by_name(convert_dataset(card, tmp_path / "fresh", raw=raw))


def test_dask_local_cluster_gives_the_same_output_as_one_job(tmp_path):
    distributed = pytest.importorskip("distributed", reason="the 'distributed' extra is not installed")
    card = data.brain_card(tmp_path / "cards")
    raw = tmp_path / "release"
    data.make_brain(raw, n=4)
    one = convert_dataset(card, tmp_path / "one", raw=raw)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        result = run_cli("--root", tmp_path / "dask", "--registry", tmp_path / "cards", "convert", "brain4d",
                         "--raw", raw, "--scheduler", cluster.scheduler_address)
        assert result.exit_code == 0, result.output
        assert "convert" in cluster.scheduler.task_prefixes  # the cases ran on the cluster
    assert files_by_name(_out(tmp_path / "dask")) == files_by_name(one)


def test_unreachable_scheduler_is_one_line(tmp_path):
    pytest.importorskip("distributed", reason="the 'distributed' extra is not installed")
    data.brain_card(tmp_path / "cards")
    raw = tmp_path / "release"
    data.make_brain(raw, n=1)
    result = run_cli("--root", tmp_path / "r", "--registry", tmp_path / "cards", "convert", "brain4d", "--raw", raw,
                     "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.output


def test_validate_after_convert_raw_rehashes_only_the_given_folder(tmp_path):
    data.brain_card(tmp_path / "cards")
    raw = tmp_path / "release"
    data.make_brain(raw, n=2)
    common = ("--root", tmp_path / "root", "--registry", tmp_path / "cards")
    assert run_cli(*common, "convert", "brain4d", "--raw", raw).exit_code == 0
    (tmp_path / "root" / "raw" / "brain4d").mkdir(parents=True)  # an unrelated downloaded tree
    plain = run_cli(*common, "validate", "brain4d")
    assert plain.exit_code == 0 and "raw sources not present, not re-hashed" in plain.output
    assert run_cli(*common, "validate", "brain4d", "--raw", raw).exit_code == 0
    label = raw / "labelsTr" / "BRATS_000.nii.gz"
    label.write_bytes(label.read_bytes() + b"\0")
    changed = run_cli(*common, "validate", "brain4d", "--raw", raw)
    assert changed.exit_code == 1 and f"{label}: raw source sha256" in changed.output
