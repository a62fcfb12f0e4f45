"""The operator console's parts without DDS: what it shows from the graph's messages, what each key asks for."""

from __future__ import annotations

from rich.console import Console
from std_msgs.msg import Bool

from sgft_bringup.console import KEYS, ConsoleState, answer_text, handle_key, render
from sgft_msgs.msg import EpisodeEvent, LearnerStatus
from sgft_msgs.srv import LabelEpisode, StartEpisode


def event(episode: int, kind: int, reason: str = "", success: bool = False, steps: int = 3) -> EpisodeEvent:
    return EpisodeEvent(episode_id=episode, event=kind, reason=reason, success=success, steps=steps)


class RecordingClient:
    """Stands in for GraphClient: records which service the console asked for, with what."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args)) or f"future:{name}"


def test_the_state_follows_episode_events_labels_and_the_learner():
    state = ConsoleState()
    state.on_event(event(1, EpisodeEvent.STARTED))
    assert state.episode_state == "running"
    state.on_event(event(1, EpisodeEvent.HOLDING, "paused by operator"))
    assert state.episode_state == "paused"
    state.on_event(event(1, EpisodeEvent.FINISHED, "time limit", success=False, steps=40))
    state.on_event(event(2, EpisodeEvent.FINISHED, "terminal state", success=True))
    state.on_event(event(1, EpisodeEvent.STARTED))  # a late replay of an earlier episode: ignored
    assert state.episode_id == 2 and state.last_finished == 2
    assert state.summary()["success"].startswith("1/2")
    state.labels[1] = True  # the operator saw a success the robot did not perceive
    assert state.success(1) and state.summary()["success"].startswith("2/2")
    state.on_status(LearnerStatus(variant="sgft", training=True, gradient_updates=40, updates_per_second=9.5,
                                  policy_version=20, transitions_stored=80))
    assert "40 updates (9.5/s)" in state.summary()["learner"]
    state.on_estop(Bool(data=True))
    assert state.summary()["e-stop"] == "ENGAGED"


def test_each_key_asks_the_graph_for_its_service():
    state, client = ConsoleState(), RecordingClient()
    for key, expected in (("s", ("start",)), ("p", ("pause", True)), ("r", ("pause", False)), ("a", ("abort",)),
                          ("c", ("confirm_reset",)), ("e", ("estop", True)), ("E", ("estop", False))):
        handle_key(key, state, client)
        assert client.calls[-1] == expected
    what, future = handle_key("y", state, client)  # nothing finished yet: nothing sent
    assert future is None and "no finished episode" in what
    state.on_event(event(4, EpisodeEvent.FINISHED, success=False))
    handle_key("y", state, client)
    assert client.calls[-1] == ("label", 4, True) and state.labels == {4: True}
    assert set(KEYS) >= {"s", "p", "r", "a", "c", "y", "n", "e", "E", "q"}


def test_answers_and_the_screen_render():
    assert answer_text(StartEpisode.Response(accepted=False, message="e-stop engaged")) == "refused: e-stop engaged"
    assert answer_text(LabelEpisode.Response(accepted=True)) == "ok"
    state = ConsoleState()
    state.on_event(event(3, EpisodeEvent.STARTED))
    state.note("reset confirmed")
    console = Console(record=True, width=120)
    console.print(render(state))
    text = console.export_text()
    assert "SGFT operator console" in text and "episode" in text and "reset confirmed" in text
