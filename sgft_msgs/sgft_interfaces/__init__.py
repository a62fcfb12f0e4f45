"""The graph's wiring, in one place: topic and service names and the QoS each one is published with.

Installed by the sgft_msgs package next to the generated interfaces, because names and QoS are as much a part of
the contract between our nodes as the message layouts. Every node imports its names and profiles from here;
parameters may rename a topic on a given robot (a controller's target topic, a camera's namespace).
The PointCloud2 codec (`sgft_interfaces.cloud`, numpy only, and `sgft_interfaces.pointcloud2`, the message side) is
here for the same reason: the simulated camera writes the layout the perception node reads.
"""

from sgft_interfaces.qos import (
    CLOCK_QOS,
    COMMAND_QOS,
    EPISODE_EVENT_QOS,
    ESTOP_QOS,
    POLICY_UPDATE_QOS,
    ROBOT_STATE_QOS,
    SENSOR_QOS,
    SERVICE_QOS,
    STATUS_QOS,
    TRANSITION_QOS,
)
from sgft_interfaces.topics import Services, Topics

__all__ = [
    "CLOCK_QOS",
    "COMMAND_QOS",
    "EPISODE_EVENT_QOS",
    "ESTOP_QOS",
    "POLICY_UPDATE_QOS",
    "ROBOT_STATE_QOS",
    "SENSOR_QOS",
    "SERVICE_QOS",
    "STATUS_QOS",
    "TRANSITION_QOS",
    "Services",
    "Topics",
]
