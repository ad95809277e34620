"""`vsgg eval` implementation: load a model as a stepper, map labels, score videos, compare with baselines."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from engine.vocab import Vocabulary
from offline_train.data.label_map import LabelMap, remap_annotation
from offline_train.data.vidvrd_dataset import find_annotation_files
from engine.io.vidvrd import load_vidvrd
from offline_train.evaluate import (MergeConfig, evaluate_videos, frequency_prior_scores, merge_instances,
                                    score_video, write_outputs)

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "engine" / "models" / "default"


@dataclass
class LoadedModel:
    name: str
    step: Callable
    init_state: Callable[[int], tuple]
    objects: Vocabulary
    predicates: Vocabulary
    lag: int
    prior: np.ndarray | None      # (C_obj, C_obj, C_pred) frequency prior from the training data, if shipped


def _prior(path: Path, n_obj: int, n_pred: int) -> np.ndarray | None:
    f = path / "prior.npy"
    if not f.is_file():
        return None
    prior = np.load(f, allow_pickle=False)
    if prior.shape != (n_obj, n_obj, n_pred):
        raise ValueError(f"{f}: shape {prior.shape} does not match the model vocabularies")
    return prior


def load_torch_stepper(path: str | Path) -> LoadedModel:
    import torch

    from offline_train.train import load_model
    # one step is a few small matmuls: extra threads only add synchronisation (and fight other processes)
    torch.set_num_threads(1)
    model, meta = load_model(path)

    def step(feats, sl, ol, state):
        with torch.no_grad():
            scores, *new = model.forward_step(torch.from_numpy(feats), torch.from_numpy(sl).long(),
                                              torch.from_numpy(ol).long(), *(torch.from_numpy(s) for s in state))
        return scores.numpy(), tuple(n.numpy() for n in new)

    def init(p):
        return tuple(s.numpy() for s in model.initial_state(p))

    objects, predicates = Vocabulary("objects", meta.objects), Vocabulary("predicates", meta.predicates)
    return LoadedModel(f"torch:{path}", step, init, objects, predicates, int(meta.config["feature_lag"]),
                       _prior(Path(path), len(objects), len(predicates)))


def load_stepper(path: str | Path | None) -> LoadedModel:
    """A checkpoint directory (checkpoint.json) runs in torch; anything else goes through engine.backends."""
    p = Path(path) if path is not None else DEFAULT_MODEL_DIR / "checkpoint"
    if (p / "checkpoint.json").is_file():
        return load_torch_stepper(p)
    if not p.exists():
        raise FileNotFoundError(f"model not found: {p}")
    from offline_train.eval_backend import load_backend_stepper
    return load_backend_stepper(p)


def run_eval(model_path, vidvrd_paths, out, report_path, *, predicate_map="", category_map="", unknown="error",
             baselines=True, threshold=None, progress=True) -> dict:
    m = load_stepper(model_path)
    cats = LabelMap.from_file(category_map, m.objects, unknown) if category_map else LabelMap(m.objects, {}, unknown)
    preds = (LabelMap.from_file(predicate_map, m.predicates, unknown) if predicate_map
             else LabelMap(m.predicates, {}, unknown))
    anns = []
    for f in find_annotation_files(list(vidvrd_paths)):
        anns.append(remap_annotation(load_vidvrd(f), cats, preds, where=str(f)))
    merge = MergeConfig() if threshold is None else MergeConfig(threshold=threshold)

    def predict_model(ann):
        labels = np.array(m.objects.indices(ann.categories), np.int64)
        scores, subj, obj = score_video(m.step, m.init_state, ann, labels, m.lag, len(m.predicates))
        return merge_instances(scores, subj, obj, ann, m.predicates, merge)

    bar = tqdm(total=len(anns), desc="eval", disable=not progress, leave=False)

    def counted(fn):
        def inner(ann):
            out_ = fn(ann)
            bar.update(1)
            return out_
        return inner

    report, predictions = evaluate_videos(anns, counted(predict_model))
    full = {"model_path": m.name, "n_videos": report["n_videos"], "n_gt": report["n_gt"], "model": report,
            "merge": vars(merge)}
    if baselines:
        full["baselines"] = {}
        if m.prior is not None:
            def predict_prior(ann):
                labels = np.array(m.objects.indices(ann.categories), np.int64)
                scores, subj, obj = frequency_prior_scores(m.prior, ann, labels)
                return merge_instances(scores, subj, obj, ann, m.predicates, merge)
            full["baselines"]["frequency_prior"] = evaluate_videos(anns, predict_prior)[0]
        from offline_train.synthetic.baseline import rules_predictor
        predict_rules = rules_predictor(m.predicates, merge)
        full["baselines"]["world_rules"] = evaluate_videos(anns, predict_rules)[0]
    bar.close()
    write_outputs(predictions, full, out, report_path)
    return full
