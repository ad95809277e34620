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
    # silently wrong before: a NaN box counted as absent, tid 0.7 became 0, a repeated tid kept the last box
    (lambda d: d["trajectories"][3][0]["bbox"].update(ymin=float("nan")),
     r"trajectories\[3\] tid 0 bbox: 'ymin' must be a finite number, got nan"),
    (lambda d: d["trajectories"][3][0]["bbox"].update(xmax=float("inf")), r"'xmax' must be a finite number, got inf"),
    (lambda d: d["trajectories"][3][0]["bbox"].update(xmin="12"), r"'xmin' must be a finite number, got '12'"),
    (lambda d: d["trajectories"][5][0].update(tid=0.7), r"trajectories\[5\]: 'tid' must be an integer, got 0\.7"),
    (lambda d: d["subject/objects"][1].update(tid=True), r"subject/objects\[1\]: 'tid' must be an integer, got True"),
    (lambda d: d["trajectories"][2].append(dict(d["trajectories"][2][0])),
     r"trajectories\[2\]: tid 0 listed twice in one frame"),
    (lambda d: d.update(fps="fast"), r"\(video 3598080384\): 'fps' must be a finite number, got 'fast'"),
    (lambda d: d.update(fps=0), r"'fps' must be > 0, got 0"),
    (lambda d: d.update(width=640.5), r"'width' must be an integer, got 640\.5"),
    (lambda d: d.update(frame_count="368"), r"'frame_count' must be an integer, got '368'"),
    (lambda d: d["relation_instances"][1].update(begin_fid=2.5),
     r"relation_instances\[1\]: 'begin_fid' must be an integer, got 2\.5"),
    (lambda d: d["subject/objects"][0].update(category=7), r"subject/objects\[0\]: 'category' must be a string, got 7"),
    (lambda d: d.update(relation_instances={"a": 1}), r"'relation_instances' must be a list"),
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


def test_integral_floats_are_accepted(tmp_path):
    d = json.loads(open(FIXTURE).read())
    d["frame_count"] = float(d["frame_count"])
    d["trajectories"][0][0]["tid"] = 0.0
    p = tmp_path / "f.json"
    p.write_text(json.dumps(d))
    assert load_vidvrd(p).boxes[0, 0].tolist() == load_vidvrd(FIXTURE).boxes[0, 0].tolist()


def test_deeply_nested_json_is_a_clear_error(tmp_path):
    p = tmp_path / "deep.json"
    p.write_text('{"video_id": ' + "[" * 200_000 + "]" * 200_000 + "}")
    with pytest.raises(ValueError, match=r"deep\.json: not a VidVRD annotation \(JSON nested too deeply to parse\)"):
        load_vidvrd(p)


def test_binary_file_is_named(tmp_path):
    p = tmp_path / "clip.json"
    p.write_bytes(b'{"video_id": "\xff\xfe"}')
    with pytest.raises(ValueError, match=r"annotation file .*clip\.json: not UTF-8 text \(undecodable byte at "
                                         r"offset 14\)"):
        load_vidvrd(p)


def test_partly_nan_box_is_refused_by_the_annotation():
    boxes = np.full((3, 1, 4), np.nan, np.float32)
    boxes[0, 0] = [0, 0, 10, 10]
    VideoAnnotation("v", 10.0, 64, 48, np.array([4]), ("dog",), boxes.copy())  # all-NaN rows: absent, fine
    boxes[1, 0, 2] = 5.0
    with pytest.raises(ValueError, match=r"box of tid 4 in frame 1 is partly NaN"):
        VideoAnnotation("v", 10.0, 64, 48, np.array([4]), ("dog",), boxes)
    with pytest.raises(ValueError, match=r"video 'v': fps must be a finite number > 0, got 'fast'"):
        VideoAnnotation("v", "fast", 64, 48, np.zeros(0, np.int64), (), np.zeros((2, 0, 4)))
