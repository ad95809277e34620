"""Letterboxing an image into a detector's input: aspect kept, centred, bars filled; normalised planes (numba kernel).

The image is resized with its aspect ratio kept (bilinear, pixel centres aligned as in OpenCV's INTER_LINEAR), placed
centred in the (input_h, input_w) input, the rest filled with a constant; every plane is then (pixel - mean) / std
(engine.detect.sidecar.Preprocess). ``Letterbox`` maps boxes back to the original image's pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from engine.detect.sidecar import YOLO_PREPROCESS, Preprocess


@dataclass(frozen=True)
class Letterbox:
    """Where an (image_h, image_w) image sits inside the (input_h, input_w) model input after letterboxing.

    The image is resized to (resized_h, resized_w) pixels (aspect ratio kept, rounded to whole pixels) and placed
    with its top-left corner at (top, left); per-axis scales are resized / original, so the mapping back is exact.
    """

    image_h: int
    image_w: int
    input_h: int
    input_w: int
    resized_h: int
    resized_w: int
    top: int
    left: int

    @classmethod
    def fit(cls, image_hw: tuple[int, int], input_hw: tuple[int, int]) -> "Letterbox":
        h, w = int(image_hw[0]), int(image_hw[1])
        ih, iw = int(input_hw[0]), int(input_hw[1])
        r = min(ih / h, iw / w)
        rh = min(max(int(round(h * r)), 1), ih)
        rw = min(max(int(round(w * r)), 1), iw)
        return cls(h, w, ih, iw, rh, rw, (ih - rh) // 2, (iw - rw) // 2)

    def to_image_xyxy(self, boxes_model_xyxy: np.ndarray) -> np.ndarray:
        """(K, 4) xyxy in model-input pixels -> (K, 4) float32 xyxy in original image pixels, clipped to the image."""
        b = np.asarray(boxes_model_xyxy, np.float64)
        sx = self.image_w / self.resized_w
        sy = self.image_h / self.resized_h
        out = np.empty(b.shape, np.float32)
        out[:, 0::2] = np.clip((b[:, 0::2] - self.left) * sx, 0.0, self.image_w)
        out[:, 1::2] = np.clip((b[:, 1::2] - self.top) * sy, 0.0, self.image_h)
        return out


@njit(cache=True, nogil=True)
def _bilinear_taps(out_len, in_len):
    """Source index pairs and weights for resizing in_len -> out_len pixels with pixel centres aligned."""
    scale = in_len / out_len
    i0 = np.empty(out_len, np.int64)
    i1 = np.empty(out_len, np.int64)
    wt = np.empty(out_len, np.float32)
    for o in range(out_len):
        f = (o + 0.5) * scale - 0.5
        if f < 0.0:
            f = 0.0
        k = int(f)
        if k >= in_len - 1:
            i0[o], i1[o], wt[o] = in_len - 1, in_len - 1, 0.0
        else:
            i0[o], i1[o], wt[o] = k, k + 1, f - k
    return i0, i1, wt


@njit(cache=True, nogil=True)
def _letterbox_kernel(image, out, top, left, resized_h, resized_w, swap_rb, scale, shift, pad):
    """image (h, w, 3) uint8 C-contiguous -> out (3, H, W) float32 in place.

    Plane c of out = pixel * scale[c] + shift[c] (scale = 1 / std, shift = -mean / std) of image channel c, or
    2 - c when swap_rb; the letterbox bars get pad[c] (the fill value, already normalised).
    """
    H = out.shape[1]
    for c in range(3):
        for y in range(H):
            if y < top or y >= top + resized_h:
                out[c, y, :] = pad[c]
            else:
                out[c, y, :left] = pad[c]
                out[c, y, left + resized_w:] = pad[c]
    x0, x1, wx = _bilinear_taps(resized_w, image.shape[1])
    y0, y1, wy = _bilinear_taps(resized_h, image.shape[0])
    one = np.float32(1.0)
    for y in range(resized_h):
        a, b, fy = y0[y], y1[y], wy[y]
        for x in range(resized_w):
            p, q, fx = x0[x], x1[x], wx[x]
            for c in range(3):
                sc = 2 - c if swap_rb else c
                upper = image[a, p, sc] * (one - fx) + image[a, q, sc] * fx
                lower = image[b, p, sc] * (one - fx) + image[b, q, sc] * fx
                out[c, top + y, left + x] = (upper * (one - fy) + lower * fy) * scale[c] + shift[c]


def _normalisation(pre: Preprocess) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scale, shift, pad) float32 (3,) arrays of the kernel for one Preprocess."""
    std, mean = np.asarray(pre.std, np.float64), np.asarray(pre.mean, np.float64)
    return ((1.0 / std).astype(np.float32), (-mean / std).astype(np.float32),
            ((pre.pad_value - mean) / std).astype(np.float32))


def letterbox_into(image: np.ndarray, out: np.ndarray, box: Letterbox, bgr: bool,
                   preprocess: Preprocess = YOLO_PREPROCESS) -> None:
    """Fill ``out`` (3, input_h, input_w) float32 with the letterboxed, normalised model input for ``image``.

    image: (h, w, 3) uint8, BGR when ``bgr`` else RGB; ``box`` must come from Letterbox.fit for these sizes.
    preprocess: plane order, mean/std and fill of the model (default: YOLO's RGB in [0, 1] with gray 114 bars).
    """
    swap = bgr != (preprocess.channel_order == "bgr")
    _letterbox_kernel(np.ascontiguousarray(image), out, box.top, box.left, box.resized_h, box.resized_w, swap,
                      *_normalisation(preprocess))
