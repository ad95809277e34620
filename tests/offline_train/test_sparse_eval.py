"""Sparse (row-wise) causal scoring and merging against the dense reference path, and the frame-rate mapping of
predictions back to the annotation's own frames."""
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
def test_sparse_path_equals_the_dense_path(index):
    ann = generate_video(SynthConfig(frames=90, max_agents=4), 11, index)
    step, init = stateful_stepper()
    labels = np.array(OBJ.indices(ann.categories), np.int64)
    preds = Vocabulary("p", PRED.names[:C])
    cfg = MergeConfig(threshold=0.6, max_predictions=50)
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
