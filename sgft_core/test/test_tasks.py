import numpy as np
import pytest
import torch

from sgft_core.tasks import TASKS, get_task

# (obs, reward, success, terminal), each reward worked out by hand from the SGFT paper's appendix B
PUSH_CASES = [
    # ee exactly 3.5 cm behind the puck, puck 5 cm short of the goal: −0 − 0.05
    ([0.465, 0.0, 0.50, 0.0], -0.05, False, False),
    # ee (0.3, 0.1), puck (0.54, 0.0): reach ‖(0.3−0.54+0.035, 0.1)‖ = ‖(−0.205, 0.1)‖; goal within 2.5 cm → +1
    ([0.3, 0.1, 0.54, 0.0], -np.hypot(0.205, 0.1) - 0.01 + 1.0, True, False),
    # puck past the table edge (x > 0.70): fell → −1, not a success
    ([0.5, 0.0, 0.75, 0.0], -np.hypot(0.215, 0.0) - 0.20 - 1.0, False, True),
    # puck off the side of the table
    ([0.5, 0.0, 0.55, -0.45], -np.hypot(-0.015, 0.45) - 0.0 + 1.0 - 1.0, False, True),
]
HAMMER_CASES = [
    # nail head 3 cm above the goal: −10·0.03
    ([0.5, 0, 0.3, 0, -2, 1, 0, 0, 0, 0.08, 0.5, 0.05], -0.3, False, False),
    ([0.5, 0, 0.3, 0, -2, 1, 0, 0, 0, 0.051, 0.5, 0.05], -0.01, True, False),
]
INSERT_CASES = [
    # leg − hole = (0.005, −0.005, 0.009): all within 1 cm → 1 − 100·(0.005² + 0.005² + 0.009²)
    ([0.5, 0, 0.2, 0.5, 0, 0.1, 0.495, 0.005, 0.091], 1.0 - 100 * (0.005**2 + 0.005**2 + 0.009**2), True, False),
    # leg − hole = (0.2, 0, 0.02): x clipped to 0.1 → −100·(0.01 + 0.0004)
    ([0.5, 0, 0.2, 0.7, 0, 0.12, 0.5, 0.0, 0.1], -100 * (0.1**2 + 0.02**2), False, False),
]
CASES = [("push", c) for c in PUSH_CASES] + [("hammer", c) for c in HAMMER_CASES] + [("insert", c) for c in
                                                                                     INSERT_CASES]


@pytest.mark.parametrize(("task", "case"), CASES)
def test_hand_computed_cases_numpy_and_torch(task, case):
    spec = get_task(task)
    obs, reward, success, terminal = case
    assert spec.reward(np.array(obs)) == pytest.approx(reward, abs=1e-9)
    assert bool(spec.success(np.array(obs))) == success
    assert bool(spec.terminal(np.array(obs))) == terminal
    t = torch.tensor(obs, dtype=torch.float64)
    assert isinstance(spec.reward(t), torch.Tensor)
    assert float(spec.reward(t)) == pytest.approx(reward, abs=1e-9)
    assert bool(spec.success(t)) == success and bool(spec.terminal(t)) == terminal


@pytest.mark.parametrize("task", sorted(TASKS))
def test_batched_numpy_matches_torch_and_keeps_dtype(task):
    spec = get_task(task)
    rng = np.random.default_rng(0)
    obs = rng.uniform(spec.obs_low, spec.obs_high, size=(5, 7, spec.obs_dim)).astype(np.float32)
    r_np = spec.reward(obs)
    r_t = spec.reward(torch.from_numpy(obs))
    assert r_np.shape == (5, 7) and r_np.dtype == np.float32
    assert r_t.shape == (5, 7) and r_t.dtype == torch.float32
    np.testing.assert_allclose(r_np, r_t.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(spec.success(obs), spec.success(torch.from_numpy(obs)).numpy())
    np.testing.assert_array_equal(spec.terminal(obs), spec.terminal(torch.from_numpy(obs)).numpy())


def test_push_goal_bonus_is_inside_the_tolerance_not_outside():
    spec = get_task("push")
    at_goal = spec.reward(np.array([0.515, 0.0, 0.55, 0.0]))
    just_outside = spec.reward(np.array([0.545, 0.0, 0.58, 0.0]))
    assert at_goal == pytest.approx(1.0) and just_outside == pytest.approx(-0.03)


def test_spec_layout_and_errors():
    assert get_task("push").obs_dim == 4 and get_task("push").action_dim == 2
    assert get_task("hammer").obs_dim == 12 and get_task("hammer").action_kind == "joint"
    assert get_task("insert").obs_dim == 9 and get_task("insert").episode_length == 40
    with pytest.raises(ValueError, match="known tasks"):
        get_task("stack")
    with pytest.raises(ValueError, match="last dimension 4"):
        get_task("push").reward(np.zeros(3))
    assert get_task("push").obs_in_bounds(np.array([0.3, 0.0, 0.4, 0.0]))
    assert not get_task("push").obs_in_bounds(np.array([0.3, 0.0, np.nan, 0.0]))
