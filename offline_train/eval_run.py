"""`vsgg eval` implementation: load a model as a stepper, map labels, score videos, compare with baselines."""
from __future__ import annotations

from dataclasses import replace

from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.io.vidvrd import load_vidvrd
from offline_train.data.label_map import LabelMap, remap_annotation
from offline_train.data.vidvrd_dataset import find_annotation_files
from offline_train.evaluate import (MergeConfig, evaluate_videos, frequency_prior_scores, merge_instances,
                                    score_video, write_outputs)
from offline_train.plots import plot_recall_comparison
from offline_train.stepper import load_stepper


def run_eval(model_path, vidvrd_paths, out, report_path, *, predicate_map="", category_map="", unknown="error",
             baselines=True, threshold=None, progress=True, merge: MergeConfig | None = None) -> dict:
    """``merge``: the instance rules (default ``MergeConfig()``); ``threshold`` replaces its threshold."""
    m = load_stepper(model_path)
    cats = LabelMap.from_file(category_map, m.objects, unknown) if category_map else LabelMap(m.objects, {}, unknown)
    preds = (LabelMap.from_file(predicate_map, m.predicates, unknown) if predicate_map
             else LabelMap(m.predicates, {}, unknown))
    anns = []
    for f in find_annotation_files(list(vidvrd_paths)):
        try:
            anns.append(remap_annotation(load_vidvrd(f), cats, preds, where=str(f)))
        except ValueError as e:
            if category_map or predicate_map or unknown == "drop":
                raise
            raise ValueError(f"{e}. Annotations in another label space (e.g. VidOR) need --category-map and "
                             "--predicate-map files (tests/data/vidor/*.yaml are examples), or --unknown drop") from e
    merge = merge or MergeConfig()
    if threshold is not None:
        merge = replace(merge, threshold=threshold)

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
    full["chart"] = str(Path(report_path).with_suffix(".png"))
    write_outputs(predictions, full, out, report_path)
    plot_recall_comparison({"model": report["per_predicate_recall@50"],
                            **{k: v["per_predicate_recall@50"] for k, v in full.get("baselines", {}).items()}},
                           full["chart"], f"per-predicate recall@50 ({full['n_gt']} GT instances)")
    return full
