"""Sparse (row-wise) causal scoring and merging against the dense reference path, and the frame-rate mapping of
predictions back to the annotation's own frames."""
import argparse
from dataclasses import replace

import numpy as np
import pytest

from engine.io.vidvrd import RelationInstance, VideoAnnotation
from engine.vocab import Vocabulary, builtin
from offline_train.clips import make_clip
from offline_train.evaluate import MergeConfig, merge_instances, score_video
from offline_train.sparse_clips import make_sparse_clip, subsample
from offline_train.sparse_eval import merge_sparse, prior_scores, proximity, score_sparse
from offline_train.synthetic.generate import SynthConfig, generate_video

OBJ, PRED = builtin("vidvrd_objects"), builtin("vidvrd_predicates")
C = 6


def stateful_stepper():
    """A real causal stepper: scores depend on this frame's features and on a per-pair running state (a count of
    the frames the pair was seen), so a wrong state row or frame order changes the output."""
    def init(p):
        return (np.zeros((p, 1), np.float32),)

    def step(feats, sl, ol, state):
        (seen,) = state
        x = feats[:, :C] + 0.1 * np.sin(seen + sl[:, None] - ol[:, None])
        return 1 / (1 + np.exp(-3 * x)), (seen + 1,)
    return step, init


@pytest.mark.parametrize("index", range(4))
@pytest.mark.parametrize("cfg", [MergeConfig(threshold=0.6, max_predictions=50),
                                 MergeConfig(threshold=0.6, max_gap=10, max_predictions=50, length_tau=5.0,
                                             triplet_min_score=0.35)], ids=["plain", "length+triplet-cut"])
def test_sparse_path_equals_the_dense_path(index, cfg):
    ann = generate_video(SynthConfig(frames=90, max_agents=4), 11, index)
    step, init = stateful_stepper()
    labels = np.array(OBJ.indices(ann.categories), np.int64)
    preds = Vocabulary("p", PRED.names[:C])
    dense_scores, subj, obj = score_video(step, init, ann, labels, 5, C)
    ref = merge_instances(dense_scores, subj, obj, ann, preds, cfg)
    clip = make_sparse_clip(ann, OBJ, PRED, 5)
    got = merge_sparse(score_sparse(step, init, clip, C), clip, ann, preds, cfg)
    key = lambda r: (r.triplet, r.begin_fid, r.end_fid, round(r.score, 5))  # noqa: E731
    assert len(ref) > 0 and sorted(map(key, got)) == sorted(map(key, ref))
    for a, b in zip(sorted(got, key=key), sorted(ref, key=key)):
        np.testing.assert_array_equal(a.sub_traj, b.sub_traj)


def test_stride_writes_instances_on_annotation_frames():
    t = 30
    boxes = np.tile(np.array([[[0, 0, 20, 20], [25, 0, 45, 20]]], np.float32), (t, 1, 1))
    boxes[:, 0, 0] = np.arange(t) * 0.1
    boxes[7, 1] = np.nan                       # an annotation frame between two model frames without a box
    ann = VideoAnnotation("v", 30.0, 640, 480, np.array([1, 2]), ("person", "car"), boxes,
                          (RelationInstance(1, "next_to", 2, 0, t),))
    low = subsample(ann, 3)
    clip = make_sparse_clip(low, OBJ, PRED, 2)
    scores = np.zeros((len(clip.row_pair), len(PRED)), np.float32)
    hot = (clip.row_pair == 0) & (clip.row_frame >= 2) & (clip.row_frame < 6)   # model frames 2..5 of pair 0
    scores[hot, PRED.index("next_to")] = 0.9
    (r,) = merge_sparse(scores, clip, ann, PRED, MergeConfig(threshold=0.5, min_frames=3), stride=3)
    assert (r.begin_fid, r.end_fid) == (6, 18) and r.triplet == ("person", "next_to", "car")
    assert r.score == pytest.approx(0.9)
    np.testing.assert_array_equal(r.sub_traj, boxes[6:18, 0])
    np.testing.assert_array_equal(r.obj_traj[1], boxes[6, 1])    # frame 7 held at frame 6's box
    assert merge_sparse(scores, clip, ann, PRED, MergeConfig(threshold=0.95), stride=3) == []


def test_prior_baselines_score_by_category_and_nearness():
    boxes = np.array([[[0, 0, 10, 10], [12, 0, 22, 10], [200, 0, 210, 10]]] * 3, np.float32)
    ann = VideoAnnotation("v", 10.0, 640, 480, np.array([1, 2, 3]), ("person", "dog", "dog"), boxes)
    clip = make_sparse_clip(ann, OBJ, PRED, 2)
    prior = np.zeros((len(OBJ), len(OBJ), len(PRED)), np.float32)
    prior[OBJ.index("person"), OBJ.index("dog"), 5] = 0.5
    plain, near = prior_scores(prior, clip), prior_scores(prior, clip, with_proximity=True)
    person_dog = (clip.subj_label[clip.row_pair] == OBJ.index("person")) & \
                 (clip.obj_label[clip.row_pair] == OBJ.index("dog"))
    assert (plain[person_dog, 5] == 0.5).all() and (plain[~person_dog] == 0).all()
    close = person_dog & (clip.obj[clip.row_pair] == 1)
    far = person_dog & (clip.obj[clip.row_pair] == 2)
    assert (near[close, 5] > near[far, 5]).all() and (near <= plain + 1e-7).all()
    assert ((proximity(clip) > 0) & (proximity(clip) <= 1)).all()


def test_length_weight_and_triplet_cut_by_hand():
    """Two pairs of one video, hand-set scores: pair 0 'next_to' 0.8 over 2 model frames and 0.5 over 9; pair 1
    'next_to' 0.4 over 9 frames and 'behind' 0.3 over 9 frames. With length_tau 3 the long 0.5 run (0.5 x
    (1 - e^-3) = 0.475) outranks the short 0.8 blip (0.8 x (1 - e^-2/3) = 0.389); with triplet_min_score 0.45 the
    'behind' triplet (best 0.285) is dropped while the weak 'next_to' instance of pair 1 (0.4 x (1 - e^-3) = 0.380)
    stays, because its triplet's best instance reaches the cut."""
    t = 30
    boxes = np.tile(np.array([[[0, 0, 20, 20], [25, 0, 45, 20], [50, 0, 70, 20]]], np.float32), (t, 1, 1))
    ann = VideoAnnotation("v", 30.0, 640, 480, np.array([1, 2, 3]), ("person", "car", "car"), boxes, ())
    clip = make_sparse_clip(ann, OBJ, PRED, 2)
    nt, be = PRED.index("next_to"), PRED.index("behind")
    pair0 = int(np.flatnonzero((clip.subj == 0) & (clip.obj == 1))[0])
    pair1 = int(np.flatnonzero((clip.subj == 0) & (clip.obj == 2))[0])
    scores = np.zeros((len(clip.row_pair), len(PRED)), np.float32)
    on = lambda p, lo, hi: (clip.row_pair == p) & (clip.row_frame >= lo) & (clip.row_frame < hi)  # noqa: E731
    scores[on(pair0, 2, 4), nt] = 0.8
    scores[on(pair0, 15, 24), nt] = 0.5
    scores[on(pair1, 5, 14), nt] = 0.4
    scores[on(pair1, 5, 14), be] = 0.3
    cfg = MergeConfig(threshold=0.2, max_gap=0, min_frames=1, length_tau=3.0)
    got = merge_sparse(scores, clip, ann, PRED, cfg)
    by = {(r.triplet[1], r.begin_fid): r.score for r in got}
    assert by[("next_to", 15)] == pytest.approx(0.5 * (1 - np.exp(-3)), rel=1e-6)
    assert by[("next_to", 2)] == pytest.approx(0.8 * (1 - np.exp(-2 / 3)), rel=1e-6)
    assert [(r.triplet[1], r.begin_fid) for r in got] == [("next_to", 15), ("next_to", 2), ("next_to", 5),
                                                          ("behind", 5)]
    cut = merge_sparse(scores, clip, ann, PRED, replace(cfg, triplet_min_score=0.45))
    assert {(r.triplet[1], r.begin_fid) for r in cut} == {("next_to", 2), ("next_to", 15), ("next_to", 5)}
    assert cfg.instance_score(0.5, 9) == pytest.approx(0.5 * (1 - np.exp(-3)))
    assert MergeConfig().instance_score(0.5, 1) == 0.5        # plain mean when length_tau is 0


def test_eval_cli_merge_rules_per_dataset():
    from offline_train.eval_cli import merge_config
    from offline_train.evaluate import MEVA_MERGE
    ns = lambda **kw: argparse.Namespace(**{"meva": None, "threshold": None, "max_gap": None,  # noqa: E731
                                            "length_tau": None, "triplet_min_score": None, **kw})
    assert merge_config(ns()) == MergeConfig()
    assert merge_config(ns(meva=["d"])) == MEVA_MERGE
    assert merge_config(ns(meva=["d"], threshold=0.2, length_tau=0.0)) == replace(MEVA_MERGE, threshold=0.2,
                                                                                   length_tau=0.0)
    with pytest.raises(ValueError, match="--triplet-min-score must be >= 0"):
        merge_config(ns(triplet_min_score=-1.0))
