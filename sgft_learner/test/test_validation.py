"""The learner's checks on a transition, one kind at a time, and the duplicate rule, without a node."""

from __future__ import annotations

import time

import numpy as np
import pytest

from sgft_core.tasks import TASKS, get_task
from sgft_learner.validation import (
    MAX_EPISODE_ID,
    EpisodeSteps,
    buffer_problem,
    reward_bound,
    transition_problem,
)
from sgft_msgs.msg import Transition

SPEC = get_task("push")
NOW_NS = time.time_ns()


def genuine(episode: int = 1, step: int = 0, **fields) -> Transition:
    obs = np.array([0.4, 0.0, 0.45, 0.05], np.float32)
    next_obs = obs + np.float32(0.01)
    msg = Transition(task="push", episode_id=episode, step=step, obs=obs.tolist(), action=[0.5, -1.0],
                     reward=float(SPEC.reward(next_obs)), next_obs=next_obs.tolist())
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(NOW_NS - 10**8, 10**9)
    for key, value in fields.items():
        setattr(msg, key, value)
    return msg


def kind(msg: Transition, now_ns: int | None = NOW_NS) -> str:
    return transition_problem(msg, SPEC, now_ns, max_future_s=1.0)[0]


def test_a_genuine_transition_passes():
    assert transition_problem(genuine(), SPEC, NOW_NS, 1.0) == ("", "")
    assert kind(genuine(step=SPEC.episode_length - 1, episode=MAX_EPISODE_ID)) == ""


@pytest.mark.parametrize("fields, expected", [
    ({"task": "hammer"}, "task"),
    ({"obs": [0.4, 0.0]}, "length"),
    ({"action": [0.1, 0.1, 0.1]}, "length"),
    ({"reward": float("nan")}, "non_finite"),
    ({"next_obs": [0.4, 0.0, float("inf"), 0.0]}, "non_finite"),
    ({"obs": [1e30, 0.0, 0.45, 0.0]}, "obs_bounds"),  # finite, passed the old checks and turned the losses NaN
    ({"next_obs": [0.4, 0.0, 0.45, -1e30]}, "obs_bounds"),
    ({"obs": [0.4, 0.0, 0.45, 1.01]}, "obs_bounds"),  # just outside push's puck_y bound
    ({"action": [1.01, 0.0]}, "action_bounds"),
    ({"reward": 1e30}, "reward_bounds"),
    ({"reward": -100.0}, "reward_bounds"),
    ({"episode_id": MAX_EPISODE_ID + 1}, "episode_id"),
    ({"episode_id": 2**64 - 1}, "episode_id"),
    ({"step": SPEC.episode_length}, "step"),
    ({"step": 2**32 - 1}, "step"),
])
def test_each_check_rejects_its_kind(fields, expected):
    assert kind(genuine(**fields)) == expected


def test_stamps_zero_negative_or_in_the_future_are_rejected():
    msg = genuine()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 0, 0
    assert kind(msg) == "stamp"
    msg.header.stamp.sec = -5
    assert kind(msg) == "stamp"
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(NOW_NS + 2 * 10**9, 10**9)
    assert kind(msg) == "stamp" and "future" in transition_problem(msg, SPEC, NOW_NS, 1.0)[1]
    assert transition_problem(msg, SPEC, NOW_NS, 5.0) == ("", "")  # within the tolerance given
    assert kind(msg, now_ns=None) == "" and kind(msg, now_ns=0) == ""  # no clock to judge the future by
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1, 10**9  # not a time: nanosec out of range
    assert kind(msg) == "stamp"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_the_reward_bound_holds_every_reward_inside_the_observation_box(name):
    spec = get_task(name)
    rng = np.random.default_rng(0)
    obs = rng.uniform(spec.obs_low, spec.obs_high, (20000, spec.obs_dim))
    # and points where the 0/1 terms switch on (push's goal, insert's success)
    near = obs.copy()
    if name == "push":
        near[:, 2] = 0.55
    if name == "insert":
        near[:, 3:6] = near[:, 6:9]
    rewards = np.abs(np.concatenate([spec.reward(obs), spec.reward(near)]))
    assert rewards.max() <= reward_bound(spec) < 10 * max(1.0, rewards.max())


def test_duplicates_and_out_of_order_steps_are_dropped():
    steps = EpisodeSteps()
    assert steps.accept(1, 0) and steps.accept(1, 1) and steps.accept(1, 5)
    assert not steps.accept(1, 5)  # the same step again (whatever its stamp)
    assert not steps.accept(1, 3)  # out of order: before the last stored step
    assert steps.accept(2, 0) and steps.accept(1, 6)  # episodes are independent
    assert steps.last == {1: 6, 2: 0}


def test_buffer_problem_finds_rows_outside_the_bounds():
    from sgft_core.replay import ReplayBuffer

    buffer = ReplayBuffer(10, SPEC.obs_dim, SPEC.action_dim)
    msg = genuine()
    buffer.add(np.array(msg.obs), np.array(msg.action), msg.reward, np.array(msg.next_obs), False)
    assert buffer_problem(buffer, SPEC) == ""
    buffer.add(np.full(4, 1e30), np.zeros(2), 0.0, np.array(msg.next_obs), False)
    assert buffer_problem(buffer, SPEC) == "1 of 2 replay rows outside the task's bounds"
