"""The V_sim-greedy oracle: can SGFT with horizon H recover this proxy at all, given a perfect dynamics model?

    python -m sgft_sim.oracle --task push --proxy real --horizon 1 --episodes 10

At every step the oracle tries each action of a grid on copies of the proxy env (the *true* dynamics, averaged over
a few latency draws it does not get to pick), follows π_sim for the remaining H − 1 steps, and scores the branch by
the H-step objective SGFT optimizes: Σ_{t<H} γ^t r_t + γ^H V_sim(s_H). It then takes the best first action on the
real env. Its success rate is what an H-step SGFT learner could reach with an exact model and a perfect critic: an
upper bound that tells a gap SGFT can fix at this horizon (the oracle succeeds, so a failing learner is a learning
problem) from one it cannot (the oracle fails too, so the potential or the horizon is the problem: for example a
puck that keeps sliding after the step that pushed it, with no velocity in the observation). Written by hand because
it needs the simulator's state copied per candidate (FrankaTaskEnv.branch); costs grid^action_dim · samples · H
env steps per decision.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sgft_core.checkpoint import load_checkpoint
from sgft_core.networks import Networks
from sgft_core.seeds import EVAL_SEED
from sgft_core.stats import wilson_interval
from sgft_sim.base_env import FrankaTaskEnv
from sgft_sim.benchmark import DEFAULT_CHECKPOINT_DIR


def action_grid(action_dim: int, points: int) -> np.ndarray:
    """All combinations of `points` evenly spaced values in [−1, 1] per axis: shape (points^action_dim, action_dim)."""
    axis = np.linspace(-1.0, 1.0, points)
    return np.array(list(itertools.product(axis, repeat=action_dim)), dtype=np.float32)


@torch.no_grad()
def greedy_action(env: FrankaTaskEnv, networks: Networks, candidates: np.ndarray, horizon: int, gamma: float,
                  samples: int = 3, seed: int = 0) -> np.ndarray:
    """The candidate whose H-step branches on copies of `env` score best on average by Σ γ^t r_t + γ^H V_sim(s_H).

    Each candidate is scored over `samples` latency draws, the same draws for every candidate (common random numbers),
    so the oracle knows the dynamics and their noise but not which draw the next real step will take."""
    scores = np.zeros(len(candidates))
    for index, action in enumerate(candidates):
        for sample in range(samples):
            branch = env.branch(seed + sample)
            obs, reward, terminated, truncated, _ = branch.step(action)
            score, discount = float(reward), gamma
            for _ in range(horizon - 1):
                if terminated or truncated:
                    break
                obs, reward, terminated, truncated, _ = branch.step(networks.actor.act(obs, deterministic=True))
                score += discount * float(reward)
                discount *= gamma
            if not terminated:  # a terminal state's potential is 0, as in the learner's relabelling
                score += discount * float(networks.value(torch.as_tensor(obs[None], dtype=torch.float32))[0])
            scores[index] += score / samples
    return candidates[int(np.argmax(scores))]


def run_oracle(task: str, proxy: str, horizon: int = 1, episodes: int = 10, grid_points: int = 7,
               samples: int = 3, gamma: float = 0.99, checkpoint_dir: Path = DEFAULT_CHECKPOINT_DIR,
               progress: bool = True) -> dict:
    """Success of the V_sim-greedy oracle on `episodes` evaluation episodes (the benchmark's evaluation seeds)."""
    from sgft_sim import make_env

    if horizon < 1 or episodes < 1 or samples < 1 or grid_points < 2:
        raise ValueError("horizon, episodes and samples must be ≥ 1, grid_points ≥ 2")
    networks = load_checkpoint(checkpoint_dir / f"{task}.safetensors", task).networks
    env = make_env(task, proxy, seed=0).unwrapped
    candidates = action_grid(env.task.action_dim, grid_points)
    successes = 0
    for episode in tqdm(range(episodes), desc=f"oracle {task}/{proxy} H={horizon}", disable=not progress,
                        file=sys.stderr):
        obs, info = env.reset(seed=EVAL_SEED + episode)
        done, step = False, 0
        while not done:
            draws_seed = (episode * 1000 + step) * 97  # fresh latency draws per decision, reproducible
            action = greedy_action(env, networks, candidates, horizon, gamma, samples, seed=draws_seed)
            step += 1
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        successes += bool(info["success"])
    env.close()
    low, high = wilson_interval(successes, episodes)
    return {"task": task, "proxy": proxy, "horizon": horizon, "episodes": episodes, "successes": successes,
            "success_rate": successes / episodes, "ci_low": low, "ci_high": high, "grid_points": grid_points,
            "samples": samples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="push")
    parser.add_argument("--proxy", default="real")
    parser.add_argument("--horizon", type=int, default=1, help="SGFT's H: greedy action, then π_sim for H − 1 steps")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--grid-points", type=int, default=7, help="candidate values per action axis")
    parser.add_argument("--samples", type=int, default=3, help="latency draws averaged per candidate")
    parser.add_argument("--checkpoint-dir", type=Path, default=DEFAULT_CHECKPOINT_DIR)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        result = run_oracle(args.task, args.proxy, args.horizon, args.episodes, args.grid_points,
                            args.samples, checkpoint_dir=args.checkpoint_dir)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"V_sim-greedy oracle, {result['task']} / {result['proxy']}, H = {result['horizon']}: success "
          f"{result['success_rate']:.0%} ({result['successes']}/{result['episodes']}), 95% CI "
          f"[{result['ci_low']:.0%}, {result['ci_high']:.0%}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
