"""The controller's target topic, as the policy node publishes it.

crisp_controllers' Cartesian impedance controller ignores its target topic while more than one node publishes on it
(the reset server homes the arm on the same topic between episodes). With `per_episode` the policy's publisher exists
only while an episode runs: created at the start, destroyed a moment after the episode's end (its last message, a
stop's hold target, must reach the controller first). Other controllers keep one publisher for the node's life.
"""

from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import QoSProfile

# A reliable publisher destroyed right after its last message may never deliver it: wait this long first (s).
CLOSE_DELAY_S = 0.5


class CommandOutput:
    def __init__(self, node: Node, msg_type: type, topic: str, qos: QoSProfile, per_episode: bool) -> None:
        self.node, self.msg_type, self.topic, self.qos, self.per_episode = node, msg_type, topic, qos, per_episode
        self.publisher = None if per_episode else node.create_publisher(msg_type, topic, qos)
        self.close_timer = None

    def open(self) -> None:
        """At an episode's start."""
        self._cancel_close()
        if self.publisher is None:
            self.publisher = self.node.create_publisher(self.msg_type, self.topic, self.qos)

    def close(self) -> None:
        """At an episode's end: the publisher goes after CLOSE_DELAY_S (per_episode only)."""
        if self.per_episode and self.publisher is not None and self.close_timer is None:
            self.close_timer = self.node.create_timer(CLOSE_DELAY_S, self._destroy)

    def publish(self, msg) -> bool:
        """False when there is no publisher (between episodes with per_episode): nothing sent."""
        if self.publisher is None:
            return False
        self.publisher.publish(msg)
        return True

    def _destroy(self) -> None:
        self._cancel_close()
        if self.publisher is not None:
            self.node.destroy_publisher(self.publisher)
            self.publisher = None

    def _cancel_close(self) -> None:
        if self.close_timer is not None:
            self.node.destroy_timer(self.close_timer)
            self.close_timer = None
