"""The episode and e-stop state machine, driven directly (no ROS)."""

import json

import numpy as np
import pytest

from sgft_core.tasks import get_task
from sgft_policy.episode import Episode, EventKind

SPEC = get_task("push")


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message: str) -> None:
        self.lines.append(("info", message))

    def warning(self, message: str) -> None:
        self.lines.append(("warning", message))

    def error(self, message: str) -> None:
        self.lines.append(("error", message))


def make(tmp_path, max_hold: float = 5.0):
    events: list[tuple[EventKind, str, bool, int, int]] = []
    log = Log()
    episode = None

    def emit(kind, reason, success):
        events.append((kind, reason, success, episode.episode_id, episode.step_index))

    episode = Episode(tmp_path / "estop", tmp_path / "episode.json", max_hold, emit, log)
    return episode, events, log


def ready() -> str:
    return ""


def test_start_is_refused_under_estop_while_running_and_when_not_ready(tmp_path):
    episode, events, _ = make(tmp_path)
    assert episode.start(False, lambda: "not ready: robot pose stale or missing") == (
        False, "not ready: robot pose stale or missing")
    assert episode.start(True, ready) == (True, "")
    assert episode.running and episode.evaluation and episode.episode_id == 1
    assert events[-1][:2] == (EventKind.STARTED, "evaluation")
    assert episode.start(False, ready) == (False, "episode 1 is running")
    episode.set_estop(True, "/sgft/estop")
    assert not episode.running and events[-1][:2] == (EventKind.ABORTED, "e-stop engaged by /sgft/estop")
    assert episode.start(False, ready) == (False, "e-stop engaged")
    assert not episode.acting


def test_estop_and_the_running_episode_survive_a_restart(tmp_path):
    episode, _, log = make(tmp_path)
    assert episode.start(False, ready)[0]
    episode.record_step(SPEC, np.array([0.3, 0.0, 0.4, 0.0]))
    episode.set_estop(True, "operator")
    assert (tmp_path / "estop").read_text() == "engaged\n"
    assert ("error", "E-STOP engaged by operator: no more commands until it is cleared") in log.lines
    restarted, _, _ = make(tmp_path)
    assert restarted.estop
    restarted.set_estop(False, "operator")
    assert not make(tmp_path)[0].estop

    # a node killed during an episode: the next one marks it aborted and continues the numbering
    episode, _, _ = make(tmp_path)
    episode.recover()
    assert episode.start(False, ready)[0]
    again, events, log = make(tmp_path)
    again.recover()
    assert events == [(EventKind.ABORTED, "the policy node restarted during this episode", False, 2, 0)]
    assert not again.running and again.episode_id == 2
    assert json.loads((tmp_path / "episode.json").read_text()) == {"episode_id": 2, "running": False}
    assert again.start(False, ready) == (True, "") and again.episode_id == 3


def test_hold_drops_the_pending_step_reports_once_per_reason_and_aborts_after_max_hold(tmp_path):
    episode, events, _ = make(tmp_path, max_hold=1.0)
    episode.start(False, ready)
    episode.pending = (np.zeros(4), np.zeros(2))
    episode.hold("object detection stale or missing", 10.0)
    episode.hold("object detection stale or missing", 10.5)
    assert episode.pending is None
    assert [e[0] for e in events] == [EventKind.STARTED, EventKind.HOLDING]
    episode.resume()
    assert events[-1][:2] == (EventKind.RESUMED, "inputs fresh again after object detection stale or missing")
    episode.resume()  # not holding: nothing to say
    assert len(events) == 3
    episode.hold("robot pose stale or missing", 20.0)
    episode.hold("joint state stale or missing", 20.5)  # a new reason is reported, the hold goes on
    assert [e[1] for e in events[-2:]] == ["robot pose stale or missing", "joint state stale or missing"]
    episode.hold("joint state stale or missing", 21.1)
    assert not episode.running
    assert events[-1][:2] == (EventKind.ABORTED, "held for more than 1.0 s: joint state stale or missing")


def test_steps_count_reward_and_finish_at_the_time_limit(tmp_path):
    episode, events, log = make(tmp_path)
    episode.start(False, ready)
    obs = np.array([0.5, 0.0, 0.4, 0.0])
    for i in range(SPEC.episode_length):
        episode.pending = (obs, np.zeros(2))
        step = episode.record_step(SPEC, obs)
        assert step.step == i and episode.pending is None
        assert step.reward == pytest.approx(float(SPEC.reward(obs)))
        ended = episode.finish(step)
        assert ended == (i == SPEC.episode_length - 1) and step.truncated == ended
    assert events[-1][:3] == (EventKind.FINISHED, "time limit", False)
    assert episode.episode_return == pytest.approx(SPEC.episode_length * float(SPEC.reward(obs)))
    assert log.lines[-1][1].startswith(f"episode 1 finished after {SPEC.episode_length} steps: time limit")


def test_a_terminal_state_finishes_and_stop_aborts(tmp_path):
    episode, events, _ = make(tmp_path)
    episode.start(False, ready)
    fell = episode.record_step(SPEC, np.array([0.5, 0.0, 0.9, 0.0]))  # the puck left the table
    assert fell.terminal and not fell.truncated and episode.finish(fell)
    assert events[-1][:2] == (EventKind.FINISHED, "terminal state")
    assert episode.stop("") == (False, "no episode is running")
    episode.start(False, ready)
    assert episode.stop("") == (True, "")
    assert events[-1][:2] == (EventKind.ABORTED, "stopped by operator")


def with_halts(tmp_path, max_hold: float = 5.0):
    halts: list[int] = []
    events: list[tuple[EventKind, str]] = []
    episode = Episode(tmp_path / "estop", tmp_path / "episode.json", max_hold,
                      lambda kind, reason, success: events.append((kind, reason)), Log(),
                      halt=lambda: halts.append(len(events)))
    return episode, events, halts


def test_abort_and_estop_halt_the_arm_once_finishing_does_not(tmp_path):
    episode, events, halts = with_halts(tmp_path, max_hold=1.0)
    episode.start(False, ready)
    episode.stop("operator")
    assert halts == [1] and events[-1] == (EventKind.ABORTED, "operator")  # held before the event says so
    episode.start(False, ready)
    episode.hold("robot pose stale or missing", 10.0)
    episode.hold("robot pose stale or missing", 11.1)  # max_hold abort
    assert len(halts) == 2 and events[-1][0] == EventKind.ABORTED
    episode.start(False, ready)
    fell = episode.record_step(SPEC, np.array([0.5, 0.0, 0.9, 0.0]))
    episode.finish(fell)
    assert len(halts) == 2  # a finished episode's last target was held for its whole step
    episode.start(False, ready)
    episode.set_estop(True, "operator")
    assert len(halts) == 3 and events[-1] == (EventKind.ABORTED, "e-stop engaged by operator")
    episode.set_estop(True, "/sgft/estop")  # already engaged: no second hold
    assert len(halts) == 3
    episode.set_estop(False, "operator")
    episode.set_estop(True, "operator")  # between episodes too: whatever moves the arm, it stops
    assert len(halts) == 4


def test_pause_holds_drops_the_pending_step_and_does_not_count_towards_max_hold(tmp_path):
    episode, events, halts = with_halts(tmp_path, max_hold=1.0)
    assert episode.pause(True) == (False, "no episode is running")
    assert episode.pause(False) == (False, "no episode is running")
    episode.start(False, ready)
    assert episode.pause(False) == (True, "not paused")
    episode.hold("object detection stale or missing", 10.0)
    episode.pending = (np.zeros(4), np.zeros(2), False)
    assert episode.pause(True) == (True, "paused")
    assert episode.pending is None and not episode.acting and halts == [len(events) - 1]
    assert events[-1] == (EventKind.HOLDING, "paused by operator")
    assert episode.pause(True) == (True, "already paused") and len(halts) == 1
    assert episode.pause(False) == (True, "resumed") and episode.acting
    assert events[-1] == (EventKind.RESUMED, "resumed by operator")
    # the hold before the pause is forgotten: 30 s later a stale input starts a new hold, not an abort
    episode.hold("object detection stale or missing", 40.0)
    assert episode.running and events[-1] == (EventKind.HOLDING, "object detection stale or missing")
    episode.pause(True)
    episode.stop("operator")  # a paused episode can be stopped; the next one starts unpaused
    assert not episode.paused and episode.start(False, ready)[0] and episode.acting
