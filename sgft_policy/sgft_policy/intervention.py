"""An operator's teleoperation (sgft_msgs/Intervention) taking over from the policy, without ROS.

While the latest intervention is active and fresh (stamped within `timeout` of the tick) the tick commands the
operator's action instead of the actor's; it still passes the safety envelope, and the step's Transition is flagged
and carries the operator's action (what HIL-SERL and LeRobot learn from). An explicit `active=false` hands control
back to the policy. A device that took over in this episode and then goes silent without releasing (a console or
teleop device disconnected, its process killed) is lost: the episode is aborted and the robot holds, because the
operator who was steering can no longer stop it and the policy resuming mid-manoeuvre is not what they asked for.

An active intervention that went stale before it was ever used (left over from an earlier episode) is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sgft_policy.validation import Rejection, stamp_seconds


@dataclass(frozen=True)
class Intervention:
    active: bool
    action: np.ndarray  # clipped to [-1, 1]; zeros when inactive
    stamp: float  # s, node clock


def intervention_from_msg(msg, action_dim: int, now_ns: int, max_future_s: float) -> Intervention | Rejection:
    """The checked intervention: usable stamp; when active, an action of the task's length, finite (then clipped to
    [-1, 1]). An inactive one's action is not used, so it is not checked."""
    stamp = stamp_seconds(msg.header.stamp, now_ns, max_future_s, "intervention")
    if isinstance(stamp, Rejection):
        return stamp
    if not msg.active:
        return Intervention(False, np.zeros(action_dim, dtype=np.float32), stamp)
    if len(msg.action) != action_dim:
        return Rejection("intervention_size", f"action of {len(msg.action)} values, the task has {action_dim}")
    if not all(math.isfinite(v) for v in msg.action):
        return Rejection("intervention_nonfinite", "non-finite action")
    action = np.clip(np.asarray(msg.action, dtype=np.float32), -1.0, 1.0)
    return Intervention(True, action, stamp)


class Takeover:
    """Whose action each tick commands: the policy's or the operator's, or that the device was lost."""

    def __init__(self, timeout: float, log: Callable[[str], object] = lambda _: None) -> None:
        self.timeout, self._log = timeout, log
        self.latest: Intervention | None = None
        self.engaged = False  # the operator's action was used since the episode started or they last released

    def take(self, intervention: Intervention) -> Rejection | None:
        """The newest intervention; an older one than the latest (reordered in transit) is refused."""
        if self.latest is not None and intervention.stamp < self.latest.stamp:
            return Rejection("intervention_out_of_order", f"stamped {self.latest.stamp - intervention.stamp:.3f} s "
                                                          "before the latest")
        self.latest = intervention
        if not intervention.active and self.engaged:
            self.engaged = False
            self._log("operator released the intervention: the policy acts again")
        return None

    def reset(self) -> None:
        """A new episode, or one resumed after a pause: the operator takes over again by sending."""
        self.engaged = False

    def _fresh(self, now: float) -> bool:
        return self.latest is not None and self.latest.active and now - self.latest.stamp <= self.timeout

    def lost(self, now: float) -> str:
        """Why the episode must be aborted (the device went silent while it steered), or ""."""
        if not self.engaged or self._fresh(now) or self.latest is None or not self.latest.active:
            return ""
        return (f"intervention device silent for {now - self.latest.stamp:.2f} s without releasing (active=false): "
                "teleoperation lost")

    def action(self, now: float) -> np.ndarray | None:
        """The operator's action for the tick at `now`, or None: the policy acts."""
        if not self._fresh(now):
            return None
        if not self.engaged:
            self.engaged = True
            self._log("operator took over: commanding the intervention's actions")
        return self.latest.action
