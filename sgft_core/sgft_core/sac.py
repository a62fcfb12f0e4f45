"""Soft actor-critic with SGFT's extra heads, CleanRL style: the whole update is written out in `SAC.update`.

One update trains, on the same batch: the Q ensemble (soft Bellman target from a Polyak-averaged copy), the actor,
the temperature (autotuned towards −|A| entropy, or fixed), the state value V(s) regressed onto Q(s, tanh(mean(s)))
(the deterministic action, so V is a deterministic potential for reward shaping) and the delta dynamics model.

Variants are configurations of `SACConfig`, not subclasses: SGFT fine-tuning (issue 4) uses a fixed temperature,
relabels rewards and sets `terminal` on every transition *before* calling `update`, and freezes V with
`train_value=False`; RLPD uses `num_q=10`, `critic_layer_norm=True`, `target_q_subset=2`, `actor_q_reduce="mean"`.
"""

import copy
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sgft_core.networks import NetworkConfig, Networks, build_critic, build_networks
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


def _noisy(obs: torch.Tensor, std: float, prob: float) -> torch.Tensor:
    """Gaussian observation noise on a random subset (probability `prob`) of the rows."""
    if std <= 0 or prob <= 0:
        return obs
    mask = (torch.rand(obs.shape[0], 1) < prob).to(obs.dtype)
    return obs + mask * std * torch.randn_like(obs)


class SAC:
    """The networks, the target critic, the optimizers and the temperature of one learner."""

    def __init__(self, obs_dim: int, act_dim: int, config: SACConfig, networks: Networks | None = None) -> None:
        self.obs_dim, self.act_dim, self.config = obs_dim, act_dim, config
        self.networks = networks if networks is not None else build_networks(obs_dim, act_dim, config.network)
        self.actor, self.value, self.dynamics = self.networks.actor, self.networks.value, self.networks.dynamics
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.lr)
        self.value_optimizer = torch.optim.Adam(self.value.parameters(), lr=config.lr)
        self.dynamics_optimizer = torch.optim.Adam(self.dynamics.parameters(), lr=config.lr)
        self._set_critic(self.networks.critic)
        self.target_entropy = -float(act_dim) if config.target_entropy is None else config.target_entropy
        self.log_alpha = torch.tensor(math.log(config.init_temperature), requires_grad=config.autotune_temperature)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=config.lr)

    def _set_critic(self, critic: nn.Module) -> None:
        self.critic = self.networks.critic = critic
        self.critic_target = copy.deepcopy(critic).requires_grad_(False)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=self.config.lr)

    def reset_critic(self) -> None:
        """Fresh critic (and target and optimizer) with the current observation statistics (SGFT fine-tuning)."""
        critic = build_critic(self.obs_dim, self.act_dim, self.config.network)
        critic.obs_norm.load_state_dict(self.critic.obs_norm.state_dict())
        self._set_critic(critic)

    def set_normalization(self, batch: Batch) -> None:
        """Fix every network's normalization from (random-action) data; also resets the target critic's copy."""
        self.networks.set_normalization(*normalization_from_data(batch))
        self.critic_target.obs_norm.load_state_dict(self.critic.obs_norm.state_dict())

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp())

    def update(self, batch: Batch) -> dict[str, float]:
        """One gradient step of every trained network on `batch` (tensors); returns the losses."""
        cfg = self.config
        alpha = self.log_alpha.detach().exp()
        # Observation noise (sim-to-real robustness) on the RL inputs only; the dynamics model sees clean data.
        obs = _noisy(batch.obs, cfg.obs_noise_std, cfg.obs_noise_prob)
        next_obs = _noisy(batch.next_obs, cfg.obs_noise_std, cfg.obs_noise_prob)

        # Critic: soft Bellman backup from the target ensemble.
        with torch.no_grad():
            next_action, next_log_prob, _ = self.actor.sample(next_obs)
            target_qs = self.critic_target(next_obs, next_action)
            if cfg.target_q_subset is not None:
                target_qs = target_qs[torch.randperm(target_qs.shape[0])[: cfg.target_q_subset]]
            next_value = target_qs.min(0).values - alpha * next_log_prob
            q_target = batch.reward + cfg.gamma * (1.0 - batch.terminal) * next_value
        qs = self.critic(obs, batch.action)
        critic_loss = ((qs - q_target) ** 2).mean(1).sum()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()
        losses = {"critic_loss": critic_loss.item(), "q_mean": qs.mean().item()}

        if cfg.train_actor:
            self.critic.requires_grad_(False)  # the actor loss needs dQ/da only, not dQ/dθ
            action, log_prob, _ = self.actor.sample(obs)
            qs_pi = self.critic(obs, action)
            q_pi = qs_pi.min(0).values if cfg.actor_q_reduce == "min" else qs_pi.mean(0)
            actor_loss = (alpha * log_prob - q_pi).mean()
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optimizer.step()
            self.critic.requires_grad_(True)
            losses |= {"actor_loss": actor_loss.item(), "entropy": -log_prob.mean().item()}
            if cfg.autotune_temperature:
                alpha_loss = (-self.log_alpha.exp() * (log_prob.detach() + self.target_entropy)).mean()
                self.alpha_optimizer.zero_grad(set_to_none=True)
                alpha_loss.backward()
                self.alpha_optimizer.step()
                losses["alpha_loss"] = alpha_loss.item()
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

        with torch.no_grad():
            for target_param, param in zip(self.critic_target.parameters(), self.critic.parameters()):
                target_param.lerp_(param, cfg.tau)
        return losses
