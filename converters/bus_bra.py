"""BUS-BRA breast ultrasound (registry/bus_bra.toml).

Raw layout (``BUSBRA.zip`` extracted by the core; github.com/wgomezf/BUS-BRA and public loaders)::

    BUSBRA/Images/bus_0001-l.png        8-bit greyscale B-mode image (-l / -r: the breast side)
    BUSBRA/Masks/mask_0001-l.png        0/255 lesion mask
    BUSBRA/bus_data.csv                 ID, Case (patient), Histology, Pathology, BIRADS, Device, ...
    BUSBRA/5-fold-cv.csv                ID, Pathology, kFold (official patient-level folds 1..5)

Every row of ``bus_data.csv`` is a case (the core reports rows whose files are absent);
its fold from ``5-fold-cv.csv`` is the split ``fold_<k>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from omnimedseg.converters import Case, Converter, Source
from omnimedseg.converters.formats.image2d import read_binary_mask, read_image
from omnimedseg.converters.formats.tables import read_table
from omnimedseg.errors import ConversionError


class BusBra(Converter):
    def cases(self, raw_dir: Path) -> Iterator[Case]:
        root = raw_dir / "BUSBRA"
        data_csv, folds_csv = root / "bus_data.csv", root / "5-fold-cv.csv"
        folds = {row["ID"]: row["kFold"] for row in read_table(folds_csv, ("ID", "kFold"), dataset=self.card.id)}
        for row in read_table(data_csv, ("ID", "Case", "Pathology"), dataset=self.card.id):
            image_id = row["ID"]
            if not image_id or not image_id.startswith("bus_"):
                raise ConversionError(f"{data_csv}: ID {image_id!r}; expected names like 'bus_0001-l'")
            fold = folds.get(image_id)
            if fold not in {"1", "2", "3", "4", "5"}:
                raise ConversionError(f"{folds_csv}: fold {fold!r} for {image_id}; expected one row per image "
                                      f"with kFold 1..5")
            yield Case(
                case_id=image_id,
                image=Source(root / "Images" / f"{image_id}.png", read_image),
                split=f"fold_{fold}",
                masks={"lesion": Source(root / "Masks" / f"mask_{image_id[len('bus_'):]}.png", read_binary_mask)},
                meta={"patient": row["Case"], "pathology": row["Pathology"],
                      **{key.lower(): row[key] for key in ("BIRADS", "Device", "Histology") if row.get(key)}},
                metadata_sources=(data_csv, folds_csv),
            )
