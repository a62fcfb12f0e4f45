"""Facts about the Franka FR3 arm that the whole suite shares: names, frames and joint limits.

Joint positions here are in the FR3's own convention, the one franka_ros2 publishes and accepts. The simulator's
Panda MJCF measures joint 6 from a zero rotated by π/2; `sgft_sim.robot` converts with `MJCF_JOINT_ZERO_OFFSET`.
"""

from __future__ import annotations

import numpy as np

BASE_FRAME = "fr3_link0"  # the robot base frame: targets, observations and detections are expressed in it
JOINT_NAMES = tuple(f"fr3_joint{i}" for i in range(1, 8))

# Position limits (rad), from Franka's "Robot and interface specifications" for the FR3.
JOINT_LOW = np.array([-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159])
JOINT_HIGH = np.array([2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159])

# Cartesian translational velocity limit of the end effector (m/s), from Franka's interface specification
# (libfranka's limits): no measured end effector moves faster.
MAX_CARTESIAN_SPEED = 3.0
# The end effector never lies further than this from the base frame's origin (m): 855 mm reach from the shoulder,
# 333 mm above the base, plus a gripper and tool.
MAX_EE_DISTANCE = 1.5

# What the FR3 reads at each joint where the Panda MJCF of the simulator reads 0 (rad): FR3 = MJCF + this.
MJCF_JOINT_ZERO_OFFSET = np.array([0.0, 0.0, 0.0, 0.0, 0.0, np.pi / 2, 0.0])


def joint_indices(names: tuple[str, ...] | list[str]) -> list[int]:
    """Indices of arm joints by name; ValueError for a name that is not an FR3 arm joint."""
    unknown = [n for n in names if n not in JOINT_NAMES]
    if unknown:
        raise ValueError(f"not FR3 arm joints: {unknown}; known: {list(JOINT_NAMES)}")
    return [JOINT_NAMES.index(n) for n in names]
