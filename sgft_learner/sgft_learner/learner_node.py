"""The learner node: Transition in → durable store → sgft_core's fine-tuning learner → PolicyUpdate out.

Every transition is validated, appended to the store and fsync'ed before the learner sees it, so a SIGKILL loses
nothing that was acknowledged; after a restart the node reloads the store and its last checkpoint and carries on
with the same policy version or a newer one. Any peer on the DDS domain can publish transitions, so each is checked
against its task (sgft_learner.validation) and its place in its episode before it is stored, and the store is
checked again as it is replayed: what the checks reject is counted by kind and never trained on. A batch of updates
whose losses are non-finite is undone (the networks and optimizers go back to the last good batch); training goes on
only when the replay buffer holds nothing the checks reject, and for at most MAX_ROLLBACKS bad batches in a row.
Updates run in a training thread at the configured UTD, so the subscription never stalls behind a gradient step.
A store that cannot be written (disk full, permissions) stops training and says so in LearnerStatus: transitions
are kept in memory and retried, never silently dropped.

The operator labels finished episodes (LabelEpisode): a label is appended to its own fsync'ed log beside the store
(sgft_learner.transition_store) before it is acknowledged, applied on every replay after a restart, and given to the
learner (FinetuneLearner.label_episode: the reward of the episode's last transition, with finetune.label_reward > 0).
A label for an episode the store does not hold, or one whose last stored transition does not end it, is refused.
Transitions flagged as interventions are demonstrations for the learner when finetune.demo_fraction > 0.

The learner's settings are the `method` preset with `finetune.<field>` parameters over it, one per FinetuneConfig
field and of its type (a `finetune:` mapping in a parameter file; "none" sets an optional field to None).
"""

from __future__ import annotations

import array
import collections
import json
import math
import os
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from geometry_msgs.msg import Point
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.node import Node
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from sgft_core.checkpoint import CheckpointError, actor_to_bytes, load_checkpoint, save_checkpoint
from sgft_core.finetune import METHODS, FinetuneConfig, FinetuneLearner, make_config
from sgft_core.fr3 import BASE_FRAME
from sgft_core.observation import observation_sources
from sgft_core.overrides import NONE, coerce_fields, field_types, optional_base
from sgft_core.tasks import get_task
from sgft_interfaces import POLICY_UPDATE_QOS, SERVICE_QOS, STATUS_QOS, TRANSITION_QOS, Services, Topics
from sgft_interfaces.node_main import declared, run_node
from sgft_learner.rollback import LastGood, finite
from sgft_learner.transition_store import StoreError, TransitionStore, feed_transition, read_labels
from sgft_learner.validation import EpisodeSteps, buffer_problem, transition_problem
from sgft_msgs.msg import LearnerStatus, PolicyUpdate, Transition
from sgft_msgs.srv import LabelEpisode

FINETUNE_PREFIX = "finetune."  # the FinetuneConfig fields, a nested `finetune:` mapping in a parameter file
CHECKPOINT_NAME = "learner.safetensors"
STORE_NAME = "transitions.log"
LABELS_NAME = "labels.log"  # the operator's success labels, beside the store
REJECTION_LOG_PERIOD_S = 10.0  # per kind, after its first rejection (logged at once)
MAX_ROLLBACKS = 3  # bad batches in a row (on data that passed the checks) before training stops for good


class LearnerNode(Node):
    def __init__(self) -> None:
        super().__init__("sgft_learner")

        declare = partial(declared, self)

        task = declare("task", "push", "task name in sgft_core.tasks")
        self.method = declare("method", "sgft", f"fine-tuning variant: {', '.join(METHODS)}")
        checkpoint = declare("checkpoint", "", "pretrained checkpoint (V_sim, dynamics, π_sim, critic)")
        run_dir = declare("run_dir", "~/.ros/sgft_runs/push", "store and learner checkpoints of this run")
        self.seed = int(declare("seed", 0, "seed of the learner's sampling"))
        self.publish_every = int(declare("publish_every_updates", 20, "publish actor weights every N updates"))
        self.checkpoint_every = int(declare("checkpoint_every_updates", 200, "checkpoint every N updates"))
        threads = int(declare("torch_threads", 2, "CPU threads for the gradient updates"))
        status_period = float(declare("status_period_s", 1.0, "LearnerStatus period (wall seconds)"))
        heatmap_period = float(declare("heatmap_period_s", 2.0, "value heatmap period (wall seconds); 0 disables it"))
        self.heatmap_cells = int(declare("heatmap_cells", 24, "heatmap resolution per axis"))
        self.base_frame = str(declare("base_frame", BASE_FRAME, "the robot's base frame, the heatmap's (profiles set "
                                      "it)"))
        self.max_stamp_future = float(declare("max_stamp_future_s", 1.0, "a transition stamped more than this (s) "
                                              "ahead of this node's clock is rejected"))
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r}: choose from {', '.join(METHODS)}")
        config = self._declare_finetune_config()
        if not checkpoint:
            raise ValueError("checkpoint is empty: give the pretrained checkpoint")
        if min(self.publish_every, self.checkpoint_every, threads) < 1 or min(status_period,
                                                                              self.max_stamp_future) <= 0:
            raise ValueError("publish_every_updates, checkpoint_every_updates, torch_threads, status_period_s and "
                             "max_stamp_future_s must be positive")

        torch.set_num_threads(threads)
        self.spec = get_task(task)
        self.run_dir = Path(os.path.expanduser(run_dir))
        try:
            pretrained = load_checkpoint(checkpoint, self.spec.name)
        except CheckpointError as err:
            raise ValueError(f"cannot load checkpoint {checkpoint!r}: {err}") from err
        self.network_config = pretrained.network_config
        self.learner = FinetuneLearner(self.spec, pretrained.networks, config, seed=self.seed,
                                       network_config=pretrained.network_config)
        self.stats = collections.Counter()
        self.rejections = collections.Counter()  # by kind (validation.transition_problem's, and "duplicate")
        self._last_rejection_log: dict[str, float] = {}
        # Two causes, kept apart so that one clearing does not hide the other: the store, and training itself.
        self.store_fault = ""
        self.train_fault = ""
        self.rollbacks = 0  # bad batches since the last good one
        self.unstored: list[Transition] = []  # received but not yet durable (store fault); retried in order
        self.steps = EpisodeSteps()  # of the transitions stored or held in `unstored`
        self.last_obs: np.ndarray | None = None
        # where the task observes its object's xy (push: the puck; hammer sees only the nail's height: none)
        self.object_xy = [self.spec.obs_names.index(name) for name in observation_sources(self.spec)["object"]
                          if name.endswith(("_x", "_y"))]
        self.losses: dict[str, float] = {}
        self.published_version = -1
        self._rate_mark = (time.monotonic(), 0)
        # episode id → (its last fed row in the learner, whether that transition ends it, its perceived success)
        self.episodes: dict[int, tuple[int, bool, bool]] = {}
        self.labels: dict[int, bool] = {}  # episode id → the operator's label, as applied
        self.store = TransitionStore(self.run_dir / STORE_NAME)
        self.label_store = TransitionStore(self.run_dir / LABELS_NAME)
        self._resume()
        self.last_good = LastGood(self.learner)

        self.update_pub = self.create_publisher(PolicyUpdate, Topics.POLICY_UPDATE, POLICY_UPDATE_QOS)
        self.status_pub = self.create_publisher(LearnerStatus, Topics.LEARNER_STATUS, STATUS_QOS)
        self.heatmap_pub = self.create_publisher(MarkerArray, Topics.VALUE_HEATMAP, STATUS_QOS)
        self.create_subscription(Transition, Topics.TRANSITIONS, self._on_transition, TRANSITION_QOS)
        self.create_service(LabelEpisode, Services.LABEL_EPISODE, self._on_label, qos_profile=SERVICE_QOS)
        # Reports run on the wall clock: they describe this process (training runs on wall time too), and must keep
        # coming while /clock stalls or has not reached this node yet.
        wall = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(status_period, self._publish_status, clock=wall)
        # ...and one as soon as the owed updates are done: a session waits for "not training" between episodes, and
        # on the status period alone it waited half a period on average (the trainer thread triggers this guard
        # condition; its callback runs in the executor, like the timer's)
        self.caught_up = self.create_guard_condition(self._publish_status)
        if heatmap_period > 0:
            self.create_timer(heatmap_period, self._publish_heatmap, clock=wall)
        self._publish_weights()  # a policy node that starts later gets these (transient local)
        self.running = True
        self.trainer = threading.Thread(target=self._train, name="trainer", daemon=True)
        self.trainer.start()
        preset = make_config(self.method).to_dict()
        changed = {k: v for k, v in config.to_dict().items() if v != preset[k]}
        self.get_logger().info(
            f"learner '{self.method}'{f' with {changed}' if changed else ''} for {self.spec.name}: "
            f"{self.store.records} stored transitions ({len(self.learner.demo)} demonstrations), "
            f"{len(self.labels)} labelled episodes, "
            f"policy version {self.learner.policy_version}, run dir {self.run_dir}")

    def _declare_finetune_config(self) -> FinetuneConfig:
        """The method's preset with the `finetune.<field>` parameters applied. Each FinetuneConfig field is declared
        with the preset's value as its default and the field's type; an optional field (horizon, actor_lr, ...)
        also takes the string "none" for None. An unknown finetune.* parameter or a wrong type refuses the start."""
        preset = make_config(self.method).to_dict()
        types = field_types(FinetuneConfig)
        fields = [name for name in types if name != "method"]  # the method is its own parameter
        # rclpy keeps parameters of the parameter file that no one declares without a word; ask for them by name
        given = sorted(name for name in self._parameter_overrides if name.startswith(FINETUNE_PREFIX))
        unknown = [name for name in given if name[len(FINETUNE_PREFIX):] not in fields]
        if "config_overrides" in self._parameter_overrides:
            raise ValueError("config_overrides (a JSON string) is no longer read: give the FinetuneConfig fields as "
                             "finetune.<field> parameters (a `finetune:` mapping in the parameter file)")
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)}: {FINETUNE_PREFIX}* takes the "
                             f"FinetuneConfig fields {', '.join(fields)}")
        values = {}
        for name in fields:
            base = optional_base(types[name])  # None unless the field is optional
            kind = (base or types[name]).__name__
            default = NONE if preset[name] is None else preset[name]
            # An optional field holds a number or "none", so its parameter cannot have one static type.
            descriptor = ParameterDescriptor(
                description=f"FinetuneConfig.{name}: {kind}{' or none' if base else ''}; default: the method's preset",
                dynamic_typing=base is not None)
            try:
                values[name] = self.declare_parameter(FINETUNE_PREFIX + name, default, descriptor).value
            except InvalidParameterTypeException as err:
                raise ValueError(f"{FINETUNE_PREFIX}{name} must be of type {kind} (a float is written with a point: "
                                 f"1.0): {err}") from err
        return make_config(self.method, **coerce_fields(FinetuneConfig, values, prefix=FINETUNE_PREFIX))

    # -------------------------------------------------------------------------------------------- resume
    def _resume(self) -> None:
        """Reload every stored transition and the last learner checkpoint (weights, progress counters)."""
        if self.store.truncated_bytes:
            self.get_logger().warning(f"store: cut off a torn last record ({self.store.truncated_bytes} bytes)")
        skipped = collections.Counter()
        for payload in self.store:
            msg = deserialize_message(payload, Transition)
            # No clock check: the stamps were checked on arrival, and sim time may have started over since.
            kind, detail = transition_problem(msg, self.spec)
            if not kind and not self.steps.accept(msg.episode_id, msg.step):
                kind, detail = "duplicate", f"episode {msg.episode_id} step {msg.step} stored before"
            if kind:
                if not skipped:
                    self.get_logger().warning(f"store: skipping records the checks reject, first: {kind}: {detail}")
                skipped[kind] += 1
                continue
            self._feed(msg)
        if skipped:
            self.get_logger().warning(f"store: skipped {sum(skipped.values())} record(s) ({dict(skipped)})")
        self.skipped_on_resume = sum(skipped.values())
        if self.label_store.truncated_bytes:
            self.get_logger().warning(f"labels: cut off a torn last record ({self.label_store.truncated_bytes} bytes)")
        for episode_id, success in read_labels(self.label_store).items():
            problem = self._label_problem(episode_id)
            if problem:  # its transitions were skipped above
                self.get_logger().warning(f"labels: not applying the label of episode {episode_id}: {problem}")
            else:
                self._apply_label(episode_id, success)
        path = self.run_dir / CHECKPOINT_NAME
        if not path.exists():
            return
        try:
            saved = load_checkpoint(path, self.spec.name)
        except CheckpointError as err:
            # The store is the ground truth; a bad checkpoint only costs the updates since the pretrained one.
            self.get_logger().error(f"ignoring learner checkpoint {path}: {err}")
            return
        learner = self.learner
        learner.load_state_dict({"networks": saved.networks, "progress": saved.metadata.get("extra", {})})
        self.get_logger().info(f"resumed from {path}: {learner.updates_done} updates, "
                               f"policy version {learner.policy_version}, {learner.updates_due()} updates owed")

    # ------------------------------------------------------------------------------------------ data in
    @property
    def fault(self) -> str:
        """Why training is stopped, or "" (LearnerStatus.fault)."""
        return "; ".join(f for f in (self.store_fault, self.train_fault) if f)

    def _reject(self, kind: str, detail: str) -> None:
        """Count a rejection; log the first of each kind at once, then at most every REJECTION_LOG_PERIOD_S."""
        self.rejections[kind] += 1
        now = time.monotonic()
        if now - self._last_rejection_log.get(kind, -math.inf) >= REJECTION_LOG_PERIOD_S:
            self._last_rejection_log[kind] = now
            self.get_logger().warning(f"rejected transition ({kind}, {self.rejections[kind]} so far): {detail}")

    def _on_transition(self, msg: Transition) -> None:
        self.stats["received"] += 1
        kind, detail = transition_problem(msg, self.spec, self.get_clock().now().nanoseconds, self.max_stamp_future)
        if kind:
            self.stats["rejected"] += 1
            self._reject(kind, detail)
            return
        if not self.steps.accept(msg.episode_id, msg.step):
            # Not in transitions_rejected: the policy node's transient-local replay after our restart lands here
            # by the hundred, and is expected.
            self._reject("duplicate", f"episode {msg.episode_id} step {msg.step} is at or before its last stored "
                         f"step {self.steps.last[msg.episode_id]}")
            return
        self.unstored.append(msg)
        self._flush_unstored()

    def _flush_unstored(self) -> None:
        """Store, then feed, in arrival order; on a store fault keep the rest in memory and stop training."""
        while self.unstored:
            msg = self.unstored[0]
            try:
                self.store.append(serialize_message(msg))
            except StoreError as err:
                if not self.store_fault:
                    self.get_logger().error(f"training stopped: {err}; {len(self.unstored)} transition(s) held in "
                                            "memory until the store is writable again")
                self.store_fault = str(err)
                return
            self.unstored.pop(0)
            self._feed(msg)
        if self.store_fault:
            self.store_fault = ""
            self.get_logger().warning("store writable again" + (
                f", but training stays stopped: {self.train_fault}" if self.train_fault else ": training resumes"))

    def _feed(self, msg: Transition) -> None:
        row = feed_transition(self.learner, msg)
        self.episodes[msg.episode_id] = (row, bool(msg.terminal or msg.truncated), bool(msg.success))
        self.last_obs = np.asarray(msg.next_obs, np.float32)

    # ------------------------------------------------------------------------------------------- labels
    def _label_problem(self, episode_id: int) -> str:
        """Why an episode cannot be labelled, or "" when it can."""
        if episode_id not in self.episodes:
            return f"episode {episode_id} is not in the store"
        if not self.episodes[episode_id][1]:
            return (f"episode {episode_id} is still running: its last stored step "
                    f"{self.steps.last.get(episode_id)} ends it neither by a terminal state nor by its time limit")
        return ""

    def _apply_label(self, episode_id: int, success: bool) -> None:
        row, _, perceived = self.episodes[episode_id]
        self.labels[episode_id] = success
        self.learner.label_episode(row, success, perceived)

    def _on_label(self, request: LabelEpisode.Request, response: LabelEpisode.Response) -> LabelEpisode.Response:
        episode_id, success = int(request.episode_id), bool(request.success)
        problem = self._label_problem(episode_id)
        if not problem:
            try:
                self.label_store.append(serialize_message(request))  # durable before it is acknowledged
            except StoreError as err:
                problem = f"the label cannot be stored: {err}"
        if problem:
            response.accepted, response.message = False, f"label refused: {problem}"
            self.get_logger().warning(response.message)
            return response
        self._apply_label(episode_id, success)
        perceived = self.episodes[episode_id][2]
        verdict = "success" if success else "failure"
        response.accepted = True
        response.message = (f"episode {episode_id} labelled {verdict} (perceived: "
                            f"{'success' if perceived else 'failure'})")
        self.get_logger().info(response.message)
        return response

    # ----------------------------------------------------------------------------------------- training
    def _train(self) -> None:
        last_checkpoint, busy_s = self.learner.updates_done, 0.0  # busy: time spent in updates since the checkpoint
        trained = False  # since the last status that said caught up
        while self.running:
            due = self.learner.updates_due()
            if self.fault or due == 0:
                if trained and not self.fault:
                    self.caught_up.trigger()
                    trained = False
                time.sleep(0.02)
                continue
            started = time.perf_counter()
            try:
                losses = self.learner.update(min(due, self.publish_every))
            except Exception as err:  # noqa: BLE001 - a failed update must stop training loudly, not kill the node
                self.train_fault = f"update failed: {err!r}"
                self.get_logger().error(self.train_fault)
                continue
            busy_s += time.perf_counter() - started
            trained = True
            if not finite(losses):
                self._roll_back(losses)
                continue
            self.losses, self.rollbacks = losses, 0
            # every good batch (publish_every updates at most): a rollback never goes back past the weights already
            # published, and copying the small networks costs little next to the batch's gradient steps
            self.last_good.snapshot()
            if self.learner.policy_version != self.published_version:
                self._publish_weights()
            if self.learner.updates_done - last_checkpoint >= self.checkpoint_every:
                self._checkpoint()
                self.get_logger().info(
                    f"checkpoint at {self.learner.updates_done} updates; "
                    f"{(self.learner.updates_done - last_checkpoint) / max(busy_s, 1e-9):.1f} updates/s while training")
                last_checkpoint, busy_s = self.learner.updates_done, 0.0

    def _roll_back(self, losses: dict[str, float]) -> None:
        """Undo a batch with non-finite losses: back to the last good batch's networks and optimizers (its weights
        were published, the bad ones never are). Train on only if the data cannot be the cause and it keeps
        happening no more than MAX_ROLLBACKS times in a row."""
        bad = {name: value for name, value in losses.items() if not math.isfinite(value)}
        restored = self.last_good.restore()
        self.rollbacks += 1
        what = f"non-finite losses {bad}: rolled back to the networks after update {restored}"
        problem = buffer_problem(self.learner.real, self.spec)
        if problem:
            self.train_fault = f"{what}; training stopped: {problem}"
        elif self.rollbacks >= MAX_ROLLBACKS:
            self.train_fault = f"{what}; training stopped: {self.rollbacks} bad batches in a row"
        else:
            self.get_logger().warning(f"{what}; training resumes ({self.rollbacks} in a row)")
            return
        self.get_logger().error(self.train_fault)

    def _publish_weights(self) -> None:
        version = self.learner.policy_version
        data, sha = actor_to_bytes(self.learner.actor, self.spec.name, self.network_config,
                                   extra={"method": self.method, "updates_done": self.learner.updates_done})
        msg = PolicyUpdate(task=self.spec.name, version=version, weights=array.array("B", data), sha256=sha,
                           architecture=json.dumps(self.network_config.to_dict()))
        msg.header.stamp = self.get_clock().now().to_msg()
        self.update_pub.publish(msg)
        self.published_version = version

    def _checkpoint(self) -> None:
        learner = self.learner
        state = learner.state_dict()
        try:
            save_checkpoint(self.run_dir / CHECKPOINT_NAME, state["networks"], self.spec.name, learner.network_config,
                            train_config=learner.config.to_dict(), seed=self.seed, extra=state["progress"])
        except OSError as err:
            self.get_logger().error(f"checkpoint failed (training goes on, the store has every transition): {err}")

    # ---------------------------------------------------------------------------------------- reporting
    def _publish_status(self) -> None:
        now, done = time.monotonic(), self.learner.updates_done
        rate = (done - self._rate_mark[1]) / max(1e-6, now - self._rate_mark[0])
        self._rate_mark = (now, done)
        msg = LearnerStatus(task=self.spec.name, variant=self.method, transitions_received=self.stats["received"],
                            transitions_stored=self.store.records - self.skipped_on_resume,
                            transitions_rejected=self.stats["rejected"],
                            gradient_updates=done, policy_version=self.learner.policy_version,
                            training=not self.fault and self.learner.updates_due() > 0, fault=self.fault,
                            critic_loss=self.losses.get("critic_loss", math.nan),
                            actor_loss=self.losses.get("actor_loss", math.nan),
                            dynamics_loss=self.losses.get("dynamics_loss", math.nan), updates_per_second=rate)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.status_pub.publish(msg)
        if self.store_fault and self.unstored:
            self._flush_unstored()  # retry the store once a period, not per message

    def _publish_heatmap(self) -> None:
        """V_sim and the current Q over the end-effector xy plane, everything else as in the latest state."""
        if self.last_obs is None:
            return
        spec, n = self.spec, self.heatmap_cells
        ix, iy = spec.obs_names.index("ee_x"), spec.obs_names.index("ee_y")
        xs = np.linspace(spec.workspace_low[0], spec.workspace_high[0], n)
        ys = np.linspace(spec.workspace_low[1], spec.workspace_high[1], n)
        grid_x, grid_y = np.meshgrid(xs, ys, indexing="ij")
        obs = np.repeat(self.last_obs[None], n * n, axis=0)
        obs[:, ix], obs[:, iy] = grid_x.ravel(), grid_y.ravel()
        with torch.no_grad():
            actions = self.learner.actor.deterministic(torch.as_tensor(obs)).numpy()
        fields = {"value_sim": self.learner.value_sim(obs), "q_current": self.learner.q_value(obs, actions)}
        stamp = self.get_clock().now().to_msg()
        markers = MarkerArray()
        for marker_id, (name, values) in enumerate(fields.items()):
            marker = _marker(name, marker_id, Marker.CUBE_LIST, stamp, self.base_frame)
            # one cell per grid point, tiling the plane (the workspace is wider in y than in x)
            marker.scale.x, marker.scale.y = float(xs[1] - xs[0]), float(ys[1] - ys[0])
            marker.scale.z = 0.002
            span = float(values.max() - values.min()) or 1.0
            lift = 0.001 + 0.01 * marker_id  # Q drawn just above V_sim; hide one in rviz to see the other
            for (x, y), v in zip(zip(grid_x.ravel(), grid_y.ravel(), strict=True), values, strict=True):
                marker.points.append(_point(x, y, lift))
                marker.colors.append(_colormap((float(v) - float(values.min())) / span))
            markers.markers.append(marker)
        if len(self.object_xy) == 2:  # the object the values are drawn for (push: the puck)
            marker = _marker("object", len(fields), Marker.SPHERE, stamp, self.base_frame)
            marker.pose.position = _point(*(float(self.last_obs[i]) for i in self.object_xy), 0.02)
            marker.scale.x = marker.scale.y = marker.scale.z = 0.05
            marker.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
            markers.markers.append(marker)
        self.heatmap_pub.publish(markers)

    def destroy_node(self) -> None:
        if hasattr(self, "trainer"):  # not when the constructor refused to start
            self.running = False
            self.trainer.join(timeout=10.0)
            self._checkpoint()
            self.store.close()
            self.label_store.close()
        super().destroy_node()


def _marker(ns: str, marker_id: int, kind: int, stamp, frame: str) -> Marker:
    """An empty heatmap marker in the robot base frame."""
    marker = Marker(ns=ns, id=marker_id, type=kind, action=Marker.ADD)
    marker.header.stamp, marker.header.frame_id = stamp, frame
    marker.pose.orientation.w = 1.0
    return marker


def _point(x: float, y: float, z: float) -> Point:
    return Point(x=float(x), y=float(y), z=float(z))


def _colormap(t: float) -> ColorRGBA:
    """Blue (low) → red (high), opaque."""
    t = min(1.0, max(0.0, t))
    return ColorRGBA(r=t, g=0.2 * (1.0 - abs(2.0 * t - 1.0)), b=1.0 - t, a=1.0)


def main(args: list[str] | None = None) -> int:
    return run_node(LearnerNode, "sgft_learner", refuse=(ValueError, StoreError), args=args)


if __name__ == "__main__":
    sys.exit(main())
