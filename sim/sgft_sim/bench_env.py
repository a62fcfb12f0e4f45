"""Benchmark: control steps per second of every task and proxy on one core, and the point-cloud render time (the
default cloud leaves out the arm's visual meshes; "with arm meshes" is render_arm=True).

    MUJOCO_GL=osmesa python -m sgft_sim.bench_env [--steps 400] [--renders 5]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np

from sgft_sim import PROXIES, make_env


def control_rate(task: str, proxy: str, steps: int) -> float:
    env = make_env(task, proxy, seed=0)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, size=env.action_space.shape))
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def render_time(width: int, height: int, renders: int, render_arm: bool = False) -> float:
    env = make_env("push", seed=0)
    env.reset(seed=0)
    env.point_cloud("camera1", width=width, height=height, render_arm=render_arm)  # warm-up: renderer creation
    start = time.perf_counter()
    for _ in range(renders):
        env.point_cloud("camera1", width=width, height=height, render_arm=render_arm)
    elapsed = (time.perf_counter() - start) / renders
    env.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400, help="control steps per task and proxy (incl. resets)")
    parser.add_argument("--renders", type=int, default=5, help="point clouds per resolution")
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    print(f"{'task':8s} {'proxy':10s} {'steps/s':>9s} {'ms/step':>8s}")
    for task, proxies in PROXIES.items():
        for proxy in proxies:
            rate = control_rate(task, proxy, args.steps)
            print(f"{task:8s} {proxy:10s} {rate:9.0f} {1e3 / rate:8.2f}")
    for width, height in ((848, 480), (424, 240)):
        for render_arm in (False, True):
            ms = 1e3 * render_time(width, height, args.renders, render_arm)
            print(f"point cloud {width}x{height} {'with' if render_arm else 'without'} arm meshes: {ms:.1f} ms "
                  "(RGB + depth render + back-projection)")


if __name__ == "__main__":
    main()
