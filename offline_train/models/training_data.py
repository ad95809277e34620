"""Training-set facts the switchable paper components need, written into a freshly built model in one call.

* FReMuRe's frequency gates and DLL's head-to-tail transfer: positive (pair, frame) counts per predicate.
* TR²'s guidance loss: the sentence embeddings of the training set's (subject, predicate, object) triplets.
* DLL: the pattern map must list the training vocabulary's predicates in order.

A model built with every switch off needs none of this and is left untouched.
"""
from __future__ import annotations

import numpy as np
from torch import nn

from offline_train.models import ModelConfig
from offline_train.models.dll import load_pattern_map
from offline_train.models.fremure import set_predicate_frequency
from offline_train.models.tr2_guidance import sentence_table, training_triplets


def predicate_counts(clips, num_predicates: int) -> np.ndarray:
    """(C,) float64 positive (pair, frame) labels per predicate over VideoClip / SparseClip ``clips``."""
    counts = np.zeros(num_predicates, np.float64)
    for c in clips:
        tg = c.observed()[1]
        if tg.shape[-1] != num_predicates:
            raise ValueError(f"clips: {c.video_id} has {tg.shape[-1]} predicates, expected {num_predicates}")
        counts += tg.sum(0)
    return counts


def attach_training_data(model: nn.Module, cfg: ModelConfig, clips, objects, predicates) -> dict:
    """Give ``model`` (built from ``cfg``) what its switched-on components need from the training ``clips``.

    objects / predicates: the vocabularies' names in index order. Returns what was attached ({'frequency_parts',
    'sentences'}); raises ValueError (DLL map vs vocabulary, or no positive label at all) before writing anything."""
    objects, predicates = tuple(objects), tuple(predicates)
    if cfg.dll.enabled:
        load_pattern_map(cfg.dll.patterns).check(predicates)
    uses_counts = cfg.fremure.active or cfg.dll.enabled
    counts = predicate_counts(clips, len(predicates)) if uses_counts else None
    table = None
    if cfg.tr2.guidance > 0:
        table = sentence_table(objects, predicates, training_triplets(clips))
    out = {"frequency_parts": 0, "sentences": 0}
    if counts is not None:
        out["frequency_parts"] = set_predicate_frequency(model, counts, cfg.fremure.freq_eps)
    if table is not None:
        model.guidance.set_sentences(*table)
        out["sentences"] = len(table[0])
    return out
