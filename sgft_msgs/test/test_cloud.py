"""Parsing by the fields' declared offsets and datatypes; every malformed layout raises CloudFormatError."""

import numpy as np
import pytest

from sgft_interfaces.cloud import (
    FLOAT32,
    FLOAT64,
    INT16,
    REALSENSE_FIELDS,
    UINT32,
    CloudFormatError,
    CloudLayout,
    Field,
    build_cloud_bytes,
    cloud_view,
    pack_rgb,
    parse_cloud,
)

RNG = np.random.default_rng(7)
XYZ = RNG.normal(size=(50, 3)).astype(np.float32)
RGB = RNG.integers(0, 256, size=(50, 3)).astype(np.uint8)


def realsense(xyz=XYZ, rgb=RGB):
    return build_cloud_bytes(xyz, rgb), CloudLayout(REALSENSE_FIELDS, 20, 20 * len(xyz), len(xyz), 1)


def custom_layout(xyz, rgb, offsets, point_step, xyz_type="<f4", rgb_type="<u4", rgb_datatype=FLOAT32,
                  xyz_datatype=FLOAT32, height=1, row_pad=0, bigendian=False):
    """Bytes of an arbitrary layout, written independently of the parser (field by field into a zeroed buffer)."""
    n = len(xyz)
    width = n // height
    row_step = width * point_step + row_pad
    buf = np.full(row_step * height, 0xAB, dtype=np.uint8)  # padding bytes are garbage on purpose
    for i in range(n):
        row, col = divmod(i, width)
        base = row * row_step + col * point_step
        for axis, name in enumerate("xyz"):
            raw = np.array([xyz[i, axis]], dtype=xyz_type).tobytes()
            buf[base + offsets[name]: base + offsets[name] + len(raw)] = np.frombuffer(raw, np.uint8)
        raw = np.array([pack_rgb(rgb[i:i + 1])[0]], dtype=rgb_type).tobytes()
        buf[base + offsets["rgb"]: base + offsets["rgb"] + 4] = np.frombuffer(raw, np.uint8)
    fields = (Field("rgb", offsets["rgb"], rgb_datatype), Field("z", offsets["z"], xyz_datatype),
              Field("intensity", offsets.get("intensity", 0), FLOAT32),
              Field("x", offsets["x"], xyz_datatype), Field("y", offsets["y"], xyz_datatype))
    return buf.tobytes(), CloudLayout(fields, point_step, row_step, width, height, bigendian)


def test_realsense_layout_round_trip():
    xyz, rgb = parse_cloud(*realsense())
    np.testing.assert_array_equal(xyz, XYZ)
    np.testing.assert_array_equal(rgb, RGB)


@pytest.mark.parametrize("kwargs", [
    dict(offsets={"rgb": 0, "z": 4, "x": 12, "y": 20, "intensity": 24}, point_step=32),
    dict(offsets={"rgb": 28, "z": 16, "x": 0, "y": 8}, point_step=36, xyz_type="<f8", xyz_datatype=FLOAT64,
         rgb_datatype=UINT32),
    dict(offsets={"x": 0, "y": 4, "z": 8, "rgb": 16}, point_step=20, height=5, row_pad=12),
])
def test_other_layouts_give_the_same_points(kwargs):
    data, layout = custom_layout(XYZ, RGB, **kwargs)
    xyz, rgb = parse_cloud(data, layout)
    np.testing.assert_array_equal(xyz, XYZ)
    np.testing.assert_array_equal(rgb, RGB)


def test_nan_and_inf_points_are_dropped():
    xyz = XYZ.copy()
    xyz[3, 0], xyz[10, 2], xyz[20] = np.nan, np.inf, -np.inf
    out_xyz, out_rgb = parse_cloud(*realsense(xyz))
    keep = np.ones(len(xyz), bool)
    keep[[3, 10, 20]] = False
    np.testing.assert_array_equal(out_xyz, XYZ[keep])
    np.testing.assert_array_equal(out_rgb, RGB[keep])


def test_empty_cloud_is_not_an_error():
    xyz, rgb = parse_cloud(b"", CloudLayout(REALSENSE_FIELDS, 20, 0, 0, 1))
    assert xyz.shape == (0, 3) and rgb.shape == (0, 3)


def test_view_does_not_copy_the_buffer():
    data, layout = realsense()
    view = cloud_view(data, layout)
    assert not view.flags.owndata and np.shares_memory(view, np.frombuffer(data, np.uint8))


def _with_fields(fields, **changes):
    data, layout = realsense()
    values = dict(fields=fields, point_step=layout.point_step, row_step=layout.row_step, width=layout.width,
                  height=layout.height)
    values.update(changes)
    return data, CloudLayout(**values)


FX, FY, FZ, FRGB = REALSENSE_FIELDS
MALFORMED = {
    "missing x": (_with_fields((FY, FZ, FRGB)), "missing_field"),
    "missing rgb": (_with_fields((FX, FY, FZ)), "missing_field"),
    "point_step smaller than the fields": (_with_fields(REALSENSE_FIELDS, point_step=16, row_step=16 * 50),
                                           "bad_point_step"),
    "zero point_step": (_with_fields(REALSENSE_FIELDS, point_step=0), "bad_point_step"),
    "unsupported datatype": (_with_fields((Field("x", 0, INT16), FY, FZ, FRGB)), "bad_datatype"),
    "unknown datatype": (_with_fields((FX, FY, FZ, Field("rgb", 16, 42))), "bad_datatype"),
    "negative offset": (_with_fields((Field("x", -4, FLOAT32), FY, FZ, FRGB)), "bad_point_step"),
    "row_step shorter than a row": (_with_fields(REALSENSE_FIELDS, row_step=20 * 49), "bad_row_step"),
    "width larger than the data": (_with_fields(REALSENSE_FIELDS, width=51, row_step=20 * 51), "bad_data_length"),
    "height larger than the data": (_with_fields(REALSENSE_FIELDS, height=2), "bad_data_length"),
    "duplicate field": (_with_fields((FX, FY, FZ, FRGB, FX)), "duplicate_field"),
    "array field": (_with_fields((Field("x", 0, FLOAT32, 2), FY, FZ, FRGB)), "bad_count"),
    "zero count": (_with_fields((FX, FY, FZ, Field("rgb", 16, FLOAT32, 0))), "bad_count"),
    "rgb and rgba": (_with_fields((FX, FY, FZ, FRGB, Field("rgba", 12, FLOAT32))), "ambiguous_color"),
    "big-endian flag": (_with_fields(REALSENSE_FIELDS, is_bigendian=True), "big_endian"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_layouts_raise(case):
    (data, layout), kind = MALFORMED[case]
    with pytest.raises(CloudFormatError) as err:
        parse_cloud(data, layout)
    assert err.value.kind == kind


@pytest.mark.parametrize("cut", [1, 7, 20])
def test_truncated_and_overlong_data_raise(cut):
    data, layout = realsense()
    for wrong in (data[:-cut], data + b"\0" * cut):
        with pytest.raises(CloudFormatError, match="bad_data_length"):
            parse_cloud(wrong, layout)
