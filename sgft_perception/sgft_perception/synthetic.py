"""Synthetic depth-camera clouds of a puck on a table, for the benchmark and the tests. Pure numpy.

A pinhole camera (D455-like field of view) ray-casts a scene in the robot base frame: a table top at z = 0 with a
wooden color, a red cylinder (the puck) standing on it, and the floor below the table edge. Like a real depth
image, a fraction of pixels has no depth (NaN) and depth has a little noise along the ray. The cloud comes back in
the camera's optical frame (x right, y down, z forward), ordered row-major like the realsense cloud.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sgft_perception.detector import Extrinsic

PUCK_RGB = (200, 25, 30)
TABLE_RGB = (160, 125, 90)
FLOOR_RGB = (90, 90, 95)


def look_at(eye: Sequence[float], target: Sequence[float]) -> Extrinsic:
    """Extrinsic of an optical frame at `eye` looking at `target` (base z up, image x to the right)."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return Extrinsic(np.stack([right, down, forward], axis=1), eye)


@dataclass(frozen=True)
class PuckScene:
    puck_center: tuple[float, float] = (0.5, 0.05)  # base-frame xy of the puck's axis, m
    puck_radius: float = 0.03
    puck_height: float = 0.02
    table_min: tuple[float, float] = (-0.3, -0.7)  # table top extent (xy, m) at z = 0
    table_max: tuple[float, float] = (1.1, 0.7)
    floor_z: float = -0.75
    nan_fraction: float = 0.05  # depth holes
    depth_noise: float = 0.0005  # m, along the ray


def render_cloud(scene: PuckScene, camera: Extrinsic, width: int = 848, height: int = 480, hfov_deg: float = 87.0,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(xyz N x 3 float32 in the optical frame with NaN holes, rgb N x 3 uint8), N = width * height."""
    rng = np.random.default_rng(seed)
    f = width / 2 / np.tan(np.radians(hfov_deg) / 2)
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    rays_cam = np.stack([(u.ravel() - width / 2) / f, (v.ravel() - height / 2) / f, np.ones(u.size)], axis=1)
    d = rays_cam @ camera.rotation.T  # base-frame directions; the camera-frame z of a ray point is its parameter s
    o = camera.translation
    dist = np.full(len(d), np.inf)
    color = np.zeros((len(d), 3), dtype=np.uint8)

    def hit(s: np.ndarray, ok: np.ndarray, rgb: tuple[int, int, int]):
        closer = ok & (s > 0) & (s < dist)
        dist[closer] = s[closer]
        color[closer] = rgb

    with np.errstate(divide="ignore", invalid="ignore"):
        for plane_z, rgb, on_table in ((0.0, TABLE_RGB, True), (scene.floor_z, FLOOR_RGB, False)):
            s = (plane_z - o[2]) / d[:, 2]
            p = o + s[:, None] * d
            inside = ((p[:, 0] >= scene.table_min[0]) & (p[:, 0] <= scene.table_max[0])
                      & (p[:, 1] >= scene.table_min[1]) & (p[:, 1] <= scene.table_max[1]))
            hit(s, inside if on_table else ~inside, rgb)
        c = np.asarray(scene.puck_center, float)
        r, h = scene.puck_radius, scene.puck_height
        s = (h - o[2]) / d[:, 2]  # top disk
        p = o + s[:, None] * d
        hit(s, ((p[:, :2] - c) ** 2).sum(axis=1) <= r * r, PUCK_RGB)
        oc = o[:2] - c  # side: |oc + s d_xy|^2 = r^2, nearer root
        a = (d[:, :2] ** 2).sum(axis=1)
        b = 2 * d[:, :2] @ oc
        disc = b * b - 4 * a * (oc @ oc - r * r)
        s = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
        z = o[2] + s * d[:, 2]
        hit(s, (disc >= 0) & (z >= 0) & (z <= h), PUCK_RGB)

    dist += rng.normal(0, scene.depth_noise, len(dist))
    xyz = (rays_cam * dist[:, None]).astype(np.float32)
    xyz[~np.isfinite(dist) | (rng.random(len(dist)) < scene.nan_fraction)] = np.nan
    noise = rng.integers(-12, 13, size=color.shape)
    rgb = np.clip(color.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return xyz, rgb
