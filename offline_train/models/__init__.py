"""build_model(cfg, tables): the only place the relation model's parts are chosen and wired."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from offline_train.models.pair_token import PairTokenizer
from offline_train.models.relation_head import RelationHead
from offline_train.models.sgg import StreamingRelationModel
from offline_train.models.spatial import SpatialEncoder
from offline_train.models.temporal import ShortTermMessage, TemporalDecoder

MODEL_VERSION = 1  # bump when the architecture or the meaning of its inputs/outputs changes


@dataclass(frozen=True)
class ModelConfig:
    d_model: int = 64
    n_heads: int = 4
    d_ff: int = 128
    spatial_layers: int = 1
    window: int = 8            # L: tokens the temporal decoder sees (current + L-1 previous observations)
    d_head: int = 64
    dropout: float = 0.1

    def __post_init__(self):
        if self.window < 2:
            raise ValueError("model.window must be >= 2")
        if self.d_model % self.n_heads:
            raise ValueError("model.d_model must be divisible by model.n_heads")


def build_model(cfg: ModelConfig, num_features: int, label_table, predicate_table, groups) -> StreamingRelationModel:
    """label_table (C_obj, E) and predicate_table (C_pred, E): text embeddings; groups: (name, kind, indices)."""
    lt, pt = torch.as_tensor(label_table), torch.as_tensor(predicate_table)
    return StreamingRelationModel(
        PairTokenizer(num_features, lt, cfg.d_model, cfg.dropout),
        SpatialEncoder(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.spatial_layers, cfg.dropout),
        TemporalDecoder(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.window, cfg.dropout),
        ShortTermMessage(cfg.d_model),
        RelationHead(2 * cfg.d_model, pt, cfg.d_head, groups),
    )
