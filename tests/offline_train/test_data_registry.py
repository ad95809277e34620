"""DatasetConfig + load_dataset: switching between VidOR / VidVRD JSON and Action Genome is a config change."""
from pathlib import Path

import numpy as np
import pytest

from engine.config import ConfigError, from_dict, to_dict
from engine.io.vidvrd import VideoAnnotation, load_vidvrd
from engine.vocab import builtin
from offline_train.data.registry import (DatasetConfig, dataset_vocabularies, label_maps, load_dataset,
                                         load_dataset_config, predicate_groups)

DATA = Path(__file__).resolve().parents[1] / "data"
VIDOR = DATA / "vidor"
AG = DATA / "action_genome_fixture"


def test_vidor_onto_vidvrd_from_a_yaml_file(tmp_path):
    (tmp_path / "cats.yaml").write_text("adult: person\n")
    (tmp_path / "preds.yaml").write_text("in_front_of: front\nnext_to: next_to\n")
    (tmp_path / "fish.txt").write_text("person\nfish")
    cfg_file = tmp_path / "data.yaml"
    cfg_file.write_text(
        f"kind: vidor\npaths: [{VIDOR}]\nobject_vocab: vidvrd_objects\npredicate_vocab: vidvrd_predicates\n"
        f"category_map: {tmp_path / 'cats.yaml'}\npredicate_map: {tmp_path / 'preds.yaml'}\n"
        "unknown_category: drop\n")
    cfg = load_dataset_config(cfg_file)
    (ann,) = load_dataset(cfg, progress=False)
    assert isinstance(ann, VideoAnnotation) and ann.categories == ("person",) and ann.relations == ()
    # the same data with a vocabulary file that has a fish class: one override away
    cfg2 = load_dataset_config(cfg_file, [f"object_vocab={tmp_path / 'fish.txt'}", "unknown_category=error",
                                          "category_map=''"])
    with pytest.raises(ValueError, match="'adult'"):
        load_dataset(cfg2, progress=False)
    (tmp_path / "cats2.yaml").write_text("adult: person\nstingray: fish\n")
    cfg3 = load_dataset_config(cfg_file, [f"object_vocab={tmp_path / 'fish.txt'}",
                                          f"category_map={tmp_path / 'cats2.yaml'}"])
    (ann3,) = load_dataset(cfg3, progress=False)
    assert ann3.categories == ("person", "fish") and {r.predicate for r in ann3.relations} == {"front", "next_to"}
    np.testing.assert_array_equal(ann3.boxes, load_vidvrd(VIDOR / "3598080384.json").boxes)
    assert predicate_groups(cfg3) == {}


def test_vidvrd_kind_uses_vidvrd_vocabularies_and_names_the_file():
    cfg = DatasetConfig(kind="vidvrd", paths=(str(VIDOR),))
    objs, preds = dataset_vocabularies(cfg)
    assert objs.name == "vidvrd_objects" and preds.name == "vidvrd_predicates"
    with pytest.raises(ValueError, match=r"3598080384.json.*'adult'.*'vidvrd_objects'"):
        load_dataset(cfg, progress=False)


def test_action_genome_by_config_overrides():
    cfg = load_dataset_config(None, ["kind=action_genome", f"paths=[{AG}]", "split=train", "min_frames=3"])
    videos = load_dataset(cfg, progress=False)
    assert [v.video_id for v in videos] == ["A1B2C.mp4"]
    assert videos[0].categories[0] == "person"
    assert predicate_groups(cfg) == {"attention": [0, 1, 2], "spatial": list(range(3, 9)),
                                     "contacting": list(range(9, 26))}
    assert dataset_vocabularies(cfg)[0] == builtin("ag_objects")
    every = load_dataset(from_dict(DatasetConfig, {"kind": "action_genome", "paths": [str(AG)],
                                                   "ag_require_person_box": False}), progress=False)
    assert len(every) == 3 and every[0].frame_count == 4


def test_action_genome_groups_follow_the_predicate_map(tmp_path):
    (tmp_path / "preds.txt").write_text("look\nnolook\nnear\ntouch")
    (tmp_path / "map.yaml").write_text("lookingat: look\nnotlookingat: nolook\ninfrontof: near\nholding: touch\n")
    cfg = DatasetConfig(kind="action_genome", paths=(str(AG),), predicate_vocab=str(tmp_path / "preds.txt"),
                        predicate_map=str(tmp_path / "map.yaml"), unknown_predicate="drop")
    assert predicate_groups(cfg) == {"attention": [0, 1], "spatial": [2], "contacting": [3]}
    videos = load_dataset(cfg, progress=False)
    assert {r.predicate for v in videos for r in v.relations} <= {"look", "nolook", "near", "touch"}


def test_config_round_trip_and_label_maps():
    cfg = DatasetConfig(kind="action_genome", paths=(str(AG),), split="test")
    assert from_dict(DatasetConfig, to_dict(cfg)) == cfg
    cats, preds = label_maps(cfg)
    assert cats.target.name == "ag_objects" and preds.unknown == "error"


@pytest.mark.parametrize("overrides, pattern", [
    (["kind=coco"], "dataset.kind"),
    (["unknown_category=ignore"], "unknown_category"),
    (["min_frames=0"], "min_frames"),
    (["ag_fps=0"], "ag_fps"),
    (["kind=action_genome", "split=val"], "split"),
    (["paths=/data/vidvrd"], "paths"),
    (["spilt=train"], "unknown config key 'spilt'"),
])
def test_bad_configs(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_dataset_config(None, overrides)


def test_bad_configs_at_load_time():
    with pytest.raises(ConfigError, match="paths is empty"):
        load_dataset(DatasetConfig(kind="vidvrd"))
    with pytest.raises(ConfigError, match="object_vocab must be set for kind 'vidor'"):
        load_dataset(DatasetConfig(kind="vidor", paths=(str(VIDOR),)))
    with pytest.raises(ConfigError, match="one annotations folder"):
        load_dataset(DatasetConfig(kind="action_genome", paths=(str(AG), str(AG))))
    with pytest.raises(ValueError, match="unknown built-in vocabulary"):
        load_dataset(DatasetConfig(kind="vidvrd", paths=(str(VIDOR),), object_vocab="coco"))
    with pytest.raises(ConfigError, match="single string"):
        DatasetConfig(paths="/data")



def test_synthetic_kind_generates_seeded_videos(tmp_path):
    cfg = load_dataset_config(None, ["kind=synthetic", "split=test", "synthetic_seed=3", "synthetic_videos=3",
                                     "synthetic.frames=12"])
    videos = load_dataset(cfg, progress=False)
    assert [v.video_id for v in videos] == ["synth3_test_00000", "synth3_test_00001", "synth3_test_00002"]
    assert all(v.frame_count == 12 for v in videos)
    vocab_o, vocab_p = dataset_vocabularies(cfg)
    assert all(c in vocab_o for v in videos for c in v.categories)
    assert all(r.predicate in vocab_p for v in videos for r in v.relations)
    again = load_dataset(cfg, progress=False)
    assert all(np.array_equal(a.boxes, b.boxes, equal_nan=True) and a.relations == b.relations
               for a, b in zip(videos, again))
    assert len(load_dataset(from_dict(DatasetConfig, {"kind": "synthetic", "max_videos": 2,
                                                      "synthetic": {"frames": 5}}), progress=False)) == 2
    # mapped like any dataset: only persons kept
    (tmp_path / "person.txt").write_text("person")
    only = load_dataset(DatasetConfig(kind="synthetic", synthetic_videos=4, object_vocab=str(tmp_path / "person.txt"),
                                      unknown_category="drop", unknown_predicate="drop"), progress=False)
    assert all(set(v.categories) <= {"person"} for v in only)


@pytest.mark.parametrize("overrides, pattern", [
    (["kind=synthetic", "split=training"], "split"),
    (["synthetic_videos=0"], "synthetic_videos"),
    (["synthetic.frames=1"], "frames"),
])
def test_bad_synthetic_configs(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_dataset_config(None, overrides)
