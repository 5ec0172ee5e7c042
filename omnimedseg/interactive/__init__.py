"""Simulated annotators ("robot users") for interactive segmentation benchmarks.

Quick use::

    from omnimedseg.interactive import get_robot_user, make_rng
    user = get_robot_user("click_largest_center")
    rng = make_rng(seed=0, case_id="case_001", class_name="liver", step=0, user_name=user.name)
    click = user.next_prompt(label, prediction, rng)      # Click | None

Coordinates are array indices (``(row, col)``, ``(i, j, k)``); see ``docs/robot-users.md``.
"""

from omnimedseg.interactive.base import RobotUser
from omnimedseg.interactive.boxes import BoxUser
from omnimedseg.interactive.clicks import ClickUser
from omnimedseg.interactive.eligibility import Component, Eligibility, eligibility, find_components
from omnimedseg.interactive.polygons import PolygonUser
from omnimedseg.interactive.prompts import (
    Box,
    Click,
    NoInteraction,
    Polygon,
    Prompt,
    Scribble,
    index_to_xy,
    polygon_to_mask,
    xy_to_index,
)
from omnimedseg.interactive.scribbles import ScribbleUser
from omnimedseg.interactive.seeding import make_rng, seed_sequence, stable_hash
from omnimedseg.interactive.users import (
    StepRecord,
    get_robot_user,
    list_robot_users,
    register_robot_user,
    run_robot_session,
)

__all__ = [
    "RobotUser", "ClickUser", "ScribbleUser", "BoxUser", "PolygonUser",
    "Prompt", "Click", "Scribble", "Box", "Polygon", "NoInteraction",
    "Eligibility", "Component", "eligibility", "find_components",
    "make_rng", "seed_sequence", "stable_hash",
    "get_robot_user", "list_robot_users", "register_robot_user", "run_robot_session", "StepRecord",
    "index_to_xy", "xy_to_index", "polygon_to_mask",
]
