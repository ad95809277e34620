"""Relation metrics with the reference scorers' semantics: VidVRD detection / tagging and Action Genome recall.

numpy only (no torch), so ``vsgg eval`` and tests stay cheap. See each module's docstring for the exact rules:

* ``vidvrd``: VideoRelation (triplet + frame interval + trajectories), its sources and JSON form, vIoU.
* ``relation_detection``: VidVRD-helper mAP, pooled R@N, per-predicate recall and mR@N.
* ``relation_tagging``: VidVRD-helper P@K over deduplicated triplets.
* ``action_genome``: STTran R@K with / semi / no constraint, mR@K (accumulated and per-frame variants).
* ``mean_recall``: the per-class recall accumulators behind both mR variants.
"""
from offline_train.metrics.action_genome import (ActionGenomeEvalConfig, ActionGenomeEvaluator, AGFrameGT,
                                                 AGFramePred, ag_frames_from_annotation, evaluate_action_genome,
                                                 iou_xyxy_plus1)
from offline_train.metrics.mean_recall import MeanRecall
from offline_train.metrics.relation_detection import RelationDetectionConfig, evaluate_relation_detection, voc_ap
from offline_train.metrics.relation_tagging import RelationTaggingConfig, evaluate_relation_tagging
from offline_train.metrics.vidvrd import (VideoRelation, predictions_from_json, predictions_to_json,
                                          video_relations_from_annotation, viou_xyxy)

__all__ = [
    "AGFrameGT", "AGFramePred", "ActionGenomeEvalConfig", "ActionGenomeEvaluator", "MeanRecall",
    "RelationDetectionConfig", "RelationTaggingConfig", "VideoRelation", "ag_frames_from_annotation",
    "evaluate_action_genome", "evaluate_relation_detection", "evaluate_relation_tagging", "iou_xyxy_plus1",
    "predictions_from_json", "predictions_to_json", "video_relations_from_annotation", "viou_xyxy", "voc_ap",
]
