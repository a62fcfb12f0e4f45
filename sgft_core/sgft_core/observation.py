"""Assemble a task's observation vector from what a robot measures, by the names in TaskSpec.obs_names.

The policy node on the real robot and the simulated one both go through here, so the order of the vector is
defined once (in tasks.py) and never re-typed. Name conventions:
  ee_x, ee_y, ee_z      end-effector position (base frame)
  q<N>, dq<N>           position / velocity of joint fr3_joint<N>
  <object>_x|_y|_z      the detected object (puck, nail, leg): `object_position`
  anything else         a task constant given by calibration (goal_x, hole_z, ...): `constants`
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from sgft_core.tasks import TaskSpec

_AXIS = {"x": 0, "y": 1, "z": 2}
_JOINT = re.compile(r"^(d?)q(\d+)$")
OBJECT_PREFIXES = ("puck", "nail", "leg")


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
    joint_prefix: str = "fr3_joint",
) -> np.ndarray:
    """The float32 observation in spec.obs_names order. Raises ValueError naming what is missing."""
    joint_positions = joint_positions or {}
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
            key = f"{joint_prefix}{joint.group(2)}"
            if key not in table:
                raise ValueError(f"{spec.name}: joint {key} missing from the joint state (needed for {name})")
            obs[i] = table[key]
        elif prefix in OBJECT_PREFIXES and axis in _AXIS:
            if object_position is None:
                raise ValueError(f"{spec.name}: no object position (needed for {name})")
            obs[i] = object_position[_AXIS[axis]]
        elif name in constants:
            obs[i] = constants[name]
        else:
            raise ValueError(f"{spec.name}: no source for observation {name!r}; give it as a task constant")
    return obs
