"""Plugin discovery: built-ins by name, third-party converters through entry points, scaffolding."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from omnimedseg.converters import Converter
from omnimedseg.errors import PluginError
from omnimedseg.plugins import available_plugins, load_plugin
from omnimedseg.registry import Card
from omnimedseg.registry.card import lint_card
from omnimedseg.testing import check_converter
from tests.helpers import install_fake_distribution, run_cli, write_card_variant


def test_builtin_converter_found_by_id():
    assert load_plugin("converters", "hc18", Converter).__name__ == "HC18"


def test_private_modules_and_unknown_names_are_not_plugins():
    with pytest.raises(PluginError, match="no converter named '_run'"):
        load_plugin("converters", "_run", Converter)
    with pytest.raises(PluginError, match=r"available: .*hc18"):
        load_plugin("converters", "nope", Converter)


POLYP_PLUGIN = '''
    from omnimedseg.converters import Case, Converter, Source
    from omnimedseg.converters.formats.image2d import read_binary_mask, read_image


    class PolypConverter(Converter):
        def cases(self, raw_dir):
            for image in sorted((raw_dir / "frames").glob("*.png")):
                yield Case(case_id=image.stem, image=Source(image, read_image), split="train",
                           masks={"polyp": Source(raw_dir / "labels" / image.name, read_binary_mask)})
'''


def _install_fake_distribution(site: Path, entry_point_line: str) -> None:
    install_fake_distribution(site, "thirdparty_polyps", POLYP_PLUGIN, "omnimedseg.converters", entry_point_line)


def _polyp_release(folder: Path) -> None:
    import zipfile

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    with zipfile.ZipFile(folder / "polyps.zip", "w") as zf:
        for i in range(3):
            frame = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
            label = np.zeros((20, 24), np.uint8)
            label[5:12, 6:15] = 255
            for sub, array in (("frames", frame), ("labels", label)):
                Image.fromarray(array).save(folder / "x.png")
                zf.write(folder / "x.png", f"{sub}/case{i}.png")
    (folder / "x.png").unlink()


def test_entry_point_converter_runs_through_the_real_pipeline(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _install_fake_distribution(site, "polyps_private = thirdparty_polyps:PolypConverter")
    monkeypatch.syspath_prepend(str(site))
    cards = tmp_path / "cards"
    write_card_variant(cards, "polyps_private", {'modality = "ultrasound"': 'modality = "endoscopy"',
                                                 '"fetal_head"': '"polyp"'},
                       '[[source.files]]\nname = "polyps.zip"\nextract = true\n')
    assert available_plugins("converters")["polyps_private"] == "thirdparty_polyps:PolypConverter"
    out = check_converter("polyps_private", _polyp_release, tmp_path, {"train": 3}, registry_dirs=(cards,))
    assert (out / "masks" / "case0" / "polyp.png").is_file()
    assert "polyps_private" in run_cli("--registry", cards, "list").output
    sys.modules.pop("thirdparty_polyps", None)


def test_broken_entry_point_is_reported_not_hidden(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _install_fake_distribution(site, "broken = thirdparty_polyps:DoesNotExist")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(PluginError, match="broken = thirdparty_polyps:DoesNotExist .* failed to load"):
        load_plugin("converters", "broken", Converter)
    sys.modules.pop("thirdparty_polyps", None)


def test_new_scaffolds_files_that_parse_and_are_flagged_until_done(tmp_path):
    result = run_cli("new", "my_polyps", "--dir", tmp_path)
    assert result.exit_code == 0, result.output
    card_path = tmp_path / "registry" / "my_polyps.toml"
    card = Card.from_toml(card_path)  # required fields present: the card loads
    problems = lint_card(card)
    assert any("TODO markers" in p for p in problems) and any("lacks size or hash" in p for p in problems)
    assert not any("medsegdb" in p for p in problems)  # every scaffolded class is accounted for
    assert (card.license.status, card.verified_on) == ("unverified", "generated-layout")
    assert card.license.source.startswith("TODO(my_polyps)") and card.license.needs_acceptance
    assert card.medsegdb_unmapped == {"todo_class": "TODO(my_polyps): map it under tasks, or say why MedSegDB "
                                                    "has no task for it"}
    from omnimedseg.data.medsegdb import LabelTree

    assert LabelTree.load().card_tasks(card) == {"todo_class": None}
    for rel in ("converters/my_polyps.py", "tests/converters/fake/my_polyps.py",
                "tests/converters/test_my_polyps.py"):
        assert "TODO(my_polyps)" in (tmp_path / rel).read_text()
    # the scaffolded converter and fake-data generator already work together
    fake = _load(tmp_path / "tests/converters/fake/my_polyps.py")
    converter_module = _load(tmp_path / "converters/my_polyps.py")
    remote = tmp_path / "remote"
    remote.mkdir()
    fake.make_remote_files(remote)
    import zipfile

    raw = tmp_path / "raw"
    zipfile.ZipFile(remote / "TODO(my_polyps).zip").extractall(raw)
    cases = list(converter_module.MyPolyps(card).cases(raw))
    assert [c.case_id for c in cases] == ["case_001", "case_002"]
    assert cases[0].masks["todo_class"].load().array.any()
    assert run_cli("new", "my_polyps", "--dir", tmp_path).exit_code == 2  # never overwrites
    assert run_cli("new", "Bad-Name", "--dir", tmp_path).exit_code == 2


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem + "_scaffold", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
