"""VidVRD relation detection / tagging metrics: hand-computed cases for each quirk of the reference scorer."""
import json
from pathlib import Path

import numpy as np
import pytest

from engine.io.vidvrd import load_vidvrd, parse_vidvrd
from offline_train.metrics import (
    RelationDetectionConfig,
    RelationTaggingConfig,
    VideoRelation,
    evaluate_relation_detection,
    evaluate_relation_tagging,
    predictions_from_json,
    predictions_to_json,
    video_relations_from_annotation,
    viou_xyxy,
    voc_ap,
)
from offline_train.metrics.mean_recall import MeanRecall

VIDOR = Path(__file__).resolve().parents[1] / "data" / "vidor" / "3598080384.json"
T1, T2, T3 = ("dog", "chase", "cat"), ("dog", "bite", "cat"), ("cat", "watch", "dog")


def box_at(dx: float, n: int = 1) -> np.ndarray:
    """n frames of the 10x10 (+1 convention) box at x offset dx: [10+dx, 0, 19+dx, 9]."""
    return np.tile([10.0 + dx, 0.0, 19.0 + dx, 9.0], (n, 1))


def inst(triplet=T1, dx=0.0, score=1.0, begin=0, n=1) -> VideoRelation:
    """Subject and object share the trajectory, so min(vIoU sub, vIoU obj) is the vIoU of that trajectory."""
    return VideoRelation(triplet, begin, begin + n, box_at(dx, n), box_at(dx, n), score)


# Shifting the 10x10 box by dx keeps (10 - dx) * 10 pixels in common: IoU(dx) = 10(10-dx) / (200 - 10(10-dx)).
# dx=1: 90/110 = 0.818; dx=2: 80/120 = 0.667; dx=4: 60/140 = 0.429.


def test_viou_uses_plus_one_pixel_areas():
    a, b = np.array([[0.0, 0, 9, 9]]), np.array([[5.0, 5, 14, 14]])
    # +1 convention: areas 10*10 = 100, intersection (9-5+1)^2 = 25 -> 25 / (200 - 25) = 1/7
    # (without +1 it would be 16 / (81 + 81 - 16) = 0.1096)
    assert viou_xyxy(a, 0, b, 0) == pytest.approx(1 / 7)


def test_viou_over_union_of_durations():
    box = [[0.0, 0, 9, 9]]
    a, b = np.repeat(box, 4, 0), np.repeat(box, 4, 0)
    # a covers frames [0, 4), b [2, 6): 2 shared frames of 100 px; volumes 400 + 400 -> 200 / (800 - 200) = 1/3
    assert viou_xyxy(a, 0, b, 2) == pytest.approx(1 / 3)
    assert viou_xyxy(b, 2, a, 0) == pytest.approx(1 / 3)
    # b nested in a longer a over [0, 10): 400 / (1000 + 400 - 400) = 0.4
    assert viou_xyxy(np.repeat(box, 10, 0), 0, b, 3) == pytest.approx(0.4)
    assert viou_xyxy(a, 0, b, 4) == 0.0   # touching intervals [0, 4) and [4, 8): no shared frame
    assert viou_xyxy(a, 0, b, 9) == 0.0   # disjoint


def test_greedy_matching_follows_score_order_and_picks_best_overlap():
    # gt[0] at dx=3, gt[1] at dx=0, same triplet. A (score .9, dx=1): vIoU gt[0] (dx 2) = .667, gt[1] (dx 1) = .818
    # -> A takes gt[1], the best overlap, not the first listed. B (score .8, dx=-1): gt[1] is taken, gt[0] is at
    # dx 4 = .429 < .5 -> false positive. Had B been matched first (input order), both would hit.
    gt = {"v": [inst(dx=3), inst(dx=0)]}
    pred = {"v": [inst(dx=-1, score=0.8), inst(dx=1, score=0.9)]}
    r = evaluate_relation_detection(gt, pred)
    assert r["R@50"] == pytest.approx(0.5)  # 1 hit / 2 gt
    # ranked TP, FP: rec [.5, .5], prec [1, .5] -> AP = .5 * 1 = .5
    assert r["mAP"] == pytest.approx(0.5)


def test_duplicate_predictions_match_one_ground_truth_once():
    gt = {"v": [inst()]}
    pred = {"v": [inst(score=s) for s in (0.9, 0.8, 0.7)]}
    r = evaluate_relation_detection(gt, pred, RelationDetectionConfig(recall_at=(1, 3)))
    # TP, FP, FP: recall 1 from the first, AP = 1 * 1 = 1; the duplicates are not extra hits
    assert r["R@1"] == 1.0 and r["R@3"] == 1.0 and r["mAP"] == pytest.approx(1.0)
    t = evaluate_relation_tagging(gt, pred)
    assert t["P@5"] == 1.0  # the three duplicates are one tagged triplet


def test_ap_uses_the_monotone_precision_envelope():
    # 3 gt of distinct triplets; ranking TP, FP, FP, TP, TP.
    # rec = [1/3, 1/3, 1/3, 2/3, 1], prec = [1, 1/2, 1/3, 1/2, 3/5]; envelope at recall 2/3 is max(1/2, 3/5) = 3/5.
    # AP = 1/3 * 1 + 1/3 * 3/5 + 1/3 * 3/5 = 11/15 = 0.7333 (raw precision would give 0.7).
    rec = np.array([1, 1, 1, 2, 3]) / 3
    prec = np.array([1, 1 / 2, 1 / 3, 1 / 2, 3 / 5])
    assert voc_ap(rec, prec) == pytest.approx(11 / 15)
    t_a, t_b, t_c, t_fp = ("a", "p", "b"), ("a", "q", "b"), ("a", "r", "b"), ("x", "p", "y")
    gt = {"v": [inst(t_a), inst(t_b), inst(t_c)]}
    pred = {"v": [inst(t_a, score=0.9), inst(t_fp, score=0.8), inst(t_fp, dx=1, score=0.7),
                  inst(t_b, score=0.6), inst(t_c, score=0.5)]}
    assert evaluate_relation_detection(gt, pred)["mAP"] == pytest.approx(11 / 15, abs=1e-6)
    assert voc_ap(np.zeros(0), np.zeros(0)) == 0.0


def test_recall_is_pooled_over_videos_and_cut_per_video():
    # video a: 1 gt, hit. video b: 3 gt, none hit. Pooled R = 1/4 (the mean of per-video recalls would be 1/2).
    gt = {"a": [inst()], "b": [inst(T1), inst(T2), inst(T3)]}
    pred = {"a": [inst(score=0.5)], "b": [inst(T1, dx=5, score=0.9)]}
    r = evaluate_relation_detection(gt, pred)
    assert r["R@50"] == pytest.approx(0.25) and r["R@100"] == pytest.approx(0.25)
    # AP: a = 1, b = 0 (only a false positive) -> mAP 0.5
    assert r["mAP"] == pytest.approx(0.5)
    # top-N is per video: a's hit ranks 3rd behind two false positives, so R@2 = 0/1 and R@3 = 1/1
    gt = {"a": [inst()]}
    pred = {"a": [inst(T2, score=0.9), inst(T3, score=0.8), inst(score=0.7)]}
    r = evaluate_relation_detection(gt, pred, RelationDetectionConfig(recall_at=(2, 3)))
    assert r["R@2"] == 0.0 and r["R@3"] == 1.0


def test_per_predicate_recall_and_mean_recall():
    # chase: 2 gt, 2 hits -> 1.0; bite: 2 gt, 0 hits -> 0.0; watch: 1 gt, 1 hit -> 1.0.
    # pooled R = 3/5 = 0.6; mR (mean over the 3 predicates present) = 2/3.
    gt = {"a": [inst(T1), inst(T2)], "b": [inst(T1), inst(T2), inst(T3)]}
    pred = {"a": [inst(T1, score=0.9)], "b": [inst(T1, score=0.9), inst(T3, score=0.8)]}
    r = evaluate_relation_detection(gt, pred)
    assert r["R@50"] == pytest.approx(0.6)
    assert r["per_predicate_recall@50"] == {"bite": 0.0, "chase": 1.0, "watch": 1.0}
    assert r["mR@50"] == pytest.approx(2 / 3)


def test_tagging_precision_divides_by_min_of_k_and_unique_predictions():
    # v1: gt {T1, T2}; unique preds [T1, T2] -> P@1 = 1, P@5 = 2/2 = 1 (the reference divides by 2, not 5).
    # v2: gt {T1}; unique preds [T3, T1] -> P@1 = 0, P@5 = P@10 = 1/2.
    # v3: gt {T1}; no predictions -> 0 for every K.
    gt = {"v1": [inst(T1), inst(T2)], "v2": [inst(T1)], "v3": [inst(T1)]}
    pred = {"v1": [inst(T1, score=0.9), inst(T2, score=0.8)], "v2": [inst(T3, score=0.9), inst(T1, score=0.5)]}
    t = evaluate_relation_tagging(gt, pred)
    assert t["P@1"] == pytest.approx(1 / 3)          # (1 + 0 + 0) / 3
    assert t["P@5"] == pytest.approx(0.5)            # (1 + 1/2 + 0) / 3
    assert t["P@10"] == pytest.approx(0.5)
    assert t["n_videos"] == 3


def test_tagging_deduplicates_triplets_in_score_order():
    # input order is not score order; ranked: T1 .9, T1 .8, T3 .7, T2 .6 -> unique [T1, T3, T2], hits [1, 0, 1]
    # P@1 = 1, P@5 = 2/3 (without dedup it would be 3/4). max_predictions=1 cuts before dedup: [T1] -> P@5 = 1.
    gt = {"v": [inst(T1), inst(T2)]}
    pred = {"v": [inst(T2, score=0.6), inst(T1, score=0.8), inst(T3, score=0.7), inst(T1, score=0.9)]}
    t = evaluate_relation_tagging(gt, pred)
    assert t["P@1"] == 1.0 and t["P@5"] == pytest.approx(2 / 3)
    assert evaluate_relation_tagging(gt, pred, RelationTaggingConfig(max_predictions=1))["P@5"] == 1.0


def test_videos_without_ground_truth_are_skipped_and_missing_predictions_score_zero():
    gt = {"a": [inst()], "empty": [], "nopred": [inst()]}
    pred = {"a": [inst(score=0.9)], "empty": [inst(score=0.9)]}
    r = evaluate_relation_detection(gt, pred)
    assert r["n_videos"] == 2 and r["n_gt"] == 2
    assert r["mAP"] == pytest.approx(0.5) and r["R@50"] == pytest.approx(0.5)  # a: AP 1, nopred: AP 0


def test_max_predictions_truncates_before_matching():
    gt = {"v": [inst()]}
    pred = {"v": [inst(T2, score=0.9), inst(score=0.8)]}
    assert evaluate_relation_detection(gt, pred)["R@50"] == 1.0
    cut = evaluate_relation_detection(gt, pred, RelationDetectionConfig(max_predictions=1))
    assert cut["R@50"] == 0.0 and cut["mAP"] == 0.0


def test_real_vidor_annotation_and_json_round_trip(tmp_path):
    gt_rels = video_relations_from_annotation(load_vidvrd(VIDOR))
    assert [(r.triplet[1], r.begin_fid, r.end_fid, len(r.sub_traj)) for r in gt_rels] == [
        ("next_to", 0, 90, 90), ("next_to", 150, 205, 55), ("in_front_of", 0, 90, 90), ("in_front_of", 150, 205, 55)]
    assert gt_rels[0].sub_traj[0].tolist() == [0, 150, 165, 379]  # frame 0 box of tid 0 (adult)
    gt = {"3598080384": gt_rels}
    perfect = evaluate_relation_detection(gt, gt)
    assert perfect["mAP"] == 1.0 and perfect["R@50"] == 1.0
    # Predictions = the gt with scores .9 .8 .7 .6, the third given the wrong predicate "behind".
    # Ranking TP, TP, FP, TP of 4 gt: rec [.25 .5 .5 .75], prec [1 1 2/3 3/4]
    # AP = .25*1 + .25*1 + .25*.75 + .25*0 = 0.6875; R@50 = 3/4; next_to 2/2, in_front_of 1/2 -> mR 0.75.
    preds = []
    for r, s in zip(gt_rels, (0.9, 0.8, 0.7, 0.6)):
        t = (r.triplet[0], "behind", r.triplet[2]) if s == 0.7 else r.triplet
        preds.append(VideoRelation(t, r.begin_fid, r.end_fid, r.sub_traj, r.obj_traj, s))
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(predictions_to_json({"3598080384": preds})))
    pred = predictions_from_json(json.loads(path.read_text()))
    d = evaluate_relation_detection(gt, pred)
    assert d["mAP"] == pytest.approx(0.6875, abs=1e-6) and d["R@50"] == 0.75
    assert d["per_predicate_recall@50"] == {"in_front_of": 0.5, "next_to": 1.0} and d["mR@50"] == 0.75
    # tagging: unique [next_to, behind, in_front_of] -> hits [1, 0, 1]: P@1 = 1, P@5 = P@10 = 2/3
    t = evaluate_relation_tagging(gt, pred)
    assert t["P@1"] == 1.0 and t["P@5"] == pytest.approx(2 / 3) and t["P@10"] == pytest.approx(2 / 3)
    assert predictions_from_json(predictions_to_json(pred)["results"]).keys() == pred.keys()  # bare mapping


@pytest.mark.parametrize("kwargs, field", [
    (dict(sub_traj=np.zeros((1, 3))), "sub_traj"),
    (dict(obj_traj=np.zeros((2, 4))), "obj_traj"),                         # 2 boxes for a 1-frame duration
    (dict(sub_traj=[[5.0, 0, 4, 9]]), "sub_traj"),                         # x2 < x1
    (dict(obj_traj=[[0.0, 0, np.nan, 9]]), "obj_traj"),                   # partly NaN: not a missing box
    (dict(sub_traj=[[np.nan] * 4]), "sub_traj"),                           # no box on any frame
    (dict(obj_traj=[[0.0, 0, np.inf, 9]]), "obj_traj"),
    (dict(score=float("nan")), "score"),
    (dict(score="high"), "score"),
    (dict(end_fid=0), "duration"),
    (dict(begin_fid=1.5), "begin_fid"),
    (dict(triplet=("a", "b")), "triplet"),
])
def test_bad_relation_instance_names_the_field(kwargs, field):
    args = dict(triplet=T1, begin_fid=0, end_fid=1, sub_traj=[[0.0, 0, 9, 9]], obj_traj=[[0.0, 0, 9, 9]], score=0.5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        VideoRelation(**args)


def test_bad_inputs_raise_value_errors():
    gt = {"v": [inst()]}
    with pytest.raises(ValueError, match="not in the ground truth"):
        evaluate_relation_detection(gt, {"w": [inst()]})
    with pytest.raises(ValueError, match="not in the ground truth"):
        evaluate_relation_tagging(gt, {"w": [inst()]})
    with pytest.raises(ValueError, match="no video has a relation"):
        evaluate_relation_detection({"v": []}, {})
    with pytest.raises(TypeError, match="VideoRelation"):
        evaluate_relation_detection(gt, {"v": [{"triplet": T1}]})
    with pytest.raises(ValueError, match=r"predictions\['v'\]\[0\]: missing field"):
        predictions_from_json({"results": {"v": [{"triplet": list(T1), "score": 1.0}]}})
    with pytest.raises(ValueError, match=r"predictions\['v'\]\[0\].score"):
        predictions_from_json({"v": [{"triplet": list(T1), "score": None, "duration": [0, 1],
                                      "sub_traj": [[0, 0, 1, 1]], "obj_traj": [[0, 0, 1, 1]]}]})
    with pytest.raises(ValueError, match="viou_threshold"):
        RelationDetectionConfig(viou_threshold=1.5)
    with pytest.raises(ValueError, match="recall_at"):
        RelationDetectionConfig(recall_at=(0,))
    with pytest.raises(ValueError, match="precision_at"):
        RelationTaggingConfig(precision_at=())
    with pytest.raises(ValueError, match="max_predictions"):
        RelationTaggingConfig(max_predictions=0)
    anno = json.loads(VIDOR.read_text())
    for f in range(150, 205):  # the stingray leaves for the whole of relation_instances[1]
        anno["trajectories"][f] = [b for b in anno["trajectories"][f] if b["tid"] != 1]
    with pytest.raises(ValueError, match=r"relation_instances\[1\]: object tid 1 has no box on any frame"):
        video_relations_from_annotation(parse_vidvrd(anno))
    # the official prediction file has a box on every frame: null there is an error, in and out
    box = [[0, 0, 1, 1]]
    with pytest.raises(ValueError, match=r"predictions\['v'\]\[0\].obj_traj: box 1 is missing"):
        predictions_from_json({"v": [{"triplet": list(T1), "score": 1.0, "duration": [0, 2], "sub_traj": box * 2,
                                      "obj_traj": box + [[None] * 4]}]})
    with pytest.raises(ValueError, match=r"predictions\['v'\]\[0\].obj_traj: not a numeric"):
        predictions_from_json({"v": [{"triplet": list(T1), "score": 1.0, "duration": [0, 2], "sub_traj": box * 2,
                                      "obj_traj": box + [None]}]})
    holed = VideoRelation(T1, 0, 2, [[0.0, 0, 1, 1], [np.nan] * 4], box * 2)
    with pytest.raises(ValueError, match=r"preds\['v'\]\[0\].sub_traj: box 1 is missing"):
        predictions_to_json({"v": [holed]})


def test_missing_ground_truth_boxes_cover_no_pixels():
    # ground truth over frames [0, 4) whose subject is out of view on frames 1 and 2 (NaN rows)
    box = [0.0, 0, 9, 9]
    gt = VideoRelation(T1, 0, 4, [box, [np.nan] * 4, [np.nan] * 4, box], [box] * 4)
    pred = VideoRelation(T1, 0, 4, [box] * 4, [box] * 4, 0.9)
    # subject: 2 shared boxed frames of 100 px; volumes 400 (pred) + 200 (gt) -> 200 / (600 - 200) = 0.5
    assert viou_xyxy(pred.sub_traj, 0, gt.sub_traj, 0) == pytest.approx(0.5)
    assert viou_xyxy(gt.sub_traj, 0, pred.sub_traj, 0) == pytest.approx(0.5)
    assert evaluate_relation_detection({"v": [gt]}, {"v": [pred]})["R@50"] == 1.0  # min(0.5, 1.0) >= 0.5
    # a prediction over [1, 3) meets the gt only on missing frames: nothing shared -> 0 / (200 + 200) = 0
    assert viou_xyxy(np.array([box] * 2), 1, gt.sub_traj, 0) == 0.0
    # from an annotation: the adult leaves frame 10 of relation_instances[0] ([0, 90)) and it is still scored
    anno = json.loads(VIDOR.read_text())
    anno["trajectories"][10] = [b for b in anno["trajectories"][10] if b["tid"] != 0]
    gt_rels = video_relations_from_annotation(parse_vidvrd(anno))
    assert len(gt_rels) == 4 and np.isnan(gt_rels[0].sub_traj[10]).all() and not np.isnan(gt_rels[0].obj_traj).any()
    full = video_relations_from_annotation(load_vidvrd(VIDOR))[0]
    assert evaluate_relation_detection({"v": gt_rels}, {"v": [full]})["R@50"] == 0.25


def test_mean_recall_rejects_bad_counts():
    mr = MeanRecall(2)
    with pytest.raises(ValueError, match="hits"):
        mr.add([2, 0], [1, 0])
    with pytest.raises(ValueError, match="counts"):
        mr.add([0, 0], [1.0, 0.0])
    with pytest.raises(ValueError, match="shape"):
        mr.add([0], [1])
    assert mr.counts.tolist() == [0, 0]  # nothing accepted from the rejected calls
