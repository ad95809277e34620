"""Build the Engine a scene_graph_node runs from its parameter values (no rclpy: testable and reused by benchmarks).

Parameters are those of ``node_params.SCENE_GRAPH_NODE``. The detector's classes (COCO for the shipped NanoDet) are
mapped to the relation model's object labels by a class map (engine.detect.class_map); for Detection2DArray input the
same map turns each hypothesis' ``class_id`` into an object index.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

FILTER_PARAMS = ("filter.enter", "filter.exit", "filter.min_duration_s", "filter.tau_s")


def filter_overrides(values: dict) -> list[str]:
    """``filter.*`` parameter values as EngineConfig dotted overrides."""
    return [f"{k}={values[k]!r}" for k in FILTER_PARAMS if k in values]


MAX_REPORTED_CLASSES = 256  # class ids come from the network: the set of those already reported stays bounded


def build_engine(values: dict, on_unknown: Callable[[str], None] | None = None):
    """(engine, class_index) from parameter values. class_index(class_id) -> object index or None (unmapped);
    ``on_unknown(class_id)`` is called the first time an unmapped class id is seen (for the first
    MAX_REPORTED_CLASSES of them), so a log names each dropped class once.

    Raises ValueError / FileNotFoundError with the reason when a file or value is unusable."""
    from engine.config import load_engine_config
    from engine.runtime import Engine
    from engine.vocab import Vocabulary, builtin

    cfg = load_engine_config(values.get("config") or None, filter_overrides(values))
    class_map = None
    if values.get("class_map"):
        from engine.detect.class_map import load_class_map
        class_map = load_class_map(values["class_map"])
    backend = None
    if str(values["model"]).lower() != "none":
        from engine.backends import load_relation_backend
        backend = load_relation_backend(replace(cfg.relation, model_path=values["model"]))
        objects = Vocabulary("model_objects", tuple(backend.info.objects))
    elif class_map is not None:
        # tracking only: the objects are the class map's targets, so the default map (coco_to_meva) keeps cars
        # and bags instead of dropping every class that a fixed vocabulary lacks
        objects = Vocabulary(f"{class_map.name}_targets", tuple(class_map.targets))
    else:
        objects = builtin("vidvrd_objects")
    detector = None
    if values["input"] == "image":
        from engine.detect.detector import OnnxDetector
        from engine.detect.mapped_detector import MappedDetector
        det_cfg = replace(cfg.detector, model_path=values["detector"],
                          classes_file=values.get("classes") or cfg.detector.classes_file)
        detector = MappedDetector(OnnxDetector(det_cfg), objects, class_map)

    reported: set[str] = set()

    def class_index(class_id: str) -> int | None:
        target = class_map.target_of(class_id) if class_map is not None else class_id
        if target is not None and target in objects:
            return objects.index(target)
        if on_unknown is not None and class_id not in reported and len(reported) < MAX_REPORTED_CLASSES:
            reported.add(class_id)
            on_unknown(class_id)
        return None

    return Engine(cfg, objects, backend, detector), class_index
