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
    from geometry_msgs.msg import Point, Vector3
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray

    from sgft_core.seeds import EVAL_SEED
    from sgft_msgs.msg import EpisodeEvent, LearnerStatus

    session.episodes, session.eval_every, session.eval_episodes = 6, 2, 3
    session.output_dir = tmp_path
    learner_version = {"after": {1: 0, 2: 0, 3: 0, 4: 5, 5: 5, 6: 9}}  # learner's version after training episode k
    resets: list[tuple[bool, int]] = []
    trained = {"episodes": 0}

    def run_episode(evaluation: bool, seed: int = -1, scene: int = -1) -> EpisodeEvent:
        assert scene == -1, "no start scenes: the simulated robot resets by seed"
        resets.append((evaluation, seed))
        if not evaluation:
            trained["episodes"] += 1
        version = learner_version["after"].get(trained["episodes"], 0)
        return EpisodeEvent(event=EpisodeEvent.FINISHED, success=evaluation and version > 0, policy_version=version,
                            steps=40)

    def wait_for_learner(received: int = 0) -> None:
        n = trained["episodes"]
        assert received == 40 * n, "evaluation episodes publish no transitions; training ones one per step"
        session.status = LearnerStatus(transitions_received=40 * n, policy_version=learner_version["after"][n])

    monkeypatch.setattr(session, "_run_episode", run_episode)
    monkeypatch.setattr(session, "_wait_for_learner", wait_for_learner)
    cells = Marker(ns="value_sim", type=Marker.CUBE_LIST, points=[Point(x=0.4, y=0.0), Point(x=0.42, y=0.0)],
                   colors=[ColorRGBA(r=1.0, a=1.0), ColorRGBA(b=1.0, a=1.0)], scale=Vector3(x=0.02, y=0.03, z=0.002))
    puck = Marker(ns="object", type=Marker.SPHERE)
    puck.pose.position = Point(x=0.41, y=0.0)
    session.heatmap = MarkerArray(markers=[cells, puck])

    results = session.run()

    assert [(c["episodes"], c["policy_version"], c["success"]) for c in results["curve"]] == \
        [(0, 0, 0.0), (4, 5, 1.0), (6, 9, 1.0)]  # after 2 episodes: still version 0, skipped
    eval_seeds = [seed for evaluation, seed in resets if evaluation]
    assert eval_seeds == [EVAL_SEED, EVAL_SEED + 1, EVAL_SEED + 2] * 3
    assert all(seed == -1 for evaluation, seed in resets if not evaluation)
    assert all((tmp_path / name).exists() for name in ("learning_curve.png", "value_heatmap.png", "results.json"))


def test_catch_up_is_judged_from_a_status_that_counts_the_episodes_transitions(session):
    """A status from before the episode's last transitions arrived says "not training": the session must not take
    it for the catch-up, but wait for one that counts them all and has finished their updates."""
    import threading
    import time

    from sgft_interfaces import STATUS_QOS, Topics
    from sgft_msgs.msg import LearnerStatus
    from sgft_testing import spin_until

    learner = rclpy.create_node("fake_learner_status")  # stands in for the learner's status publisher only
    pub = learner.create_publisher(LearnerStatus, Topics.LEARNER_STATUS, STATUS_QOS)
    session.status = LearnerStatus(transitions_received=0, training=False)  # the stale one
    sequence = [(0.8, LearnerStatus(transitions_received=40, training=True, gradient_updates=10)),
                (1.1, LearnerStatus(transitions_received=40, training=False, gradient_updates=80))]

    def publish_later() -> None:
        start = time.monotonic()
        for at, msg in sequence:
            time.sleep(max(0.0, at - (time.monotonic() - start)))
            pub.publish(msg)

    assert spin_until(session, lambda: pub.get_subscription_count() > 0, 10.0)
    publisher = threading.Thread(target=publish_later)
    publisher.start()
    try:
        session._wait_for_learner(received=40)
        assert session.status.gradient_updates == 80 and not session.status.training
    finally:
        publisher.join()
        learner.destroy_node()


def test_real_evaluations_cycle_the_sites_start_scenes_and_every_wait_is_a_parameter(tmp_path, monkeypatch):
    """On the real robot (no sim time) with the site's start scenes, evaluation episode i resets scene i mod their
    number and the operator is told what to set up; training episodes reset any scene. The session's waits come
    from parameters: the reset's answer waits reset_timeout_s (0: forever)."""
    from sgft_msgs.msg import EpisodeEvent, LearnerStatus

    rclpy.init(args=["--ros-args", "-p", "start_scenes:=[0.4, 0.1, 0.45, -0.1]", "-p", "reset_timeout_s:=0.0",
                     "-p", "scene_timeout_s:=5.0", "-p", "start_retry_s:=7.0"], domain_id=98)
    node = FinetuneSession()
    try:
        assert node.real and node.start_scenes == [(0.4, 0.1), (0.45, -0.1)]
        assert (node.reset_timeout, node.scene_timeout, node.start_retry) == (0.0, 5.0, 7.0)
        assert "set up scene 1: object at (0.450, -0.100)" in node._scene_instructions(1)
        node.episodes, node.eval_every, node.eval_episodes, node.output_dir = 2, 2, 3, tmp_path
        resets: list[tuple[bool, int, int]] = []
        trained = {"episodes": 0}

        def run_episode(evaluation: bool, seed: int = -1, scene: int = -1) -> EpisodeEvent:
            resets.append((evaluation, seed, scene))
            trained["episodes"] += not evaluation
            return EpisodeEvent(event=EpisodeEvent.FINISHED, policy_version=trained["episodes"], steps=40)

        def wait_for_learner(received: int = 0) -> None:
            node.status = LearnerStatus(transitions_received=received, policy_version=trained["episodes"])

        monkeypatch.setattr(node, "_run_episode", run_episode)
        monkeypatch.setattr(node, "_wait_for_learner", wait_for_learner)
        monkeypatch.setattr(node, "_spin_until", lambda *a: None)
        monkeypatch.setattr(node, "_plot_heatmap", lambda: None)
        node.run()
        assert [scene for evaluation, _, scene in resets if evaluation] == [0, 1, 0] * 2
        assert all(seed == -1 for _, seed, _ in resets)
        assert all(scene == -1 for evaluation, _, scene in resets if not evaluation)
    finally:
        node.destroy_node()
        rclpy.shutdown()
