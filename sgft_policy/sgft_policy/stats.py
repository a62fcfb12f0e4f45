"""The control loop's timing statistics and counts of rejected inputs, without ROS."""

from __future__ import annotations

import collections

import numpy as np

WINDOW = 500  # most recent samples each statistic is taken over


def _median_p99(name: str, samples: collections.deque[float]) -> dict[str, float]:
    if not samples:
        return {}
    return {f"{name}_median_ms": 1e3 * float(np.median(samples)),
            f"{name}_p99_ms": 1e3 * float(np.percentile(samples, 99))}


class LoopStats:
    def __init__(self, period: float) -> None:
        self.period = period
        self.last_tick: float | None = None
        self.tick_periods: collections.deque[float] = collections.deque(maxlen=WINDOW)
        self.command_latencies: collections.deque[float] = collections.deque(maxlen=WINDOW)
        # how old (by its stamp, on the node's clock) the object detection is when a command is computed from it: a
        # detection older than about a period shows the object before the last command took effect
        self.detection_ages: collections.deque[float] = collections.deque(maxlen=WINDOW)
        self.tick_lateness: collections.deque[float] = collections.deque(maxlen=WINDOW)  # clock past the multiple
        self.rejections: collections.Counter[str] = collections.Counter()

    def tick(self, wall: float, running: bool) -> None:
        """A tick ran at wall-clock time `wall` (s): what the controller experiences, so not the node's clock."""
        if self.last_tick is not None and running:
            self.tick_periods.append(wall - self.last_tick)
        self.last_tick = wall

    def reject(self, kind: str) -> int:
        """Count a rejected input; returns how many of its kind so far."""
        self.rejections[kind] += 1
        return self.rejections[kind]

    @staticmethod
    def worth_logging(count: int) -> bool:
        """Log the first rejection of each kind, then every 100th."""
        return count == 1 or count % 100 == 0

    def timing_stats(self) -> dict:
        """Wall-clock loop periods during episodes (under sim time the nominal wall period is period / time scale,
        so jitter is taken around the median), the observation-to-command compute latency, how late each tick ran
        after its multiple of the period and the age of the object detection each command was computed from (these
        two on the node's clock: sim time under the simulated robot)."""
        periods = np.array(self.tick_periods) if self.tick_periods else np.array([self.period])
        latency = np.array(self.command_latencies) if self.command_latencies else np.array([0.0])
        return {
            "period_median_ms": 1e3 * float(np.median(periods)),
            "period_jitter_p99_ms": 1e3 * float(np.percentile(np.abs(periods - np.median(periods)), 99)),
            "obs_to_command_median_ms": 1e3 * float(np.median(latency)),
            "obs_to_command_p99_ms": 1e3 * float(np.percentile(latency, 99)),
            **_median_p99("tick_lateness", self.tick_lateness),
            **_median_p99("detection_age", self.detection_ages),
            "rejections": dict(self.rejections),
        }
