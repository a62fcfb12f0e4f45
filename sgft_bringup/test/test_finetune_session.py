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
