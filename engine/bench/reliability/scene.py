"""A seeded, endless stream of moving boxes that are born and die (for soaks and fault runs), and its det.txt form.

``MovingBoxes`` keeps ``n`` slots. A slot holds one object for a lifetime of 60-300 frames, moving at constant
velocity (bouncing off the image border) with a small detection jitter, then stays empty for 5-40 frames before a
new object (a new track id for the engine) appears elsewhere. Track ids therefore keep growing and the engine keeps
evicting dead tracks, which is what a long-run memory test has to exercise. State is O(n) whatever the length.
Boxes are xyxy float32 pixels (image frame, origin top-left); scores in [0.75, 1] (above the tracker's default
new-track score); labels 0 (one class: the MOT sources label everything "person").
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.types import Detections


class MovingBoxes:
    """``next_frame()`` -> Detections of the next frame. n: slots (objects alive at once, at most); image_wh: pixels."""

    def __init__(self, n: int, seed: int = 0, image_wh: tuple[int, int] = (640, 480)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected an integer >= 1, got {n!r}")
        self._rng = np.random.default_rng(seed)
        self._wh = np.array(image_wh, np.float64)
        self._size = np.zeros((n, 2))
        self._pos = np.zeros((n, 2))
        self._vel = np.zeros((n, 2))
        self._left = np.zeros(n, np.int64)     # frames the object has left (> 0: alive)
        self._wait = self._rng.integers(0, 10, n)  # frames until a new object appears (empty slots)
        self.frames = 0

    def _spawn(self, i: np.ndarray) -> None:
        r, k = self._rng, len(i)
        self._size[i] = np.column_stack([r.uniform(30, 90, k), r.uniform(50, 150, k)])
        self._pos[i] = r.uniform(0.1, 0.9, (k, 2)) * self._wh
        self._vel[i] = r.normal(0, 2.5, (k, 2))
        self._left[i] = r.integers(60, 300, k)

    def next_frame(self) -> Detections:
        r = self._rng
        born = np.flatnonzero((self._left <= 0) & (self._wait <= 0))
        if len(born):
            self._spawn(born)
        alive = self._left > 0
        self._wait[~alive] -= 1
        self._pos[alive] += self._vel[alive]
        out = (self._pos < 0) | (self._pos > self._wh)
        self._vel[out & alive[:, None]] *= -1
        self._left[alive] -= 1
        died = alive & (self._left <= 0)
        self._wait[died] = r.integers(5, 40, int(died.sum()))
        i = np.flatnonzero(alive)
        c = self._pos[i] + r.normal(0, 0.01, (len(i), 2)) * self._size[i]
        half = self._size[i] / 2
        boxes = np.clip(np.concatenate([c - half, c + half], 1), 0, np.tile(self._wh, 2)).astype(np.float32)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        self.frames += 1
        return Detections(boxes, r.uniform(0.75, 1.0, len(i)).astype(np.float32), np.zeros(len(i), np.int32))


def write_mot_sequence(folder: Path, frames: int, n: int, seed: int, fps: float,
                       image_wh: tuple[int, int] = (640, 480)) -> Path:
    """``folder``/det.txt (MOTChallenge detections of ``frames`` frames of MovingBoxes) and a seqinfo.ini giving
    the image size, frame rate and length, so that ``vsgg run --source mot:DET`` replays it. Returns det.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    scene = MovingBoxes(n, seed, image_wh)
    lines = []
    for f in range(1, frames + 1):
        d = scene.next_frame()
        for (x1, y1, x2, y2), s in zip(d.boxes_xyxy.tolist(), d.scores.tolist()):
            lines.append(f"{f},-1,{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{s:.3f},-1,-1,-1")
    det = folder / "det.txt"
    det.write_text("\n".join(lines) + "\n")
    (folder / "seqinfo.ini").write_text(f"[Sequence]\nname=reliability\nframeRate={fps:g}\nseqLength={frames}\n"
                                        f"imWidth={image_wh[0]}\nimHeight={image_wh[1]}\n")
    return det
