import os

os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np
import pytest

import sgft_sim
from sgft_core.checkpoint import load_checkpoint
from sgft_sim.benchmark import DEFAULT_CHECKPOINT_DIR
from sgft_sim.oracle import action_grid, greedy_action, run_oracle


def test_action_grid_covers_the_corners_and_the_centre():
    grid = action_grid(2, 5)
    assert grid.shape == (25, 2)
    for point in ([-1, -1], [1, 1], [-1, 1], [0, 0]):
        assert np.any(np.all(np.isclose(grid, point), axis=1))
    assert action_grid(3, 3).shape == (27, 3)


def test_greedy_action_leaves_the_env_untouched_and_prefers_the_better_branch():
    networks = load_checkpoint(DEFAULT_CHECKPOINT_DIR / "push.safetensors", "push").networks
    env = sgft_sim.make_env("push", "real", seed=0).unwrapped
    obs, _ = env.reset(seed=3)
    qpos, rng_state = env.data.qpos.copy(), env._rng.bit_generator.state
    # ee at (0.30, 0.00), puck at (0.40, 0.10): a step in +y lines the finger up behind the puck, −y moves away
    chosen = greedy_action(env, networks, np.array([[0.0, -1.0], [0.0, 1.0]], np.float32), horizon=1, gamma=0.99)
    np.testing.assert_array_equal(env.data.qpos, qpos)
    assert env._rng.bit_generator.state == rng_state
    np.testing.assert_array_equal(chosen, [0.0, 1.0])
    env.close()


def test_oracle_solves_push_real_and_rejects_bad_arguments():
    result = run_oracle("push", "real", horizon=1, episodes=1, grid_points=5, progress=False)
    assert result["successes"] == 1
    with pytest.raises(ValueError):
        run_oracle("push", "real", horizon=0)
