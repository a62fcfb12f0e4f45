import numpy as np
import pytest
import torch

from sgft_core.networks import (
    Actor,
    DeltaDynamics,
    NetworkConfig,
    StateValue,
    TwinCritic,
    build_networks,
)
from sgft_core.normalization import Normalizer, compute_stats


def test_compute_stats_floors_constant_dimensions():
    data = np.stack([np.linspace(0, 1, 101), np.full(101, 3.0)], axis=1)
    mean, std = compute_stats(data, min_std=0.01)
    np.testing.assert_allclose(mean, [0.5, 3.0], atol=1e-6)
    assert std[0] == pytest.approx(np.std(np.linspace(0, 1, 101)), rel=1e-5)
    assert std[1] == pytest.approx(0.01)
    with pytest.raises(ValueError):
        compute_stats(np.array([[np.nan, 1.0], [0.0, 1.0]]), 0.01)


def test_normalizer_round_trip_and_state_dict():
    norm = Normalizer(3)
    norm.set_stats(np.array([1.0, -2.0, 0.5]), np.array([2.0, 0.5, 1.0]))
    x = torch.randn(7, 3)
    torch.testing.assert_close(norm.unnormalize(norm(x)), x)
    torch.testing.assert_close(norm(torch.tensor([[3.0, -1.5, 0.5]])), torch.tensor([[1.0, 1.0, 0.0]]))
    assert set(norm.state_dict()) == {"mean", "std"}  # statistics travel with the weights
    with pytest.raises(ValueError):
        norm.set_stats(np.zeros(3), np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError):
        norm.set_stats(np.zeros(2), np.ones(2))


def test_shapes_and_action_bounds():
    obs_dim, act_dim, batch = 5, 3, 11
    actor = Actor(obs_dim, act_dim, hidden_dim=32)
    obs = torch.randn(batch, obs_dim) * 100  # raw, un-normalized inputs must still give bounded actions
    action, log_prob, mean_action = actor.sample(obs)
    assert action.shape == (batch, act_dim) and log_prob.shape == (batch,) and mean_action.shape == (batch, act_dim)
    assert action.abs().max() <= 1 and torch.isfinite(log_prob).all()
    single = actor.act(np.zeros(obs_dim, dtype=np.float32), deterministic=True)
    assert isinstance(single, np.ndarray) and single.shape == (act_dim,) and single.dtype == np.float32
    np.testing.assert_array_equal(single, actor.act(np.zeros(obs_dim), deterministic=True))  # deterministic
    assert isinstance(actor.act(obs), torch.Tensor)

    critic = TwinCritic(obs_dim, act_dim, hidden_dim=32, num_q=5, layer_norm=True)
    assert critic(obs, action).shape == (5, batch)
    assert StateValue(obs_dim, hidden_dim=32)(obs).shape == (batch,)
    dynamics = DeltaDynamics(obs_dim, act_dim, hidden_dim=32)
    assert dynamics(obs, action).shape == (batch, obs_dim)
    assert dynamics.loss(obs, action, obs).ndim == 0


def test_log_prob_matches_change_of_variables():
    """The squashed log-density must integrate to one over (−1, 1): check it against a histogram in 1-D."""
    torch.manual_seed(0)
    actor = Actor(1, 1, hidden_dim=8)
    obs = torch.zeros(200_000, 1)
    with torch.no_grad():
        action, log_prob, _ = actor.sample(obs)
    hist, edges = np.histogram(action.numpy()[:, 0], bins=40, range=(-1, 1), density=True)
    centres = torch.tensor((edges[:-1] + edges[1:]) / 2, dtype=torch.float32)[:, None]
    mean, log_std = actor(torch.zeros(1, 1))
    pre = torch.atanh(centres)
    density = torch.distributions.Normal(mean[0], log_std.exp()[0]).log_prob(pre).exp() / (1 - centres**2)
    mask = hist > 0.2  # compare where the histogram is well populated
    np.testing.assert_allclose(hist[mask], density.detach().numpy()[mask, 0], rtol=0.1)
    # And the sampler's own log_prob agrees with that analytic density at its samples.
    analytic = torch.distributions.Normal(mean[0], log_std.exp()[0]).log_prob(torch.atanh(action[:100].clamp(
        -0.999999, 0.999999))) - torch.log(1 - action[:100] ** 2)
    torch.testing.assert_close(log_prob[:100], analytic[:, 0].detach(), atol=2e-2, rtol=1e-3)


def test_ensemble_members_are_independent():
    critic = TwinCritic(2, 1, hidden_dim=16, num_q=3)
    obs, action = torch.randn(4, 2), torch.randn(4, 1)
    qs = critic(obs, action)
    assert not torch.allclose(qs[0], qs[1])
    qs[0].sum().backward()
    first_layer = critic.net[0]
    assert first_layer.weight.grad[0].abs().sum() > 0 and first_layer.weight.grad[1:].abs().sum() == 0


def test_build_networks_and_normalization_in_every_module():
    nets = build_networks(4, 2, NetworkConfig(hidden_dim=16))
    nets.set_normalization(np.ones(4), np.full(4, 2.0), np.zeros(4), np.full(4, 0.1))
    for name, module in nets.modules().items():
        assert torch.equal(module.state_dict()["obs_norm.std"], torch.full((4,), 2.0)), name
    assert torch.equal(nets.dynamics.state_dict()["delta_norm.std"], torch.full((4,), 0.1))
    # Default width: the paper's two layers of 512.
    default = build_networks(4, 2, NetworkConfig())
    assert default.actor.trunk[0].out_features == 512 and default.critic.net[2].weight.shape[1:] == (512, 512)
