"""The simulated Franka arm: MJCF assembly, joint-space impedance control and differential IK.

Model: the Panda MJCF with meshes that ships inside `gymnasium_robotics` (kitchen_franka assets), read from the
installed package at run time. The FR3 has the Panda's link lengths (DH parameters) and nearly its joint limits, so
for 5 Hz end-effector control the difference does not matter; joints and links are renamed to franka_ros2's FR3
names (`fr3_joint1..7`, `fr3_link0..7`) so the ROS side speaks the real robot's vocabulary.

Speed choices (the pretraining loop needs a control step in a few milliseconds): the link meshes are visual only
(collisions off, their masses kept), the fingers are welded shut (no finger joints), the task adds one primitive
collision shape as its tool, gravity is compensated in the bodies (`gravcomp`, what libfranka's model does for the
real arm), and the 7 joints are driven by MuJoCo position actuators with damping (a joint impedance: stiffness kp,
damping kv) evaluated in C inside `mj_step(nstep=...)`, so Python touches the physics a few times per control step.

Cartesian targets are tracked by solving damped-least-squares IK (position + "gripper points down" orientation, a
posture bias in the null space) on a scratch MjData once per target change and feeding the joint impedance, which
the arm follows compliantly: a heavy puck makes the end effector lag, as a Cartesian impedance controller does.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import cv2
import mujoco
import numpy as np

from sgft_core.fr3 import JOINT_HIGH, JOINT_LOW, JOINT_NAMES, MJCF_JOINT_ZERO_OFFSET

# The FR3's joint limits in this MJCF's readings: it measures joint 6 from a zero rotated by −π/2 with respect to
# Franka's convention, so FR3's [0.5445, 4.5169] becomes [−1.0263, 2.9461].
FR3_JOINT_LIMITS = tuple(zip((JOINT_LOW - MJCF_JOINT_ZERO_OFFSET).tolist(),
                             (JOINT_HIGH - MJCF_JOINT_ZERO_OFFSET).tolist(), strict=True))
# A comfortable "elbow up, gripper down" posture, used as IK seed and null-space bias.
HOME_Q = np.array([0.0, 0.3, 0.0, -2.2, 0.0, 0.9, 0.785])
# The envs (and so the policies trained in them) use this MJCF's joint readings; the simulated robot node publishes
# and accepts the FR3's, as franka_ros2 does: FR3 reading = MJCF reading + MJCF_JOINT_ZERO_OFFSET.


# The calibration target: an ArUco marker (DICT_4X4_50, id 0) on a bracket in front of the hand, tilted 45° so that
# with the gripper pointing down it faces forward and up, towards the cameras in front of the table (≈30-45° off
# the line of sight of camera1 and camera2 over the push workspace). Its frame (body "aruco_marker", in fr3_link7):
# origin at the marker's centre on its black surface, x to the right and y up in the marker image, z out of the
# marker: the convention of cv2.aruco's pose estimate, so the detected pose and this body's pose are the same frame.
# Black and white, so it never passes an HSV threshold for a colored object.
ARUCO_DICTIONARY = "DICT_4X4_50"
ARUCO_ID = 0
MARKER_LENGTH = 0.08  # m, outer edge of the black border (what the detector's corners span)
MARKER_QUIET_CELLS = 1  # white margin around the black border, in cells
# on a bracket 9 cm in front of the hand (base +x with the gripper down), between flange and fingers
MARKER_POS_LINK7 = (0.0, -0.09, 0.125)
MARKER_XYAXES_LINK7 = "1 0 0 0 -0.707107 0.707107"  # marker z = link7 (0, −√½, −√½): base (√½, 0, √½) gripper down
# Marker geoms are their own render group: the point clouds leave them out with the arm's meshes (see camera.py),
# the color images show them.
MARKER_GROUP = 2


def aruco_dictionary() -> cv2.aruco.Dictionary:
    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, ARUCO_DICTIONARY))


def _marker_xml() -> str:
    """The marker as flat boxes on a white plate: black cells from cv2.aruco's own bit pattern, their top surface at
    the body's z = 0. Geometry rather than a texture: crisp edges at any distance and no texture file to write."""
    bits = cv2.aruco.generateImageMarker(aruco_dictionary(), ARUCO_ID, 6) < 128  # 6 × 6 cells, True = black
    cells = bits.shape[0]
    cell = MARKER_LENGTH / cells
    half_plate = 0.5 * MARKER_LENGTH + MARKER_QUIET_CELLS * cell
    common = f'contype="0" conaffinity="0" group="{MARKER_GROUP}" mass="0"'
    geoms = [f'<geom name="aruco_plate" type="box" pos="0 0 -0.0022" size="{half_plate} {half_plate} 0.002" '
             f'material="aruco_white" {common}/>']
    for row in range(cells):
        col = 0
        while col < cells:  # one box per run of black cells in a row
            if not bits[row, col]:
                col += 1
                continue
            end = col
            while end + 1 < cells and bits[row, end + 1]:
                end += 1
            x = (0.5 * (col + end + 1) - 0.5 * cells) * cell  # image column → marker x (right)
            y = (0.5 * cells - (row + 0.5)) * cell  # image row → marker y (up)
            geoms.append(f'<geom type="box" pos="{x:.6f} {y:.6f} -0.0005" size="{0.5 * (end + 1 - col) * cell:.6f} '
                         f'{0.5 * cell:.6f} 0.0005" material="aruco_black" {common}/>')
            col = end + 1
    bracket = (f'<geom name="aruco_bracket" type="box" pos="0 -0.02 -0.02" size="0.01 0.02 0.015" '
               f'rgba=".3 .3 .3 1" {common}/>')
    return (f'<body name="aruco_marker" pos="{" ".join(map(str, MARKER_POS_LINK7))}" xyaxes="{MARKER_XYAXES_LINK7}">'
            + bracket + "".join(geoms) + "</body>")


def franka_assets_dir() -> str:
    """The folder of the Panda MJCF inside the installed gymnasium_robotics package."""
    import gymnasium_robotics  # imported lazily: it prints a deprecation note on import

    return os.path.join(os.path.dirname(gymnasium_robotics.__file__), "envs", "assets", "kitchen_franka",
                        "franka_assets")


def _panda_chain(tool_xml: str) -> str:
    """The arm's body tree, renamed to FR3 names, without finger joints, with `tool_xml` inside link 7."""
    with open(os.path.join(franka_assets_dir(), "chain.xml")) as f:
        chain = f.read()
    chain = re.sub(r"<!--.*?-->", "", chain, flags=re.S)
    chain = chain.replace("<mujocoinclude>", "").replace("</mujocoinclude>", "")
    chain = re.sub(r"<joint name=\"robot:panda0_finger_joint\d\"[^>]*/>", "", chain)
    chain = chain.replace("robot:panda0_joint", "fr3_joint").replace("panda0_link", "fr3_link")
    chain = chain.replace("panda0_leftfinger", "fr3_leftfinger").replace("panda0_rightfinger", "fr3_rightfinger")
    # finger pads are visual only; the task's tool is what touches things
    chain = re.sub(r"<geom size=[^>]*type=\"(capsule|box)\"[^>]*/>", "", chain)
    for i, (low, high) in enumerate(FR3_JOINT_LIMITS, start=1):
        chain = re.sub(rf"(<joint name=\"fr3_joint{i}\" range=)\"[^\"]*\"", rf'\1"{low} {high}"', chain)
    chain = re.sub(r"(<body name=\"fr3_[^\"]*\")", r'\1 gravcomp="1"', chain)
    chain = chain.replace("<site name='end_effector'", tool_xml + _marker_xml() + "<site name='flange_tcp'")
    return chain


def _panda_defaults() -> str:
    return """
    <default>
      <default class="panda">
        <joint pos="0 0 0" axis="0 0 1" limited="true" damping="0" armature="0.1"/>
        <default class="panda_viz"><geom contype="0" conaffinity="0" group="1" type="mesh" rgba=".93 .93 .93 1"
          mass="0"/></default>
        <default class="panda_col"><geom contype="0" conaffinity="0" group="3" type="mesh"/></default>
        <default class="panda_arm"><joint/></default>
        <default class="panda_forearm"><joint/></default>
        <default class="panda_finger"><geom contype="0" conaffinity="0" group="1" rgba=".25 .25 .25 1"/></default>
      </default>
    </default>"""


def _panda_mesh_assets() -> str:
    names = ["link0", "link1", "link2", "link3", "link4", "link5", "link6", "link7", "hand"]
    lines = [f'<mesh name="{n}_col" file="collision/{n}.stl"/>' for n in names]
    lines += [f'<mesh name="{n}_viz" file="visual/{n}.stl"/>' for n in names]
    lines.append('<mesh name="finger_viz" file="collision/finger.stl" scale="1.75 1.0 1.75"/>')
    return "\n".join(lines)


def build_model_xml(tool_xml: str, world_xml: str, asset_xml: str = "", timestep: float = 0.004) -> str:
    """A complete MJCF: robot base at the world origin (world frame = robot base frame), the task's world bodies."""
    meshdir = os.path.join(franka_assets_dir(), "meshes")
    actuators = "\n".join(
        f'<position name="act_{j}" joint="{j}" kp="1" kv="0.1" ctrllimited="false"/>' for j in JOINT_NAMES
    )
    return f"""
<mujoco model="sgft_fr3">
  <compiler angle="radian" meshdir="{meshdir}"/>
  <option timestep="{timestep}" integrator="implicitfast"/>
  <visual><global offwidth="1280" offheight="960"/><quality shadowsize="0"/></visual>
  {_panda_defaults()}
  <asset>
    {_panda_mesh_assets()}
    <texture name="grid" type="2d" builtin="checker" rgb1=".45 .42 .38" rgb2=".4 .37 .33" width="256" height="256"/>
    <material name="table_mat" texture="grid" texrepeat="8 8"/>
    <material name="aruco_white" rgba=".92 .92 .92 1" specular="0" shininess="0"/>
    <material name="aruco_black" rgba=".03 .03 .03 1" specular="0" shininess="0"/>
    {asset_xml}
  </asset>
  <worldbody>
    <light pos="0.4 0 2.0" dir="0 0 -1" diffuse=".8 .8 .8"/>
    <light pos="1.5 1.0 1.5" dir="-1 -0.7 -1" diffuse=".4 .4 .4"/>
    {_panda_chain(tool_xml)}
    {world_xml}
  </worldbody>
  <actuator>{actuators}</actuator>
</mujoco>"""


@dataclass
class ImpedanceGains:
    """Joint impedance per joint group: stiffness (N·m/rad) and damping (N·m·s/rad), shoulder (1-4) / wrist (5-7)."""

    kp_shoulder: float = 600.0
    kp_wrist: float = 150.0
    damping_ratio: float = 1.0

    def vectors(self, model: mujoco.MjModel, dof_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kp = np.array([self.kp_shoulder] * 4 + [self.kp_wrist] * 3)
        # critical damping for the joint's own armature+link inertia is roughly 2·sqrt(kp·I); I from the model's
        # diagonal at the home pose is good enough for "well damped, no oscillation".
        inertia = np.maximum(model.dof_armature[dof_ids] + 0.3, 0.1)
        kv = 2.0 * self.damping_ratio * np.sqrt(kp * inertia)
        return kp, kv


class FrankaArm:
    """Joint-impedance actuation, state readout and IK of the 7 arm joints of a model built by build_model_xml."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, ee_site: str) -> None:
        self.model, self.data = model, data
        self.joint_ids = np.array([model.joint(n).id for n in JOINT_NAMES])
        self.qpos_ids = model.jnt_qposadr[self.joint_ids]
        self.dof_ids = model.jnt_dofadr[self.joint_ids]
        self.actuator_ids = np.array([model.actuator(f"act_{n}").id for n in JOINT_NAMES])
        self.ee_site = model.site(ee_site).id
        self.joint_low = model.jnt_range[self.joint_ids, 0].copy()
        self.joint_high = model.jnt_range[self.joint_ids, 1].copy()
        self._scratch = mujoco.MjData(model)
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self.set_gains(ImpedanceGains())

    def set_gains(self, gains: ImpedanceGains) -> None:
        kp, kv = gains.vectors(self.model, self.dof_ids)
        for act, p, v in zip(self.actuator_ids, kp, kv):
            # position actuator: force = kp·(ctrl − q) − kv·q̇ (gainprm[0]=kp, biasprm = [0, −kp, −kv])
            self.model.actuator_gainprm[act, 0] = p
            self.model.actuator_biasprm[act, 1] = -p
            self.model.actuator_biasprm[act, 2] = -v

    # ---------------------------------------------------------------------------------------------------- state
    def q(self) -> np.ndarray:
        return self.data.qpos[self.qpos_ids].copy()

    def dq(self) -> np.ndarray:
        return self.data.qvel[self.dof_ids].copy()

    def ee_position(self) -> np.ndarray:
        return self.data.site_xpos[self.ee_site].copy()

    def ee_quaternion(self) -> np.ndarray:
        """w, x, y, z of the end-effector site in the base frame."""
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self.ee_site])
        return quat

    def joint_targets(self) -> np.ndarray:
        return self.data.ctrl[self.actuator_ids].copy()

    def set_joint_targets(self, q: np.ndarray) -> None:
        self.data.ctrl[self.actuator_ids] = np.clip(q, self.joint_low, self.joint_high)

    def reset(self, q: np.ndarray) -> None:
        """Teleport the arm to q at rest, target = q."""
        self.data.qpos[self.qpos_ids] = q
        self.data.qvel[self.dof_ids] = 0.0
        self.set_joint_targets(q)

    def forward_ee(self, q: np.ndarray) -> np.ndarray:
        """End-effector position for joint angles q (computed on a scratch copy; the simulation is untouched)."""
        scratch = self._scratch
        scratch.qpos[:] = self.data.qpos
        scratch.qpos[self.qpos_ids] = q
        mujoco.mj_kinematics(self.model, scratch)
        return scratch.site_xpos[self.ee_site].copy()

    # ------------------------------------------------------------------------------------------------------- IK
    def solve_ik(self, target_xyz: np.ndarray, q_seed: np.ndarray, target_rot: np.ndarray | None = None,
                 iterations: int = 12, posture: np.ndarray = HOME_Q) -> np.ndarray:
        """Joint angles that put the ee site at target_xyz (and its frame at target_rot, 3×3, if given).

        Damped least squares on the 7 arm joints of a scratch copy of the state (the live simulation is untouched),
        with a small null-space pull towards `posture` so the elbow does not drift over many steps.
        """
        scratch = self._scratch
        scratch.qpos[:] = self.data.qpos
        q = np.array(q_seed, dtype=np.float64)
        damping = 1e-3
        for _ in range(iterations):
            scratch.qpos[self.qpos_ids] = q
            mujoco.mj_kinematics(self.model, scratch)
            mujoco.mj_comPos(self.model, scratch)
            err_p = target_xyz - scratch.site_xpos[self.ee_site]
            mujoco.mj_jacSite(self.model, scratch, self._jacp, self._jacr, self.ee_site)
            if target_rot is not None:
                current = scratch.site_xmat[self.ee_site].reshape(3, 3)
                # rotation error as the axis-angle vector of target·currentᵀ (small-angle: half the skew part)
                r = target_rot @ current.T
                err_r = 0.5 * np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
                jac = np.vstack([self._jacp[:, self.dof_ids], 0.5 * self._jacr[:, self.dof_ids]])
                err = np.concatenate([err_p, 0.5 * err_r])
            else:
                jac = self._jacp[:, self.dof_ids]
                err = err_p
            jjt = jac @ jac.T + damping * np.eye(jac.shape[0])
            pinv = jac.T @ np.linalg.inv(jjt)
            null = np.eye(7) - pinv @ jac
            dq = pinv @ err + 0.1 * null @ (posture - q)
            q = np.clip(q + dq, self.joint_low, self.joint_high)
            if np.linalg.norm(err_p) < 2e-4 and (target_rot is None or np.linalg.norm(err) < 1e-3):
                break
        return q
