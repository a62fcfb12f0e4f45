"""The fine-tuning benchmark: methods × seeds × tasks × "real" proxies, each run a sequence of fine-tuning episodes on
the proxy env with periodic deterministic evaluation.

    python -m sgft_sim.benchmark --tasks push --proxies real --methods sgft sac_finetune pbrs_sac rlpd zero_shot \\
        mpc_sgft --seeds 0 1 2 3 4 --episodes 100 --eval-every 10 --eval-episodes 10 --out benchmark_results

Every run starts from the task's pretrained checkpoint (`<checkpoint-dir>/<task>.safetensors`) and drives
sgft_core.finetune's learner directly: act, feed each transition, run the updates it owes (inline, so the result does
not depend on the machine's speed). A training episode counts whether or not the learner trains on it yet (the 20
pre-collected SGFT episodes are real-robot episodes too). Evaluation uses the deterministic policy (MPPI for
mpc_sgft) on `--eval-episodes` episodes with fixed seeds, the same at every evaluation point, in an env instance of
its own so it never disturbs the training env's random stream.

`--intervene-episodes N`: a scripted operator (`scripted_operator`) acts instead of the policy in the first N training
episodes, its transitions flagged as interventions (demonstrations for the learner when `--set demo_fraction=0.25`),
as an operator teleoperating the first episodes on the robot would.

Outputs under --out: `runs/<task>_<proxy>_<method>_seed<k>.json` (one per finished run, written atomically; a re-run
skips finished runs, so an interrupted sweep resumes), `runs.csv` (one row per run), `summary.csv` / `summary.json`
(mean and std over seeds), `curves.png` (success vs. episodes, mean ± std over seeds). Metrics per run: success after
the last episode, episodes to reach 80% success (the budget if never), and the forgetting dip: the lowest success
seen after the start, also relative to the zero-shot success at episode 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sgft_core import overrides as key_value
from sgft_core.checkpoint import atomic_write_bytes, load_checkpoint
from sgft_core.finetune import METHODS, FinetuneLearner, make_config
from sgft_core.replay import Batch
from sgft_core.seeds import EVAL_SEED
from sgft_core.tasks import PUSH_EE_OFFSET, PUSH_GOAL_X, get_task
from sgft_interfaces.share import installed_share
from sgft_sim import ProxyConfig, make_env

SUCCESS_THRESHOLD = 0.8


def default_checkpoint_dir() -> Path:
    """The shipped checkpoints: beside this package in a source checkout (sim/sgft_sim/benchmark.py →
    <repo>/sgft_bringup/checkpoints), else in sgft_bringup's installed share directory (after `colcon build`)."""
    source = Path(__file__).resolve().parents[2] / "sgft_bringup" / "checkpoints"
    installed = installed_share("sgft_bringup")
    return source if source.is_dir() or installed is None else installed / "checkpoints"


DEFAULT_CHECKPOINT_DIR = default_checkpoint_dir()


@dataclass(frozen=True)
class Settings:
    """Everything that makes two runs of the same (task, proxy, method, seed) comparable; stored in each result."""

    episodes: int = 100
    eval_every: int = 10
    eval_episodes: int = 10
    rlpd_sim_episodes: int = 20  # sim data for RLPD: half random-action, half π_sim episodes
    # FinetuneConfig fields to override: "key" for every method, "method.key" for one method only
    overrides: dict = field(default_factory=dict)
    # ProxyConfig fields to override in the training and evaluation envs (latency_model=command_delay: the timing
    # of the ROS graph's simulated robot)
    proxy_overrides: dict = field(default_factory=dict)
    intervene_episodes: int = 0  # training episodes the scripted operator acts in (interventions), from the first

    def to_dict(self) -> dict:
        return asdict(self)


def method_overrides(overrides: dict, method: str) -> dict:
    """The overrides that apply to `method`: the plain keys, then its own "method.key" entries."""
    shared = {key: value for key, value in overrides.items() if "." not in key}
    own = {key.split(".", 1)[1]: value for key, value in overrides.items() if key.startswith(method + ".")}
    return shared | own


def run_name(task: str, proxy: str, method: str, seed: int) -> str:
    return f"{task}_{proxy}_{method}_seed{seed}"


def evaluate(learner: FinetuneLearner, env, episodes: int) -> tuple[float, float]:
    """Success rate and mean return of the deterministic policy; success = info["success"] on the last step."""
    successes, returns = 0, []
    for episode in range(episodes):
        obs, info = env.reset(seed=EVAL_SEED + episode)
        learner.end_episode()
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, info = env.step(learner.act(obs, deterministic=True))
            total += float(reward)
            done = terminated or truncated
        successes += bool(info.get("success", False))
        returns.append(total)
    learner.end_episode()
    return successes / episodes, float(np.mean(returns))


def scripted_operator(task: str) -> Callable[[np.ndarray], np.ndarray]:
    """An operator's actions from the observation, for the tasks that have one (push). Push: line up behind the
    puck clear of it, then push along x in short nudges steering onto the puck's line, and stand back once the puck
    is 2 cm short of the goal (it slides on). Succeeds on 17 of 20 push "real" episodes with the ROS graph's timing
    (latency_model=command_delay) where π_sim mostly fails."""
    if task != "push":
        raise ValueError(f"no scripted operator for {task!r}: only push has one")
    spec = get_task(task)

    def push(obs: np.ndarray) -> np.ndarray:
        ee, puck = np.asarray(obs[:2], np.float64), np.asarray(obs[2:4], np.float64)
        back = puck[0] - PUSH_EE_OFFSET  # where the finger touches the puck's back
        if abs(ee[1] - puck[1]) > 0.01:
            target = np.array([min(ee[0], back - 0.04), puck[1] if ee[0] < back - 0.03 else ee[1]])
        elif puck[0] > PUSH_GOAL_X - 0.02:
            target = np.array([back - 0.03, ee[1]])
        else:
            target = np.array([min(back + 0.02, PUSH_GOAL_X - PUSH_EE_OFFSET), puck[1] + 0.5 * (puck[1] - ee[1])])
        return np.clip(0.5 * (target - ee) / spec.max_delta, -1.0, 1.0).astype(np.float32)

    return push


def collect_sim_data(task: str, networks, episodes: int, seed: int) -> Batch:
    """RLPD's prior data: `episodes` episodes in the training simulator, half random actions, half π_sim."""
    env = make_env(task, "sim", seed=seed)
    rng = np.random.default_rng(seed)
    rows: list[tuple] = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed * 10_000 + episode)
        done = False
        while not done:
            if episode % 2 == 0:
                action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            else:
                action = networks.actor.act(np.asarray(obs, np.float32))
            next_obs, reward, terminated, truncated, _ = env.step(action)
            rows.append((obs, action, reward, next_obs, float(terminated)))
            obs, done = next_obs, terminated or truncated
    env.close()
    return Batch(*(np.asarray(column, dtype=np.float32) for column in zip(*rows)))


def run_one(task: str, proxy: str, method: str, seed: int, settings: Settings, checkpoint_dir: Path,
            progress: bool = True) -> dict:
    """One fine-tuning run; returns its result record (learning curve, metrics, configuration, timing)."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    spec = get_task(task)
    checkpoint_path = checkpoint_dir / f"{task}.safetensors"
    checkpoint = load_checkpoint(checkpoint_path, task)
    config = make_config(method, **method_overrides(settings.overrides, method))
    learner = FinetuneLearner(spec, checkpoint.networks, config, seed=seed, network_config=checkpoint.network_config)
    if config.sim_data_fraction > 0:
        learner.add_sim_data(collect_sim_data(task, checkpoint.networks, settings.rlpd_sim_episodes, seed))
    operator = scripted_operator(task) if settings.intervene_episodes > 0 else None
    env = make_env(task, proxy, seed=seed, **settings.proxy_overrides)
    eval_env = make_env(task, proxy, seed=seed + 1, **settings.proxy_overrides)

    curve_episodes, curve_success, curve_return = [], [], []

    def record(episode: int) -> None:
        success, mean_return = evaluate(learner, eval_env, settings.eval_episodes)
        curve_episodes.append(episode)
        curve_success.append(success)
        curve_return.append(mean_return)

    record(0)
    bar = tqdm(range(1, settings.episodes + 1), desc=run_name(task, proxy, method, seed), leave=False,
               disable=not progress or not config.trains, file=sys.stderr)
    for episode in bar:
        if not config.trains:  # zero-shot: the policy never changes, so every evaluation would repeat episode 0's
            if episode % settings.eval_every == 0 or episode == settings.episodes:
                curve_episodes.append(episode)
                curve_success.append(curve_success[0])
                curve_return.append(curve_return[0])
            continue
        obs, _ = env.reset(seed=seed * 100_000 + episode)
        done, intervene = False, episode <= settings.intervene_episodes
        while not done:
            action = operator(obs) if intervene else learner.act(obs, deterministic=False)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            learner.add_transition(obs, action, reward, next_obs, terminated, truncated, intervention=intervene)
            due = learner.updates_due()
            if due:
                learner.update(due)
            obs, done = next_obs, terminated or truncated
        learner.end_episode()
        if episode % settings.eval_every == 0 or episode == settings.episodes:
            record(episode)
            bar.set_postfix(success=f"{curve_success[-1]:.0%}", updates=learner.updates_done)
    env.close()
    eval_env.close()
    return {
        "task": task, "proxy": proxy, "method": method, "seed": seed,
        "settings": settings.to_dict(), "config": config.to_dict(),
        "checkpoint": str(checkpoint_path.name), "checkpoint_sha256": checkpoint.metadata.get("weights_sha256"),
        "episodes": curve_episodes, "success": curve_success, "mean_return": curve_return,
        "updates": learner.updates_done, "transitions": learner.transitions, "demonstrations": len(learner.demo),
        "wall_s": time.perf_counter() - start,
        **run_metrics(curve_episodes, curve_success, settings.episodes),
    }


def run_metrics(episodes: Sequence[int], success: Sequence[float], budget: int) -> dict:
    """Success after the last episode, episodes to reach 80% (budget if never), forgetting dip after the start."""
    reached = [e for e, s in zip(episodes, success) if s >= SUCCESS_THRESHOLD]
    after_start = list(success[1:]) or list(success)
    lowest = float(min(after_start))
    return {
        "zero_shot_success": float(success[0]),
        "final_success": float(success[-1]),
        "episodes_to_80": int(reached[0]) if reached else budget,
        "reached_80": bool(reached),
        "lowest_success": lowest,
        "dip_below_zero_shot": float(success[0]) - lowest,
    }


def summarize(results: list[dict]) -> list[dict]:
    """Mean and std over seeds for each (task, proxy, method), methods in METHODS order."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for result in results:
        groups.setdefault((result["task"], result["proxy"], result["method"]), []).append(result)
    order = {m: i for i, m in enumerate(METHODS)}
    rows = []
    for (task, proxy, method), runs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], order[kv[0][2]])):
        row = {"task": task, "proxy": proxy, "method": method, "seeds": len(runs),
               "budget": runs[0]["settings"]["episodes"]}
        for key in ("zero_shot_success", "final_success", "episodes_to_80", "lowest_success", "dip_below_zero_shot"):
            values = np.array([r[key] for r in runs], dtype=np.float64)
            row[f"{key}_mean"], row[f"{key}_std"] = float(values.mean()), float(values.std())
        row["reached_80"] = f"{sum(r['reached_80'] for r in runs)}/{len(runs)}"
        row["wall_s_mean"] = float(np.mean([r["wall_s"] for r in runs]))
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    header = (f"{'task':8} {'proxy':10} {'method':13} {'seeds':>5} {'zero-shot':>10} {'final':>13} "
              f"{'episodes→80%':>15} {'reached':>8} {'lowest':>13} {'wall/run':>8}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['task']:8} {r['proxy']:10} {r['method']:13} {r['seeds']:>5} {r['zero_shot_success_mean']:>10.0%} "
            f"{r['final_success_mean']:>6.0%} ± {r['final_success_std']:>4.0%} "
            f"{r['episodes_to_80_mean']:>8.1f} ± {r['episodes_to_80_std']:>4.1f} {r['reached_80']:>8} "
            f"{r['lowest_success_mean']:>6.0%} ± {r['lowest_success_std']:>4.0%} {r['wall_s_mean'] / 60:>6.1f}m")
    budget = rows[0]["budget"] if rows else "?"
    lines.append(f"wall/run: minutes per run; final: success after {budget} episodes; episodes→80%: first "
                 f"evaluation at ≥{SUCCESS_THRESHOLD:.0%} (budget if never); lowest: lowest success after episode 0 "
                 f"(forgetting dip); mean ± std over seeds")
    return "\n".join(lines)


def plot_curves(results: list[dict], path: Path) -> None:
    """Success vs. fine-tuning episodes, one panel per (task, proxy), mean ± std over seeds per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["task"], r["proxy"]) for r in results})
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (task, proxy) in zip(axes[0], panels):
        for method in METHODS:
            runs = [r for r in results if (r["task"], r["proxy"], r["method"]) == (task, proxy, method)]
            if not runs:
                continue
            episodes = runs[0]["episodes"]
            curves = np.array([r["success"] for r in runs if r["episodes"] == episodes], dtype=np.float64)
            mean, std = curves.mean(0), curves.std(0)
            (line,) = ax.plot(episodes, mean, label=f"{method} (n={len(curves)})")
            ax.fill_between(episodes, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1), alpha=0.2,
                            color=line.get_color())
        ax.axhline(SUCCESS_THRESHOLD, color="grey", linestyle=":", linewidth=1)
        ax.set(title=f"{task}, proxy '{proxy}'", xlabel="fine-tuning episodes", ylabel="success rate",
               ylim=(-0.02, 1.02))
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(results: list[dict], out: Path) -> list[dict]:
    rows = summarize(results)
    run_keys = ["task", "proxy", "method", "seed", "zero_shot_success", "final_success", "episodes_to_80",
                "reached_80", "lowest_success", "dip_below_zero_shot", "updates", "transitions", "wall_s"]
    for path, table, keys in ((out / "runs.csv", results, run_keys), (out / "summary.csv", rows, list(rows[0]))):
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(table)
    atomic_write_bytes(out / "summary.json", json.dumps({"summary": rows, "runs": results}, indent=1).encode())
    plot_curves(results, out / "curves.png")
    return rows


def parse_overrides(items: list[str], proxy: bool = False) -> dict:
    """`key=value` (or, for FinetuneConfig, `method.key=value`) pairs as sgft_core.overrides reads them; the
    FinetuneConfig values are validated per method when the runs are configured (`check_overrides`)."""
    option = "--proxy-set" if proxy else "--set"
    try:
        overrides = key_value.parse_overrides(items)
    except ValueError as err:
        raise SystemExit(f"{option}: {err}") from err
    for key in overrides:
        if proxy and key not in ProxyConfig.__dataclass_fields__:
            raise SystemExit(f"{option} {key}: ProxyConfig has no field {key!r}")
        method, dot, _ = key.rpartition(".")
        if not proxy and dot and (method not in METHODS or "." in method):
            raise SystemExit(f"{option} {key}: unknown method {method!r}; known: {', '.join(METHODS)}")
    return overrides


def check_overrides(overrides: dict, methods: Sequence[str]) -> None:
    """Every method's FinetuneConfig with the overrides applied, so a typo or a wrong type stops the sweep before
    its first run (SystemExit naming the field)."""
    for method in methods:
        try:
            make_config(method, **method_overrides(overrides, method))
        except ValueError as err:
            raise SystemExit(f"--set for {method}: {err}") from err


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["push"])
    parser.add_argument("--proxies", nargs="+", default=["real"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--episodes", type=int, default=Settings.episodes, help="fine-tuning episodes per run")
    parser.add_argument("--eval-every", type=int, default=Settings.eval_every)
    parser.add_argument("--eval-episodes", type=int, default=Settings.eval_episodes)
    parser.add_argument("--rlpd-sim-episodes", type=int, default=Settings.rlpd_sim_episodes)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override a FinetuneConfig field for every method (prefill_episodes=5) or for one "
                             "(rlpd.utd=5); YAML-typed values, 'none' for None (horizon=none)")
    parser.add_argument("--proxy-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override a ProxyConfig field of the envs (latency_model=command_delay: the ROS "
                             "graph's robot timing)")
    parser.add_argument("--intervene-episodes", type=int, default=Settings.intervene_episodes, metavar="N",
                        help="a scripted operator acts in the first N training episodes (interventions; push only)")
    parser.add_argument("--checkpoint-dir", type=Path, default=DEFAULT_CHECKPOINT_DIR)
    parser.add_argument("--out", type=Path, default=Path("benchmark_results"))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.eval_every < 1 or args.eval_episodes < 1:
        parser.error("--episodes, --eval-every and --eval-episodes must be positive")
    if args.intervene_episodes < 0:
        parser.error("--intervene-episodes must be ≥ 0")
    if args.intervene_episodes and set(args.tasks) - {"push"}:
        parser.error("--intervene-episodes: only push has a scripted operator")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    settings = Settings(args.episodes, args.eval_every, args.eval_episodes, args.rlpd_sim_episodes,
                        parse_overrides(args.set), parse_overrides(args.proxy_set, proxy=True),
                        args.intervene_episodes)
    check_overrides(settings.overrides, args.methods)
    for task in args.tasks:
        path = args.checkpoint_dir / f"{task}.safetensors"
        if not path.is_file():
            parser.error(f"no pretrained checkpoint for {task}: {path} (see sgft_sim.pretrain)")
    runs_dir = args.out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)

    grid = [(t, p, m, s) for t in args.tasks for p in args.proxies for m in args.methods for s in args.seeds]
    results, todo = [], []
    for key in grid:
        path = runs_dir / f"{run_name(*key)}.json"
        if path.is_file():
            result = json.loads(path.read_text())
            # results written before a Settings field existed were run with its default
            if Settings().to_dict() | result["settings"] != settings.to_dict():
                parser.error(f"{path} was produced with other settings ({result['settings']}); use another --out")
            results.append(result)
        else:
            todo.append(key)
    print(f"{len(grid)} runs: {len(results)} already finished in {runs_dir}, {len(todo)} to go", file=sys.stderr)
    for key in tqdm(todo, desc="benchmark", disable=args.no_progress, file=sys.stderr):
        result = run_one(*key, settings, args.checkpoint_dir, progress=not args.no_progress)
        atomic_write_bytes(runs_dir / f"{run_name(*key)}.json", json.dumps(result, indent=1).encode())
        results.append(result)
    rows = write_outputs(results, args.out)
    print(format_table(rows))
    print(f"wrote {args.out / 'runs.csv'}, {args.out / 'summary.csv'}, {args.out / 'summary.json'}, "
          f"{args.out / 'curves.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
