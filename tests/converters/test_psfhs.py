from functools import partial

import numpy as np
import pytest

from omnimedseg.converters.formats.image2d import read_png_array
from omnimedseg.errors import ConversionError
from omnimedseg.testing import check_converter
from tests.converters.fake.psfhs import NAMES, SHAPE, label_map, make_remote_files


def test_psfhs_labels_and_channel_slices(tmp_path):
    out = check_converter("psfhs", make_remote_files, tmp_path, expected_splits={"train": 3})
    for index, name in enumerate(NAMES):
        labels = label_map(index)
        assert np.array_equal(read_png_array(out / "masks" / name / "pubic_symphysis.png"), labels == 1)
        assert np.array_equal(read_png_array(out / "masks" / name / "fetal_head.png"), labels == 2)
    grey, equal, colour = (read_png_array(out / "images" / f"{n}.png") for n in NAMES)
    assert grey.shape == SHAPE and equal.shape == SHAPE  # equal channels stored as slices -> one grey image
    assert colour.shape == SHAPE + (3,) and not np.array_equal(colour[..., 0], colour[..., 1])


def test_psfhs_swapped_label_values_fail_loudly(tmp_path):
    """1 = pubic symphysis, 2 = fetal head is secondary evidence: a release with them swapped must not convert."""
    with pytest.raises(ConversionError, match=r"label_mha/03744\.mha: label 1 covers \d+ pixels, more than label 2"):
        check_converter("psfhs", partial(make_remote_files, swap_labels=True), tmp_path, expected_splits={"train": 3})
