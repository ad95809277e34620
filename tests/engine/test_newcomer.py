"""The newcomer's path (issue 11 §3): each rough edge met by a new user gives a message that says what to do."""
from pathlib import Path

import pytest

from engine.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
VIDOR = ROOT / "tests" / "data" / "vidor"


def test_eval_on_vidor_without_maps_names_the_map_flags(tmp_path, capsys):
    pytest.importorskip("torch")
    rc = main(["eval", "--vidvrd", str(VIDOR / "3598080384.json"), "--out", str(tmp_path / "p.json"),
               "--report", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 1 and "--category-map" in err and "--predicate-map" in err and "tests/data/vidor" in err


def test_eval_on_vidor_with_the_maps_writes_a_report_and_a_chart(tmp_path, capsys):
    pytest.importorskip("torch")
    rc = main(["eval", "--vidvrd", str(VIDOR / "3598080384.json"), "--category-map", str(VIDOR / "category_map.yaml"),
               "--predicate-map", str(VIDOR / "predicate_map.yaml"), "--out", str(tmp_path / "p.json"),
               "--report", str(tmp_path / "r.json")])
    assert rc == 0 and (tmp_path / "r.png").is_file() and "chart:" in capsys.readouterr().out


def test_a_training_checkpoint_passed_as_model_says_to_export_it(capsys):
    rc = main(["run", "--source", f"mot:{ROOT / 'tests/data/mot15/TUD-Campus/det.txt'}", "--quiet",
               "--model", str(ROOT / "engine" / "models" / "default" / "checkpoint")])
    err = capsys.readouterr().err
    assert rc == 1 and "is a training checkpoint" in err and "vsgg export --checkpoint" in err


@pytest.mark.parametrize("spec, msg", [("mot:/nonexistent/det.txt", "no such detections file"),
                                       ("mot:/tmp", "is a folder; give the detections file itself")])
def test_mot_source_errors_talk_about_the_file(spec, msg, capsys):
    assert main(["run", "--source", spec, "--model", "none", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert msg in err and "--image-size" not in err


def test_vidvrd_source_names_the_category_map_flag(capsys):
    rc = main(["run", "--source", f"vidvrd:{VIDOR / '3598080384.json'}", "--model", "none", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "--category-map" in err
