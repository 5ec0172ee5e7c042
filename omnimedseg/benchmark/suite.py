"""Benchmark suites: which model x datasets x robot users x metrics, declared in TOML.

A suite is data (``benchmarks/*.toml``), validated on load with errors that name the
file and field. See docs/benchmark.md for every field.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from omnimedseg.errors import UsageError

MODES = ("image", "slices")


@dataclass(frozen=True)
class DatasetSelection:
    id: str
    split: str | None = None
    max_cases: int | None = None
    mode: str = "image"  # whole 2D images / 3D volumes, or 2D slices of 3D volumes
    axis: int = 2
    classes: tuple[str, ...] = ()  # empty = every class of the card


def selection_labels(selections: tuple[DatasetSelection, ...]) -> dict[DatasetSelection, str]:
    """The name each selection's results are reported under: its dataset id, unless the suite selects that
    dataset more than once (whole volumes and slices, two axes, two splits); then what tells them apart."""
    index = {s: i for i, s in enumerate(selections)}

    def describe(s: DatasetSelection, detail: int) -> str:
        """More detail, step by step: the id; + mode/axis; + split; + the selection's position."""
        parts = [s.id] + ([f"slices_axis{s.axis}" if s.mode == "slices" else "whole"] if detail else [])
        return "_".join(parts + ([s.split or "all"] if detail > 1 else []) + ([str(index[s])] if detail > 2 else []))
    labels = {}
    for s in selections:
        for detail in range(4):
            label = describe(s, detail)
            if sum(describe(o, detail) == label for o in selections) == 1:
                break
        labels[s] = label
    return labels


@dataclass(frozen=True)
class MetricSpec:
    name: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    name: str
    model: str
    model_params: dict
    datasets: tuple[DatasetSelection, ...]
    robot_users: tuple[str, ...]
    metrics: tuple[MetricSpec, ...]
    steps: int = 5
    seed: int = 0
    initial_user: str | None = None
    include_step0: bool = True
    sheets: int = 1  # contact sheets of simulated interactions: cases per dataset
    description: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def config_hash(self) -> str:
        """Identifies results: a rerun into the same folder resumes only with the same configuration."""
        relevant = {k: v for k, v in self.to_dict().items() if k not in ("description", "sheets")}
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]

    def on_datasets(self, dataset_ids) -> "Suite":
        """This suite run on other datasets (``benchmark --dataset``): the first selection's ``max_cases`` and
        ``mode``, every split and class; named after them so its results never mix with the original's."""
        from dataclasses import replace

        first = self.datasets[0]
        selections = tuple(DatasetSelection(id=i, max_cases=first.max_cases, mode=first.mode, axis=first.axis)
                           for i in dataset_ids)
        return replace(self, name=f"{self.name}_on_{'_'.join(dataset_ids)}", datasets=selections)

    @classmethod
    def from_toml(cls, path: Path) -> "Suite":
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"suite file {path} not found; suites live in benchmarks/*.toml") from None
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{path}: not valid TOML ({exc})") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: dict, where: str = "suite") -> "Suite":
        def need(table: dict, key: str, kind, prefix=""):
            if key not in table:
                raise UsageError(f"{where}: missing required field '{prefix}{key}'")
            if not isinstance(table[key], kind) or isinstance(table[key], bool) and kind is int:
                raise UsageError(f"{where}: field '{prefix}{key}': expected {kind.__name__}, "
                                 f"found {table[key]!r}")
            return table[key]

        model = need(data, "model", dict)
        datasets = []
        for i, d in enumerate(need(data, "datasets", list)):
            prefix = f"datasets[{i}]."
            mode = d.get("mode", "image")
            if mode not in MODES:
                raise UsageError(f"{where}: field '{prefix}mode': expected one of {', '.join(MODES)}, found {mode!r}")
            datasets.append(DatasetSelection(id=need(d, "id", str, prefix), split=d.get("split"),
                                             max_cases=d.get("max_cases"), mode=mode, axis=int(d.get("axis", 2)),
                                             classes=tuple(d.get("classes", ()))))
        metrics = []
        for i, m in enumerate(need(data, "metrics", list)):
            if isinstance(m, str):
                m = {"name": m}
            params = {k: v for k, v in m.items() if k != "name"}
            metrics.append(MetricSpec(need(m, "name", str, f"metrics[{i}]."), params))
        steps = int(data.get("steps", 5))
        if steps < 0:
            raise UsageError(f"{where}: field 'steps': expected >= 0 (0 = one non-iterative interaction), "
                             f"found {steps}")
        suite = cls(name=need(data, "name", str), model=need(model, "name", str, "model."),
                    model_params=dict(model.get("params", {})), datasets=tuple(datasets),
                    robot_users=tuple(need(data, "robot_users", list)), metrics=tuple(metrics), steps=steps,
                    seed=int(data.get("seed", 0)), initial_user=data.get("initial_user"),
                    include_step0=bool(data.get("include_step0", True)), sheets=int(data.get("sheets", 1)),
                    description=str(data.get("description", "")))
        suite.check()
        return suite

    def check(self) -> None:
        """Resolve every name now, so a typo fails before hours of computation."""
        from omnimedseg.benchmark.models import get_model
        from omnimedseg.interactive import get_robot_user
        from omnimedseg.metrics import get_metric

        for user in self.robot_users + ((self.initial_user,) if self.initial_user else ()):
            get_robot_user(user)
        for spec in self.metrics:
            get_metric(spec.name, **spec.params)
        get_model(self.model, **self.model_params)
        if not self.datasets or not self.robot_users or not self.metrics:
            raise UsageError(f"suite {self.name}: needs at least one dataset, robot user and metric")
