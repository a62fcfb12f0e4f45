"""`make demo-operator` end to end: the real-robot path (real-sim mode: wall clock, site file, reset server waiting for
the operator, scripted operator labelling episodes and taking over in one, MCAP recordings) against the simulated
robot. The script itself checks the store, the labels and the recordings and exits non-zero when one is missing."""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from sgft_testing import RERUN_MULTIPROCESS

REPO = Path(__file__).resolve().parents[1]

pytestmark = RERUN_MULTIPROCESS  # (why: sgft_testing)


def test_demo_operator_runs_the_real_robot_path_against_the_simulated_robot():
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.Random(os.getpid() ^ time.time_ns()).randint(101, 199)))
    result = subprocess.run([str(REPO / "tools" / "demo_operator.sh")], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
    tail = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, tail
    assert "of them an operator's intervention" in result.stdout and "2 episodes labelled" in result.stdout, tail
    if result.returncode == 0:
        pytest.importorskip("rosbags")
        bags = list((REPO / "runs" / "push_operator" / "recordings").glob("episode_*"))
        assert bags, tail
