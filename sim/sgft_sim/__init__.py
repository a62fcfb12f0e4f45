"""MuJoCo scenes and tasks for SGFT (Gymnasium API), domain randomization, sim-to-sim real proxies, pretraining, and a
simulated robot node speaking franka_ros2 and realsense2_camera topics.

    env = sgft_sim.make_env("push", proxy="sim", seed=0)     # Gymnasium env; proxy "sim", "real" (or "deformable")
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sgft_core.tasks import get_task
from sgft_sim.proxies import PROXIES, ProxyConfig, get_proxy


def make_env(task: str, proxy: str | ProxyConfig = "sim", seed: int | None = None, render_mode: str | None = None,
             **overrides: Any):
    """The env of `task` under `proxy` (a name from PROXIES[task] or a ProxyConfig).

    `overrides` replace fields of the proxy's ProxyConfig (for example action_scale=1.2, hold_periods=None), so an
    experiment can vary one gap at a time. Same seed ⇒ same trajectory for the same actions.
    """
    get_task(task)  # clear error for unknown tasks
    config = proxy if isinstance(proxy, ProxyConfig) else get_proxy(task, proxy)
    if overrides:
        config = replace(config, **overrides)
    if task == "push":
        from sgft_sim.push import PushEnv

        return PushEnv(config, seed=seed, render_mode=render_mode)
    if task == "hammer":
        from sgft_sim.hammer import HammerEnv

        return HammerEnv(config, seed=seed, render_mode=render_mode)
    from sgft_sim.insert import InsertEnv

    return InsertEnv(config, seed=seed, render_mode=render_mode)


__all__ = ["PROXIES", "ProxyConfig", "get_proxy", "make_env"]
