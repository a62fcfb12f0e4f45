"""Fuzz the running push graph over DDS: a seeded stream of malformed and adversarial messages (sgft_testing.fuzz) on
every topic the graph subscribes to, and service calls from several clients at once, for FUZZ_SECONDS of wall time.

Sent: robot pose and measured joint states (to the policy), object detections, policy updates (random bytes, fake
safetensors headers, and re-hashed mutations of a genuine update), the e-stop topic, transitions (to the learner),
camera clouds (to perception), Cartesian targets and joint trajectories (to the simulated robot), episode events;
StartEpisode / StopEpisode / ResetEpisode / SetBool(set_estop) requests. Not /clock (see sgft_testing.fuzz).

Checked, all collected and reported together at the end (one run shows every problem):
- every node process stays alive (psutil), and no node log holds a traceback;
- every node's RSS stays under MAX_RSS and grows by less than MAX_RSS_GROWTH after warm-up;
- every command the policy publishes on the Cartesian target topic is finite, at the task's height, inside the
  push workspace box (or, when the genuine robot is outside it, closer to it), and within the task's max_step (per
  axis) of a *genuine* measured end-effector position: one the simulated robot published (our own pose messages are
  told apart by content) stamped in the STEP_WINDOW_S of sim time before the command's stamp. The window, not the
  one pose the policy used, because which one that was is not observable from outside; a command computed from a
  fuzzed pose would in general be far from every genuine one. That is checkable because no fuzzed pose is a
  plausible spoof (sgft_testing.fuzz: each has a defect a receiver can detect), so a policy that validates its
  inputs never follows one;
- no command reaches the robot more than ESTOP_GRACE_S after we engaged the e-stop (topic or service) and before
  we cleared it;
- after the graph stopped, every transition in the learner's durable store is valid: task push, 4/2/4 entries,
  finite, observations inside the task's obs bounds, actions in [−1, 1], no (stamp, episode, step) twice.

Deterministic for its seed (SGFT_FUZZ_SEED, default below; printed): the sequence of generated messages is; their
timing against the graph's is not.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from sgft_testing import RERUN_MULTIPROCESS, isolate_domain, spin_until, start_episode, start_graph, stop_graph

pytestmark = [pytest.mark.faults, RERUN_MULTIPROCESS]  # (why RERUN_MULTIPROCESS: sgft_testing)

isolate_domain()

import rclpy  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402
from sensor_msgs.msg import JointState, PointCloud2  # noqa: E402
from std_msgs.msg import Bool  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from sgft_core.checkpoint import actor_to_bytes, save_checkpoint  # noqa: E402
from sgft_core.networks import NetworkConfig, build_networks  # noqa: E402
from sgft_core.tasks import get_task  # noqa: E402
from sgft_interfaces import (  # noqa: E402
    COMMAND_QOS,
    EPISODE_EVENT_QOS,
    ESTOP_QOS,
    POLICY_UPDATE_QOS,
    ROBOT_STATE_QOS,
    SENSOR_QOS,
    TRANSITION_QOS,
    Services,
    Topics,
)
from sgft_learner.transition_store import TransitionStore  # noqa: E402
from sgft_msgs.msg import EpisodeEvent, ObjectDetection, PolicyUpdate, Transition  # noqa: E402
from sgft_msgs.srv import ResetEpisode, StartEpisode, StopEpisode  # noqa: E402
from sgft_testing.fuzz import Fuzzer  # noqa: E402

SEED = int(os.environ.get("SGFT_FUZZ_SEED", "26007"))
FUZZ_SECONDS = 75.0
SPEC = get_task("push")
MAX_RSS = 3e9
MAX_RSS_GROWTH = 1.5e9
STEP_WINDOW_S = 0.3  # sim seconds of genuine poses before a command's stamp it may be one step from
ESTOP_GRACE_S = 1.0  # wall seconds for an e-stop to take effect (one period is 0.2 s sim)
NODES = {"sgft_sim_robot": "sgft_sim.robot_node", "sgft_perception": "sgft_perception.perception_node",
         "sgft_policy": "sgft_policy.policy_node", "sgft_learner": "sgft_learner.learner_node"}
# (period in wall s, generator, topic, type, QoS)
STREAMS = [
    (0.15, "pose_stamped", Topics.ROBOT_POSE, PoseStamped, ROBOT_STATE_QOS),
    (0.25, "joint_state", Topics.MEASURED_JOINT_STATES, JointState, ROBOT_STATE_QOS),
    (0.2, "object_detection", Topics.OBJECT_DETECTION, ObjectDetection, SENSOR_QOS),
    (1.0, "policy_update", Topics.POLICY_UPDATE, PolicyUpdate, POLICY_UPDATE_QOS),
    (4.0, "bool_msg", Topics.ESTOP, Bool, ESTOP_QOS),
    (0.2, "transition", Topics.TRANSITIONS, Transition, TRANSITION_QOS),
    (2.0, "point_cloud2", Topics.CAMERA_CLOUDS[0], PointCloud2, SENSOR_QOS),
    (3.0, "point_cloud2", Topics.CAMERA_CLOUDS[1], PointCloud2, SENSOR_QOS),
    (0.5, "pose_stamped", Topics.CARTESIAN_TARGET, PoseStamped, COMMAND_QOS),
    (1.0, "joint_trajectory", Topics.JOINT_TRAJECTORY, JointTrajectory, COMMAND_QOS),
    (1.0, "episode_event", Topics.EPISODE_EVENTS, EpisodeEvent, EPISODE_EVENT_QOS),
]
SERVICE_PERIOD_S = 0.5
CLIENTS_PER_SERVICE = 3


def _ns(stamp) -> int:
    return stamp.sec * 10**9 + stamp.nanosec


def _pose_key(msg: PoseStamped) -> str:
    """Content of a pose (CDR bytes would not do: their padding is uninitialized memory)."""
    p, q = msg.pose.position, msg.pose.orientation
    # not the frame: a string with a NUL arrives cut off
    return repr((msg.header.stamp.sec, msg.header.stamp.nanosec, p.x, p.y, p.z, q.x, q.y, q.z, q.w))


def _tracebacks(text: str) -> list[str]:
    out = []
    for match in re.finditer(r"Traceback \(most recent call last\):", text):
        block = text[match.start():].splitlines()
        end = next((i for i, line in enumerate(block[1:], 1) if line and not line.startswith(" ")), len(block) - 1)
        out.append("\n".join(block[: end + 1]))
    return out


def _node_processes(graph_pid: int) -> dict[str, psutil.Process]:
    procs = {}
    try:
        children = psutil.Process(graph_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return procs
    for child in children:
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        for name, module in NODES.items():  # `-m module` or an installed executable with `-r __node:=name`
            if module in cmdline or f"__node:={name}" in cmdline:
                procs.setdefault(name, child)
    return procs


def _box_distance(xy: np.ndarray) -> float:
    low, high = SPEC.workspace_low[:2], SPEC.workspace_high[:2]
    return float(np.linalg.norm(np.maximum(0.0, low - xy) + np.maximum(0.0, xy - high)))


def _transition_problems(t: Transition) -> list[str]:
    problems = []
    if t.task != "push":
        problems.append(f"task {t.task[:30]!r}")
    obs, action, next_obs = (np.asarray(a, dtype=np.float64) for a in (t.obs, t.action, t.next_obs))
    if obs.shape != (SPEC.obs_dim,) or next_obs.shape != (SPEC.obs_dim,) or action.shape != (SPEC.action_dim,):
        problems.append(f"lengths obs {obs.size} action {action.size} next_obs {next_obs.size}")
        return problems
    if not (np.isfinite(obs).all() and np.isfinite(next_obs).all() and np.isfinite(action).all()
            and math.isfinite(t.reward)):
        problems.append(f"non-finite obs {obs} action {action} next_obs {next_obs} reward {t.reward}")
        return problems
    for name, o in (("obs", obs), ("next_obs", next_obs)):
        if np.any(o < SPEC.obs_low) or np.any(o > SPEC.obs_high):
            problems.append(f"{name} {o} outside [{SPEC.obs_low}, {SPEC.obs_high}]")
    if np.any(np.abs(action) > 1.0):
        problems.append(f"action {action} outside [-1, 1]")
    return problems


@pytest.fixture()  # per test: a rerun must start fresh processes
def graph():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = NetworkConfig(hidden_dim=64, num_layers=2)
        networks = build_networks(SPEC.obs_dim, SPEC.action_dim, config)
        save_checkpoint(tmp / "push.safetensors", networks, "push", config, seed=0)
        data, sha = actor_to_bytes(networks.actor, "push", config)
        template = PolicyUpdate(task="push", version=1, architecture=json.dumps(config.to_dict()),
                                weights=data, sha256=sha)
        sets = [f"sgft_policy.checkpoint={tmp / 'push.safetensors'}",
                f"sgft_learner.checkpoint={tmp / 'push.safetensors'}", f"sgft_learner.run_dir={tmp / 'run'}",
                f"sgft_policy.estop_state_file={tmp / 'estop'}",
                f"sgft_policy.episode_state_file={tmp / 'episode.json'}",
                "sgft_sim_robot.time_scale=1.0", "sgft_learner.torch_threads=1",
                "sgft_learner.finetune.prefill_episodes=1"]
        proc = start_graph("push", tmp / "logs", sets)
        yield proc, tmp, template
        if proc.poll() is None:
            stop_graph(proc, tmp / "logs")


def test_fuzz_graph(graph):  # noqa: C901, PLR0912, PLR0915 - one run, every problem collected
    proc, tmp, template = graph
    print(f"fuzz seed {SEED} (SGFT_FUZZ_SEED), {FUZZ_SECONDS} s")
    fuzzer = Fuzzer(SEED, policy_update_template=template)
    choose = random.Random(SEED)
    problems: list[str] = []
    sent: list[tuple[float, str, str]] = []  # (wall, topic, label)
    fuzz_pose_keys: set[str] = set()
    genuine_poses: list[tuple[int, np.ndarray]] = []  # (stamp ns, ee xyz)
    commands: list[tuple[float, PoseStamped]] = []  # (wall received, msg), genuine only after filtering
    estop_actions: list[tuple[float, bool]] = []
    rss: dict[str, list[tuple[float, int]]] = {name: [] for name in NODES}
    dead: dict[str, str] = {}
    service_calls: list[tuple[str, str, object]] = []

    rclpy.init()
    node = rclpy.create_node("fuzz_test")

    def on_pose(msg: PoseStamped) -> None:
        if _pose_key(msg) not in fuzz_pose_keys:
            genuine_poses.append((_ns(msg.header.stamp), np.array([msg.pose.position.x, msg.pose.position.y,
                                                                     msg.pose.position.z])))

    node.create_subscription(PoseStamped, Topics.ROBOT_POSE, on_pose, ROBOT_STATE_QOS)
    node.create_subscription(PoseStamped, Topics.CARTESIAN_TARGET, lambda m: commands.append((time.monotonic(), m)),
                             COMMAND_QOS)
    reset = node.create_client(ResetEpisode, Services.RESET_EPISODE)
    start = node.create_client(StartEpisode, Services.START_EPISODE)
    pubs = {(gen, topic): node.create_publisher(kind, topic, qos) for _, gen, topic, kind, qos in STREAMS}
    clients = {name: [node.create_client(kind, srv) for _ in range(CLIENTS_PER_SERVICE)]
               for name, kind, srv in (("start_episode", StartEpisode, Services.START_EPISODE),
                                       ("stop_episode", StopEpisode, Services.STOP_EPISODE),
                                       ("reset_episode", ResetEpisode, Services.RESET_EPISODE),
                                       ("set_estop", SetBool, Services.SET_ESTOP))}
    requests = {"start_episode": fuzzer.start_episode_request, "stop_episode": fuzzer.stop_episode_request,
                "reset_episode": fuzzer.reset_episode_request, "set_estop": fuzzer.set_estop_request}

    missing_since: dict[str, float] = {}

    def sample_processes(now: float, final: bool = False) -> None:
        """RSS of every node; a node missing from this sample and still missing at the end counts as dead (one
        failed psutil lookup is not a death)."""
        procs = _node_processes(proc.pid)
        for name in NODES:
            p = procs.get(name)
            try:
                rss[name].append((now, p.memory_info().rss))
                missing_since.pop(name, None)
                continue
            except (AttributeError, psutil.Error):
                pass
            if name not in missing_since:
                recent = [f"  {t - t0:6.2f}s {topic}: {label[:220]}" for t, topic, label in sent[-12:]]
                missing_since[name] = now
                dead[name] = f"{name} gone at {now - t0:.1f} s into the stream; last messages sent:\n" + \
                    "\n".join(recent)
        if final:
            for name in list(dead):
                if name not in missing_since:
                    del dead[name]

    t0 = time.monotonic()
    try:
        ready = reset.wait_for_service(timeout_sec=90) and start.wait_for_service(timeout_sec=60)
        assert ready, "the graph did not come up: " + stop_graph(proc, tmp / "logs")
        future = reset.call_async(ResetEpisode.Request(seed=3))
        spin_until(node, future.done, 30)
        started = start_episode(node, start)
        if not started.accepted:
            problems.append(f"no episode started before the fuzz stream: {started.message}")
        t0 = time.monotonic()
        sample_processes(t0)
        due = {i: t0 + 0.05 * i for i in range(len(STREAMS))}
        next_service, next_sample, clear_at = t0, t0, None
        while (now := time.monotonic()) < t0 + FUZZ_SECONDS:
            now_ns = genuine_poses[-1][0] if genuine_poses else None
            for i, (period, gen, topic, _, _) in enumerate(STREAMS):
                if now < due[i]:
                    continue
                due[i] = now + period
                method = getattr(fuzzer, gen)
                msg, label = method() if gen == "bool_msg" else method(now_ns=now_ns)
                if gen == "pose_stamped":
                    fuzz_pose_keys.add(_pose_key(msg))
                if gen == "bool_msg":
                    estop_actions.append((now, msg.data))
                    clear_at = now + 2.0 if msg.data else clear_at
                sent.append((now, topic, label))
                pubs[(gen, topic)].publish(msg)
            if now >= next_service:
                next_service = now + SERVICE_PERIOD_S
                name = choose.choices(list(requests), weights=(4, 1, 2, 2))[0]
                request, label = requests[name]()
                if name == "set_estop":
                    estop_actions.append((now, request.data))
                    clear_at = now + 2.0 if request.data else clear_at
                client = choose.choice(clients[name])
                sent.append((now, name, label))
                service_calls.append((name, label, client.call_async(request)))
            if clear_at is not None and now >= clear_at:  # an engaged e-stop is cleared again, so the policy acts
                clear_at = None
                request = SetBool.Request(data=False)
                estop_actions.append((now, False))
                pubs[("bool_msg", Topics.ESTOP)].publish(Bool(data=False))
                service_calls.append(("set_estop", "data=False (clear)",
                                      clients["set_estop"][0].call_async(request)))
                sent.append((now, "set_estop+estop topic", "data=False (clear)"))
            if now >= next_sample:
                next_sample = now + 2.0
                sample_processes(now)
            rclpy.spin_once(node, timeout_sec=0.005)
        spin_until(node, lambda: False, 2.0)
        sample_processes(time.monotonic(), final=True)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        context = stop_graph(proc, tmp / "logs")
    print(f"sent {len(sent)} messages/requests in {FUZZ_SECONDS} s; {len(commands)} commands seen, "
          f"{len(genuine_poses)} genuine poses")

    # --- liveness and the nodes' logs
    for _, text in sorted(dead.items()):
        problems.append(f"node died: {text}")
    lines = context.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("run_graph: node"):  # with the tail of its log run_graph printed (indented)
            tail = [x for x in lines[i + 1:i + 16] if x.startswith("  ")]
            problems.append("\n".join([line, *tail]))
    for log in sorted((tmp / "logs").glob("*.log")):
        for tb in _tracebacks(log.read_text(errors="replace")):
            problems.append(f"traceback in {log.name}:\n{tb[-4000:]}")

    # --- memory
    for name, samples in rss.items():
        if not samples:
            continue
        peak = max(v for _, v in samples)
        warm = [v for t, v in samples if t >= t0 + 10.0] or [samples[-1][1]]
        if peak > MAX_RSS:
            problems.append(f"{name}: RSS peak {peak / 1e9:.2f} GB > {MAX_RSS / 1e9:.1f} GB")
        if warm[-1] - warm[0] > MAX_RSS_GROWTH:
            problems.append(f"{name}: RSS grew {(warm[-1] - warm[0]) / 1e9:.2f} GB during the stream")
        print(f"{name}: RSS first {samples[0][1] / 1e6:.0f} MB, peak {peak / 1e6:.0f} MB, "
              f"last {samples[-1][1] / 1e6:.0f} MB")

    # --- commands: finite, height, box, one step from a genuine pose, none while the e-stop is engaged
    # our own targets on the command topic are in fuzz_pose_keys too (same generator)
    genuine_cmds = [(t, m) for t, m in commands if _pose_key(m) not in fuzz_pose_keys]
    pose_t = np.array([s for s, _ in genuine_poses], dtype=np.int64)
    pose_xy = np.array([p[:2] for _, p in genuine_poses]) if genuine_poses else np.zeros((0, 2))
    unchecked, bad_cmds = 0, []
    for wall, cmd in genuine_cmds:
        p = cmd.pose.position
        xyz = np.array([p.x, p.y, p.z])
        why = []
        if not np.isfinite(xyz).all():
            why.append("non-finite")
        else:
            if abs(p.z - SPEC.ee_height) > 1e-6:
                why.append(f"z {p.z} != {SPEC.ee_height}")
            t = _ns(cmd.header.stamp)
            window = (pose_t >= t - int(STEP_WINDOW_S * 1e9)) & (pose_t <= t + 1_000_000)
            if not window.any():
                unchecked += 1
            else:
                # The policy computed the command from one genuine pose in the window (which one, this test cannot
                # see): it is safe when the envelope's rule holds for at least one of them: within max_step of it,
                # and inside the box or, from a pose outside the box, no further from it than that pose (a stop holds
                # the measured pose; a tick moves back towards the box).
                near = pose_xy[window]
                steps = np.abs(near - xyz[:2])
                within = np.all(steps <= SPEC.max_delta + 1e-6, axis=1)
                distance = _box_distance(xyz[:2])
                towards = np.array([distance <= 1e-6 or distance <= _box_distance(q) + 1e-6 for q in near])
                if not within.any():
                    why.append(f"more than max_step {SPEC.max_delta} from every genuine pose in the window "
                               f"(nearest {near[np.argmin(steps.max(axis=1))]})")
                elif not (within & towards).any():
                    why.append("outside the workspace box and further from it than every genuine pose within one "
                               "step")
        engaged = [e for e in estop_actions if e[0] <= wall - ESTOP_GRACE_S]
        if engaged and engaged[-1][1] and not any(wall - ESTOP_GRACE_S < e[0] <= wall for e in estop_actions):
            why.append(f"received {wall - engaged[-1][0]:.2f} s after the e-stop was engaged")
        if why:
            stamp = f"{cmd.header.stamp.sec}.{cmd.header.stamp.nanosec:09d}"
            bad_cmds.append(f"  command at {wall - t0:.2f} s stamp {stamp} xyz {xyz}: {'; '.join(why)}")
    print(f"{len(genuine_cmds)} genuine commands, {unchecked} without a genuine pose in the window")
    if bad_cmds:
        problems.append(f"{len(bad_cmds)} unsafe commands:\n" + "\n".join(bad_cmds[:20]))
    if len(genuine_cmds) < 5:
        problems.append(f"only {len(genuine_cmds)} commands from the policy during the stream: it hardly acted, "
                        "so the command checks saw little")

    # --- services answered
    answered = sum(f.done() for _, _, f in service_calls)
    print(f"{answered}/{len(service_calls)} service calls answered")

    # --- the learner's store
    store = tmp / "run" / "transitions.log"
    if store.exists():
        invalid, seen, duplicates, n = [], set(), 0, 0
        try:
            for payload in TransitionStore(store):
                n += 1
                t = deserialize_message(payload, Transition)
                key = (_ns(t.header.stamp), t.episode_id, t.step)
                duplicates += key in seen
                seen.add(key)
                why = _transition_problems(t)
                if why:
                    invalid.append(f"  episode {t.episode_id} step {t.step}: {'; '.join(why)}")
        except Exception as err:  # a store that cannot be read back is a finding too
            problems.append(f"the learner's store cannot be read: {type(err).__name__}: {err}")
        print(f"learner store: {n} transitions")
        if invalid:
            problems.append(f"{len(invalid)} of {n} stored transitions are invalid:\n" + "\n".join(invalid[:15]))
        if duplicates:
            problems.append(f"{duplicates} stored transitions repeat a (stamp, episode, step)")
    else:
        problems.append(f"no transition store at {store}")

    report = "\n\n".join(problems)
    print(f"fuzz seed {SEED}: {len(problems)} problems\n{report}")
    assert not problems, f"fuzz seed {SEED} (SGFT_FUZZ_SEED): {len(problems)} problems\n\n{report}"
