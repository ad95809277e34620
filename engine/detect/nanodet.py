"""Decoding of NanoDet's GFL head (per-stride class scores + box-side distributions) into boxes, scores and labels.

Per stride s the model gives, for the (ceil(H / s) x ceil(W / s)) anchor grid in row-major order (row outer):

* scores (1, N_s, C) float32: per-class probabilities (the sigmoid is inside the model);
* boxes  (1, N_s, 4 * (reg_max + 1)) float32: for each side (left, top, right, bottom) logits over the
  reg_max + 1 distances 0, 1, ..., reg_max (in strides).

A side's distance is the expected value of its softmax distribution times the stride; the anchor centre is
((column + offset) * s, (row + offset) * s) with offset 0.5; the box is (cx - left, cy - top, cx + right, cy + bottom)
in model-input pixels (xyxy). Each anchor gets its best class (one label per box, as for the YOLO layouts);
anchors scoring > score_threshold go to greedy NMS (engine.detect.nms). Only the anchors above the threshold have
their distributions decoded, so the cost is the class-max over all anchors plus work per candidate.
"""
from __future__ import annotations

import math

import numpy as np

from engine.detect import nms
from engine.detect.sidecar import GflDecoder


def anchor_grid(input_hw: tuple[int, int], stride: int, offset: float) -> np.ndarray:
    """(N, 2) float32 anchor centres (x, y) in model-input pixels for one stride, row-major (row outer)."""
    rows, cols = math.ceil(input_hw[0] / stride), math.ceil(input_hw[1] / stride)
    ys, xs = np.meshgrid(np.arange(rows, dtype=np.float32), np.arange(cols, dtype=np.float32), indexing="ij")
    return np.stack([(xs.ravel() + offset) * stride, (ys.ravel() + offset) * stride], axis=1).astype(np.float32)


def expected_shapes(layout: GflDecoder, input_hw: tuple[int, int], num_classes: int) -> dict[str, tuple]:
    """Output name -> the (1, N, C) or (1, N, 4 * (reg_max + 1)) shape the layout implies for this input size."""
    shapes = {}
    for s, score_name, box_name in zip(layout.strides, layout.score_outputs, layout.box_outputs):
        n = math.ceil(input_hw[0] / s) * math.ceil(input_hw[1] / s)
        shapes[score_name] = (1, n, num_classes)
        shapes[box_name] = (1, n, 4 * (layout.reg_max + 1))
    return shapes


class GflDecoding:
    """Decoder state for one input size: the anchor grids (built once) and the expected output shapes."""

    def __init__(self, layout: GflDecoder, input_hw: tuple[int, int], num_classes: int):
        self.layout, self.input_hw, self.num_classes = layout, tuple(input_hw), int(num_classes)
        self.output_names = [n for pair in zip(layout.score_outputs, layout.box_outputs) for n in pair]
        self.shapes = expected_shapes(layout, self.input_hw, self.num_classes)
        self._centres = [anchor_grid(self.input_hw, s, layout.centre_offset) for s in layout.strides]
        self._bins = np.arange(layout.reg_max + 1, dtype=np.float32)

    def check_shapes(self, shapes: dict[str, tuple], source: str) -> None:
        """ValueError naming the output when a static shape (name -> tuple; None for dynamic axes) disagrees."""
        for name, want in self.shapes.items():
            if name not in shapes:
                raise ValueError(f"{source}: decoder output '{name}' is not an output of the model "
                                 f"(outputs: {sorted(shapes)})")
            got = tuple(shapes[name])
            if len(got) != 3 or any(g is not None and g != w for g, w in zip(got, want)):
                raise ValueError(f"{source}: output '{name}' has shape {got}, the side-car implies {want} "
                                 f"({self.num_classes} classes, reg_max {self.layout.reg_max}, input "
                                 f"{self.input_hw[0]}x{self.input_hw[1]})")

    def decode(self, outputs: list[np.ndarray], *, score_threshold: float = 0.25, iou_threshold: float = 0.6,
               max_detections: int = 300, max_candidates: int = 30000,
               class_agnostic: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw outputs, in ``output_names`` order -> (boxes (K, 4) float32 xyxy model-input pixels, scores (K,)
        float32, labels (K,) int32), K <= max_detections, highest score first."""
        self.check_shapes({n: o.shape for n, o in zip(self.output_names, outputs)}, "model outputs")
        boxes, scores, labels = [], [], []
        for k, stride in enumerate(self.layout.strides):
            cls = outputs[2 * k][0]                                    # (N, C)
            best = cls.max(axis=1)
            cand = np.flatnonzero(best > score_threshold)
            if not len(cand):
                continue
            labels.append(cls[cand].argmax(axis=1).astype(np.int32))
            scores.append(best[cand].astype(np.float32, copy=False))
            boxes.append(self._boxes(outputs[2 * k + 1][0, cand], self._centres[k][cand], stride))
        if not scores:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)
        boxes_a, scores_a, labels_a = np.concatenate(boxes), np.concatenate(scores), np.concatenate(labels)
        if scores_a.max() > 1.0:
            raise ValueError(f"model outputs: class scores up to {float(scores_a.max()):.3g} > 1; the nanodet_gfl "
                             f"layout expects sigmoid probabilities, not logits")
        if len(scores_a) > max_candidates:
            top = np.argpartition(-scores_a, max_candidates - 1)[:max_candidates]
            boxes_a, scores_a, labels_a = boxes_a[top], scores_a[top], labels_a[top]
        ok = np.isfinite(boxes_a).all(axis=1) & (boxes_a[:, 2] > boxes_a[:, 0]) & (boxes_a[:, 3] > boxes_a[:, 1])
        if not ok.all():
            boxes_a, scores_a, labels_a = boxes_a[ok], scores_a[ok], labels_a[ok]
        keep = nms.nms_sorted_unchecked(boxes_a, scores_a, labels_a, iou_threshold, max_detections, class_agnostic)
        return boxes_a[keep], scores_a[keep], labels_a[keep]

    def _boxes(self, dist: np.ndarray, centres: np.ndarray, stride: int) -> np.ndarray:
        """dist (K, 4 * (reg_max + 1)) logits, centres (K, 2) -> (K, 4) float32 xyxy model-input pixels."""
        logits = dist.reshape(len(dist), 4, -1).astype(np.float32, copy=False)
        e = np.exp(logits - logits.max(axis=2, keepdims=True))        # stable softmax over the bins
        side = (e @ self._bins) / e.sum(axis=2) * np.float32(stride)  # (K, 4): left, top, right, bottom
        return np.stack([centres[:, 0] - side[:, 0], centres[:, 1] - side[:, 1],
                         centres[:, 0] + side[:, 2], centres[:, 1] + side[:, 3]], axis=1).astype(np.float32)
