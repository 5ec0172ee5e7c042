"""Registry of named robot users and a minimal interaction loop.

Names are presets of four strategy-parametrised classes (no numbered classes)::

    click_{largest,random}_{center,boundary,random}       ClickUser(component, placement)
    scribble_{centerline,boundary,line}_{largest,random}  ScribbleUser(shape, component)
    box_{perfect,careful,sloppy}                          BoxUser(style)
    polygon                                               PolygonUser(n_vertices=20)
    click_ritm                                            RITM/SimpleClick/SAM parity preset

``get_robot_user(name, **params)`` overrides any preset parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from omnimedseg.errors import UsageError
from omnimedseg.interactive.base import RobotUser
from omnimedseg.interactive.boxes import BoxUser
from omnimedseg.interactive.clicks import ClickUser
from omnimedseg.interactive.eligibility import as_binary
from omnimedseg.interactive.polygons import PolygonUser
from omnimedseg.interactive.prompts import NoInteraction, Prompt
from omnimedseg.interactive.scribbles import ScribbleUser
from omnimedseg.interactive.seeding import make_rng

__all__ = ["get_robot_user", "list_robot_users", "register_robot_user", "StepRecord", "run_robot_session"]

_REGISTRY: dict[str, tuple[Callable[..., RobotUser], dict]] = {}


def register_robot_user(name: str, factory: Callable[..., RobotUser], **defaults) -> None:
    """Add a named preset; ``defaults`` are keyword arguments for ``factory``."""
    if not isinstance(name, str) or not name:
        raise UsageError(f"robot user name: expected a non-empty string, found {name!r}")
    if name in _REGISTRY:
        raise UsageError(f"robot user {name!r}: expected a new name, found it already registered")
    _REGISTRY[name] = (factory, dict(defaults))


def list_robot_users() -> list[str]:
    """Registered names, sorted."""
    return sorted(_REGISTRY)


def get_robot_user(name: str, **params) -> RobotUser:
    """A fresh user for a registered name; ``params`` override the preset's parameters."""
    if name not in _REGISTRY:
        raise UsageError(f"robot user: expected one of {', '.join(list_robot_users())}, found {name!r}")
    factory, defaults = _REGISTRY[name]
    return factory(**{**defaults, **params, "name": name})


for _comp in ("largest", "random"):
    for _place in ("center", "boundary", "random"):
        register_robot_user(f"click_{_comp}_{_place}", ClickUser, component=_comp, placement=_place)
for _shape in ("centerline", "boundary", "line"):
    for _comp in ("largest", "random"):
        register_robot_user(f"scribble_{_shape}_{_comp}", ScribbleUser, shape=_shape, component=_comp)
for _style in ("perfect", "careful", "sloppy"):
    register_robot_user(f"box_{_style}", BoxUser, style=_style)
register_robot_user("polygon", PolygonUser, n_vertices=20)
register_robot_user("click_ritm", ClickUser, component="deepest", placement="center", fn_fp_policy="largest_edt",
                    tie_break="first", edt_units="voxel", avoid_repeats=True)


@dataclass(frozen=True)
class StepRecord:
    """One step of a session: the prompt given (or NoInteraction) and the prediction after it."""

    step: int
    interaction: Prompt | NoInteraction
    prediction: np.ndarray


def run_robot_session(user: RobotUser, label, predict: Callable[[Sequence[Prompt], np.ndarray | None], np.ndarray],
                      n_steps: int, *, seed: int, case_id, class_name, spacing=None,
                      initial_user: RobotUser | None = None, ignore=None) -> list[StepRecord]:
    """Reference loop: step 0 prompts from M = label (``initial_user`` or ``user``), step t >= 1
    from (label, prediction_{t-1}); ``ignore`` pixels (unlabelled / outside the field of view) are
    never prompted. ``predict(prompts_so_far, previous_prediction)`` returns a
    bool mask. An empty M records :class:`NoInteraction`, does not call the model and carries
    the previous prediction forward, so every session has ``n_steps + 1`` records."""
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
        raise UsageError(f"n_steps: expected an int >= 0, found {n_steps!r}")
    label = np.asarray(label, dtype=bool)
    prompts: list[Prompt] = []
    records: list[StepRecord] = []
    prediction = np.zeros(label.shape, dtype=bool)
    for step in range(n_steps + 1):
        who = initial_user if (step == 0 and initial_user is not None) else user
        rng = make_rng(seed, case_id, class_name, step, who.name)
        prompt = who.next_prompt(label, None if step == 0 else prediction, rng, spacing=spacing, previous=prompts,
                                 ignore=ignore)
        if prompt is None:
            records.append(StepRecord(step, NoInteraction(), prediction))
            continue
        prompts.append(prompt)
        # a bool mask, or 0/1 numbers: NaN, probabilities or 0/255 are refused, never scored as "not 0"
        prediction = as_binary(predict(tuple(prompts), None if step == 0 else prediction), "predict",
                               ndim=(label.ndim,), shape=label.shape)
        records.append(StepRecord(step, prompt, prediction))
    return records
