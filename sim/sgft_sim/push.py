"""Push: a vertical finger on the Franka pushes a puck along the table to x = 55 cm.

Deviation from the paper's table: the paper randomizes the puck's x over a 30 cm range; with the goal at 55 cm in
the robot base frame and a vertical tool at table height, the FR3 cannot reach behind a puck closer than ≈31 cm
(joint 4 hits its limit), so the puck starts in x ∈ [0.35, 0.50] m, y ∈ [−0.25, 0.25] m.
"""

from __future__ import annotations

import numpy as np

from sgft_core.tasks import PUSH, PUSH_TABLE_X, PUSH_TABLE_Y
from sgft_sim.base_env import TABLE_HALF_THICKNESS, FrankaTaskEnv
from sgft_sim.proxies import ProxyConfig

PUCK_RADIUS = 0.025
PUCK_HALF_HEIGHT = 0.015
PUCK_RGBA = "1.0 0.35 0.0 1"  # saturated orange: hue ≈ 20°, found by an HSV threshold; the scene has no other
TOOL_RADIUS = 0.01  # finger radius + puck radius = PUSH_EE_OFFSET (3.5 cm)
GRAVITY = 9.81
# The puck slides on the table through planar joints (x, y, yaw) with Coulomb friction μ·m·g as joint frictionloss,
# instead of a free body in contact with the table: a stiff arm pushing a light free puck drives it into the table
# (soft contacts) and the finger then rides over it; the planar model is exact for a puck that stays flat and needs
# no table contacts at all, which also makes the step cheaper. Contact groups: finger/puck = 1, table = 2.

# The deformable proxy's soft puck (never seen in training): a lumped-mass soft body of the rigid puck's size and
# color. A core slides on the same planar joints; SOFT_SEGMENTS segments around it each sit on a radial slide joint
# with a spring and a damper, so the finger first dents the near side (up to SOFT_MAX_DENT) and the body then moves
# with a lag, rebounds and rotates when pushed off-centre. Why not MuJoCo flex: at this model's 4 ms step a 3-D flex
# (trilinear or radial dofs, elasticity or edge constraints) either exploded for a foam-like stiffness or sagged and
# spread under gravity when soft enough to be stable, and cost 3-15× the whole control step; this body costs
# SOFT_SEGMENTS extra dofs and no table contacts. Segments collide with the finger only (contype 4 ⊄ conaffinity 1
# of each other and the core).
SOFT_SEGMENTS = 8
SOFT_CORE_RADIUS = 0.012
SOFT_SEGMENT_RADIUS = 0.008  # segment centres rest at PUCK_RADIUS − this, so the outer edge matches the rigid puck
SOFT_MAX_DENT = 0.012  # how far a segment can be pushed in before it meets the core
SOFT_STIFFNESS = 30.0  # N/m per segment: 0.15 N dents it by 5 mm (the real puck slides at ~0.06 N)
SOFT_DAMPING = 1.0  # N·s/m per segment: a rebound that dies out within a control period
SOFT_CORE_MASS_FRACTION = 0.4


def table_xml(contype: int = 2) -> str:
    cx, cy = 0.5 * (PUSH_TABLE_X[0] + PUSH_TABLE_X[1]), 0.5 * (PUSH_TABLE_Y[0] + PUSH_TABLE_Y[1])
    hx, hy = 0.5 * (PUSH_TABLE_X[1] - PUSH_TABLE_X[0]), 0.5 * (PUSH_TABLE_Y[1] - PUSH_TABLE_Y[0])
    return (f'<geom name="table" type="box" pos="{cx} {cy} {-TABLE_HALF_THICKNESS}" '
            f'size="{hx} {hy} {TABLE_HALF_THICKNESS}" material="table_mat" '
            f'contype="{contype}" conaffinity="{contype}"/>'
            '<geom name="floor" type="plane" pos="0 0 -0.75" size="3 3 0.1" rgba=".3 .3 .32 1"/>')


class PushEnv(FrankaTaskEnv):
    task = PUSH
    PARAM_RANGES = {"puck_x": (0.35, 0.50), "puck_y": (-0.25, 0.25)}
    NOMINAL_PARAMS = {"puck_x": 0.40, "puck_y": 0.0, "puck_mass": 0.2, "puck_friction": 0.4}
    EE_START_LOW = np.array([0.28, -0.10, PUSH.ee_height])
    EE_START_HIGH = np.array([0.31, 0.10, PUSH.ee_height])
    FIXED_EE_START = np.array([0.30, 0.0, PUSH.ee_height])

    def __init__(self, proxy: ProxyConfig, seed: int | None = None, render_mode: str | None = None) -> None:
        super().__init__(proxy, seed=seed, render_mode=render_mode)
        self._puck_geom = self.model.geom("puck").id
        self._puck_body = self.model.body("puck").id
        self._puck_joints = [self.model.joint(n).id for n in ("puck_x", "puck_y", "puck_yaw")]
        # the bodies that carry mass (rigid puck: one; soft puck: core + segments) and their mass shares
        self._segment_bodies = np.array([self.model.body(f"soft_segment{i}").id for i in range(SOFT_SEGMENTS)]
                                        if proxy.deformable else [], dtype=int)
        self._mass_bodies = np.concatenate([[self._puck_body], self._segment_bodies]).astype(int)
        # inertia scales with mass for a fixed shape; keep the compiled values to scale from
        self._mass0 = self.model.body_mass[self._mass_bodies].copy()
        self._inertia0 = self.model.body_inertia[self._mass_bodies].copy()

    def _tool_xml(self) -> str:
        return (f'<geom name="finger" type="capsule" fromto="0 0 0.15 0 0 0.21" size="{TOOL_RADIUS}" '
                'rgba=".15 .15 .15 1" friction="0.1 0.005 0.0001" contype="1" conaffinity="1" mass="0"/>'
                '<site name="ee" pos="0 0 0.21" size="0.005"/>')

    def _world_xml(self) -> str:
        return table_xml() + self._object_xml()

    def _object_xml(self) -> str:
        if self.proxy.deformable:
            return self._soft_puck_xml()
        return (f'<body name="puck" pos="0 0 {PUCK_HALF_HEIGHT}">'
                '<joint name="puck_x" type="slide" axis="1 0 0" damping="0.01"/>'
                '<joint name="puck_y" type="slide" axis="0 1 0" damping="0.01"/>'
                '<joint name="puck_yaw" type="hinge" axis="0 0 1" damping="0.0001"/>'
                f'<geom name="puck" type="cylinder" size="{PUCK_RADIUS} {PUCK_HALF_HEIGHT}" rgba="{PUCK_RGBA}" '
                'friction="0.3 0.005 0.0001" contype="1" conaffinity="1"/></body>')

    def _soft_puck_xml(self) -> str:
        """Core on planar joints + SOFT_SEGMENTS spring-loaded radial segments (see SOFT_SEGMENTS above)."""
        segment_mass = (1.0 - SOFT_CORE_MASS_FRACTION) * self.NOMINAL_PARAMS["puck_mass"] / SOFT_SEGMENTS
        rest = PUCK_RADIUS - SOFT_SEGMENT_RADIUS
        segments = []
        for i in range(SOFT_SEGMENTS):
            angle = 2.0 * np.pi * i / SOFT_SEGMENTS
            c, s = np.cos(angle), np.sin(angle)
            segments.append(
                f'<body name="soft_segment{i}" pos="{rest * c:.6f} {rest * s:.6f} 0">'
                f'<joint name="soft_radial{i}" type="slide" axis="{c:.6f} {s:.6f} 0" stiffness="{SOFT_STIFFNESS}" '
                f'damping="{SOFT_DAMPING}" range="{-SOFT_MAX_DENT} 0.004" armature="0.001"/>'
                f'<geom name="soft_segment{i}" type="cylinder" size="{SOFT_SEGMENT_RADIUS} {PUCK_HALF_HEIGHT}" '
                f'rgba="{PUCK_RGBA}" friction="0.6 0.005 0.0001" contype="4" conaffinity="1" '
                f'mass="{segment_mass:.6f}"/></body>')
        core_mass = SOFT_CORE_MASS_FRACTION * self.NOMINAL_PARAMS["puck_mass"]
        return (f'<body name="puck" pos="0 0 {PUCK_HALF_HEIGHT}">'
                '<joint name="puck_x" type="slide" axis="1 0 0" damping="0.01"/>'
                '<joint name="puck_y" type="slide" axis="0 1 0" damping="0.01"/>'
                '<joint name="puck_yaw" type="hinge" axis="0 0 1" damping="0.0001"/>'
                f'<geom name="puck" type="cylinder" size="{SOFT_CORE_RADIUS} {PUCK_HALF_HEIGHT}" rgba="{PUCK_RGBA}" '
                f'friction="0.6 0.005 0.0001" contype="4" conaffinity="1" mass="{core_mass:.6f}"/>'
                + "".join(segments) + '</body>')

    def _apply_params(self) -> None:
        p = self.params
        mass = p["puck_mass"] * self.proxy.object_mass_scale
        # every mass-carrying body keeps its share of the total; inertia scales with mass for a fixed shape
        scale = mass / float(self._mass0.sum())
        self.model.body_mass[self._mass_bodies] = mass * (self._mass0 / self._mass0.sum())
        self.model.body_inertia[self._mass_bodies] = self._inertia0 * scale
        friction = p["puck_friction"] * self.proxy.object_friction_scale
        jx, jy, jyaw = self._puck_joints
        dofs = self.model.jnt_dofadr[[jx, jy, jyaw]]
        self.model.dof_frictionloss[dofs[:2]] = friction * mass * GRAVITY
        # torsional friction of a flat disc on a table: (2/3)·μ·m·g·R
        self.model.dof_frictionloss[dofs[2]] = friction * mass * GRAVITY * PUCK_RADIUS * 2.0 / 3.0
        self.data.qpos[self.model.jnt_qposadr[jx]] = p["puck_x"]
        self.data.qpos[self.model.jnt_qposadr[jy]] = p["puck_y"]

    def object_position(self) -> np.ndarray:
        """The puck's centre; for the soft puck the centroid of its segments (what a camera sees of its outline)."""
        if self._segment_bodies.size:
            return self.data.xpos[self._segment_bodies].mean(axis=0)
        return self.data.xpos[self._puck_body].copy()

    def observation(self) -> np.ndarray:
        ee, puck = self.ee_position(), self.object_position()
        return np.array([ee[0], ee[1], puck[0], puck[1]], dtype=np.float32)
