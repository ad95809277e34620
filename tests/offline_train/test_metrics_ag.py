"""Action Genome recall metrics: hand-computed cases for with / semi / no constraint and both mR@K variants."""
from pathlib import Path

import numpy as np
import pytest

from engine.io.vidvrd import RelationInstance, VideoAnnotation
from engine.vocab import builtin
from offline_train.data.action_genome import load_action_genome
from offline_train.metrics import (
    ActionGenomeEvalConfig,
    ActionGenomeEvaluator,
    AGFrameGT,
    AGFramePred,
    ag_frames_from_annotation,
    evaluate_action_genome,
    iou_xyxy_plus1,
)
from offline_train.metrics.mean_recall import MeanRecall

AG_FIXTURE = Path(__file__).resolve().parents[1] / "data" / "action_genome_fixture"
PRED = builtin("ag_predicates")
OBJ = builtin("ag_objects")
LOOKING, NOTLOOKING = PRED.index("lookingat"), PRED.index("notlookingat")
ABOVE, INFRONT = PRED.index("above"), PRED.index("infrontof")
CARRYING, HOLDING, TOUCHING = PRED.index("carrying"), PRED.index("holding"), PRED.index("touching")
PERSON, CUP, BOOK = OBJ.index("person"), OBJ.index("cupglassbottle"), OBJ.index("book")
PERSON_BOX = [0.0, 0.0, 99.0, 99.0]
CFG = ActionGenomeEvalConfig(recall_at=(3, 4, 10))


def one_hot(n: int, hot: dict, rest: float = 0.01) -> np.ndarray:
    """(1, n) scores: ``rest`` everywhere, ``hot`` {group-local index: score}."""
    s = np.full(n, rest)
    for i, v in hot.items():
        s[i] = v
    return s[None]


def cup_frame():
    """One person and one cup. GT: (person, lookingat, cup), (cup, infrontof, person), (person, holding, cup),
    (person, touching, cup): 4 triplets."""
    cup_box = [50.0, 50.0, 149.0, 149.0]
    gt = AGFrameGT(PERSON_BOX, [cup_box], [CUP], [LOOKING], [(INFRONT,)], [(HOLDING, TOUCHING)])
    return gt, [PERSON_BOX, cup_box]


def cup_pred(boxes, touching=0.92, box_scores=(1.0, 1.0)):
    """PredCls-style prediction: attention argmax lookingat (.7); spatial argmax infrontof (.6) but nothing above
    .9; contacting carrying .97 (wrong) > holding .95 > touching."""
    return AGFramePred(boxes, [PERSON, CUP], list(box_scores), [[0, 1]],
                       one_hot(3, {0: 0.7, 1: 0.2, 2: 0.1}),
                       one_hot(6, {ABOVE - 3: 0.3, INFRONT - 3: 0.6}, 0.05),
                       one_hot(17, {CARRYING - 9: 0.97, HOLDING - 9: 0.95, TOUCHING - 9: touching}))


def test_iou_uses_plus_one_pixel_areas():
    # areas 100 each, intersection 5 * 5 = 25 -> 25 / 175 = 1/7
    assert iou_xyxy_plus1(np.array([[0.0, 0, 9, 9]]), np.array([[5.0, 5, 14, 14]]))[0, 0] == pytest.approx(1 / 7)


def test_with_semi_no_constraint_on_one_frame():
    gt, boxes = cup_frame()
    r = ActionGenomeEvaluator(CFG).add(gt, cup_pred(boxes))
    # with: candidates carrying .97, lookingat .7, infrontof .6 -> hits lookingat, infrontof = 2/4 at every K
    assert r["with"] == {3: 0.5, 4: 0.5, 10: 0.5}
    # semi: lookingat .7 + contacting above .9: carrying .97, holding .95, touching .92; no spatial candidate.
    # ranked carrying, holding, touching, lookingat: @3 holding+touching = 2/4; @4 + lookingat = 3/4; @10 3/4
    assert r["semi"] == {3: 0.5, 4: 0.75, 10: 0.75}
    # no: all 26; ranked carrying .97, holding .95, touching .92, lookingat .7, infrontof .6, above .3, ...
    # @3 = 2/4, @4 = 3/4, @10 = 4/4
    assert r["no"] == {3: 0.5, 4: 0.75, 10: 1.0}


def test_semi_threshold_is_strict():
    gt, boxes = cup_frame()
    r = ActionGenomeEvaluator(CFG).add(gt, cup_pred(boxes, touching=0.9))
    # touching at exactly .9 is not > .9: semi keeps carrying, holding, lookingat -> 2/4 at K=10
    assert r["semi"][10] == 0.5
    assert r["no"][10] == 1.0


def test_no_constraint_keeps_only_the_top_candidates():
    gt, boxes = cup_frame()
    cfg = ActionGenomeEvalConfig(recall_at=(10,), modes=("no",), no_constraint_max=2)
    # only carrying .97 and holding .95 survive -> 1/4 even at K=10
    assert ActionGenomeEvaluator(cfg).add(gt, cup_pred(boxes))["no"][10] == 0.25


def test_ranking_multiplies_box_scores():
    # With subject/object box scores 1 and .5 the overall scores halve for every candidate of the pair; alone in
    # the frame that changes nothing. Add a second pair (person, book) with box score 1 whose wrong candidates
    # outrank the halved cup ones: book attention notlookingat .8 (x1) > cup lookingat .7 x .5 = .35.
    cup_box, book_box = [50.0, 50.0, 149.0, 149.0], [200.0, 0.0, 260.0, 60.0]
    gt = AGFrameGT(PERSON_BOX, [cup_box], [CUP], [LOOKING], [()], [()])     # 1 triplet: (person, lookingat, cup)
    pred = AGFramePred([PERSON_BOX, cup_box, book_box], [PERSON, CUP, BOOK], [1.0, 0.5, 1.0], [[0, 1], [0, 2]],
                       np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]]), np.full((2, 6), 0.5), np.full((2, 17), 0.5))
    cfg = ActionGenomeEvalConfig(recall_at=(1, 3, 4), modes=("with",))
    # with: book notlookingat .8, book spatial .5, book contacting .5, cup lookingat .35, cup .25, cup .25
    # -> the hit ranks 4th: R@1 = R@3 = 0, R@4 = 1
    assert ActionGenomeEvaluator(cfg).add(gt, pred)["with"] == {1: 0.0, 3: 0.0, 4: 1.0}


def test_box_match_needs_iou_at_least_half_with_plus_one():
    # gt cup [0,0,9,9] (100 px); predicted [0,0,9,4] (50 px): IoU = 50 / 100 = 0.5 >= 0.5 -> hit
    # (without +1: 36 / 81 = 0.44, a miss). [0,0,9,3] (40 px): 0.4 -> miss.
    far_person = [300.0, 300.0, 399.0, 399.0]
    gt = AGFrameGT(far_person, [[0.0, 0, 9, 9]], [CUP], [LOOKING], [()], [()])
    cfg = ActionGenomeEvalConfig(recall_at=(10,), modes=("with",))
    for cup_box, expected in (([0.0, 0, 9, 4], 1.0), ([0.0, 0, 9, 3], 0.0)):
        pred = AGFramePred([far_person, cup_box], [PERSON, CUP], [1.0, 1.0], [[0, 1]],
                           [[0.9, 0.05, 0.05]], np.full((1, 6), 0.1), np.full((1, 17), 0.1))
        assert ActionGenomeEvaluator(cfg).add(gt, pred)["with"][10] == expected


def test_one_candidate_can_recall_two_ground_truth_triplets():
    # two gt cups with identical boxes, both looked at; one predicted pair recalls both (matching is not 1-to-1)
    cup = [50.0, 50.0, 149.0, 149.0]
    gt = AGFrameGT(PERSON_BOX, [cup, cup], [CUP, CUP], [LOOKING, LOOKING], [(), ()], [(), ()])
    pred = AGFramePred([PERSON_BOX, cup], [PERSON, CUP], [1.0, 1.0], [[0, 1]], [[0.9, 0.05, 0.05]],
                       np.full((1, 6), 0.1), np.full((1, 17), 0.1))
    cfg = ActionGenomeEvalConfig(recall_at=(1,), modes=("with",))
    assert ActionGenomeEvaluator(cfg).add(gt, pred)["with"][1] == 1.0  # 2 / 2 from the single top candidate


def mr_frames():
    """Frame 1: 1 cup, GT lookingat + holding, both predicted right. Frame 2: 3 objects, GT lookingat + holding each;
    attention right for all, contacting wrong (carrying) for all."""
    def frame(n, contact_right):
        boxes = [[10.0 + 110 * i, 200.0, 100.0 + 110 * i, 290.0] for i in range(n)]
        gt = AGFrameGT(PERSON_BOX, boxes, [CUP] * n, [LOOKING] * n, [()] * n, [(HOLDING,)] * n)
        contact = one_hot(17, {(HOLDING if contact_right else CARRYING) - 9: 0.9})
        pred = AGFramePred([PERSON_BOX] + boxes, [PERSON] + [CUP] * n, [1.0] * (n + 1),
                           [[0, i + 1] for i in range(n)], np.tile([[0.8, 0.1, 0.1]], (n, 1)),
                           np.full((n, 6), 0.1), np.repeat(contact, n, 0))
        return gt, pred
    return [frame(1, True), frame(3, False)]


def test_mean_recall_variants_differ():
    frames = mr_frames()
    cfg = ActionGenomeEvalConfig(recall_at=(10,), modes=("with",), mean_recall_over="present")
    r = evaluate_action_genome([g for g, _ in frames], [p for _, p in frames], cfg)["with"]
    # R@10: frame 1 = 2/2, frame 2 = 3/6 -> mean 0.75
    assert r["R@10"] == pytest.approx(0.75)
    # accumulated: lookingat 4/4 = 1, holding 1/4 = .25 -> mR = .625
    assert r["per_predicate_recall@10_accumulated"] == {"lookingat": 1.0, "holding": 0.25}
    assert r["mR@10_accumulated"] == pytest.approx(0.625)
    # per frame: lookingat (1 + 1)/2 = 1, holding (1/1 + 0/3)/2 = .5 -> mR = .75
    assert r["per_predicate_recall@10_per_frame"] == {"lookingat": 1.0, "holding": 0.5}
    assert r["mR@10_per_frame"] == pytest.approx(0.75)
    # over all 26 predicates (the published convention): 1.25 / 26 and 1.5 / 26
    r_all = evaluate_action_genome([g for g, _ in frames], [p for _, p in frames],
                                   ActionGenomeEvalConfig(recall_at=(10,), modes=("with",)))["with"]
    assert r_all["mR@10_accumulated"] == pytest.approx(1.25 / 26)
    assert r_all["mR@10_per_frame"] == pytest.approx(1.5 / 26)


def test_mean_recall_accumulator_by_hand():
    mr = MeanRecall(3)
    mr.add([1, 0, 0], [1, 3, 0])
    mr.add([0, 1, 0], [1, 1, 0])
    # accumulated: 1/2, 1/4, absent; per frame: (1 + 0)/2, (0 + 1)/2, absent
    np.testing.assert_allclose(mr.accumulated(), [0.5, 0.25, np.nan])
    np.testing.assert_allclose(mr.per_frame(), [0.5, 0.5, np.nan])
    assert MeanRecall.mean(mr.accumulated(), "present") == pytest.approx(0.375)
    assert MeanRecall.mean(mr.accumulated(), "all") == pytest.approx(0.25)
    assert MeanRecall.mean(mr.per_frame(), "present") == pytest.approx(0.5)


def test_frames_without_ground_truth_are_skipped_and_mappings_pair_by_id():
    frames = mr_frames()
    empty = AGFrameGT(PERSON_BOX, np.zeros((0, 4)), [], [], [], [])
    empty_pred = AGFramePred([PERSON_BOX], [PERSON], [1.0], np.zeros((0, 2), int), np.zeros((0, 3)),
                             np.zeros((0, 6)), np.zeros((0, 17)))
    gt = {"f2": frames[1][0], "f0": empty, "f1": frames[0][0]}
    pred = {"f1": frames[0][1], "f0": empty_pred, "f2": frames[1][1]}
    r = evaluate_action_genome(gt, pred, ActionGenomeEvalConfig(recall_at=(10,)))
    assert r["n_frames"] == 2 and r["n_frames_without_gt"] == 1
    assert r["with"]["R@10"] == pytest.approx(0.75)
    # a frame with ground truth but no predicted pair scores 0
    no_pairs = ActionGenomeEvaluator(ActionGenomeEvalConfig(recall_at=(10,))).add(frames[0][0], empty_pred)
    assert no_pairs == {"with": {10: 0.0}, "semi": {10: 0.0}, "no": {10: 0.0}}


def test_evaluator_state_stays_bounded_over_a_long_stream():
    (g1, p1), (g2, p2) = mr_frames()
    ev = ActionGenomeEvaluator(ActionGenomeEvalConfig(recall_at=(10,), modes=("with",)))
    for i in range(2000):
        ev.add(*((g1, p1) if i % 2 else (g2, p2)))
    assert ev.n_frames == 2000
    assert ev._mr["with"][10].counts.shape == (26,)
    assert ev.result()["with"]["R@10"] == pytest.approx(0.75)


@pytest.mark.parametrize("change, field", [
    (dict(boxes_xyxy=np.zeros((2, 3))), "boxes_xyxy"),
    (dict(box_scores=[1.0, float("nan")]), "box_scores"),
    (dict(box_scores=[1.0, 1.5]), "box_scores"),
    (dict(attention=[[np.inf, 0.0, 0.0]]), "attention"),
    (dict(spatial=np.zeros((1, 5))), "spatial"),
    (dict(contacting=np.zeros((2, 17))), "contacting"),
    (dict(pairs=[[0, 2]]), "pairs"),
    (dict(labels=[0.5, 1.0]), "labels"),
])
def test_bad_prediction_names_the_field(change, field):
    args = dict(boxes_xyxy=[PERSON_BOX, PERSON_BOX], labels=[PERSON, CUP], box_scores=[1.0, 1.0], pairs=[[0, 1]],
                attention=np.full((1, 3), 0.3), spatial=np.zeros((1, 6)), contacting=np.zeros((1, 17)))
    args.update(change)
    with pytest.raises(ValueError, match=field):
        AGFramePred(**args)


@pytest.mark.parametrize("change, field", [
    (dict(person_box_xyxy=[0.0, 0.0, 1.0]), "person_box_xyxy"),
    (dict(object_boxes_xyxy=[[5.0, 0.0, 4.0, 9.0]]), "object_boxes_xyxy"),
    (dict(attention=[HOLDING]), "attention"),
    (dict(spatial=[(HOLDING,)]), r"spatial\[0\]"),
    (dict(contacting=[(LOOKING,)]), r"contacting\[0\]"),
    (dict(contacting=[(), ()]), "contacting"),
    (dict(object_labels=[CUP, CUP]), "object_labels"),
])
def test_bad_ground_truth_names_the_field(change, field):
    args = dict(person_box_xyxy=PERSON_BOX, object_boxes_xyxy=[[0.0, 0.0, 9.0, 9.0]], object_labels=[CUP],
                attention=[LOOKING], spatial=[()], contacting=[()])
    args.update(change)
    with pytest.raises(ValueError, match=field):
        AGFrameGT(**args)


def test_bad_dataset_and_config_inputs():
    (g, p), _ = mr_frames()
    with pytest.raises(ValueError, match="1 frames but gt has 2"):
        evaluate_action_genome([g, g], [p])
    with pytest.raises(ValueError, match="frame ids differ"):
        evaluate_action_genome({"a": g}, {"b": p})
    with pytest.raises(TypeError, match="both be sequences or both be mappings"):
        evaluate_action_genome({"a": g}, [p])
    ev = ActionGenomeEvaluator()
    with pytest.raises(TypeError, match="AGFrameGT"):
        ev.add(p, g)
    with pytest.raises(ValueError, match="nothing to score"):
        ev.result()
    for bad in (dict(modes=("strict",)), dict(recall_at=(0,)), dict(semi_threshold=2.0), dict(iou_threshold=-1),
                dict(no_constraint_max=0), dict(mean_recall_over="some")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ActionGenomeEvalConfig(**bad)


def test_frames_from_the_action_genome_loader_fixture():
    ann = {v.annotation.video_id: v for v in load_action_genome(AG_FIXTURE, split="train")}["A1B2C.mp4"].annotation
    frames = ag_frames_from_annotation(ann)
    assert sorted(frames) == [0, 1, 2]
    f0 = frames[0]   # cup: lookingat, infrontof, holding; table: notlookingat, beneath + infrontof, notcontacting
    assert f0.object_labels.tolist() == [CUP, OBJ.index("table")] and f0.person_label == PERSON
    assert f0.attention.tolist() == [LOOKING, NOTLOOKING]
    assert f0.spatial == ((INFRONT,), (PRED.index("beneath"), INFRONT))
    assert f0.contacting == ((HOLDING,), (PRED.index("notcontacting"),))
    np.testing.assert_array_equal(f0.object_boxes_xyxy[0], [10, 20, 40, 60])
    assert [len(frames[t].triplets()[1]) for t in range(3)] == [7, 3, 7]
    # PredCls predictions scoring every gt predicate .95 and the rest .02:
    # with keeps one spatial / contacting predicate per pair: frame 0 misses one of the table's 2 spatial (6/7),
    # frame 1 gets 3/3, frame 2 misses one of the cup's 2 contacting (6/7) -> R = (6/7 + 1 + 6/7) / 3 = 19/21.
    # semi and no recover every triplet -> 1.
    preds = {}
    for t, g in frames.items():
        n = len(g.object_labels)
        scores = np.full((n, 26), 0.02)
        pairs, preds_ = g.triplets()
        for (s, o), p in zip(pairs, preds_):
            scores[max(s, o) - 1, p] = 0.95
        preds[t] = AGFramePred(np.vstack([g.person_box_xyxy, g.object_boxes_xyxy]),
                               np.concatenate([[PERSON], g.object_labels]), np.ones(n + 1),
                               [[0, i + 1] for i in range(n)], scores[:, :3], scores[:, 3:9], scores[:, 9:])
    r = evaluate_action_genome(frames, preds, ActionGenomeEvalConfig(recall_at=(50,)))
    assert r["with"]["R@50"] == pytest.approx(19 / 21)
    assert r["semi"]["R@50"] == 1.0 and r["no"]["R@50"] == 1.0


def test_frames_from_annotation_reject_a_missing_attention():
    boxes = np.array([[PERSON_BOX, [0.0, 0.0, 9.0, 9.0]]], np.float32)                    # (T=1, K=2, 4)
    ann = VideoAnnotation("v", 1.0, 640, 480, np.array([0, 1]), ("person", "cupglassbottle"), boxes,
                          (RelationInstance(0, "holding", 1, 0, 1),))
    with pytest.raises(ValueError, match="exactly one attention"):
        ag_frames_from_annotation(ann)
    wrong_way = VideoAnnotation("v", 1.0, 640, 480, np.array([0, 1]), ("person", "cupglassbottle"), boxes,
                                (RelationInstance(0, "lookingat", 1, 0, 1), RelationInstance(0, "above", 1, 0, 1)))
    with pytest.raises(ValueError, match="spatial direction"):
        ag_frames_from_annotation(wrong_way)
