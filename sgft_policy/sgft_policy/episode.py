"""The policy's episode and e-stop state machine, without ROS: the node feeds it requests and observations and
publishes the events it emits.

Episodes: start (refused under e-stop, while one runs, or while the inputs are not ready), then steps; holding while
inputs are stale (a step's pending action is dropped, an episode holding longer than max_hold is aborted), resumed
when they are fresh again; paused and resumed by the operator (no steps and no max_hold while paused); finished at
a terminal state or the time limit, aborted by the operator or the e-stop. An abort, the e-stop and a pause call
`halt`: the node commands the arm to hold its measured pose, since the controller's last target may be a step ahead.
The e-stop and the running episode are persisted to files, so they survive a restart of the node: a restarted node
keeps the e-stop engaged and marks the episode it was running aborted. The e-stop topic can only engage it; only the
set_estop service clears it.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from sgft_core.tasks import TaskSpec

MAX_REASON_CHARS = 200  # of a StopEpisode reason
PAUSED = "paused by operator"
NO_EPISODE = "no episode is running"


class EventKind(enum.Enum):
    STARTED = "started"
    FINISHED = "finished"
    ABORTED = "aborted"
    HOLDING = "holding"
    RESUMED = "resumed"


class Logger(Protocol):
    def info(self, message: str) -> object: ...

    def warning(self, message: str) -> object: ...

    def error(self, message: str) -> object: ...


# (kind, reason, success); the emitter reads episode_id, step_index, episode_return and evaluation off the episode
EventSink = Callable[[EventKind, str, bool], None]


@dataclass(frozen=True)
class StepOutcome:
    """One step of the episode: r(s'), flags, and the step's index (0 first)."""

    step: int
    reward: float
    success: bool
    terminal: bool
    truncated: bool

    @property
    def done(self) -> bool:
        return self.terminal or self.truncated


def write_state(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # atomic: a crash leaves the old state or the new one, never half of it


class Episode:
    """Episode numbering, the running episode's progress, holding, and the e-stop."""

    def __init__(self, estop_file: Path, episode_file: Path, max_hold: float, emit: EventSink,
                 log: Logger, halt: Callable[[], None] = lambda: None) -> None:
        self.estop_file, self.episode_file = estop_file, episode_file
        self.max_hold = max_hold
        self._emit, self._log, self._halt = emit, log, halt
        self.episode_id = 0
        self.running = False
        self.evaluation = False
        self.step_index = 0
        self.episode_return = 0.0
        self.paused = False
        # (s, a, whether an operator's intervention chose a) waiting for s'
        self.pending: tuple[np.ndarray, np.ndarray, bool] | None = None
        self.hold_reason = ""
        self.hold_since: float | None = None
        self.estop = self._read_estop_file()

    # ------------------------------------------------------------------------------------------------ persistence
    def _read_estop_file(self) -> bool:
        try:
            return self.estop_file.read_text().strip() == "engaged"
        except FileNotFoundError:
            return False

    def recover(self) -> None:
        """Continue the episode numbering of the previous run; an episode it left running is marked aborted."""
        try:
            state = json.loads(self.episode_file.read_text())
        except (FileNotFoundError, ValueError):
            return
        self.episode_id = int(state.get("episode_id", 0))
        if state.get("running"):
            self.step_index = int(state.get("steps", 0))
            self.evaluation = bool(state.get("evaluation", False))
            self._emit(EventKind.ABORTED, "the policy node restarted during this episode", False)
            self._log.warning(f"episode {self.episode_id} was running when this node stopped: "
                              "marked ABORTED (neither success nor failure)")
            write_state(self.episode_file, json.dumps({"episode_id": self.episode_id, "running": False}))
            self.step_index = 0

    # ------------------------------------------------------------------------------------------------ requests
    def start(self, evaluation: bool, not_ready: Callable[[], str]) -> tuple[bool, str]:
        """(accepted, why not). `not_ready` is asked last: the reason the inputs are not ready, "" when they are.

        Refused rather than started on hold: at a graph's start the detections can reach the session before they
        reach this node, and an episode that began holding was aborted after max_hold (its scene lost)."""
        if self.estop:
            return False, "e-stop engaged"
        if self.running:
            return False, f"episode {self.episode_id} is running"
        reason = not_ready()
        if reason:
            return False, reason
        self.episode_id += 1
        self.running, self.evaluation, self.paused = True, bool(evaluation), False
        self.step_index, self.episode_return, self.pending = 0, 0.0, None
        self.hold_reason, self.hold_since = "", None
        write_state(self.episode_file, json.dumps(
            {"episode_id": self.episode_id, "running": True, "evaluation": self.evaluation}))
        self._emit(EventKind.STARTED, "evaluation" if self.evaluation else "fine-tuning", False)
        return True, ""

    def stop(self, reason: str) -> tuple[bool, str]:
        """(stopped, why not)."""
        if not self.running:
            return False, NO_EPISODE
        # any caller's text goes into the event and the log: bounded
        self.end(EventKind.ABORTED, reason[:MAX_REASON_CHARS] or "stopped by operator")
        return True, ""

    def end(self, kind: EventKind, reason: str, success: bool = False) -> None:
        self.running, self.pending, self.paused = False, None, False
        write_state(self.episode_file, json.dumps({"episode_id": self.episode_id, "running": False}))
        if kind is EventKind.ABORTED:
            self._halt()
        self._emit(kind, reason, success)
        verb = {EventKind.FINISHED: "finished", EventKind.ABORTED: "ABORTED"}[kind]
        self._log.info(f"episode {self.episode_id} {verb} after {self.step_index} steps: {reason} "
                       f"(return {self.episode_return:.2f}, success {success})")

    def estop_from_topic(self, engaged: bool, source: str) -> bool:
        """The e-stop topic can only engage: any peer can publish on it, so clearing takes the operator's service.
        False when it asked to clear (ignored)."""
        if engaged:
            self.set_estop(True, source)
        return engaged

    def set_estop(self, engaged: bool, source: str) -> None:
        if engaged == self.estop:
            return
        self.estop = engaged
        write_state(self.estop_file, "engaged\n" if engaged else "cleared\n")
        if engaged:
            self._log.error(f"E-STOP engaged by {source}: no more commands until it is cleared")
            if self.running:
                self.end(EventKind.ABORTED, f"e-stop engaged by {source}")
            else:  # whatever else moved the arm, the stop holds it where it is
                self._halt()
        else:
            self._log.warning(f"e-stop cleared by {source}")

    # ------------------------------------------------------------------------------------------------ the loop
    def pause(self, paused: bool) -> tuple[bool, str]:
        """The operator's pause (True) or resume (False) of the running episode: (done, message). Paused, the arm
        holds its measured pose and the pending step is dropped (its action was not held for one period); the time
        paused is no hold, so max_hold does not abort it."""
        if not self.running:
            return False, NO_EPISODE
        if paused == self.paused:
            return True, "already paused" if paused else "not paused"
        self.paused, self.pending = paused, None
        self.hold_since, self.hold_reason = None, ""
        if paused:
            self._halt()
            self._emit(EventKind.HOLDING, PAUSED, False)
            self._log.warning(f"episode {self.episode_id} {PAUSED}")
            return True, "paused"
        self._emit(EventKind.RESUMED, "resumed by operator", False)
        self._log.info(f"episode {self.episode_id} resumed by operator")
        return True, "resumed"

    @property
    def acting(self) -> bool:
        """Whether a tick should act: an episode runs, unpaused, and the e-stop is clear."""
        return self.running and not self.estop and not self.paused

    def hold(self, reason: str, now: float) -> None:
        """No command this tick; the pending action was not held for one period, so it is no valid transition."""
        self.pending = None
        if self.hold_since is None or reason != self.hold_reason:
            self._log.warning(f"holding position in episode {self.episode_id}: {reason}")
            self._emit(EventKind.HOLDING, reason, False)
            self.hold_since = now if self.hold_since is None else self.hold_since
            self.hold_reason = reason
        if now - self.hold_since > self.max_hold:
            self.end(EventKind.ABORTED, f"held for more than {self.max_hold:.1f} s: {reason}")

    def resume(self) -> None:
        """The inputs are fresh: a hold, if any, is over."""
        if self.hold_since is not None:
            self._emit(EventKind.RESUMED, f"inputs fresh again after {self.hold_reason}", False)
            self._log.info(f"resuming episode {self.episode_id}: {self.hold_reason} cleared")
            self.hold_since, self.hold_reason = None, ""

    def record_step(self, spec: TaskSpec, next_obs: np.ndarray) -> StepOutcome:
        """Count the pending action's step, observed as next_obs; the caller publishes it, then calls `finish`."""
        reward = float(spec.reward(next_obs))
        terminal = bool(spec.terminal(next_obs))
        self.step_index += 1
        self.episode_return += reward
        self.pending = None
        return StepOutcome(step=self.step_index - 1, reward=reward, success=bool(spec.success(next_obs)),
                           terminal=terminal, truncated=self.step_index >= spec.episode_length and not terminal)

    def finish(self, outcome: StepOutcome) -> bool:
        """End the episode after its last step; True when it ended."""
        if outcome.done:
            self.end(EventKind.FINISHED, "terminal state" if outcome.terminal else "time limit", outcome.success)
        return outcome.done
