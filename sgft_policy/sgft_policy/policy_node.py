"""The 5 Hz control loop: observation → actor → safety envelope → controller target, and one Transition per step.

Inputs (latest message of each, with its receipt time): robot pose and joint state from franka_ros2's state
broadcaster, the object detection from sgft_perception (or, for an object rigidly held in the gripper, its position
from the robot pose and the grasp: `held_object_offset`), new actor weights from the learner, the e-stop, an
operator's interventions (teleoperation).
Every tick, if an episode runs and every input is fresh, finite and valid, the node publishes
  - the Transition of the previous step (s, a, r(s'), s', terminal, truncated, success, intervention), never held
    back,
  - the next controller target for the actor's action, or the operator's while a fresh intervention is active,
    bounded by the task's safety envelope whatever either said (sgft_core.command).
On stale or invalid input it holds: no target is sent (the impedance controller keeps its last one, at most one
step ahead, and an old measurement is no better), the pending transition is dropped because its action was not held
for one control period, and an EpisodeEvent says why. The e-stop, an abort (StopEpisode, max_hold, a teleop device
lost mid-intervention) and the operator's pause send one target at the measured pose at once, then no command until
the next episode (or the resume). The e-stop is persisted to a file, so it survives a restart of this node until
someone clears it.

Any peer on the DDS domain can publish and call: every callback checks its whole message before use (validation:
stamps, frames, ranges, a pose moving faster than the robot can), and a refused message or an exception inside a
callback is counted by kind (the stats' rejections), logged once per kind per stats period and never fatal. The
e-stop topic can only engage the e-stop; clearing it takes the set_estop service.

This class wires parts that need no ROS: parameters (declaration table, validation), validation (which state and
detection messages are taken), assembly (inputs, observation, command target and message), episode (episodes and
e-stop, pause), intervention (the operator's takeover), ticks (when the loop runs), stats (loop timing) and weights
(which PolicyUpdates are taken).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from sgft_core.checkpoint import CheckpointError, load_checkpoint
from sgft_interfaces import (
    CLOCK_QOS,
    COMMAND_QOS,
    EPISODE_EVENT_QOS,
    ESTOP_QOS,
    POLICY_UPDATE_QOS,
    ROBOT_STATE_QOS,
    SENSOR_QOS,
    SERVICE_QOS,
    TRANSITION_QOS,
    Services,
    Topics,
)
from sgft_interfaces.node_main import declared, run_node
from sgft_interfaces.stamps import stamp_ns, stamp_problem
from sgft_msgs.msg import EpisodeEvent, Intervention, ObjectDetection, PolicyUpdate, Transition
from sgft_msgs.srv import StartEpisode, StopEpisode
from sgft_policy.assembly import Commander, Inputs, ObservationAssembler, command_msg, hold_target, time_msg
from sgft_policy.command_output import CommandOutput
from sgft_policy.episode import Episode, EventKind
from sgft_policy.intervention import Takeover, intervention_from_msg
from sgft_policy.parameters import PARAMETERS, ParameterError, PolicyParameters
from sgft_policy.stats import LoopStats
from sgft_policy.ticks import TickScheduler
from sgft_policy.validation import InputGate, Rejection
from sgft_policy.weights import Refusal, RefusalLog, UpdateGate


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__("sgft_policy")
        p = self.params = PolicyParameters.from_values(
            {name: declared(self, name, default, doc) for name, (default, doc) in PARAMETERS.items()})
        self.spec = p.spec
        torch.set_num_threads(1)  # one small MLP at 5 Hz; leave the cores to the learner and the camera
        try:
            checkpoint = load_checkpoint(p.checkpoint, self.spec.name)
        except (CheckpointError, OSError) as err:
            raise ParameterError(f"cannot load checkpoint {p.checkpoint!r}: {err}") from err
        self.actor, self.policy_version = checkpoint.networks.actor.eval(), 0
        self.update_gate = UpdateGate(self.spec.name, checkpoint.network_config, 0, p.max_version_step)
        self.inputs = Inputs()
        self.gate = InputGate(self.spec, self.inputs, p.base_frame, p.max_stamp_future, p.max_ee_speed,
                              p.object_low, p.object_high)
        self.clock_ns = 0  # the newest /clock seen (sim time): the node's clock can lag it by a message
        self.observer = ObservationAssembler(self.spec, p.max_input_age, p.constants, p.joint_zero_offsets,
                                             p.held_offset)
        self.commander = Commander(self.spec, p.envelope)
        self.stats = LoopStats(p.period)
        # counted into the stats' rejections (the periodic log line), logged once per kind per stats period
        self.refusals = RefusalLog(self.stats.reject, self.get_logger().warning, interval=p.stats_period)
        self.takeover = Takeover(p.intervention_timeout, self.get_logger().info)
        self.episode = Episode(p.estop_file, p.episode_file, p.max_hold, self._event, self.get_logger(), self._halt)

        # best effort matches reliable and best-effort publishers of robot state alike
        for msg_type, topic, callback, qos, kind in (
                (PoseStamped, p.robot_pose_topic, self._on_pose, ROBOT_STATE_QOS, "robot_pose"),
                (JointState, p.joint_state_topic, self._on_joints, ROBOT_STATE_QOS, "joint_state"),
                (ObjectDetection, Topics.OBJECT_DETECTION, self._on_detection, SENSOR_QOS, "detection"),
                (PolicyUpdate, Topics.POLICY_UPDATE, self._apply_policy_update, POLICY_UPDATE_QOS, "policy_update"),
                (Bool, Topics.ESTOP, self._on_estop_topic, ESTOP_QOS, "estop_topic"),
                # best effort takes reliable and best-effort devices alike; a device repeats its state at its rate
                (Intervention, Topics.INTERVENTION, self._on_intervention, SENSOR_QOS, "intervention")):
            self.create_subscription(msg_type, topic, self._guarded(kind, callback), qos)
        cartesian = self.spec.action_kind == "cartesian"
        self.command_pub = CommandOutput(self, PoseStamped if cartesian else JointTrajectory,
                                         p.cartesian_target_topic if cartesian else p.joint_trajectory_topic,
                                         COMMAND_QOS, p.command_publisher_per_episode)
        self.transition_pub = self.create_publisher(Transition, Topics.TRANSITIONS, TRANSITION_QOS)
        self.event_pub = self.create_publisher(EpisodeEvent, Topics.EPISODE_EVENTS, EPISODE_EVENT_QOS)
        for srv_type, name, handler in ((StartEpisode, Services.START_EPISODE, self._on_start),
                                        (StopEpisode, Services.STOP_EPISODE, self._on_stop),
                                        (SetBool, Services.SET_ESTOP, self._on_set_estop),
                                        (SetBool, Services.PAUSE_EPISODE, self._on_pause)):
            self.create_service(srv_type, name, self._answering(name, handler), qos_profile=SERVICE_QOS)
        self.episode.recover()
        sim_time = bool(self.get_parameter("use_sim_time").value)
        self.ticks = TickScheduler(
            p.period, p.tick_waits_for_inputs and sim_time, self._tick,
            lambda tick_ns: self.observer.inputs_behind(self.inputs, tick_ns, p.period),
            lambda: self.episode.running, self.stats.tick_lateness.append)
        if sim_time:
            self.create_subscription(Clock, Topics.CLOCK, self._guarded("clock", self._on_clock_message),
                                     CLOCK_QOS)
        else:
            self.create_timer(p.period / 50.0, self._on_poll)
        self.create_timer(p.stats_period, self._log_stats)
        e = p.envelope
        self.get_logger().info(
            f"policy for task '{self.spec.name}' at {1 / p.period:.1f} Hz, checkpoint {p.checkpoint}, "
            f"envelope low {e.low} high {e.high} step {e.max_step}"
            + (" — E-STOP ENGAGED (from state file)" if self.episode.estop else ""))

    # ---------------------------------------------------------------------------------------------------- inputs
    def _now(self) -> float:
        return self._now_ns() * 1e-9

    def _now_ns(self) -> int:
        return max(self.get_clock().now().nanoseconds, self.clock_ns)

    def _refuse(self, kind: Refusal | str, detail: str) -> None:
        self.refusals.refuse(kind, detail, time.monotonic())

    def _guarded(self, kind: str, callback: Callable) -> Callable:
        """A subscription callback that never raises: a peer's message must not stop the node."""
        def guarded(msg) -> None:
            try:
                callback(msg)
            except Exception as err:
                self._refuse(f"{kind}_error", f"{type(err).__name__}: {err}")
        return guarded

    def _answering(self, name: str, handler: Callable) -> Callable:
        """A service handler that answers every request, with the error when it failed."""
        kind = name.rsplit("/", 1)[-1] + "_error"

        def answering(request, response):
            try:
                return handler(request, response)
            except Exception as err:
                self._refuse(kind, f"{type(err).__name__}: {err}")
                response.message = f"failed: {type(err).__name__}: {err}"
                return response
        return answering

    def _took(self, rejection: Rejection | None) -> None:
        if rejection is None:
            self.ticks.on_input()
        else:
            self._refuse(rejection.kind, rejection.detail)

    def _on_pose(self, msg: PoseStamped) -> None:
        self._took(self.gate.pose(msg, self._now_ns()))

    def _on_joints(self, msg: JointState) -> None:
        self._took(self.gate.joints(msg, self._now_ns()))

    def _on_detection(self, msg: ObjectDetection) -> None:
        self._took(self.gate.detection(msg, self._now_ns()))

    def _on_intervention(self, msg: Intervention) -> None:
        taken = intervention_from_msg(msg, self.spec.action_dim, self._now_ns(), self.params.max_stamp_future)
        rejection = taken if isinstance(taken, Rejection) else self.takeover.take(taken)
        if rejection is not None:
            self._refuse(rejection.kind, rejection.detail)

    def _apply_policy_update(self, msg: PolicyUpdate) -> None:
        actor, refusal, reason = self.update_gate.load(msg, self.spec.obs_dim, self.spec.action_dim)
        if actor is None:
            self._refuse(refusal, reason)
            return
        self.actor, self.policy_version = actor.eval(), msg.version
        self.get_logger().info(f"policy weights updated to version {msg.version}")

    # ------------------------------------------------------------------------------------------ episodes, e-stop
    def _on_estop_topic(self, msg: Bool) -> None:
        if not self.episode.estop_from_topic(bool(msg.data), Topics.ESTOP):
            self._refuse("estop_topic_clear", f"false on {Topics.ESTOP} ignored: the topic can only engage the "
                                              f"e-stop, {Services.SET_ESTOP} clears it")

    def _on_set_estop(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.episode.set_estop(bool(request.data), Services.SET_ESTOP)
        response.success, response.message = True, "engaged" if self.episode.estop else "cleared"
        return response

    def _not_ready(self) -> str:
        reason = self.observer.observe(self.inputs, self._now())[1]
        return f"{Services.START_NOT_READY}: {reason}" if reason else ""

    def _on_start(self, request: StartEpisode.Request, response: StartEpisode.Response) -> StartEpisode.Response:
        response.accepted, response.message = self.episode.start(request.evaluation, self._not_ready)
        if response.accepted:
            self.command_pub.open()
            self.commander.reset()
            self.takeover.reset()
            response.episode_id = self.episode.episode_id
        return response

    def _on_pause(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        response.success, response.message = self.episode.pause(bool(request.data))
        if response.success and not request.data:
            self.takeover.reset()  # a device left active while paused is no operator steering
        return response

    def _halt(self) -> None:
        """Command the arm to hold its measured pose: the controller's last target may be a step ahead of it."""
        now_ns = self._now_ns()
        target, why = hold_target(self.spec, self.inputs, now_ns * 1e-9, self.params.max_input_age)
        if target is None:
            self.get_logger().warning(f"no hold target sent ({why}): the controller keeps its last target")
            return
        p = self.params
        self.command_pub.publish(command_msg(self.spec, target, p.orientation, now_ns, p.base_frame, p.period))

    def _on_stop(self, request: StopEpisode.Request, response: StopEpisode.Response) -> StopEpisode.Response:
        response.stopped, response.message = self.episode.stop(request.reason)
        return response

    def _event(self, kind: EventKind, reason: str = "", success: bool = False) -> None:
        ep = self.episode
        msg = EpisodeEvent(task=self.spec.name, episode_id=ep.episode_id, event=getattr(EpisodeEvent, kind.name),
                           reason=reason, steps=ep.step_index, episode_return=float(ep.episode_return), success=success,
                           evaluation=ep.evaluation, policy_version=self.policy_version)
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.params.base_frame
        self.event_pub.publish(msg)
        if kind in (EventKind.FINISHED, EventKind.ABORTED):
            self.command_pub.close()

    # ------------------------------------------------------------------------------------------------ the loop
    def _on_poll(self) -> None:
        self.ticks.on_time(self.get_clock().now().nanoseconds)

    def _on_clock_message(self, msg: Clock) -> None:
        problem = stamp_problem(msg.clock, 0, 0.0)
        if problem:
            self._refuse("clock_stamp", problem)
            return
        # this callback may run before the time source's own one for the same message: take the later of the two
        self.clock_ns = stamp_ns(msg.clock)
        self.ticks.on_time(self._now_ns())

    def _tick(self, now_ns: int) -> None:
        now = now_ns * 1e-9
        self.stats.tick(time.perf_counter(), self.episode.running)
        if not self.episode.acting:
            return
        wall_start = time.perf_counter()
        lost = self.takeover.lost(now)
        if lost:
            self.episode.end(EventKind.ABORTED, lost)  # its steps so far are published already
            return
        obs, reason = self.observer.observe(self.inputs, now)
        if obs is None:
            self.episode.hold(reason, now)
            return
        self.episode.resume()
        if self.episode.pending is not None and self._publish_transition(*self.episode.pending, obs, now_ns):
            return
        action = self.takeover.action(now)
        intervened = action is not None
        if not intervened:
            action = np.asarray(self.actor.act(obs, deterministic=self.episode.evaluation), dtype=np.float32)
        target = self.commander.target(action, self.inputs)
        if target is None:
            self.episode.hold("no safe target for the current state", now)
            return
        p = self.params  # stamped with its tick's time
        self.command_pub.publish(command_msg(self.spec, target, p.orientation, now_ns, p.base_frame, p.period))
        self.episode.pending = (obs, action, intervened)
        self.stats.command_latencies.append(time.perf_counter() - wall_start)
        if self.observer.uses_detection:
            self.stats.detection_ages.append(now - self.inputs.detection.stamp)

    def _publish_transition(self, obs: np.ndarray, action: np.ndarray, intervened: bool, next_obs: np.ndarray,
                            tick_ns: int) -> bool:
        """Publish the pending step's transition (not in evaluation episodes: they measure the policy, they do not
        feed the learner); True when it ended the episode."""
        step = self.episode.record_step(self.spec, next_obs)
        msg = Transition(task=self.spec.name, episode_id=self.episode.episode_id, step=step.step, obs=obs.tolist(),
                         action=action.tolist(), reward=step.reward, next_obs=next_obs.tolist(),
                         terminal=step.terminal, truncated=step.truncated, success=step.success,
                         policy_version=self.policy_version, intervention=intervened)
        # stamped with the tick next_obs was observed at (as commands are): under sim time the node's clock can still
        # read the previous /clock when the tick runs
        msg.header.stamp, msg.header.frame_id = time_msg(tick_ns), self.params.base_frame
        if not self.episode.evaluation:
            self.transition_pub.publish(msg)
        return self.episode.finish(step)

    def _log_stats(self) -> None:
        if self.stats.tick_periods:
            self.get_logger().info("loop timing " + json.dumps(self.stats.timing_stats()))


def main(args: list[str] | None = None) -> int:
    return run_node(PolicyNode, "sgft_policy", refuse=(ParameterError,), args=args)


if __name__ == "__main__":
    sys.exit(main())
