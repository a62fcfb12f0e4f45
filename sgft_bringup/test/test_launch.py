"""launch_pytest tests of the launch files: they run on a ROS 2 workstation where launch_pytest is installed (it is
not on PyPI, so here they are skipped, visibly). They start sim_finetune.launch.py and check that detections,
commands and transitions flow."""

import pytest

launch_pytest = pytest.importorskip("launch_pytest", reason="launch_pytest is not installed (not on PyPI)")

import time  # noqa: E402

import rclpy  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from sgft_bringup.graph import share_dir  # noqa: E402
from sgft_interfaces import COMMAND_QOS, SENSOR_QOS, TRANSITION_QOS, Services, Topics  # noqa: E402
from sgft_msgs.msg import ObjectDetection, Transition  # noqa: E402
from sgft_msgs.srv import StartEpisode  # noqa: E402
from sgft_testing import start_episode  # noqa: E402


@launch_pytest.fixture
def sim_finetune():
    path = str(share_dir() / "launch" / "sim_finetune.launch.py")
    return LaunchDescription([IncludeLaunchDescription(PythonLaunchDescriptionSource(path),
                                                       launch_arguments={"task": "push"}.items()),
                              launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=sim_finetune)
def test_detections_commands_and_transitions_flow():
    rclpy.init()
    node = rclpy.create_node("launch_test_probe")
    got = {"detection": 0, "command": 0, "transition": 0}

    def count(key):
        return lambda _msg: got.__setitem__(key, got[key] + 1)

    node.create_subscription(ObjectDetection, Topics.OBJECT_DETECTION, count("detection"), SENSOR_QOS)
    node.create_subscription(PoseStamped, Topics.CARTESIAN_TARGET, count("command"), COMMAND_QOS)
    node.create_subscription(Transition, Topics.TRANSITIONS, count("transition"), TRANSITION_QOS)
    client = node.create_client(StartEpisode, Services.START_EPISODE)
    assert client.wait_for_service(timeout_sec=60)
    started = start_episode(node, client)  # retried while the policy node is not ready yet
    assert started.accepted, started.message
    deadline = time.monotonic() + 60
    while min(got.values()) == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.shutdown()
    assert min(got.values()) > 0, got
