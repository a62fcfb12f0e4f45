import dataclasses

import numpy as np
import pytest
import torch

from sgft_core.networks import EnsembleLinear, NetworkConfig, build_actor, build_critic
from sgft_core.replay import Batch
from sgft_core.sac import SAC, SACConfig, SoftActorCritic, normalization_from_data

torch.set_num_threads(1)  # small nets: threads only add contention on a shared 2-core machine
SMALL = NetworkConfig(hidden_dim=32)


def _bandit_data(n: int, seed: int, terminal: float = 0.0) -> Batch:
    """One-step task: obs ∈ [-1, 1]², reward −‖obs + 0.5·a‖, so the best action is a = −obs/0.5 (clipped)."""
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    action = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    next_obs = obs + 0.5 * action
    reward = -np.linalg.norm(next_obs, axis=1).astype(np.float32)
    return Batch(obs, action, reward, next_obs, np.full(n, terminal, dtype=np.float32))


def _train(config: SACConfig, data: Batch, steps: int, seed: int = 0) -> tuple[SAC, list[dict]]:
    torch.manual_seed(seed)
    agent = SAC(2, 2, config)
    agent.set_normalization(data)
    rng = np.random.default_rng(seed)
    tensors = data.to_torch()
    history = []
    for _ in range(steps):
        idx = torch.as_tensor(rng.integers(0, len(data.reward), config.batch_size))
        history.append(agent.update(Batch(*(x[idx] for x in tensors))))
    return agent, history


def _mean(history: list[dict], key: str, part: slice) -> float:
    return float(np.mean([h[key] for h in history[part]]))


def test_update_reduces_losses_and_improves_the_policy():
    data = _bandit_data(4096, seed=0)
    # A small initial temperature: at α = 1 the entropy bonus outweighs rewards of this scale for thousands of steps.
    config = SACConfig(network=SMALL, gamma=0.0, batch_size=64, init_temperature=0.05)
    agent, history = _train(config, data, steps=400)
    assert set(history[0]) >= {"critic_loss", "actor_loss", "alpha", "value_loss", "dynamics_loss", "entropy"}
    first, last = slice(0, 20), slice(-20, None)
    assert _mean(history, "critic_loss", last) < 0.3 * _mean(history, "critic_loss", first)
    assert _mean(history, "dynamics_loss", last) < 0.1 * _mean(history, "dynamics_loss", first)
    assert _mean(history, "value_loss", last) < _mean(history, "value_loss", first)
    assert history[-1]["alpha"] < 0.05  # autotuned down from its initial value

    test = _bandit_data(1000, seed=1)
    with torch.no_grad():
        action = agent.actor.act(torch.as_tensor(test.obs), deterministic=True).numpy()
    policy_reward = -np.linalg.norm(test.obs + 0.5 * action, axis=1).mean()
    assert policy_reward > test.reward.mean() + 0.3  # random actions score ≈ −0.8, the optimum ≈ −0.3

    # The dynamics model predicts raw next observations.
    predicted = agent.dynamics(torch.as_tensor(test.obs), torch.as_tensor(test.action)).detach().numpy()
    assert np.abs(predicted - test.next_obs).mean() < 0.05


def test_terminal_transitions_do_not_bootstrap():
    """With terminal=1 everywhere Q must stay at the immediate reward even with γ = 0.99 (SGFT's H = 1), while the
    same data without terminals makes Q bootstrap far from it."""
    q_minus_r = {}
    for terminal in (1.0, 0.0):
        data = _bandit_data(4096, seed=2, terminal=terminal)
        agent, _ = _train(SACConfig(network=SMALL, gamma=0.99, batch_size=64), data, steps=300)
        with torch.no_grad():
            q = agent.critic(torch.as_tensor(data.obs[:500]), torch.as_tensor(data.action[:500])).mean(0).numpy()
        q_minus_r[terminal] = q - data.reward[:500]
    assert np.abs(q_minus_r[1.0]).mean() < 0.2
    assert abs(q_minus_r[0.0].mean()) > 0.5  # soft (entropy-boosted) values bootstrapped through γ


def test_configuration_variants():
    data = _bandit_data(512, seed=3)
    config = SACConfig(network=dataclasses.replace(SMALL, num_q=4, critic_layer_norm=True), batch_size=64,
                       autotune_temperature=False, init_temperature=0.01, train_value=False, target_q_subset=2,
                       actor_q_reduce="mean")
    torch.manual_seed(0)
    agent = SAC(2, 2, config)
    agent.set_normalization(data)
    value_before = [p.clone() for p in agent.value.parameters()]
    batch = Batch(*(x[:64] for x in data.to_torch()))
    for _ in range(5):
        losses = agent.update(batch)
    assert losses["alpha"] == np.float32(0.01).item() or abs(losses["alpha"] - 0.01) < 1e-9
    assert "value_loss" not in losses
    assert all(torch.equal(a, b) for a, b in zip(value_before, agent.value.parameters()))

    # Re-initializing the critic (SGFT fine-tuning) gives new weights but keeps the observation statistics.
    old_critic = agent.critic
    agent.reset_critic()
    assert agent.critic is not old_critic and agent.networks.critic is agent.critic
    assert torch.equal(agent.critic.obs_norm.std, old_critic.obs_norm.std)
    assert not torch.equal(agent.critic.net[0].weight, old_critic.net[0].weight)
    assert torch.equal(agent.critic_target.net[0].weight, agent.critic.net[0].weight)


def test_normalization_from_data():
    data = _bandit_data(2000, seed=4)
    obs_mean, obs_std, delta_mean, delta_std = normalization_from_data(data)
    all_obs = np.concatenate([data.obs, data.next_obs])
    np.testing.assert_allclose(obs_mean, all_obs.mean(0), atol=1e-5)
    np.testing.assert_allclose(delta_std, (data.next_obs - data.obs).std(0), rtol=1e-4)


def _core(**kwargs) -> SoftActorCritic:
    torch.manual_seed(0)
    settings = dict(lr=1e-2, gamma=0.9, tau=0.1, temperature=0.5, autotune_temperature=True) | kwargs
    return SoftActorCritic(build_actor(2, 2, SMALL), build_critic(2, 2, SMALL), **settings)


def _set_constant_q(critic: torch.nn.Module, values: list[float]) -> None:
    """Member i of the ensemble outputs values[i] everywhere."""
    last = critic.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor(values).reshape(-1, 1, 1))


def test_soft_target_matches_the_hand_computed_backup():
    sac = _core()
    _set_constant_q(sac.critic_target, [2.0, 3.0])
    next_obs = torch.tensor([[0.1, 0.2], [0.3, -0.4]])
    reward, terminal = torch.tensor([1.0, -1.0]), torch.tensor([0.0, 1.0])
    torch.manual_seed(7)
    target = sac.soft_target(reward, next_obs, terminal)
    torch.manual_seed(7)  # the same next action: the backup draws exactly one actor sample
    _, log_prob, _ = sac.actor.sample(next_obs)
    # r + γ·(1 − d)·(min_i Q_i − α·log π) with min Q = 2, α = 0.5, γ = 0.9; a terminal row keeps its reward only
    expected = torch.tensor([1.0 + 0.9 * (2.0 - 0.5 * log_prob[0].item()), -1.0])
    torch.testing.assert_close(target, expected)


def test_critic_step_lowers_the_loss_on_a_fixed_batch():
    sac = _core()
    data = _bandit_data(64, seed=5)
    obs, action, reward = (torch.as_tensor(x) for x in (data.obs, data.action, data.reward))
    losses = [sac.critic_step(obs, action, reward)["critic_loss"] for _ in range(100)]
    assert losses[-1] < 0.1 * losses[0]


def test_actor_step_moves_towards_higher_q_and_counts_versions():
    sac = _core(autotune_temperature=False, temperature=1e-3)
    obs = torch.as_tensor(_bandit_data(64, seed=6).obs)
    with torch.no_grad():  # Q(s, a) = a₀ + 2 through one ReLU path: the best action has a₀ = +1
        linear = [layer for layer in sac.critic.net if isinstance(layer, EnsembleLinear)]
        for layer in linear:
            layer.weight.zero_()
            layer.bias.zero_()
            layer.weight[:, 0, 0] = 1.0
        linear[0].weight[:, 0, 0] = 0.0
        linear[0].weight[:, 2, 0] = 1.0  # input 2 = a₀ (after the 2 observation inputs)
        linear[0].bias[:, 0, 0] = 2.0  # keeps the ReLU open for every a₀ ∈ (−1, 1)
    critic_before = [p.clone() for p in sac.critic.parameters()]
    start = sac.actor.deterministic(obs)[:, 0].mean().item()
    for _ in range(30):
        sac.actor_step(obs)
    assert sac.actor.deterministic(obs)[:, 0].mean().item() > start + 0.3
    assert sac.policy_version == 30
    assert all(torch.equal(a, b) for a, b in zip(critic_before, sac.critic.parameters()))
    assert all(p.requires_grad for p in sac.critic.parameters())


@pytest.mark.parametrize(("log_prob", "direction"), [(5.0, 1), (-5.0, -1)])
def test_temperature_step_moves_alpha_towards_the_target_entropy(log_prob: float, direction: int):
    """Entropy −log π below the target (−|A| = −2) raises α; above it lowers α."""
    sac = _core()
    before = sac.alpha
    sac.temperature_step(torch.full((16,), log_prob))
    assert (sac.alpha - before) * direction > 0


def test_polyak_averages_the_target_by_tau():
    sac = _core(tau=0.25)
    with torch.no_grad():
        for target, param in zip(sac.critic_target.parameters(), sac.critic.parameters()):
            target.fill_(1.0)
            param.fill_(3.0)
    sac.polyak()
    assert all(torch.allclose(p, torch.full_like(p, 1.5)) for p in sac.critic_target.parameters())
