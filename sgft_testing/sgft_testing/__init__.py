"""Helpers for tests that run the SGFT nodes as separate processes over real DDS (every package's tests use them).

A test-only package: nothing at run time imports it (it needs pytest)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import rclpy
from rclpy.node import Node

from sgft_interfaces.topics import Services

# For the test modules that start nodes as processes over DDS: `pytestmark = RERUN_MULTIPROCESS`. Now and then two
# participants started together never match (tools/dds_match_check.py counts it) and the test would wait in vain. A
# rerun starts fresh processes; a deterministic failure still fails all three attempts.
RERUN_MULTIPROCESS = pytest.mark.flaky(reruns=2)


def isolate_domain() -> int:
    """Give this test run (and the processes it starts) its own ROS_DOMAIN_ID."""
    domain = random.Random(os.getpid() ^ time.time_ns()).randint(1, 100)
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    return domain


def start_node(module: str, params: dict, log_path: str) -> subprocess.Popen:
    """`python -m module --ros-args -p k:=v ...` with output to log_path (read it when a test fails)."""
    args = [sys.executable, "-m", module, "--ros-args"]
    for key, value in params.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = "'" + value.replace("'", "''") + "'"  # YAML single-quoted: JSON and paths stay strings
        elif isinstance(value, (list, tuple)):
            text = "[" + ",".join(repr(v) if isinstance(v, str) else str(v) for v in value) + "]"
        else:
            text = str(value)
        args += ["-p", f"{key}:={text}"]
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process by stop_node
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    proc.log_file = log  # type: ignore[attr-defined]
    proc.log_path = log_path  # type: ignore[attr-defined]
    return proc


def stop_node(proc: subprocess.Popen, sig: str = "term") -> None:
    if proc.poll() is None:
        proc.kill() if sig == "kill" else proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    proc.log_file.close()  # type: ignore[attr-defined]


def node_log(proc: subprocess.Popen) -> str:
    if not proc.log_file.closed:  # type: ignore[attr-defined]
        proc.log_file.flush()  # type: ignore[attr-defined]
    with open(proc.log_path) as f:  # type: ignore[attr-defined]
        return f.read()


def start_graph(task: str, log_dir: str | os.PathLike, sets: Sequence[str] = (),
                profile: str | None = None) -> subprocess.Popen:
    """The whole graph of `task` as `python -m sgft_bringup.run_graph` would start it, with `--set NODE.PARAM=VALUE`
    overrides, the simulated robot speaking robot interface `profile` (default: run_graph's), and one log file per
    node in log_dir; its own output is piped (stop_graph returns it)."""
    cmd = [sys.executable, "-m", "sgft_bringup.run_graph", "--task", task, "--log-dir", str(log_dir)]
    if profile is not None:
        cmd += ["--profile", profile]
    for item in sets:
        cmd += ["--set", item]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_graph(proc: subprocess.Popen, log_dir: str | os.PathLike, timeout_s: float = 60.0) -> str:
    """Stop a graph from start_graph (SIGINT, as Ctrl-C) and return its output and the tail of every node's log,
    for an assertion's message."""
    output = ""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        output = proc.communicate(timeout=timeout_s)[0] or ""
    except ValueError:  # already read
        proc.wait(timeout=timeout_s)
    logs = {p.stem: p.read_text() for p in Path(log_dir).glob("*.log")}
    return output + "\n".join(f"--- {name}\n{text[-3000:]}" for name, text in logs.items())


def spin_until(node: Node, done: Callable[[], bool], timeout_s: float, step: Callable[[], None] | None = None) -> bool:
    """Spin node until done() or timeout; step() (e.g. publishing fake sensor data) runs every iteration."""
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        if step is not None:
            step()
        rclpy.spin_once(node, timeout_sec=0.02)
    return done()


def call(node: Node, client, request, timeout_s: float = 10.0, step: Callable[[], None] | None = None,
         attempt_s: float = 3.0):
    """Call a service, re-sending when an attempt gets no answer: right after a node was SIGKILLed, discovery still
    lists its dead server for a while, and a request sent before the new server matched is never answered."""
    if not client.wait_for_service(timeout_sec=timeout_s / 2):
        # a client that matched a server which then went away sometimes never matches its successor: a new one does
        client = node.create_client(client.srv_type, client.srv_name)
        assert client.wait_for_service(timeout_sec=timeout_s / 2), f"service {client.srv_name} not available"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        future = client.call_async(request)
        if spin_until(node, future.done, min(attempt_s, max(0.1, deadline - time.monotonic())), step):
            return future.result()
        client.remove_pending_request(future)
    raise AssertionError(f"no answer from {client.srv_name} within {timeout_s} s")


def start_episode(node: Node, client, evaluation: bool = False, timeout_s: float = 60.0,
                  step: Callable[[], None] | None = None, retry_while: str = Services.START_NOT_READY):
    """StartEpisode, asked again while the refusal begins with `retry_while`: by default while the policy node's own
    inputs are not ready yet (e.g. before it has discovered perception). Returns the last response."""
    from sgft_msgs.srv import StartEpisode

    deadline = time.monotonic() + timeout_s
    while True:
        response = call(node, client, StartEpisode.Request(evaluation=evaluation), step=step)
        if response.accepted or not response.message.startswith(retry_while) or time.monotonic() > deadline:
            return response
        spin_until(node, lambda: False, 0.5, step)


@contextmanager
def scoped_endpoints(node: Node) -> Iterator[Node]:
    """Destroy the publishers, subscriptions and clients made on a shared node inside the block. A transient-local
    publisher left behind by one test (or a failed attempt before a rerun) replays its samples to the next test's
    nodes: a learner started by a rerun received the earlier attempts' transitions along with its own."""
    before = {id(e) for e in (*node.publishers, *node.subscriptions, *node.clients)}
    try:
        yield node
    finally:
        for pub in [p for p in node.publishers if id(p) not in before]:
            node.destroy_publisher(pub)
        for sub in [s for s in node.subscriptions if id(s) not in before]:
            node.destroy_subscription(sub)
        for client in [c for c in node.clients if id(c) not in before]:
            node.destroy_client(client)


def shared_node_fixtures(name: str):
    """`ros_node, ros = shared_node_fixtures("my_test")` in a test module: one rclpy context and node for the module
    (`ros_node`), handed to each test as `ros` with what the test made on it destroyed at its end."""

    @pytest.fixture(scope="module")
    def ros_node() -> Iterator[Node]:
        rclpy.init()
        node = rclpy.create_node(name)
        yield node
        node.destroy_node()
        rclpy.shutdown()

    @pytest.fixture()
    def ros(ros_node: Node) -> Iterator[Node]:
        with scoped_endpoints(ros_node) as node:
            yield node

    return ros_node, ros
