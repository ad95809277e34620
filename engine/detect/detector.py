"""ONNX object detector: letterbox, onnxruntime session, decode + NMS (YOLO layouts; NanoDet via a side-car).

A model with a side-car (``NAME.json`` beside ``NAME.onnx``, engine.detect.sidecar) takes its class names,
input name and size, preprocessing (plane order, mean/std, fill) and output layout from it; "nanodet_gfl" is decoded
by engine.detect.nanodet, the YOLO layouts below by this module. ``model_path`` may also be a folder holding one
.onnx file (e.g. engine/models/nanodet). Without a side-car the model is taken to be a YOLO export:

Model input: one float32 (or float16) tensor (1, 3, H, W), RGB in [0, 1], the image letterboxed into H x W
(engine.detect.letterbox) with gray 114/255 bars (what Ultralytics trains and exports with).

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
to class-aware (or class-agnostic) greedy NMS (engine.detect.nms), the survivors are mapped back to original image
pixels and clipped to the image. Output: engine.types.Detections, boxes xyxy float32 pixels, labels index the class list.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from numba import njit

from engine.detect import nms
from engine.detect.letterbox import Letterbox, letterbox_into
from engine.detect.nanodet import GflDecoding
from engine.detect.sidecar import YOLO_PREPROCESS, DetectorSidecar, find_sidecar, resolve_model_path
from engine.config import DetectorConfig
from engine.types import Detections
from engine.vocab import Vocabulary

log = logging.getLogger(__name__)

LAYOUTS = ("yolov8", "yolov8_transposed", "yolov5")
_PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                   "tensorrt": "TensorrtExecutionProvider"}


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
    """Object detector running an ONNX model with onnxruntime (see the module docstring for layouts and side-cars).

    ``detect(image)`` takes one (H, W, 3) uint8 image in ``cfg.input_order`` (default "bgr", what OpenCV gives)
    and returns Detections in that image's pixels. Not thread-safe: it reuses one input buffer; use one instance
    per thread. Call ``warmup()`` before the first real frame to move compilation and session start-up out of it.
    ``classes`` (Vocabulary) names the labels; ``sidecar`` is the side-car read, or None.
    """

    def __init__(self, cfg: DetectorConfig):
        if not isinstance(cfg, DetectorConfig):
            raise TypeError(f"cfg: expected DetectorConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        if not cfg.model_path:
            raise ValueError("model_path: no ONNX file given")
        model_path = resolve_model_path(cfg.model_path)
        if not model_path.is_file():
            raise ValueError(f"model_path: ONNX file not found: '{cfg.model_path}'")
        self.model_path = str(model_path)
        self.sidecar = find_sidecar(model_path)
        if self.sidecar is not None:
            self.sidecar.check_model_file(model_path)  # before loading: a swapped file must not run at all
        self.classes = self._class_names(cfg, self.sidecar)

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
        if not cfg.allow_spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(self.model_path, sess_options=options, providers=providers)
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
        self.input_hw = self._input_size(cfg, self.sidecar, inp.name, shape)
        self._input_name = inp.name
        self._preprocess = YOLO_PREPROCESS if self.sidecar is None else self.sidecar.preprocess
        self.decoder = self.sidecar.decoder if self.sidecar is not None else cfg.output_layout
        self._gfl = None
        if self.decoder == "nanodet_gfl":
            if cfg.output_layout != "auto":
                raise ValueError(f"output_layout: '{cfg.output_layout}' contradicts the side-car's decoder "
                                 f"'nanodet_gfl' ({self.sidecar.path}); leave it 'auto'")
            self._gfl = GflDecoding(self.sidecar.gfl, self.input_hw, len(self.classes))
            self._gfl.check_shapes({o.name: tuple(_fixed(d) for d in o.shape) for o in outputs},
                                   f"model_path {self.model_path} (side-car {self.sidecar.path})")
            self._output_names = self._gfl.output_names
        else:
            if self.sidecar is not None and cfg.output_layout not in ("auto", self.decoder):
                raise ValueError(f"output_layout: '{cfg.output_layout}' contradicts the side-car's decoder "
                                 f"'{self.decoder}' ({self.sidecar.path})")
            source = f"classes_file {cfg.classes_file}" if self.sidecar is None else f"side-car {self.sidecar.path}"
            out_shape = outputs[0].shape
            if all(_fixed(d) for d in out_shape):  # fail at load time when the shape is known statically
                self.decoder = resolve_layout(tuple(out_shape), len(self.classes), self.decoder, source)
            self._output_names = [outputs[0].name]
        self._half = inp.type == "tensor(float16)"
        self._buffer = np.empty((1, 3, *self.input_hw), np.float32)
        self.providers = tuple(self._session.get_providers())
        log.info("OnnxDetector: %s runs on %s (asked for %s); input %s %dx%d, %d classes, decoder %s",
                 self.model_path, self.providers[0], list(cfg.providers), self._input_name, *self.input_hw,
                 len(self.classes), self.decoder)

    @staticmethod
    def _class_names(cfg: DetectorConfig, sidecar: DetectorSidecar | None) -> Vocabulary:
        if sidecar is not None:
            classes = Vocabulary(Path(sidecar.path).stem, sidecar.classes)
            if cfg.classes_file:  # both given: they must agree, or labels would silently mean other classes
                if not Path(cfg.classes_file).is_file():
                    raise ValueError(f"classes_file: class-name file not found: '{cfg.classes_file}'")
                listed = Vocabulary.from_file(cfg.classes_file)
                if listed.names != classes.names:
                    raise ValueError(f"classes_file: '{cfg.classes_file}' ({len(listed)} names) differs from the "
                                     f"classes of the side-car {sidecar.path} ({len(classes)} names)")
            return classes
        if not cfg.classes_file or not Path(cfg.classes_file).is_file():
            raise ValueError(f"classes_file: class-name file not found: '{cfg.classes_file}' (a model without a "
                             f"side-car needs one)")
        classes = Vocabulary.from_file(cfg.classes_file)
        if len(classes) == 0:
            raise ValueError(f"classes_file: no class names in '{cfg.classes_file}'")
        return classes

    @staticmethod
    def _input_size(cfg: DetectorConfig, sidecar: DetectorSidecar | None, name: str, shape: list) -> tuple:
        model_hw = (_fixed(shape[2]), _fixed(shape[3]))
        if sidecar is not None:
            if name != sidecar.input_name:
                raise ValueError(f"{sidecar.path}: input.name '{sidecar.input_name}' is not the model's input "
                                 f"'{name}'")
            if any(m is not None and m != v for m, v in zip(model_hw, sidecar.input_hw)):
                raise ValueError(f"{sidecar.path}: input size {sidecar.input_hw} does not match the model's fixed "
                                 f"input {shape}")
            model_hw = sidecar.input_hw
        if cfg.input_size is None:
            if None in model_hw:
                raise ValueError(f"input_size: the model's input height/width are dynamic ({shape}); set it")
            return int(model_hw[0]), int(model_hw[1])
        hw = (int(cfg.input_size[0]), int(cfg.input_size[1]))
        if any(m is not None and m != v for m, v in zip(model_hw, hw)):
            raise ValueError(f"input_size: {hw} does not match the model's input {tuple(model_hw)}")
        return hw

    def detect(self, image: np.ndarray) -> Detections:
        """One (H, W, 3) uint8 image (channel order cfg.input_order) -> Detections in its pixels (xyxy, clipped)."""
        img = _check_image(image)
        box = Letterbox.fit(img.shape[:2], self.input_hw)
        letterbox_into(img, self._buffer[0], box, self.cfg.input_order == "bgr", self._preprocess)
        feed = self._buffer.astype(np.float16) if self._half else self._buffer
        raw = self._session.run(self._output_names, {self._input_name: feed})
        c = self.cfg
        if self._gfl is not None:
            boxes, scores, labels = self._gfl.decode(
                [np.asarray(r, np.float32) for r in raw], score_threshold=c.score_threshold,
                iou_threshold=c.iou_threshold, max_detections=c.max_detections, max_candidates=c.max_candidates,
                class_agnostic=c.class_agnostic)
        else:
            boxes, scores, labels = decode_yolo(
                np.asarray(raw[0]), len(self.classes), layout=self.decoder, score_threshold=c.score_threshold,
                iou_threshold=c.iou_threshold, max_detections=c.max_detections, max_candidates=c.max_candidates,
                class_agnostic=c.class_agnostic)
        return Detections(box.to_image_xyxy(boxes), scores, labels)

    def warmup(self) -> None:
        """Compile the numba kernels and run the session once on a gray frame (first ORT runs are slow)."""
        nms.warmup()
        self.detect(np.full((*self.input_hw, 3), 114, np.uint8))
