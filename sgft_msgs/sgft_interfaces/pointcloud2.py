"""sensor_msgs/PointCloud2 <-> numpy without sensor_msgs_py (which is not on PyPI).

Reading goes through cloud.cloud_view, which honors the message's own field offsets, datatypes, point_step and
row_step. Building writes the realsense2_camera layout (x, y, z float32 at 0/4/8, rgb float32 bits at 16, point_step
20), which the simulated camera publishes and the perception node's debug cloud uses.
"""

from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from sgft_interfaces.cloud import (
    REALSENSE_FIELDS,
    REALSENSE_POINT_STEP,
    CloudLayout,
    Field,
    build_cloud_bytes,
    cloud_view,
    parse_cloud,
)


def layout_of(msg: PointCloud2) -> CloudLayout:
    fields = tuple(Field(f.name, int(f.offset), int(f.datatype), int(f.count)) for f in msg.fields)
    return CloudLayout(fields, int(msg.point_step), int(msg.row_step), int(msg.width), int(msg.height),
                       bool(msg.is_bigendian))


def _buffer(msg: PointCloud2) -> memoryview:
    # rclpy hands uint8[] over as array.array('B'): its buffer is read in place, never copied or iterated
    return memoryview(msg.data).cast("B")


def view_of(msg: PointCloud2, require_rgb: bool = True) -> np.ndarray:
    """Structured x, y, z, rgb view over the message's bytes (see cloud.cloud_view); raises CloudFormatError."""
    return cloud_view(_buffer(msg), layout_of(msg), require_rgb=require_rgb)


def to_arrays(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray]:
    """(xyz N x 3 float32, rgb N x 3 uint8) of the finite points; raises CloudFormatError."""
    return parse_cloud(_buffer(msg), layout_of(msg))


def build_pointcloud2(xyz: np.ndarray, rgb: np.ndarray, frame_id: str, stamp: Time | None = None,
                      height: int = 1) -> PointCloud2:
    """A colored cloud in the realsense layout. height 1 (the default) is unordered, as realsense2_camera sends it;
    height > 1 lays the points out row-major as an organized image of that many rows."""
    n = int(np.shape(xyz)[0])
    if height < 1 or n % height:
        raise ValueError(f"{n} points do not fill {height} rows")
    width = n // height
    msg = PointCloud2()
    msg.header = Header(frame_id=frame_id, stamp=stamp if stamp is not None else Time())
    msg.height, msg.width = (height, width) if n else (1, 0)
    msg.fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                  for f in REALSENSE_FIELDS]
    msg.is_bigendian = False
    msg.point_step = REALSENSE_POINT_STEP
    msg.row_step = REALSENSE_POINT_STEP * msg.width
    msg.data = array.array("B", build_cloud_bytes(xyz, rgb))  # array.array: the setter takes it without a check loop
    msg.is_dense = bool(np.isfinite(xyz).all())
    return msg
