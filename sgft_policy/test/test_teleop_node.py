"""The keyboard teleop CLI in a pseudo-terminal: a held arrow publishes active Interventions, q releases and quits."""

from __future__ import annotations

import os
import pty
import sys
import time

import pytest

from sgft_testing import RERUN_MULTIPROCESS, isolate_domain, shared_node_fixtures, spin_until

pytestmark = [RERUN_MULTIPROCESS]  # (why reruns: sgft_testing)

isolate_domain()

from sgft_interfaces import SENSOR_QOS, Topics  # noqa: E402
from sgft_msgs.msg import Intervention  # noqa: E402

ros_node, ros = shared_node_fixtures("teleop_test")


def test_keyboard_cli_publishes_a_held_arrow_and_releases_on_quit(ros):
    received: list[Intervention] = []
    ros.create_subscription(Intervention, Topics.INTERVENTION, received.append, SENSOR_QOS)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on the terminal's slave side
        os.execv(sys.executable, [sys.executable, "-m", "sgft_policy.teleop", "--task", "push", "--speed", "0.5"])
    try:
        assert spin_until(ros, lambda: bool(received), 30.0), "no Intervention from the CLI"
        assert not received[-1].active

        def hold_up() -> None:
            os.write(fd, b"\x1b[A")  # as a terminal repeats a held key
            time.sleep(0.03)

        assert spin_until(ros, lambda: received[-1].active, 5.0, hold_up)
        assert list(received[-1].action) == pytest.approx([0.5, 0.0])
        os.write(fd, b"q")
        n = len(received)
        assert spin_until(ros, lambda: len(received) > n and not received[-1].active, 10.0)
        assert os.waitpid(pid, 0)[1] == 0
    finally:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
