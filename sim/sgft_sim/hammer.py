"""Hammer: the Franka holds a hammer and drives a nail into a block by moving joints 2, 4 and 6.

The nail is a body on a vertical slide joint whose damping stands for the wood's resistance and whose friction
holds it against gravity, so it moves only when struck or pressed. Ranges of the paper's table 1 (nail position,
protrusion, damping, sizes, hammer mass) are in PARAM_RANGES. The end effector of this task is the hammer head's
striking point (the tool centre point a real setup would configure for the hammer).
"""

from __future__ import annotations

import numpy as np

from sgft_core.fr3 import joint_indices
from sgft_core.tasks import HAMMER
from sgft_sim.base_env import FrankaTaskEnv
from sgft_sim.push import table_xml

BLOCK_TOP = 0.10  # the wooden block's top face (m above the table)
NAIL_CONTACT_HALF = 0.015
NAIL_FRICTION = 3.0  # N: the wood's static grip; the nail moves only when pressed or struck harder than this


class HammerEnv(FrankaTaskEnv):
    task = HAMMER
    PARAM_RANGES = {
        "nail_x": (0.45, 0.60),
        "nail_protrusion": (0.03, 0.05),  # initial height of the head's underside above the block ("nail z")
        "nail_damping": (20.0, 60.0),  # N·s/m
        "nail_half_height": (0.03, 0.05),
        "nail_radius": (0.003, 0.006),
        "head_radius": (0.012, 0.020),
        "head_half_thickness": (0.003, 0.006),
        "hammer_mass": (0.3, 0.8),  # kg
    }
    NOMINAL_PARAMS = {
        "nail_x": 0.52, "nail_protrusion": 0.04, "nail_damping": 40.0, "nail_half_height": 0.04,
        "nail_radius": 0.0045, "head_radius": 0.016, "head_half_thickness": 0.0045, "hammer_mass": 0.5,
    }
    # relative to the nail: the head starts above it, a little behind or ahead
    EE_START_LOW = np.array([-0.06, 0.0, 0.10])
    EE_START_HIGH = np.array([0.02, 0.0, 0.18])
    FIXED_EE_START = np.array([-0.03, 0.0, 0.14])

    def __init__(self, proxy, seed: int | None = None, render_mode: str | None = None) -> None:
        super().__init__(proxy, seed=seed, render_mode=render_mode)
        m = self.model
        self._nail_body = m.body("nail").id
        self._nail_joint = m.joint("nail_slide").id
        self._nail_dof = m.jnt_dofadr[self._nail_joint]
        self._nail_qpos = m.jnt_qposadr[self._nail_joint]
        self._shaft, self._head = m.geom("nail_shaft").id, m.geom("nail_head").id
        self._contact = m.geom("nail_contact").id
        self._hammer_body = m.body("hammer").id
        self._hammer_mass0 = float(m.body_mass[self._hammer_body])
        self._hammer_inertia0 = m.body_inertia[self._hammer_body].copy()
        self._joint_ids = joint_indices(HAMMER.joint_names)
        self._goal_z = 0.0

    def _tool_xml(self) -> str:
        # handle along the gripper axis, a heavy box head at its end; ee = the head's striking face
        return ('<body name="hammer" pos="0 0 0.21" gravcomp="1">'
                '<geom name="handle" type="capsule" fromto="0 0 0 0 0 0.14" size="0.012" rgba=".55 .35 .2 1" '
                'contype="0" conaffinity="0" mass="0.05"/>'
                '<geom name="hammer_head" type="box" pos="0 0 0.16" size="0.025 0.025 0.02" rgba=".3 .3 .35 1" '
                'contype="3" conaffinity="3" mass="0.5"/>'
                '<site name="ee" pos="0 0 0.18" size="0.005"/></body>')

    def _world_xml(self) -> str:
        return table_xml(contype=2) + (
            f'<geom name="block" type="box" pos="0.52 0 {BLOCK_TOP / 2}" size="0.12 0.08 {BLOCK_TOP / 2}" '
            'rgba=".6 .45 .25 1" contype="2" conaffinity="2"/>'
            f'<body name="nail" pos="0.52 0 {BLOCK_TOP}" gravcomp="1">'
            f'<joint name="nail_slide" type="slide" axis="0 0 1" frictionloss="{NAIL_FRICTION}" range="0 0.1"/>'
            '<geom name="nail_shaft" type="cylinder" pos="0 0 -0.02" size="0.0045 0.04" rgba=".7 .7 .75 1" '
            'contype="0" conaffinity="0" mass="0.01"/>'
            # the head painted red, as one would mark it for a camera: grey, it looked like the hammer and the shaft
            '<geom name="nail_head" type="cylinder" pos="0 0 0.0045" size="0.016 0.0045" rgba=".85 .1 .1 1" '
            'contype="0" conaffinity="0" mass="0.005"/>'
            # what the hammer hits: a solid cylinder of the head's radius reaching 3 cm down from the head's top, so a
            # fast blow cannot tunnel through a 1 cm thin head (the nail does not collide with the block)
            f'<geom name="nail_contact" type="cylinder" pos="0 0 {-NAIL_CONTACT_HALF + 0.009}" '
            f'size="0.016 {NAIL_CONTACT_HALF}" group="3" contype="1" conaffinity="1" mass="0"/></body>')

    def _apply_params(self) -> None:
        m, p = self.model, self.params
        # geometry: the head sits on top of the shaft; the body origin is the head's underside
        m.geom_size[self._shaft, :2] = [p["nail_radius"], p["nail_half_height"]]
        m.geom_pos[self._shaft, 2] = -p["nail_half_height"]
        m.geom_size[self._head, :2] = [p["head_radius"], p["head_half_thickness"]]
        m.geom_pos[self._head, 2] = p["head_half_thickness"]
        m.geom_size[self._contact, 0] = p["head_radius"]
        m.geom_pos[self._contact, 2] = 2.0 * p["head_half_thickness"] - NAIL_CONTACT_HALF
        m.geom_rbound[self._contact] = float(np.hypot(p["head_radius"], NAIL_CONTACT_HALF))
        m.body_pos[self._nail_body] = [p["nail_x"], 0.0, BLOCK_TOP]
        m.dof_damping[self._nail_dof] = p["nail_damping"]
        self.data.qpos[self._nail_qpos] = p["nail_protrusion"]
        mass = p["hammer_mass"]
        m.body_mass[self._hammer_body] = mass
        m.body_inertia[self._hammer_body] = self._hammer_inertia0 * (mass / self._hammer_mass0)
        self._goal_z = BLOCK_TOP + 2.0 * p["head_half_thickness"]  # head top when the head rests on the block

    def _initial_ee(self, sampled: np.ndarray) -> np.ndarray:
        p = self.params
        nail_top = BLOCK_TOP + p["nail_protrusion"] + 2.0 * p["head_half_thickness"]
        return np.array([p["nail_x"], 0.0, nail_top]) + sampled

    def nail_z(self) -> float:
        """Height of the nail head's top face (the observation the reward uses)."""
        return float(self.data.xpos[self._nail_body][2] + 2.0 * self.params["head_half_thickness"])

    def object_position(self) -> np.ndarray:
        pos = self.data.xpos[self._nail_body].copy()
        pos[2] += 2.0 * self.params["head_half_thickness"]
        return pos

    def observation(self) -> np.ndarray:
        q, dq = self.arm.q()[self._joint_ids], self.arm.dq()[self._joint_ids]
        return np.concatenate([self.ee_position(), q, dq,
                               [self.nail_z(), self.params["nail_x"], self._goal_z]]).astype(np.float32)
