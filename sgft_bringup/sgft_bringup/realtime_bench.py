"""The push graph at a real robot's rates on the wall clock, against the simulated robot: one JSON line per resolution.

    python -m sgft_bringup.realtime_bench                                  # 848x480 and 424x240, 60 s each
    python -m sgft_bringup.realtime_bench --resolutions 424x240 --duration 30
    python -m sgft_bringup.realtime_bench --set sgft_sim_robot.state_rate_hz=100   # a slower state broadcaster

Per resolution it starts the graph's nodes (sgft_bringup.graph.graph_nodes, as run_graph starts them) with every node
on the wall clock (use_sim_time false) and the simulated robot in its wall-clock mode (sgft_sim.robot_node: state at
the robot profile's rate, 1 kHz on crisp; clouds at 30 Hz; no /clock; it never waits for the graph), perception with
expected_points scaled to the resolution, the policy, and the learner TRAINING (sgft_kept_critic, one prefill
episode, so it updates from the second episode on). No session: this module resets the scene and starts episodes
itself, back to back, until --duration seconds of episodes have passed (the episode under way then runs to its end).

CLOUDS ARE NOT ALL FRESH RENDERS. Rendering 848x480 clouds at 30 Hz would take ≈2.4 cores here, so the simulated
camera renders a new cloud every --render-every camera periods and publishes the latest one re-stamped at every period
in between: the cloud transport and the perception load are a real 30 Hz camera's, but the scene in a cloud lags by up
to that many periods (plus a render), which affects the task's success, not the timing measured.

What each line holds, and where it comes from:
  tick_jitter_p99_ms, obs_to_command_p99_ms, detection_age_p99_ms (and tick_lateness_p99_ms): the policy node's own
    loop timing statistics, its last "loop timing" log line after the last episode ended (sgft_policy.stats: wall
    periods between ticks of running episodes, |period - median| p99; compute time from observation to the command's
    publish; age of the detection a command was computed from, by its stamp on the node's clock);
  cpu_cores: per node, psutil's user + system CPU time over the episodes divided by their wall time (1.0 = a core);
  dropped_ticks: control ticks of a running episode without a command, from the commands this process receives on the
    Cartesian target topic: each command is stamped with its tick, so tick k of an episode is the multiple of the
    control period (k·200 ms) its stamp falls in; expected are the ticks after STARTED and before the tick that ended
    the episode (that one publishes the last transition, not a command); control_ticks counts the expected ones;
  load_average: os.getloadavg() when the episodes ended; learner_updates: gradient updates during the episodes
    (LearnerStatus); sim_rates: the simulated robot's last "wall clock rates" log line (state and cloud rates it
    achieved: on a loaded machine the simulated hardware can fall behind too).
The last line says which of the issue's targets are met: tick jitter p99 <= 10 ms, observation to command p99 <= 20
ms, detection age p99 <= 100 ms at 424x240, and the policy plus perception under one core together.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import psutil

from sgft_bringup.graph import graph_nodes, transport_environment
from sgft_bringup.run_graph import clean_shared_memory, parse_overrides, start, stop_all
from sgft_core.overrides import merge

TASK = "push"
CONTROL_PERIOD_NS = 200_000_000  # push's 5 Hz
CAMERA_RATE_HZ = 30.0  # a D455's depth stream
# perception's expected_points in push.yaml is for this resolution
BASE_RESOLUTION = (424, 240)
TARGETS = {"tick_jitter_p99_ms": 10.0, "obs_to_command_p99_ms": 20.0, "detection_age_p99_ms": 100.0}
DETECTION_TARGET_RESOLUTION = "424x240"
CPU_TARGET_NODES = ("sgft_policy", "sgft_perception")
EPISODE_TIMEOUT_S = 30.0  # push's 40 steps take 8 s; one held for max_hold_s is aborted before this
STATS_PERIOD_S = 5.0  # the policy's loop timing log period during the bench


class BenchError(RuntimeError):
    pass


def resolution(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}")
    return int(match[1]), int(match[2])


def bench_overrides(width: int, height: int, render_every: int, work_dir: Path) -> dict[str, dict]:
    """The graph's parameters for one resolution, over push.yaml and the robot profile (the caller's --set wins)."""
    scale = width * height / (BASE_RESOLUTION[0] * BASE_RESOLUTION[1])
    perception = {"expected_points": max(1, round(40 * scale))}
    if scale < 1.0:  # push.yaml's 10 points would miss the puck at a test's small resolution
        perception["min_points"] = max(3, round(10 * scale))
    return {
        "sgft_sim_robot": {"wall_clock": True, "camera_rate_hz": CAMERA_RATE_HZ, "cloud_width": width,
                           "cloud_height": height, "cloud_render_every": render_every},
        "sgft_perception": perception,
        # state files of this run's own: another run's e-stop must not block the bench, nor the bench touch theirs
        "sgft_policy": {"stats_period_s": STATS_PERIOD_S, "estop_state_file": str(work_dir / "estop"),
                        "episode_state_file": str(work_dir / "episode.json")},
        "sgft_learner": {"run_dir": str(work_dir / "learner"), "method": "sgft_kept_critic",
                         "finetune": {"prefill_episodes": 1}},
    }


def wall_clock_nodes(profile: str, overrides: dict[str, dict]):
    """graph_nodes' sim-mode graph with every node on the wall clock (graph_nodes puts them on sim time)."""
    nodes = graph_nodes(TASK, "sim", None, overrides, profile)
    return [dataclasses.replace(node, parameters={**node.parameters, "use_sim_time": False}) for node in nodes]


def last_json_line(log: Path, marker: str) -> dict | None:
    """The JSON after `marker` on the last log line that has it."""
    if not log.is_file():
        return None
    found = None
    for line in log.read_text(errors="replace").splitlines():
        if marker in line:
            found = line.split(marker, 1)[1].strip()
    try:
        return json.loads(found) if found else None
    except json.JSONDecodeError:
        return None


def count_lines(log: Path, marker: str) -> int:
    return log.read_text(errors="replace").count(marker) if log.is_file() else 0


def dropped_ticks(episodes: list[tuple[int, int]], command_stamps: list[int]) -> tuple[int, int]:
    """(ticks without a command, ticks expected) over episodes given as (STARTED stamp, end stamp) in ns: expected
    are the control ticks after the start and before the tick that ended the episode."""
    commanded = {stamp // CONTROL_PERIOD_NS for stamp in command_stamps}
    dropped = expected = 0
    for start_ns, end_ns in episodes:
        ticks = range(start_ns // CONTROL_PERIOD_NS + 1, end_ns // CONTROL_PERIOD_NS)
        expected += len(ticks)
        dropped += sum(1 for tick in ticks if tick not in commanded)
    return dropped, expected


class BenchClient:
    """This process's ROS side: resets and starts episodes, records their events and the commands."""

    def __init__(self, target_topic: str) -> None:
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from rclpy.executors import SingleThreadedExecutor

        from sgft_interfaces import COMMAND_QOS, EPISODE_EVENT_QOS, SENSOR_QOS, STATUS_QOS, Services, Topics
        from sgft_msgs.msg import EpisodeEvent, LearnerStatus, ObjectDetection
        from sgft_msgs.srv import ResetEpisode, StartEpisode, StopEpisode

        self.rclpy, self.EpisodeEvent, self.Services = rclpy, EpisodeEvent, Services
        self.ResetEpisode, self.StartEpisode, self.StopEpisode = ResetEpisode, StartEpisode, StopEpisode
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("sgft_realtime_bench", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.events: list = []
        self.command_stamps: list[int] = []
        self.detection_ns = -1  # stamp of the newest detection
        self.updates = None  # the learner's gradient updates, newest status
        self.node.create_subscription(EpisodeEvent, Topics.EPISODE_EVENTS, self.events.append, EPISODE_EVENT_QOS)
        self.node.create_subscription(PoseStamped, target_topic, self._on_command, COMMAND_QOS)
        self.node.create_subscription(ObjectDetection, Topics.OBJECT_DETECTION, self._on_detection, SENSOR_QOS)
        self.node.create_subscription(LearnerStatus, Topics.LEARNER_STATUS, self._on_status, STATUS_QOS)
        self.reset = self.node.create_client(ResetEpisode, Services.RESET_EPISODE)
        self.start = self.node.create_client(StartEpisode, Services.START_EPISODE)
        self.stop = self.node.create_client(StopEpisode, Services.STOP_EPISODE)

    @staticmethod
    def _ns(stamp) -> int:
        return stamp.sec * 1_000_000_000 + stamp.nanosec

    def _on_command(self, msg) -> None:
        self.command_stamps.append(self._ns(msg.header.stamp))

    def _on_detection(self, msg) -> None:
        self.detection_ns = max(self.detection_ns, self._ns(msg.header.stamp))

    def _on_status(self, msg) -> None:
        self.updates = int(msg.gradient_updates)

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def spin_until(self, done, timeout_s: float, what: str, alive=lambda: None) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            alive()
            if time.monotonic() > deadline:
                raise BenchError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.05)

    def pause(self, seconds: float) -> None:
        """Spin for `seconds`: events (an episode's end) come in meanwhile."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def call(self, client, request, what: str, alive):
        self.spin_until(client.service_is_ready, 120.0, f"the {what} service", alive)
        future = client.call_async(request)
        self.spin_until(future.done, 30.0, f"an answer from {what}", alive)
        return future.result()

    def run_episode(self, alive) -> tuple[int, int]:
        """Reset, wait for a detection of the reset scene, start an episode and wait for its end: (STARTED stamp, end
        stamp) in ns."""
        deadline = time.monotonic() + 15.0
        while not (reset := self.call(self.reset, self.ResetEpisode.Request(seed=-1), "reset", alive)).success:
            if not reset.message.startswith(self.Services.RESET_EPISODE_RUNNING) or time.monotonic() > deadline:
                raise BenchError(f"reset failed: {reset.message}")
            self.pause(0.2)
        reset_ns = self.now_ns()
        self.spin_until(lambda: self.detection_ns > reset_ns, 120.0, "a detection after the reset", alive)
        deadline = time.monotonic() + 120.0  # at the first episode the policy may still be discovering its inputs
        while not (started := self.call(self.start, self.StartEpisode.Request(evaluation=False), "start",
                                        alive)).accepted:
            if time.monotonic() > deadline:
                raise BenchError(f"the policy node refuses to start an episode: {started.message}")
            self.pause(0.5)
        episode = started.episode_id
        ended = (self.EpisodeEvent.FINISHED, self.EpisodeEvent.ABORTED)

        def event(kinds):
            return next((e for e in self.events if e.episode_id == episode and e.event in kinds), None)

        self.spin_until(lambda: event((self.EpisodeEvent.STARTED,)) is not None, 10.0, "the STARTED event", alive)
        try:
            self.spin_until(lambda: event(ended) is not None, EPISODE_TIMEOUT_S, f"episode {episode} to end", alive)
        except BenchError:
            self.call(self.stop, self.StopEpisode.Request(reason="realtime_bench: episode timeout"), "stop", alive)
            self.spin_until(lambda: event(ended) is not None, 10.0, f"episode {episode} to stop", alive)
        return self._ns(event((self.EpisodeEvent.STARTED,)).header.stamp), self._ns(event(ended).header.stamp)

    def close(self) -> None:
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


def run_resolution(width: int, height: int, args, user_overrides: dict[str, dict]) -> dict:
    name = f"{width}x{height}"
    log_dir = Path(args.log_dir) / name
    log_dir.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="sgft_realtime_bench_"))
    overrides = merge(bench_overrides(width, height, args.render_every, work_dir), user_overrides)
    nodes = wall_clock_nodes(args.profile, overrides)
    target_topic = next(n for n in nodes if n.name == "sgft_policy").parameters["cartesian_target_topic"]
    procs = {}
    client = None
    try:
        for node in nodes:
            procs[node.name] = start(node, work_dir, log_dir)
        ps = {n: psutil.Process(p.pid) for n, p in procs.items()} | {"realtime_bench": psutil.Process()}

        def alive() -> None:
            for n, proc in procs.items():
                if proc.poll() is not None:
                    tail = (log_dir / f"{n}.log").read_text(errors="replace").splitlines()[-15:]
                    raise BenchError(f"{n} exited with code {proc.returncode}:\n  " + "\n  ".join(tail))

        client = BenchClient(target_topic)
        episodes: list[tuple[int, int]] = []
        cpu_start = wall_start = updates_start = None
        while wall_start is None or time.monotonic() - wall_start < args.duration:
            if wall_start is None:  # the CPU window opens when the graph is up: just before the first episode
                client.spin_until(lambda: client.updates is not None, 120.0, "the learner's status", alive)
                cpu_start = {n: sum(p.cpu_times()[:2]) for n, p in ps.items()}
                wall_start, updates_start = time.monotonic(), client.updates
            episodes.append(client.run_episode(alive))
        wall = time.monotonic() - wall_start
        cpu = {n: round((sum(p.cpu_times()[:2]) - cpu_start[n]) / wall, 3) for n, p in ps.items()}
        load = [round(v, 2) for v in os.getloadavg()]
        updates = client.updates - updates_start
        # the policy's statistics logged after the last episode ended cover all of its ticks
        policy_log = log_dir / "sgft_policy.log"
        lines = count_lines(policy_log, "loop timing ")
        client.spin_until(lambda: count_lines(policy_log, "loop timing ") > lines, 3 * STATS_PERIOD_S,
                          "the policy's loop timing line", alive)
        stats = last_json_line(policy_log, "loop timing ")
        if stats is None:
            raise BenchError(f"no readable loop timing line in {policy_log}")
        dropped, expected = dropped_ticks(episodes, client.command_stamps)
        finished = sum(1 for e in client.events if e.event == client.EpisodeEvent.FINISHED)
        return {
            "resolution": name,
            "tick_jitter_p99_ms": round(stats["period_jitter_p99_ms"], 2),
            "obs_to_command_p99_ms": round(stats["obs_to_command_p99_ms"], 2),
            "detection_age_p99_ms": round(stats.get("detection_age_p99_ms", float("nan")), 2),
            "tick_lateness_p99_ms": round(stats.get("tick_lateness_p99_ms", float("nan")), 2),
            "cpu_cores": cpu,
            "dropped_ticks": dropped,
            "control_ticks": expected,
            "episodes": len(episodes),
            "episodes_finished": finished,
            "episode_wall_s": round(wall, 1),
            "learner_updates": updates,
            "load_average": load,
            "cloud_render_every": args.render_every,
            "clouds": f"{CAMERA_RATE_HZ:g} Hz published, a new render every {args.render_every} periods, re-stamped "
                      "between (transport and perception load real, the scene lags up to that many periods)",
            "timing_source": "the policy's last 'loop timing' log line; dropped ticks from the commands received",
            "policy_rejections": stats.get("rejections", {}),
            "sim_rates": last_json_line(log_dir / "sgft_sim_robot.log", "wall clock rates "),
        }
    finally:
        if client is not None:
            client.close()
        stop_all(procs)


def targets_line(results: list[dict]) -> str:
    checks = []
    for r in results:
        for key, limit in TARGETS.items():
            if key == "detection_age_p99_ms" and r["resolution"] != DETECTION_TARGET_RESOLUTION:
                continue
            value = r[key]
            checks.append(f"{r['resolution']} {key} {value} <= {limit:g}: {'MET' if value <= limit else 'MISSED'}")
        both = sum(r["cpu_cores"].get(n, 0.0) for n in CPU_TARGET_NODES)
        checks.append(f"{r['resolution']} policy+perception {both:.2f} cores < 1: {'MET' if both < 1.0 else 'MISSED'}")
    return "targets: " + "; ".join(checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolutions", nargs="+", type=resolution, default=[(848, 480), (424, 240)],
                        metavar="WxH", help="cloud resolutions, one run each")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds of back-to-back episodes per resolution (the last one runs to its end)")
    parser.add_argument("--render-every", type=int, default=6,
                        help="camera periods per freshly rendered cloud (the latest is re-stamped between)")
    parser.add_argument("--profile", default="crisp", help="robot interface profile (crisp: 1 kHz state)")
    parser.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                        help="override one node parameter (repeatable)")
    parser.add_argument("--log-dir", default="log/realtime_bench", help="one folder of node logs per resolution")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.render_every < 1:
        parser.error("--duration must be > 0 and --render-every >= 1")
    user_overrides = parse_overrides(args.set)
    os.environ.update(transport_environment())
    # a domain of its own: other graphs or tests on this machine must not answer this one's services
    os.environ["ROS_DOMAIN_ID"] = str(random.Random(time.time_ns()).randint(101, 200))
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    clean_shared_memory()
    results = []
    try:
        for width, height in args.resolutions:
            result = run_resolution(width, height, args, user_overrides)
            results.append(result)
            print(json.dumps(result), flush=True)
    except (BenchError, ValueError) as err:
        print(f"realtime_bench: {err}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    print(targets_line(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
