"""CLI conventions through the real entry point: global options anywhere, one -j/--jobs, -v adds detail,
JSON errors, "did you mean", human sizes, progress of validate and qa, resumed benchmarks."""

from __future__ import annotations

import json

import pytest

from omnimedseg.cli import hoist_global_options
from tests.data.conftest import hc18  # noqa: F401  (converted fake HC18 under a data root)
from tests.helpers import run_cli


def test_global_options_may_follow_the_command(hc18, tmp_path):  # noqa: F811
    root = str(hc18["root"])
    before = run_cli("--root", root, "--json", "info", "hc18")
    after = run_cli("info", "hc18", "--root", root, "--json")
    equals = run_cli("info", f"--root={root}", "hc18", "--json")
    assert before.exit_code == after.exit_code == equals.exit_code == 0
    assert json.loads(before.stdout) == json.loads(after.stdout) == json.loads(equals.stdout)
    assert json.loads(after.stdout)["converted_complete"] is True  # --root really applied
    assert run_cli("validate", "hc18", "--root", root, "-q").stdout == ""  # -q after the command silences
    assert "folder " in run_cli("validate", "hc18", "--root", root, "-v").stdout  # -v after the command
    missing = run_cli("list", "--registry", str(tmp_path / "no_cards"))
    assert missing.exit_code == 1 and "no_cards does not exist" in missing.output
    assert hoist_global_options(["emulate", "x", "-vq", "--", "-v"]) == ["-vq", "emulate", "x", "--", "-v"]
    # an option the command defines itself stays with it (demo's --root is where the demo writes)
    assert hoist_global_options(["demo", "--root", "D", "-v"], lambda name: {"--root"} if name == "demo" else ()) == [
        "-v", "demo", "--root", "D"]


@pytest.mark.parametrize("command", ["convert", "benchmark", "download", "verify", "train", "demo"])
def test_jobs_is_one_flag_everywhere(command):
    help_text = run_cli(command, "--help").stdout
    assert "-j, --jobs" in help_text and "--workers" not in help_text


def test_old_workers_spelling_still_works(hc18):  # noqa: F811
    root = str(hc18["root"])
    for flags in (["-j", "2"], ["--workers", "2"]):
        result = run_cli("--root", root, "convert", "hc18", *flags, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["skipped"] is True
    assert run_cli("--root", root, "convert", "hc18", "-j", "0").exit_code == 2  # the same range check


def _suite_file(tmp_path):
    path = tmp_path / "suite.toml"
    path.write_text('name = "conv"\nsteps = 1\nsheets = 1\nrobot_users = ["click_largest_center"]\n'
                    'metrics = ["dice"]\n[model]\nname = "region_growing"\n[[datasets]]\nid = "hc18"\n')
    return path


def test_verbose_adds_detail_everywhere(hc18, tmp_path):  # noqa: F811
    root = str(hc18["root"])
    suite = _suite_file(tmp_path)
    for args in (["list"], ["info", "hc18"], ["validate", "hc18"], ["qa", "hc18"], ["convert", "hc18"],
                 ["benchmark", str(suite), "--out", str(tmp_path / "b")]):
        plain = run_cli("--root", root, *args)
        verbose = run_cli("--root", root, *args, "-v")
        assert plain.exit_code == verbose.exit_code == 0, (args, plain.output, verbose.output)
        plain_lines, verbose_lines = plain.stdout.splitlines(), verbose.stdout.splitlines()
        assert set(plain_lines) - set(verbose_lines) <= {l for l in plain_lines if "(exact sizes" in l}, args
        assert len(verbose_lines) > len(plain_lines), args


def test_errors_are_json_with_json(hc18):  # noqa: F811
    result = run_cli("info", "hc81", "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)
    assert error["kind"] == "RegistryError" and error["exit_code"] == 1
    assert error["error"].startswith("unknown dataset 'hc81'; did you mean 'hc18'?")
    usage = run_cli("--json", "list", "--dimension", "4")
    assert usage.exit_code == 2 and json.loads(usage.stdout)["kind"] == "UsageError"
    missing = run_cli("--root", str(hc18["root"]), "validate", "isic2016_task1", "--json")
    assert missing.exit_code == 1 and "omnimedseg convert isic2016_task1" in json.loads(missing.stdout)["error"]


def test_did_you_mean_and_unknown_filter_values():
    assert "did you mean 'hc18'?" in run_cli("convert", "hc81").output
    modality = run_cli("list", "--modality", "foo")
    assert modality.exit_code == 2 and "no such modality 'foo'; known modalities: CT, dermoscopy" in modality.output
    assert "did you mean 'MRI'?" in run_cli("list", "--modality", "MRl").output
    assert "no such licence 'CC-BY-4'; did you mean 'CC-BY-4.0'" in run_cli("list", "--license", "CC-BY-4").output
    assert "did you mean 'zenodo'?" in run_cli("list", "--platform", "zenod").output
    assert run_cli("list", "--modality", "ct").exit_code == 0  # case-insensitive values are known values


def test_info_sizes_are_human_readable_with_a_total():
    data = json.loads(run_cli("info", "hc18", "--json").stdout)
    total = sum(f["size"] for f in data["files"])
    assert data["total_size"] == total and data["total_size_complete"] is True
    text = run_cli("info", "hc18").stdout
    assert f"files: {len(data['files'])}, {total / 2 ** 20:.1f} MiB in all" in text
    assert "training_set.zip  (126.8 MiB)" in text and "132926838" not in text
    assert "training_set.zip  (126.8 MiB)\n      size 132926838 B\n      md5 00eb8198" in run_cli("info", "hc18", "-v").stdout


def test_validate_and_qa_show_progress(hc18):  # noqa: F811
    root = str(hc18["root"])
    validate = run_cli("--root", root, "validate", "hc18")
    assert validate.exit_code == 0
    n_files = json.loads(run_cli("--root", root, "-q", "validate", "hc18", "--json").stdout)["checked_files"]
    assert f"validate hc18 1.0.0: started ({n_files} files)" in validate.stderr
    assert f"validate hc18 1.0.0: done ({n_files} files)" in validate.stderr
    qa = run_cli("--root", root, "qa", "hc18")
    assert qa.exit_code == 0
    assert "qa hc18: sampling cases: done (3 cases)" in qa.stderr and "qa hc18: drawing sheets: done (1 sheet)" in qa.stderr
    assert run_cli("--root", root, "-q", "qa", "hc18").stderr == ""


def test_resumed_benchmark_says_how_many_sessions_it_reused(hc18, tmp_path):  # noqa: F811
    root, out = str(hc18["root"]), tmp_path / "bench"
    first = run_cli("--root", root, "benchmark", str(_suite_file(tmp_path)), "--out", str(out))
    assert first.exit_code == 0 and "reused" not in first.stderr
    next(iter(sorted((out / "records").glob("*.json")))).unlink()
    again = run_cli("--root", root, "benchmark", str(_suite_file(tmp_path)), "--out", str(out))
    assert again.exit_code == 0 and f"resuming {out}: 2 of 3 session(s) reused" in again.stderr


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    """click turns Ctrl-C into its own Abort before our handler; it had printed "Aborted." with exit 1."""
    import omnimedseg.registry as registry
    from omnimedseg.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(registry, "load_registry", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        main(["list"])
    assert exit_info.value.code == 130
    assert "Interrupted; partial files were kept and a rerun resumes." in capsys.readouterr().err
