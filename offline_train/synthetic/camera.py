"""Pinhole camera over the synthetic ground plane: 3D boxes -> image boxes, and which boxes a viewer would see.

World frame (metres): x to the right, y up (y = 0 is the ground or water surface), z forward along the ground.
The camera sits at (0, ``height``, 0), looks along +z tilted down by ``pitch_deg``, no roll. Image frame: pixels,
origin top-left, u right, v down; boxes are ``xyxy`` float32.

Visibility (what an annotator would box), applied in this order per frame:

1. behind the camera: any corner of the 3D box nearer than ``NEAR_M`` along the optical axis -> absent;
2. the projected box is clipped to the image; absent when less than ``MIN_INSIDE_FRACTION`` of its area is inside
   or a clipped side is shorter than ``MIN_SIDE_PX``;
3. occlusion: absent when at least ``OCCLUDED_FRACTION`` of the clipped box is covered by the clipped boxes of
   visible objects whose 3D centre is nearer to the camera (measured on a ``GRID`` x ``GRID`` sample grid).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NEAR_M = 0.05               # m; closer corners mean the object passes beside or behind the camera
MIN_INSIDE_FRACTION = 0.25  # of the unclipped box area
MIN_SIDE_PX = 4.0           # px; smaller boxes are too small to annotate
OCCLUDED_FRACTION = 0.7     # of the clipped box area covered by nearer visible boxes
GRID = 6                    # occlusion sample grid per box side


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics and pose. width/height: image size, px. focal_px: focal length, px (principal point = centre).

    height_m: camera height above the ground, m. pitch_deg: downward tilt, degrees (0 = horizontal).
    """

    width: int = 640
    height: int = 480
    focal_px: float = 500.0
    height_m: float = 1.6
    pitch_deg: float = 5.0

    def __post_init__(self):
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera width/height must be positive, got {self.width}x{self.height}")
        if self.focal_px <= 0:
            raise ValueError(f"camera focal_px must be positive, got {self.focal_px}")
        if self.height_m <= 0:
            raise ValueError(f"camera height_m must be positive, got {self.height_m}")
        if not -45.0 < self.pitch_deg < 60.0:
            raise ValueError(f"camera pitch_deg must be in (-45, 60), got {self.pitch_deg}")

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points (x, y, z), m -> (..., 3) camera coordinates (right, down, forward), m."""
        p = np.asarray(points, dtype=np.float64)
        th = math.radians(self.pitch_deg)
        x, y, z = p[..., 0], p[..., 1] - self.height_m, p[..., 2]
        down = -y * math.cos(th) - z * math.sin(th)
        fwd = -y * math.sin(th) + z * math.cos(th)
        return np.stack([x, down, fwd], axis=-1)

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (..., 2) pixel coordinates (u, v). Points must be in front of the camera."""
        c = self.to_camera(points)
        return np.stack([self.focal_px * c[..., 0] / c[..., 2] + 0.5 * self.width,
                         self.focal_px * c[..., 1] / c[..., 2] + 0.5 * self.height], axis=-1)

    def half_width_at(self, depth: float) -> float:
        """Half the horizontal extent (m) of the view at ``depth`` m along the optical axis."""
        return depth * 0.5 * self.width / self.focal_px


def box_corners(pos: np.ndarray, extent: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Corners of upright 3D boxes.

    pos:     (..., 3) (x, base altitude y, z) of the footprint centre at the box's bottom, m.
    extent:  (..., 3) (width, height, length), m.
    heading: (...,) yaw of the length axis in the ground plane, rad (0 = +x, pi/2 = +z).
    Returns (..., 8, 3) world points.
    """
    c, s = np.cos(heading)[..., None], np.sin(heading)[..., None]
    sl = np.array([1, 1, -1, -1, 1, 1, -1, -1], np.float64)   # along the length axis
    sw = np.array([1, -1, 1, -1, 1, -1, 1, -1], np.float64)   # across
    up = np.array([0, 0, 0, 0, 1, 1, 1, 1], np.float64)
    hl, hw, h = 0.5 * extent[..., 2:3], 0.5 * extent[..., 0:1], extent[..., 1:2]
    x = pos[..., 0:1] + sl * hl * c - sw * hw * s
    z = pos[..., 2:3] + sl * hl * s + sw * hw * c
    y = pos[..., 1:2] + up * h
    return np.stack([x, y, z], axis=-1)


def project_boxes(cam: PinholeCamera, pos: np.ndarray, extent: np.ndarray, heading: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project upright 3D boxes (shapes as in ``box_corners``, leading dims (T, K)).

    Returns ``boxes`` (T, K, 4) float64 unclipped xyxy px (NaN where a corner is behind ``NEAR_M``),
    ``depth`` (T, K) float64 forward camera coordinate of the 3D box centre, m, and ``in_front`` (T, K) bool.
    """
    corners = box_corners(pos, extent, heading)                       # (T, K, 8, 3)
    cc = cam.to_camera(corners)
    in_front = (cc[..., 2] > NEAR_M).all(-1)
    fwd = np.where(in_front[..., None], cc[..., 2], 1.0)
    u = cam.focal_px * cc[..., 0] / fwd + 0.5 * cam.width
    v = cam.focal_px * cc[..., 1] / fwd + 0.5 * cam.height
    boxes = np.stack([u.min(-1), v.min(-1), u.max(-1), v.max(-1)], axis=-1)
    boxes[~in_front] = np.nan
    centre = pos.copy()
    centre[..., 1] += 0.5 * extent[..., 1]
    depth = cam.to_camera(centre)[..., 2]
    return boxes, depth, in_front


def visible_boxes(cam: PinholeCamera, boxes: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Apply clipping and occlusion to unclipped boxes (T, K, 4) with centre depths (T, K).

    Returns (T, K, 4) float32 clipped xyxy px, NaN rows where the object is not visible (module docstring).
    """
    t, k = boxes.shape[:2]
    with np.errstate(invalid="ignore"):
        full_area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
        clipped = np.stack([np.clip(boxes[..., 0], 0, cam.width), np.clip(boxes[..., 1], 0, cam.height),
                            np.clip(boxes[..., 2], 0, cam.width), np.clip(boxes[..., 3], 0, cam.height)], -1)
        cw, ch = clipped[..., 2] - clipped[..., 0], clipped[..., 3] - clipped[..., 1]
        ok = (cw >= MIN_SIDE_PX) & (ch >= MIN_SIDE_PX) & (cw * ch >= MIN_INSIDE_FRACTION * full_area)
    ok &= ~np.isnan(boxes).any(-1)
    if k > 1:
        ok &= ~(occluded_fraction(clipped, depth, ok) >= OCCLUDED_FRACTION)
    out = clipped.astype(np.float32)
    out[~ok] = np.nan
    return out


def occluded_fraction(boxes: np.ndarray, depth: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(T, K) fraction of each box covered by the union of present boxes with a smaller centre depth.

    boxes: (T, K, 4) clipped xyxy px; depth: (T, K) m; present: (T, K) bool (absent boxes occlude nothing).
    Estimated on a GRID x GRID grid of cell centres inside each box.
    """
    g = (np.arange(GRID) + 0.5) / GRID
    b = np.nan_to_num(boxes)
    px = b[..., 0:1] + g * (b[..., 2:3] - b[..., 0:1])               # (T, K, G)
    py = b[..., 1:2] + g * (b[..., 3:4] - b[..., 1:2])
    nearer = (depth[:, None, :] < depth[:, :, None]) & present[:, None, :]   # (T, i, j): j is in front of i
    bj = b[:, None, :, :]                                              # (T, 1, K, 4)
    in_x = (px[:, :, None, :] >= bj[..., 0:1]) & (px[:, :, None, :] <= bj[..., 2:3])   # (T, i, j, G)
    in_y = (py[:, :, None, :] >= bj[..., 1:2]) & (py[:, :, None, :] <= bj[..., 3:4])
    cover = in_x[..., :, None] & in_y[..., None, :] & nearer[..., None, None]           # (T, i, j, G, G)
    return cover.any(axis=2).mean(axis=(-1, -2))
