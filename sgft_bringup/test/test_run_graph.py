"""run_graph frees the shared memory a killed Fast DDS process left in /dev/shm, and only that."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sgft_bringup.run_graph import clean_shared_memory

SHM = Path("/dev/shm")
SEGMENT = re.compile(r"^fastdds_[0-9a-f]{16}$")
# Two of these talk to each other: a segment is made when a participant first sends data over shared memory.
PARTICIPANT = """
import rclpy
from std_msgs.msg import String
rclpy.init()
node = rclpy.create_node("shm_probe")
pub = node.create_publisher(String, "/shm_probe", 10)
node.create_subscription(String, "/shm_probe", lambda _: None, 10)
node.create_timer(0.1, lambda: pub.publish(String(data="x" * 1000)))
print("up", flush=True)
rclpy.spin(node)
"""


def _segments() -> set[str]:
    return {p.name for p in SHM.iterdir() if SEGMENT.match(p.name)}


def _participants() -> tuple[list[subprocess.Popen], set[str]]:
    before = _segments()
    procs = [subprocess.Popen([sys.executable, "-c", PARTICIPANT], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "up"
    deadline = time.monotonic() + 20
    while len(_segments() - before) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    return procs, _segments() - before


def test_killed_participants_segment_is_freed_a_live_ones_is_kept(monkeypatch):
    if not SHM.is_dir():
        pytest.skip("no /dev/shm here")
    monkeypatch.setenv("ROS_DOMAIN_ID", "57")  # the probes talk to each other only
    procs, probe_segments = _participants()
    dead, live = procs
    try:
        assert len(probe_segments) == 2, "each probe should have made its segment"
        dead.kill()
        dead.wait(timeout=10)
        assert probe_segments <= _segments()  # a SIGKILL leaves the dead one's behind
        clean_shared_memory()
        left = probe_segments & _segments()
        assert len(left) == 1, f"{2 - len(left)} of the two probes' segments freed; expected the killed one's only"
        assert live.poll() is None
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)
        clean_shared_memory()
