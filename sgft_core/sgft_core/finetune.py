"""Real-world fine-tuning: SGFT-SAC and its baselines as configurations of ONE incremental learner.

SGFT (the paper's Dyna-SGFT) in one paragraph: a value function V_sim learned in simulation is frozen and used as a
potential, every transition's reward is relabelled r̄ = r + γ·V_sim(s') − V_sim(s), and the critic learns only an
H-step horizon (H = 1: done = True on every transition, so the critic never bootstraps from itself; V_sim already
carries the long-horizon information). For each sampled real state, `imagined_branches` extra transitions are
imagined with the dynamics model (fine-tuned on real data) and the current actor, so a batch of 256 real rows becomes
256·(1 + 5) = 1536 critic rows. Actor, critic and dynamics train on real data only.

Variants (`make_config(name)`); the only difference between them is the configuration:
    sgft          SGFT-SAC as above: 20 pre-collected π_sim episodes, fresh critic, α = 0.01 fixed, UTD 2, H = 1
    sgft_kept_critic  SGFT from the simulator's critic: V_sim-bootstrapped H = 3 target, Huber loss, 1000 warm-up
                  updates (push's graph uses it: the fresh critic collapses there)
    sac_finetune  original reward, infinite horizon, continue from π_sim and its critic
    pbrs_sac      shaped reward r̄, infinite horizon (no cut), no imagined branches
    rlpd          fresh policy and LayerNorm critic ensemble, 50/50 sim/real batches, high UTD, autotuned α
    zero_shot     π_sim, no updates
    mpc_sgft      MPPI over the dynamics model (sgft_core.mppi), dynamics fine-tuned on real data between episodes

Incremental use (the ROS learner node feeds it from a topic and trains in its own thread; the benchmark drives it
directly against an env):
    learner = FinetuneLearner(spec, checkpoint.networks, make_config("sgft"), seed=0)
    row = learner.add_transition(obs, action, reward, next_obs, terminal, truncated)   # raw reward r(s'); the row
    learner.add_transition(..., intervention=True)   # an operator's action: a demonstration when demo_fraction > 0
    learner.label_episode(last_row, success=True, perceived=False)   # the operator's label of a finished episode
    if learner.updates_due(): learner.update(learner.updates_due())
    learner.act(obs, deterministic=False); learner.actor_state(); learner.value_sim(obs); learner.q_value(obs, a)
    learner.state_dict() / learner.load_state_dict(state)   # what a restart needs: trained networks and progress

The learner is a sgft_core.sac.SoftActorCritic: its update calls the same critic, actor, temperature and Polyak
steps as pretraining, with SGFT's relabelled, horizon-cut, branch-augmented critic targets around them.

Throughput: `python -m sgft_core.finetune --bench` prints combined updates per second at the SGFT batch (1536).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sgft_core.networks import EnsembleLayerNorm, NetworkConfig, Networks, build_actor, build_critic
from sgft_core.overrides import coerce_fields
from sgft_core.replay import Batch, ReplayBuffer, sample_mixed
from sgft_core.sac import SoftActorCritic
from sgft_core.tasks import TaskSpec


@dataclass(frozen=True)
class FinetuneConfig:
    method: str = "sgft"
    gamma: float = 0.99
    lr: float = 3e-4
    actor_lr: float | None = None  # the actor's own learning rate; None: lr
    # Weight of a pull towards the starting policy: the actor loss gains w·mean‖tanh μ(s) − tanh μ_sim(s)‖² on the
    # sampled states (0: none, plain SAC). A critic fit to a few noisy episodes can lead the actor away from π_sim.
    prior_regularization: float = 0.0
    batch_size: int = 256  # real (and sim) rows per update, before the imagined branches are added
    utd: int = 2  # gradient updates per real transition
    reward: str = "shaped"  # "shaped": r̄ = r + γ·V_sim(s') − V_sim(s); "raw": the task reward r
    horizon: int | None = 1  # critic horizon H (1: no bootstrapping at all); None: infinite (soft Bellman backup)
    imagined_branches: int = 5  # per sampled real state, model-imagined transitions added to the critic batch
    # Branch actions: 0 samples them from the actor (whose std is tiny at α = 0.01, so the branches repeat the action
    # already in the data); σ > 0 draws them around the actor's mean with N(0, σ²) noise clipped to [−1, 1], so the
    # critic also learns the actions the actor's gradient will move towards.
    branch_action_noise: float = 0.0
    # Critic regression loss: None = squared error; δ > 0 = Huber with that δ. The dynamics model now and then imagines
    # the puck off the table, a terminal row with r̄ ≈ −V_sim(s) ≈ −75 against ±2 elsewhere; squared, one such row
    # outweighs the whole batch and jolts the critic (and, through it, the actor).
    critic_huber_delta: float | None = None
    prefill_episodes: int = 20  # episodes collected with the starting policy before the first update
    critic_warmup_updates: int = 0  # critic-only updates when training starts (a fresh critic misleads the actor)
    reset_critic: bool = True  # fresh critic instead of the simulator's
    # Finite horizon only: add V_sim(s) back to the H-step target, so it reads Σ_{t<H} γ^t r_t + γ^H V_sim(s_H), the
    # simulator critic's own Bellman target with V_sim as the bootstrap. V_sim(s) does not depend on the action, so
    # the policy it induces is the same as with r̄; what changes is the scale, which lets the kept sim critic
    # (reset_critic=False) start consistent with π_sim instead of from a random fresh critic's gradients.
    value_sim_in_target: bool = False
    fresh_actor: bool = False  # fresh policy instead of π_sim (RLPD)
    temperature: float = 0.01  # α; the initial value when autotuned
    autotune_temperature: bool = False
    target_entropy: float | None = None  # None: −act_dim
    num_q: int = 2  # critic ensemble size (a fresh critic gets it; a kept critic keeps its own)
    critic_layer_norm: bool = False
    target_q_subset: int | None = None  # min over a random subset of target members (RLPD: 2); None: all
    actor_q_reduce: str = "min"  # "min" (SAC) or "mean" (RLPD) over the ensemble
    sim_data_fraction: float = 0.0  # share of each batch drawn from sim data (RLPD's symmetric sampling: 0.5)
    # Share of each batch drawn from the operator's interventions (RLPD / HIL-SERL style demonstrations): a
    # transition added with intervention=True also goes into a demonstration buffer, and once it holds any, each
    # batch takes this share from it and the rest from all real data (demonstrations included). 0: off.
    demo_fraction: float = 0.0
    # The operator's success label of an episode in what the learner trains on: the episode's last transition gets
    # label_reward·(label − perceived success) on top of its raw reward, the outcome the operator saw instead of the
    # perceived one (a success wrongly perceived as failure gains the bonus, the converse loses it). The task rewards
    # are functions of the observation, so this is the one place a label can enter them. 0: labels are recorded but
    # the rewards are untouched.
    label_reward: float = 0.0
    tau: float = 0.005  # Polyak rate of the target critic (only used with an infinite horizon)
    train_actor: bool = True
    train_critic: bool = True
    train_dynamics: bool = True
    update_between_episodes: bool = False  # owe the updates of an episode only when it ends (MPC-SGFT)
    acting: str = "actor"  # "actor": π; "mppi": sgft_core.mppi over the dynamics model
    replay_capacity: int = 200_000
    # Critic forward/backward passes with bfloat16 matrix products (≈2.5× faster on CPUs with AMX / AVX-512 BF16);
    # weights, targets, V_sim and the optimizer stay float32. Off by default: a Q of magnitude 30 (infinite
    # horizon) keeps only ≈0.1 of resolution in bfloat16; SGFT's H = 1 values are small enough to tolerate it.
    bf16_critic: bool = False

    def __post_init__(self) -> None:
        if self.reward not in ("shaped", "raw"):
            raise ValueError(f"reward must be 'shaped' or 'raw', got {self.reward!r}")
        if self.horizon is not None and self.horizon < 1:
            raise ValueError("horizon must be ≥ 1 or None (infinite)")
        if self.actor_q_reduce not in ("min", "mean"):
            raise ValueError("actor_q_reduce must be 'min' or 'mean'")
        if self.acting not in ("actor", "mppi"):
            raise ValueError("acting must be 'actor' or 'mppi'")
        if not 0.0 <= self.sim_data_fraction < 1.0:
            raise ValueError("sim_data_fraction must lie in [0, 1)")
        if not 0.0 <= self.demo_fraction < 1.0 or self.demo_fraction + self.sim_data_fraction >= 1.0:
            raise ValueError("demo_fraction must lie in [0, 1) and leave room for other real data next to "
                             "sim_data_fraction")
        if self.label_reward < 0:
            raise ValueError("label_reward must be ≥ 0")
        if self.value_sim_in_target and (self.horizon is None or self.reward != "shaped"):
            raise ValueError("value_sim_in_target needs a finite horizon and the shaped reward")
        if self.critic_huber_delta is not None and self.critic_huber_delta <= 0:
            raise ValueError("critic_huber_delta must be > 0 or None (squared error)")
        if self.branch_action_noise < 0:
            raise ValueError("branch_action_noise must be ≥ 0 (0: the actor's own distribution)")
        if self.prior_regularization < 0 or (self.actor_lr is not None and self.actor_lr <= 0):
            raise ValueError("prior_regularization must be ≥ 0 and actor_lr > 0 (or None: lr)")
        if self.batch_size < 1 or min(self.utd, self.imagined_branches, self.prefill_episodes) < 0:
            raise ValueError("batch_size must be positive; utd, imagined_branches, prefill_episodes non-negative")

    @property
    def trains(self) -> bool:
        return self.utd > 0 and (self.train_actor or self.train_critic or self.train_dynamics)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_PRESETS: dict[str, FinetuneConfig] = {
    "sgft": FinetuneConfig(method="sgft", critic_warmup_updates=200),
    # SGFT that keeps the simulator's critic instead of a fresh one: the H-step target with V_sim(s) added back (the
    # sim critic's own scale), H = 3, a Huber critic loss and a 1000-update critic warm-up. On push's "real" robot the
    # fresh critic fit to 20 noisy episodes misleads the actor and success collapses; this one does not.
    "sgft_kept_critic": FinetuneConfig(
        method="sgft_kept_critic", reset_critic=False, value_sim_in_target=True, horizon=3, critic_huber_delta=1.0,
        critic_warmup_updates=1000,
    ),
    "sac_finetune": FinetuneConfig(
        method="sac_finetune", reward="raw", horizon=None, imagined_branches=0, reset_critic=False,
        train_dynamics=False,
    ),
    "pbrs_sac": FinetuneConfig(
        method="pbrs_sac", reward="shaped", horizon=None, imagined_branches=0, reset_critic=False,
        train_dynamics=False,
    ),
    # RLPD (Ball et al. 2023): UTD 20 and 10 critics in the paper; UTD 10 keeps a 5 Hz robot's episode near a minute
    # of CPU here. Its prior data is sim data, so it starts training on the first real episode.
    "rlpd": FinetuneConfig(
        method="rlpd", reward="raw", horizon=None, imagined_branches=0, prefill_episodes=1, fresh_actor=True,
        temperature=1.0, autotune_temperature=True, num_q=10, critic_layer_norm=True, target_q_subset=2,
        actor_q_reduce="mean", sim_data_fraction=0.5, utd=10, train_dynamics=False,
    ),
    "zero_shot": FinetuneConfig(
        method="zero_shot", utd=0, imagined_branches=0, prefill_episodes=0, reset_critic=False, train_actor=False,
        train_critic=False, train_dynamics=False,
    ),
    "mpc_sgft": FinetuneConfig(
        method="mpc_sgft", acting="mppi", imagined_branches=0, prefill_episodes=0, reset_critic=False,
        train_actor=False, train_critic=False, train_dynamics=True, update_between_episodes=True,
    ),
}


METHODS = tuple(_PRESETS)


def make_config(method: str, **overrides) -> FinetuneConfig:
    """The named variant's configuration with field overrides (e.g. `batch_size=64`), validated by
    sgft_core.overrides: an unknown field or a value of the wrong type raises ValueError naming it, and an optional
    field takes "none" for None."""
    try:
        preset = _PRESETS[method]
    except KeyError:
        raise ValueError(f"unknown fine-tuning method {method!r}; known: {', '.join(METHODS)}") from None
    return dataclasses.replace(preset, **coerce_fields(FinetuneConfig, overrides))


class FinetuneLearner(SoftActorCritic):
    """One fine-tuning learner; thread-safe between one feeding thread (add_transition) and one training thread."""

    def __init__(self, task: TaskSpec, networks: Networks, config: FinetuneConfig, seed: int = 0,
                 network_config: NetworkConfig | None = None) -> None:
        self.task, self.config, self.seed = task, config, seed
        # Offset: a learner seeded like the pretraining run must not rebuild the very same "fresh" networks.
        torch.manual_seed(seed + 1_000_003)
        self.rng = np.random.default_rng(seed)
        obs_dim, act_dim = task.obs_dim, task.action_dim
        base = network_config or NetworkConfig(  # read off the networks when the checkpoint's record is not given
            hidden_dim=networks.actor.mean_head.in_features,
            num_layers=sum(isinstance(m, nn.Linear) for m in networks.actor.trunk),
            num_q=networks.critic.num_q,
            critic_layer_norm=any(isinstance(m, EnsembleLayerNorm) for m in networks.critic.modules()),
        )
        keep_critic = not (config.reset_critic or config.fresh_actor)
        # The architecture of the networks this learner trains (what a checkpoint of it must record).
        self.network_config = base if keep_critic else dataclasses.replace(
            base, num_q=config.num_q, critic_layer_norm=config.critic_layer_norm)
        obs_norm_state = networks.actor.obs_norm.state_dict()

        # The simulator's networks are copied, never trained in place: V_sim stays the frozen potential.
        self.value = copy.deepcopy(networks.value).eval().requires_grad_(False)
        self.dynamics = copy.deepcopy(networks.dynamics)
        if config.fresh_actor:
            actor = build_actor(obs_dim, act_dim, self.network_config)
            actor.obs_norm.load_state_dict(obs_norm_state)
        else:
            actor = copy.deepcopy(networks.actor)
        if not keep_critic:
            critic = build_critic(obs_dim, act_dim, self.network_config)
            critic.obs_norm.load_state_dict(obs_norm_state)
        else:
            critic = copy.deepcopy(networks.critic)
        super().__init__(actor, critic, lr=config.lr, actor_lr=config.actor_lr, gamma=config.gamma, tau=config.tau,
                         temperature=config.temperature, autotune_temperature=config.autotune_temperature,
                         target_entropy=config.target_entropy, target_q_subset=config.target_q_subset,
                         actor_q_reduce=config.actor_q_reduce)
        # The starting policy, frozen: the anchor of prior_regularization.
        self.actor_prior = copy.deepcopy(self.actor).requires_grad_(False) if config.prior_regularization else None
        self.dynamics_optimizer = torch.optim.Adam(self.dynamics.parameters(), lr=config.lr)

        self.real = ReplayBuffer(config.replay_capacity, obs_dim, act_dim)
        self.sim = ReplayBuffer(config.replay_capacity, obs_dim, act_dim)
        self.demo = ReplayBuffer(config.replay_capacity, obs_dim, act_dim)  # interventions, when demo_fraction > 0
        self._demo_rows: dict[int, int] = {}  # real row → its copy's row in `demo`
        self._label_base: dict[int, float] = {}  # real row → its raw reward, once a label has moved it
        self._demo_added = 0
        self.episodes = 0  # finished real episodes
        self.transitions = 0
        self.updates_done = 0
        self._owed = 0  # updates owed by the data so far
        self._episode_steps = 0
        self._training_started = False
        self._planner = None  # built on first use when acting with MPPI
        self._maybe_start_training()

    def _maybe_start_training(self) -> None:
        """Training starts once the prefill episodes are in; then the critic warm-up is owed at once."""
        if self.config.trains and not self._training_started and self.episodes >= self.config.prefill_episodes:
            self._training_started = True
            self._owed += self.config.critic_warmup_updates

    # ------------------------------------------------------------------------------------------------- data in
    def add_transition(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
                       terminal: bool, truncated: bool = False, intervention: bool = False) -> int:
        """One real transition with the raw task reward; `terminal` is a true task end, `truncated` a time limit,
        `intervention` an operator's action (a demonstration when demo_fraction > 0). Returns the transition's row
        (its number among the real transitions, from 0), which `label_episode` takes."""
        cfg = self.config
        with self.lock:
            row = self.transitions
            self.real.add(np.asarray(obs, np.float32), np.asarray(action, np.float32), float(reward),
                          np.asarray(next_obs, np.float32), bool(terminal))
            if intervention and cfg.demo_fraction > 0:
                self.demo.add(np.asarray(obs, np.float32), np.asarray(action, np.float32), float(reward),
                              np.asarray(next_obs, np.float32), bool(terminal))
                self._demo_rows[row] = self._demo_added
                self._demo_added += 1
            self.transitions += 1
            self._episode_steps += 1
            episode_end = bool(terminal or truncated)
            if episode_end:
                self.episodes += 1
            # Prefill data owes no updates of its own: training starts after it, with the critic warm-up.
            if self._training_started:
                if not cfg.update_between_episodes:
                    self._owed += cfg.utd
                elif episode_end:
                    self._owed += cfg.utd * self._episode_steps
            if episode_end:
                self._episode_steps = 0
                self._maybe_start_training()
            return row

    def label_episode(self, last_row: int, success: bool, perceived: bool) -> bool:
        """The operator's success label of the episode whose last transition is `last_row` (add_transition's
        return value): that transition's reward becomes its raw reward + label_reward·(success − perceived), in the
        replay buffer and in its demonstration copy. A later label of the same episode replaces the earlier one.
        False when the row has been overwritten in the replay buffer (nothing changed)."""
        cfg = self.config
        with self.lock:
            if not 0 <= last_row < self.transitions or self.transitions - last_row > self.real.capacity:
                return False
            base = self._label_base.setdefault(last_row, float(self.real.reward[last_row % self.real.capacity]))
            reward = base + cfg.label_reward * (float(success) - float(perceived))
            self.real.reward[last_row % self.real.capacity] = reward
            demo_row = self._demo_rows.get(last_row)
            if demo_row is not None and self._demo_added - demo_row <= self.demo.capacity:
                self.demo.reward[demo_row % self.demo.capacity] = reward
            return True

    def add_sim_data(self, batch: Batch) -> None:
        """Simulator transitions (numpy Batch) for RLPD's symmetric sampling."""
        with self.lock:
            self.sim.add_batch(*(np.asarray(x, np.float32) for x in batch))

    def updates_due(self) -> int:
        with self.lock:
            return self._owed

    # --------------------------------------------------------------------------------------------- the update
    def _sample(self) -> tuple[Batch, int]:
        """A training batch (tensors) and how many of its leading rows are real (demonstrations included)."""
        cfg = self.config
        with self.lock:
            if cfg.demo_fraction > 0 and len(self.demo) > 0:
                n_sim = int(round(cfg.sim_data_fraction * cfg.batch_size)) if len(self.sim) > 0 else 0
                n_real = cfg.batch_size - n_sim
                n_demo = int(round(cfg.demo_fraction * cfg.batch_size))
                parts = [sample_mixed([self.real, self.demo], [n_real - n_demo, n_demo], n_real, self.rng)]
                if n_sim:
                    parts.append(self.sim.sample(n_sim, self.rng))
                batch = Batch.concatenate(parts)
            elif cfg.sim_data_fraction > 0 and len(self.sim) > 0:
                n_real = cfg.batch_size - int(round(cfg.sim_data_fraction * cfg.batch_size))
                batch = sample_mixed([self.real, self.sim], [n_real, cfg.batch_size - n_real], cfg.batch_size,
                                     self.rng)
            else:
                batch, n_real = self.real.sample(cfg.batch_size, self.rng), cfg.batch_size
        return batch.to_torch(), n_real

    @torch.no_grad()
    def relabel(self, obs: torch.Tensor, reward: torch.Tensor, next_obs: torch.Tensor, terminal: torch.Tensor,
                value_obs: torch.Tensor | None = None, value_next: torch.Tensor | None = None) -> torch.Tensor:
        """r̄ = r + γ·(1 − terminal)·V_sim(s') − V_sim(s) (a terminal state's potential is 0, as PBRS requires).

        `value_obs` / `value_next`: V_sim(s) / V_sim(s') when the caller already has them (computed here if not)."""
        if self.config.reward == "raw":
            return reward
        value_obs = self.value(obs) if value_obs is None else value_obs
        value_next = self.value(next_obs) if value_next is None else value_next
        return reward + self.config.gamma * (1.0 - terminal) * value_next - value_obs

    @torch.no_grad()
    def imagine_step(self, obs: torch.Tensor, value_obs: torch.Tensor | None = None) -> tuple[
            torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One model step with the current actor: action, its log-prob, next obs, relabelled reward, terminal, and
        V_sim(next obs) (None with the raw reward), which the next step of a rollout takes as its `value_obs`."""
        action, log_prob, _ = self.actor.sample(obs)
        next_obs = self.dynamics(obs, action)
        terminal = self.task.terminal(next_obs).to(obs.dtype)
        value_next = self.value(next_obs) if self.config.reward == "shaped" else None
        reward = self.relabel(obs, self.task.reward(next_obs), next_obs, terminal, value_obs, value_next)
        return action, log_prob, next_obs, reward, terminal, value_next

    @torch.no_grad()
    def _branch_rows(self, obs: torch.Tensor) -> Batch:
        """`imagined_branches` model transitions per state with the raw task reward: B states → B·K rows
        (state-major: rows k·B + i). The K branches of a state share the actor's forward pass (only the noise
        differs)."""
        k, noise = self.config.imagined_branches, self.config.branch_action_noise
        mean, log_std = self.actor(obs)
        if noise > 0:
            action = (torch.tanh(mean) + noise * torch.randn(k, *mean.shape)).clamp(-1.0, 1.0)
        else:
            action = torch.tanh(mean + log_std.exp() * torch.randn(k, *mean.shape))
        action = action.reshape(-1, mean.shape[-1])
        branch_obs = obs.repeat(k, 1)
        next_obs = self.dynamics(branch_obs, action)
        terminal = self.task.terminal(next_obs).to(obs.dtype)
        return Batch(branch_obs, action, self.task.reward(next_obs), next_obs, terminal)

    @torch.no_grad()
    def imagine_branches(self, obs: torch.Tensor, value_obs: torch.Tensor | None = None) -> Batch:
        """The imagined branches of `obs` (see `_branch_rows`) with relabelled rewards; `value_obs`: V_sim(obs)."""
        rows = self._branch_rows(obs)
        if value_obs is not None:  # the branches of a state share its V_sim(s)
            value_obs = value_obs.repeat(self.config.imagined_branches)
        return rows._replace(reward=self.relabel(rows.obs, rows.reward, rows.next_obs, rows.terminal, value_obs))

    @torch.no_grad()
    def critic_targets(self, batch: Batch) -> tuple[Batch, torch.Tensor]:
        """The critic's training rows (relabelled real rows, then imagined branches) and their targets."""
        cfg = self.config
        rows = batch  # raw rewards until relabelled below, all rows at once
        if cfg.imagined_branches > 0:
            rows = Batch.concatenate([batch, self._branch_rows(batch.obs)])
        value_obs = value_next = None
        if cfg.reward == "shaped":
            # V_sim once per state: the branches start from the real states, and V_sim(s') is also the first
            # imagined step's V_sim(s) below (computing them again cost an H = 3 update about a sixth of its time).
            value_obs = self.value(batch.obs).repeat(1 + cfg.imagined_branches)
            value_next = self.value(rows.next_obs)
        rows = rows._replace(
            reward=self.relabel(rows.obs, rows.reward, rows.next_obs, rows.terminal, value_obs, value_next))
        if cfg.horizon is None:  # infinite horizon: soft Bellman backup from the target critic
            return rows, self.soft_target(rows.reward, rows.next_obs, rows.terminal)
        alpha = self.log_alpha.detach().exp()
        # Horizon H: done after H steps, so no critic term ever enters the target. Steps 2..H are imagined with the
        # dynamics model and the current actor (soft returns: the entropy bonus of the actor's own choices).
        target, state, alive, discount = rows.reward.clone(), rows.next_obs, 1.0 - rows.terminal, cfg.gamma
        value_state = value_next
        for _ in range(cfg.horizon - 1):
            _, log_prob, state, step_reward, step_terminal, value_state = self.imagine_step(state, value_state)
            target += alive * discount * (step_reward - alpha * log_prob)
            alive = alive * (1.0 - step_terminal)
            discount *= cfg.gamma
        if cfg.value_sim_in_target:  # the shaping telescopes to γ^H V_sim(s_H) − V_sim(s): undo the −V_sim(s)
            target += value_obs
        return rows, target

    def update(self, n_updates: int = 1) -> dict[str, float]:
        """`n_updates` combined gradient steps (dynamics, critic, actor, temperature); returns the last losses."""
        cfg = self.config
        losses: dict[str, float] = {}
        for _ in range(n_updates):
            batch, n_real = self._sample()

            # Dynamics: fine-tuned on real rows only (the imagined branches come from it).
            if cfg.train_dynamics:
                dynamics_loss = self.dynamics.loss(batch.obs[:n_real], batch.action[:n_real],
                                                   batch.next_obs[:n_real])
                self.dynamics_optimizer.zero_grad(set_to_none=True)
                dynamics_loss.backward()
                self.dynamics_optimizer.step()
                losses["dynamics_loss"] = dynamics_loss.item()

            # Critic: relabel, imagine branches, regress onto the H-step (or bootstrapped) target.
            if cfg.train_critic:
                rows, q_target = self.critic_targets(batch)
                losses |= self.critic_step(rows.obs, rows.action, q_target, cfg.critic_huber_delta, cfg.bf16_critic)
                if cfg.horizon is None:
                    self.polyak()

            # Actor (after the critic warm-up): maximize Q − α log π on the sampled states, pulled towards π_sim.
            if cfg.train_actor and self.updates_done >= cfg.critic_warmup_updates:
                actor_losses, log_prob = self.actor_step(batch.obs, self.actor_prior, cfg.prior_regularization,
                                                         cfg.bf16_critic)
                losses |= actor_losses
                if cfg.autotune_temperature:
                    losses |= self.temperature_step(log_prob)
            losses["alpha"] = self.alpha
            with self.lock:
                self.updates_done += 1
                self._owed = max(0, self._owed - 1)
        return losses

    # ---------------------------------------------------------------------------------------- outputs
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """The action the fine-tuned agent takes (actor, or MPPI for mpc_sgft), float32 in [−1, 1]."""
        if self.config.acting == "mppi":
            return self.planner.plan(obs)
        return self.actor.act(np.asarray(obs, np.float32), deterministic=deterministic)

    @property
    def planner(self):
        if self._planner is None:
            from sgft_core.mppi import MPPI  # imported lazily: only MPC-SGFT plans

            self._planner = MPPI(self.task, self.dynamics, self.value, self.actor, seed=self.seed)
        return self._planner

    def end_episode(self) -> None:
        """Call between episodes: forgets MPPI's warm start so a new episode starts from the actor alone."""
        if self._planner is not None:
            self._planner.reset()

    @torch.no_grad()
    def value_sim(self, obs: np.ndarray) -> np.ndarray:
        """V_sim of observations (..., obs_dim) → (...), float32."""
        obs_t = torch.as_tensor(np.asarray(obs, np.float32))
        return self.value(obs_t.reshape(-1, self.task.obs_dim)).reshape(obs_t.shape[:-1]).numpy()

    @torch.no_grad()
    def q_value(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        """The current critic's Q(s, a) (minimum over the ensemble), (..., obs_dim), (..., act_dim) → (...)."""
        obs_t = torch.as_tensor(np.asarray(obs, np.float32))
        act_t = torch.as_tensor(np.asarray(action, np.float32))
        q = self.critic(obs_t.reshape(-1, self.task.obs_dim), act_t.reshape(-1, self.task.action_dim)).min(0).values
        return q.reshape(obs_t.shape[:-1]).numpy()

    # ------------------------------------------------------------------------------------------- resume
    def state_dict(self) -> dict:
        """What a resume needs: copies of the trained networks (`Networks`, with the frozen V_sim, so the four make a
        checkpoint) and the progress: updates done, policy version, transitions seen, log α."""
        with self.lock:
            networks = Networks(*(copy.deepcopy(m) for m in (self.actor, self.critic, self.value, self.dynamics)))
            progress = {"updates_done": self.updates_done, "policy_version": self.policy_version,
                        "transitions": self.transitions, "log_alpha": float(self.log_alpha.detach())}
        return {"networks": networks, "progress": progress}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()` output, after the stored transitions have been re-added (they owe their updates
        again; those already done are not owed twice, and the policy version keeps increasing). A critic of another
        architecture (a different method's checkpoint) is not loaded: this learner's own stays."""
        networks, progress = state["networks"], state.get("progress", {})
        with self.lock:
            self.actor.load_state_dict(networks.actor.state_dict())
            self.dynamics.load_state_dict(networks.dynamics.state_dict())
            critic_state = networks.critic.state_dict()
            shapes = {name: tensor.shape for name, tensor in self.critic.state_dict().items()}
            if {name: tensor.shape for name, tensor in critic_state.items()} == shapes:
                self.critic.load_state_dict(critic_state)
                self.critic_target.load_state_dict(critic_state)
            if "log_alpha" in progress:
                with torch.no_grad():
                    self.log_alpha.fill_(float(progress["log_alpha"]))
            updates_done = int(progress.get("updates_done", 0))
            self._owed = max(0, self._owed - max(0, updates_done - self.updates_done))
            self.updates_done = max(self.updates_done, updates_done)
            self.policy_version = max(self.policy_version, int(progress.get("policy_version", 0)))


# ------------------------------------------------------------------------------------------------------- bench
def bench(updates: int = 30, threads: int = 2, method: str = "sgft", task_name: str = "push",
          bf16_critic: bool = False, hidden_dim: int = 512) -> float:
    """Combined updates per second of `method` (default SGFT: 256 real + 1280 imagined = 1536 critic rows)."""
    from sgft_core.networks import build_networks
    from sgft_core.tasks import get_task

    torch.set_num_threads(threads)
    spec = get_task(task_name)
    config = make_config(method, prefill_episodes=0, critic_warmup_updates=0, bf16_critic=bf16_critic)
    networks = build_networks(spec.obs_dim, spec.action_dim, NetworkConfig(hidden_dim=hidden_dim))
    learner = FinetuneLearner(spec, networks, config)
    rng = np.random.default_rng(0)
    obs = rng.uniform(spec.obs_low, spec.obs_high, (4096, spec.obs_dim)).astype(np.float32)
    action = rng.uniform(-1, 1, (4096, spec.action_dim)).astype(np.float32)
    next_obs = obs + rng.normal(0, 0.01, obs.shape).astype(np.float32)
    learner.real.add_batch(obs, action, spec.reward(next_obs).astype(np.float32), next_obs, np.zeros(4096, np.float32))
    learner.sim.add_batch(obs, action, spec.reward(next_obs).astype(np.float32), next_obs, np.zeros(4096, np.float32))
    learner.update(3)  # warm-up: allocator, lazy initialization
    start = time.perf_counter()
    learner.update(updates)
    rate = updates / (time.perf_counter() - start)
    rows = config.batch_size * (1 + config.imagined_branches)
    print(f"{method} on {task_name}: {rate:.2f} combined updates/s at critic batch {rows}, width {hidden_dim}, "
          f"on {threads} thread(s)"
          f"{' with a bfloat16 critic' if bf16_critic else ''}; "
          f"UTD {config.utd} at {spec.control_hz:g} Hz needs {config.utd * spec.control_hz:g}/s")
    return rate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", action="store_true", help="measure combined updates per second")
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--method", default="sgft", choices=METHODS)
    parser.add_argument("--task", default="push")
    parser.add_argument("--bf16-critic", action="store_true", help="bfloat16 matrix products in the critic passes")
    parser.add_argument("--hidden-dim", type=int, default=512, help="MLP width (the paper's: 512)")
    args = parser.parse_args(argv)
    if not args.bench:
        parser.error("nothing to do: pass --bench")
    bench(args.updates, args.threads, args.method, args.task, args.bf16_critic, args.hidden_dim)


if __name__ == "__main__":
    main()
