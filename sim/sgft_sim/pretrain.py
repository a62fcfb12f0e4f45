"""Pretrain π_sim, Q, V_sim and the dynamics model of a task in simulation with SAC.

    python -m sgft_sim.pretrain --task push --seed 0 --steps 60000 --out sgft_bringup/checkpoints/push.safetensors

Random-action warm-up fills a buffer that fixes the observation normalization and stays in use: every batch is half
random-action data, half replay of the agent's own experience. The deterministic policy is evaluated periodically;
the checkpoint written at the end holds the networks of the best periodic evaluation (`--select best`, the default)
or the last ones, and a JSON file next to it records the command line, seed, wall time and a fresh evaluation over
`--final-eval-episodes` episodes with seeds the periodic evaluations never used.
"""

import argparse
import copy
import json
import shlex
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from sgft_core.checkpoint import atomic_write_bytes, save_checkpoint
from sgft_core.networks import NetworkConfig, Networks
from sgft_core.replay import ReplayBuffer, sample_mixed
from sgft_core.sac import SAC, SACConfig
from sgft_core.seeds import EVAL_SEED, HELD_OUT_EVAL_SEED
from sgft_sim.evaluate import EvalResult, run_episodes


@dataclass
class PretrainResult:
    networks: Networks  # the selected networks (best periodic evaluation, or last)
    selected_step: int
    evals: list[dict] = field(default_factory=list)  # step, success_rate, mean_return of every periodic evaluation
    env_steps: int = 0
    updates: int = 0
    wall_time_s: float = 0.0


def collect_random(env: gym.Env, steps: int, buffer: ReplayBuffer, rng: np.random.Generator,
                   progress: tqdm | None = None) -> None:
    """Uniform random actions in [−1, 1]; time-limit truncations are not terminal."""
    obs, _ = env.reset()
    act_dim = env.action_space.shape[0]
    for _ in range(steps):
        action = rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, float(reward), next_obs, terminated)
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
        if progress is not None:
            progress.update(1)


def pretrain(
    make_train_env: Callable[[], gym.Env],
    make_eval_env: Callable[[], gym.Env],
    config: SACConfig,
    steps: int,
    warmup_steps: int,
    seed: int,
    eval_every: int,
    eval_episodes: int,
    select: str = "best",
    progress: bool = True,
    time_limit_s: float | None = None,
    stop_requested: Callable[[], bool] | None = None,
) -> PretrainResult:
    """SAC from scratch: `warmup_steps` random-action steps, then `steps` policy steps with `config.utd` updates
    each (fewer if `time_limit_s` runs out or `stop_requested()` turns true; training then ends with an
    evaluation). Returns the selected networks and the evaluation history."""
    if select not in ("best", "last"):
        raise ValueError("select must be 'best' or 'last'")
    start = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env, eval_env = make_train_env(), make_eval_env()
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    random_data = ReplayBuffer(max(warmup_steps, 1), obs_dim, act_dim)
    replay = ReplayBuffer(max(steps, 1), obs_dim, act_dim)
    agent = SAC(obs_dim, act_dim, config)

    bar = tqdm(total=warmup_steps + steps, desc="random warm-up", unit="step", disable=not progress,
               dynamic_ncols=True, mininterval=1.0)
    collect_random(env, warmup_steps, random_data, rng, bar)
    agent.set_normalization(random_data.all())
    bar.set_description("SAC")

    result = PretrainResult(networks=copy.deepcopy(agent.networks), selected_step=0)
    best_rate = -1.0
    obs, _ = env.reset()
    episode_return, returns, losses = 0.0, [], {}
    for step in range(1, steps + 1):
        action = agent.actor.act(np.asarray(obs, dtype=np.float32))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        replay.add(obs, action, float(reward), next_obs, terminated)
        obs, episode_return = next_obs, episode_return + float(reward)
        if terminated or truncated:
            returns.append(episode_return)
            obs, episode_return = env.reset()[0], 0.0
        for _ in range(config.utd):
            batch = sample_mixed([random_data, replay], [config.random_data_fraction, 1 - config.random_data_fraction],
                                 config.batch_size, rng)
            losses = agent.update(batch.to_torch())
            result.updates += 1
        bar.update(1)
        out_of_time = (time_limit_s is not None and time.perf_counter() - start > time_limit_s) or (
            stop_requested is not None and stop_requested())
        if step % 200 == 0:
            bar.set_postfix(ret=f"{np.mean(returns[-20:]) if returns else float('nan'):.2f}",
                            alpha=f"{losses['alpha']:.3f}", q=f"{losses['q_mean']:.1f}", refresh=False)
        if step % eval_every == 0 or step == steps or out_of_time:
            evaluation = run_episodes(agent.actor, eval_env, eval_episodes, EVAL_SEED)
            result.evals.append({"step": step, "success_rate": evaluation.success_rate,
                                 "mean_return": evaluation.mean_return, "alpha": losses["alpha"],
                                 "critic_loss": losses["critic_loss"], "value_loss": losses["value_loss"],
                                 "dynamics_loss": losses["dynamics_loss"]})
            if select == "last" or evaluation.success_rate >= best_rate:
                best_rate = evaluation.success_rate
                result.networks, result.selected_step = copy.deepcopy(agent.networks), step
            bar.write(f"step {step:7d} (+{warmup_steps} random)  eval {evaluation.summary()}  "
                      f"alpha {losses['alpha']:.3f}  "
                      f"V loss {losses['value_loss']:.3g}  dyn loss {losses['dynamics_loss']:.3g}  "
                      f"elapsed {time.perf_counter() - start:.0f} s")
        if out_of_time:
            bar.write(f"stopping early (time limit or signal) after {step} policy steps")
            break
    bar.close()
    env.close()
    eval_env.close()
    result.env_steps = warmup_steps + step
    result.wall_time_s = time.perf_counter() - start
    return result


def sidecar_path(checkpoint: Path) -> Path:
    """push.safetensors → push.json"""
    return checkpoint.with_suffix(".json")


def main(argv: list[str] | None = None) -> int:
    from sgft_sim import make_env

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True, choices=["push", "hammer", "insert"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, required=True, help="policy steps after the warm-up (UTD updates each)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint path (.safetensors); a .json goes beside")
    parser.add_argument("--warmup-steps", type=int, default=5000, help="random-action steps before learning")
    parser.add_argument("--eval-every", type=int, default=5000)
    parser.add_argument("--eval-episodes", type=int, default=30, help="episodes per periodic evaluation")
    parser.add_argument("--final-eval-episodes", type=int, default=200)
    parser.add_argument("--select", choices=["best", "last"], default="best",
                        help="save the networks of the best periodic evaluation or the last ones")
    parser.add_argument("--hidden-dim", type=int, default=512)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--time-limit-min", type=float, default=None,
                        help="stop training after this many minutes (then evaluate and save as usual)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if min(args.steps, args.eval_every, args.eval_episodes, args.final_eval_episodes) < 1 or args.warmup_steps < 2:
        parser.error("steps, eval settings must be positive and --warmup-steps at least 2")
    torch.set_num_threads(args.threads)

    config = SACConfig(network=NetworkConfig(hidden_dim=args.hidden_dim), lr=args.lr, batch_size=args.batch_size)
    # Ctrl-C / SIGTERM end training early but still evaluate and save, so a long run is never wasted.
    stop = {"requested": False}

    def request_stop(signum: int, frame: object) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print(f"pretraining {args.task} (seed {args.seed}): {args.warmup_steps} random + {args.steps} SAC steps, "
          f"{args.threads} torch thread(s)", flush=True)
    result = pretrain(
        lambda: make_env(args.task, "sim", seed=args.seed),
        lambda: make_env(args.task, "sim", seed=args.seed + 1),
        config, args.steps, args.warmup_steps, args.seed, args.eval_every, args.eval_episodes, args.select,
        progress=not args.no_progress, time_limit_s=None if args.time_limit_min is None else 60 * args.time_limit_min,
        stop_requested=lambda: stop["requested"],
    )
    print(f"training done in {result.wall_time_s:.0f} s; selected step {result.selected_step}; "
          f"final evaluation on {args.final_eval_episodes} episodes ...", flush=True)
    eval_env = make_env(args.task, "sim", seed=args.seed + 2)
    final: EvalResult = run_episodes(result.networks.actor, eval_env, args.final_eval_episodes, HELD_OUT_EVAL_SEED)
    eval_env.close()
    print(f"sim (domain randomization): {final.summary()}", flush=True)

    command = "python -m sgft_sim.pretrain " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                    else sys.argv[1:]))
    sha = save_checkpoint(
        args.out, result.networks, args.task, config.network, train_config=config.to_dict(), seed=args.seed,
        wall_time_s=result.wall_time_s,
        extra={"command": command, "selected_step": result.selected_step, "final_eval_sim": final.to_dict()},
    )
    record = {
        "checkpoint": args.out.name,
        "weights_sha256": sha,
        "command": command,
        "task": args.task,
        "seed": args.seed,
        "warmup_steps": args.warmup_steps,
        "steps": args.steps,
        "env_steps": result.env_steps,
        "updates": result.updates,
        "torch_threads": args.threads,
        "wall_time_s": round(result.wall_time_s, 1),
        "selected": args.select,
        "selected_step": result.selected_step,
        "final_eval": {"proxy": "sim", "eval_seed": HELD_OUT_EVAL_SEED, **final.to_dict()},
        "periodic_evals": result.evals,
        "train_config": config.to_dict(),
    }
    atomic_write_bytes(sidecar_path(args.out), (json.dumps(record, indent=2) + "\n").encode())
    print(f"wrote {args.out} and {sidecar_path(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
