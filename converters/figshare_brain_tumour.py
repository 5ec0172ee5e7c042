"""Figshare brain tumour dataset (Jun Cheng): T1-CE MRI slices with tumour masks (registry/figshare_brain_tumour.toml).

Raw layout (figshare article 1512427; the four zips extract their ``N.mat`` files side by side)::

    1.mat ... 3064.mat   MATLAB v7.3 (HDF5), struct ``cjdata``: image (int16, 512x512 or 256x256),
                         label (1 meningioma, 2 glioma, 3 pituitary tumour), PID (char), tumorBorder,
                         tumorMask (0/1)
    cvind.mat            ``cvind``: the 5-fold cross-validation index (1..5) of image N at row N; also
                         MATLAB v7.3/HDF5 (public loaders open it with ``h5py.File``; its 5,736 B size fits a
                         compressed HDF5 file), read by the shared ``read_mat_array`` (v5 or v7.3)
    README 2024.txt

Sources: the catalogue (reference/datasets.md #47: v7.3/HDF5, field names, label codes, "transpose the
HDF5 arrays") and licences.md (file names, sizes, md5). Arrays are read in MATLAB's own index order by
the shared ``read_mat_image`` (h5py's transposed view of column-major data is undone), so PNG rows
are MATLAB rows, as ``imshow(cjdata.image)`` shows them; image and mask go through the same reader,
so they stay aligned whatever the display orientation. Public loaders of this dataset do the same
(``np.array(f['cjdata/image']).T`` "for correct orientation"); the orientation has not yet been checked on a
real file here (QA sheets of the generated layout only).

Classes: one per tumour type. Each slice holds one tumour and its type (``cjdata.label``); the masks
of the other two types are written empty. Users use the set both for type classification and
for tumour segmentation; per-type classes keep both uses (the union is the tumour mask) without
``cases()`` having to open the image files to learn the type. Splits: the authors' five folds
(``fold_1`` ... ``fold_5``), from ``cvind.mat``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterator

import numpy as np

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.volumes import read_mat_array, read_mat_image
from omnimedseg.errors import ConversionError

TUMOUR_TYPES = {"meningioma": 1, "glioma": 2, "pituitary_tumour": 3}
FOLDS = range(1, 6)


class FigshareBrainTumour(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        cvind_path = raw_dir / "cvind.mat"
        folds = np.asarray(read_mat_array(cvind_path, "cvind")).ravel()
        bad = sorted(set(folds.tolist()) - set(FOLDS))
        if bad:
            raise ConversionError(f"{cvind_path}: fold indices {bad[:5]}; expected 1..5 for every image")
        for n, fold in enumerate(folds.astype(int), start=1):
            mat = raw_dir / f"{n}.mat"
            yield Case(
                case_id=f"cheng_{n:04d}",
                image=Source(mat, partial(read_mat_image, variable="cjdata/image")),
                split=f"fold_{fold}",
                masks={name: Source(mat, partial(read_mat_image, variable="cjdata/tumorMask", binary=True,
                                                 only_if={"cjdata/label": code}))
                       for name, code in TUMOUR_TYPES.items()},
                metadata_sources=(cvind_path,),
            )
