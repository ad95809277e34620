"""Action Genome loader on the small fixture in tests/data/action_genome_fixture (AG v1.0 pickle layout)."""
import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from engine.io.vidvrd import RelationInstance, frame_labels
from engine.vocab import Vocabulary, builtin
from offline_train.data.action_genome import (AGVideo, ag_category_name, ag_group_names, ag_predicate_groups,
                                              ag_predicate_name, load_action_genome, parse_action_genome)
from offline_train.data.label_map import LabelMap
from offline_train.data.safe_pickle import load_safe_pickle

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "action_genome_fixture"
# Every spelling that occurs in AG's object_bbox_and_relationship.pkl (relationship_classes.txt before STTran's
# normalisation; object classes with slashes).
RAW_PREDICATES = ["looking_at", "not_looking_at", "unsure", "above", "beneath", "in_front_of", "behind",
                  "on_the_side_of", "in", "carrying", "covered_by", "drinking_from", "eating", "have_it_on_the_back",
                  "holding", "leaning_on", "lying_on", "not_contacting", "other_relationship", "sitting_on",
                  "standing_on", "touching", "twisting", "wearing", "wiping", "writing_on"]
RAW_SLASH_CLASSES = {"closet/cabinet": "closetcabinet", "cup/glass/bottle": "cupglassbottle",
                     "paper/notebook": "papernotebook", "phone/camera": "phonecamera", "sofa/couch": "sofacouch"}


def _generator():
    spec = importlib.util.spec_from_file_location("ag_make_fixture", FIXTURE / "make_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def dicts():
    return _generator().fixture_dicts()


def _by_id(videos):
    return {v.annotation.video_id: v for v in videos}


def _same(a, b):
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


def test_committed_fixture_matches_generator_and_ag_layout(dicts):
    person, objects = load_safe_pickle(FIXTURE / "person_bbox.pkl"), load_safe_pickle(
        FIXTURE / "object_bbox_and_relationship.pkl")
    assert _same(person, dicts[0]) and _same(objects, dicts[1])
    assert person.keys() == objects.keys() and len(person) == 10
    for key, p in person.items():
        assert set(p) == {"bbox", "bbox_score", "bbox_size", "bbox_mode", "keypoints", "keypoints_logits"}
        assert p["bbox"].dtype == np.float32 and p["bbox"].shape[1] == 4 and p["bbox_mode"] == "xyxy"
        assert p["keypoints"].shape == (len(p["bbox"]), 17, 3)
        for o in objects[key]:
            assert set(o) == {"class", "bbox", "attention_relationship", "spatial_relationship",
                              "contacting_relationship", "metadata", "visible"}
            assert o["metadata"]["tag"].startswith(key.split("/")[0] + "/")
    assert b"numpy.core.multiarray" in (FIXTURE / "person_bbox.pkl").read_bytes()  # written as numpy 1.x did


def test_name_normalisation_matches_the_bundled_vocabularies():
    preds, objs = builtin("ag_predicates"), builtin("ag_objects")
    assert [ag_predicate_name(p) for p in RAW_PREDICATES] == list(preds.names)
    for raw, name in RAW_SLASH_CLASSES.items():
        assert ag_category_name(raw) == name and name in objs
    assert ag_category_name("table") == "table"


def test_groups():
    g = ag_predicate_groups(builtin("ag_predicates"))
    assert g == {"attention": [0, 1, 2], "spatial": list(range(3, 9)), "contacting": list(range(9, 26))}
    names = ag_group_names()
    assert names["attention"] == ("lookingat", "notlookingat", "unsure")
    assert "infrontof" in names["spatial"] and "writingon" in names["contacting"]


def test_groups_through_a_map_and_conflicts(tmp_path):
    target = Vocabulary("small", ("looking", "not_looking", "near", "touch"))
    m = LabelMap(target, {"lookingat": "looking", "notlookingat": "not_looking", "unsure": None,
                          "infrontof": "near", "onthesideof": "near", "holding": "touch", "touching": "touch"},
                 unknown="drop")
    assert ag_predicate_groups(target, m) == {"attention": [0, 1], "spatial": [2], "contacting": [3]}
    bad = LabelMap(target, {"lookingat": "near", "infrontof": "near"}, unknown="drop", source="bad.yaml")
    with pytest.raises(ValueError, match="bad.yaml.*groups must stay disjoint"):
        ag_predicate_groups(target, bad)


def test_default_train_split_counts_boxes_and_frames():
    videos = load_action_genome(FIXTURE, split="train")
    assert all(isinstance(v, AGVideo) for v in videos)
    by = _by_id(videos)
    assert sorted(by) == ["A1B2C.mp4", "G5H6I.mp4"]
    a = by["A1B2C.mp4"]
    # 78 has no person box (dropped), 144 only an invisible object (dropped); order by frame number.
    assert a.frame_numbers.tolist() == [12, 45, 111]
    assert a.frame_keys == ("A1B2C.mp4/000012.png", "A1B2C.mp4/000045.png", "A1B2C.mp4/000111.png")
    ann = a.annotation
    assert (ann.width, ann.height) == (480, 270) and a.split == "train"
    assert ann.categories == ("person", "cupglassbottle", "table", "sofacouch")
    assert ann.tids.tolist() == [0, 1, 2, 3] and ann.boxes.shape == (3, 4, 4)
    np.testing.assert_array_equal(ann.boxes[0, 1], [10, 20, 40, 60])        # xywh (10,20,30,40) -> xyxy
    np.testing.assert_array_equal(ann.boxes[0, 2], [0, 150, 300, 270])
    np.testing.assert_array_equal(ann.boxes[0, 0], [101.5, 51, 201, 262.5])  # person boxes are already xyxy
    assert np.isnan(ann.boxes[1, 2]).all()                                     # table invisible at 45
    assert np.isnan(ann.boxes[:2, 3]).all() and not np.isnan(ann.boxes[2, 3]).any()
    np.testing.assert_allclose(a.times, [11 / 24, 44 / 24, 110 / 24])
    assert ann.fps == pytest.approx(2 / (99 / 24))  # mean keyframe rate: f / fps ~ seconds since the first


def test_relations_direction_and_spans():
    ann = _by_id(load_action_genome(FIXTURE, split="train"))["A1B2C.mp4"].annotation
    R = RelationInstance
    assert set(ann.relations) == {
        R(0, "lookingat", 1, 0, 3), R(1, "infrontof", 0, 0, 3), R(0, "holding", 1, 0, 3), R(0, "touching", 1, 2, 3),
        R(0, "notlookingat", 2, 0, 1), R(2, "beneath", 0, 0, 1), R(2, "infrontof", 0, 0, 1),
        R(0, "notcontacting", 2, 0, 1),
        R(0, "unsure", 3, 2, 3), R(3, "beneath", 0, 2, 3), R(0, "sittingon", 3, 2, 3)}
    spatial = set(ag_group_names()["spatial"])
    for v in load_action_genome(FIXTURE):
        for r in v.annotation.relations:
            assert (r.predicate in spatial) == (r.object_tid == 0 and r.subject_tid != 0)
    labels = frame_labels(ann, builtin("ag_predicates"))
    assert labels.shape == (3, 4, 4, 26)
    # exactly one attention label per (person, visible object) per frame
    att = labels[:, 0, 1:, :3].sum(-1)
    assert (att == (~np.isnan(ann.boxes[:, 1:, 0])).astype(int)).all()


def test_without_person_filter_keeps_frames_with_missing_person():
    a = _by_id(load_action_genome(FIXTURE, split="train", require_person_box=False))["A1B2C.mp4"]
    assert a.frame_numbers.tolist() == [12, 45, 78, 111]
    assert np.isnan(a.annotation.boxes[2, 0]).all()
    R = RelationInstance
    assert R(0, "lookingat", 1, 0, 2) in a.annotation.relations        # broken by not_looking_at at 78
    assert R(0, "lookingat", 1, 3, 4) in a.annotation.relations
    assert R(0, "notlookingat", 1, 2, 3) in a.annotation.relations


def test_split_filtering_and_min_frames():
    test = load_action_genome(FIXTURE, split="test")
    assert [v.annotation.video_id for v in test] == ["D3E4F.mp4"]
    d = test[0]
    assert d.split == "test" and d.frame_numbers.tolist() == [5, 30, 55]
    np.testing.assert_array_equal(d.annotation.boxes[1, 0], [12, 11, 121, 352])  # first of two person boxes
    assert d.annotation.categories == ("person", "closetcabinet", "papernotebook", "phonecamera")
    assert RelationInstance(3, "onthesideof", 0, 1, 3) in d.annotation.relations
    assert RelationInstance(3, "in", 0, 2, 3) in d.annotation.relations
    assert len(load_action_genome(FIXTURE)) == 3
    assert [v.annotation.video_id for v in load_action_genome(FIXTURE, min_frames=3)] == ["A1B2C.mp4", "D3E4F.mp4"]
    assert len(load_action_genome(FIXTURE, max_videos=1)) == 1
    with pytest.raises(ValueError, match="split"):
        load_action_genome(FIXTURE, split="val")


def test_category_and_predicate_maps(tmp_path):
    objs = Vocabulary("robot_objects", ("human", "cup", "sofa"))
    preds = Vocabulary("robot_preds", ("looking", "not_looking", "front", "beneath", "hold", "sit"))
    cats = LabelMap(objs, {"person": "human", "cupglassbottle": "cup", "sofacouch": "sofa"}, unknown="drop")
    pm = LabelMap(preds, {"lookingat": "looking", "notlookingat": "not_looking", "infrontof": "front",
                          "holding": "hold", "sittingon": "sit"}, unknown="drop")
    ann = _by_id(load_action_genome(FIXTURE, cats, pm, split="train"))["A1B2C.mp4"].annotation
    assert ann.categories == ("human", "cup", "sofa") and ann.tids.tolist() == [0, 1, 3]  # table dropped
    assert {r.predicate for r in ann.relations} == {"looking", "front", "hold", "sit", "beneath"}
    assert all(2 not in (r.subject_tid, r.object_tid) for r in ann.relations)
    v = load_action_genome(FIXTURE, cats, pm, split="train")[0]
    assert dict(v.predicate_groups) == {"attention": ("looking", "not_looking"), "spatial": ("beneath", "front"),
                                        "contacting": ("hold", "sit")}
    strict = LabelMap(objs, {"person": "human", "cupglassbottle": "cup"}, unknown="error", source="objs.yaml")
    with pytest.raises(ValueError, match="A1B2C.mp4.*'table'.*objs.yaml"):
        load_action_genome(FIXTURE, strict, pm, split="train")


def _bad(dicts, edit):
    person, objects = copy.deepcopy(dicts)
    edit(person, objects)
    return person, objects


F = "A1B2C.mp4/000012.png"
BAD_CASES = {
    "missing object key": (lambda p, o: o[F][0].pop("bbox"), r"000012.png' object 0 field 'bbox'"),
    "bbox of 3 numbers": (lambda p, o: o[F][0].update(bbox=(1.0, 2.0, 3.0)), r"000012.png' object 0 field 'bbox'"),
    "visible without bbox": (lambda p, o: o[F][1].update(bbox=None), r"000012.png' object 1 field 'bbox'"),
    "negative width": (lambda p, o: o[F][0].update(bbox=(1.0, 2.0, -3.0, 4.0)), r"000012.png' object 0 field 'bbox'"),
    "unknown predicate": (lambda p, o: o[F][0].update(contacting_relationship=["flying"]),
                          r"000012.png' object 0 field 'contacting_relationship'.*'flying'"),
    "predicate in wrong group": (lambda p, o: o[F][0].update(spatial_relationship=["holding"]),
                                 r"000012.png' object 0 field 'spatial_relationship'.*'holding'"),
    "two attention labels": (lambda p, o: o[F][0].update(attention_relationship=["looking_at", "unsure"]),
                             r"000012.png' object 0 field 'attention_relationship'"),
    "relations not a list": (lambda p, o: o[F][1].update(spatial_relationship="beneath"),
                             r"000012.png' object 1 field 'spatial_relationship'"),
    "unknown class": (lambda p, o: o[F][0].update({"class": "spaceship"}), r"000012.png' object 0 field 'class'"),
    "duplicate class": (lambda p, o: o[F][1].update({"class": "cup/glass/bottle"}), r"000012.png' object 1.*twice"),
    "visible not bool": (lambda p, o: o[F][0].update(visible="yes"), r"000012.png' object 0 field 'visible'"),
    "bad set": (lambda p, o: o[F][0]["metadata"].update(set="val"), r"000012.png' object 0 field 'metadata'"),
    "objects not a list": (lambda p, o: o.update({F: {"class": "cup"}}), r"000012.png': expected a list"),
    "person bbox (n, 3)": (lambda p, o: p[F].update(bbox=np.zeros((1, 3), np.float32)),
                           r"person_bbox.pkl frame 'A1B2C.mp4/000012.png' field 'bbox'"),
    "person bbox inverted": (lambda p, o: p[F].update(bbox=np.array([[5, 5, 1, 1]], np.float32)),
                             r"person_bbox.pkl frame 'A1B2C.mp4/000012.png' field 'bbox'"),
    "person missing bbox_size": (lambda p, o: p[F].pop("bbox_size"),
                                 r"person_bbox.pkl frame 'A1B2C.mp4/000012.png': missing field 'bbox_size'"),
    "person bbox_mode xywh": (lambda p, o: p[F].update(bbox_mode="xywh"), r"000012.png' field 'bbox_mode'"),
    "image size changes": (lambda p, o: p[F].update(bbox_size=(640, 480)), r"video 'A1B2C.mp4' field 'bbox_size'"),
    "frame only in person file": (lambda p, o: o.pop(F), r"'A1B2C.mp4/000012.png': missing from "
                                                         r"object_bbox_and_relationship.pkl"),
    "bad frame key": (lambda p, o: (p.update({"A1B2C.mp4-12": p[F]}), o.update({"A1B2C.mp4-12": o[F]})),
                      r"frame key 'A1B2C.mp4-12'"),
    "same frame number twice": (lambda p, o: (p.update({"A1B2C.mp4/12.png": p[F]}),
                                              o.update({"A1B2C.mp4/12.png": o[F]})), r"same frame number"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_inputs_raise_value_error_naming_frame_and_field(dicts, case):
    edit, pattern = BAD_CASES[case]
    person, objects = _bad(dicts, edit)
    with pytest.raises(ValueError, match=pattern):
        parse_action_genome(person, objects, split="train")


def test_inputs_are_not_modified(dicts):
    person, objects = copy.deepcopy(dicts)
    parse_action_genome(person, objects)
    assert _same(person, dicts[0]) and _same(objects, dicts[1])


def test_not_dicts_and_missing_files(tmp_path, dicts):
    with pytest.raises(ValueError, match="person_bbox.pkl: expected a dict"):
        parse_action_genome([], dicts[1])
    with pytest.raises(FileNotFoundError, match="folder not found"):
        load_action_genome(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="person_bbox.pkl"):
        load_action_genome(tmp_path)


def test_errors_from_files_name_the_folder(tmp_path, dicts):
    gen = _generator()
    person, objects = _bad(dicts, BAD_CASES["unknown predicate"][0])
    (tmp_path / "person_bbox.pkl").write_bytes(gen.dumps_like_ag(person))
    (tmp_path / "object_bbox_and_relationship.pkl").write_bytes(gen.dumps_like_ag(objects))
    with pytest.raises(ValueError, match=f"{tmp_path}.*000012.png.*'flying'"):
        load_action_genome(tmp_path)


def test_agvideo_checks_and_is_read_only():
    v = load_action_genome(FIXTURE, split="train")[0]
    with pytest.raises(ValueError):
        v.frame_numbers[0] = 3
    with pytest.raises(ValueError, match="one frame number"):
        AGVideo(v.annotation, v.frame_numbers[:2], v.frame_keys, "train", 24.0, {})
    with pytest.raises(ValueError, match="increase"):
        AGVideo(v.annotation, v.frame_numbers[::-1], v.frame_keys, "train", 24.0, {})
