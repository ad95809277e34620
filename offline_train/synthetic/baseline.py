"""Baseline for `vsgg eval`: the synthetic world's own predicate rules applied to the input boxes.

The rules read 3D states, so each box is lifted back into the world with the generator's camera
(``PinholeCamera`` scaled to the video's width): the bottom-centre pixel of the box is intersected with the ground
plane (every object is assumed to stand on the ground, so flying objects land where their shadow would be), the
footprint centre is pushed back by half the category's length along the viewing ray, frames where an object is
missing are filled by linear interpolation (held at the ends), and each category gets its standing size. The
rules (``labelling.frame_predicates``) then label every frame, and runs are merged into instances exactly like the
model's scores (a rule that holds scores 1).
"""
from __future__ import annotations

import math

import numpy as np

from engine.io.vidvrd import VideoAnnotation
from engine.vocab import Vocabulary
from offline_train.evaluate import MergeConfig, merge_instances
from offline_train.synthetic.camera import PinholeCamera
from offline_train.synthetic.categories import profile
from offline_train.synthetic.labelling import frame_predicates
from offline_train.synthetic.rules import geometry
from offline_train.synthetic.world import make_states

MAX_DEPTH_M = 200.0  # points at or above the horizon are put this far away


def ground_points(cam: PinholeCamera, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(N,) pixel coordinates -> (N, 3) world points (x, 0, z) where the pixel rays meet the ground plane."""
    th = math.radians(cam.pitch_deg)
    du = (u - 0.5 * cam.width) / cam.focal_px
    dv = (v - 0.5 * cam.height) / cam.focal_px
    denom = math.cos(th) * dv + math.sin(th)
    z = np.where(denom > 1e-6, cam.height_m * (math.cos(th) - math.sin(th) * dv) / np.maximum(denom, 1e-6),
                 MAX_DEPTH_M)
    z = np.minimum(z, MAX_DEPTH_M)
    s = cam.height_m * math.sin(th) + z * math.cos(th)  # distance along the optical axis
    return np.stack([s * du, np.zeros_like(z), z], axis=-1)


def _fill_gaps(x: np.ndarray) -> np.ndarray:
    """(T, D) with NaN rows -> linear interpolation between known rows, held before the first / after the last."""
    ok = ~np.isnan(x).any(1)
    if ok.all() or not ok.any():
        return np.nan_to_num(x)
    t = np.arange(len(x))
    return np.stack([np.interp(t, t[ok], x[ok, d]) for d in range(x.shape[1])], axis=1)


def lift_to_world(ann: VideoAnnotation, cam: PinholeCamera):
    """WorldStates estimated from the annotation's boxes (see module docstring)."""
    t, k = ann.boxes.shape[:2]
    pos = np.zeros((t, k, 3))
    for j in range(k):
        b = ann.boxes[:, j].astype(np.float64)
        foot = ground_points(cam, (b[:, 0] + b[:, 2]) / 2, b[:, 3])
        length = profile(ann.categories[j]).size[2]
        ray = foot / np.maximum(np.linalg.norm(foot, axis=1, keepdims=True), 1e-6)
        pos[:, j] = _fill_gaps(foot + 0.5 * length * ray)
    return make_states(ann.categories, pos, ann.fps)


def rules_scores(ann: VideoAnnotation, predicates: Vocabulary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, P, C) 0/1 scores (NaN where a pair is not co-present), subj (P,), obj (P,) column indices."""
    k = len(ann.tids)
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    subj, obj = i[i != j], j[i != j]
    if ann.frame_count < 2 or k < 2:
        return np.full((ann.frame_count, len(subj), len(predicates)), np.nan, np.float32), subj, obj
    scale = ann.width / 640.0  # the generator's camera is defined for 640 px wide images
    cam = PinholeCamera(ann.width, ann.height, 500.0 * scale)
    labels = frame_predicates(geometry(lift_to_world(ann, cam), cam), predicates)   # (T, K, K, C)
    seen = ann.present
    present = seen[:, subj] & seen[:, obj]
    scores = labels[:, subj, obj].astype(np.float32)
    scores[~present] = np.nan
    return scores, subj, obj


def rules_predictor(predicates: Vocabulary, merge: MergeConfig):
    """ann -> list[VideoRelation] with the rules as the scorer; categories outside the synthetic world's profiles
    (e.g. a mapped dataset category the world never generates) raise ValueError from ``profile``."""
    def predict(ann: VideoAnnotation):
        scores, subj, obj = rules_scores(ann, predicates)
        return merge_instances(scores, subj, obj, ann, predicates, merge)
    return predict
