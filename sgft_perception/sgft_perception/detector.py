"""Object position from colored clouds: extrinsic transform, workspace crop, HSV threshold, robust position, fusion.

Pure numpy, no ROS. The order of the steps is chosen for speed on a 2-core CPU: a D455 cloud has ~400k points and
most of them (floor, table, walls, NaN pixels) lie outside the workspace box, so the box test runs first with cheap
float comparisons (NaN compares False, so invalid pixels fall out there for free), and the color conversion runs
only on the few thousand survivors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from transforms3d.quaternions import quat2mat

from sgft_interfaces.cloud import unpack_rgb


@dataclass(frozen=True)
class Extrinsic:
    """Pose of a camera's optical frame (x right, y down, z forward) in the robot base frame: p_base = R p_cam + t."""

    rotation: np.ndarray  # 3 x 3
    translation: np.ndarray  # 3

    @classmethod
    def from_xyz_quat(cls, translation: Sequence[float], quat_xyzw: Sequence[float]) -> Extrinsic:
        q = np.asarray(quat_xyzw, dtype=np.float64)
        norm = float(np.linalg.norm(q))
        if q.shape != (4,) or not np.isfinite(q).all() or abs(norm - 1.0) > 1e-3:
            raise ValueError(f"quaternion (x, y, z, w) must be 4 finite numbers of norm 1, got {list(q)}")
        x, y, z, w = q / norm
        rotation = quat2mat([w, x, y, z])  # transforms3d: w first
        return cls(rotation, _vector3(translation, "translation"))

    @classmethod
    def from_xyz_rpy(cls, translation: Sequence[float], rpy: Sequence[float]) -> Extrinsic:
        """Fixed-axis roll, pitch, yaw (radians) as in URDF: R = Rz(yaw) Ry(pitch) Rx(roll)."""
        roll, pitch, yaw = _vector3(rpy, "rpy")
        cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
        rotation = np.array([
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ])
        return cls(rotation, _vector3(translation, "translation"))

    @property
    def quaternion_xyzw(self) -> np.ndarray:
        """The rotation as a unit quaternion (x, y, z, w), w >= 0: what a calibration YAML stores."""
        m = self.rotation
        w = np.sqrt(max(0.0, 1 + m[0, 0] + m[1, 1] + m[2, 2])) / 2
        x = np.copysign(np.sqrt(max(0.0, 1 + m[0, 0] - m[1, 1] - m[2, 2])) / 2, m[2, 1] - m[1, 2])
        y = np.copysign(np.sqrt(max(0.0, 1 - m[0, 0] + m[1, 1] - m[2, 2])) / 2, m[0, 2] - m[2, 0])
        z = np.copysign(np.sqrt(max(0.0, 1 - m[0, 0] - m[1, 1] + m[2, 2])) / 2, m[1, 0] - m[0, 1])
        q = np.array([x, y, z, w])
        return q / np.linalg.norm(q)

    @property
    def matrix(self) -> np.ndarray:
        out = np.eye(4)
        out[:3, :3], out[:3, 3] = self.rotation, self.translation
        return out

    def apply(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, dtype=np.float64) @ self.rotation.T + self.translation


@dataclass(frozen=True)
class HsvRange:
    """Inclusive HSV thresholds: hue in degrees [0, 360), saturation and value in [0, 1].

    A hue range with hue_min > hue_max wraps through 0 (red: 340 .. 20).
    """

    hue_min: float
    hue_max: float
    sat_min: float = 0.0
    sat_max: float = 1.0
    val_min: float = 0.0
    val_max: float = 1.0

    def __post_init__(self):
        if not (0.0 <= self.hue_min < 360.0 and 0.0 <= self.hue_max < 360.0):
            raise ValueError(f"hue bounds must lie in [0, 360) degrees, got {self.hue_min}, {self.hue_max}")
        for lo, hi, name in ((self.sat_min, self.sat_max, "saturation"), (self.val_min, self.val_max, "value")):
            if not 0.0 <= lo <= hi <= 1.0:
                raise ValueError(f"{name} bounds must satisfy 0 <= min <= max <= 1, got {lo}, {hi}")

    def select(self, rgb: np.ndarray) -> np.ndarray:
        """Boolean mask of the N x 3 uint8 colors inside the range."""
        rgb = np.asarray(rgb, dtype=np.float32) * np.float32(1 / 255)
        high = rgb.max(axis=1)
        chroma = high - rgb.min(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            sat = np.where(high > 0, chroma / high, np.float32(0))
        mask = (high >= self.val_min) & (high <= self.val_max) & (sat >= self.sat_min) & (sat <= self.sat_max)
        # hue only for what passed saturation and value (usually a small part)
        idx = np.flatnonzero(mask)
        hue = hue_degrees(rgb[idx], high[idx], chroma[idx])
        if self.hue_min <= self.hue_max:
            keep = (hue >= self.hue_min) & (hue <= self.hue_max)
        else:
            keep = (hue >= self.hue_min) | (hue <= self.hue_max)
        mask[idx] = keep
        return mask


def hue_degrees(rgb: np.ndarray, high: np.ndarray | None = None, chroma: np.ndarray | None = None) -> np.ndarray:
    """Hue in degrees [0, 360) of N x 3 colors in [0, 1]; gray (zero chroma) gets hue 0."""
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    high = rgb.max(axis=1) if high is None else high
    chroma = high - rgb.min(axis=1) if chroma is None else chroma
    safe = np.where(chroma > 0, chroma, 1)
    hue = np.where(high == r, ((g - b) / safe) % 6, np.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4))
    return np.where(chroma > 0, hue * 60.0, 0.0) % 360.0


@dataclass(frozen=True)
class DetectorConfig:
    box_min: np.ndarray  # workspace box in the base frame, meters
    box_max: np.ndarray
    hsv: HsvRange
    min_points: int = 30  # fewer selected points than this: occluded / absent, no position
    expected_points: int = 400  # points one camera sees of the unoccluded object: confidence = found / expected
    cluster_cell: float = 0.02  # xy grid cell (m) whose densest cell seeds the object cluster
    cluster_radius: float = 0.05  # points farther than this (xy, m) from the seed are not the object
    top_band: float = 0.005  # xy from the points within this band below the object's top (0: all points)
    position_offset: np.ndarray = field(default_factory=lambda: np.zeros(3))  # top surface -> reported point

    def __post_init__(self):
        lo, hi = _vector3(self.box_min, "box_min"), _vector3(self.box_max, "box_max")
        if not (lo < hi).all():
            raise ValueError(f"workspace box needs box_min < box_max on every axis, got {lo} and {hi}")
        if self.min_points < 1 or self.expected_points < 1:
            raise ValueError(f"min_points and expected_points must be >= 1, got {self.min_points}, "
                             f"{self.expected_points}")
        if not (self.cluster_cell > 0 and self.cluster_radius > 0 and self.top_band >= 0):
            raise ValueError("cluster_cell and cluster_radius must be > 0 and top_band >= 0")
        object.__setattr__(self, "box_min", lo)
        object.__setattr__(self, "box_max", hi)
        object.__setattr__(self, "position_offset", _vector3(self.position_offset, "position_offset"))


@dataclass(frozen=True)
class CameraResult:
    """What one cloud says about the object. `position` is None when `reason` says why there is none."""

    points: np.ndarray  # M x 3 float32, base frame: the object's points (the debug cloud)
    colors: np.ndarray  # M x 3 uint8
    num_in_box: int
    position: np.ndarray | None
    reason: str = ""

    @property
    def valid(self) -> bool:
        return self.position is not None


@dataclass(frozen=True)
class Detection:
    valid: bool
    position: np.ndarray  # 3, base frame; NaN when invalid (never a made-up value)
    num_points: int
    confidence: float
    num_cameras: int  # cameras that contributed points
    reason: str = ""


def crop_to_box(view: np.ndarray, extrinsic: Extrinsic, box_min: np.ndarray,
                box_max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Base-frame N x 3 float32 positions of the points of a cloud view inside the box, and their indices in it.

    The base-frame height is tested first, on all points, straight from the strided x/y/z views (no copy): over a
    table the table top, the floor and the walls (most of the image) fail it, so x and y are computed only for the
    few survivors. NaN/Inf points fail every comparison and fall out here.
    """
    x, y, z = view["x"], view["y"], view["z"]
    rot = extrinsic.rotation.astype(np.float32)
    trans = extrinsic.translation.astype(np.float32)
    lo, hi = np.asarray(box_min, np.float32), np.asarray(box_max, np.float32)
    height = x * rot[2, 0]
    tmp = y * rot[2, 1]
    height += tmp
    np.multiply(z, rot[2, 2], out=tmp)
    height += tmp  # without the translation: it moves into the bounds, one pass fewer over 400k points
    keep = height >= lo[2] - trans[2]
    keep &= height <= hi[2] - trans[2]
    idx = np.flatnonzero(keep)
    xs, ys, zs = x[idx], y[idx], z[idx]
    base = np.empty((len(idx), 3), dtype=np.float32)
    base[:, 2] = height[idx] + trans[2]
    inside = np.ones(len(idx), dtype=bool)
    for axis in (0, 1):
        value = xs * rot[axis, 0] + ys * rot[axis, 1] + zs * rot[axis, 2] + trans[axis]
        inside &= (value >= lo[axis]) & (value <= hi[axis])
        base[:, axis] = value
    return base[inside], idx[inside]


def robust_position(points: np.ndarray, cell: float, radius: float, top_band: float) -> tuple[np.ndarray, np.ndarray]:
    """Position of the largest blob among the selected points, and the mask of the points that belong to it.

    Mode seeking instead of a mean: the densest xy grid cell seeds the cluster, points within `radius` (xy) of the
    seed cell's median form it, so a second same-colored blob or stray pixels (edge "flying pixels" of a depth
    camera) do not pull the result. Seen from an angle, a plain median is pulled toward the camera by the visible
    side faces (up to 2 cm for a 3 cm puck seen from the side) and by perspective (the near half of the object gets
    more pixels), so with `top_band` > 0 the xy position is the center of the 1st..99th percentile extent of the
    cluster's top surface and z the top's median height. The top surface is the densest `top_band`-thick height band
    (the highest such band on a tie), not the highest points: pixels on an object edge in front of a taller one (the
    push finger behind the puck) mix the two colors and take the taller one's depth, so a few object-colored points
    sit centimetres above and toward the camera; taken as the top they moved the position by 3–4 cm.
    With `top_band` = 0 it is the per-axis median of the whole cluster.
    """
    keys = np.floor(points[:, :2] / cell).astype(np.int64)
    flat = keys[:, 0] * 1_000_003 + keys[:, 1]
    uniq, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    seed = np.median(points[inverse == np.argmax(counts), :2], axis=0)
    member = ((points[:, :2] - seed) ** 2).sum(axis=1) <= radius * radius
    cluster = points[member]
    if top_band > 0:
        heights = np.sort(cluster[:, 2])
        # points in (z − top_band, z] for each height z as the band's upper edge; argmax of the reversed counts picks
        # the highest of the densest bands
        counts = np.searchsorted(heights, heights, side="right") - np.searchsorted(heights, heights - top_band,
                                                                                    side="right")
        upper = heights[len(heights) - 1 - np.argmax(counts[::-1])]
        top = cluster[(cluster[:, 2] > upper - top_band) & (cluster[:, 2] <= upper)]
        lo, hi = np.percentile(top[:, :2], [1, 99], axis=0)
        xy = (lo + hi) / 2
        z = np.median(top[:, 2])
    else:
        xy, z = np.median(cluster[:, :2], axis=0), np.median(cluster[:, 2])
    return np.array([xy[0], xy[1], z], dtype=np.float64), member


def detect_in_cloud(view: np.ndarray, extrinsic: Extrinsic, config: DetectorConfig) -> CameraResult:
    """One camera's cloud (a view from cloud.cloud_view) -> the object's points and position in the base frame."""
    points, idx = crop_to_box(view, extrinsic, config.box_min, config.box_max)
    empty3 = np.empty((0, 3), dtype=np.float32)
    if len(idx) == 0:
        reason = "empty cloud" if view.shape[0] == 0 else "no points inside the workspace box"
        return CameraResult(empty3, np.empty((0, 3), np.uint8), 0, None, reason)
    colors = unpack_rgb(view["rgb"][idx])
    selected = config.hsv.select(colors)
    points, colors = points[selected], colors[selected]
    if len(points) < config.min_points:
        return CameraResult(points, colors, len(idx), None,
                            f"occluded or absent: {len(points)} object-colored points < min_points {config.min_points}")
    position, member = robust_position(points, config.cluster_cell, config.cluster_radius, config.top_band)
    points, colors = points[member], colors[member]
    if len(points) < config.min_points:
        return CameraResult(points, colors, len(idx), None,
                            f"occluded or absent: largest cluster has {len(points)} points < {config.min_points}")
    return CameraResult(points, colors, len(idx), position + config.position_offset)


def fuse(results: Sequence[CameraResult], config: DetectorConfig, num_cameras: int | None = None) -> Detection:
    """Combine the newest result of each camera: point-count weighted mean of the valid cameras' positions.

    Weighting by count trusts the camera that sees more of the object; a camera that sees too little is left out
    entirely rather than averaged in. Confidence is the found fraction of what all configured cameras should see.
    """
    num_cameras = len(results) if num_cameras is None else num_cameras
    valid = [r for r in results if r.valid]
    nan3 = np.full(3, np.nan)
    if not results:
        return Detection(False, nan3, 0, 0.0, 0, "no camera cloud received yet")
    if not valid:
        reason = "; ".join(r.reason for r in results)
        return Detection(False, nan3, 0, 0.0, 0, reason)
    counts = np.array([len(r.points) for r in valid], dtype=np.float64)
    position = (np.stack([r.position for r in valid]) * counts[:, None]).sum(axis=0) / counts.sum()
    total = int(counts.sum())
    confidence = min(1.0, total / (config.expected_points * max(num_cameras, 1)))
    return Detection(True, position, total, confidence, len(valid))


def _vector3(value: Sequence[float], name: str) -> np.ndarray:
    out = np.asarray(value, dtype=np.float64)
    if out.shape != (3,) or not np.isfinite(out).all():
        raise ValueError(f"{name} must be 3 finite numbers, got {list(np.atleast_1d(out))}")
    return out
