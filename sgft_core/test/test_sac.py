import dataclasses

import numpy as np
import torch

from sgft_core.networks import NetworkConfig
from sgft_core.replay import Batch
from sgft_core.sac import SAC, SACConfig, normalization_from_data

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
