"""From a policy's action to the bounded target a robot controller receives: the one mapping every path uses.

An action a ∈ [−1, 1]^action_dim asks for a step a·max_delta from the measured state: of the end-effector position
(Cartesian tasks) or of the position targets of the task's joints (joint tasks). The step passes the safety envelope,
so the target stays in the task's box (or joint limits) and within one step of the measured state, whatever the
network said. A controller that mis-scales commands (a sim-to-sim proxy's `action_scale`) moves the commanded change
times its scale, against the state the command was computed from: `scale_command`. The policy node calls
`command_target` with scale 1; the Gym env calls it with its proxy's scale, which is what the policy node followed by
the simulated robot node (`scale_command` on the target it receives) do.

Joint positions, targets and limits are in the FR3's readings (sgft_core.fr3), as franka_ros2 publishes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sgft_core.fr3 import JOINT_HIGH, JOINT_LOW, JOINT_NAMES, joint_indices
from sgft_core.safety import SafetyEnvelope
from sgft_core.tasks import TaskSpec

# A box read from parameters may differ from the task's by float noise (YAML round trips).
_BOX_TOLERANCE = 1e-9


def _given(values: Sequence[float] | np.ndarray | None) -> np.ndarray | None:
    """The values as an array, or None when absent or all NaN (a parameter left at its "use the task's" default)."""
    if values is None:
        return None
    array = np.asarray(values, dtype=np.float64).ravel()
    return None if array.size == 0 or np.isnan(array).all() else array


def task_envelope(spec: TaskSpec, max_step: Sequence[float] | np.ndarray | None = None,
                  workspace_low: Sequence[float] | np.ndarray | None = None,
                  workspace_high: Sequence[float] | np.ndarray | None = None) -> SafetyEnvelope:
    """The safety envelope of a task's action axes: its workspace box (x, y for a planar task) and max_delta per step
    for Cartesian tasks, the FR3's joint limits of the moved joints for joint tasks.

    max_step, workspace_low/high (None or all NaN: the task's) may only tighten it: the task's envelope is what the
    robot was cleared for. Raises ValueError naming the parameter that is out of range."""
    step = _given(max_step)
    step = spec.max_delta if step is None else step
    if step.shape != spec.max_delta.shape or np.any(step > spec.max_delta + 1e-12) or np.any(step <= 0):
        raise ValueError(f"max_step={list(step)} must have {spec.action_dim} entries in (0, {spec.max_delta}]")
    if spec.action_kind == "joint":
        idx = joint_indices(spec.joint_names)
        return SafetyEnvelope(JOINT_LOW[idx], JOINT_HIGH[idx], step)
    low, high = _given(workspace_low), _given(workspace_high)
    low = spec.workspace_low if low is None else low
    high = spec.workspace_high if high is None else high
    if low.shape != (3,) or high.shape != (3,):
        raise ValueError("workspace_low/high need 3 entries")
    if np.any(low < spec.workspace_low - _BOX_TOLERANCE) or np.any(high > spec.workspace_high + _BOX_TOLERANCE):
        raise ValueError(f"workspace box [{low}, {high}] exceeds the task's [{spec.workspace_low}, "
                         f"{spec.workspace_high}]")
    axes = slice(0, spec.action_dim)  # push moves x, y; insert x, y, z
    return SafetyEnvelope(low[axes], high[axes], step)


def action_step(spec: TaskSpec, action: np.ndarray) -> np.ndarray:
    """The step an action asks for: NaN reads as 0 (hold), the rest is clipped to [−1, 1] and times max_delta."""
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (spec.action_dim,):
        raise ValueError(f"{spec.name}: expected an action of shape ({spec.action_dim},), got {action.shape}")
    return np.clip(np.nan_to_num(action, nan=0.0), -1.0, 1.0) * spec.max_delta


def scale_command(measured: np.ndarray, target: np.ndarray, scale: float) -> np.ndarray:
    """The target a controller that multiplies commanded changes by `scale` tracks: measured + scale·(target −
    measured), against the state the command was computed from."""
    measured = np.asarray(measured, dtype=np.float64)
    return measured + scale * (np.asarray(target, dtype=np.float64) - measured)


def command_target(spec: TaskSpec, envelope: SafetyEnvelope, action: np.ndarray, ee_position: np.ndarray,
                   joint_positions: np.ndarray | None = None, joint_hold: np.ndarray | None = None,
                   action_scale: float = 1.0) -> np.ndarray | None:
    """The controller target for `action` taken at the measured state; None when no safe target exists (the measured
    state or a held target is not finite).

    Cartesian tasks: the end-effector position target (x, y, z; a planar task's z is its ee_height).
    Joint tasks: position targets of the 7 arm joints (FR3 readings, JOINT_NAMES order); `joint_positions` are the
    7 measured positions, the moved joints step from them, the others hold `joint_hold` (default: measured).
    action_scale: the controller's mis-scaling of the commanded change (1 for a calibrated robot)."""
    step = action_step(spec, action)
    if spec.action_kind == "cartesian":
        ee = np.asarray(ee_position, dtype=np.float64)
        current = ee[: spec.action_dim]
        bounded = envelope.bound(current, step)
        if bounded is None:
            return None
        moved = scale_command(current, bounded, action_scale)
        return np.append(moved, spec.ee_height) if spec.action_dim == 2 else moved
    if joint_positions is None:
        raise ValueError(f"{spec.name}: a joint task needs the measured joint positions")
    q = np.asarray(joint_positions, dtype=np.float64)
    if q.shape != (len(JOINT_NAMES),):
        raise ValueError(f"{spec.name}: expected {len(JOINT_NAMES)} joint positions, got shape {q.shape}")
    idx = joint_indices(spec.joint_names)
    bounded = envelope.bound(q[idx], step)
    if bounded is None:
        return None
    full = (q if joint_hold is None else np.asarray(joint_hold, dtype=np.float64)).copy()
    full[idx] = scale_command(q[idx], bounded, action_scale)
    return full if np.all(np.isfinite(full)) else None
