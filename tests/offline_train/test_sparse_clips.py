"""SparseClip (present pair-frames of long videos) against the dense VideoClip, pair capping, the prior, frame-rate
subsampling, and training end to end on sparse clips."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.io.vidvrd import RelationInstance, VideoAnnotation  # noqa: E402
from engine.vocab import builtin  # noqa: E402
from offline_train.clips import make_clip  # noqa: E402
from offline_train.config import load_train_config  # noqa: E402
from offline_train.evaluate import frequency_prior  # noqa: E402
from offline_train.sparse_clips import clip_prior, make_sparse_clip, pair_distance, subsample  # noqa: E402
from offline_train.synthetic.generate import SynthConfig, generate_video  # noqa: E402
from offline_train.train import train  # noqa: E402

OBJ, PRED = builtin("vidvrd_objects"), builtin("vidvrd_predicates")


@pytest.fixture(scope="module")
def videos():
    cfg = SynthConfig(frames=80, max_agents=4)
    out = []
    for i in range(6):
        ann = generate_video(cfg, 3, i)
        # punch holes so that presence varies: object k is missing on a seeded subset of frames
        boxes = ann.boxes.copy()
        rng = np.random.default_rng(i)
        boxes[rng.random(boxes.shape[:2]) < 0.2] = np.nan
        out.append(VideoAnnotation(ann.video_id, ann.fps, ann.width, ann.height, ann.tids, ann.categories, boxes,
                                   ann.relations))
    return out


def test_sparse_rows_equal_the_dense_clip_on_every_present_pair_frame(videos):
    positives = 0
    for ann in videos:
        dense, sparse = make_clip(ann, OBJ, PRED, 5), make_sparse_clip(ann, OBJ, PRED, 5)
        assert sparse.num_frames == dense.num_frames
        pair = {(s, o): p for p, (s, o) in enumerate(zip(dense.subj.tolist(), dense.obj.tolist()))}
        cols = np.array([pair[(s, o)] for s, o in zip(sparse.subj.tolist(), sparse.obj.tolist())], np.int64)
        t, p = sparse.row_frame, cols[sparse.row_pair]
        assert dense.present[t, p].all() and dense.present.sum() == len(t)   # same present pair-frames
        np.testing.assert_array_equal(sparse.feats, dense.feats[t, p])
        np.testing.assert_array_equal(sparse.targets, dense.targets[t, p])
        positives += int(sparse.targets.sum())
        assert (np.diff(sparse.row_frame) >= 0).all()
    assert positives > 100


def test_a_crop_of_all_pairs_equals_the_dense_crop_on_those_pairs(videos):
    ann = videos[0]
    dense, sparse = make_clip(ann, OBJ, PRED, 5), make_sparse_clip(ann, OBJ, PRED, 5)
    c = sparse.crop(20, 30)
    pair = {(s, o): p for p, (s, o) in enumerate(zip(dense.subj.tolist(), dense.obj.tolist()))}
    cols = [pair[(s, o)] for s, o in zip(c.subj.tolist(), c.obj.tolist())]
    d = dense.crop(20, 30)
    np.testing.assert_array_equal(c.feats, d.feats[:, cols])
    np.testing.assert_array_equal(c.present, d.present[:, cols])
    np.testing.assert_array_equal(c.targets, d.targets[:, cols])
    assert d.present[:, [p for p in range(len(dense.subj)) if p not in cols]].sum() == 0  # no present pair left out
    np.testing.assert_array_equal(c.subj_label, OBJ.indices([ann.categories[k] for k in c.subj]))


def test_capped_crop_keeps_the_nearest_pairs_in_both_directions():
    # three objects: A and B touch, C is far away; cap 2 keeps A->B and B->A only
    boxes = np.array([[[0, 0, 10, 10], [12, 0, 22, 10], [300, 300, 310, 310]]] * 4, np.float32)
    ann = VideoAnnotation("v", 10.0, 640, 480, np.array([1, 2, 3]), ("person", "dog", "car"), boxes,
                          (RelationInstance(1, "next_to", 2, 0, 4),))
    sp = make_sparse_clip(ann, OBJ, PRED, 2)
    c = sp.crop(0, 4, max_pairs=2)
    assert sorted(zip(c.subj.tolist(), c.obj.tolist())) == [(0, 1), (1, 0)]
    assert c.targets[:, list(zip(c.subj.tolist(), c.obj.tolist())).index((0, 1)), PRED.index("next_to")].all()
    assert sp.crop(0, 4).feats.shape[1] == 6
    assert pair_distance(boxes[0, [0]], boxes[0, [1]])[0] < pair_distance(boxes[0, [0]], boxes[0, [2]])[0]


def test_prior_from_clips_equals_the_annotation_prior(videos):
    dense = [make_clip(a, OBJ, PRED, 5) for a in videos]
    sparse = [make_sparse_clip(a, OBJ, PRED, 5) for a in videos]
    ref = frequency_prior(videos, OBJ, PRED)
    np.testing.assert_allclose(clip_prior(dense, len(OBJ), len(PRED)), ref, atol=1e-6)
    np.testing.assert_allclose(clip_prior(sparse, len(OBJ), len(PRED)), ref, atol=1e-6)


def test_subsample_keeps_every_nth_frame_and_maps_spans_up():
    boxes = np.tile(np.array([[[0, 0, 20, 20], [30, 0, 45, 5]]], np.float32), (10, 1, 1))
    boxes[:, 0, 0] = np.arange(10)
    ann = VideoAnnotation("v", 30.0, 64, 48, np.array([7, 8]), ("person", "car"), boxes,
                          (RelationInstance(7, "next_to", 8, 1, 7),   # frames 1..6 -> model frames 1, 2 (3, 6)
                           RelationInstance(7, "behind", 8, 4, 5)))  # frame 4 only: no kept frame (0, 3, 6, 9)
    s = subsample(ann, 3)
    assert s.fps == 10.0 and s.frame_count == 4
    np.testing.assert_array_equal(s.boxes[:, 0, 0], [0, 3, 6, 9])
    assert [(r.predicate, r.begin_fid, r.end_fid) for r in s.relations] == [("next_to", 1, 3)]
    assert subsample(ann, 1) is ann


def test_tiny_training_on_sparse_clips(tmp_path):
    cfg = load_train_config(preset="tiny", overrides=[f"run.out_dir={tmp_path}", "clip_store=sparse",
                                                      "optim.epochs=2", "optim.max_pairs=6",
                                                      "optim.crops_per_video=2", "run.val_window=20",
                                                      "run.progress=false"])
    out = train(cfg)
    hist = json.loads((out / "history.json").read_text())
    assert len(hist) == 2 and all(np.isfinite(h["loss"]) for h in hist)
    assert hist[1]["step"] == 2 * (-(-2 * 24 // cfg.optim.videos_per_step))  # two crops per video per epoch
    prior = np.load(out / "best" / "prior.npy")
    assert prior.shape == (len(OBJ), len(OBJ), len(PRED)) and np.isfinite(prior).all()


@pytest.mark.parametrize("override, msg", [("clip_store=lazy", "clip_store"), ("optim.max_pairs=-1", "max_pairs"),
                                           ("optim.crops_per_video=0", "crops_per_video")])
def test_bad_clip_settings_are_refused(override, msg):
    from engine.config import ConfigError
    with pytest.raises(ConfigError, match=msg):
        load_train_config(preset="tiny", overrides=[override])
