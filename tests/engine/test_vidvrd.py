import json

import numpy as np
import pytest

from engine.io.vidvrd import (VideoAnnotation, RelationInstance, frame_labels, instances_from_labels, load_vidvrd,
                           save_vidvrd, to_vidvrd_dict)
from engine.vocab import Vocabulary

FIXTURE = "tests/data/vidor/3598080384.json"


def test_load_official_fixture():
    ann = load_vidvrd(FIXTURE)
    assert ann.frame_count == 368 and (ann.width, ann.height) == (640, 480) and ann.fps == 25
    assert ann.categories == ("adult", "stingray")
    assert len(ann.relations) == 4
    assert {r.predicate for r in ann.relations} == {"next_to", "in_front_of"}
    assert ann.boxes[0, 0].tolist() == [0, 150, 165, 379]


def test_round_trip(tmp_path):
    ann = load_vidvrd(FIXTURE)
    save_vidvrd(ann, tmp_path / "a.json")
    back = load_vidvrd(tmp_path / "a.json")
    np.testing.assert_array_equal(back.boxes, ann.boxes)
    assert back.relations == ann.relations and back.categories == ann.categories


def test_labels_round_trip_end_exclusive():
    ann = load_vidvrd(FIXTURE)
    vocab = Vocabulary("p", ("in_front_of", "next_to", "unused"))
    lab = frame_labels(ann, vocab)
    r = ann.relations[0]
    i, j = ann.column(r.subject_tid), ann.column(r.object_tid)
    q = vocab.index(r.predicate)
    assert lab[r.begin_fid:r.end_fid, i, j, q].all()
    assert lab[:, i, j, q].sum() == sum(x.end_fid - x.begin_fid for x in ann.relations if x.predicate == r.predicate
                                        and (x.subject_tid, x.object_tid) == (r.subject_tid, r.object_tid))
    back = instances_from_labels(lab, ann.tids, vocab)
    # merged spans cover exactly the same frames
    np.testing.assert_array_equal(frame_labels(VideoAnnotation(ann.video_id, ann.fps, ann.width, ann.height,
                                                               ann.tids, ann.categories, ann.boxes, back), vocab), lab)


def test_instances_from_labels_gap():
    vocab = Vocabulary("p", ("a",))
    lab = np.zeros((6, 2, 2, 1), bool)
    lab[0:2, 0, 1, 0] = True
    lab[3:6, 0, 1, 0] = True
    assert instances_from_labels(lab, np.array([5, 9]), vocab) == (
        RelationInstance(5, "a", 9, 0, 2), RelationInstance(5, "a", 9, 3, 6))


def test_unknown_predicate():
    ann = load_vidvrd(FIXTURE)
    with pytest.raises(ValueError, match="in_front_of"):
        frame_labels(ann, Vocabulary("p", ("next_to",)))
    assert frame_labels(ann, Vocabulary("p", ("next_to",)), unknown="drop").any()


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.pop("trajectories"), "trajectories"),
    (lambda d: d.update(frame_count=3), "frame_count"),
    (lambda d: d["relation_instances"][0].update(end_fid=999), "frame span"),
    (lambda d: d["relation_instances"][0].update(subject_tid=7), "unknown tid"),
    (lambda d: d["trajectories"][0][0]["bbox"].pop("xmax"), "xmax"),
    (lambda d: d["trajectories"][0][0]["bbox"].update(xmax=-5), "x1<=x2"),
])
def test_malformed(tmp_path, mutate, match):
    d = json.loads(open(FIXTURE).read())
    mutate(d)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=match):
        load_vidvrd(p)


def test_not_json(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_vidvrd(p)
    with pytest.raises(FileNotFoundError):
        load_vidvrd(tmp_path / "missing.json")
