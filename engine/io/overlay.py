"""Overlay drawing: entity boxes, track ids and relation arrows drawn on frames, and the H.264 MP4 video sink.

``OverlayRenderer.render`` draws one frame (used by ``vsgg run --overlay`` through ``OverlayWriter`` and by the ROS
node's ``overlay`` topic); where each label goes is decided by engine.io.overlay_layout (its readability rules:
labels never overlap, one arrow per entity pair, a relation panel in the least crowded corner).

Geometry: boxes are xyxy float pixels of the overlay frame (origin top-left). The video is written with PyAV
(libx264, yuv420p, MP4 with the index at the front), which browsers and editors play; odd frame sizes are padded by
one black row/column at the bottom/right. OpenCV is imported when a renderer is made, PyAV when a video is opened.
"""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np

from engine.io.overlay_layout import (FONT, Arrow, Label, OverlayLayout, Rect, TextMetrics, color_of,  # noqa: F401
                                      overlaps, plan_layout)
from engine.types import SceneGraph

_PLATE = (20, 20, 20)  # BGR of the dark plate under every label


def _import_av():
    try:
        import av
    except ImportError as e:  # the video extra is optional; say which package to install
        raise ImportError("overlay: writing H.264 MP4 needs PyAV, the 'av' package: "
                          "pip install av==18.1.0 (or the vsgg 'video' extra)") from e
    return av


class OverlayRenderer:
    """Draws scene graphs on frames of one size, no video: ``render`` returns the drawn (H, W, 3) uint8 BGR frame.

    size: (width, height) of the frames in pixels; graph boxes are in this pixel frame. max_edge_labels: most
    relations listed in the panel. max_pair_labels: most arrows (strongest pairs first) that get a text label.
    State: the panel corner of the last frame (so the panel does not flicker between corners).
    """

    def __init__(self, size: tuple[int, int], max_edge_labels: int = 12, max_pair_labels: int = 4):
        if (not isinstance(size, (tuple, list)) or len(size) != 2
                or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in size)):
            raise ValueError(f"overlay: size must be (width, height) positive integers in pixels, got {size!r}")
        for name, v in (("max_edge_labels", max_edge_labels), ("max_pair_labels", max_pair_labels)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= 10_000:
                raise ValueError(f"overlay: {name} must be an integer in [0, 10000], got {v!r}")
        import cv2
        self.cv2 = cv2
        self.size = (int(size[0]), int(size[1]))
        self.max_edge_labels, self.max_pair_labels = int(max_edge_labels), int(max_pair_labels)
        self.text = TextMetrics(cv2, float(np.clip(min(self.size) / 640.0, 0.38, 1.0)))
        self._corner = 0  # panel corner of the last frame (hysteresis against flicker)

    # -- drawing -------------------------------------------------------------------------------------------------
    def render(self, graph: SceneGraph, image: np.ndarray | None = None, status: str = "") -> np.ndarray:
        """Draw ``graph`` on ``image`` ((H, W, 3) uint8 BGR or (H, W) uint8 grey; resized to ``size`` if needed)
        or on a dark canvas; returns the (height, width, 3) uint8 BGR frame. Updates the panel-corner memory."""
        cv2 = self.cv2
        if not isinstance(graph, SceneGraph):
            raise TypeError(f"overlay: graph must be a SceneGraph, got {type(graph).__name__}")
        if not isinstance(status, str):
            raise TypeError(f"overlay: status must be a str, got {type(status).__name__}")
        w, h = self.size
        if image is None:
            canvas = np.full((h, w, 3), 32, np.uint8)
        else:
            if not isinstance(image, np.ndarray):
                raise TypeError(f"overlay: image must be a numpy array, got {type(image).__name__}")
            if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
                raise ValueError(f"overlay: image must be (H, W, 3) or (H, W) uint8, got {image.shape} {image.dtype}")
            if image.shape[0] == 0 or image.shape[1] == 0:
                raise ValueError(f"overlay: image is empty, shape {image.shape}")
            canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image
            canvas = canvas.copy() if canvas.shape[:2] == (h, w) else cv2.resize(canvas, (w, h))
            canvas = np.ascontiguousarray(canvas)
        lay = plan_layout(graph, self.size, self.text, self.max_edge_labels, self.max_pair_labels, status,
                          self._corner)
        self._corner = lay.corner
        for e in graph.entities.values():  # coordinates clipped so far-off predicted boxes cannot overflow int
            lim = (w, h, w, h)
            x1, y1, x2, y2 = (int(round(float(np.clip(v, -lim[i], 2 * lim[i])))) for i, v in enumerate(e.box_xyxy))
            cv2.rectangle(canvas, (x1, y1), (x2, y2), color_of(e.id), 2)
        for a in lay.arrows:
            length = max(math.dist(a.p0, a.p1), 1.0)
            tip = min(0.45, 10.0 / length)  # a head of about 10 px whatever the arrow length
            cv2.line(canvas, a.p0, a.p1, a.color, 2, cv2.LINE_AA)
            if a.head_end:
                cv2.arrowedLine(canvas, a.p0, a.p1, a.color, 2, cv2.LINE_AA, tipLength=tip)
            if a.head_start:
                cv2.arrowedLine(canvas, a.p1, a.p0, a.color, 2, cv2.LINE_AA, tipLength=tip)
        if lay.panel is not None:  # translucent plate: the scene stays visible behind the list
            x0, y0, x1, y1 = lay.panel
            roi = canvas[y0:y1, x0:x1]
            roi[:] = (roi.astype(np.float32) * 0.3 + np.float32(_PLATE[0]) * 0.7).astype(np.uint8)
            for lab in lay.panel_lines:
                self._put(canvas, lab, plate=False)
        for lab in lay.labels():
            self._put(canvas, lab, plate=True)
        return canvas

    def _put(self, canvas: np.ndarray, lab: Label, plate: bool) -> None:
        cv2 = self.cv2
        if plate:
            x0, y0, x1, y1 = lab.rect
            cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), _PLATE, -1)
        cv2.putText(canvas, lab.text, lab.org, FONT, self.text.scale, lab.color, self.text.thick, cv2.LINE_AA)

    def layout(self, graph: SceneGraph, status: str = "") -> OverlayLayout:
        """Where ``render`` would put every label of ``graph`` (no drawing, no state change)."""
        if not isinstance(graph, SceneGraph):
            raise TypeError(f"overlay: graph must be a SceneGraph, got {type(graph).__name__}")
        return plan_layout(graph, self.size, self.text, self.max_edge_labels, self.max_pair_labels, status,
                           self._corner)


class OverlayWriter(OverlayRenderer):
    """Writes one overlay frame per ``write`` call to an H.264 MP4 at ``path`` (drawn by OverlayRenderer.render).

    size: (width, height) of the frames in pixels; graph boxes are in this pixel frame. fps: frames per second
    (the video's time base; frame k is shown at k / fps seconds). max_edge_labels: most relations listed in the
    panel. max_pair_labels: most arrows (strongest pairs first) that get a text label. crf: x264 quality
    (0 lossless .. 51 worst; 20 keeps thin lines and small text crisp).

    ``close()`` finishes the file (flushes the encoder, writes the MP4 index). It may be called more than once and
    from a signal handler, also while ``write`` runs (then the write completes first), so a run stopped by
    SIGINT/SIGTERM still leaves a playable file; ``write`` after ``close`` raises ValueError.
    """

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float, max_edge_labels: int = 12,
                 max_pair_labels: int = 4, crf: int = 20):
        if not isinstance(path, (str, Path)):
            raise TypeError(f"overlay: path must be a str or Path, got {type(path).__name__}")
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
            raise ValueError(f"overlay: path {self.path} must end in .mp4 (the file is an H.264 MP4)")
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"overlay: fps must be a finite number > 0, got {fps!r}")
        if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not 0 <= crf <= 51:
            raise ValueError(f"overlay: crf must be an integer in [0, 51], got {crf!r}")
        super().__init__(size, max_edge_labels, max_pair_labels)  # checks size and the label counts
        av = _import_av()  # after every argument check, and before the file exists (nothing left behind)
        # yuv420p stores chroma at half resolution, so x264 needs even sides: pad one black row/column if odd
        self.encoded_size = (self.size[0] + self.size[0] % 2, self.size[1] + self.size[1] % 2)
        self.fps = float(fps)
        self.frames = 0
        self._busy = self._close_requested = self._closed = False
        rate = Fraction(self.fps).limit_denominator(1001)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # PyAV opens the file lazily (at the first frame), so probe writability here where the error is clear
            with open(self.path, "wb"):
                pass
            # +faststart puts the index before the data, so browsers start playing before the whole file is read
            self._container = av.open(str(self.path), mode="w", format="mp4", options={"movflags": "+faststart"})
        except (OSError, av.FFmpegError) as e:
            raise ValueError(f"overlay: cannot open {self.path} for writing: {e}") from e
        try:
            self._stream = self._container.add_stream("libx264", rate=rate)
            cc = self._stream.codec_context
            cc.width, cc.height = self.encoded_size
            cc.pix_fmt = "yuv420p"
            cc.time_base = 1 / rate
            cc.options = {"crf": str(int(crf)), "preset": "veryfast"}
        except Exception:
            self._container.close()
            raise
        self._av = av

    # -- encoding ------------------------------------------------------------------------------------------------
    def write(self, graph: SceneGraph, image: np.ndarray | None = None, status: str = "") -> None:
        """Render one frame (see ``render``) and append it to the video; ``self.frames`` counts written frames."""
        # busy first, then the closed check: a signal handler's close() either lands before (this write refuses)
        # or after (close waits for this frame), never between the check and the encoder call
        self._busy = True
        try:
            if self._closed or self._close_requested:
                raise ValueError(f"overlay: write() after close() ({self.path})")
            canvas = self.render(graph, image, status)
            if self.encoded_size != self.size:
                canvas = self.cv2.copyMakeBorder(canvas, 0, self.encoded_size[1] - self.size[1], 0,
                                                 self.encoded_size[0] - self.size[0], self.cv2.BORDER_CONSTANT,
                                                 value=0)
            frame = self._av.VideoFrame.from_ndarray(canvas, format="bgr24")
            frame.pts = self.frames
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            self.frames += 1
        finally:
            self._busy = False
            if self._close_requested:  # close() came from a signal handler while this frame was being written
                self._finish()

    def close(self) -> None:
        """Finish the file; safe to call twice and from a signal handler (see the class docstring)."""
        if self._closed:
            return
        if self._busy:
            self._close_requested = True
            return
        self._finish()

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True  # first, so a signal arriving during the flush finds the file already being closed
        try:
            for packet in self._stream.encode(None):  # drain the frames x264 still holds for look-ahead
                self._container.mux(packet)
        finally:
            self._container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
