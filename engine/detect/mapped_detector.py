"""A detector whose labels are the engine's object labels: class map applied, unknown classes reported once per class.

The relation model knows a fixed object vocabulary (``objects``); a pretrained detector has its own classes (COCO).
``MappedDetector`` turns each detection's class into an object label through a ClassMap (engine.detect.class_map),
or by equal name when no map is given. A detector class with no object label ("unknown": the map sends it to null,
does not list it, or names a label the model lacks) is logged once per class the first time it is detected, never
dropped silently. With ``keep_unknown`` such detections are kept: ``vocabulary`` is then ``objects`` followed by the
unknown class names, and their labels are >= ``num_known``, so the engine can track and publish them as entities
while giving them no relations (the relation model has no embedding for them).
"""
from __future__ import annotations

import logging

import numpy as np

from engine.config import ClassMapConfig
from engine.detect.class_map import ClassMap, load_class_map
from engine.types import Detections
from engine.vocab import Vocabulary

log = logging.getLogger(__name__)


class MappedDetector:
    """Wraps a detector (``.classes`` Vocabulary, ``.detect(image) -> Detections``, ``.warmup()``).

    detect(image) returns Detections whose labels index ``vocabulary``; labels < ``num_known`` are the relation
    model's objects. State: the set of unknown classes already reported and per-class counts of unknown detections,
    both bounded by the detector's class count.
    """

    def __init__(self, detector, objects: Vocabulary, class_map: ClassMap | None = None, keep_unknown: bool = False):
        if not isinstance(objects, Vocabulary):
            raise TypeError(f"objects: expected a Vocabulary, got {type(objects).__name__}")
        if class_map is not None and not isinstance(class_map, ClassMap):
            raise TypeError(f"class_map: expected a ClassMap or None, got {type(class_map).__name__}")
        classes = getattr(detector, "classes", None)
        if not isinstance(classes, Vocabulary):
            raise TypeError("detector: expected an object with a .classes Vocabulary (e.g. OnnxDetector)")
        self.detector, self.objects, self.class_map = detector, objects, class_map
        self.keep_unknown = bool(keep_unknown)
        self.num_known = len(objects)
        lut, extras, self._why = [], [], {}
        for name in classes.names:
            target = class_map.target_of(name) if class_map is not None else name
            if target is not None and target in objects:
                lut.append(objects.index(target))
                continue
            self._why[name] = self._reason(name, target)
            extra = name if name not in objects and name not in extras else f"{name} (detector)"
            extras.append(extra)
            lut.append(self.num_known + len(extras) - 1 if self.keep_unknown else -1)
        if len(extras) == len(classes) and not self.keep_unknown:
            raise ValueError(f"class_map: none of the detector's {len(classes)} classes maps to an object of "
                             f"'{objects.name}'; pass the right class map (e.g. coco_to_vidvrd) or keep_unknown")
        self.vocabulary = (Vocabulary(f"{objects.name}+unknown", objects.names + tuple(extras))
                           if self.keep_unknown and extras else objects)
        self._lut = np.array(lut, np.int64)
        self.reported: set[str] = set()
        self.unknown_counts: dict[str, int] = {}

    def _reason(self, name: str, target: str | None) -> str:
        if self.class_map is None:
            return f"'{self.objects.name}' has no object named '{name}' (no class map given)"
        if target is None:
            return f"class map '{self.class_map.name}' maps it to nothing"
        return f"class map '{self.class_map.name}' maps it to '{target}', which '{self.objects.name}' lacks"

    def warmup(self) -> None:
        self.detector.warmup()

    def detect(self, image) -> Detections:
        """One image -> Detections with labels in ``vocabulary`` (unknown classes dropped unless keep_unknown)."""
        d = self.detector.detect(image)
        b = d.boxes_xyxy
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        if (area <= 0).any():  # clipped to nothing at the image edge: no object to track or relate
            ok = area > 0
            d = Detections(b[ok], d.scores[ok], d.labels[ok], None if d.features is None else d.features[ok])
        labels = self._lut[d.labels]
        unknown = (labels >= self.num_known) | (labels < 0)
        if unknown.any():
            self._count(d.labels[unknown])
        if self.keep_unknown or not unknown.any():
            return Detections(d.boxes_xyxy, d.scores, labels.astype(np.int32), d.features)
        keep = ~unknown
        feats = None if d.features is None else d.features[keep]
        return Detections(d.boxes_xyxy[keep], d.scores[keep], labels[keep].astype(np.int32), feats)

    def _count(self, detector_labels: np.ndarray) -> None:
        ids, counts = np.unique(detector_labels, return_counts=True)
        for i, n in zip(ids.tolist(), counts.tolist()):
            name = self.detector.classes.label(i)
            self.unknown_counts[name] = self.unknown_counts.get(name, 0) + n
            if name not in self.reported:
                self.reported.add(name)
                log.warning("detector class '%s' is not an object the relation model knows (%s); %s", name,
                            self._why[name], "kept as an entity without relations" if self.keep_unknown
                            else "its detections are dropped (keep_unknown keeps them as entities)")

    def is_known(self, labels) -> np.ndarray:
        """(N,) bool: which labels (indices into ``vocabulary``) are relation-model objects."""
        return np.asarray(labels) < self.num_known


def build_mapped_detector(detector, objects: Vocabulary, cfg: ClassMapConfig) -> MappedDetector:
    """MappedDetector from its config slice: cfg.class_map ("" = equal names, a built-in name or a YAML path)."""
    if not isinstance(cfg, ClassMapConfig):
        raise TypeError(f"cfg: expected ClassMapConfig, got {type(cfg).__name__}")
    class_map = load_class_map(cfg.class_map) if cfg.class_map else None
    return MappedDetector(detector, objects, class_map, cfg.keep_unknown)
