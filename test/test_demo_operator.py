"""`make demo-operator` end to end: the real-robot path (real-sim mode: wall clock, site file, reset server waiting for
the operator, scripted operator labelling episodes and taking over in one, MCAP recordings) against the simulated
robot. The script itself checks the store, the labels and the recordings and exits non-zero when one is missing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

from sgft_testing import RERUN_MULTIPROCESS

REPO = Path(__file__).resolve().parents[1]

pytestmark = RERUN_MULTIPROCESS  # (why: sgft_testing)


def test_demo_operator_runs_the_real_robot_path_against_the_simulated_robot():
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.Random(os.getpid() ^ time.time_ns()).randint(101, 199)))
    proc = subprocess.Popen([str(REPO / "tools" / "demo_operator.sh")], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output = proc.communicate(timeout=600)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C: run_graph stops its nodes
        try:
            output = proc.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output = proc.communicate()[0]
        raise AssertionError(f"make demo-operator did not finish within 600 s\n{output[-6000:]}") from None
    tail = output[-6000:]
    assert proc.returncode == 0, tail
    assert "of them an operator's intervention" in output and "2 episodes labelled" in output, tail
    bags = list((REPO / "runs" / "push_operator" / "recordings").glob("episode_*"))
    assert bags, tail
