"""Assemble a task's observation vector from what a robot measures, by the names in TaskSpec.obs_names.

The policy node on the real robot and the simulated one both go through here, so the order of the vector is
defined once (in tasks.py) and never re-typed. Name conventions:
  ee_x, ee_y, ee_z      end-effector position (base frame)
  q<N>, dq<N>           position / velocity of the FR3's joint N (sgft_core.fr3.JOINT_NAMES[N − 1])
  <object>_x|_y|_z      the task's object (puck, nail, leg): `object_position`, from perception, or for an object
                        rigidly held in the gripper from the end-effector pose and the grasp (`held_object_position`)
  anything else         a task constant given by calibration (goal_x, hole_z, ...): `constants`
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
from transforms3d.quaternions import quat2mat

from sgft_core.fr3 import JOINT_NAMES
from sgft_core.tasks import TaskSpec

_AXIS = {"x": 0, "y": 1, "z": 2}
_JOINT = re.compile(r"^(d?)q(\d+)$")
OBJECT_PREFIXES = ("puck", "nail", "leg")
# A held object's point further than this from the end effector is a typo (mm for m, a sign), not a grasped tool.
MAX_HELD_OFFSET = 0.5


def observation_sources(spec: TaskSpec) -> dict[str, list[str]]:
    """Which inputs a task needs: {'ee': [...], 'joints': [...], 'object': [...], 'constants': [...]}."""
    sources: dict[str, list[str]] = {"ee": [], "joints": [], "object": [], "constants": []}
    for name in spec.obs_names:
        prefix, _, axis = name.rpartition("_")
        if prefix == "ee" and axis in _AXIS:
            sources["ee"].append(name)
        elif _JOINT.match(name):
            sources["joints"].append(name)
        elif prefix in OBJECT_PREFIXES and axis in _AXIS:
            sources["object"].append(name)
        else:
            sources["constants"].append(name)
    return sources


def assemble_observation(
    spec: TaskSpec,
    ee_position: np.ndarray,
    joint_positions: Mapping[str, float] | None = None,
    joint_velocities: Mapping[str, float] | None = None,
    object_position: np.ndarray | None = None,
    constants: Mapping[str, float] | None = None,
    joint_zero_offsets: Mapping[str, float] | None = None,
) -> np.ndarray:
    """The float32 observation in spec.obs_names order. Raises ValueError naming what is missing.

    joint_zero_offsets: per joint name, the robot's reading at the zero the policy was trained with (the simulator's
    MJCF measures FR3 joint 6 from a zero π/2 away): q<N> is the measured position minus it."""
    joint_positions = joint_positions or {}
    joint_zero_offsets = joint_zero_offsets or {}
    joint_velocities = joint_velocities or {}
    constants = constants or {}
    obs = np.empty(spec.obs_dim, dtype=np.float32)
    for i, name in enumerate(spec.obs_names):
        prefix, _, axis = name.rpartition("_")
        joint = _JOINT.match(name)
        if prefix == "ee" and axis in _AXIS:
            obs[i] = ee_position[_AXIS[axis]]
        elif joint:
            table = joint_velocities if joint.group(1) else joint_positions
            number = int(joint.group(2))
            if not 1 <= number <= len(JOINT_NAMES):
                raise ValueError(f"{spec.name}: {name} names no FR3 joint (1..{len(JOINT_NAMES)})")
            key = JOINT_NAMES[number - 1]
            if key not in table:
                raise ValueError(f"{spec.name}: joint {key} missing from the joint state (needed for {name})")
            obs[i] = table[key] if joint.group(1) else table[key] - joint_zero_offsets.get(key, 0.0)
        elif prefix in OBJECT_PREFIXES and axis in _AXIS:
            if object_position is None:
                raise ValueError(f"{spec.name}: no object position (needed for {name})")
            obs[i] = object_position[_AXIS[axis]]
        elif name in constants:
            obs[i] = constants[name]
        else:
            raise ValueError(f"{spec.name}: no source for observation {name!r}; give it as a task constant")
    return obs


def parse_held_object_offset(values: Sequence[float], spec: TaskSpec) -> np.ndarray | None:
    """The offset (m, in the end-effector frame) of a rigidly held object's observed point, validated; None when every
    value is NaN (the object is not held: perception sees it). Raises ValueError saying what is wrong."""
    offset = np.asarray(values, dtype=np.float64).ravel()
    if np.isnan(offset).all():  # NaN (the parameter's default) or empty
        return None
    if offset.shape != (3,) or not np.isfinite(offset).all():
        raise ValueError(f"held_object_offset={offset.tolist()}: give x, y, z (3 finite values, m, in the end-effector "
                         "frame), or all NaN for an object that is not held")
    if np.linalg.norm(offset) > MAX_HELD_OFFSET:
        raise ValueError(f"held_object_offset={offset.tolist()} is {np.linalg.norm(offset):.2f} m from the end "
                         f"effector (more than {MAX_HELD_OFFSET} m): metres expected")
    if not observation_sources(spec)["object"]:
        raise ValueError(f"held_object_offset given, but task {spec.name} observes no object")
    return offset


def held_object_position(ee_position: np.ndarray, ee_quaternion_xyzw: Sequence[float],
                         offset: np.ndarray) -> np.ndarray:
    """Where a rigidly held object's point is in the base frame: the end-effector position plus the grasp offset
    rotated by the measured end-effector orientation (x, y, z, w, as geometry_msgs writes it), the way a robot
    controller knows a tool centre point. Raises ValueError for an orientation that is not a unit quaternion."""
    x, y, z, w = (float(v) for v in ee_quaternion_xyzw)
    norm = float(np.sqrt(x * x + y * y + z * z + w * w))
    if not np.isfinite(norm) or abs(norm - 1.0) > 1e-3:
        raise ValueError(f"end-effector orientation {[x, y, z, w]} is not a unit quaternion (norm {norm:.4f})")
    rotation = quat2mat([w / norm, x / norm, y / norm, z / norm])  # transforms3d: w first
    return np.asarray(ee_position, dtype=np.float64) + rotation @ np.asarray(offset, dtype=np.float64)
