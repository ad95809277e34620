"""VidVRD / VidOR folder loader and label maps, on the official VidOR annotation tests/data/vidor/3598080384.json."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.io.vidvrd import RelationInstance, VideoAnnotation, frame_labels, load_vidvrd
from engine.vocab import Vocabulary, builtin
from offline_train.data.label_map import LabelMap, merge_spans, remap_annotation
from offline_train.data.vidvrd_dataset import find_annotation_files, load_vidvrd_dataset

VIDOR = Path(__file__).resolve().parents[1] / "data" / "vidor"
FILE = VIDOR / "3598080384.json"
# VidOR -> VidVRD. VidVRD has no fish class, so the stingray is dropped explicitly (null) rather than mislabelled.
CAT_MAP = {"adult": "person", "stingray": None}
PRED_MAP = {"in_front_of": "front", "next_to": "next_to"}


def _write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _raw():
    return json.loads(FILE.read_text())


def _identity(objs=("adult", "stingray"), preds=("next_to", "in_front_of"), unknown="error"):
    return LabelMap(Vocabulary("o", objs), {}, unknown), LabelMap(Vocabulary("p", preds), {}, unknown)


def test_folder_of_official_json_identity():
    cats, preds = _identity()
    (ann,) = load_vidvrd_dataset([VIDOR], cats, preds, progress=False)
    ref = load_vidvrd(FILE)
    assert ann.frame_count == 368 and ann.categories == ("adult", "stingray") and ann.fps == 25
    np.testing.assert_array_equal(ann.boxes, ref.boxes)
    assert set(ann.relations) == set(ref.relations) and len(ann.relations) == 4
    assert {(r.begin_fid, r.end_fid) for r in ann.relations} == {(0, 90), (150, 205)}  # end exclusive, as in file


def test_map_to_vidvrd_vocabulary_drops_the_stingray(tmp_path):
    cats = LabelMap.from_file(_write(tmp_path / "cats.yaml", "adult: person\nstingray: null\n"),
                              builtin("vidvrd_objects"))
    preds = LabelMap.from_file(_write(tmp_path / "preds.json", PRED_MAP), builtin("vidvrd_predicates"))
    (ann,) = load_vidvrd_dataset([FILE], cats, preds, progress=False)
    assert ann.categories == ("person",) and ann.tids.tolist() == [0]
    np.testing.assert_array_equal(ann.boxes[:, 0], load_vidvrd(FILE).boxes[:, 0])
    assert ann.relations == ()  # every relation involves the dropped stingray
    policy = LabelMap(builtin("vidvrd_objects"), {"adult": "person"}, unknown="drop")
    (same,) = load_vidvrd_dataset([FILE], policy, preds, progress=False)
    assert same.categories == ("person",) and same.relations == ()


def test_predicates_renamed_into_vidvrd_and_labels_built(tmp_path):
    objs = _write(tmp_path / "objs.txt", "person\nfish")
    cats = LabelMap(Vocabulary.from_file(objs), {"adult": "person", "stingray": "fish"})
    preds = LabelMap(builtin("vidvrd_predicates"), PRED_MAP)
    (ann,) = load_vidvrd_dataset([FILE], cats, preds, progress=False)
    assert ann.categories == ("person", "fish")
    assert set(ann.relations) == {RelationInstance(0, "next_to", 1, 0, 90), RelationInstance(0, "next_to", 1, 150, 205),
                                  RelationInstance(1, "front", 0, 0, 90), RelationInstance(1, "front", 0, 150, 205)}
    lab = frame_labels(ann, builtin("vidvrd_predicates"))
    front = builtin("vidvrd_predicates").index("front")
    assert lab[:, 1, 0, front].sum() == 90 + 55 and lab[89, 1, 0, front] and not lab[90, 1, 0, front]


def test_unmapped_name_with_error_policy_names_label_file_and_map():
    cats = LabelMap(builtin("vidvrd_objects"), {"adult": "person"}, unknown="error", source="cats.yaml")
    preds = LabelMap(builtin("vidvrd_predicates"), PRED_MAP)
    with pytest.raises(ValueError, match=r"3598080384.json.*'stingray'.*'vidvrd_objects'.*cats.yaml"):
        load_vidvrd_dataset([FILE], cats, preds, progress=False)
    cats_ok = LabelMap(builtin("vidvrd_objects"), CAT_MAP)
    objs = Vocabulary("o", ("person", "fish"))
    with pytest.raises(ValueError, match=r"'in_front_of' is not in vocabulary 'vidvrd_predicates'"):
        load_vidvrd_dataset([FILE], LabelMap(objs, {"adult": "person", "stingray": "fish"}),
                            LabelMap(builtin("vidvrd_predicates"), {}), progress=False)
    # with 'drop', the unknown predicates go and the objects stay
    (ann,) = load_vidvrd_dataset([FILE], LabelMap(objs, {"adult": "person", "stingray": "fish"}),
                                 LabelMap(builtin("vidvrd_predicates"), {}, unknown="drop"), progress=False)
    assert ann.categories == ("person", "fish") and {r.predicate for r in ann.relations} == {"next_to"}
    assert cats_ok.map("stingray", "x") is None


def test_vidor_nested_layout_with_split(tmp_path):
    root = tmp_path / "annotation"
    shutil.copy(FILE, _write(root / "training" / "0001" / "3598080384.json", "{}"))
    other = _raw()
    other["video_id"] = "1111111111"
    other["relation_instances"] = other["relation_instances"][:1]
    _write(root / "training" / "0000" / "1111111111.json", other)
    _write(root / "validation" / "0002" / "2222222222.json", "not json at all")  # other split: never read
    files = find_annotation_files([root], "training")
    assert [f.name for f in files] == ["1111111111.json", "3598080384.json"]
    cats, preds = _identity()
    videos = load_vidvrd_dataset([root], cats, preds, split="training", progress=False)
    assert [v.video_id for v in videos] == ["1111111111", "3598080384"]
    assert len(videos[0].relations) == 1 and len(videos[1].relations) == 4
    assert len(load_vidvrd_dataset([root], cats, preds, split="training", max_videos=1, progress=False)) == 1
    assert load_vidvrd_dataset([root], cats, preds, split="training", min_frames=369, progress=False) == []
    # a list of files works as well as folders
    assert len(load_vidvrd_dataset(files, cats, preds, progress=False)) == 2


def test_duplicate_video_id_names_both_files(tmp_path):
    shutil.copy(FILE, _write(tmp_path / "a" / "x.json", "{}"))
    shutil.copy(FILE, _write(tmp_path / "b" / "y.json", "{}"))
    with pytest.raises(ValueError, match=r"y.json: video_id '3598080384' already loaded from .*x.json"):
        load_vidvrd_dataset([tmp_path], *_identity(), progress=False)


def _mutations():
    def drop(key):
        return lambda d: d.pop(key)

    def late_end(d):
        d["relation_instances"][0]["end_fid"] = d["frame_count"] + 1

    def unknown_tid(d):
        d["trajectories"][3][0]["tid"] = 7

    def short_traj(d):
        d["trajectories"].pop()

    def bad_box(d):
        d["trajectories"][0][0]["bbox"] = {"xmin": 10, "ymin": 0, "xmax": 5, "ymax": 4}

    return {
        "truncated JSON": ("truncated", "not valid JSON"),
        "missing trajectories": (drop("trajectories"), "missing field 'trajectories'"),
        "missing fps": (drop("fps"), "missing field 'fps'"),
        "end_fid past the end": (late_end, "frame span"),
        "unknown tid": (unknown_tid, "tid 7"),
        "frame_count mismatch": (short_traj, "frame_count"),
        "inverted box": (bad_box, "x1<=x2"),
        "top level list": ("list", "top level"),
    }


@pytest.mark.parametrize("case", sorted(_mutations()))
def test_malformed_files_raise_value_error_naming_the_file(tmp_path, case):
    edit, pattern = _mutations()[case]
    good = _write(tmp_path / "d" / "0000" / "good.json", FILE.read_text())
    if edit == "truncated":
        text = FILE.read_text()[:500]
    elif edit == "list":
        text = "[1, 2]"
    else:
        d = _raw()
        edit(d)
        text = json.dumps(d)
    bad = _write(tmp_path / "d" / "0001" / "bad.json", text)
    with pytest.raises(ValueError, match=pattern) as err:
        load_vidvrd_dataset([tmp_path / "d"], *_identity(), progress=False)
    assert str(bad) in str(err.value) and good.is_file()


def test_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        find_annotation_files([tmp_path / "missing"])
    with pytest.raises(FileNotFoundError, match="split 'training'"):
        find_annotation_files([tmp_path], "training")
    with pytest.raises(ValueError, match="no \\*.json"):
        find_annotation_files([tmp_path])
    with pytest.raises(ValueError, match=".json annotation file"):
        find_annotation_files([_write(tmp_path / "a.txt", "x")])
    with pytest.raises(ValueError, match="min_frames"):
        load_vidvrd_dataset([FILE], *_identity(), min_frames=0)


def test_map_file_errors(tmp_path):
    v = builtin("vidvrd_objects")
    with pytest.raises(ValueError, match=r"bad_target.yaml: 'adult' maps to 'adlut', which is not in vocabulary"):
        LabelMap.from_file(_write(tmp_path / "bad_target.yaml", "adult: adlut\n"), v)
    with pytest.raises(ValueError, match=r"list.yaml: label map must be a mapping"):
        LabelMap.from_file(_write(tmp_path / "list.yaml", "- adult\n- person\n"), v)
    with pytest.raises(ValueError, match=r"broken.json: label map is not valid JSON"):
        LabelMap.from_file(_write(tmp_path / "broken.json", "{\"adult\": "), v)
    with pytest.raises(ValueError, match=r"broken.yaml: label map is not valid YAML"):
        LabelMap.from_file(_write(tmp_path / "broken.yaml", "adult: [person\n"), v)
    with pytest.raises(ValueError, match=r"nums.yaml: entries must be"):
        LabelMap.from_file(_write(tmp_path / "nums.yaml", "adult: 3\n"), v)
    with pytest.raises(FileNotFoundError):
        LabelMap.from_file(tmp_path / "none.yaml", v)
    with pytest.raises(ValueError, match="policy"):
        LabelMap(v, {}, unknown="ignore")
    assert LabelMap.from_file(_write(tmp_path / "empty.yaml", ""), v).map("person", "x") == "person"


def test_merge_spans_joins_touching_and_overlapping_spans():
    # still used to build Action Genome spans out of one-frame keyframe instances
    R = RelationInstance
    assert merge_spans([R(0, "a", 1, 5, 9), R(0, "a", 1, 0, 5), R(0, "a", 1, 12, 14), R(0, "a", 1, 13, 20),
                        R(1, "a", 0, 0, 3)]) == (R(0, "a", 1, 0, 9), R(0, "a", 1, 12, 20), R(1, "a", 0, 0, 3))


def _dog_ball(relations, n_frames=40):
    boxes = np.zeros((n_frames, 3, 4), np.float32)
    return VideoAnnotation("v", 10.0, 64, 48, np.array([3, 8, 9]), ("dog", "ball", "dog"), boxes, tuple(relations))


def test_remap_keeps_instances_as_annotated_without_a_collapsing_map():
    R = RelationInstance
    rels = [R(3, "chase", 8, 5, 9), R(3, "chase", 8, 0, 5),       # touching
            R(3, "chase", 8, 12, 20), R(3, "chase", 8, 15, 18),  # overlapping (nested)
            R(8, "chase", 3, 0, 2), R(8, "chase", 3, 0, 2),      # duplicate
            R(3, "run_toward", 8, 4, 30)]                         # another name, no map joins it to chase
    ann = _dog_ball(rels)
    vocab = LabelMap(Vocabulary("o", ("dog", "ball")), {})
    out = remap_annotation(ann, vocab, LabelMap(Vocabulary("p", ("chase", "run_toward")), {}))
    assert out.relations == tuple(rels)  # same instances, same spans, same order
    # an identity map entry is no collapse either
    out = remap_annotation(ann, vocab, LabelMap(Vocabulary("p", ("chase", "run_toward")), {"chase": "chase"}))
    assert out.relations == tuple(rels)


def test_remap_merges_only_instances_of_distinct_names_collapsed_into_one():
    R = RelationInstance
    rels = [R(3, "chase", 8, 0, 10),        # 0: overlaps 1 (other source name) -> one instance [0, 15)
            R(3, "run_toward", 8, 5, 15),   # 1
            R(3, "chase", 8, 15, 18),       # 2: touches 1 ([5, 15) and [15, 18)) -> joins the same instance
            R(3, "chase", 8, 30, 33),       # 3: touches 4, same source name -> kept apart
            R(3, "chase", 8, 33, 35),       # 4
            R(3, "run_toward", 8, 37, 40),  # 5: gap of 2 frames after 4 -> kept apart
            R(8, "run_toward", 3, 0, 4),    # 6: other pair (ball -> dog): never joins the dog -> ball instances
            R(9, "chase", 8, 2, 6),         # 7: dog #9 is another object than dog #3 despite the same category
            R(3, "follow", 8, 0, 40)]       # 8: dropped by the map (null)
    ann = _dog_ball(rels)
    cats = LabelMap(Vocabulary("o", ("dog", "ball")), {})
    preds = LabelMap(Vocabulary("p", ("chase",)), {"run_toward": "chase", "follow": None})
    out = remap_annotation(ann, cats, preds)
    assert out.relations == (R(3, "chase", 8, 0, 18), R(3, "chase", 8, 30, 33), R(3, "chase", 8, 33, 35),
                             R(3, "chase", 8, 37, 40), R(8, "chase", 3, 0, 4), R(9, "chase", 8, 2, 6))
    assert ann.relations == tuple(rels)  # the input is untouched
    # a chain through the other name joins same-name instances transitively: a[0,4) b[3,8) a[7,9) -> [0, 9)
    chain = _dog_ball([R(3, "run_toward", 8, 7, 9), R(3, "chase", 8, 3, 8), R(3, "run_toward", 8, 0, 4)])
    assert remap_annotation(chain, cats, preds).relations == (R(3, "chase", 8, 0, 9),)
    # exact duplicates under two collapsed names are one relation annotated twice
    dup = _dog_ball([R(3, "run_toward", 8, 7, 9), R(3, "chase", 8, 7, 9), R(3, "chase", 8, 7, 9)])
    assert remap_annotation(dup, cats, preds).relations == (R(3, "chase", 8, 7, 9),)


def test_collapsing_categories_never_merges_instances():
    R = RelationInstance
    boxes = np.zeros((10, 3, 4), np.float32)
    ann = VideoAnnotation("v", 10.0, 64, 48, np.array([1, 2, 3]), ("adult", "child", "ball"), boxes,
                          (R(1, "watch", 3, 0, 5), R(2, "watch", 3, 3, 8)))
    out = remap_annotation(ann, LabelMap(Vocabulary("o", ("person", "ball")), {"adult": "person", "child": "person"}),
                           LabelMap(Vocabulary("p", ("watch",)), {}))
    assert out.categories == ("person", "person", "ball") and out.relations == ann.relations


def test_real_fixture_keeps_file_order_after_renaming():
    preds = LabelMap(builtin("vidvrd_predicates"), PRED_MAP)
    cats = LabelMap(Vocabulary("o", ("person", "fish")), {"adult": "person", "stingray": "fish"})
    (ann,) = load_vidvrd_dataset([FILE], cats, preds, progress=False)
    assert [(r.predicate, r.begin_fid, r.end_fid) for r in ann.relations] == [
        ("next_to", 0, 90), ("next_to", 150, 205), ("front", 0, 90), ("front", 150, 205)]
