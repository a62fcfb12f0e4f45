"""The four SGFT networks: actor, Q ensemble, state value V(s) and delta dynamics s' = s + f(s, a).

Every network takes *raw* observations and owns its observation normalizer (buffers in its state_dict), so each one
can be shipped and loaded on its own: the policy node loads only the actor, the learner reuses V and the dynamics.
All are MLPs with `num_layers` hidden layers of `hidden_dim` units (two of 512 in the paper).
"""

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sgft_core.normalization import Normalizer

LOG_STD_MIN = -5.0
LOG_STD_MAX = 2.0


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of the four networks; stored in checkpoints so a loader can rebuild them."""

    hidden_dim: int = 512
    num_layers: int = 2
    num_q: int = 2  # 2 = SAC's twin critic; RLPD uses a larger ensemble
    critic_layer_norm: bool = False  # RLPD's LayerNorm critic

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "NetworkConfig":
        return cls(
            hidden_dim=int(data["hidden_dim"]),
            num_layers=int(data["num_layers"]),
            num_q=int(data["num_q"]),
            critic_layer_norm=bool(data["critic_layer_norm"]),
        )


def mlp(in_dim: int, out_dim: int, hidden_dim: int, num_layers: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers):
        layers += [nn.Linear(dim, hidden_dim), nn.ReLU()]
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy with a state-dependent log std; actions lie in (−1, 1)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_dim: int = 512, num_layers: int = 2) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.obs_norm = Normalizer(obs_dim)
        self.trunk = mlp(obs_dim, hidden_dim, hidden_dim, num_layers - 1)
        self.trunk.append(nn.ReLU())
        self.mean_head = nn.Linear(hidden_dim, act_dim)
        self.log_std_head = nn.Linear(hidden_dim, act_dim)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-tanh mean and log std."""
        features = self.trunk(self.obs_norm(obs))
        log_std = torch.tanh(self.log_std_head(features))
        # CleanRL's soft bound keeps the gradient alive at the limits (a hard clamp would kill it).
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)
        return self.mean_head(features), log_std

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reparameterized action, its log-probability (B,) and the deterministic action tanh(mean)."""
        mean, log_std = self(obs)
        pre_tanh = mean + log_std.exp() * torch.randn_like(mean)
        action = torch.tanh(pre_tanh)
        gaussian_log_prob = (-0.5 * ((pre_tanh - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi))
        # log(1 − tanh(u)²) written stably as 2·(log 2 − u − softplus(−2u)).
        squash_correction = 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))
        log_prob = (gaussian_log_prob - squash_correction).sum(-1)
        return action, log_prob, torch.tanh(mean)

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self(obs)[0])

    @torch.no_grad()
    def act(self, obs: np.ndarray | torch.Tensor, deterministic: bool = False) -> np.ndarray | torch.Tensor:
        """Action(s) for one observation or a batch; numpy in gives float32 numpy out, a tensor gives a tensor."""
        as_numpy = not isinstance(obs, torch.Tensor)
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32)) if as_numpy else obs
        action = self.deterministic(obs_t) if deterministic else self.sample(obs_t)[0]
        return action.numpy() if as_numpy else action


class EnsembleLinear(nn.Module):
    """N independent linear layers applied in one batched matmul: x (N, B, in) → (N, B, out)."""

    def __init__(self, num_members: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default initialization range
        self.weight = nn.Parameter(torch.empty(num_members, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num_members, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over features with a separate affine transform per ensemble member."""

    def __init__(self, num_members: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_members, 1, dim))
        self.bias = nn.Parameter(torch.zeros(num_members, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:]) * self.weight + self.bias


class TwinCritic(nn.Module):
    """An ensemble of `num_q` Q(s, a) networks (2 = SAC's twin critic), optionally with LayerNorm (RLPD)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_dim: int = 512,
        num_layers: int = 2,
        num_q: int = 2,
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim, self.num_q = obs_dim, act_dim, num_q
        self.obs_norm = Normalizer(obs_dim)
        layers: list[nn.Module] = []
        dim = obs_dim + act_dim
        for _ in range(num_layers):
            layers.append(EnsembleLinear(num_q, dim, hidden_dim))
            if layer_norm:
                layers.append(EnsembleLayerNorm(num_q, hidden_dim))
            layers.append(nn.ReLU())
            dim = hidden_dim
        layers.append(EnsembleLinear(num_q, dim, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q-values of every member, shape (num_q, B)."""
        x = torch.cat([self.obs_norm(obs), action], dim=-1)
        return self.net(x.unsqueeze(0).expand(self.num_q, *x.shape)).squeeze(-1)


class StateValue(nn.Module):
    """V(s), shape (B,). SGFT's potential: regressed onto Q(s, π(s)) in sim, frozen while fine-tuning."""

    def __init__(self, obs_dim: int, hidden_dim: int = 512, num_layers: int = 2) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.obs_norm = Normalizer(obs_dim)
        self.net = mlp(obs_dim, 1, hidden_dim, num_layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(self.obs_norm(obs)).squeeze(-1)


class DeltaDynamics(nn.Module):
    """s' = s + f(s, a), where f predicts the *normalized* change of the observation."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_dim: int = 512, num_layers: int = 2) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.obs_norm = Normalizer(obs_dim)
        self.delta_norm = Normalizer(obs_dim)
        self.net = mlp(obs_dim + act_dim, obs_dim, hidden_dim, num_layers)

    def normalized_delta(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([self.obs_norm(obs), action], dim=-1))

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Predicted raw next observation."""
        return obs + self.delta_norm.unnormalize(self.normalized_delta(obs, action))

    def loss(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """MSE between predicted and true normalized deltas (every dimension weighs the same)."""
        return F.mse_loss(self.normalized_delta(obs, action), self.delta_norm(next_obs - obs))


@dataclass
class Networks:
    """The four networks of one SGFT agent: what a checkpoint holds."""

    actor: Actor
    critic: TwinCritic
    value: StateValue
    dynamics: DeltaDynamics

    def modules(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic": self.critic, "value": self.value, "dynamics": self.dynamics}

    def set_normalization(
        self, obs_mean: np.ndarray, obs_std: np.ndarray, delta_mean: np.ndarray, delta_std: np.ndarray
    ) -> None:
        for module in self.modules().values():
            module.obs_norm.set_stats(obs_mean, obs_std)
        self.dynamics.delta_norm.set_stats(delta_mean, delta_std)


def build_actor(obs_dim: int, act_dim: int, config: NetworkConfig) -> Actor:
    return Actor(obs_dim, act_dim, config.hidden_dim, config.num_layers)


def build_critic(obs_dim: int, act_dim: int, config: NetworkConfig) -> TwinCritic:
    return TwinCritic(obs_dim, act_dim, config.hidden_dim, config.num_layers, config.num_q, config.critic_layer_norm)


def build_networks(obs_dim: int, act_dim: int, config: NetworkConfig) -> Networks:
    return Networks(
        actor=build_actor(obs_dim, act_dim, config),
        critic=build_critic(obs_dim, act_dim, config),
        value=StateValue(obs_dim, config.hidden_dim, config.num_layers),
        dynamics=DeltaDynamics(obs_dim, act_dim, config.hidden_dim, config.num_layers),
    )
