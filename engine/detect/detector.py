"""ONNX object detector in the common YOLO export layout: letterbox preprocessing, onnxruntime session, decode + NMS.

Model input: one float32 (or float16) tensor (1, 3, H, W), RGB in [0, 1], the image letterboxed into H x W: resized
with its aspect ratio kept (bilinear, pixel centres aligned as in OpenCV's INTER_LINEAR), centred, the rest filled
with gray 114/255 (what Ultralytics trains and exports with).

Model output 0, batch 1, boxes (cx, cy, w, h) in model-input pixels, scores already probabilities (sigmoid).
With nc = number of names in the classes file, the accepted layouts are:

* ``"yolov8"``            (1, 4 + nc, N): Ultralytics YOLOv8 / YOLO11 export. Rows 0-3 box, rows 4.. class scores.
* ``"yolov8_transposed"`` (1, N, 4 + nc): the same, one row per candidate.
* ``"yolov5"``            (1, N, 5 + nc): box, objectness, class scores; a candidate's score = objectness * class score.

``"auto"`` picks the one layout whose shape fits (a shape (1, A, B) fits yolov8 when A = 4 + nc, yolov8_transposed
when B = 4 + nc, yolov5 when B = 5 + nc). A shape that fits none (class list of the wrong length, an export with NMS
built in, a segmentation model) raises ValueError naming the shape and the classes file; a shape that fits two
(only when N itself is 4 + nc or 5 + nc) raises too, and ``output_layout`` must then be set explicitly.

Each candidate gets its best class (one label per box, Ultralytics' default); candidates with score > threshold go
to class-aware (or class-agnostic) greedy NMS (engine.detect.nms), the survivors are mapped back to original image pixels
and clipped to the image. Output: engine.types.Detections, boxes xyxy float32 pixels, labels index the class list.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from engine.detect import nms
from engine.config import DetectorConfig
from engine.types import Detections
from engine.vocab import Vocabulary

log = logging.getLogger(__name__)

LAYOUTS = ("yolov8", "yolov8_transposed", "yolov5")
PAD_VALUE = 114.0 / 255.0
_PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                   "tensorrt": "TensorrtExecutionProvider"}


# ------------------------------------------------------------------------------------------------ letterbox


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
def _letterbox_kernel(image, out, top, left, resized_h, resized_w, swap_rb):
    """image (h, w, 3) uint8 C-contiguous -> out (3, H, W) float32 in place: RGB in [0, 1], gray padding."""
    H, W = out.shape[1], out.shape[2]
    pad = np.float32(PAD_VALUE)
    for c in range(3):
        for y in range(H):
            if y < top or y >= top + resized_h:
                out[c, y, :] = pad
            else:
                out[c, y, :left] = pad
                out[c, y, left + resized_w:] = pad
    x0, x1, wx = _bilinear_taps(resized_w, image.shape[1])
    y0, y1, wy = _bilinear_taps(resized_h, image.shape[0])
    inv = np.float32(1.0 / 255.0)
    one = np.float32(1.0)
    for y in range(resized_h):
        a, b, fy = y0[y], y1[y], wy[y]
        for x in range(resized_w):
            p, q, fx = x0[x], x1[x], wx[x]
            for c in range(3):
                sc = 2 - c if swap_rb else c
                upper = image[a, p, sc] * (one - fx) + image[a, q, sc] * fx
                lower = image[b, p, sc] * (one - fx) + image[b, q, sc] * fx
                out[c, top + y, left + x] = (upper * (one - fy) + lower * fy) * inv


def letterbox_into(image: np.ndarray, out: np.ndarray, box: Letterbox, bgr: bool) -> None:
    """Fill ``out`` (3, input_h, input_w) float32 with the letterboxed RGB [0, 1] version of ``image``.

    image: (h, w, 3) uint8, BGR when ``bgr`` else RGB; ``box`` must come from Letterbox.fit for these sizes.
    """
    _letterbox_kernel(np.ascontiguousarray(image), out, box.top, box.left, box.resized_h, box.resized_w, bgr)


# ------------------------------------------------------------------------------------------------ decode


def resolve_layout(shape: tuple, num_classes: int, layout: str = "auto", source: str = "classes_file") -> str:
    """Which of LAYOUTS an output of ``shape`` is, for ``num_classes`` classes; ValueError when none or ambiguous."""
    fits = []
    if len(shape) == 3 and shape[0] == 1:
        a, b = shape[1], shape[2]
        fits = [name for name, ok in (("yolov8", a == 4 + num_classes), ("yolov8_transposed", b == 4 + num_classes),
                                      ("yolov5", b == 5 + num_classes)) if ok]
    if layout != "auto":
        if layout not in fits:
            raise ValueError(f"output_layout: model output 0 shape {tuple(shape)} is not '{layout}' for "
                             f"{num_classes} classes ({source}); accepted shapes: {_expected(num_classes)}")
        return layout
    if not fits:
        raise ValueError(f"model output 0 shape {tuple(shape)} fits no accepted YOLO layout for {num_classes} "
                         f"classes ({source}): expected {_expected(num_classes)}; is the class list the model's?")
    if len(fits) > 1:
        raise ValueError(f"model output 0 shape {tuple(shape)} is ambiguous for {num_classes} classes (fits "
                         f"{' and '.join(fits)}); set output_layout")
    return fits[0]


def _expected(nc: int) -> str:
    return f"(1, {4 + nc}, N) yolov8, (1, N, {4 + nc}) yolov8_transposed or (1, N, {5 + nc}) yolov5"


@njit(cache=True, nogil=True)
def _best_class_channels_first(pred, first_row):
    """pred (C, N) float32 -> best score (N,) float32 and its class (N,) int32 over rows first_row..C-1.

    One pass, rows outer: every read is contiguous, where numpy's argmax over axis 0 would copy-transpose first.
    """
    n = pred.shape[1]
    best = pred[first_row].copy()
    arg = np.zeros(n, np.int32)
    for c in range(first_row + 1, pred.shape[0]):
        row = pred[c]
        for i in range(n):
            if row[i] > best[i]:
                best[i] = row[i]
                arg[i] = c - first_row
    return best, arg


def decode_yolo(raw: np.ndarray, num_classes: int, *, layout: str = "auto", score_threshold: float = 0.25,
                iou_threshold: float = 0.7, max_detections: int = 300, max_candidates: int = 30000,
                class_agnostic: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw output 0 of a YOLO-layout model -> (boxes (K, 4) float32 xyxy model-input pixels, scores (K,) float32,
    labels (K,) int32), K <= max_detections, highest score first.

    Candidates with score > score_threshold, a positive finite width and height are kept; at most max_candidates
    of them (the highest scoring) go to NMS. Scores above 1 raise ValueError (the model must output probabilities).
    """
    layout = resolve_layout(raw.shape, num_classes, layout)
    pred = raw[0] if raw.dtype == np.float32 else raw[0].astype(np.float32)
    if layout == "yolov8":                                     # pred (4 + nc, N)
        best, arg = _best_class_channels_first(np.ascontiguousarray(pred), 4)
        cand = np.flatnonzero(best > score_threshold)
        labels = arg[cand]
        cxcywh = pred[:4, cand].T
    else:                                                      # pred (N, 4 + nc) or (N, 5 + nc)
        first = 4 if layout == "yolov8_transposed" else 5
        cls = pred[:, first:]
        best = cls.max(axis=1)
        if layout == "yolov5":
            best *= pred[:, 4]                                 # max_c(obj * cls_c) = obj * max_c(cls_c), obj >= 0
        cand = np.flatnonzero(best > score_threshold)
        labels = cls[cand].argmax(axis=1).astype(np.int32)
        cxcywh = pred[cand, :4]
    scores = best[cand]
    if len(cand) > max_candidates:
        top = np.argpartition(-scores, max_candidates - 1)[:max_candidates]
        scores, labels, cxcywh = scores[top], labels[top], cxcywh[top]
    if len(scores) and scores.max() > 1.0:
        raise ValueError(f"model output 0: class scores up to {float(scores.max()):.3g} > 1; expected sigmoid "
                         f"probabilities (the YOLO export layout), not logits")
    half_w, half_h = cxcywh[:, 2] * 0.5, cxcywh[:, 3] * 0.5
    boxes = np.stack([cxcywh[:, 0] - half_w, cxcywh[:, 1] - half_h,
                      cxcywh[:, 0] + half_w, cxcywh[:, 1] + half_h], axis=1).astype(np.float32, copy=False)
    ok = (cxcywh[:, 2] > 0) & (cxcywh[:, 3] > 0) & np.isfinite(boxes).all(axis=1)
    if not ok.all():
        boxes, scores, labels = boxes[ok], scores[ok], labels[ok]
    keep = nms.nms_sorted_unchecked(boxes, scores, labels, iou_threshold, max_detections, class_agnostic)
    return boxes[keep], scores[keep], labels[keep]


# ------------------------------------------------------------------------------------------------ detector


def _check_image(image) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image: expected a numpy array (H, W, 3) uint8, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image: expected dtype uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image: expected shape (H, W, 3), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image: empty image of shape {image.shape}")
    return image


def _fixed(dim) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


class OnnxDetector:
    """Object detector running a YOLO-layout ONNX model with onnxruntime (see the module docstring for layouts).

    ``detect(image)`` takes one (H, W, 3) uint8 image in ``cfg.input_order`` (default "bgr", what OpenCV gives)
    and returns Detections in that image's pixels. Not thread-safe: it reuses one input buffer; use one instance
    per thread. Call ``warmup()`` before the first real frame to move compilation and session start-up out of it.
    """

    def __init__(self, cfg: DetectorConfig):
        if not isinstance(cfg, DetectorConfig):
            raise TypeError(f"cfg: expected DetectorConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        if not cfg.model_path or not Path(cfg.model_path).is_file():
            raise ValueError(f"model_path: ONNX file not found: '{cfg.model_path}'")
        if not cfg.classes_file or not Path(cfg.classes_file).is_file():
            raise ValueError(f"classes_file: class-name file not found: '{cfg.classes_file}'")
        self.classes = Vocabulary.from_file(cfg.classes_file)
        if len(self.classes) == 0:
            raise ValueError(f"classes_file: no class names in '{cfg.classes_file}'")

        import onnxruntime as ort  # lazy: only the detector needs it

        available = ort.get_available_providers()
        requested = [_PROVIDER_NAMES.get(p, p) for p in cfg.providers]
        providers = [p for p in requested if p in available]
        for p in requested:
            if p not in available:
                log.warning("OnnxDetector: %s is not available in this onnxruntime (%s); skipping it", p, available)
        if "CPUExecutionProvider" not in providers:
            providers.append("CPUExecutionProvider")
        options = ort.SessionOptions()
        if cfg.intra_op_threads:
            options.intra_op_num_threads = cfg.intra_op_threads
        try:
            self._session = ort.InferenceSession(cfg.model_path, sess_options=options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for unreadable or invalid models
            raise ValueError(f"model_path: onnxruntime cannot load '{cfg.model_path}': {e}") from e

        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1:
            raise ValueError(f"model_path: expected one input (1, 3, H, W), the model has {len(inputs)}")
        inp = inputs[0]
        shape = list(inp.shape)
        if (len(shape) != 4 or _fixed(shape[0]) not in (None, 1) or _fixed(shape[1]) not in (None, 3)
                or inp.type not in ("tensor(float)", "tensor(float16)")):
            raise ValueError(f"model_path: input '{inp.name}' is {inp.type} {shape}; expected float (1, 3, H, W)")
        model_hw = (_fixed(shape[2]), _fixed(shape[3]))
        if cfg.input_size is None:
            if None in model_hw:
                raise ValueError(f"input_size: the model's input height/width are dynamic ({shape}); set it")
            self.input_hw = (int(model_hw[0]), int(model_hw[1]))
        else:
            self.input_hw = (int(cfg.input_size[0]), int(cfg.input_size[1]))
            if any(m is not None and m != v for m, v in zip(model_hw, self.input_hw)):
                raise ValueError(f"input_size: {self.input_hw} does not match the model's fixed input {shape}")
        out_shape = outputs[0].shape
        if all(_fixed(d) for d in out_shape):  # fail at load time when the shape is known statically
            resolve_layout(tuple(out_shape), len(self.classes), cfg.output_layout, f"classes_file {cfg.classes_file}")
        self._input_name, self._output_name = inp.name, outputs[0].name
        self._half = inp.type == "tensor(float16)"
        self._buffer = np.empty((1, 3, *self.input_hw), np.float32)
        self.providers = tuple(self._session.get_providers())
        log.info("OnnxDetector: %s runs on %s (asked for %s); input %s %dx%d, %d classes",
                 cfg.model_path, self.providers[0], list(cfg.providers), self._input_name, *self.input_hw,
                 len(self.classes))

    def detect(self, image: np.ndarray) -> Detections:
        """One (H, W, 3) uint8 image (channel order cfg.input_order) -> Detections in its pixels (xyxy, clipped)."""
        img = _check_image(image)
        box = Letterbox.fit(img.shape[:2], self.input_hw)
        letterbox_into(img, self._buffer[0], box, self.cfg.input_order == "bgr")
        feed = self._buffer.astype(np.float16) if self._half else self._buffer
        raw = np.asarray(self._session.run([self._output_name], {self._input_name: feed})[0])
        c = self.cfg
        boxes, scores, labels = decode_yolo(
            raw, len(self.classes), layout=c.output_layout, score_threshold=c.score_threshold,
            iou_threshold=c.iou_threshold, max_detections=c.max_detections, max_candidates=c.max_candidates,
            class_agnostic=c.class_agnostic)
        return Detections(box.to_image_xyxy(boxes), scores, labels)

    def warmup(self) -> None:
        """Compile the numba kernels and run the session once on a gray frame (first ORT runs are slow)."""
        nms.warmup()
        self.detect(np.full((*self.input_hw, 3), 114, np.uint8))
