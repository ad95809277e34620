"""VidVRD scoring parity: the metrics against an independent re-implementation of the official VidVRD-helper scorer,
and golden figures, computed by hand, on annotations with touching, overlapping, duplicate and partly boxless
instances.

The reference below is a plain-loop transcription of the official algorithm's description (VidVRD-helper
``evaluation/visual_relation_detection.py``; ``video_relation_detection.py`` adds the top-N cut): it works on the
official JSON records (dicts) and shares no code with ``offline_train.metrics``.
"""
import random

import numpy as np
import pytest

from engine.io.vidvrd import RelationInstance, VideoAnnotation
from engine.vocab import Vocabulary
from offline_train.data.label_map import LabelMap, remap_annotation
from offline_train.evaluate import evaluate_videos
from offline_train.metrics import (RelationDetectionConfig, RelationTaggingConfig, VideoRelation,
                                   evaluate_relation_detection, evaluate_relation_tagging, predictions_from_json,
                                   video_relations_from_annotation)


# ---------------------------------------------------------------------------------------------------------------
# Independent reference (official semantics)
# ---------------------------------------------------------------------------------------------------------------

def ref_viou(traj_1, dur_1, traj_2, dur_2):
    """Voluminal IoU, +1-pixel boxes: shared-frame intersections over both volumes minus them."""
    inter = 0.0
    for f in range(max(dur_1[0], dur_2[0]), min(dur_1[1], dur_2[1])):
        a, b = traj_1[f - dur_1[0]], traj_2[f - dur_2[0]]
        w = min(a[2], b[2]) - max(a[0], b[0]) + 1
        h = min(a[3], b[3]) - max(a[1], b[1]) + 1
        if w > 0 and h > 0:
            inter += w * h
    vol_1 = sum((a[2] - a[0] + 1) * (a[3] - a[1] + 1) for a in traj_1)
    vol_2 = sum((b[2] - b[0] + 1) * (b[3] - b[1] + 1) for b in traj_2)
    return inter / (vol_1 + vol_2 - inter)


def ref_sort_by_score(records):
    """Descending score; equal scores keep their input order (insertion after every equal or higher score)."""
    out = []
    for r in records:
        pos = len(out)
        while pos > 0 and out[pos - 1]["score"] < r["score"]:
            pos -= 1
        out.insert(pos, r)
    return out


def ref_voc_ap(hits, n_gt):
    """Area under the precision envelope of the ranked hit list (VOC2010+)."""
    rec, prec, tp = [], [], 0
    for i, hit in enumerate(hits):
        tp += hit
        rec.append(tp / n_gt)
        prec.append(tp / (i + 1))
    mrec, mpre = [0.0] + rec + [1.0], [0.0] + prec + [0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i])


def ref_evaluate(gt, pred, viou_threshold=0.5, recall_at=(50, 100), precision_at=(1, 5, 10), top=None):
    """gt / pred: video id -> list of official records {triplet, score, duration, sub_traj, obj_traj}."""
    aps, n_gt = [], 0
    hits_at = {n: 0 for n in recall_at}
    pred_hits_at = {n: {} for n in recall_at}
    gt_per_predicate = {}
    prec_at = {k: [] for k in precision_at}
    for vid, gt_rels in gt.items():
        if len(gt_rels) == 0:
            continue
        n_gt += len(gt_rels)
        for g in gt_rels:
            gt_per_predicate[g["triplet"][1]] = gt_per_predicate.get(g["triplet"][1], 0) + 1
        ranked = ref_sort_by_score(pred.get(vid, []))
        if top is not None:
            ranked = ranked[:top]
        detected = [False] * len(gt_rels)
        hits, hit_predicate = [], []
        for p in ranked:
            best, best_k = -float("inf"), -1
            for k, g in enumerate(gt_rels):
                if detected[k] or tuple(p["triplet"]) != tuple(g["triplet"]):
                    continue
                ov = min(ref_viou(p["sub_traj"], p["duration"], g["sub_traj"], g["duration"]),
                         ref_viou(p["obj_traj"], p["duration"], g["obj_traj"], g["duration"]))
                if ov >= viou_threshold and ov > best:
                    best, best_k = ov, k
            if best_k >= 0:
                detected[best_k] = True
            hits.append(best_k >= 0)
            hit_predicate.append(gt_rels[best_k]["triplet"][1] if best_k >= 0 else None)
        aps.append(ref_voc_ap(hits, len(gt_rels)))
        for n in recall_at:
            hits_at[n] += sum(hits[:n])
            for p in hit_predicate[:n]:
                if p is not None:
                    pred_hits_at[n][p] = pred_hits_at[n].get(p, 0) + 1
        gt_triplets = {tuple(g["triplet"]) for g in gt_rels}
        unique = []
        for p in ranked:
            if tuple(p["triplet"]) not in unique:
                unique.append(tuple(p["triplet"]))
        for k in precision_at:
            cut = min(k, len(unique))
            prec_at[k].append(sum(t in gt_triplets for t in unique[:cut]) / cut if cut > 0 else 0.0)
    out = {"mAP": sum(aps) / len(aps), "n_gt": n_gt, "n_videos": len(aps)}
    for n in recall_at:
        out[f"R@{n}"] = hits_at[n] / n_gt
        per = {p: pred_hits_at[n].get(p, 0) / c for p, c in gt_per_predicate.items()}
        out[f"per_predicate_recall@{n}"] = per
        out[f"mR@{n}"] = sum(per.values()) / len(per)
    for k in precision_at:
        out[f"P@{k}"] = sum(prec_at[k]) / len(prec_at[k])
    return out


# ---------------------------------------------------------------------------------------------------------------
# Random cases
# ---------------------------------------------------------------------------------------------------------------

TRIPLETS = [("dog", "chase", "cat"), ("dog", "bite", "cat"), ("cat", "watch", "dog"), ("dog", "chase", "dog")]
SCORES = (0.2, 0.5, 0.5, 0.7, 0.9)  # few values: many ties


def _traj(rng, n, base=None):
    """n xyxy boxes around ``base`` (random if None); rigid cases (``rng.rigid``) do not jitter, so that distinct
    ground-truth instances often tie on vIoU, which exercises the earlier-instance-wins rule."""
    if base is None:
        x, y = rng.randint(0, 60), rng.randint(0, 60)
        base = [x, y, x + rng.randint(2, 20), y + rng.randint(2, 20)]
    out = []
    for _ in range(n):
        d = [0, 0, 0, 0] if rng.rigid else [rng.choice((0, 0, 1, -1)) for _ in range(4)]
        b = [base[i] + d[i] for i in range(4)]
        out.append([float(min(b[0], b[2])), float(min(b[1], b[3])), float(max(b[0], b[2])), float(max(b[1], b[3]))])
    return out


def _record(triplet, begin, end, sub, obj, score=1.0):
    return {"triplet": list(triplet), "score": score, "duration": [begin, end], "sub_traj": sub, "obj_traj": obj}


def _random_gt(rng):
    out = []
    for _ in range(rng.choice((0, 1, 2, 3, 4, 6))):
        kind = rng.random()
        if out and kind < 0.25:  # exact duplicate of an earlier instance
            out.append(dict(out[rng.randrange(len(out))]))
            continue
        if out and kind < 0.5:  # same triplet and boxes, touching or overlapping an earlier instance
            src = out[rng.randrange(len(out))]
            b0, e0 = src["duration"]
            begin = max(0, rng.choice((e0, e0 - 1, e0 - 2, b0 + 1)))
            n = rng.randint(1, 10)
            out.append(_record(src["triplet"], begin, begin + n, _traj(rng, n, src["sub_traj"][0]),
                               _traj(rng, n, src["obj_traj"][0])))
            continue
        begin, n = rng.randint(0, 20), rng.randint(1, 12)
        if rng.rigid and out:  # rigid cases reuse one pair of boxes: instances differ only in time
            sub, obj = [out[0]["sub_traj"][0]] * n, [out[0]["obj_traj"][0]] * n
        else:
            sub, obj = _traj(rng, n), _traj(rng, n)
        out.append(_record(rng.choice(TRIPLETS), begin, begin + n, sub, obj))
    return out


def _random_predictions(rng, gt_rels):
    out = []
    for _ in range(rng.randint(1, 14)):
        if gt_rels and rng.random() < 0.7:  # a perturbed copy of a ground-truth instance
            g = rng.choice(gt_rels)
            b0, e0 = g["duration"]
            begin = max(0, b0 + rng.randint(-3, 3))
            end = max(begin + 1, e0 + rng.randint(-3, 3))
            n = end - begin
            shift = 0 if rng.rigid else rng.randint(0, 4)
            sub = _traj(rng, n, [v + shift for v in g["sub_traj"][0]])
            obj = _traj(rng, n, g["obj_traj"][0])
            triplet = g["triplet"] if rng.random() < 0.85 else rng.choice(TRIPLETS)
            out.append(_record(triplet, begin, end, sub, obj, rng.choice(SCORES)))
        else:
            begin, n = rng.randint(0, 20), rng.randint(1, 12)
            out.append(_record(rng.choice(TRIPLETS), begin, begin + n, _traj(rng, n), _traj(rng, n),
                               rng.choice(SCORES)))
    return out


def _random_case(rng):
    rng.rigid = rng.random() < 0.4
    gt, pred = {}, {}
    while not any(gt.values()):
        gt, pred = {}, {}
        for v in range(rng.randint(1, 5)):
            vid = f"v{v}"
            gt[vid] = _random_gt(rng)
            r = rng.random()
            if r < 0.2:
                continue                  # video absent from the predictions
            pred[vid] = [] if r < 0.3 else _random_predictions(rng, gt[vid])
    return gt, pred


def _ours(records):
    return predictions_from_json({"results": records})


def test_random_cases_match_the_official_algorithm():
    rng = random.Random(20261206)
    seen = {"score_ties": 0, "cut_bites": 0, "no_predictions": 0, "no_gt_with_predictions": 0, "touch_or_dup": 0,
            "tp": 0, "fp": 0}
    for case in range(400):
        gt, pred = _random_case(rng)
        top = rng.choice((None, None, 1, 3, 5))
        det = evaluate_relation_detection(_ours(gt), _ours(pred),
                                          RelationDetectionConfig(recall_at=(1, 3, 50, 100), max_predictions=top))
        tag = evaluate_relation_tagging(_ours(gt), _ours(pred),
                                        RelationTaggingConfig(precision_at=(1, 2, 5, 10), max_predictions=top))
        ref = ref_evaluate(gt, pred, recall_at=(1, 3, 50, 100), precision_at=(1, 2, 5, 10), top=top)
        where = f"case {case} (top={top})"
        assert det["n_gt"] == ref["n_gt"] and det["n_videos"] == ref["n_videos"], where
        assert det["mAP"] == pytest.approx(ref["mAP"], abs=1e-6), where
        for n in (1, 3, 50, 100):
            assert det[f"R@{n}"] == pytest.approx(ref[f"R@{n}"], abs=1e-6), (where, n)
            assert det[f"mR@{n}"] == pytest.approx(ref[f"mR@{n}"], abs=1e-9), (where, n)
            assert det[f"per_predicate_recall@{n}"] == pytest.approx(ref[f"per_predicate_recall@{n}"]), (where, n)
        for k in (1, 2, 5, 10):
            assert tag[f"P@{k}"] == pytest.approx(ref[f"P@{k}"], abs=1e-6), (where, k)
        # what the cases exercised (so the generator cannot silently drift into trivial cases)
        for vid, rels in gt.items():
            scores = [p["score"] for p in pred.get(vid, [])]
            seen["score_ties"] += len(scores) - len(set(scores))
            seen["cut_bites"] += top is not None and len(scores) > top and len(rels) > 0
            seen["no_predictions"] += len(rels) > 0 and not scores
            seen["no_gt_with_predictions"] += len(rels) == 0 and len(scores) > 0
            spans = [(tuple(r["triplet"]), *r["duration"]) for r in rels]
            seen["touch_or_dup"] += any(a[0] == b[0] and a[1] <= b[2] and b[1] <= a[2]
                                        for i, a in enumerate(spans) for b in spans[i + 1:])
        seen["tp"] += round(ref["R@100"] * ref["n_gt"])
        seen["fp"] += sum(len(v) for v in pred.values()) - round(ref["R@100"] * ref["n_gt"])
    assert min(seen.values()) >= 30, seen


def test_reference_itself_on_a_hand_case():
    # the reference must not be trusted blindly: two gt, three predictions, computed by hand.
    box = [0.0, 0.0, 9.0, 9.0]
    gt = {"v": [_record(TRIPLETS[0], 0, 4, [box] * 4, [box] * 4), _record(TRIPLETS[0], 4, 8, [box] * 4, [box] * 4)]}
    # [0, 8) overlaps each gt by 4 of 8 frames: vIoU 400 / (800 + 400 - 400) = 0.5 each, a tie -> the first gt.
    # [4, 8) at 0.5 (tied score, listed first) ranks first and takes gt 2 (vIoU 1); the [0, 8) takes gt 1.
    pred = {"v": [_record(TRIPLETS[0], 4, 8, [box] * 4, [box] * 4, 0.5),
                  _record(TRIPLETS[0], 0, 8, [box] * 8, [box] * 8, 0.5),
                  _record(TRIPLETS[1], 0, 8, [box] * 8, [box] * 8, 0.9)]}
    ref = ref_evaluate(gt, pred, recall_at=(1, 2), precision_at=(1, 2))
    # ranking: bite (FP), chase[4,8) (TP), chase[0,8) (TP): rec 0, .5, 1; prec 0, .5, 2/3 -> AP = .5*2/3 + .5*2/3
    assert ref["mAP"] == pytest.approx(2 / 3) and ref["R@1"] == 0.0 and ref["R@2"] == 0.5
    assert ref["P@1"] == 0.0 and ref["P@2"] == 0.5  # unique triplets: bite (miss), chase (hit)
    ours = evaluate_relation_detection(_ours(gt), _ours(pred), RelationDetectionConfig(recall_at=(1, 2)))
    assert ours["mAP"] == pytest.approx(2 / 3) and ours["R@2"] == 0.5


# ---------------------------------------------------------------------------------------------------------------
# Golden figures on hand-made annotations
# ---------------------------------------------------------------------------------------------------------------

DOG, CAT = [0.0, 0, 9, 9], [100.0, 0, 109, 9]  # 10x10 px each (+1 convention): 100 px per frame
ROOT = Vocabulary("o", ("dog", "cat")), Vocabulary("p", ("chase", "bite", "watch", "run_after"))


def _annotation(vid, relations, n_frames=20, cat_missing=()):
    boxes = np.zeros((n_frames, 2, 4), np.float32)
    boxes[:, 0], boxes[:, 1] = DOG, CAT
    boxes[list(cat_missing), 1] = np.nan
    return VideoAnnotation(vid, 10.0, 640, 480, np.array([1, 2]), ("dog", "cat"), boxes, tuple(relations))


def _pred(triplet, begin, end, score):
    sub, obj = (DOG, CAT) if triplet[0] == "dog" else (CAT, DOG)
    return VideoRelation(triplet, begin, end, [sub] * (end - begin), [obj] * (end - begin), score)


CHASE, WATCH, BITE = ("dog", "chase", "cat"), ("cat", "watch", "dog"), ("dog", "bite", "cat")


def _golden():
    R = RelationInstance
    anns = [
        _annotation("g1", [R(1, "chase", 2, 0, 5),     # r0
                           R(1, "chase", 2, 5, 10),    # r1: touches r0
                           R(1, "chase", 2, 8, 14),    # r2: overlaps r1
                           R(1, "chase", 2, 8, 14),    # r3: duplicates r2
                           R(2, "watch", 1, 10, 20)],  # r4: the cat (subject) has no box on frames 14 and 15
                    cat_missing=(14, 15)),
        _annotation("g2", [R(1, "chase", 2, 0, 3)]),  # no predictions at all
        _annotation("g3", []),                         # no ground truth: skipped, although it has predictions
    ]
    preds = {"g1": [_pred(CHASE, 0, 10, 0.9), _pred(CHASE, 8, 14, 0.8), _pred(CHASE, 8, 14, 0.7),
                    _pred(WATCH, 10, 20, 0.6), _pred(CHASE, 0, 5, 0.5), _pred(BITE, 0, 5, 0.4)],
             "g2": [], "g3": [_pred(CHASE, 0, 3, 0.9)]}
    return anns, preds


def test_golden_touching_overlapping_duplicate_and_boxless_instances():
    anns, preds = _golden()
    cats, predicates = LabelMap(ROOT[0], {}), LabelMap(ROOT[1], {})
    anns = [remap_annotation(a, cats, predicates) for a in anns]
    assert [len(a.relations) for a in anns] == [5, 1, 0]  # scored as annotated: nothing merged
    report, _ = evaluate_videos(anns, lambda a: preds[a.video_id])
    # Boxes are constant, so a vIoU is the frame overlap |A & B| / (|A| + |B| - |A & B|) (subject = object).
    # g1, ranked:
    #   .9 chase [0,10):  r0 [0,5) 5/10 = .5, r1 [5,10) 5/10 = .5 (tie: the earlier, r0), r2/r3 2/14 -> TP r0
    #   .8 chase [8,14):  r1 2/9, r2 1.0, r3 1.0 (tie: r2)                                          -> TP r2
    #   .7 chase [8,14):  r3 1.0                                                                    -> TP r3
    #   .6 watch [10,20): subject 8 boxed frames of 10: 800 / (1000 + 800 - 800) = .8; object 1.0   -> TP r4
    #   .5 chase [0,5):   only r1 left, [5,10) merely touches: vIoU 0                               -> FP
    #   .4 bite:          no such ground truth                                                     -> FP
    #   5 gt: rec .2 .4 .6 .8 .8 .8, prec 1 1 1 1 .8 .67 -> AP = 4 * .2 * 1 = 0.8
    # g2: 1 gt, no prediction -> AP 0.  g3: no gt -> skipped.
    # mAP = (0.8 + 0) / 2 = 0.4; R@50 = R@100 = 4 hits / 6 gt = 0.6667
    # (the old merge scored g1 against 2 instances, chase [0,14) and watch [10,20), and g2's alone)
    det, tag = report["relation_detection"], report["relation_tagging"]
    assert report["n_videos"] == 2 and report["n_gt"] == 6
    assert det["mAP"] == pytest.approx(0.4, abs=1e-6)
    assert det["R@50"] == pytest.approx(4 / 6, abs=1e-6) and det["R@100"] == pytest.approx(4 / 6, abs=1e-6)
    # tagging, g1: unique triplets chase (hit), watch (hit), bite (miss): P@1 = 1, P@5 = P@10 = 2/3 (3 unique);
    # g2: no predictions -> 0. Means: P@1 = .5, P@5 = P@10 = 1/3.
    assert tag["P@1"] == 0.5 and tag["P@5"] == pytest.approx(1 / 3) and tag["P@10"] == pytest.approx(1 / 3)
    # per predicate @50: chase 3 of 5 (r0, r2, r3 of g1's 4 + g2's 1), watch 1 of 1 -> mR = (.6 + 1) / 2 = .8
    assert report["per_predicate_recall@50"] == pytest.approx({"chase": 0.6, "watch": 1.0})
    assert report["mean_recall@50"] == pytest.approx(0.8)
    assert report["gt_predicates"] == {"chase": 5, "watch": 1} and "as annotated" in report["ground_truth"]
    # the top-3 cut of the VidOR scorer: g1 keeps .9 .8 .7 (3 TP of 5): AP = .6, mAP = .3, R@50 = 3/6
    gt = {a.video_id: video_relations_from_annotation(a) for a in anns}
    cut = evaluate_relation_detection(gt, preds, RelationDetectionConfig(max_predictions=3))
    assert cut["mAP"] == pytest.approx(0.3, abs=1e-6) and cut["R@50"] == 0.5


def test_golden_label_map_collapse_is_the_only_merge():
    R = RelationInstance
    ann = _annotation("c", [R(1, "chase", 2, 0, 5), R(1, "run_after", 2, 3, 8),   # two names for one relation
                            R(1, "chase", 2, 10, 12), R(1, "chase", 2, 12, 14)])  # one name, touching: kept apart
    cats = LabelMap(ROOT[0], {})
    collapsed = remap_annotation(ann, cats, LabelMap(ROOT[1], {"run_after": "chase"}))
    assert [(r.predicate, r.begin_fid, r.end_fid) for r in collapsed.relations] == [
        ("chase", 0, 8), ("chase", 10, 12), ("chase", 12, 14)]
    preds = [_pred(CHASE, 12, 14, 0.95), _pred(CHASE, 0, 8, 0.9), _pred(CHASE, 10, 14, 0.8)]
    # .95 [12,14) -> [12,14) 1.0 TP; .9 [0,8) -> [0,8) 1.0 TP; .8 [10,14) -> [10,12) 2/4 = .5 TP
    # 3 of 3: AP = 1, R@50 = 1
    d = evaluate_relation_detection({"c": video_relations_from_annotation(collapsed)}, {"c": preds})
    assert d["mAP"] == pytest.approx(1.0) and d["R@50"] == 1.0 and d["n_gt"] == 3
    # without the map the two names stay two relations: gt chase [0,5), [10,12), [12,14) and run_after [3,8);
    # .95 TP [12,14); .9 [0,8) vs [0,5): 5/8 TP; .8 TP [10,12); run_after missed -> 3 of 4:
    # rec .25 .5 .75, prec 1 1 1 -> AP = .75, R@50 = .75
    plain = remap_annotation(ann, cats, LabelMap(ROOT[1], {}))
    d = evaluate_relation_detection({"c": video_relations_from_annotation(plain)}, {"c": preds})
    assert d["mAP"] == pytest.approx(0.75) and d["R@50"] == 0.75 and d["n_gt"] == 4
