"""QoS profiles, each chosen on purpose (the reason is next to it)."""

import os
from pathlib import Path

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

# Camera clouds: only the newest matters and an 8 MB cloud must never queue up behind older ones.
SENSOR_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)

# /clock, as rclpy's time source subscribes to it: only the newest time matters.
CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)

# franka_ros2 publishes robot state BEST_EFFORT; a RELIABLE subscriber would receive nothing from it.
ROBOT_STATE_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)

# Controller targets: reliable, newest only; a stale target queued behind a fresh one is worse than none.
COMMAND_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)

# Transitions: reliable, and the publisher keeps the last 1000 (200 s at 5 Hz) for late joiners: a learner that
# starts after the policy, or restarts after a crash, still receives every step. The learner drops the ones it has
# already stored (by stamp, episode and step), so the replay never duplicates data.
TRANSITION_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)

# Weights: a late or restarted policy node must get the latest one, so the publisher keeps it (transient local).
POLICY_UPDATE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                               durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)

# Episode events: an operator tool started late still sees the recent history.
EPISODE_EVENT_QOS = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE,
                               durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)

# Learner status / heatmaps: periodic, the newest few are enough.
STATUS_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)

# Services: a burst of callers (an operator console, scripts, a misbehaving peer) must each get an answer rather than
# be dropped at the server's queue; the handlers are quick, so a deep queue costs nothing.
SERVICE_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)

# E-stop state is latched: a node (re)started while the stop is engaged must see it at once.
ESTOP_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)


def select_transport(choice: str) -> str:
    """For benchmarks and checks that compare transports; call before rclpy.init (child processes inherit it).
    "profile" keeps the profile file setup.bash names (the graph's transports, sgft_bringup/config/fastdds.xml); any
    other value is a FASTDDS_BUILTIN_TRANSPORTS choice (DEFAULT, LARGE_DATA, SHM, ...), and the profile file, which
    would override it, is dropped. Returns a label for the printout."""
    if choice == "profile":
        profile = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")
        if not profile:
            raise SystemExit("transport 'profile': FASTDDS_DEFAULT_PROFILES_FILE is not set (source setup.bash)")
        return f"profile {Path(profile).name}"
    os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    os.environ["FASTDDS_BUILTIN_TRANSPORTS"] = choice
    return f"FASTDDS_BUILTIN_TRANSPORTS={choice}"
