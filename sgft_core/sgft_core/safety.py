"""The safety envelope between the network's output and the robot: the last code an action passes through.

libfranka aborts on velocity/acceleration discontinuities and the arm must never leave its workspace, so every
command is bounded here whatever the actor produced (NaN, ±inf, huge values). The same envelope serves Cartesian
targets (a box in the base frame, m) and joint targets (joint limits, rad).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SafetyEnvelope:
    """A box [low, high] and a per-step limit |target − current| ≤ max_step, per axis."""

    low: np.ndarray
    high: np.ndarray
    max_step: np.ndarray

    def __post_init__(self) -> None:
        low, high, step = (np.asarray(v, dtype=np.float64) for v in (self.low, self.high, self.max_step))
        if not (low.shape == high.shape == step.shape and low.ndim == 1):
            raise ValueError(f"envelope shapes differ: low {low.shape}, high {high.shape}, max_step {step.shape}")
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(np.isfinite(step))):
            raise ValueError("envelope bounds must be finite")
        if np.any(low >= high):
            raise ValueError(f"envelope box is empty: low {low} must be below high {high}")
        if np.any(step <= 0.0):
            raise ValueError(f"max_step must be positive, got {step}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "max_step", step)

    def bound(self, current: np.ndarray, delta: np.ndarray) -> np.ndarray | None:
        """The target for `current + delta`, inside the envelope; None when no safe target exists.

        Non-finite deltas hold position (target = current projected as below). When the robot is outside the box
        (pushed by hand, or the box was tightened) the target moves it back towards the box by at most one step:
        the step limit always wins, because a jump is what trips the controller.
        """
        current = np.asarray(current, dtype=np.float64)
        delta = np.asarray(delta, dtype=np.float64)
        if current.shape != self.low.shape or delta.shape != self.low.shape:
            raise ValueError(f"expected shape {self.low.shape}, got current {current.shape}, delta {delta.shape}")
        if not np.all(np.isfinite(current)):
            return None
        if not np.all(np.isfinite(delta)):
            delta = np.zeros_like(delta)
        target = np.clip(current + np.clip(delta, -self.max_step, self.max_step), self.low, self.high)
        return current + np.clip(target - current, -self.max_step, self.max_step)

    def contains(self, point: np.ndarray, tolerance: float = 1e-9) -> bool:
        point = np.asarray(point, dtype=np.float64)
        return bool(np.all(point >= self.low - tolerance) and np.all(point <= self.high + tolerance))
