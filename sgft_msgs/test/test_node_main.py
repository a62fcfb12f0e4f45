"""run_node keeps a node alive when a callback it cannot guard raises: a /clock with a negative time from a peer
makes rclpy's time source raise inside the executor, which ended the node under rclpy.spin."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import rclpy
from builtin_interfaces.msg import Time
from rosgraph_msgs.msg import Clock

NODE = """
import sys
from rclpy.node import Node
from sgft_interfaces.node_main import run_node
sys.exit(run_node(lambda: Node("clock_victim"), "clock_victim", args=sys.argv))
"""


def test_a_negative_clock_from_a_peer_does_not_end_the_node():
    os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid() ^ time.time_ns()).randint(1, 100))
    proc = subprocess.Popen([sys.executable, "-c", NODE, "--ros-args", "-p", "use_sim_time:=true"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("clock_peer", context=context)
        pub = node.create_publisher(Clock, "/clock", 10)
        deadline = time.monotonic() + 20.0
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pub.get_subscription_count() > 0, "the node never subscribed to /clock"
        for _ in range(5):
            pub.publish(Clock(clock=Time(sec=-5, nanosec=0)))
            time.sleep(0.2)
        pub.publish(Clock(clock=Time(sec=3, nanosec=0)))
        time.sleep(1.0)
        assert proc.poll() is None, proc.communicate()[0]
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=15)[0]
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert proc.returncode == 0, output
    assert "callback failed" in output, output
