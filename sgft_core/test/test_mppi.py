"""MPPI over a known model: the objective as written, improvement over the actor's warm start, determinism."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from sgft_core.mppi import MPPI, MPPIConfig
from sgft_core.tasks import TaskSpec

STEP = 0.1
UNTIMED = MPPIConfig(time_budget_s=None)  # every iteration runs, whatever the machine's load: reproducible plans


def _distance(obs):
    return (obs[..., 0] ** 2 + obs[..., 1] ** 2) ** 0.5


REACH = TaskSpec(
    name="reach", obs_names=("x", "y"), action_names=("dx", "dy"), action_kind="cartesian",
    max_delta=np.array([STEP, STEP]), episode_length=20, workspace_low=np.array([-1.0, -1.0, 0.0]),
    workspace_high=np.array([1.0, 1.0, 0.1]), obs_low=np.array([-1.0, -1.0]), obs_high=np.array([1.0, 1.0]),
    reward_fn=lambda obs: -_distance(obs), success_fn=lambda obs: _distance(obs) < 0.05,
    terminal_fn=lambda obs: obs[..., 0] != obs[..., 0],
)
CLIFF = dataclasses.replace(REACH, terminal_fn=lambda obs: obs[..., 0] > 0.9)  # x > 0.9 ends the episode


class PointDynamics(nn.Module):
    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return obs + STEP * action


class Potential(nn.Module):
    """V(s) = −3·|s|: the sim's value of being far from the goal."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return -3.0 * _distance(obs)


class ConstantActor(nn.Module):
    def __init__(self, action) -> None:
        super().__init__()
        self.action = torch.tensor(action, dtype=torch.float32)

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        return self.action.expand(len(obs), -1)


def test_objective_matches_the_formula():
    planner = MPPI(CLIFF, PointDynamics(), Potential(), ConstantActor([0.0, 0.0]), MPPIConfig(horizon=2))
    obs = torch.tensor([[0.5, 0.0], [0.85, 0.0]])
    actions = torch.tensor([[[-1.0, 0.0], [-1.0, 0.0]], [[1.0, 0.0], [1.0, 0.0]]])
    got = planner.objective(obs, actions)
    g = 0.99
    # Row 0: s = 0.5 → 0.4 → 0.3. r̄_t = −|s_{t+1}| + γV(s_{t+1}) − V(s_t); plus γ²·V(s_2).
    r0 = -0.4 + g * -1.2 - -1.5
    r1 = -0.3 + g * -0.9 - -1.2
    expected0 = r0 + g * r1 + g**2 * -0.9
    # Row 1: s = 0.85 → 0.95 is terminal: potential 0 there, nothing after it.
    expected1 = -0.95 + 0.0 - -2.55
    assert got.tolist() == pytest.approx([expected0, expected1], abs=1e-5)


@pytest.mark.parametrize("warm_action", [[0.0, 0.0], [1.0, 1.0]])
def test_mppi_improves_on_the_actor_warm_start(warm_action):
    torch.set_num_threads(1)
    actor = ConstantActor(warm_action)  # a useless or harmful actor
    planner = MPPI(REACH, PointDynamics(), Potential(), actor, UNTIMED, seed=0)
    obs = np.array([0.5, -0.3], dtype=np.float32)
    obs_t = torch.as_tensor(obs)[None]
    warm_value = planner.objective(obs_t, planner.actor_rollout(obs_t)[None])[0]
    action = planner.plan(obs)
    assert action.shape == (2,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1.0)
    assert float(planner.objective(obs_t, planner._previous[None])[0]) > float(warm_value) + 0.1
    toward_goal = -obs / np.linalg.norm(obs)
    # From a harmful warm start one decision only turns part of the way (MPPI is a local search).
    assert action @ toward_goal / np.linalg.norm(action) > (0.9 if warm_action == [0.0, 0.0] else 0.0)

    # Closed loop (the shifted plan warm-starts the next decision): the point reaches the goal, and with a useless
    # actor it stays there; a harmful actor's action, appended to every shifted plan, keeps tugging it away.
    state, distances = obs.copy(), []
    for _ in range(12):
        state = state + STEP * planner.plan(state)
        distances.append(float(np.linalg.norm(state)))
    assert min(distances) < 0.05
    assert distances[-1] < (0.01 if warm_action == [0.0, 0.0] else 0.2)


def test_a_good_actor_is_kept_and_planning_is_seeded():
    good = ConstantActor([-1.0, 0.0])
    obs = np.array([0.6, 0.0], dtype=np.float32)
    first = MPPI(REACH, PointDynamics(), Potential(), good, UNTIMED, seed=3).plan(obs)
    again = MPPI(REACH, PointDynamics(), Potential(), good, UNTIMED, seed=3).plan(obs)
    np.testing.assert_array_equal(first, again)
    assert first[0] < -0.9 and abs(first[1]) < 0.1  # straight at the goal, as the actor proposed


def test_time_budget_cuts_iterations_but_still_decides():
    planner = MPPI(REACH, PointDynamics(), Potential(), ConstantActor([0.0, 0.0]),
                   MPPIConfig(iterations=5, time_budget_s=1e-9))
    action = planner.plan(np.array([0.5, -0.3], dtype=np.float32))
    assert planner.last_iterations == 1 and np.all(np.isfinite(action))
    untimed = MPPI(REACH, PointDynamics(), Potential(), ConstantActor([0.0, 0.0]), MPPIConfig(iterations=5,
                                                                                               time_budget_s=None))
    untimed.plan(np.array([0.5, -0.3], dtype=np.float32))
    assert untimed.last_iterations == 5
