"""scoped_endpoints: what a test made on a shared node is gone after the block."""

from __future__ import annotations

import os
import random
import time

import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy

from sgft_testing import scoped_endpoints, spin_until

os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid() ^ time.time_ns()).randint(1, 100))


@pytest.fixture(scope="module")
def node():
    rclpy.init()
    n = rclpy.create_node("scoped_endpoints_test")
    yield n
    n.destroy_node()
    rclpy.shutdown()


def test_scoped_endpoints_leave_no_transient_local_samples_to_replay(node):
    """What a test made on a shared node is gone after the block: its transient-local samples reach no later
    subscriber (a rerun's learner once received the failed attempts' transitions)."""
    from rclpy.qos import DurabilityPolicy
    from std_msgs.msg import String

    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    kept = node.create_publisher(String, "/scoped_check/kept", qos)  # made before the block: must survive it
    with scoped_endpoints(node):
        node.create_publisher(String, "/scoped_check/left", qos).publish(String(data="from an earlier attempt"))
        node.create_subscription(String, "/scoped_check/left", lambda _: None, qos)
    kept.publish(String(data="kept"))
    assert [p.topic_name for p in node.publishers if p.topic_name.startswith("/scoped_check")] == [kept.topic_name]
    assert not [s for s in node.subscriptions if s.topic_name.startswith("/scoped_check")]
    heard: list[str] = []
    for topic in ("/scoped_check/left", "/scoped_check/kept"):
        node.create_subscription(String, topic, lambda msg: heard.append(msg.data), qos)
    spin_until(node, lambda: "kept" in heard, 5.0)
    assert heard == ["kept"]  # the kept publisher replays (so the check can see a replay), the destroyed one not
