"""A fine-tuning session, as an operator would run it: reset, run an episode, let the learner catch up, repeat,
with an evaluation block (deterministic actor, no learning) before the first and after every `eval_every` episodes.
Every evaluation block resets the same scenes (seeds eval_seed + i, the benchmark's; on the real robot, with the site's
start scenes, scene i mod their number, which the operator sets up), so two points of the curve differ by the policy,
not by where the puck happened to be put; a block whose policy version has already been evaluated (no update since,
e.g. during the pre-collected episodes) is skipped rather than measured again. Every wait has a parameter.

Talks to the graph only through its services and topics (ResetEpisode on the robot, Start/StopEpisode on the
policy node, EpisodeEvent, LearnerStatus, the value heatmap), so it runs the same against the simulated robot and
against the real one (where ResetEpisode is served by whatever homes the robot and resets the scene).
At the end it writes results.json, learning_curve.png and value_heatmap.png to output_dir.
"""

from __future__ import annotations

import json
import math
import sys
import time
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from matplotlib.collections import PatchCollection  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.time import Time  # noqa: E402
from tqdm import tqdm  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from sgft_core.seeds import EVAL_SEED  # noqa: E402
from sgft_core.stats import wilson_interval  # noqa: E402
from sgft_interfaces import (  # noqa: E402
    EPISODE_EVENT_QOS,
    ROBOT_STATE_QOS,
    SENSOR_QOS,
    STATUS_QOS,
    Services,
    Topics,
)
from sgft_interfaces.node_main import declared  # noqa: E402
from sgft_msgs.msg import EpisodeEvent, LearnerStatus, ObjectDetection  # noqa: E402
from sgft_msgs.srv import ResetEpisode, StartEpisode  # noqa: E402

# How often a refused reset or start is asked again within its retry window (s): polling, not a limit.
RETRY_PAUSE_S = {"reset": 0.2, "start": 0.5}


class SessionError(RuntimeError):
    pass


class FinetuneSession(Node):
    def __init__(self) -> None:
        super().__init__("sgft_finetune_session")

        declare = partial(declared, self)

        self.task = declare("task", "push", "task being fine-tuned (for the report)")
        self.episodes = int(declare("episodes", 60, "fine-tuning episodes to run"))
        self.eval_every = int(declare("eval_every", 10, "evaluate after every this many fine-tuning episodes"))
        self.eval_episodes = int(declare("eval_episodes", 5, "episodes per evaluation block"))
        self.eval_seed = int(declare("eval_seed", EVAL_SEED, "evaluation episode i resets with seed eval_seed + i, "
                                     "the same scenes at every point (negative: the robot's own sequence)"))
        self.output_dir = Path(declare("output_dir", "runs/finetune", "where results and pictures go"))
        self.episode_timeout = float(declare("episode_timeout_s", 120.0, "wall time before an episode is given up"))
        self.catch_up_timeout = float(declare("learner_catch_up_timeout_s", 300.0,
                                              "wall time to wait for the learner's owed updates between episodes"))
        self.status_timeout = float(declare("learner_status_timeout_s", 60.0,
                                            "wall time to wait for the learner's first status before giving up"))
        self.wait_for_detection = bool(declare(
            "wait_for_detection", True, "start an episode once perception has seen the reset scene; false for a graph "
            "without perception (insert: held leg, calibrated hole), which waits for the robot's state instead"))
        self.robot_pose_topic = str(declare("robot_pose_topic", Topics.ROBOT_POSE,
                                            "the robot's pose topic (from the robot interface profile)"))
        self.service_timeout = float(declare("service_timeout_s", 60.0, "wall time to wait for a service to appear"))
        self.reset_timeout = float(declare(
            "reset_timeout_s", 30.0, "wall time to wait for the reset's answer (0: forever; real mode's default, "
            "where the reset server answers once the operator has confirmed the scene, or on its own timeouts)"))
        self.reset_retry = float(declare("reset_retry_s", 10.0, "wall time to ask again while the reset server "
                                         "still counts the last episode as running"))
        self.call_timeout = float(declare("call_timeout_s", 30.0, "wall time to wait for StartEpisode's answer"))
        self.start_retry = float(declare("start_retry_s", 60.0, "wall time to ask again while the policy node refuses "
                                         "to start (its inputs not ready, its last episode still ending)"))
        self.scene_timeout = float(declare("scene_timeout_s", 60.0, "wall time to wait for a detection (or robot pose) "
                                           "of the reset scene"))
        self.heatmap_timeout = float(declare("heatmap_timeout_s", 30.0, "wall time to wait for a value heatmap at "
                                             "the end"))
        scenes = declare("start_scenes", Parameter.Type.DOUBLE_ARRAY, "the site's start scenes, object x y pairs "
                         "flattened (real mode: evaluation episode i resets scene i mod their number)")
        scenes = list(scenes or [])
        if len(scenes) % 2:
            raise SessionError(f"start_scenes has {len(scenes)} values: expected x y pairs")
        self.real = not self.get_parameter("use_sim_time").value
        # the reset server (real robot) serves scenes; the simulated robot resets by seed
        self.start_scenes = [(scenes[i], scenes[i + 1]) for i in range(0, len(scenes), 2)] if self.real else []
        waits = {"service_timeout_s": self.service_timeout, "reset_timeout_s": self.reset_timeout,
                 "reset_retry_s": self.reset_retry, "call_timeout_s": self.call_timeout,
                 "start_retry_s": self.start_retry, "scene_timeout_s": self.scene_timeout,
                 "heatmap_timeout_s": self.heatmap_timeout}
        bad = [f"{k}={v}" for k, v in waits.items() if not v >= 0.0]
        if bad:
            raise SessionError(f"{', '.join(bad)}: waits must be >= 0")
        if self.real and not self.start_scenes:
            self.get_logger().warning("real robot without start_scenes in the site file: evaluation episodes start "
                                      "from whatever scene the operator sets up, so curve points are less comparable")
        self.events: list[EpisodeEvent] = []
        self.status: LearnerStatus | None = None
        self.heatmap: MarkerArray | None = None
        self.create_subscription(EpisodeEvent, Topics.EPISODE_EVENTS, self.events.append, EPISODE_EVENT_QOS)
        self.create_subscription(LearnerStatus, Topics.LEARNER_STATUS, self._on_status, STATUS_QOS)
        self.create_subscription(MarkerArray, Topics.VALUE_HEATMAP, self._on_heatmap, STATUS_QOS)
        self.scene_stamp_ns = -1  # of the newest object detection (or robot pose), on the graph's clock
        if self.wait_for_detection:
            self.create_subscription(ObjectDetection, Topics.OBJECT_DETECTION, self._on_scene_input, SENSOR_QOS)
        else:
            self.create_subscription(PoseStamped, self.robot_pose_topic, self._on_scene_input, ROBOT_STATE_QOS)
        self.reset_client = self.create_client(ResetEpisode, Services.RESET_EPISODE)
        self.start_client = self.create_client(StartEpisode, Services.START_EPISODE)

    def _on_status(self, msg: LearnerStatus) -> None:
        self.status = msg

    def _on_heatmap(self, msg: MarkerArray) -> None:
        self.heatmap = msg

    def _on_scene_input(self, msg: ObjectDetection | PoseStamped) -> None:
        self.scene_stamp_ns = Time.from_msg(msg.header.stamp).nanoseconds

    # ------------------------------------------------------------------------------------------- plumbing
    def _spin_until(self, done, timeout_s: float, what: str) -> None:
        """Spin until done(); SessionError after timeout_s (math.inf: never)."""
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise SessionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            rclpy.spin_once(self, timeout_sec=0.05)

    def _call(self, client, request, what: str, timeout_s: float):
        """The service's answer; timeout_s 0 waits for it forever."""
        self._spin_until(lambda: client.service_is_ready(), self.service_timeout, f"the {what} service")
        future = client.call_async(request)
        try:
            self._spin_until(future.done, timeout_s or math.inf, f"an answer from {what}")
        except SessionError:
            client.remove_pending_request(future)
            raise
        return future.result()

    def _scene_instructions(self, scene: int) -> str:
        """What the operator does during a real robot's reset."""
        confirm = f"then confirm: ros2 service call {Services.CONFIRM_RESET} std_srvs/srv/Trigger"
        if scene >= 0:
            x, y = self.start_scenes[scene]
            return f"the robot homes; set up scene {scene}: object at ({x:.3f}, {y:.3f}) m (base frame), {confirm}"
        return f"the robot homes; set up a start scene of your choice, {confirm}"

    def _run_episode(self, evaluation: bool, seed: int = -1, scene: int = -1) -> EpisodeEvent:
        if self.real:
            tqdm.write(f"[reset] {self._scene_instructions(scene)}")
        # The reset server refuses while it still counts the last episode as running (its copy of the policy's end
        # event can arrive after ours): ask again for reset_retry_s.
        deadline = time.monotonic() + self.reset_retry
        request = ResetEpisode.Request(seed=seed, scene=scene)
        while not (reset := self._call(self.reset_client, request, "reset", self.reset_timeout)).success:
            if not reset.message.startswith(Services.RESET_EPISODE_RUNNING) or time.monotonic() > deadline:
                raise SessionError(f"reset failed: {reset.message}")
            pause = time.monotonic() + RETRY_PAUSE_S["reset"]
            while time.monotonic() < pause:  # events (the episode's end) reach the reset server meanwhile
                rclpy.spin_once(self, timeout_sec=0.05)
        # The policy holds (and after max_hold_s aborts) without a fresh detection: start once perception has seen
        # the reset scene (at the first start of the graph that also waits for perception to come up).
        # Without perception (the object held, the rest calibrated), the robot's state of the reset scene.
        reset_ns = self.get_clock().now().nanoseconds
        what = (f"an object detection of the reset scene on {Topics.OBJECT_DETECTION}" if self.wait_for_detection
                else f"a robot pose of the reset scene on {self.robot_pose_topic}")
        self._spin_until(lambda: self.scene_stamp_ns > reset_ns, self.scene_timeout, what)
        # The policy node refuses while its own inputs are not ready (at the graph's start it can discover perception
        # after this node did) or while its last episode is still ending: ask again for start_retry_s.
        deadline = time.monotonic() + self.start_retry
        while not (started := self._call(self.start_client, StartEpisode.Request(evaluation=evaluation),
                                         "start", self.call_timeout)).accepted:
            if time.monotonic() > deadline:
                raise SessionError(f"the policy node refuses to start an episode: {started.message}")
            time.sleep(RETRY_PAUSE_S["start"])
        episode = started.episode_id
        self._spin_until(lambda: any(e.episode_id == episode and e.event in (EpisodeEvent.FINISHED,
                                                                           EpisodeEvent.ABORTED)
                                     for e in self.events), self.episode_timeout, f"episode {episode} to end")
        return next(e for e in self.events if e.episode_id == episode
                    and e.event in (EpisodeEvent.FINISHED, EpisodeEvent.ABORTED))

    def _wait_for_learner(self, received: int = 0) -> None:
        """Between episodes, as between real-robot resets: the learner finishes the updates the data owes. Judged from
        a status that counts at least `received` transitions: an older one (statuses come once a second) can say
        "not training" from before the episode's last transitions arrived, and the evaluation that follows would run
        an older policy while the learner trains on in the background."""
        if self.status is None:
            try:
                self._spin_until(lambda: self.status is not None, self.status_timeout, "the learner's status")
            except SessionError as err:  # say whether the learner is unseen (discovery, crash) or seen but silent
                publishers = self.count_publishers(Topics.LEARNER_STATUS)
                raise SessionError(f"{err} on {Topics.LEARNER_STATUS} ({publishers} publisher(s) of it discovered; "
                                   "0: the learner is not running or DDS discovery failed, see its log)") from None
        try:
            self._spin_until(lambda: self.status.transitions_received >= received or bool(self.status.fault),
                             self.status_timeout, f"a learner status counting {received} received transitions")
        except SessionError:
            # never fine-tune blind: a learner that hears nothing must stop the session, not be ignored
            raise SessionError(f"the learner received {self.status.transitions_received} of the {received} "
                               f"transitions published so far; check that it subscribes to {Topics.TRANSITIONS}"
                               ) from None
        self._spin_until(lambda: not self.status.training or bool(self.status.fault), self.catch_up_timeout,
                         "the learner to catch up")
        if self.status.fault:
            raise SessionError(f"the learner stopped: {self.status.fault}")

    def _evaluate(self, label: str) -> tuple[float, int, int]:
        """Success rate, finished episodes and the policy version of the block's last episode."""
        results, version = [], 0
        for i in range(self.eval_episodes):
            if self.start_scenes:  # the operator sets up the site's scenes in turn; seeds mean nothing there
                end = self._run_episode(evaluation=True, scene=i % len(self.start_scenes))
            else:
                end = self._run_episode(evaluation=True, seed=self.eval_seed + i if self.eval_seed >= 0 else -1)
            version = end.policy_version
            if end.event == EpisodeEvent.FINISHED:  # aborted episodes are neither success nor failure
                results.append(end.success)
        rate = float(np.mean(results)) if results else float("nan")
        low, high = wilson_interval(int(sum(results)), len(results)) if results else (float("nan"),) * 2
        tqdm.write(f"[eval {label}] success {rate:.0%} over {len(results)} episodes (95% CI {low:.0%}–{high:.0%}); "
                   f"policy version {version}")
        return rate, len(results), version

    # ---------------------------------------------------------------------------------------------- session
    def run(self) -> dict:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        curve = [{"episodes": 0, **dict(zip(("success", "n", "policy_version"), self._evaluate("zero-shot"),
                                            strict=True))}]
        returns, successes = [], []
        published = self.status.transitions_received if self.status else 0  # evaluation episodes publish none
        with tqdm(total=self.episodes, desc=f"fine-tuning {self.task}", unit="episode") as bar:
            for i in range(1, self.episodes + 1):
                end = self._run_episode(evaluation=False)
                returns.append(end.episode_return)
                successes.append(bool(end.success))
                published += end.steps  # one transition per step taken
                self._wait_for_learner(published)
                bar.update(1)
                bar.set_postfix(ret=f"{end.episode_return:.1f}", success=end.success,
                                updates=self.status.gradient_updates, version=self.status.policy_version)
                if i % self.eval_every == 0 or i == self.episodes:
                    same_scenes = bool(self.start_scenes) or self.eval_seed >= 0
                    if self.status.policy_version == curve[-1]["policy_version"] and same_scenes:
                        tqdm.write(f"[eval after {i} episodes] skipped: policy version {curve[-1]['policy_version']} "
                                   f"was evaluated after {curve[-1]['episodes']} episodes on the same scenes")
                        continue
                    rate, n, version = self._evaluate(f"after {i} episodes")
                    curve.append({"episodes": i, "success": rate, "n": n, "policy_version": version})
        results = {"task": self.task, "curve": curve, "train_returns": returns, "train_successes": successes,
                   "learner": {"updates": self.status.gradient_updates, "policy_version": self.status.policy_version,
                               "transitions_stored": self.status.transitions_stored}}
        (self.output_dir / "results.json").write_text(json.dumps(results, indent=2))
        self._plot_curve(curve)
        self._spin_until(lambda: self.heatmap is not None, self.heatmap_timeout, "a value heatmap")
        self._plot_heatmap()
        return results

    def _plot_curve(self, curve: list[dict]) -> None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        xs = [c["episodes"] for c in curve]
        ax.plot(xs, [100 * c["success"] for c in curve], "o-", label="SGFT through the ROS graph")
        ax.axhline(100 * curve[0]["success"], ls="--", c="gray", label="zero-shot")
        ax.set(xlabel="fine-tuning episodes on the 'real' robot", ylabel="success (%)", ylim=(-5, 105),
               title=f"{self.task}: evaluation success ({self.eval_episodes} episodes a point)")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(self.output_dir / "learning_curve.png", dpi=120)
        plt.close(fig)

    def _plot_heatmap(self) -> None:
        fields = [m for m in self.heatmap.markers if m.type == Marker.CUBE_LIST]
        objects = [m for m in self.heatmap.markers if m.type == Marker.SPHERE]
        fig, axes = plt.subplots(1, len(fields), figsize=(5 * len(fields), 4))
        for ax, marker in zip(np.atleast_1d(axes), fields, strict=True):
            xy = np.array([[p.x, p.y] for p in marker.points])
            color = np.array([[c.r, c.g, c.b] for c in marker.colors])
            # the cubes as rviz draws them: marker.scale-sized cells in metres, y to the left as seen from the base
            size_x, size_y = marker.scale.x, marker.scale.y
            ax.add_collection(PatchCollection(
                [Rectangle((y - size_y / 2, x - size_x / 2), size_y, size_x) for x, y in xy],
                facecolors=color, edgecolors="none"))
            ax.set(title=f"{marker.ns} (blue low, red high)", xlabel="ee y (m)", ylabel="ee x (m)",
                   xlim=(xy[:, 1].max() + size_y / 2, xy[:, 1].min() - size_y / 2),
                   ylim=(xy[:, 0].min() - size_x / 2, xy[:, 0].max() + size_x / 2), aspect="equal")
            for obj in objects:  # the object the values are drawn for
                ax.plot(obj.pose.position.y, obj.pose.position.x, "o", ms=9, mfc="none", mec="k", mew=2,
                        label=obj.ns)
            if objects:
                ax.legend(loc="upper right")
        fig.tight_layout()
        fig.savefig(self.output_dir / "value_heatmap.png", dpi=120)
        plt.close(fig)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    try:
        node = FinetuneSession()
    except SessionError as err:  # a bad parameter: nothing has started
        rclpy.logging.get_logger("sgft_finetune_session").fatal(f"refusing to start: {err}")
        rclpy.try_shutdown()
        return 2
    try:
        results = node.run()
        curve = results["curve"]
        print(f"session done: success {curve[0]['success']:.0%} zero-shot → {curve[-1]['success']:.0%} after "
              f"{curve[-1]['episodes']} episodes; pictures in {node.output_dir}/", flush=True)
        return 0
    except SessionError as err:
        node.get_logger().error(f"session failed: {err}")
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
