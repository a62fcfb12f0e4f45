import numpy as np
import pytest

from sgft_core.replay import Batch, ReplayBuffer, sample_mixed


def _fill(buffer: ReplayBuffer, start: int, n: int) -> None:
    for i in range(start, start + n):
        buffer.add(np.full(buffer.obs_dim, i), np.full(buffer.act_dim, -i), float(i), np.full(buffer.obs_dim, i + 1),
                   i % 2 == 0)


def test_add_and_sample_keep_transitions_together():
    buffer = ReplayBuffer(capacity=100, obs_dim=3, act_dim=2)
    _fill(buffer, 0, 40)
    assert len(buffer) == 40
    batch = buffer.sample(500, np.random.default_rng(0))
    assert batch.obs.shape == (500, 3) and batch.action.shape == (500, 2) and batch.reward.shape == (500,)
    assert batch.obs.dtype == np.float32
    i = batch.reward
    np.testing.assert_array_equal(batch.obs[:, 0], i)
    np.testing.assert_array_equal(batch.action[:, 1], -i)
    np.testing.assert_array_equal(batch.next_obs[:, 2], i + 1)
    np.testing.assert_array_equal(batch.terminal, (i % 2 == 0).astype(np.float32))
    assert set(i.astype(int)) == set(range(40))  # 500 draws from 40 items reach all of them


def test_ring_overwrites_oldest_and_all_is_chronological():
    buffer = ReplayBuffer(capacity=10, obs_dim=1, act_dim=1)
    _fill(buffer, 0, 25)
    assert len(buffer) == 10
    np.testing.assert_array_equal(buffer.all().reward, np.arange(15, 25))
    assert set(buffer.sample(200, np.random.default_rng(1)).reward.astype(int)) == set(range(15, 25))


def test_add_batch_larger_than_capacity_keeps_newest():
    buffer = ReplayBuffer(capacity=4, obs_dim=1, act_dim=1)
    n = 9
    buffer.add_batch(np.arange(n, dtype=np.float32)[:, None], np.zeros((n, 1)), np.arange(n, dtype=np.float32),
                     np.zeros((n, 1)), np.zeros(n))
    np.testing.assert_array_equal(buffer.all().reward, [5, 6, 7, 8])


def test_shape_mismatch_and_empty_sampling_raise():
    buffer = ReplayBuffer(capacity=4, obs_dim=2, act_dim=1)
    with pytest.raises(ValueError):
        buffer.sample(3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="shapes"):
        buffer.add(np.zeros(3), np.zeros(1), 0.0, np.zeros(2), False)


def test_sample_mixed_respects_fractions_and_empty_buffers():
    rng = np.random.default_rng(0)
    random_data, replay = ReplayBuffer(50, 1, 1), ReplayBuffer(50, 1, 1)
    for _ in range(5):
        random_data.add(np.zeros(1), np.zeros(1), 1.0, np.zeros(1), False)
        replay.add(np.zeros(1), np.zeros(1), 2.0, np.zeros(1), False)
    batch = sample_mixed([random_data, replay], [0.5, 0.5], 256, rng)
    assert len(batch.reward) == 256 and (batch.reward == 1.0).sum() == 128
    batch = sample_mixed([random_data, replay], [0.25, 0.75], 255, rng)
    assert len(batch.reward) == 255 and abs((batch.reward == 2.0).sum() - 191) <= 1
    empty = ReplayBuffer(50, 1, 1)
    batch = sample_mixed([random_data, empty], [0.5, 0.5], 64, rng)
    assert len(batch.reward) == 64 and (batch.reward == 1.0).all()


def test_batch_to_torch_and_concatenate():
    buffer = ReplayBuffer(10, 2, 1)
    _fill(buffer, 0, 5)
    batch = buffer.sample(4, np.random.default_rng(0)).to_torch()
    both = Batch.concatenate([batch, batch])
    assert both.obs.shape == (8, 2) and both.obs.dtype.is_floating_point
