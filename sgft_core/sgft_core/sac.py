"""Soft actor-critic, RLPD style: `SoftActorCritic` owns the actor, the critic ensemble, its Polyak-averaged target
and the temperature, and writes each part of an update out once (`soft_target`, `critic_step`, `actor_step`,
`temperature_step`, `polyak`). Pretraining (`SAC` below) and fine-tuning (sgft_core.finetune) compose their updates
from these steps and add their own heads and targets around them.

Pretraining's `SAC.update` trains, on one batch: the Q ensemble, the actor, the temperature (autotuned towards
−|A| entropy, or fixed), the state value V(s) regressed onto Q(s, tanh(mean(s))) (the deterministic action, so V is
a deterministic potential for reward shaping) and the delta dynamics model. RLPD's critic is a configuration:
`num_q=10`, `critic_layer_norm=True`, `target_q_subset=2`, `actor_q_reduce="mean"`.
"""

import copy
import math
import threading
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from sgft_core.networks import Actor, NetworkConfig, Networks, TwinCritic, build_critic, build_networks
from sgft_core.normalization import MIN_DELTA_STD, MIN_OBS_STD, compute_stats
from sgft_core.replay import Batch


@dataclass
class SACConfig:
    network: NetworkConfig = field(default_factory=NetworkConfig)
    gamma: float = 0.99
    lr: float = 3e-4
    batch_size: int = 256
    utd: int = 1  # gradient updates per environment step (the training loop reads it)
    tau: float = 0.005  # Polyak rate of the target critic
    init_temperature: float = 1.0
    autotune_temperature: bool = True
    target_entropy: float | None = None  # None: −act_dim
    obs_noise_std: float = 0.004  # raw observation units (metres / radians)
    obs_noise_prob: float = 0.3  # probability that a sampled observation gets the noise
    random_data_fraction: float = 0.5  # share of each batch drawn from the random-action data
    target_q_subset: int | None = None  # min over a random subset of the ensemble (RLPD: 2); None = all members
    actor_q_reduce: str = "min"  # "min" (SAC) or "mean" (RLPD) over the ensemble
    train_actor: bool = True
    train_value: bool = True
    train_dynamics: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SACConfig":
        data = dict(data)
        network = NetworkConfig.from_dict(data.pop("network"))
        return cls(network=network, **data)


def normalization_from_data(batch: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Observation and observation-delta statistics (mean, std, delta mean, delta std) of a numpy batch, typically
    the random-action warm-up data."""
    obs_mean, obs_std = compute_stats(np.concatenate([batch.obs, batch.next_obs]), MIN_OBS_STD)
    delta_mean, delta_std = compute_stats(np.asarray(batch.next_obs) - np.asarray(batch.obs), MIN_DELTA_STD)
    return obs_mean, obs_std, delta_mean, delta_std


def critic_regression_loss(qs: torch.Tensor, target: torch.Tensor, huber_delta: float | None = None) -> torch.Tensor:
    """Σ over ensemble members of the mean error against `target`: squared, or Huber (e² inside ±δ, 2δ|e| − δ²
    outside, so the two agree on small errors and an outlier's gradient is capped at 2δ)."""
    if huber_delta is None:
        return ((qs - target) ** 2).mean(1).sum()
    return 2.0 * F.huber_loss(qs, target.expand_as(qs), delta=huber_delta, reduction="none").mean(1).sum()


class SoftActorCritic:
    """Actor, critic ensemble, target critic, temperature and their optimizers; one method per update step.

    `lock` guards the actor's weights: `actor_step` takes it around the optimizer step and `actor_state` around the
    copy, so a thread publishing the actor never sees a half-written step."""

    def __init__(self, actor: Actor, critic: TwinCritic, *, lr: float, gamma: float, tau: float,
                 temperature: float, autotune_temperature: bool, target_entropy: float | None = None,
                 target_q_subset: int | None = None, actor_q_reduce: str = "min",
                 actor_lr: float | None = None) -> None:
        if actor_q_reduce not in ("min", "mean"):
            raise ValueError("actor_q_reduce must be 'min' or 'mean'")
        self.gamma, self.tau = gamma, tau
        self.target_q_subset, self.actor_q_reduce = target_q_subset, actor_q_reduce
        self.autotune_temperature = autotune_temperature
        self.actor, self.critic = actor, critic
        self.critic_target = copy.deepcopy(critic).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(actor.parameters(), lr=actor_lr or lr)
        self.critic_optimizer = torch.optim.Adam(critic.parameters(), lr=lr)
        self.log_alpha = torch.tensor(math.log(temperature), requires_grad=autotune_temperature)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=lr)
        self.target_entropy = -float(actor.act_dim) if target_entropy is None else target_entropy
        self.lock = threading.Lock()
        self.policy_version = 0  # +1 per actor step

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp())

    @torch.no_grad()
    def soft_target(self, reward: torch.Tensor, next_obs: torch.Tensor, terminal: torch.Tensor) -> torch.Tensor:
        """r + γ·(1 − terminal)·(min over (a random subset of) the target ensemble of Q(s', a') − α log π(a'|s'))."""
        alpha = self.log_alpha.detach().exp()
        next_action, next_log_prob, _ = self.actor.sample(next_obs)
        target_qs = self.critic_target(next_obs, next_action)
        if self.target_q_subset is not None:
            target_qs = target_qs[torch.randperm(target_qs.shape[0])[: self.target_q_subset]]
        next_value = target_qs.min(0).values - alpha * next_log_prob
        return reward + self.gamma * (1.0 - terminal) * next_value

    def critic_step(self, obs: torch.Tensor, action: torch.Tensor, q_target: torch.Tensor,
                    huber_delta: float | None = None, bf16: bool = False) -> dict[str, float]:
        """One gradient step of every ensemble member towards `q_target` (squared error, or Huber with δ)."""
        # bfloat16 matrix products only; the weights, the targets and the loss stay float32.
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            qs = self.critic(obs, action).float()
        critic_loss = critic_regression_loss(qs, q_target, huber_delta)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()
        return {"critic_loss": critic_loss.item(), "q_mean": qs.mean().item()}

    def actor_step(self, obs: torch.Tensor, prior: Actor | None = None, prior_weight: float = 0.0,
                   bf16: bool = False) -> tuple[dict[str, float], torch.Tensor]:
        """Maximize Q − α log π on `obs` (Q: min or mean over the ensemble); with a `prior` actor, minus
        `prior_weight`·mean‖tanh μ(s) − tanh μ_prior(s)‖². Returns the losses and log π of the sampled actions."""
        self.critic.requires_grad_(False)  # the actor loss needs dQ/da only, not dQ/dθ
        action, log_prob, mean_action = self.actor.sample(obs)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            qs_pi = self.critic(obs, action).float()
        q_pi = qs_pi.min(0).values if self.actor_q_reduce == "min" else qs_pi.mean(0)
        actor_loss = (self.log_alpha.detach().exp() * log_prob - q_pi).mean()
        if prior is not None and prior_weight > 0:
            with torch.no_grad():
                prior_action = prior.deterministic(obs)
            actor_loss = actor_loss + prior_weight * ((mean_action - prior_action) ** 2).sum(-1).mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        with self.lock:
            self.actor_optimizer.step()
            self.policy_version += 1
        self.critic.requires_grad_(True)
        return {"actor_loss": actor_loss.item(), "entropy": -log_prob.mean().item()}, log_prob

    def temperature_step(self, log_prob: torch.Tensor) -> dict[str, float]:
        """Move α so that the policy's entropy −E[log π] approaches the target entropy."""
        alpha_loss = (-self.log_alpha.exp() * (log_prob.detach() + self.target_entropy)).mean()
        self.alpha_optimizer.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_optimizer.step()
        return {"alpha_loss": alpha_loss.item()}

    @torch.no_grad()
    def polyak(self) -> None:
        """θ_target ← (1 − τ)·θ_target + τ·θ."""
        for target_param, param in zip(self.critic_target.parameters(), self.critic.parameters()):
            target_param.lerp_(param, self.tau)

    def actor_state(self) -> dict[str, torch.Tensor]:
        """A consistent copy of the actor's weights (with its normalizer)."""
        with self.lock:
            return {name: tensor.detach().clone() for name, tensor in self.actor.state_dict().items()}


def _noisy(obs: torch.Tensor, std: float, prob: float) -> torch.Tensor:
    """Gaussian observation noise on a random subset (probability `prob`) of the rows."""
    if std <= 0 or prob <= 0:
        return obs
    mask = (torch.rand(obs.shape[0], 1) < prob).to(obs.dtype)
    return obs + mask * std * torch.randn_like(obs)


class SAC(SoftActorCritic):
    """Pretraining's agent: SoftActorCritic plus the state value V_sim and the delta dynamics model."""

    def __init__(self, obs_dim: int, act_dim: int, config: SACConfig, networks: Networks | None = None) -> None:
        self.obs_dim, self.act_dim, self.config = obs_dim, act_dim, config
        self.networks = networks if networks is not None else build_networks(obs_dim, act_dim, config.network)
        super().__init__(self.networks.actor, self.networks.critic, lr=config.lr, gamma=config.gamma, tau=config.tau,
                         temperature=config.init_temperature, autotune_temperature=config.autotune_temperature,
                         target_entropy=config.target_entropy, target_q_subset=config.target_q_subset,
                         actor_q_reduce=config.actor_q_reduce)
        self.value, self.dynamics = self.networks.value, self.networks.dynamics
        self.value_optimizer = torch.optim.Adam(self.value.parameters(), lr=config.lr)
        self.dynamics_optimizer = torch.optim.Adam(self.dynamics.parameters(), lr=config.lr)

    def reset_critic(self) -> None:
        """Fresh critic (and target and optimizer) with the current observation statistics."""
        critic = build_critic(self.obs_dim, self.act_dim, self.config.network)
        critic.obs_norm.load_state_dict(self.critic.obs_norm.state_dict())
        self.critic = self.networks.critic = critic
        self.critic_target = copy.deepcopy(critic).requires_grad_(False)
        self.critic_optimizer = torch.optim.Adam(critic.parameters(), lr=self.config.lr)

    def set_normalization(self, batch: Batch) -> None:
        """Fix every network's normalization from (random-action) data; also resets the target critic's copy."""
        self.networks.set_normalization(*normalization_from_data(batch))
        self.critic_target.obs_norm.load_state_dict(self.critic.obs_norm.state_dict())

    def update(self, batch: Batch) -> dict[str, float]:
        """One gradient step of every trained network on `batch` (tensors); returns the losses."""
        cfg = self.config
        # Observation noise (sim-to-real robustness) on the RL inputs only; the dynamics model sees clean data.
        obs = _noisy(batch.obs, cfg.obs_noise_std, cfg.obs_noise_prob)
        next_obs = _noisy(batch.next_obs, cfg.obs_noise_std, cfg.obs_noise_prob)

        q_target = self.soft_target(batch.reward, next_obs, batch.terminal)
        losses = self.critic_step(obs, batch.action, q_target)

        if cfg.train_actor:
            actor_losses, log_prob = self.actor_step(obs)
            losses |= actor_losses
            if cfg.autotune_temperature:
                losses |= self.temperature_step(log_prob)
        losses["alpha"] = self.alpha

        if cfg.train_value:
            # V(s) ≈ Q(s, π_det(s)): a deterministic potential, so the shaping telescopes when fine-tuning.
            with torch.no_grad():
                v_target = self.critic(obs, self.actor.deterministic(obs)).min(0).values
            value_loss = F.mse_loss(self.value(obs), v_target)
            self.value_optimizer.zero_grad(set_to_none=True)
            value_loss.backward()
            self.value_optimizer.step()
            losses["value_loss"] = value_loss.item()

        if cfg.train_dynamics:
            dynamics_loss = self.dynamics.loss(batch.obs, batch.action, batch.next_obs)
            self.dynamics_optimizer.zero_grad(set_to_none=True)
            dynamics_loss.backward()
            self.dynamics_optimizer.step()
            losses["dynamics_loss"] = dynamics_loss.item()

        self.polyak()
        return losses
