"""build_model(cfg, tables): the only place the relation model's parts are chosen and wired."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from offline_train.models.arn import ArnConfig, build_arn_head
from offline_train.models.dll import DllConfig, build_dll_head
from offline_train.models.fremure import FremureConfig, build_fremure_head
from offline_train.models.pair_token import PairTokenizer
from offline_train.models.relation_head import RelationHead
from offline_train.models.sgg import StreamingRelationModel
from offline_train.models.spatial import SpatialEncoder
from offline_train.models.temporal import ShortTermMessage, TemporalDecoder
from offline_train.models.tr2_guidance import CurrentToken, NoMessage, RelationGuidance, Tr2Config
from offline_train.models.uasan import ContextTokenizer, OpenVocabHead, UasanConfig

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
    # The five papers' components (issue 14); their defaults build today's model exactly.
    fremure: FremureConfig = field(default_factory=FremureConfig)
    tr2: Tr2Config = field(default_factory=Tr2Config)
    dll: DllConfig = field(default_factory=DllConfig)
    uasan: UasanConfig = field(default_factory=UasanConfig)
    arn: ArnConfig = field(default_factory=ArnConfig)

    def __post_init__(self):
        if self.window < 2:
            raise ValueError("model.window must be >= 2")
        if self.d_model % self.n_heads:
            raise ValueError("model.d_model must be divisible by model.n_heads")
        heads = [n for n, on in (("model.dll.enabled", self.dll.enabled), ("model.fremure", self.fremure.active),
                                 ("model.uasan.enabled", self.uasan.enabled), ("model.arn.enabled", self.arn.enabled))
                 if on]
        if len(heads) > 1:
            raise ValueError(f"{' and '.join(heads)}: each replaces the predicate head; switch all but one off")
        if self.arn.enabled and self.d_head % self.n_heads:
            raise ValueError("model.d_head must be divisible by model.n_heads when model.arn.enabled")


def build_model(cfg: ModelConfig, num_features: int, label_table, predicate_table, groups) -> StreamingRelationModel:
    """label_table (C_obj, E) and predicate_table (C_pred, E): text embeddings; groups: (name, kind, indices)."""
    lt, pt = torch.as_tensor(label_table), torch.as_tensor(predicate_table)
    # Parts are built in the same order as before the switches existed, so a seeded default build draws the same
    # initial weights; a switched-off part is replaced by its parameter-free stand-in.
    if cfg.uasan.enabled:
        tokenizer = ContextTokenizer(num_features, lt, cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.uasan.context_layers,
                                     cfg.dropout)
    else:
        tokenizer = PairTokenizer(num_features, lt, cfg.d_model, cfg.dropout)
    spatial = SpatialEncoder(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.spatial_layers if cfg.tr2.spatial else 0,
                             cfg.dropout)
    temporal = (TemporalDecoder(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.window, cfg.dropout) if cfg.tr2.temporal
                else CurrentToken(cfg.window))
    message = ShortTermMessage(cfg.d_model) if cfg.tr2.message else NoMessage()
    d_rel = 2 * cfg.d_model if cfg.tr2.message else cfg.d_model
    if cfg.uasan.enabled:
        head = OpenVocabHead(d_rel, pt, cfg.d_head, groups, cfg.uasan.prompt_context, cfg.uasan.logit_scale)
    elif cfg.arn.enabled:
        head = build_arn_head(cfg.arn, d_rel, pt, cfg.d_head, cfg.n_heads, groups)
    elif cfg.dll.enabled:
        head = build_dll_head(cfg.dll, d_rel, pt, cfg.d_head, groups)
    elif cfg.fremure.active:
        head = build_fremure_head(cfg.fremure, d_rel, pt, cfg.d_head, groups)
    else:
        head = RelationHead(d_rel, pt, cfg.d_head, groups)
    guidance = RelationGuidance(d_rel, lt.shape[0], pt.shape[0], cfg.tr2.guidance) if cfg.tr2.guidance > 0 else None
    return StreamingRelationModel(tokenizer, spatial, temporal, message, head, guidance)
