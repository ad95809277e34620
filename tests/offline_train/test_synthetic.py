"""Synthetic trajectory world: determinism, vocabulary, camera geometry, occlusion, each rule on hand-made scenes,
debouncing, JSON round trip, [begin, end) spans, the `vsgg synth` command and bad inputs."""
import json

import numpy as np
import pytest

from engine.cli.main import main as vsgg_main
from engine.io.vidvrd import frame_labels, load_vidvrd, save_vidvrd, to_vidvrd_dict
from engine.vocab import builtin
from offline_train.synthetic import (SynthConfig, generate, generate_video, predicate_counts, replay,
                                     write_dataset)
from offline_train.synthetic import rules
from offline_train.synthetic.camera import PinholeCamera, project_boxes, visible_boxes
from offline_train.synthetic.categories import PROFILES, SETTINGS, CategoryProfile, profile
from offline_train.synthetic.generate import video_rng
from offline_train.synthetic.labelling import (combined_name, debounce, debounce_categorical, emittable,
                                               frame_predicates)
from offline_train.synthetic.world import Behaviour, make_states, posture_extent

P = builtin("vidvrd_predicates")
FPS = 15.0
CFG = SynthConfig(frames=60)


@pytest.fixture(scope="module")
def videos():
    return [generate(CFG, 7, i) for i in range(60)]


# ------------------------------------------------------------------------------------------------ hand-made scenes


def line(p0, v, frames=45, fps=FPS):
    """(T, 3) positions from p0 moving at constant velocity v (m/s)."""
    t = np.arange(frames)[:, None] / fps
    return np.asarray(p0, float) + t * np.asarray(v, float)


def scene(cats, tracks, **kw):
    w = make_states(cats, np.stack(tracks, axis=1), FPS, **kw)
    return rules.geometry(w, PinholeCamera())


def labels(g):
    return frame_predicates(g, P)


def has(lab, s, o, name):
    """(T,) bool: predicate ``name`` holds for (s, o) per frame."""
    return lab[:, s, o, P.index(name)]


def act(g, k):
    return [rules.ACTIONS[a] for a in rules.action_of(g)[:, k]]


def test_walk_toward_static_person():
    g = scene(("person", "person"), [line((-3, 0, 10), (1.3, 0, 0)), line((3, 0, 10), (0, 0, 0))])
    lab = labels(g)
    assert set(act(g, 0)) == {"walk"} and set(act(g, 1)) == {"stand"}
    assert has(lab, 0, 1, "walk_toward").all()
    assert has(lab, 0, 1, "walk_left").all() and has(lab, 1, 0, "stand_right").all()
    assert not lab[:, 1, 0, [P.index(n) for n in P.names if n.endswith("toward")]].any()


def test_run_away():
    g = scene(("person", "person"), [line((-1, 0, 10), (-3.5, 0, 0)), line((1, 0, 10), (0, 0, 0))])
    lab = labels(g)
    assert set(act(g, 0)) == {"run"}
    assert has(lab, 0, 1, "run_away").all() and not has(lab, 0, 1, "run_toward").any()


def test_walk_past_only_when_abreast():
    g = scene(("person", "person"), [line((-4, 0, 11), (1.3, 0, 0), frames=90), line((0, 0, 10), (0, 0, 0), 90)])
    past = has(labels(g), 0, 1, "walk_past")
    x = g.world.pos[:, 0, 0]
    assert past[np.abs(x) < 0.3].all()
    assert not past[x < -2].any() and not past[x > 2].any()


def test_walk_with_side_by_side():
    g = scene(("person", "person"), [line((0, 0, 10), (1.3, 0, 0)), line((0, 0, 10.8), (1.3, 0, 0))])
    lab = labels(g)
    assert has(lab, 0, 1, "walk_with").all() and has(lab, 1, 0, "walk_with").all()
    assert not has(lab, 0, 1, "walk_past").any() and not has(lab, 0, 1, "walk_front").any()
    g = scene(("person", "person"), [line((0, 0, 10), (1.6, 0, 0)), line((0, 0, 10.8), (1.3, 0, 0))])
    assert rules.past(g).sum() == 0 and has(labels(g), 0, 1, "walk_with").all()   # drifting apart slowly: with


def test_follow_and_chase():
    g = scene(("person", "person"), [line((-3, 0, 10), (1.3, 0, 0)), line((0, 0, 10), (1.3, 0, 0))])
    assert has(labels(g), 0, 1, "follow").all() and not has(labels(g), 0, 1, "chase").any()
    assert not has(labels(g), 1, 0, "follow").any()
    g = scene(("dog", "person"), [line((-4, 0, 10), (3.6, 0, 0), 30), line((0, 0, 10), (3.0, 0, 0), 30)])
    lab = labels(g)
    assert has(lab, 0, 1, "chase").all() and not has(lab, 0, 1, "follow").any()


def test_fly_above_and_stand_beneath():
    g = scene(("bird", "person"), [line((0, 3.0, 10), (0, 0, 0)), line((0, 0, 10.5), (0, 0, 0))])
    lab = labels(g)
    assert set(act(g, 0)) == {"fly"}
    assert has(lab, 0, 1, "fly_above").all() and has(lab, 1, 0, "stand_beneath").all()
    g = scene(("bird", "person"), [line((8, 3.0, 10), (0, 0, 0)), line((0, 0, 10.5), (0, 0, 0))])
    assert not has(labels(g), 0, 1, "fly_above").any()      # outside the 45 degree cone


def test_next_to_and_stand_with_only_when_close():
    g = scene(("person", "person"), [line((0, 0, 10), (0, 0, 0)), line((0.8, 0, 10), (0, 0, 0))])
    lab = labels(g)
    assert has(lab, 0, 1, "stand_next_to").all() and has(lab, 0, 1, "stand_with").all()
    g = scene(("person", "person"), [line((0, 0, 10), (0, 0, 0)), line((5, 0, 10), (0, 0, 0))])
    lab = labels(g)
    assert not has(lab, 0, 1, "stand_next_to").any() and not has(lab, 0, 1, "stand_with").any()


def test_left_right_front_behind():
    g = scene(("person", "person"), [line((-3, 0, 10), (0, 0, 0)), line((3, 0, 10), (0, 0, 0))])
    lf = rules.left_of(g)
    assert lf[:, 0, 1].all() and not lf[:, 1, 0].any()
    assert not rules.in_front_of(g)[:, 0, 1].any()
    g = scene(("person", "person"), [line((0, 0, 6), (0, 0, 0)), line((0, 0, 12), (0, 0, 0))])
    lab = labels(g)
    assert has(lab, 0, 1, "stand_front").all() and has(lab, 1, 0, "stand_behind").all()
    assert not rules.left_of(g)[:, 0, 1].any() and not rules.left_of(g)[:, 1, 0].any()


def test_taller_larger_faster():
    g = scene(("person", "dog", "car"), [line((-2, 0, 10), (1.3, 0, 0)), line((2, 0, 10), (0.5, 0, 0)),
                                          line((0, 0, 20), (8, 0, 0))])
    lab = labels(g)
    assert has(lab, 0, 1, "taller").all() and not has(lab, 1, 0, "taller").any()
    assert not has(lab, 0, 1, "larger").any()                 # volume ratio 1.6 < LARGER_MIN_RATIO
    assert has(lab, 2, 0, "larger").all()
    assert has(lab, 2, 0, "faster").all() and not has(lab, 0, 2, "faster").any()
    assert has(lab, 0, 1, "faster").all()                      # 1.3 m/s >= 1.5 * 0.5 m/s


def test_ride_and_sit_above():
    horse = line((0, 0, 10), (1.6, 0, 0))
    rider = horse + np.array([0, 1.28, 0])
    ext = np.stack([np.tile(posture_extent("person", profile("person").size, "sit"), (45, 1)),
                    np.tile(profile("horse").size, (45, 1))], axis=1)
    sup = np.stack([np.ones(45, int), -np.ones(45, int)], axis=1)
    g = scene(("person", "horse"), [rider, horse], extent=ext, support=sup)
    lab = labels(g)
    assert set(act(g, 0)) == {"sit"} and set(act(g, 1)) == {"walk"}
    assert has(lab, 0, 1, "ride").all() and has(lab, 0, 1, "sit_above").all()
    assert has(lab, 1, 0, "walk_beneath").all() and not has(lab, 1, 0, "ride").any()


def test_stop_then_stand():
    walk = line((0, 0, 10), (1.3, 0, 0), frames=90)
    walk[15:] = walk[15]
    g = scene(("person", "person"), [walk, line((4, 0, 10), (0, 0, 0), 90)])
    a = act(g, 0)
    memory = round(rules.STOP_MEMORY_S * FPS)
    assert set(a[2:15]) == {"walk"}
    assert set(a[16:16 + memory]) == {"stop"} and set(a[17 + memory:]) == {"stand"}
    assert has(labels(g), 0, 1, "stop_left")[20].all()


def test_postures_swim_creep_vehicle_and_jump():
    still = line((0, 0, 10), (0, 0, 0))
    ext = np.stack([np.tile(posture_extent("dog", profile("dog").size, "lie"), (45, 1)),
                    np.tile(posture_extent("person", profile("person").size, "sit"), (45, 1))], axis=1)
    g = scene(("dog", "person"), [still, line((2, 0, 10), (0, 0, 0))], extent=ext)
    assert set(act(g, 0)) == {"lie"} and set(act(g, 1)) == {"sit"}
    assert has(labels(g), 0, 1, "lie_left").all() and has(labels(g), 1, 0, "sit_right").all()
    g = scene(("person", "watercraft"), [line((0, -0.85, 10), (1.0, 0, 0)), line((12, 0, 14), (0, 0, 0))],
              water=True)
    assert set(act(g, 0)) == {"swim"} and has(labels(g), 0, 1, "swim_left").all()
    g = scene(("snake", "lizard"), [line((0, 0, 3), (0.4, 0, 0)), line((2, 0, 3), (0, 0, 0))])
    assert set(act(g, 0)) == {"creep"} and set(act(g, 1)) == {"lie"}
    assert has(labels(g), 0, 1, "creep_toward").all()
    g = scene(("car", "car", "person"), [line((-8, 0, 20), (4, 0, 0)), line((8, 0, 20), (0, 0, 0)),
                                         line((0, 0, 8), (0, 0, 0))])
    lab = labels(g)
    assert set(act(g, 0)) == {"move"} and set(act(g, 1)) == {"none"}
    assert has(lab, 0, 1, "move_toward").all()
    assert has(lab, 1, 2, "behind").all() and has(lab, 1, 0, "right").all()   # parked car: plain names
    hop = line((0, 0, 10), (0, 0, 0))
    s = (np.arange(45) - 20) / 8.0
    hop[:, 1] = np.where((s > 0) & (s < 1), 4 * 0.5 * s * (1 - s), 0.0)
    g = scene(("person", "person"), [hop, line((3, 0, 10), (0, 0, 0))])
    a = act(g, 0)
    assert "jump" in a[21:28] and a[0] == "stand" and a[-1] == "stand"
    assert has(labels(g), 0, 1, "jump_left")[22:26].all()


# ------------------------------------------------------------------------------------------------ camera


def test_farther_is_smaller_and_bottom_rises_to_horizon():
    cam = PinholeCamera()
    depths = np.array([4.0, 8.0, 16.0, 32.0])
    pos = np.stack([np.zeros(4), np.zeros(4), depths], -1)[None]
    ext = np.tile(profile("person").size, (1, 4, 1))
    box, depth, front = project_boxes(cam, pos, ext, np.zeros((1, 4)))
    h = box[0, :, 3] - box[0, :, 1]
    bottom = box[0, :, 3]
    horizon = cam.height / 2 - cam.focal_px * np.tan(np.radians(cam.pitch_deg))
    assert (np.diff(h) < 0).all() and (np.diff(bottom) < 0).all() and (bottom > horizon).all()
    assert np.allclose(h[:-1] / h[1:], 2.0, rtol=0.15)
    assert front.all() and (np.diff(depth) > 0).all()
    right, = project_boxes(cam, np.array([[[2.0, 0, 8]]]), ext[:, :1], np.zeros((1, 1)))[:1]
    assert 0.5 * (right[0, 0, 0] + right[0, 0, 2]) > cam.width / 2
    behind = project_boxes(cam, np.array([[[0.0, 0, -5]]]), ext[:, :1], np.zeros((1, 1)))
    assert np.isnan(behind[0]).all() and not behind[2].any()


def test_occlusion_marks_absent_and_clipping():
    cam = PinholeCamera()
    ext = np.tile(profile("person").size, (1, 2, 1))
    for dx, hidden in ((0.0, True), (1.5, False)):
        pos = np.array([[[0.0, 0, 5], [dx, 0, 10]]])
        box, depth, _ = project_boxes(cam, pos, ext, np.zeros((1, 2)))
        vis = visible_boxes(cam, box, depth)
        assert not np.isnan(vis[0, 0]).any()
        assert np.isnan(vis[0, 1]).all() == hidden
    pos = np.array([[[3.2, 0, 5], [60.0, 0, 5]]])               # half out of the image; fully out
    box, depth, _ = project_boxes(cam, pos, ext, np.zeros((1, 2)))
    vis = visible_boxes(cam, box, depth)
    assert vis[0, 0, 2] == cam.width and vis[0, 0, 0] < cam.width and np.isnan(vis[0, 1]).all()


# ------------------------------------------------------------------------------------------------ generated videos


def test_same_seed_same_bytes_and_splits_stable(tmp_path):
    a = json.dumps(to_vidvrd_dict(generate_video(CFG, 3, 5, "val")))
    assert a == json.dumps(to_vidvrd_dict(generate_video(CFG, 3, 5, "val")))
    assert a != json.dumps(to_vidvrd_dict(generate_video(CFG, 4, 5, "val")))
    write_dataset(tmp_path / "a", 10, 1, CFG, progress=False)
    write_dataset(tmp_path / "b", 10, 1, CFG, progress=False)
    write_dataset(tmp_path / "c", 20, 1, CFG, progress=False)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.json"))
    assert len(files) == 10 and {f.parts[0] for f in files} == {"train", "val", "test"}
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "c" / f).read_bytes()   # more videos: same ones


def test_every_predicate_is_in_the_vocabulary(videos):
    assert set(emittable(P)) <= set(P.names) and set(emittable(P, False)) <= set(P.names)
    assert "slower" not in emittable(P)
    emitted = {r.predicate for v in videos for r in v.annotation.relations}
    assert emitted and emitted <= set(P.names)
    plain = {r.predicate for i in range(10) for r in generate_video(SynthConfig(frames=60, layout_with_action=False),
                                                                    7, i).relations}
    assert plain <= set(P.names) and not {"walk_left", "stand_front", "run_behind"} & plain


def test_generator_exercises_the_rules(videos):
    emitted = {r.predicate for v in videos for r in v.annotation.relations}
    for name in ("walk_toward", "walk_away", "follow", "chase", "ride", "taller", "larger", "faster",
                 "walk_next_to", "stand_left", "run_behind", "move_right"):
        assert name in emitted, name
    assert sum(n.endswith("_past") for n in emitted) >= 2 and sum(n.endswith("_with") for n in emitted) >= 2
    assert len(emitted) >= 40
    assert {v.setting for v in videos} == {s.name for s in SETTINGS}


def test_categories_cover_the_vocabulary():
    objects = builtin("vidvrd_objects")
    assert set(PROFILES) == set(objects.names)
    assert set().union(*(s.weights for s in SETTINGS)) == set(objects.names)


def test_boxes_and_spans(videos):
    for v in videos[:20]:
        ann = v.annotation
        present = ann.present
        b = ann.boxes[present]
        assert (b[:, 0] >= 0).all() and (b[:, 2] <= ann.width).all() and (b[:, 1] >= 0).all()
        assert (b[:, 3] <= ann.height).all() and present.any(0).all()
        g, cols = v.geometry, v.columns
        raw = frame_predicates(g, P)[:, cols][:, :, cols] & present[:, :, None, None] & present[:, None, :, None]
        assert np.array_equal(frame_labels(ann, P), raw)
        for r in ann.relations:
            s, o, p = ann.column(r.subject_tid), ann.column(r.object_tid), P.index(r.predicate)
            assert raw[r.begin_fid:r.end_fid, s, o, p].all()                     # end is exclusive
            assert r.end_fid == ann.frame_count or not raw[r.end_fid, s, o, p]
            assert r.begin_fid == 0 or not raw[r.begin_fid - 1, s, o, p]
            assert present[r.begin_fid:r.end_fid, s].all() and present[r.begin_fid:r.end_fid, o].all()
            if r.predicate == "ride":
                assert profile(ann.categories[o]).mount > 0


def test_json_round_trip(tmp_path, videos):
    ann = videos[0].annotation
    save_vidvrd(ann, tmp_path / "v.json")
    back = load_vidvrd(tmp_path / "v.json")
    assert back.video_id == ann.video_id and back.categories == ann.categories and back.fps == ann.fps
    assert np.array_equal(back.present, ann.present)
    assert np.allclose(back.boxes[ann.present], ann.boxes[ann.present], atol=0.006)
    assert set(back.relations) == set(ann.relations)
    assert np.array_equal(frame_labels(back, P), frame_labels(ann, P))


def test_predicate_counts(videos):
    anns = [v.annotation for v in videos[:10]]
    c = predicate_counts(anns)
    assert sum(d["instances"] for d in c.values()) == sum(len(a.relations) for a in anns)
    assert sum(d["frames"] for d in c.values()) == sum(int(frame_labels(a, P).sum()) for a in anns)


def test_cli_writes_dataset_and_report(tmp_path, capsys):
    out = tmp_path / "synth"
    rc = vsgg_main(["synth", "--out", str(out), "--videos", "5", "--seed", "2", "--frames", "30", "--no-progress"])
    assert rc == 0
    files = sorted(out.rglob("synth2_*.json"))
    assert len(files) == 5
    stats = json.loads((out / "stats.json").read_text())
    total = sum(len(load_vidvrd(f).relations) for f in files)
    assert stats["relation_instances"] == total == sum(d["instances"] for d in stats["predicates"].values())
    assert "distinct predicates" in capsys.readouterr().out
    assert vsgg_main(["synth", "--out", str(out), "--videos", "0"]) == 1
    assert vsgg_main(["synth", "--out", str(out), "--videos", "3", "--frames", "1"]) == 1


# ------------------------------------------------------------------------------------------------ small pieces


def test_debounce():
    x = np.array([1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0], bool)
    assert debounce(x, 3).astype(int).tolist() == [1] * 7 + [0] * 8
    assert debounce(np.array([0, 1, 1, 1], bool), 3).tolist() == [False, True, True, True]
    assert debounce(x[:, None, None], 3)[:, 0, 0].tolist() == debounce(x, 3).tolist()
    assert debounce_categorical(np.array([[0, 0, 0, 1, 0, 0, 0, 2, 2, 2]]).T, 3)[:, 0].tolist() == [0] * 7 + [2] * 3
    assert debounce_categorical(np.array([[5, 0, 0, 0]]).T, 3)[:, 0].tolist() == [0, 0, 0, 0]


def test_combined_name_fallbacks():
    assert combined_name("walk", "toward", True, P) == "walk_toward"
    assert combined_name("sit", "with", True, P) == "move_with"          # no sit_with in VidVRD
    assert combined_name("sit", "with", False, P) is None               # no plain 'with' either
    assert combined_name("swim", "above", False, P) == "above"
    assert combined_name("none", "left", False, P) == "left"
    assert combined_name("walk", "left", True, P, layout_with_action=False) == "left"


def test_bad_inputs():
    for kw in (dict(frames=1), dict(fps=0.0), dict(min_agents=3, max_agents=2), dict(val_fraction=0.6,
               test_fraction=0.5), dict(width=0), dict(focal_px=-1.0)):
        with pytest.raises(ValueError):
            SynthConfig(**kw)
    with pytest.raises(ValueError, match="split"):
        video_rng(0, "dev", 0)
    with pytest.raises(ValueError, match="seed"):
        generate_video(CFG, -1, 0)
    with pytest.raises(ValueError, match="videos"):
        CFG.split_sizes(0)
    with pytest.raises(ValueError, match="mode"):
        Behaviour("teleport")
    with pytest.raises(ValueError, match="posture"):
        Behaviour("idle", posture="kneel")
    with pytest.raises(ValueError, match="speed"):
        Behaviour("wander", speed=-1.0)
    with pytest.raises(ValueError, match="kind"):
        CategoryProfile("x", "robot", (1, 1, 1), 1, 2)
    with pytest.raises(ValueError, match="unknown category"):
        profile("unicorn")
    with pytest.raises(ValueError, match=r"pos must have shape \(T >= 2, 1, 3\), got \(5, 2, 3\)"):
        make_states(("person",), np.zeros((5, 2, 3)), FPS)
    with pytest.raises(ValueError, match="heading"):
        make_states(("person",), np.zeros((5, 1, 3)), FPS, heading=np.zeros(5))
    with pytest.raises(ValueError, match="pitch"):
        PinholeCamera(pitch_deg=80)
    with pytest.raises(ValueError, match="action"):
        combined_name("dance", "left", False, P)
    with pytest.raises(ValueError, match="spatial"):
        combined_name("walk", "inside_out", False, P)


def test_replay_through_the_detection_simulator(videos):
    ann = videos[1].annotation
    clean = [d for _, _, d in replay(ann, jitter=0.0, drop_prob=0.0, false_positives=0.0)]
    assert [len(d) for d in clean] == ann.present.sum(1).tolist()
    objects = builtin("vidvrd_objects")
    assert {objects.label(i) for d in clean for i in d.labels} == set(ann.categories)
    noisy = [d for _, _, d in replay(ann, seed=1, jitter=0.1, drop_prob=0.3, false_positives=1.0)]
    again = [d for _, _, d in replay(ann, seed=1, jitter=0.1, drop_prob=0.3, false_positives=1.0)]
    assert all(np.array_equal(a.boxes_xyxy, b.boxes_xyxy) for a, b in zip(noisy, again))
    assert any(not np.array_equal(a.boxes_xyxy, b.boxes_xyxy) for a, b in zip(noisy, clean))
