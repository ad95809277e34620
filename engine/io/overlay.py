"""Overlay video: entity boxes, track ids and relation edges drawn per frame (on a blank canvas without pixels).

OpenCV is imported lazily (only when an overlay is requested). The video is written with the ``mp4v`` codec,
which opencv-python-headless can encode everywhere (it has no H.264 encoder).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.types import SceneGraph


def _color(track_id: int) -> tuple[int, int, int]:
    # golden-ratio hue steps: neighbouring ids get clearly different colours
    h = (track_id * 0.618033988749895) % 1.0
    import colorsys
    r, g, b = colorsys.hsv_to_rgb(h, 0.75, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


class OverlayWriter:
    """Writes one overlay frame per ``write`` call to ``path`` at ``fps``; ``size`` is (width, height) in pixels."""

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float, max_edge_labels: int = 12,
                 max_pair_labels: int = 4):
        import cv2
        self.cv2 = cv2
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size = (int(size[0]), int(size[1]))
        self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), self.size)
        if not self.writer.isOpened():
            raise ValueError(f"overlay: cannot open {self.path} for writing (mp4v codec)")
        self.max_edge_labels = max_edge_labels   # relations listed in the panel
        self.max_pair_labels = max_pair_labels   # strongest pairs whose arrow is labelled
        self.frames = 0

    def write(self, graph: SceneGraph, image: np.ndarray | None = None, status: str = "") -> None:
        """Draw ``graph`` on ``image`` (H, W, 3) uint8 BGR, or on a dark canvas when ``image`` is None."""
        cv2 = self.cv2
        w, h = self.size
        if image is None:
            canvas = np.full((h, w, 3), 32, np.uint8)
        else:
            canvas = image.copy() if image.shape[:2] == (h, w) else cv2.resize(image, (w, h))
        centres = {}
        for e in graph.entities.values():
            x1, y1, x2, y2 = (int(round(v)) for v in e.box_xyxy)
            c = _color(e.id)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), c, 2)
            cv2.putText(canvas, f"{e.id} {e.label}", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, c, 1,
                        cv2.LINE_AA)
            centres[e.id] = ((x1 + x2) // 2, (y1 + y2) // 2)
        # One arrow per ordered pair, shifted sideways so a->b and b->a stay apart, labelled with its strongest
        # predicate; the strongest relations overall are listed in a panel, which stays legible when edges crowd.
        by_pair: dict[tuple[int, int], list] = {}
        for r in sorted(graph.relations.values(), key=lambda r: -r.score):
            by_pair.setdefault((r.subject_id, r.object_id), []).append(r)
        for k, ((si, oi), rs) in enumerate(by_pair.items()):  # strongest pair first
            a, b = np.array(centres[si], float), np.array(centres[oi], float)
            d = b - a
            n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1.0) * 6.0
            a2, b2 = tuple(int(v) for v in a + n), tuple(int(v) for v in b + n)
            cv2.arrowedLine(canvas, a2, b2, _color(si), 1, cv2.LINE_AA, tipLength=0.04)
            if k >= self.max_pair_labels:
                continue
            label = rs[0].predicate + (f" +{len(rs) - 1}" if len(rs) > 1 else "")
            mid = (int(a[0] + d[0] / 3 + n[0] * 2), int(a[1] + d[1] / 3 + n[1] * 2))
            self._text(canvas, label, mid, 0.38, _color(si))
        for k, r in enumerate(sorted(graph.relations.values(), key=lambda r: -r.score)[: self.max_edge_labels]):
            self._text(canvas, f"{r.subject_id} {r.predicate} {r.object_id}  {r.score:.2f}", (8, 18 + 16 * k), 0.42,
                       _color(r.subject_id))
        text = status or f"t={graph.t:.2f}s  entities {len(graph.entities)}  relations {len(graph.relations)}"
        cv2.putText(canvas, text, (8, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230, 230, 230), 1, cv2.LINE_AA)
        self.writer.write(canvas)
        self.frames += 1

    def _text(self, canvas: np.ndarray, text: str, org: tuple[int, int], scale: float, color) -> None:
        """Text on a dark box so it reads over boxes, edges and video alike; org is the baseline's left end (px)."""
        cv2 = self.cv2
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        x, y = org
        cv2.rectangle(canvas, (x - 2, y - th - 2), (x + tw + 2, y + base), (20, 20, 20), -1)
        cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)

    def close(self) -> None:
        self.writer.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
