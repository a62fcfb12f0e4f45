"""Evaluate a policy: success rate with a 95% Wilson interval over N seeded episodes.

    python -m sgft_sim.evaluate --checkpoint sgft_bringup/checkpoints/push.safetensors --proxy all --episodes 200

An episode counts as a success when the env reports `info["success"]` on its last step (the state the episode ends
in, not a moment of passing through the goal). Episode i is reset with seed `seed + i`, so two evaluations with the
same seed see the same initial states; actions are the actor's deterministic mean unless `--stochastic`.
"""

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from sgft_core.checkpoint import CheckpointError, atomic_write_bytes, load_checkpoint
from sgft_core.networks import Actor
from sgft_core.seeds import HELD_OUT_EVAL_SEED
from sgft_core.stats import wilson_interval


@dataclass
class EvalResult:
    episodes: int
    successes: int
    mean_return: float
    ci_low: float
    ci_high: float

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes

    def to_dict(self) -> dict:
        return asdict(self) | {"success_rate": self.success_rate}

    def summary(self) -> str:
        return (f"success {self.success_rate:6.1%} ({self.successes}/{self.episodes}), 95% CI "
                f"[{self.ci_low:.1%}, {self.ci_high:.1%}], mean return {self.mean_return:.2f}")


def run_episodes(
    actor: Actor, env: gym.Env, episodes: int, seed: int = HELD_OUT_EVAL_SEED, deterministic: bool = True
) -> EvalResult:
    """Roll out `actor` for `episodes` episodes in `env` and count successes."""
    successes, returns = 0, []
    for episode in range(episodes):
        obs, info = env.reset(seed=seed + episode)
        episode_return, done = 0.0, False
        while not done:
            action = actor.act(np.asarray(obs, dtype=np.float32), deterministic=deterministic)
            obs, reward, terminated, truncated, info = env.step(action)
            episode_return += float(reward)
            done = terminated or truncated
        successes += bool(info.get("success", False))
        returns.append(episode_return)
    low, high = wilson_interval(successes, episodes)
    return EvalResult(episodes, successes, float(np.mean(returns)), low, high)


def evaluate_checkpoint(
    checkpoint: str,
    proxies: list[str],
    episodes: int,
    seed: int = HELD_OUT_EVAL_SEED,
    deterministic: bool = True,
    make_env: Callable[..., gym.Env] | None = None,
) -> dict[str, EvalResult]:
    """Success of a checkpoint's actor on each named proxy of its task."""
    if make_env is None:
        from sgft_sim import make_env
    loaded = load_checkpoint(checkpoint)
    actor = loaded.networks.actor.eval()
    results = {}
    for proxy in proxies:
        env = make_env(loaded.task, proxy, seed=seed)
        try:
            results[proxy] = run_episodes(actor, env, episodes, seed, deterministic)
        finally:
            env.close()
    return results


def main(argv: list[str] | None = None) -> int:
    from sgft_sim import PROXIES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint written by sgft_sim.pretrain")
    parser.add_argument("--proxy", default="all",
                        help="proxy name (sim, real, deformable where the task has it) or 'all' for every proxy")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=HELD_OUT_EVAL_SEED, help="episode i is reset with seed + i")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic mean")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the results (and the command) here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.episodes < 1:
        parser.error("--episodes must be positive")
    try:
        task = load_checkpoint(args.checkpoint).task
    except CheckpointError as exc:
        print(f"error: {args.checkpoint}: {exc}", file=sys.stderr)
        return 2
    known = list(PROXIES[task])
    proxies = known if args.proxy == "all" else [args.proxy]
    unknown = [p for p in proxies if p not in known]
    if unknown:
        parser.error(f"task {task!r} has no proxy {unknown[0]!r}; it has {', '.join(known)}")
    print(f"{task}: {args.checkpoint}, {args.episodes} episodes per proxy, "
          f"{'stochastic' if args.stochastic else 'deterministic'} actions, seeds {args.seed}..")
    results = {}
    for proxy in proxies:
        start = time.perf_counter()
        result = evaluate_checkpoint(args.checkpoint, [proxy], args.episodes, args.seed, not args.stochastic)[proxy]
        results[proxy] = result.to_dict() | {"wall_time_s": round(time.perf_counter() - start, 1)}
        print(f"  {proxy:11s} {result.summary()}", flush=True)
    if args.json is not None:
        command = "python -m sgft_sim.evaluate " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                        else sys.argv[1:]))
        record = {"command": command, "task": task, "deterministic": not args.stochastic, "eval_seed": args.seed,
                  "results": results}
        atomic_write_bytes(args.json, (json.dumps(record, indent=2) + "\n").encode())
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
