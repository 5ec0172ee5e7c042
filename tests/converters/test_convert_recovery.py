"""What a conversion leaves when it is killed, the disk fills or the raw tree is unusual, and what the next run
does with it (found by an experimental review: killed runs, full disks, rewritten and linked raw files)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omnimedseg.converters import _run
from omnimedseg.converters._run import COMPLETE_MARKER, convert_dataset
from omnimedseg.converters._validate import validate_converted
from omnimedseg.errors import ConversionError, UsageError
from tests.converters import contract_data as data
from tests.converters._outputs import files_by_name

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _converters(monkeypatch):
    data.use_test_converters(monkeypatch)


def _brain(tmp_path: Path, n: int = 3):
    card = data.brain_card(tmp_path / "cards")
    raw = tmp_path / "release"
    ids = data.make_brain(raw, n=n)
    return card, raw, ids


def _interrupted(tmp_path: Path):
    """A brain4d run stopped by a broken label of its last case (its finished cases kept in the partial folder);
    returns (card, raw, ids, repair) where ``repair()`` restores that label."""
    card, raw, ids = _brain(tmp_path)
    broken = raw / "labelsTr" / f"{ids[2]}.nii.gz"
    good = broken.read_bytes()
    broken.write_bytes(b"garbage")
    with pytest.raises(ConversionError):
        convert_dataset(card, tmp_path / "root", raw=raw)
    return card, raw, ids, lambda: broken.write_bytes(good)


def _beside(out: Path, what: str) -> Path:
    return out.with_name(f".{out.name}.{what}")


def _dead(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie waits only for init to reap it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_die_with_a_run_killed_by_sigkill():
    """kill -9 (or the OOM killer) on `convert -j N`: its workers had gone on converting into the partial
    folder, outside the lock, while the next run owned it."""
    code = ("import os, time\nfrom concurrent.futures import ProcessPoolExecutor\n"
            "from omnimedseg.converters._run import _start_worker\n"
            "with ProcessPoolExecutor(2, initializer=_start_worker, initargs=(2, os.getpid())) as pool:\n"
            "    futures = [pool.submit(time.sleep, 120) for _ in range(2)]\n"
            "    time.sleep(1)\n"
            "    print(' '.join(map(str, pool._processes)), flush=True)\n"
            "    time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(workers) == 2 and not any(_dead(pid) for pid in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(_dead(pid) for pid in workers):
        time.sleep(0.05)
    alive = [pid for pid in workers if not _dead(pid)]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "workers outlived their killed run"


def test_a_run_killed_between_the_two_renames_of_its_swap_is_completed_by_the_next(tmp_path):
    card, raw, _ = _brain(tmp_path)
    out = convert_dataset(card, tmp_path / "root", raw=raw)
    expected = files_by_name(out)
    shutil.copytree(out, _beside(out, "partial"))  # the new, complete output ...
    os.replace(out, _beside(out, "old"))  # ... and the old one set aside, then the kill
    stamp = (_beside(out, "partial") / COMPLETE_MARKER).stat().st_mtime_ns
    assert convert_dataset(card, tmp_path / "root", raw=raw) == out
    assert files_by_name(out) == expected and (out / COMPLETE_MARKER).stat().st_mtime_ns == stamp  # moved, not redone
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_leftovers_of_killed_runs_beside_a_complete_output_are_removed(tmp_path):
    """A kill during the removal of the set-aside old output, or an interrupted --force run: a plain rerun
    says "already converted" and had kept a whole dataset's copy beside it for good."""
    card, raw, _ = _brain(tmp_path)
    out = convert_dataset(card, tmp_path / "root", raw=raw)
    shutil.copytree(out, _beside(out, "old"))
    (_beside(out, "partial") / "images").mkdir(parents=True)
    (_beside(out, "partial") / ".run.json").write_text("{}")
    stamp = (out / COMPLETE_MARKER).stat().st_mtime_ns
    convert_dataset(card, tmp_path / "root", raw=raw)
    assert (out / COMPLETE_MARKER).stat().st_mtime_ns == stamp
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_a_sample_never_replaces_a_complete_output_of_every_case_without_force(tmp_path):
    card, raw, ids = _brain(tmp_path)
    out = convert_dataset(card, tmp_path / "root", raw=raw)
    with pytest.raises(UsageError, match=r"holds a complete conversion of every case; --sample 1 would replace it"):
        convert_dataset(card, tmp_path / "root", raw=raw, sample=1)
    assert len(json.loads((out / "dataset.json").read_text())["cases"]) == len(ids)
    convert_dataset(card, tmp_path / "root", raw=raw, sample=1, force=True)
    assert len(json.loads((out / "dataset.json").read_text())["cases"]) == 1
    convert_dataset(card, tmp_path / "root", raw=raw)  # and a run of every case replaces a sample, as documented
    assert len(json.loads((out / "dataset.json").read_text())["cases"]) == len(ids)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_disk_stops_the_run_even_with_keep_going(tmp_path, monkeypatch, code):
    """With --keep-going a full disk had become "failed cases", and the smaller output replaced a good one."""
    card, raw, ids = _brain(tmp_path)
    out = convert_dataset(card, tmp_path / "root", raw=raw)
    before = files_by_name(out)
    write = _run.write_output

    def fills_up(data_, path):
        if ids[1] in str(path):
            raise OSError(code, os.strerror(code), str(path))
        return write(data_, path)
    monkeypatch.setattr(_run, "write_output", fills_up)
    with pytest.raises(ConversionError, match=rf"case {ids[1]}: writing .*{ids[1]}.* failed \({os.strerror(code)}\); "
                                              r"free space \(or write access\) there, then rerun the same command"):
        convert_dataset(card, tmp_path / "root", raw=raw, force=True, keep_going=True)
    assert files_by_name(out) == before


def test_a_record_temp_file_of_a_killed_run_never_reaches_the_output(tmp_path):
    card, raw, ids, repair = _interrupted(tmp_path)
    out = _run.paths.converted_dir(card.id, card.converter_version, tmp_path / "root")
    (_beside(out, "partial") / "..run.json.k1ll3d.tmp").write_text("{")  # killed inside atomic_write_text
    (_beside(out, "partial") / ".dataset.json.x7.tmp").write_text("{")
    repair()
    convert_dataset(card, tmp_path / "root", raw=raw)
    assert not list(out.glob(".*.tmp"))
    assert validate_converted(out, raw).ok


def test_a_raw_file_rewritten_with_its_size_and_mtime_kept_is_read_again(tmp_path):
    """cp -p, rsync -t and unpacking restore size and mtime: the resumed run had kept the old case."""
    card, raw, ids, repair = _interrupted(tmp_path)
    first = raw / "labelsTr" / f"{ids[0]}.nii.gz"
    st = first.stat()
    first.write_bytes(first.read_bytes()[::-1])  # other bytes, the same size
    os.utime(first, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert first.stat().st_size == st.st_size and first.stat().st_mtime_ns == st.st_mtime_ns
    repair()
    with pytest.raises(ConversionError, match=rf"case {ids[0]}"):  # read again: these bytes are no NIfTI
        convert_dataset(card, tmp_path / "root", raw=raw)


def test_a_raw_tree_of_symlinks_converts_like_the_files(tmp_path):
    card, raw, _ = _brain(tmp_path)
    links = tmp_path / "links"
    for path in sorted(raw.rglob("*")):
        target = links / path.relative_to(raw)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)  # as `cp -rs` makes
    linked = convert_dataset(card, tmp_path / "root_links", raw=links)
    plain = convert_dataset(card, tmp_path / "root_plain", raw=raw)
    assert {k: v for k, v in files_by_name(linked).items() if k != "provenance.json"} == \
        {k: v for k, v in files_by_name(plain).items() if k != "provenance.json"}
    assert validate_converted(linked, links).ok


def test_a_converter_that_raises_while_listing_is_named(tmp_path, monkeypatch):
    """A bug in a converter's cases() (a plugin's too) had reached the user as "KeyError: 'boom' (unexpected ...)",
    naming neither the dataset nor the converter."""
    card, raw, _ = _brain(tmp_path)
    converter = _run.converter_for(card)

    def broken(self, raw_dir):
        raise KeyError("boom")
        yield
    monkeypatch.setattr(type(converter), "cases", broken)
    with pytest.raises(ConversionError, match=r"brain4d: converter \S+ failed while listing the cases of .*release "
                                              r"\(KeyError: 'boom'\); rerun with --debug"):
        convert_dataset(card, tmp_path / "root", raw=raw)
