"""Insert: the Franka holds a table leg and inserts it into a hole of a part lying on the table.

The leg is rigidly held (a body inside the hand); the part is a plate with a square hole made of four walls, placed
at x/y ± 5 cm around its nominal pose and rotated 0–15° about z, with randomized friction (the paper's table 3).
The round leg fits a rotated square hole, so rotation changes where the walls are, not whether it fits.
"""

from __future__ import annotations

import math

import numpy as np

from sgft_core.tasks import INSERT
from sgft_sim.base_env import FrankaTaskEnv
from sgft_sim.push import table_xml

PART_X, PART_Y = 0.50, 0.0  # nominal hole centre
PLATE_TOP = 0.01  # the hole's floor: the leg tip's goal height
WALL_HEIGHT = 0.04
HOLE_HALF_WIDTH = 0.016  # 4 mm clearance around the 12 mm-radius leg
WALL_THICKNESS = 0.02
LEG_RADIUS = 0.012
LEG_LENGTH = 0.09  # from the fingertip to the leg's tip


def _part_xml() -> str:
    h, t, z = HOLE_HALF_WIDTH, WALL_THICKNESS, PLATE_TOP + WALL_HEIGHT / 2
    walls = [(h + t / 2, 0, t / 2, h + t), (-(h + t / 2), 0, t / 2, h + t), (0, h + t / 2, h, t / 2),
             (0, -(h + t / 2), h, t / 2)]
    geoms = "".join(
        f'<geom name="wall{i}" type="box" pos="{x} {y} {z}" size="{sx} {sy} {WALL_HEIGHT / 2}" '
        'rgba=".2 .45 .8 1" contype="1" conaffinity="1"/>' for i, (x, y, sx, sy) in enumerate(walls))
    plate = (f'<geom name="plate" type="box" pos="0 0 {PLATE_TOP / 2}" size="{h + t} {h + t} {PLATE_TOP / 2}" '
             'rgba=".2 .45 .8 1" contype="1" conaffinity="1"/>')
    return f'<body name="part" pos="{PART_X} {PART_Y} 0">{plate}{geoms}<site name="hole" pos="0 0 {PLATE_TOP}"/></body>'


class InsertEnv(FrankaTaskEnv):
    task = INSERT
    PARAM_RANGES = {"part_dx": (-0.05, 0.05), "part_dy": (-0.05, 0.05), "part_yaw_deg": (0.0, 15.0),
                    "friction": (0.3, 1.0)}
    NOMINAL_PARAMS = {"part_dx": 0.0, "part_dy": 0.0, "part_yaw_deg": 0.0, "friction": 0.6}
    # relative to the nominal hole: the leg starts above the part, somewhere over the randomized region
    EE_START_LOW = np.array([PART_X - 0.08, PART_Y - 0.08, 0.20])
    EE_START_HIGH = np.array([PART_X + 0.08, PART_Y + 0.08, 0.26])
    FIXED_EE_START = np.array([PART_X - 0.05, PART_Y + 0.05, 0.22])

    def __init__(self, proxy, seed: int | None = None, render_mode: str | None = None) -> None:
        super().__init__(proxy, seed=seed, render_mode=render_mode)
        m = self.model
        self._part = m.body("part").id
        self._part_geoms = [m.geom(n).id for n in ("plate", "wall0", "wall1", "wall2", "wall3")]
        self._hole = m.site("hole").id
        self._leg_tip = m.site("leg_tip").id

    def _tool_xml(self) -> str:
        return (f'<geom name="leg" type="capsule" fromto="0 0 0.19 0 0 {0.21 + LEG_LENGTH - LEG_RADIUS}" '
                f'size="{LEG_RADIUS}" rgba=".85 .75 .55 1" contype="1" conaffinity="1" mass="0"/>'
                f'<site name="leg_tip" pos="0 0 {0.21 + LEG_LENGTH}" size="0.004"/>'
                '<site name="ee" pos="0 0 0.21" size="0.005"/>')

    def _world_xml(self) -> str:
        return table_xml(contype=1) + _part_xml()

    def _apply_params(self) -> None:
        m, p = self.model, self.params
        m.body_pos[self._part] = [PART_X + p["part_dx"], PART_Y + p["part_dy"], 0.0]
        yaw = math.radians(p["part_yaw_deg"])
        m.body_quat[self._part] = [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]
        friction = p["friction"] * self.proxy.object_friction_scale
        m.geom_friction[self._part_geoms, 0] = friction

    def hole_position(self) -> np.ndarray:
        return self.data.site_xpos[self._hole].copy()

    def object_position(self) -> np.ndarray:
        """The leg's tip (what is inserted)."""
        return self.data.site_xpos[self._leg_tip].copy()

    def observation(self) -> np.ndarray:
        return np.concatenate([self.ee_position(), self.object_position(), self.hole_position()]).astype(np.float32)
