"""MPPI over the learned dynamics model: MPC-SGFT's action selection.

Each decision maximizes, under the delta dynamics model,
    J(a_0..a_{H−1}) = Σ_{t<H} γ^t r̄_t + γ^H V_sim(s_H),   r̄_t = r(s_{t+1}) + γ·V_sim(s_{t+1}) − V_sim(s_t),
with H = 4, the task reward r from TaskSpec (torch) and the frozen V_sim. The shaping telescopes, so J equals
Σ γ^t r_t + 2·γ^H V_sim(s_H) − V_sim(s_0): V_sim gets twice the weight at the end of the segment, as the paper's
objective is written (`terminal_value_weight` scales the explicit γ^H V_sim term; 0 leaves the shaped sum alone).
A terminal state (push: puck off the table) ends the segment: later rewards and its potential count as 0.

The search is warm-started by the actor: two candidate sequences, the actor's deterministic rollout through the
model and the previous decision's plan shifted by one step (the actor's action appended), are scored and the search
starts around the better one. Every iteration samples
Gaussian perturbations around the mean, weights them by exp((J − max J)/λ) with λ scaled by the spread of J, and
refits mean and std; when the next iteration would overrun `time_budget_s` it stops early (anytime planning).
The returned action is the first step of the best sequence seen (the refitted mean or a sample,
the warm starts included), so the plan never scores worse than the actor's under the model.

Decision time: `python -m sgft_core.mppi --bench` prints median and p99 per decision; it must stay well inside the
200 ms control period on this 2-core CPU.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sgft_core.tasks import TaskSpec


@dataclass(frozen=True)
class MPPIConfig:
    horizon: int = 4
    num_samples: int = 256
    iterations: int = 3
    noise_std: float = 0.3  # initial std of the action perturbations (actions live in [−1, 1])
    min_std: float = 0.05
    temperature: float = 0.5  # λ in units of the std of J over the samples (scale-free)
    gamma: float = 0.99
    terminal_value_weight: float = 1.0
    # Anytime planning: skip the remaining iterations when the next one would end after this many seconds from the
    # start of the decision (CPU contention must not make the robot miss its 200 ms period); None: always all.
    time_budget_s: float | None = 0.12


class MPPI:
    """Plans one action per call; `reset()` between episodes drops the previous plan."""

    def __init__(self, task: TaskSpec, dynamics: nn.Module, value: nn.Module, actor: nn.Module,
                 config: MPPIConfig | None = None, seed: int = 0) -> None:
        self.task, self.dynamics, self.value, self.actor = task, dynamics, value, actor
        self.config = config or MPPIConfig()
        self.generator = torch.Generator().manual_seed(seed)
        self._previous: torch.Tensor | None = None  # last decision's best sequence (H, act_dim)
        self.last_iterations = 0  # iterations the last decision ran (fewer than configured under time pressure)

    def reset(self) -> None:
        self._previous = None

    @torch.no_grad()
    def objective(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """J of action sequences (N, H, act_dim) from observations (N, obs_dim) → (N,)."""
        cfg = self.config
        state, value_state = obs, self.value(obs)
        total = torch.zeros(len(obs))
        alive = torch.ones(len(obs))
        for t in range(actions.shape[1]):
            next_state = self.dynamics(state, actions[:, t])
            terminal = self.task.terminal(next_state).to(obs.dtype)
            value_next = self.value(next_state)
            shaped = self.task.reward(next_state) + cfg.gamma * (1.0 - terminal) * value_next - value_state
            total += alive * cfg.gamma**t * shaped
            alive = alive * (1.0 - terminal)
            state, value_state = next_state, value_next
        return total + cfg.terminal_value_weight * alive * cfg.gamma ** actions.shape[1] * value_state

    @torch.no_grad()
    def actor_rollout(self, obs: torch.Tensor) -> torch.Tensor:
        """The actor's deterministic action sequence (H, act_dim) through the model from one observation (1, D)."""
        actions, state = [], obs
        for _ in range(self.config.horizon):
            action = self.actor.deterministic(state)
            actions.append(action[0])
            state = self.dynamics(state, action)
        return torch.stack(actions)

    @torch.no_grad()
    def plan(self, obs: np.ndarray) -> np.ndarray:
        """The first action of the best plan for one observation, float32 in [−1, 1]."""
        cfg = self.config
        started = time.perf_counter()
        self.last_iterations = 0
        obs_t = torch.as_tensor(np.asarray(obs, np.float32)).reshape(1, -1)
        warm_starts = [self.actor_rollout(obs_t)]
        if self._previous is not None:  # receding horizon: the last plan one step on, the actor's action at its end
            warm_starts.append(torch.cat([self._previous[1:], warm_starts[0][-1:]]))
        warm_starts_t = torch.stack(warm_starts)
        warm_values = self.objective(obs_t.expand(len(warm_starts), -1), warm_starts_t)
        best = int(warm_values.argmax())  # search around the better warm start
        best_actions, best_value = warm_starts_t[best], float(warm_values[best])
        mean = best_actions
        std = torch.full_like(mean, cfg.noise_std)
        start = obs_t.expand(cfg.num_samples, -1)
        for iteration in range(cfg.iterations):
            noise = torch.randn((cfg.num_samples, *mean.shape), generator=self.generator)
            actions = (mean + std * noise).clamp(-1.0, 1.0)
            actions[0] = mean  # the current mean always competes
            returns = self.objective(start, actions)
            top = int(returns.argmax())
            if returns[top] > best_value:
                best_value, best_actions = float(returns[top]), actions[top]
            weights = torch.softmax((returns - returns[top]) / (cfg.temperature * returns.std() + 1e-6), dim=0)
            mean = (weights[:, None, None] * actions).sum(0)
            std = ((weights[:, None, None] * (actions - mean) ** 2).sum(0)).sqrt().clamp_min(cfg.min_std)
            self.last_iterations = iteration + 1
            elapsed = time.perf_counter() - started
            if cfg.time_budget_s is not None and elapsed * (iteration + 2) / (iteration + 1) > cfg.time_budget_s:
                break
        mean_value = float(self.objective(obs_t, mean[None])[0])
        if mean_value >= best_value:
            best_actions = mean
        self._previous = best_actions
        return best_actions[0].numpy().astype(np.float32)


def bench(decisions: int = 100, threads: int = 1, config: MPPIConfig | None = None, task_name: str = "push",
          hidden_dim: int = 512) -> tuple[float, float]:
    """Median and p99 decision time (ms) with networks of the given width (the paper's: 512)."""
    from sgft_core.networks import NetworkConfig, build_networks
    from sgft_core.tasks import get_task

    torch.set_num_threads(threads)
    spec = get_task(task_name)
    nets = build_networks(spec.obs_dim, spec.action_dim, NetworkConfig(hidden_dim=hidden_dim))
    planner = MPPI(spec, nets.dynamics, nets.value, nets.actor, config)
    rng = np.random.default_rng(0)
    observations = rng.uniform(spec.obs_low, spec.obs_high, (decisions + 5, spec.obs_dim)).astype(np.float32)
    for obs in observations[:5]:  # warm-up
        planner.plan(obs)
    times, iterations = [], []
    for obs in observations[5:]:
        start = time.perf_counter()
        planner.plan(obs)
        times.append(1000.0 * (time.perf_counter() - start))
        iterations.append(planner.last_iterations)
    median, p99 = float(np.median(times)), float(np.percentile(times, 99))
    cfg = planner.config
    print(f"MPPI on {task_name} (H={cfg.horizon}, {cfg.num_samples} samples × {cfg.iterations} iterations, "
          f"width {hidden_dim}, {threads} thread(s)): median {median:.1f} ms, p99 {p99:.1f} ms per decision "
          f"over {decisions} (mean {np.mean(iterations):.2f} iterations run, time budget {cfg.time_budget_s} s); "
          f"control period {1000 * spec.control_period:.0f} ms")
    return median, p99


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="MPPI decision-time benchmark")
    parser.add_argument("--bench", action="store_true")
    parser.add_argument("--decisions", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=MPPIConfig.num_samples)
    parser.add_argument("--iterations", type=int, default=MPPIConfig.iterations)
    parser.add_argument("--task", default="push")
    parser.add_argument("--hidden-dim", type=int, default=512)
    parser.add_argument("--time-budget", type=float, default=MPPIConfig.time_budget_s,
                        help="seconds per decision after which no new iteration starts (<= 0: none)")
    args = parser.parse_args(argv)
    if not args.bench:
        parser.error("nothing to do: pass --bench")
    bench(args.decisions, args.threads, MPPIConfig(num_samples=args.samples, iterations=args.iterations,
                                                    time_budget_s=args.time_budget if args.time_budget > 0 else None),
          args.task,
          args.hidden_dim)


if __name__ == "__main__":
    main()
