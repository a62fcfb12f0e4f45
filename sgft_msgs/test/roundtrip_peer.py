"""Echo peer for the DDS round-trip test: a separate process that sends every sgft_msgs message straight back.

Subscribes to /roundtrip/in/<Type>, republishes the received message on /roundtrip/out/<Type>, and serves every
sgft_msgs service on /roundtrip/<Srv>, answering with a response filled from the request by the test's rule
deterministically from the request (message_samples.response_for), so the test can check both directions.
"""

from __future__ import annotations

import sys

import rclpy
from message_samples import MESSAGE_TYPES, SERVICE_TYPES, response_for
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

import sgft_msgs.msg
import sgft_msgs.srv


class RoundtripPeer(Node):
    def __init__(self) -> None:
        super().__init__("roundtrip_peer")
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._keep = []
        for name in MESSAGE_TYPES:
            msg_type = getattr(sgft_msgs.msg, name)
            pub = self.create_publisher(msg_type, f"/roundtrip/out/{name}", qos)
            self._keep.append(self.create_subscription(msg_type, f"/roundtrip/in/{name}", pub.publish, qos))
            self._keep.append(pub)
        for name in SERVICE_TYPES:
            srv_type = getattr(sgft_msgs.srv, name)
            self._keep.append(self.create_service(srv_type, f"/roundtrip/{name}", self._answer(srv_type)))

    @staticmethod
    def _answer(srv_type):
        def callback(request, response):
            return response_for(srv_type, request)

        return callback


def main() -> None:
    rclpy.init()
    node = RoundtripPeer()
    print("roundtrip_peer ready", flush=True)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
