"""The SGFT tasks push, hammer and insert: one place for their layout, bounds, reward, success and termination.

The simulator, the policy node on the real robot and the learner all read the task from here (the SGFT paper's
appendix B). Everything is computed from the observation alone, because the real robot only has
observations. Frames and units: robot base frame (`fr3_link0`), metres, radians.

API:
    spec = get_task("push")            # TaskSpec; ValueError names the known tasks for an unknown name
    spec.reward(next_obs)              # (..., obs_dim) -> (...), numpy in -> numpy out, torch in -> torch out
    spec.success(obs), spec.terminal(obs)   # (..., obs_dim) -> (...) bool, same array type as the input
    spec.obs_names, spec.action_names, spec.max_delta, spec.workspace_low/high, spec.episode_length, ...

An action a ∈ [−1, 1]^action_dim means a per-step delta `a * max_delta`: of the end-effector position target
("cartesian": push moves x, y at the fixed height `ee_height`; insert moves x, y, z) or of the position targets of
`joint_names` ("joint": hammer). `max_delta` is what the robot side allows per 200 ms step, not a policy knob.

Two typos of the paper are fixed here: push's goal bonus is 1[|puck_x − 0.55| < 2.5 cm] (the paper prints ≥ while
calling it "goal reached"), and insert's per-axis distances are x, y, z of leg − hole (the paper swaps y and z).

Reward functions use only operations that numpy arrays and torch tensors share (indexing, arithmetic, abs,
comparisons, .sum(-1), .clip) plus an explicit dtype cast, so the learner evaluates rewards of imagined torch states
with the very code the simulator uses. This module imports numpy only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# push: the end effector should sit 3.5 cm behind the puck (−x side) and push it to x = 55 cm.
PUSH_GOAL_X = 0.55
PUSH_GOAL_TOLERANCE = 0.025
PUSH_EE_OFFSET = 0.035  # finger radius (1 cm) + puck radius (2.5 cm): the finger touches the puck's back
# The table the puck lies on, in the base frame: a puck centre outside this rectangle has fallen off.
PUSH_TABLE_X = (-0.10, 0.70)
PUSH_TABLE_Y = (-0.40, 0.40)

# hammer: the nail counts as driven when its head is within 2 mm of the goal height.
HAMMER_SUCCESS_TOLERANCE = 0.002
HAMMER_REWARD_SCALE = 10.0

# insert: every axis of leg − hole within 1 cm; the penalty saturates at 10 cm per axis.
INSERT_TOLERANCE = 0.01
INSERT_DISTANCE_CLIP = 0.1
INSERT_PENALTY_SCALE = 100.0


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _as_array(x: Any) -> Any:
    """Torch tensors and numpy arrays pass through; anything else (lists, tuples) becomes a float64 numpy array."""
    if _is_torch(x) or isinstance(x, np.ndarray):
        return x
    return np.asarray(x, dtype=np.float64)


def _to_float(mask: Any, like: Any) -> Any:
    """A boolean mask as 0/1 in the floating dtype of `like` (numpy and torch spell the cast differently)."""
    if _is_torch(mask):
        return mask.to(like.dtype)
    dtype = like.dtype if np.issubdtype(like.dtype, np.floating) else np.float64
    return mask.astype(dtype)


def _check_dim(obs: Any, dim: int, task: str) -> None:
    if obs.shape[-1:] != (dim,):
        raise ValueError(f"{task}: expected observations with last dimension {dim}, got shape {tuple(obs.shape)}")


# ---------------------------------------------------------------------------------------------------------- push
def _push_goal(obs: Any) -> Any:
    return abs(obs[..., 2] - PUSH_GOAL_X) < PUSH_GOAL_TOLERANCE


def _push_fell(obs: Any) -> Any:
    x, y = obs[..., 2], obs[..., 3]
    return (x < PUSH_TABLE_X[0]) | (x > PUSH_TABLE_X[1]) | (y < PUSH_TABLE_Y[0]) | (y > PUSH_TABLE_Y[1])


def _push_reward(obs: Any) -> Any:
    dx = obs[..., 0] - obs[..., 2] + PUSH_EE_OFFSET
    dy = obs[..., 1] - obs[..., 3]
    reach = (dx**2 + dy**2) ** 0.5
    to_goal = abs(obs[..., 2] - PUSH_GOAL_X)
    return -reach - to_goal + _to_float(_push_goal(obs), obs) - _to_float(_push_fell(obs), obs)


def _push_success(obs: Any) -> Any:
    return _push_goal(obs) & ~_push_fell(obs)


# -------------------------------------------------------------------------------------------------------- hammer
def _hammer_reward(obs: Any) -> Any:
    return -HAMMER_REWARD_SCALE * (obs[..., 9] - obs[..., 11])


def _hammer_success(obs: Any) -> Any:
    return obs[..., 9] - obs[..., 11] <= HAMMER_SUCCESS_TOLERANCE


# -------------------------------------------------------------------------------------------------------- insert
def _insert_distance(obs: Any) -> Any:
    return abs(obs[..., 3:6] - obs[..., 6:9])


def _insert_success(obs: Any) -> Any:
    return (_insert_distance(obs) < INSERT_TOLERANCE).all(-1)


def _insert_reward(obs: Any) -> Any:
    penalty = (_insert_distance(obs).clip(0.0, INSERT_DISTANCE_CLIP) ** 2).sum(-1)
    return _to_float(_insert_success(obs), obs) - INSERT_PENALTY_SCALE * penalty


def _never(obs: Any) -> Any:
    return obs[..., 0] != obs[..., 0]  # False everywhere except NaN rows, which no episode should continue from


@dataclass(frozen=True)
class TaskSpec:
    """Everything about a task that does not depend on how the robot is simulated or driven."""

    name: str
    obs_names: tuple[str, ...]
    action_names: tuple[str, ...]
    action_kind: str  # "cartesian": Δ end-effector position; "joint": Δ position targets of joint_names
    max_delta: np.ndarray  # per-step delta for action = ±1 (m or rad)
    episode_length: int
    workspace_low: np.ndarray  # end-effector box in the base frame (m)
    workspace_high: np.ndarray
    obs_low: np.ndarray  # plausible observation range, for validating inputs (not a normalization)
    obs_high: np.ndarray
    reward_fn: Callable[[Any], Any] = field(repr=False)
    success_fn: Callable[[Any], Any] = field(repr=False)
    terminal_fn: Callable[[Any], Any] = field(repr=False)
    control_hz: float = 5.0
    joint_names: tuple[str, ...] = ()  # the joints a "joint" action moves
    ee_height: float | None = None  # fixed end-effector z of a planar "cartesian" task (push)

    def __post_init__(self) -> None:
        for key in ("max_delta", "workspace_low", "workspace_high", "obs_low", "obs_high"):
            object.__setattr__(self, key, np.asarray(getattr(self, key), dtype=np.float64))
        if self.max_delta.shape != (self.action_dim,):
            raise ValueError(f"{self.name}: max_delta needs {self.action_dim} entries")
        if self.obs_low.shape != (self.obs_dim,) or self.obs_high.shape != (self.obs_dim,):
            raise ValueError(f"{self.name}: obs bounds need {self.obs_dim} entries")
        if self.workspace_low.shape != (3,) or np.any(self.workspace_low >= self.workspace_high):
            raise ValueError(f"{self.name}: workspace box must be 3-D and non-empty")
        if self.action_kind not in ("cartesian", "joint"):
            raise ValueError(f"{self.name}: unknown action kind {self.action_kind!r}")
        if self.action_kind == "joint" and len(self.joint_names) != self.action_dim:
            raise ValueError(f"{self.name}: a joint action needs one joint name per action dimension")

    @property
    def obs_dim(self) -> int:
        return len(self.obs_names)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @property
    def control_period(self) -> float:
        return 1.0 / self.control_hz

    def reward(self, next_obs: Any) -> Any:
        """r(s') for observations of shape (..., obs_dim); numpy → numpy, torch → torch (float dtype of input)."""
        next_obs = _as_array(next_obs)
        _check_dim(next_obs, self.obs_dim, self.name)
        return self.reward_fn(next_obs)

    def success(self, obs: Any) -> Any:
        obs = _as_array(obs)
        _check_dim(obs, self.obs_dim, self.name)
        return self.success_fn(obs)

    def terminal(self, obs: Any) -> Any:
        """True where the episode cannot go on (push: the puck left the table)."""
        obs = _as_array(obs)
        _check_dim(obs, self.obs_dim, self.name)
        return self.terminal_fn(obs)

    def obs_in_bounds(self, obs: np.ndarray) -> bool:
        obs = np.asarray(obs, dtype=np.float64)
        return bool(np.all(np.isfinite(obs)) and np.all(obs >= self.obs_low) and np.all(obs <= self.obs_high))


PUSH = TaskSpec(
    name="push",
    obs_names=("ee_x", "ee_y", "puck_x", "puck_y"),
    action_names=("d_ee_x", "d_ee_y"),
    action_kind="cartesian",
    max_delta=np.array([0.04, 0.04]),
    episode_length=40,
    # x ≥ 0.28: closer to the base, at table height, the FR3 cannot keep its tool vertical (joint 4 at its limit)
    workspace_low=np.array([0.28, -0.35, 0.0]),
    workspace_high=np.array([0.68, 0.35, 0.3]),
    # the soft "real" controller overshoots the box by several cm under bang-bang actions: still a plausible state
    obs_low=np.array([0.0, -0.55, -1.0, -1.0]),
    obs_high=np.array([0.85, 0.55, 1.5, 1.0]),
    reward_fn=_push_reward,
    success_fn=_push_success,
    terminal_fn=_push_fell,
    ee_height=0.02,
)

HAMMER_JOINTS = ("fr3_joint2", "fr3_joint4", "fr3_joint6")
HAMMER = TaskSpec(
    name="hammer",
    obs_names=("ee_x", "ee_y", "ee_z", "q2", "q4", "q6", "dq2", "dq4", "dq6", "nail_z", "goal_x", "goal_z"),
    action_names=("d_q2", "d_q4", "d_q6"),
    action_kind="joint",
    max_delta=np.array([0.15, 0.15, 0.25]),
    episode_length=50,
    workspace_low=np.array([0.2, -0.3, 0.0]),
    workspace_high=np.array([0.8, 0.3, 0.7]),
    obs_low=np.array([0.0, -0.5, -0.2, -1.8, -3.1, -0.1, -10, -10, -10, -0.1, 0.2, -0.1]),
    obs_high=np.array([1.0, 0.5, 1.0, 1.8, 0.0, 3.8, 10, 10, 10, 0.3, 0.8, 0.3]),
    reward_fn=_hammer_reward,
    success_fn=_hammer_success,
    terminal_fn=_never,
    joint_names=HAMMER_JOINTS,
)

INSERT = TaskSpec(
    name="insert",
    obs_names=("ee_x", "ee_y", "ee_z", "leg_x", "leg_y", "leg_z", "hole_x", "hole_y", "hole_z"),
    action_names=("d_ee_x", "d_ee_y", "d_ee_z"),
    action_kind="cartesian",
    max_delta=np.array([0.03, 0.03, 0.03]),
    episode_length=40,
    workspace_low=np.array([0.3, -0.25, 0.02]),
    workspace_high=np.array([0.7, 0.25, 0.35]),
    obs_low=np.array([0.2, -0.4, -0.1, 0.2, -0.4, -0.2, 0.2, -0.4, -0.2]),
    obs_high=np.array([0.8, 0.4, 0.5, 0.8, 0.4, 0.5, 0.8, 0.4, 0.5]),
    reward_fn=_insert_reward,
    success_fn=_insert_success,
    terminal_fn=_never,
)

TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (PUSH, HAMMER, INSERT)}


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None
