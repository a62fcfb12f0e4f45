"""The session node's failure when no learner answers: a clear error that says whether the learner was seen."""

import pytest
import rclpy

from sgft_bringup.finetune_session import FinetuneSession, SessionError


@pytest.fixture
def session():
    # a domain of its own, so no learner of another test can answer
    rclpy.init(args=["--ros-args", "-p", "learner_status_timeout_s:=1.0"], domain_id=97)
    node = FinetuneSession()
    yield node
    node.destroy_node()
    rclpy.shutdown()


def test_missing_learner_status_names_the_topic_and_the_publishers_seen(session):
    with pytest.raises(SessionError, match=r"learner's status on /sgft/learner_status \(0 publisher"):
        session._wait_for_learner()


def test_evaluations_reset_the_same_scenes_and_skip_an_unchanged_policy(session, tmp_path, monkeypatch):
    """Each evaluation block resets seeds eval_seed + i; a block whose policy version was already evaluated (no
    update yet: the pre-collected episodes) is skipped; the curve records the version each point measured."""
    from geometry_msgs.msg import Point
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray

    from sgft_core.tasks import EVAL_SEED
    from sgft_msgs.msg import EpisodeEvent, LearnerStatus

    session.episodes, session.eval_every, session.eval_episodes = 6, 2, 3
    session.output_dir = tmp_path
    learner_version = {"after": {1: 0, 2: 0, 3: 0, 4: 5, 5: 5, 6: 9}}  # learner's version after training episode k
    resets: list[tuple[bool, int]] = []
    trained = {"episodes": 0}

    def run_episode(evaluation: bool, seed: int = -1) -> EpisodeEvent:
        resets.append((evaluation, seed))
        if not evaluation:
            trained["episodes"] += 1
        version = learner_version["after"].get(trained["episodes"], 0)
        return EpisodeEvent(event=EpisodeEvent.FINISHED, success=evaluation and version > 0, policy_version=version)

    def wait_for_learner() -> None:
        n = trained["episodes"]
        session.status = LearnerStatus(transitions_received=40 * n, policy_version=learner_version["after"][n])

    monkeypatch.setattr(session, "_run_episode", run_episode)
    monkeypatch.setattr(session, "_wait_for_learner", wait_for_learner)
    marker = Marker(ns="value_sim", points=[Point(x=0.4, y=0.0)], colors=[ColorRGBA(r=1.0, a=1.0)])
    session.heatmap = MarkerArray(markers=[marker])

    results = session.run()

    assert [(c["episodes"], c["policy_version"], c["success"]) for c in results["curve"]] == \
        [(0, 0, 0.0), (4, 5, 1.0), (6, 9, 1.0)]  # after 2 episodes: still version 0, skipped
    eval_seeds = [seed for evaluation, seed in resets if evaluation]
    assert eval_seeds == [EVAL_SEED, EVAL_SEED + 1, EVAL_SEED + 2] * 3
    assert all(seed == -1 for evaluation, seed in resets if not evaluation)
    assert (tmp_path / "learning_curve.png").exists() and (tmp_path / "results.json").exists()
