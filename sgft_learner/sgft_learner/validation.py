"""What the learner accepts as a transition: checks a peer on the DDS domain cannot talk its way past.

Any process on the domain can publish a Transition, and one with finite but absurd values (1e30) turns the losses
NaN and, once stored, does so again after every restart. So a transition is checked against its task before it is
stored or fed, and again when the store is replayed: `transition_problem` (one message) and `EpisodeSteps` (its
place in its episode). `buffer_problem` tells whether a learner's replay buffer holds a row the checks reject.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from sgft_core.tasks import TaskSpec
from sgft_interfaces.stamps import stamp_problem

# Episode ids count episodes of a policy node and survive its restarts: at 8 s or more per episode, a billion of
# them is centuries of robot time, so a larger id is no counter.
MAX_EPISODE_ID = 1_000_000_000
ACTION_TOLERANCE = 1e-6  # float32 rounding of an action at ±1
REWARD_MARGIN = 2.0  # see reward_bound

_reward_bounds: dict[str, float] = {}


def reward_bound(spec: TaskSpec) -> float:
    """The largest |reward| a transition of `spec` may carry: max |spec.reward| over the corners of the observation
    box, plus REWARD_MARGIN.

    Each task's reward is a part whose |value| over a box peaks at a corner (push: distances, convex; hammer: linear;
    insert: a penalty growing with each axis' |leg − hole|) plus 0/1 terms (push's goal bonus and fall penalty,
    insert's success bonus) that can take their extreme value inside the box. Those terms change |r| by at most 1
    each at a corner and inside, hence the margin of 2. Computed from the spec, so a new task needs no constant.
    """
    bound = _reward_bounds.get(spec.name)
    if bound is None:
        corners = np.array(list(itertools.product(*zip(spec.obs_low, spec.obs_high, strict=True))))
        bound = float(np.abs(spec.reward(corners)).max()) + REWARD_MARGIN
        _reward_bounds[spec.name] = bound
    return bound


def transition_problem(msg: Any, spec: TaskSpec, now_ns: int | None = None,
                       max_future_s: float = 1.0) -> tuple[str, str]:
    """(kind, detail) of the first check a Transition message fails, or ("", "") when it passes them all.

    Kinds: task, length, non_finite, obs_bounds, action_bounds, reward_bounds, episode_id, step, stamp. Pure: the
    node's clock comes in as `now_ns` (None or 0: not known yet, or a replay of the store; the future is then not
    checked)."""
    if msg.task != spec.name:
        return "task", f"task {msg.task!r} is not {spec.name!r}"
    if len(msg.obs) != spec.obs_dim or len(msg.next_obs) != spec.obs_dim or len(msg.action) != spec.action_dim:
        return "length", (f"lengths obs {len(msg.obs)}, next_obs {len(msg.next_obs)}, action {len(msg.action)}; "
                          f"expected {spec.obs_dim}, {spec.obs_dim}, {spec.action_dim}")
    obs, next_obs = np.asarray(msg.obs, np.float64), np.asarray(msg.next_obs, np.float64)
    action, reward = np.asarray(msg.action, np.float64), float(msg.reward)
    if not (np.isfinite(obs).all() and np.isfinite(next_obs).all() and np.isfinite(action).all()
            and np.isfinite(reward)):
        return "non_finite", "non-finite values"
    for name, values in (("obs", obs), ("next_obs", next_obs)):
        if not spec.obs_in_bounds(values):
            outside = [spec.obs_names[i] for i in np.flatnonzero((values < spec.obs_low) | (values > spec.obs_high))]
            return "obs_bounds", f"{name} outside the task's observation bounds in {', '.join(outside)}"
    if np.abs(action).max() > 1.0 + ACTION_TOLERANCE:
        return "action_bounds", "action outside [-1, 1]"
    if abs(reward) > reward_bound(spec):
        return "reward_bounds", f"|reward| {abs(reward):.3g} > {reward_bound(spec):.3g}, the most the task gives"
    if msg.episode_id > MAX_EPISODE_ID:
        return "episode_id", f"episode id {msg.episode_id} > {MAX_EPISODE_ID}"
    if msg.step >= spec.episode_length:
        return "step", f"step {msg.step} ≥ the episode length {spec.episode_length}"
    problem = stamp_problem(msg.header.stamp, now_ns or 0, max_future_s)
    if problem:
        return "stamp", problem
    return "", ""


class EpisodeSteps:
    """The last accepted step of each episode: a step at or before it is a duplicate (the policy node's
    transient-local replay after a restart, or a peer's copy) or out of order, and is not stored again."""

    def __init__(self) -> None:
        self.last: dict[int, int] = {}

    def is_new(self, episode_id: int, step: int) -> bool:
        return step > self.last.get(episode_id, -1)

    def accept(self, episode_id: int, step: int) -> bool:
        """Record (episode_id, step) and return True when it is new; False (nothing recorded) when it is not."""
        if not self.is_new(episode_id, step):
            return False
        self.last[episode_id] = step
        return True


def buffer_problem(buffer: Any, spec: TaskSpec) -> str:
    """Why rows of a replay buffer (sgft_core.replay.ReplayBuffer) would fail the checks above, or "" when none do."""
    n = len(buffer)
    obs, next_obs = buffer.obs[:n].astype(np.float64), buffer.next_obs[:n].astype(np.float64)
    action, reward = buffer.action[:n].astype(np.float64), buffer.reward[:n].astype(np.float64)
    bad = ~(np.isfinite(obs).all(-1) & np.isfinite(next_obs).all(-1) & np.isfinite(action).all(-1)
            & np.isfinite(reward))
    for values in (obs, next_obs):
        bad |= ((values < spec.obs_low) | (values > spec.obs_high)).any(-1)
    bad |= (np.abs(action) > 1.0 + ACTION_TOLERANCE).any(-1) | (np.abs(reward) > reward_bound(spec))
    count = int(bad.sum())
    return f"{count} of {n} replay rows outside the task's bounds" if count else ""
