"""Pretraining and evaluation on a small 2-D point-mass reaching task, so the loop is tested without MuJoCo."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from sgft_core.checkpoint import load_checkpoint, save_checkpoint
from sgft_core.networks import NetworkConfig
from sgft_core.replay import ReplayBuffer
from sgft_core.sac import SACConfig
from sgft_sim.evaluate import EvalResult, evaluate_checkpoint, run_episodes
from sgft_sim.pretrain import collect_random, pretrain

torch.set_num_threads(1)  # small nets: extra threads only add contention


class PointMassEnv(gym.Env):
    """Move a point in [−1, 1]² by up to 0.15 per step onto a random goal; success = within 0.1 at the last step.
    Observation: position xy, goal xy. Reward: −distance after the step. A 20-step episode ends by time limit."""

    STEP = 0.15
    TOLERANCE = 0.1
    EPISODE_LENGTH = 20

    def __init__(self, seed: int | None = None) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._rng = np.random.default_rng(seed)
        self._pos = self._goal = np.zeros(2)
        self._t = 0

    def _obs(self) -> np.ndarray:
        return np.concatenate([self._pos, self._goal]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._pos, self._goal = self._rng.uniform(-0.9, 0.9, 2), self._rng.uniform(-0.9, 0.9, 2)
        self._t = 0
        return self._obs(), {"success": False}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._pos = np.clip(self._pos + self.STEP * np.clip(action, -1, 1), -1, 1)
        self._t += 1
        distance = float(np.linalg.norm(self._pos - self._goal))
        return self._obs(), -distance, False, self._t >= self.EPISODE_LENGTH, {"success": distance < self.TOLERANCE}


class RandomActor:
    """Uniform random actions, with the actor's `act` signature (the baseline to beat)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return self.rng.uniform(-1, 1, 2).astype(np.float32)


def test_collect_random_fills_buffer_without_terminals():
    buffer = ReplayBuffer(100, 4, 2)
    collect_random(PointMassEnv(0), 50, buffer, np.random.default_rng(0))
    data = buffer.all()
    assert len(buffer) == 50 and data.terminal.sum() == 0  # time limits are not terminal
    np.testing.assert_allclose(data.next_obs[:-1][data.obs[1:, 2] == data.obs[:-1, 2], :2],
                               data.obs[1:][data.obs[1:, 2] == data.obs[:-1, 2], :2])  # consecutive within an episode
    assert np.abs(data.action).max() <= 1


def test_run_episodes_counts_final_step_success():
    class Oracle:  # heads straight to the goal
        def act(self, obs, deterministic=False):
            return np.clip((obs[2:] - obs[:2]) / PointMassEnv.STEP, -1, 1).astype(np.float32)

    result = run_episodes(Oracle(), PointMassEnv(), 20, seed=5)
    assert isinstance(result, EvalResult) and result.successes == 20 and result.ci_high == 1.0
    assert result.ci_low > 0.8
    random_result = run_episodes(RandomActor(0), PointMassEnv(), 50, seed=5)
    assert random_result.success_rate < 0.2


def test_pretraining_learns_the_point_mass_task(tmp_path):
    config = SACConfig(network=NetworkConfig(hidden_dim=64), batch_size=128)
    result = pretrain(lambda: PointMassEnv(0), lambda: PointMassEnv(1), config, steps=2500, warmup_steps=500,
                      seed=0, eval_every=1250, eval_episodes=10, progress=False)
    assert result.updates == 2500 and result.env_steps == 3000 and [e["step"] for e in result.evals] == [1250, 2500]
    learned = run_episodes(result.networks.actor, PointMassEnv(), 50, seed=123)
    random = run_episodes(RandomActor(1), PointMassEnv(), 50, seed=123)
    assert learned.success_rate >= random.success_rate + 0.5, (learned.summary(), random.summary())
    assert learned.mean_return > random.mean_return + 5.0
    # The value function has learned something: states near the goal are worth more than far ones.
    near = torch.tensor([[0.5, 0.5, 0.5, 0.55]])
    far = torch.tensor([[-0.8, -0.8, 0.5, 0.55]])
    assert result.networks.value(near) > result.networks.value(far)

    # What pretraining produced survives a checkpoint and evaluates the same through the CLI's function.
    path = tmp_path / "point_mass.safetensors"
    save_checkpoint(path, result.networks, "point_mass", config.network, seed=0)
    again = evaluate_checkpoint(str(path), ["default"], 50, seed=123, make_env=lambda task, proxy, seed: PointMassEnv())
    assert again["default"].successes == learned.successes
    assert load_checkpoint(path).metadata["seed"] == 0


def test_pretrain_rejects_unknown_selection():
    with pytest.raises(ValueError):
        pretrain(PointMassEnv, PointMassEnv, SACConfig(), 1, 2, 0, 1, 1, select="median")


def test_pretrain_cli_writes_checkpoint_and_record(tmp_path, monkeypatch):
    """The CLI end to end on the real push env for a handful of steps: files, metadata and record are consistent."""
    pytest.importorskip("mujoco")
    from sgft_sim import pretrain as pretrain_module

    out = tmp_path / "push.safetensors"
    args = ["--task", "push", "--seed", "3", "--steps", "20", "--warmup-steps", "40", "--eval-every", "20",
            "--eval-episodes", "1", "--final-eval-episodes", "2", "--hidden-dim", "16", "--batch-size", "8",
            "--no-progress", "--out", str(out)]
    assert pretrain_module.main(args) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    loaded = load_checkpoint(out, task="push")
    assert record["seed"] == 3 and record["updates"] == 20 and record["final_eval"]["episodes"] == 2
    assert record["command"].startswith("python -m sgft_sim.pretrain --task push")
    assert loaded.metadata["seed"] == 3 and loaded.network_config.hidden_dim == 16
    assert loaded.metadata["weights_sha256"] == record["weights_sha256"]
