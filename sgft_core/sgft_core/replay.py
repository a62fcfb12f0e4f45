"""Preallocated numpy ring buffer of transitions, and sampling from several buffers at fixed fractions.

`terminal` means a true end of the task (the critic must not bootstrap past it), never a time limit: time-limit
truncations are simply not marked terminal.
"""

from typing import NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    """A batch of transitions; numpy arrays out of a buffer, tensors after `to_torch`."""

    obs: np.ndarray | torch.Tensor  # (B, obs_dim)
    action: np.ndarray | torch.Tensor  # (B, act_dim)
    reward: np.ndarray | torch.Tensor  # (B,)
    next_obs: np.ndarray | torch.Tensor  # (B, obs_dim)
    terminal: np.ndarray | torch.Tensor  # (B,) float 0/1

    def to_torch(self, device: torch.device | str = "cpu") -> "Batch":
        return Batch(*(torch.as_tensor(np.asarray(x, dtype=np.float32), device=device) for x in self))

    @staticmethod
    def concatenate(batches: list["Batch"]) -> "Batch":
        if isinstance(batches[0].obs, torch.Tensor):
            return Batch(*(torch.cat(parts) for parts in zip(*batches)))
        return Batch(*(np.concatenate(parts) for parts in zip(*batches)))


class ReplayBuffer:
    """Fixed-capacity FIFO of transitions stored as float32 numpy arrays; the oldest are overwritten when full."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity, self.obs_dim, self.act_dim = capacity, obs_dim, act_dim
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.action = np.zeros((capacity, act_dim), dtype=np.float32)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.terminal = np.zeros(capacity, dtype=np.float32)
        self._next = 0  # slot the next transition goes to
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, terminal: bool) -> None:
        self.add_batch(
            np.asarray(obs)[None], np.asarray(action)[None], np.asarray([reward]), np.asarray(next_obs)[None],
            np.asarray([terminal]),
        )

    def add_batch(
        self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray, terminal: np.ndarray
    ) -> None:
        n = len(obs)
        if not (obs.shape == next_obs.shape == (n, self.obs_dim) and action.shape == (n, self.act_dim)
                and reward.shape == terminal.shape == (n,)):
            raise ValueError(
                f"transition shapes do not match the buffer (obs_dim={self.obs_dim}, act_dim={self.act_dim}): "
                f"obs {obs.shape}, action {action.shape}, reward {reward.shape}, next_obs {next_obs.shape}, "
                f"terminal {terminal.shape}"
            )
        if n > self.capacity:  # only the newest `capacity` transitions would survive anyway
            obs, action, reward, next_obs, terminal = (x[-self.capacity:] for x in (obs, action, reward, next_obs,
                                                                                    terminal))
            n = self.capacity
        slots = (self._next + np.arange(n)) % self.capacity
        self.obs[slots] = obs
        self.action[slots] = action
        self.reward[slots] = reward
        self.next_obs[slots] = next_obs
        self.terminal[slots] = terminal
        self._next = int((self._next + n) % self.capacity)
        self._size = min(self._size + n, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """Uniform sample with replacement."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty buffer")
        idx = rng.integers(0, self._size, size=batch_size)
        return Batch(self.obs[idx], self.action[idx], self.reward[idx], self.next_obs[idx], self.terminal[idx])

    def all(self) -> Batch:
        """Every stored transition (copies), oldest first once the buffer has wrapped."""
        order = (self._next + np.arange(self._size)) % self.capacity if self._size == self.capacity else \
            np.arange(self._size)
        return Batch(self.obs[order], self.action[order], self.reward[order], self.next_obs[order],
                     self.terminal[order])


def sample_mixed(
    buffers: list[ReplayBuffer], fractions: list[float], batch_size: int, rng: np.random.Generator
) -> Batch:
    """Sample `batch_size` transitions, a fixed fraction from each buffer (e.g. 50/50 random-action data and replay,
    or RLPD's symmetric sim/real sampling). An empty buffer hands its share to the others."""
    if len(buffers) != len(fractions) or any(f < 0 for f in fractions):
        raise ValueError("need one non-negative fraction per buffer")
    weights = np.array([f if len(b) > 0 else 0.0 for b, f in zip(buffers, fractions)], dtype=np.float64)
    if weights.sum() <= 0:
        raise ValueError("every buffer with a positive fraction is empty")
    counts = np.floor(weights / weights.sum() * batch_size).astype(int)
    counts[np.argmax(weights)] += batch_size - counts.sum()  # rounding leftovers go to the largest share
    return Batch.concatenate([b.sample(int(c), rng) for b, c in zip(buffers, counts) if c > 0])
