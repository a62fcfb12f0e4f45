"""Colored point clouds as numpy arrays, read by the fields' declared offsets and datatypes. No ROS import.

A sensor_msgs/PointCloud2 is a byte buffer plus a description of it (fields with offset and datatype, point_step,
row_step, width, height, is_bigendian). realsense2_camera 4.x sends x, y, z float32 at 0/4/8 and `rgb` (float32 whose
bits are 0x00RRGGBB) at 16 with point_step 20, but other drivers and versions pad differently, so nothing here
assumes a layout: a numpy structured dtype is built from the message's own description and laid over the buffer
without copying (strided views), and every inconsistency raises CloudFormatError instead of reading garbage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# sensor_msgs/PointField datatype constants -> numpy type code (byte order added per message)
POINT_FIELD_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)

XYZ_TYPES = (FLOAT32, FLOAT64)
# the packed color is 4 bytes; realsense declares it FLOAT32, PCL tools often UINT32; we only reinterpret its bits
RGB_TYPES = (FLOAT32, UINT32, INT32)
RGB_NAMES = ("rgb", "rgba")


class CloudFormatError(ValueError):
    """The cloud's bytes do not match its declared layout. `kind` is a short stable label, used to count rejections."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass(frozen=True)
class Field:
    """One sensor_msgs/PointField: name, byte offset inside a point, datatype constant, element count."""

    name: str
    offset: int
    datatype: int
    count: int = 1


@dataclass(frozen=True)
class CloudLayout:
    """Everything of a PointCloud2 except its bytes and header."""

    fields: tuple[Field, ...]
    point_step: int
    row_step: int
    width: int
    height: int
    is_bigendian: bool = False

    @property
    def num_points(self) -> int:
        return self.width * self.height


# The layout realsense2_camera 4.x publishes; the simulated camera uses it too.
REALSENSE_FIELDS = (Field("x", 0, FLOAT32), Field("y", 4, FLOAT32), Field("z", 8, FLOAT32), Field("rgb", 16, FLOAT32))
REALSENSE_POINT_STEP = 20


def _field_dtype(field: Field, kind: str, allowed: Sequence[int], byteorder: str) -> np.dtype:
    if field.datatype not in allowed:
        raise CloudFormatError("bad_datatype", f"field {field.name!r} has datatype {field.datatype}, expected one of "
                               f"{list(allowed)} (sensor_msgs/PointField constants)")
    if field.count != 1:  # x, y, z and the packed color are scalars; an array field would be read as its first item
        raise CloudFormatError("bad_count", f"field {field.name!r} has count {field.count}, expected 1")
    code = "u4" if kind == "rgb" else POINT_FIELD_TYPES[field.datatype]
    return np.dtype(byteorder + code)


def cloud_view(data: bytes | bytearray | memoryview, layout: CloudLayout, require_rgb: bool = True) -> np.ndarray:
    """A 1-D structured array with fields x, y, z (float) and rgb (uint32 bits) over `data`, without copying.

    Raises CloudFormatError when a required field is missing, a datatype is unsupported, a field does not fit in
    point_step, row_step is shorter than a row, or the data length is not row_step * height. An empty cloud
    (width or height 0) with a consistent layout gives an empty array.
    """
    by_name: dict[str, Field] = {}
    for field in layout.fields:
        if field.name in by_name:
            raise CloudFormatError("duplicate_field", f"field {field.name!r} is declared twice")
        by_name[field.name] = field
    # No supported driver sends big-endian clouds, and every host here is little-endian: such a flag is refused rather
    # than trusted to describe bytes nobody has produced.
    if layout.is_bigendian:
        raise CloudFormatError("big_endian", "is_bigendian is set; clouds are expected little-endian")
    byteorder = "<"
    names, formats, offsets = [], [], []
    for name in ("x", "y", "z"):
        if name not in by_name:
            raise CloudFormatError("missing_field", f"no {name!r} field (fields: {sorted(by_name)})")
        formats.append(_field_dtype(by_name[name], "xyz", XYZ_TYPES, byteorder))
        names.append(name)
        offsets.append(by_name[name].offset)
    colors = [n for n in RGB_NAMES if n in by_name]
    if len(colors) > 1:
        raise CloudFormatError("ambiguous_color", f"both {' and '.join(colors)} fields: which one is the color?")
    rgb_field = by_name[colors[0]] if colors else None
    if rgb_field is None and require_rgb:
        raise CloudFormatError("missing_field", f"no 'rgb' field (fields: {sorted(by_name)}); is the cloud colored?")
    if rgb_field is not None:
        formats.append(_field_dtype(rgb_field, "rgb", RGB_TYPES, byteorder))
        names.append("rgb")
        offsets.append(rgb_field.offset)

    point_step, row_step, width, height = layout.point_step, layout.row_step, layout.width, layout.height
    if width < 0 or height < 0:
        raise CloudFormatError("bad_dimensions", f"width {width} x height {height}")
    if point_step <= 0:
        raise CloudFormatError("bad_point_step", f"point_step {point_step} must be positive")
    for name, fmt, offset in zip(names, formats, offsets):
        if offset < 0 or offset + fmt.itemsize > point_step:
            raise CloudFormatError("bad_point_step", f"field {name!r} at offset {offset} ({fmt.itemsize} bytes) "
                                   f"does not fit in point_step {point_step}")
    if height > 0 and width > 0 and row_step < width * point_step:
        raise CloudFormatError("bad_row_step", f"row_step {row_step} < width {width} * point_step {point_step}")
    expected = row_step * height
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "too long"
        raise CloudFormatError("bad_data_length", f"data is {len(data)} bytes, {what}: row_step {row_step} * "
                               f"height {height} = {expected}")

    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})
    if width * height == 0:
        return np.empty(0, dtype=dtype)
    grid = np.ndarray(shape=(height, width), dtype=dtype, buffer=data, strides=(row_step, point_step))
    return grid.reshape(-1)  # a view when rows are unpadded (the usual case), a copy otherwise


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """uint32 0x00RRGGBB (any byte order already resolved by the dtype) -> N x 3 uint8."""
    packed = np.asarray(packed, dtype=np.uint32)
    rgb = np.empty((packed.shape[0], 3), dtype=np.uint8)
    rgb[:, 0] = packed >> 16
    rgb[:, 1] = packed >> 8
    rgb[:, 2] = packed
    return rgb


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """N x 3 uint8 -> uint32 0x00RRGGBB (what the rgb field's bits hold)."""
    rgb = np.asarray(rgb, dtype=np.uint32)
    return (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]


def xyz_of(view: np.ndarray) -> np.ndarray:
    """N x 3 float32 positions of a cloud view (a copy: the fields are strided in the buffer)."""
    xyz = np.empty((view.shape[0], 3), dtype=np.float32)
    xyz[:, 0], xyz[:, 1], xyz[:, 2] = view["x"], view["y"], view["z"]
    return xyz


def parse_cloud(data: bytes | bytearray | memoryview, layout: CloudLayout) -> tuple[np.ndarray, np.ndarray]:
    """All finite points of a colored cloud: (xyz N x 3 float32, rgb N x 3 uint8). NaN/Inf points are dropped.

    Depth cameras mark pixels without depth as NaN; they must never reach a median or a mean.
    """
    view = cloud_view(data, layout, require_rgb=True)
    xyz = xyz_of(view)
    finite = np.isfinite(xyz).all(axis=1)
    return xyz[finite], unpack_rgb(view["rgb"][finite])


def build_cloud_bytes(xyz: np.ndarray, rgb: np.ndarray) -> bytes:
    """Serialize points in the realsense layout (x, y, z float32 at 0/4/8, rgb float32 bits at 16, point_step 20)."""
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or np.shape(rgb) != xyz.shape:
        raise ValueError(f"xyz and rgb must both be N x 3, got {xyz.shape} and {np.shape(rgb)}")
    dtype = np.dtype({"names": ["x", "y", "z", "rgb"], "formats": ["<f4", "<f4", "<f4", "<u4"],
                      "offsets": [0, 4, 8, 16], "itemsize": REALSENSE_POINT_STEP})
    out = np.zeros(xyz.shape[0], dtype=dtype)  # zeros: the 4 padding bytes are deterministic
    out["x"], out["y"], out["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    out["rgb"] = pack_rgb(rgb)
    return out.tobytes()
