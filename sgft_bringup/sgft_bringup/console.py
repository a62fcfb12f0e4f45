"""The operator console: what a person next to the robot sees and does during a fine-tuning session.

    python -m sgft_bringup.console                 # a console of its own, beside a running session or graph
    python -m sgft_bringup.console --scripted      # the scripted operator of `make demo-operator` (no terminal)
    (finetune_session with `console: true` runs the same console in the session's process)

It shows the episode, its state (running, holding, paused), success so far, labels, the learner's status and
updates/s, and the e-stop; and it offers, one key each: start an episode (s), pause (p) and resume (r), abort (a),
confirm a reset (c), label the last finished episode a success (y) or failure (n), e-stop on (e) and off (E), quit
(q). Everything goes through the graph's services and topics (sgft_interfaces.Services, Topics), so a second console,
or a script, can do the same; the console holds no state the graph depends on.
"""

from __future__ import annotations

import argparse
import collections
import select
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import rclpy
import yaml
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.task import Future
from std_msgs.msg import Bool
from std_srvs.srv import SetBool, Trigger

from sgft_bringup.reset_server import SCENE_MARKER_QOS as SCENE_QOS
from sgft_bringup.reset_server import START_SCENE_TOPIC
from sgft_interfaces import EPISODE_EVENT_QOS, ESTOP_QOS, STATUS_QOS, Services, Topics
from sgft_msgs.msg import EpisodeEvent, Intervention, LearnerStatus
from sgft_msgs.srv import LabelEpisode, StartEpisode, StopEpisode

KEYS = {
    "s": "start an episode",
    "p": "pause the episode",
    "r": "resume the episode",
    "a": "abort the episode",
    "c": "confirm the reset (scene set up)",
    "y": "label the last episode a success",
    "n": "label the last episode a failure",
    "e": "e-stop ON",
    "E": "e-stop off",
    "q": "quit the console",
}
SCENE_ANSWER_S = 10.0  # a scripted scene set-up not answered within this is asked for again
LABEL_DELAY_S = 2.0  # a scripted label waits this long after the episode's end (its last transition is stored)
EVENT_NAMES = {EpisodeEvent.STARTED: "running", EpisodeEvent.FINISHED: "finished", EpisodeEvent.ABORTED: "aborted",
               EpisodeEvent.HOLDING: "holding", EpisodeEvent.RESUMED: "running"}


@dataclass
class ConsoleState:
    """What the console shows, from the graph's topics; pure, so it is tested without ROS."""

    episode_id: int = 0
    episode_state: str = "idle"
    steps: int = 0
    evaluation: bool = False
    reason: str = ""
    finished: dict[int, bool] = field(default_factory=dict)  # episode -> perceived success (FINISHED only)
    labels: dict[int, bool] = field(default_factory=dict)  # episode -> the operator's label
    status: LearnerStatus | None = None
    estop: bool = False
    training_episodes: list[int] = field(default_factory=list)  # fine-tuning (not evaluation) episodes, in order
    finished_at: dict[int, float] = field(default_factory=dict)  # episode -> monotonic time of its FINISHED
    started_at: float = 0.0  # monotonic time of the current episode's STARTED
    log: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=8))
    echo: Callable[[str], None] | None = None  # also hand each log line here (a script's stdout)

    def on_event(self, msg: EpisodeEvent) -> None:
        if msg.episode_id < self.episode_id:
            return  # a late replay of an earlier episode's event (transient local)
        self.episode_id, self.steps, self.evaluation = int(msg.episode_id), int(msg.steps), bool(msg.evaluation)
        self.episode_state = EVENT_NAMES.get(msg.event, "unknown")
        if msg.event == EpisodeEvent.HOLDING and "paused" in msg.reason:
            self.episode_state = "paused"
        self.reason = msg.reason
        if msg.event == EpisodeEvent.STARTED:
            self.started_at = time.monotonic()
            if not msg.evaluation and self.episode_id not in self.training_episodes:
                self.training_episodes.append(self.episode_id)
        if msg.event == EpisodeEvent.FINISHED:
            self.finished[self.episode_id] = bool(msg.success)
            self.finished_at[self.episode_id] = time.monotonic()
        if msg.event in (EpisodeEvent.FINISHED, EpisodeEvent.ABORTED, EpisodeEvent.HOLDING):
            self.note(f"episode {msg.episode_id} {self.episode_state}: {msg.reason}")

    def on_status(self, msg: LearnerStatus) -> None:
        self.status = msg

    def on_estop(self, msg: Bool) -> None:
        self.estop = bool(msg.data)

    def note(self, line: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {line}")
        if self.echo is not None:
            self.echo(self.log[-1])

    def success(self, episode: int) -> bool:
        """An episode's outcome: the operator's label where there is one, else what the robot perceived."""
        return self.labels.get(episode, self.finished.get(episode, False))

    @property
    def last_finished(self) -> int | None:
        return max(self.finished) if self.finished else None

    def summary(self) -> dict[str, str]:
        """The console's lines, as label -> text."""
        done = sorted(self.finished)
        successes = sum(self.success(e) for e in done)
        kind = "evaluation" if self.evaluation else "fine-tuning"
        rate = f" ({successes / len(done):.0%})" if done else ""
        lines = {
            "episode": f"{self.episode_id} ({kind}), {self.episode_state}, step {self.steps}"
                       + (f": {self.reason}" if self.reason else ""),
            "success": f"{successes}/{len(done)} finished episodes{rate}"
                       + (f"; labelled {len(self.labels)}" if self.labels else ""),
            "e-stop": "ENGAGED" if self.estop else "off",
        }
        s = self.status
        lines["learner"] = "no status yet" if s is None else (
            f"{s.variant}: {'training' if s.training else 'idle'}, {s.gradient_updates} updates "
            f"({s.updates_per_second:.1f}/s), policy v{s.policy_version}, {s.transitions_stored} stored"
            + (f", FAULT: {s.fault}" if s.fault else ""))
        return lines


class GraphClient:
    """The graph's operator services from any node; each call returns a Future (the console never blocks on one)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.start_client = node.create_client(StartEpisode, Services.START_EPISODE)
        self.stop_client = node.create_client(StopEpisode, Services.STOP_EPISODE)
        self.pause_client = node.create_client(SetBool, Services.PAUSE_EPISODE)
        self.confirm_client = node.create_client(Trigger, Services.CONFIRM_RESET)
        self.label_client = node.create_client(LabelEpisode, Services.LABEL_EPISODE)
        self.estop_client = node.create_client(SetBool, Services.SET_ESTOP)
        self.intervention_pub = node.create_publisher(Intervention, Topics.INTERVENTION, 10)

    def start(self, evaluation: bool = False) -> Future:
        return self.start_client.call_async(StartEpisode.Request(evaluation=evaluation))

    def pause(self, paused: bool) -> Future:
        return self.pause_client.call_async(SetBool.Request(data=paused))

    def abort(self, reason: str = "aborted by the operator") -> Future:
        return self.stop_client.call_async(StopEpisode.Request(reason=reason))

    def confirm_reset(self) -> Future:
        return self.confirm_client.call_async(Trigger.Request())

    def label(self, episode_id: int, success: bool) -> Future:
        return self.label_client.call_async(LabelEpisode.Request(episode_id=episode_id, success=success))

    def estop(self, engaged: bool) -> Future:
        return self.estop_client.call_async(SetBool.Request(data=engaged))

    def intervene(self, action: np.ndarray | None) -> None:
        """Publish a teleoperation action (None: hand control back to the policy)."""
        msg = Intervention(active=action is not None,
                           action=[] if action is None else [float(v) for v in action])
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.intervention_pub.publish(msg)


def answer_text(response) -> str:
    """One line for a service's answer, whatever its type."""
    for ok, text in (("accepted", "message"), ("success", "message"), ("stopped", "message")):
        if hasattr(response, ok):
            return f"{'ok' if getattr(response, ok) else 'refused'}: {getattr(response, text, '')}".rstrip(": ")
    return str(response)


def handle_key(key: str, state: ConsoleState, client: GraphClient) -> tuple[str, Future | None]:
    """What a key does: (what was asked, the call's Future, or None when nothing was sent)."""
    if key == "s":
        return "start", client.start()
    if key in ("p", "r"):
        return ("pause" if key == "p" else "resume"), client.pause(key == "p")
    if key == "a":
        return "abort", client.abort()
    if key == "c":
        return "confirm reset", client.confirm_reset()
    if key in ("y", "n"):
        episode = state.last_finished
        if episode is None:
            return "label: no finished episode yet", None
        state.labels[episode] = key == "y"  # shown at once; the learner's answer is logged when it comes
        return f"label episode {episode} {'success' if key == 'y' else 'failure'}", client.label(episode, key == "y")
    if key in ("e", "E"):
        return ("e-stop ON" if key == "e" else "e-stop off"), client.estop(key == "e")
    return f"unknown key {key!r}", None


class ConsoleNode(Node):
    """Subscribes to what the console shows and owns the client of what it does."""

    def __init__(self, name: str = "sgft_operator_console") -> None:
        super().__init__(name)
        self.state = ConsoleState()
        self.client = GraphClient(self)
        self.create_subscription(EpisodeEvent, Topics.EPISODE_EVENTS, self.state.on_event, EPISODE_EVENT_QOS)
        self.create_subscription(LearnerStatus, Topics.LEARNER_STATUS, self.state.on_status, STATUS_QOS)
        self.create_subscription(Bool, Topics.ESTOP, self.state.on_estop, ESTOP_QOS)
        self.pending: list[tuple[str, Future]] = []

    def do(self, key: str) -> None:
        what, future = handle_key(key, self.state, self.client)
        if future is None:
            self.state.note(what)
        else:
            self.pending.append((what, future))

    def collect_answers(self) -> None:
        for what, future in [p for p in self.pending if p[1].done()]:
            self.pending.remove((what, future))
            self.state.note(f"{what}: {answer_text(future.result())}")


def render(state: ConsoleState):
    """The console's screen (rich)."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    for label, text in state.summary().items():
        style = "bold red" if label == "e-stop" and state.estop else None
        table.add_row(f"[bold]{label}[/]", text, style=style)
    keys = "  ".join(f"[bold]{k}[/] {v}" for k, v in KEYS.items())
    return Group(Panel(table, title="SGFT operator console"), Panel("\n".join(state.log) or "-", title="log"),
                 keys)


class KeyReader:
    """Single key presses from a terminal in cbreak mode (no Enter needed); restores the terminal on close. None
    when stdin is not a terminal (the console then only shows)."""

    def __init__(self) -> None:
        self.saved = None
        if sys.stdin.isatty():
            import termios
            import tty

            self.saved = termios.tcgetattr(sys.stdin)
            tty.setcbreak(sys.stdin.fileno())

    def read(self, timeout_s: float) -> str | None:
        if self.saved is None:
            time.sleep(timeout_s)
            return None
        ready, _, _ = select.select([sys.stdin], [], [], timeout_s)
        return sys.stdin.read(1) if ready else None

    def close(self) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, self.saved)


def run_console(node: ConsoleNode, stop: threading.Event, refresh_s: float = 0.2) -> None:
    """The interactive console until `q` or `stop`; the node is spun here (its own executor)."""
    from rich.live import Live

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    keys = KeyReader()
    try:
        with Live(render(node.state), refresh_per_second=1 / refresh_s, screen=False) as live:
            while not stop.is_set() and rclpy.ok():
                executor.spin_once(timeout_sec=0.02)
                key = keys.read(refresh_s / 4)
                if key == "q":
                    break
                if key:
                    node.do(key)
                node.collect_answers()
                live.update(render(node.state))
    finally:
        keys.close()
        executor.remove_node(node)


@dataclass
class Script:
    """What the scripted operator of `make demo-operator` does: when the reset server shows the scene to set up
    (/sgft/start_scene), set it up (with `scene_service`, a simulator's hands: ResetEpisode with the start scene's
    index, or any scene) and confirm the reset; label the first `labels` finished episodes (the perceived outcome, as
    a person watching would); and take over with `intervention` for `intervention_steps` control periods in episode
    `intervene_in` (counted among fine-tuning episodes: evaluation episodes do not feed the learner)."""

    labels: int = 2
    intervene_in: int = 1
    intervention_steps: int = 5
    intervention: tuple[float, ...] = (0.5, 0.0)
    period_s: float = 0.2
    scene_service: str = ""
    start_scenes: tuple[tuple[float, float], ...] = ()


def scene_index(marker, scenes: tuple[tuple[float, float], ...]) -> int:
    """Which start scene a reset server's marker shows (the nearest by x, y); -1 for any scene (no marker shown)."""
    if marker.action != marker.ADD or not scenes:
        return -1
    xy = np.array([marker.pose.position.x, marker.pose.position.y])
    return int(np.argmin([np.hypot(*(xy - np.asarray(s))) for s in scenes]))


def run_scripted(node: ConsoleNode, stop: threading.Event, script: Script,
                 now: Callable[[], float] = time.monotonic) -> None:
    """The scripted operator: same services and topics as a person at the console."""
    from visualization_msgs.msg import Marker

    from sgft_msgs.srv import ResetEpisode

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    state, client = node.state, node.client
    labelled: set[int] = set()
    intervened = False
    shown: list = []  # scenes the reset server asked for, oldest first
    # latched, like the reset server's publisher: a scene shown before this operator started is still seen
    node.create_subscription(Marker, START_SCENE_TOPIC, shown.append, SCENE_QOS)
    hands = node.create_client(ResetEpisode, script.scene_service) if script.scene_service else None
    setting_up: tuple[Future, int, float] | None = None  # the hands' call, its scene, when it was sent
    try:
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.05)
            node.collect_answers()
            # a request sent before the service is discovered is never answered: wait for it, and ask again when an
            # answer is overdue
            if shown and setting_up is None and (hands is None or hands.service_is_ready()):
                scene = scene_index(shown.pop(0), script.start_scenes)
                state.note(f"setting up {'scene ' + str(scene) if scene >= 0 else 'a scene'}")
                if hands is None:
                    node.pending.append(("confirm reset", client.confirm_reset()))
                else:
                    setting_up = (hands.call_async(ResetEpisode.Request(seed=-1, scene=scene)), scene, now())
            if setting_up is not None and setting_up[0].done():
                state.note(f"scene set up: {answer_text(setting_up[0].result())}")
                node.pending.append(("confirm reset", client.confirm_reset()))
                setting_up = None
            elif setting_up is not None and now() - setting_up[2] > SCENE_ANSWER_S:
                future, scene, _ = setting_up
                hands.remove_pending_request(future)
                state.note(f"no answer from {script.scene_service} within {SCENE_ANSWER_S} s: asking again")
                setting_up = (hands.call_async(ResetEpisode.Request(seed=-1, scene=scene)), scene, now())
            # label fine-tuning episodes (evaluation ones are not stored), a moment after their end: the learner
            # refuses a label while the episode's last transition is still on its way
            for episode in sorted(set(state.finished) - labelled):
                if episode not in state.training_episodes:
                    labelled.add(episode)
                elif now() - state.finished_at[episode] >= LABEL_DELAY_S:
                    if len(labelled & set(state.training_episodes)) < script.labels:
                        state.labels[episode] = state.finished[episode]
                        node.pending.append((f"label episode {episode}",
                                             client.label(episode, state.finished[episode])))
                    labelled.add(episode)
            takeover = (script.intervene_in <= len(state.training_episodes)
                        and state.episode_id == state.training_episodes[script.intervene_in - 1])
            # a second into the episode (its events carry no step count while it runs)
            if not intervened and takeover and state.episode_state == "running" and now() - state.started_at > 1.0:
                state.note(f"intervening in episode {state.episode_id} for {script.intervention_steps} steps")
                for _ in range(script.intervention_steps * 4):  # a device sends faster than the control rate
                    client.intervene(np.asarray(script.intervention))
                    executor.spin_once(timeout_sec=script.period_s / 4)
                client.intervene(None)
                intervened = True
    finally:
        executor.remove_node(node)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scripted", action="store_true", help="the scripted operator of make demo-operator")
    parser.add_argument("--labels", type=int, default=Script.labels, help="scripted: episodes to label")
    parser.add_argument("--intervene-in", type=int, default=Script.intervene_in,
                        help="scripted: the episode to take over in")
    parser.add_argument("--scene-service", default="", help="scripted: ResetEpisode service that sets up a scene "
                        "(a simulator's; real-sim mode: /sgft/sim/reset_scene)")
    parser.add_argument("--site", help="scripted: site file whose start_scenes the reset server shows")
    args, ros_args = parser.parse_known_args(argv)
    rclpy.init(args=ros_args)
    node = ConsoleNode()
    if args.scripted:
        node.state.echo = lambda line: print(f"[operator] {line}", flush=True)
    stop = threading.Event()
    try:
        if args.scripted:
            scenes = ()
            if args.site:
                with open(args.site, encoding="utf-8") as f:
                    scenes = tuple(tuple(s) for s in (yaml.safe_load(f)["site"].get("start_scenes") or []))
            run_scripted(node, stop, Script(labels=args.labels, intervene_in=args.intervene_in,
                                            scene_service=args.scene_service, start_scenes=scenes))
        else:
            run_console(node, stop)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
