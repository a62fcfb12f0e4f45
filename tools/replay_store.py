"""Replay a learner node's transition store into a fresh learner, offline, and evaluate the policy it learns.

    source setup.bash
    python tools/replay_store.py runs/push_demo/learner/transitions.log --episodes 30 --set utd=1
    python tools/replay_store.py runs/push_demo/learner/transitions.log --prefill-only

A graph run cannot be repeated (its timing, and with it its data, differs from the first episode on); its store can.
The stored transitions are fed in their order, the owed updates are done at every episode end (the graph's learner
catches up between episodes), and from the first update on the deterministic actor is evaluated every --eval-every
episodes on the benchmark's evaluation scenes, in the env with the graph's timing (latency_model=command_delay).
With --prefill-only feeding stops after the pre-collected episodes and the learner trains on them alone, --updates
more between evaluations: fixed data, so two learner settings can be compared on one run's data without the robot.
Episodes after the prefill were collected by that run's own policy, so their replay reproduces the run, not what
another setting would have collected.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store", type=Path, help="a learner's transitions.log (run_dir of sgft_learner)")
    parser.add_argument("--task", default="push")
    parser.add_argument("--method", default="sgft_kept_critic", help="the learner's preset (push.yaml's)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="FinetuneConfig overrides (utd=1, horizon=none), as sgft_core.overrides reads them")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="pretrained checkpoint (default: the shipped one of --task)")
    parser.add_argument("--seed", type=int, default=0, help="the learner's sampling seed")
    parser.add_argument("--episodes", type=int, default=30, help="stored episodes to feed")
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--prefill-only", action="store_true",
                        help="feed the pre-collected episodes only and train on them alone")
    parser.add_argument("--updates", type=int, default=200, help="with --prefill-only: updates between evaluations")
    parser.add_argument("--evaluations", type=int, default=4, help="with --prefill-only: how many")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()

    from rclpy.serialization import deserialize_message

    from sgft_core.checkpoint import load_checkpoint
    from sgft_core.finetune import FinetuneLearner, make_config
    from sgft_core.overrides import parse_overrides
    from sgft_core.tasks import get_task
    from sgft_learner.transition_store import TransitionStore, feed_transition
    from sgft_msgs.msg import Transition
    from sgft_sim import make_env
    from sgft_sim.benchmark import evaluate

    torch.set_num_threads(args.threads)
    overrides = parse_overrides(args.set)
    checkpoint = load_checkpoint(args.checkpoint or REPO / f"sgft_bringup/checkpoints/{args.task}.safetensors",
                                 args.task)
    config = make_config(args.method, **overrides)
    learner = FinetuneLearner(get_task(args.task), checkpoint.networks, config, seed=args.seed,
                              network_config=checkpoint.network_config)
    eval_env = make_env(args.task, "real", seed=1, latency_model="command_delay")
    started = time.perf_counter()
    label = f"{args.method} {overrides or ''} seed {args.seed}".replace("  ", " ")

    def report(what: str) -> None:
        success, mean_return = evaluate(learner, eval_env, args.eval_episodes)
        print(f"{label}: {what} ({learner.updates_done} updates): success {success:.0%} over {args.eval_episodes}, "
              f"mean return {mean_return:.1f} [{time.perf_counter() - started:.0f} s]", flush=True)

    last = config.prefill_episodes if args.prefill_only else args.episodes
    episodes, rows = 0, 0
    for payload in TransitionStore(args.store):
        msg = deserialize_message(payload, Transition)
        feed_transition(learner, msg)  # as the learner node feeds it
        rows += 1
        if not (msg.terminal or msg.truncated):
            continue
        episodes += 1
        learner.update(learner.updates_due())
        if not args.prefill_only and episodes > config.prefill_episodes and episodes % args.eval_every == 0:
            report(f"after {episodes} stored episodes")
        if episodes >= last:
            break
    if episodes < last:
        raise SystemExit(f"{args.store} holds {episodes} complete episodes ({rows} transitions), fewer than {last}")
    if args.prefill_only:
        for _ in range(args.evaluations):
            learner.update(args.updates)
            report(f"the {episodes} pre-collected episodes only")


if __name__ == "__main__":
    main()
