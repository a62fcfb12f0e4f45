"""Fixed per-dimension normalization that lives inside the networks.

The statistics are registered as buffers, so they travel with `state_dict()` and with every checkpoint: a consumer
that loads only the actor (the ROS policy node) feeds raw observations and needs nothing else. SGFT fixes the
statistics once, from random-action data; they are never updated while training, so a value function
learned in sim means the same thing when it is evaluated on real observations.
"""

import numpy as np
import torch
from torch import nn

# Floors on the standard deviation. An observation that random actions never move (a constant goal, a puck nobody
# touched) would otherwise get std≈0 and blow a centimetre of sim-to-real difference up into a huge input.
MIN_OBS_STD = 1e-2
MIN_DELTA_STD = 1e-3


def compute_stats(data: np.ndarray, min_std: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and floored std of `data` (N × D), as float32."""
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] < 2:
        raise ValueError(f"need at least two rows of 2-D data to compute statistics, got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise ValueError("cannot compute normalization statistics from non-finite data")
    mean = data.mean(axis=0)
    std = np.maximum(data.std(axis=0), min_std)
    return mean.astype(np.float32), std.astype(np.float32)


class Normalizer(nn.Module):
    """y = (x − mean) / std with mean and std stored as buffers (identity until `set_stats` is called)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set_stats(self, mean: np.ndarray | torch.Tensor, std: np.ndarray | torch.Tensor) -> None:
        mean_t = torch.as_tensor(np.asarray(mean, dtype=np.float32)).reshape(-1)
        std_t = torch.as_tensor(np.asarray(std, dtype=np.float32)).reshape(-1)
        if mean_t.shape != (self.dim,) or std_t.shape != (self.dim,):
            shapes = f"{tuple(mean_t.shape)}, {tuple(std_t.shape)}"
            raise ValueError(f"statistics must have shape ({self.dim},), got {shapes}")
        if not (torch.isfinite(mean_t).all() and torch.isfinite(std_t).all() and (std_t > 0).all()):
            raise ValueError("statistics must be finite with a positive std")
        self.mean.copy_(mean_t)
        self.std.copy_(std_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def unnormalize(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.std + self.mean
