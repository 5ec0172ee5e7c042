"""One line, never a traceback (issue 12): each class of failure through the real entry point
``omnimedseg.cli.main``: ``Error: <one line naming the file and the cause>``, exit 1."""

from __future__ import annotations

import errno
import io
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from dl_helpers import payload, write_card

from omnimedseg.cli import main


def _registry(tmp_path: Path, files: dict[str, bytes | None], extract=()) -> Path:
    return write_card(tmp_path / "registry", files, extract=extract)


def one_line_error(capsys, *argv) -> str:
    """Run the CLI; assert exit 1 and exactly one ``Error:`` line on stderr, no traceback; return it."""
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    err = capsys.readouterr().err
    assert exited.value.code == 1, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: ") and len(lines[-1]) > 20, err
    assert [line for line in lines if line.startswith("Error")] == [lines[-1]], err
    return lines[-1]


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


def _bad_crc() -> bytes:
    data = bytearray(_zip({"case/a.txt": b"hello world " * 50}))
    data[data.find(b"hello")] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize("case,archive,expected", [
    ("bad crc", _bad_crc(), "Bad CRC-32"),
    ("member named .", _zip({".": b"data"}), "a file entry without a file name"),
    ("empty member name", _zip({"": b"data"}), "a file entry without a file name"),
    ("not a zip, pinned", b"<html>maintenance</html>", "not a ZIP file"),
])
def test_broken_archives(case, archive, expected, tmp_path, capsys):
    registry = _registry(tmp_path, {"data.zip": archive}, extract=("data.zip",))
    source = tmp_path / "src"
    source.mkdir()
    (source / "data.zip").write_bytes(archive)
    line = one_line_error(capsys, "--root", str(tmp_path / "root"), "--registry", str(registry), "download", "emu",
                          "--from", str(source))
    assert expected in line and "data.zip" in line


def test_not_a_zip_in_an_unhashed_card_is_set_aside_and_verify_does_not_trust_it(tmp_path, capsys):
    registry = _registry(tmp_path, {"data.zip": None}, extract=("data.zip",))
    source = tmp_path / "src"
    source.mkdir()
    (source / "data.zip").write_bytes(b"<html>not found</html>")
    root = str(tmp_path / "root")
    line = one_line_error(capsys, "--root", root, "--registry", str(registry), "download", "emu", "--from", str(source))
    assert "not a ZIP file" in line and "set aside as data.zip.corrupt" in line
    line = one_line_error(capsys, "--root", root, "--registry", str(registry), "verify", "emu")
    assert "has not been downloaded; run: omnimedseg download emu" in line


@pytest.mark.parametrize("fault", ["html", "json_list"])
def test_metadata_that_is_not_the_promised_json(fault, emulator, tmp_path, capsys):
    from omnimedseg.downloaders.emulators import ZenodoEmulator

    emu = emulator(ZenodoEmulator)
    emu.add_record("101", {"a.bin": b"abc"})
    emu.inject(fault, times=-1, scope="api")
    registry = _registry(tmp_path, {"a.bin": b"abc"})
    line = one_line_error(capsys, "--root", str(tmp_path / "root"), "--registry", str(registry), "download", "emu")
    assert "emu" in line or "Zenodo record" in line


def test_redirect_to_file_scheme(emulator, tmp_path, capsys):
    from omnimedseg.downloaders.emulators import ZenodoEmulator

    emu = emulator(ZenodoEmulator, redirect_to_storage=True)
    emu.add_record("101", {"a.bin": b"abc"})
    emu.storage_url = "file:///etc"
    registry = _registry(tmp_path, {"a.bin": b"abc"})
    line = one_line_error(capsys, "--root", str(tmp_path / "root"), "--registry", str(registry), "download", "emu")
    assert "a.bin: refusing redirect to file:///etc/bucket/" in line and "scheme 'file'" in line


def test_card_that_is_not_utf8_breaks_no_command_with_a_traceback(tmp_path, capsys):
    folder = tmp_path / "registry"
    folder.mkdir()
    (folder / "latin.toml").write_bytes('title = "Universit\xe9"\n'.encode("latin-1"))
    line = one_line_error(capsys, "--registry", str(folder), "info", "latin")
    assert "latin.toml: not UTF-8" in line
    with pytest.raises(SystemExit) as exited:  # the other datasets still list; the broken card is named
        main(["--registry", str(folder), "list"])
    out = capsys.readouterr()
    assert exited.value.code == 0 and "hc18" in out.out and "not listed: " in out.err and "latin.toml: not UTF-8" in out.err


def test_permission_denied_on_root(tmp_path, capsys, monkeypatch):
    """Tests run as root here (no real EACCES): the OSError the kernel gives is injected at the mkdir."""
    registry = _registry(tmp_path, {"a.bin": b"abc"})
    root = tmp_path / "root"
    real_mkdir = Path.mkdir

    def denied(self, *args, **kwargs):
        if str(self).startswith(str(root)):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)
    monkeypatch.setattr(Path, "mkdir", denied)
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.bin").write_bytes(b"abc")
    line = one_line_error(capsys, "--root", str(root), "--registry", str(registry), "download", "emu", "--from",
                          str(source))
    assert str(root) in line and "Permission denied" in line and "--root" in line


@pytest.fixture
def tmpfs(tmp_path):
    """A real tmpfs (``mount`` needs root): ``make(size, read_only)`` -> its folder; unmounted at the end."""
    mounted = []

    def make(size: str, read_only: bool = False) -> Path:
        where = tmp_path / f"mnt{len(mounted)}"
        where.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); needs root")
        mounted.append(where)
        return where
    yield make
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_disk_full(tmp_path, capsys, tmpfs):
    data = payload(400_000, 3)
    registry = _registry(tmp_path, {"big.bin": data})
    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(data)
    root = tmpfs("128k")
    line = one_line_error(capsys, "--root", str(root), "--registry", str(registry), "download", "emu", "--from",
                          str(source))
    assert "No space left on device" in line and "free space" in line and str(root) in line


def test_read_only_folder(tmp_path, capsys, tmpfs):
    registry = _registry(tmp_path, {"a.bin": b"abc"})
    root = tmpfs("64k", read_only=True)
    line = one_line_error(capsys, "--root", str(root / "data"), "--registry", str(registry), "download", "emu",
                          "--from", str(tmp_path))
    assert "Read-only file system" in line and "read-only" in line and str(root) in line


def test_truncated_nifti_voxel_data(tmp_path, capsys):
    import nibabel as nib
    import numpy as np

    path = tmp_path / "label.nii"
    nib.save(nib.Nifti1Image(np.ones((20, 20, 20), np.uint8), np.eye(4)), path)
    path.write_bytes(path.read_bytes()[:2000])
    line = one_line_error(capsys, "formats", "labels-to-masks", str(path), str(tmp_path / "out"))
    assert str(path) in line


def test_no_wait_refuses_in_one_line_while_another_process_works(tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from omnimedseg.files import dataset_lock
        with dataset_lock("emu", sys.argv[1]):
            print("held", flush=True)
            time.sleep(5)
    """), str(tmp_path / "root")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        registry = _registry(tmp_path, {"a.bin": b"abc"})
        line = one_line_error(capsys, "--root", str(tmp_path / "root"), "--registry", str(registry), "download",
                              "emu", "--no-wait", "--from", str(tmp_path))
        assert "emu: another omnimedseg process is working on this dataset" in line
    finally:
        holder.kill()
        holder.wait()


def test_an_unexpected_library_error_is_still_one_line(tmp_path, capsys, monkeypatch):
    from omnimedseg.cli import Env

    def broken(*args, **kwargs):
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(Env, "registry", broken)
    line = one_line_error(capsys, "list")
    assert line == "Error: RuntimeError: first line second line (unexpected; rerun with --debug for details and " \
                   "report it)"


def test_failed_commands_leave_nothing_behind(tmp_path, capsys):
    """A benchmark without converted data makes no result folder; a failed download leaves no lock file."""
    suite = Path(__file__).resolve().parents[2] / "benchmarks" / "hc18_interactive.toml"
    root = tmp_path / "root"
    line = one_line_error(capsys, "--root", str(root), "benchmark", str(suite))
    assert "no complete converted data" in line and "omnimedseg convert hc18" in line
    assert not (root / "benchmarks").exists()
    registry = _registry(tmp_path, {"a.bin": b"abc"})
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.bin").write_bytes(b"abd")  # right size, wrong bytes
    line = one_line_error(capsys, "--root", str(root), "--registry", str(registry), "download", "emu", "--from",
                          str(source))
    assert "that file is not the one the card pins" in line and "rerun" not in line
    assert not [p for p in root.rglob("*") if p.name.endswith((".lock", ".part", ".part.json"))
                and ".locks" not in p.parts]


def test_unknown_dataset_fails_before_any_lock_file(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--root", str(tmp_path / "root"), "download", "no-such-dataset"])
    assert exited.value.code != 0 and "no-such-dataset" in capsys.readouterr().err
    assert not (tmp_path / "root" / ".locks").exists()
