"""MEVA loader: KPF line parser vs PyYAML, subject choice, spans, gaps, frame size, fps mapping, cache, splits."""
import dataclasses
import lzma
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from engine.config import ConfigError
from engine.io.vidvrd import VideoAnnotation
from engine.vocab import builtin
from offline_train.data import meva_cache
from offline_train.data.meva import (CAMERA_FRAME_SIZES, DEFAULT_SPLITS, RelationStats, activity_relations,
                                     derive_vocabularies, frame_size, frame_stride, load_meva, select_sources,
                                     summarize_dates, to_meva_clip)
from offline_train.data.meva_cache import (find_meva_sources, load_parsed, load_parsed_clips, parse_clip,
                                           source_digest)
from offline_train.data.meva_kpf import (_GEOM_FLOW, _GEOM_REPR, KpfActivity, KpfFormatError, parse_activities,
                                         parse_flow_line, parse_geom, parse_types, read_kpf_lines)
from offline_train.data.registry import dataset_vocabularies, load_dataset, load_dataset_config

DATA = Path(__file__).resolve().parents[1] / "data" / "meva"
# the full annotations in ../shared beside the checkout (as CI lays it out); skipped where they are not
FULL = Path(__file__).resolve().parents[3] / "shared" / "data" / "meva"
A = "2018-03-11.11-55-00.12-00-00.bus.G506"      # Python-repr layout, negative boxes, 4-person talk
C = "2018-03-11.16-30-01.16-35-01.school.G339"   # YAML-flow layout (kitware set), keyframe flag missing
D = "2018-03-11.17-15-00.17-20-00.school.G639"   # the one camera with a taller frame; vehicle-first enters
E = "2018-03-05.14-00-00.14-05-00.bus.G340"      # marked empty (a test-split date)
F = "2018-03-12.10-50-01.10-55-01.school.G639"   # G639 boxes below y = 1536 (a val-split date)


def _yaml_records(path):
    return yaml.load("\n".join(read_kpf_lines(path)), Loader=yaml.CSafeLoader) or []


@pytest.fixture(scope="module")
def parsed():
    return {s.name: parse_clip(s) for s in find_meva_sources([DATA])}


def _clip(parsed, name, fps=30.0, **kw):
    return to_meva_clip(parsed[name], fps, **kw)


def test_every_line_equals_pyyaml_and_fast_geom_path_agrees():
    files = sorted(DATA.rglob("*.yml.xz"))
    assert len(files) == 15
    layouts = {"repr": 0, "flow": 0, "no_keyframe": 0}
    for f in files:
        lines, recs = read_kpf_lines(f), _yaml_records(f)
        assert [parse_flow_line(x) for x in lines] == recs, f  # every field of every line
        if ".geom." in f.name:
            g = parse_geom(lines, f)
            rows = [r["geom"] for r in recs if "geom" in r]
            assert len(g.track) == len(rows)
            for i, r in enumerate(rows):
                assert (g.track[i], g.det[i], g.frame[i]) == (r["id1"], r["id0"], r["ts0"])
                assert g.box[i].tolist() == [float(v) for v in str(r["g0"]).split()]
                assert g.keyframe[i] == {True: 1, False: 0, None: -1}[r.get("keyframe")]
            assert g.meta == tuple(str(r["meta"]) for r in recs if "meta" in r)
            layouts["repr"] += sum(bool(_GEOM_REPR.fullmatch(x)) for x in lines)
            layouts["flow"] += sum(bool(_GEOM_FLOW.fullmatch(x)) for x in lines)
            layouts["no_keyframe"] += int((g.keyframe == -1).sum())
        elif ".types." in f.name:
            assert parse_types(lines, f) == {r["types"]["id1"]: next(iter(r["types"]["cset3"]))
                                             for r in recs if "types" in r}
        else:
            acts = parse_activities(lines, f)
            rows = [r["act"] for r in recs if "act" in r]
            assert [(a.activity_id, a.name, a.status) for a in acts] == \
                   [(r["id2"], next(iter(r["act2"])), r["src_status"]) for r in rows]
            assert [[(t, rr) for t, rr in a.actors] for a in acts] == \
                   [[(x["id1"], tuple(tuple(s["tsr0"]) for s in x["timespan"])) for x in r["actors"]] for r in rows]
    assert min(layouts.values()) > 100  # both layouts and the missing flag are really exercised


def test_slow_path_lines_match_pyyaml(tmp_path):
    lines = [
        "- { meta: \"clip 'x' was marked empty_37\" }",
        "- { geom: {id1: 7, id0: 3, ts0: 12, ts1: 0.4, g0: -5 -2 40 60 } }",             # negative, no keyframe
        "- {'geom': {'id1': 7, 'ts0': 13, 'g0': '-4 -1 41 61', 'id0': 4, 'keyframe': True, 'occlusion': 'x'}}",
        "- { geom: { g0: 1.5 2 30.25 40, id0: 5, id1: 8, ts0: 14, keyframe: false } }",
        "",
        "# a comment",
    ]
    f = tmp_path / "x.geom.yml"
    f.write_text("\n".join(lines))
    assert not any(_GEOM_REPR.fullmatch(x) or _GEOM_FLOW.fullmatch(x) for x in lines[2:4])
    g = parse_geom(read_kpf_lines(f), f)
    recs = [r["geom"] for r in _yaml_records(f) if "geom" in r]
    assert g.track.tolist() == [r["id1"] for r in recs] and g.frame.tolist() == [12, 13, 14]
    assert g.box.tolist() == [[float(v) for v in str(r["g0"]).split()] for r in recs]
    assert g.keyframe.tolist() == [-1, 1, 0] and g.meta == ("clip 'x' was marked empty_37",)
    assert [parse_flow_line(x) for x in lines if x and not x.startswith("#")] == _yaml_records(f)


@pytest.mark.parametrize("part,lineno,bad", [
    ("geom", 57, "- {'geom': {'g0': '1 2 3', 'id0': 1, 'id1': 2, 'ts0': 3}}"),
    ("geom", 3, "- {'geom': {'g0': '1 2 3 4', 'id0': 1, 'id1': 2, 'ts0': 3"),
    ("geom", 9, "- {'geom': {'g0': '1 2 3 4', 'id0': 1, 'id1': 'x', 'ts0': 3}}"),
    ("types", 2, "- {'types': {'cset3': {}, 'id1': 4}}"),
    ("activities", 1, "- {'act': {'act2': {'a_b': 1.0}, 'id2': 1, 'timespan': [{'tsr0': [9, 3]}]}}"),
    ("activities", 2, "- {'track': {'id1': 1}}"),
])
def test_corrupted_line_names_file_and_line(tmp_path, part, lineno, bad):
    src = next(DATA.rglob(f"{A}.{part}.yml.xz"))
    lines = read_kpf_lines(src)
    lines[lineno - 1] = bad
    f = tmp_path / f"{A}.{part}.yml"
    f.write_text("\n".join(lines))
    parse = {"geom": parse_geom, "types": parse_types, "activities": parse_activities}[part]
    with pytest.raises(KpfFormatError, match=rf"{A}\.{part}\.yml:{lineno}:"):
        parse(read_kpf_lines(f), f)
    bad_xz = tmp_path / "broken.geom.yml.xz"
    bad_xz.write_bytes(b"not xz")
    with pytest.raises(KpfFormatError, match="broken.geom.yml.xz: not a valid xz"):
        read_kpf_lines(bad_xz)


def test_subject_by_name_not_actor_order(parsed):
    rels = {(r.subject_tid, r.predicate, r.object_tid) for r in _clip(parsed, A).annotation.relations}
    assert (19, "person_enters_vehicle", 18) in rels       # the file lists vehicle 18 first
    assert (16, "person_enters_vehicle", 17) in rels       # and here the person first
    assert (12, "person_closes_vehicle_door", 11) in rels  # vehicle first again
    c = _clip(parsed, C).annotation
    assert {(r.subject_tid, r.object_tid) for r in c.relations if r.predicate == "person_closes_vehicle_door"} == \
           {(8547528102957949657, 7769458499462177595)}
    for clip in (_clip(parsed, A), _clip(parsed, C), _clip(parsed, D)):
        ann = clip.annotation
        cat = dict(zip(ann.tids.tolist(), ann.categories))
        for r in ann.relations:
            assert cat[r.subject_tid] == "person" and r.subject_tid != r.object_tid


def test_person_person_both_directions_and_pairwise_spans(parsed):
    ann = _clip(parsed, A).annotation
    talk = {(r.subject_tid, r.object_tid): (r.begin_fid, r.end_fid) for r in ann.relations
            if r.predicate == "person_talks_to_person"}
    assert talk[(1, 2)] == talk[(2, 1)] == (1980, 2633)     # KPF [1980, 2632] inclusive -> end exclusive
    group = {8: (5692, 6080), 6: (5654, 5964), 5: (5620, 6080), 7: (5620, 6063)}  # actor spans in the file
    for s in group:
        for o in group:
            if s != o:
                lo, hi = max(group[s][0], group[o][0]), min(group[s][1], group[o][1])
                assert talk[(s, o)] == (lo, hi + 1)
    assert len(talk) == 2 + 12
    st = _clip(parsed, A).stats
    assert (st.activities, st.single_actor, st.relations) == (16, 7, 21)


def _act(name, actors, span=(0, 99), status="good"):
    return KpfActivity(1, name, (span,), tuple((t, (r,)) for t, r in actors), status)


def test_activity_rules_on_multi_actor_cases():
    cats = {1: "person", 2: "person", 3: "bag", 4: "vehicle", 5: "other"}
    full = (0, 99)
    rel = lambda act, **kw: sorted(r[:3] for r in activity_relations(act, cats, **kw))  # noqa: E731
    assert rel(_act("person_loads_vehicle", [(4, full), (3, full), (1, full)])) == \
           [(1, "person_loads_vehicle", 3), (1, "person_loads_vehicle", 4)]
    # two people carry one object: each person -> object, no person -> person relation
    assert rel(_act("person_carries_heavy_object", [(1, full), (5, full), (2, full)])) == \
           [(1, "person_carries_heavy_object", 5), (2, "person_carries_heavy_object", 5)]
    assert rel(_act("person_transfers_object", [(3, full), (2, full), (1, full)])) == \
           [(1, "person_transfers_object", 2), (1, "person_transfers_object", 3),
            (2, "person_transfers_object", 1), (2, "person_transfers_object", 3)]
    assert rel(_act("hand_interacts_with_person", [(2, full), (1, full)])) == \
           [(1, "hand_interacts_with_person", 2), (2, "hand_interacts_with_person", 1)]
    assert rel(_act("vehicle_drops_off_person", [(1, full), (4, full), (2, full)])) == \
           [(4, "vehicle_drops_off_person", 1), (4, "vehicle_drops_off_person", 2)]
    st = RelationStats()
    assert activity_relations(_act("person_sits_down", [(1, full)]), cats, st) == []
    assert activity_relations(_act("person_opens_vehicle_door", [(1, full), (2, full)]), cats, st) == []
    assert activity_relations(_act("vehicle_picks_up_person", [(1, full), (2, full)]), cats, st) == []
    assert activity_relations(_act("person_enters_vehicle", [(1, (0, 5)), (4, (9, 20))]), cats, st) == []
    assert activity_relations(_act("person_enters_vehicle", [(1, full), (4, full)], status="not_good"), cats, st,
                              exclude_status=("not_good",)) == []
    assert (st.single_actor, st.no_object, st.no_subject, st.no_overlap, st.excluded_status) == (1, 1, 1, 1, 1)
    # the relation holds on the activity span intersected with both actors' spans
    assert activity_relations(_act("person_enters_vehicle", [(4, (10, 80)), (1, (30, 120))], span=(0, 60)),
                              cats) == [(1, "person_enters_vehicle", 4, 30, 60)]


def test_fps_subsampling_gaps_and_30fps_mapping(parsed):
    raw = parsed[A].geom
    for fps, offset in ((10.0, 0), (10.0, 2), (15.0, 1), (30.0, 0)):
        clip = _clip(parsed, A, fps, frame_offset=offset)
        ann = clip.annotation
        stride = 30 // int(fps)
        assert clip.frame_stride == stride and ann.fps == fps and ann.frame_count == -(-(9000 - offset) // stride)
        t = np.arange(ann.frame_count)
        f30 = clip.annotation_frame(t)
        assert (f30 == offset + stride * t).all() and (clip.model_frame(f30) == t).all()
        sampled = (raw.frame - offset) % stride == 0
        k = np.searchsorted(ann.tids, raw.track[sampled])
        want = np.clip(raw.box[sampled], 0, [1920, 1080, 1920, 1080])
        np.testing.assert_array_equal(ann.boxes[clip.model_frame(raw.frame[sampled]), k], want)
        assert int(ann.present.sum()) == int(sampled.sum())  # everything else is a gap: NaN
    with pytest.raises(ValueError, match="not sampled"):
        _clip(parsed, A, 10.0).model_frame(4)
    ten = _clip(parsed, A, 10.0).annotation
    r = next(r for r in ten.relations if (r.subject_tid, r.object_tid) == (12, 11))  # KPF [6298, 6350]
    assert (r.begin_fid, r.end_fid) == (2100, 2117)                                     # ceil(6298/3), 6350//3 + 1
    track = ten.column(1)
    gaps = np.flatnonzero(~ten.present[:, track])
    assert len(gaps) and np.isnan(ten.boxes[gaps, track]).all()


def test_span_between_samples_is_dropped_and_counted(parsed):
    p = parsed[D]
    one = KpfActivity(99, "person_enters_vehicle", ((5431, 5432),), ((13, ((5431, 5432),)), (14, ((5431, 5432),))))
    q = dataclasses.replace(p, activities=p.activities + (one,))
    assert _clip({"q": q}, "q", 30.0).stats.relations == _clip(parsed, D, 30.0).stats.relations + 1
    st = _clip({"q": q}, "q", 10.0).stats  # frames 5431, 5432 fall between model frames 1810 (5430) and 1811
    assert st.too_short == 1 and st.relations == 3


@pytest.mark.parametrize("fps,offset", [(7.0, 0), (0, 0), (-10, 0), (True, 0), (10.0, 3), (10.0, -1)])
def test_bad_fps_or_offset(parsed, fps, offset):
    assert (frame_stride(30), frame_stride(7.5), frame_stride(1)) == (1, 4, 30)
    with pytest.raises(ValueError, match="fps|frame_offset"):
        to_meva_clip(parsed[A], fps, offset)


def test_frame_size_from_camera_or_boxes(parsed):
    assert (_clip(parsed, D).annotation.width, _clip(parsed, D).annotation.height) == (2560, 1920)
    assert (_clip(parsed, A).annotation.width, _clip(parsed, A).annotation.height) == (1920, 1080)
    assert parsed[F].geom.box[:, 3].max() > 1536  # G639 boxes really go below a 1536-line frame
    unknown = dataclasses.replace(parsed[F], name=F.replace("G639", "G999"))
    clip = to_meva_clip(unknown, 30.0)
    assert (clip.annotation.width, clip.annotation.height, clip.size_source) == (2560, 1920, "boxes")
    assert frame_size("G998", parsed[A].geom.box)[:2] == (1920, 1080)
    assert frame_size("G998", np.zeros((0, 4), np.float32)) == (1920, 1080, "default")
    assert frame_size("G999", np.array([[0, 0, 2000, 1400]], np.float32))[:2] == (2048, 1536)
    assert "G474" not in CAMERA_FRAME_SIZES  # IR cameras have no boxes here: never guessed into the table


def test_negative_and_swapped_boxes_are_fixed_not_rejected(parsed):
    raw = parsed[A].geom
    assert (raw.box < 0).any(1).sum() == 13
    ann = _clip(parsed, A).annotation
    b = ann.boxes[ann.present]
    assert (b >= 0).all() and (b[:, 2] > b[:, 0]).all()
    g = raw
    box = g.box.copy()
    box[0] = [50, 60, 10, 20]   # drawn from the other corner
    box[1] = [-30, 5, -2, 40]   # entirely left of the image
    q = dataclasses.replace(parsed[A], geom=dataclasses.replace(g, box=box))
    clip = to_meva_clip(q, 30.0)
    col = clip.annotation.column(int(g.track[0]))
    assert clip.annotation.boxes[g.frame[0], col].tolist() == [10, 20, 50, 60]
    assert np.isnan(clip.annotation.boxes[g.frame[1], clip.annotation.column(int(g.track[1]))]).all()
    assert (clip.stats.swapped_boxes, clip.stats.boxes_outside) == (1, 1)


def test_empty_clip(parsed):
    p = parsed[E]
    assert len(p.geom.track) == 0 and p.categories == {} and "marked empty" in p.geom.meta[0]
    clip = to_meva_clip(p, 10.0)
    assert clip.annotation.boxes.shape == (3000, 0, 4) and clip.annotation.relations == ()


def _copy_fixture(tmp_path):
    root = tmp_path / "meva"
    shutil.copytree(DATA, root)
    return root


def test_cache_hit_miss_invalidation_and_no_pickle(tmp_path, monkeypatch):
    root, cache = _copy_fixture(tmp_path), tmp_path / "cache"
    calls = []
    real = meva_cache.parse_clip
    monkeypatch.setattr(meva_cache, "parse_clip", lambda s, d="": calls.append(s.name) or real(s, d))
    srcs = find_meva_sources([root])
    first = load_parsed_clips(srcs, cache, workers=0, progress=False)
    assert sorted(calls) == sorted(s.name for s in srcs) and len(list(cache.glob("*.npz"))) == 5
    calls.clear()
    again = load_parsed_clips(srcs, cache, workers=0, progress=False)
    assert calls == []  # cache hit
    for a, b in zip(first, again):
        assert a.categories == b.categories and a.activities == b.activities
        for f in ("track", "det", "frame", "box", "keyframe"):
            np.testing.assert_array_equal(getattr(a.geom, f), getattr(b.geom, f))
    for f in cache.glob("*.npz"):
        with np.load(f, allow_pickle=False) as z:
            assert all(z[k].dtype != object for k in z.files)
    # edit one source: a plain .yml next to the .xz wins, its digest changes, only that clip is parsed again
    xz = next(root.rglob(f"{D}.types.yml.xz"))
    text = lzma.open(xz).read().decode().replace("{'person': 1.0}, 'id1': 15", "{'bag': 1.0}, 'id1': 15")
    xz.with_suffix("").write_text(text)
    srcs = find_meva_sources([root])
    third = load_parsed_clips(srcs, cache, workers=0, progress=False)
    assert calls == [D] and next(c for c in third if c.name == D).categories[15] == "bag"
    assert len(list(cache.glob(f"{D}.*.npz"))) == 1  # the stale entry is gone
    # a damaged entry is rebuilt, never trusted
    entry = meva_cache.cache_path(cache, A, source_digest(next(s for s in srcs if s.name == A)))
    entry.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable MEVA cache entry"):
        load_parsed(entry)
    calls.clear()
    load_parsed_clips(srcs, cache, workers=0, progress=False)
    assert calls == [A]


def test_parallel_parse_equals_serial(tmp_path):
    srcs = find_meva_sources([DATA])
    par = load_parsed_clips(srcs, tmp_path / "par", workers=2, progress=False)
    ser = [parse_clip(s) for s in srcs]
    for a, b in zip(par, ser):
        assert a.name == b.name and a.activities == b.activities
        np.testing.assert_array_equal(a.geom.box, b.geom.box)


def test_discovery_errors(tmp_path):
    root = _copy_fixture(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        find_meva_sources([tmp_path / "nope"])
    dup = tmp_path / "other"
    dup.mkdir()
    for f in next(root.rglob(f"{C}.geom.yml.xz")).parent.glob(f"{C}.*"):
        shutil.copy(f, dup / f.name)
    with pytest.raises(ValueError, match=f"{C} found twice"):
        find_meva_sources([root, dup])
    next(dup.glob("*.types.yml.xz")).unlink()
    with pytest.raises(ValueError, match=rf"missing {C}\.types"):
        find_meva_sources([dup])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no MEVA clips"):
        find_meva_sources([empty])


def test_dates_and_splits():
    summary = {s.date: s for s in summarize_dates([DATA])}
    assert {d: (s.clips, s.relations) for d, s in summary.items()} == {"2018-03-05": (1, 0),
                                                                       "2018-03-11": (3, 27), "2018-03-12": (1, 0)}
    assert summary["2018-03-11"].predicates["person_talks_to_person"] == 14
    srcs = find_meva_sources([DATA])
    assert [s.name for s in select_sources(srcs, split="test")] == [E]
    assert {s.name for s in select_sources(srcs, split="train")} == {A, C, D}
    assert [s.name for s in select_sources(srcs, split="val")] == [F]
    assert [s.name for s in select_sources(srcs, dates=["2018-03-05"])] == [E]
    with pytest.raises(ValueError, match="not both"):
        select_sources(srcs, dates=["2018-03-05"], split="test")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        select_sources(srcs, dates=["March 5"])
    with pytest.raises(ValueError, match="split"):
        select_sources(srcs, split="dev")
    held = [d for ds in DEFAULT_SPLITS.values() for d in ds]
    assert len(held) == len(set(held))


def test_vocab_files_match_fixture_and_full_data():
    objects, predicates = builtin("meva_objects").names, builtin("meva_predicates").names
    o, p = derive_vocabularies([DATA])
    assert set(o) <= set(objects) and set(p) <= set(predicates)
    if not FULL.is_dir():
        pytest.skip(f"full MEVA annotations not at {FULL}")
    assert derive_vocabularies([FULL]) == (objects, predicates)


def test_load_meva_and_registry_kind(tmp_path):
    clips = load_meva([DATA], fps=10, cache_dir=tmp_path / "c", workers=0, progress=False)
    assert [c.name for c in clips] == sorted([A, C, D, F])  # the empty clip is skipped by default
    assert len(load_meva([DATA], fps=10, cache_dir=tmp_path / "c", workers=0, progress=False,
                         skip_empty=False)) == 5
    cfg = load_dataset_config(None, ["kind=meva", f"paths=[{DATA}]", f"meva_cache_dir={tmp_path / 'c'}",
                                     "meva_workers=0", "split=train", "meva_fps=15"])
    objs, preds = dataset_vocabularies(cfg)
    assert objs.name == "meva_objects" and preds.name == "meva_predicates"
    anns = load_dataset(cfg, progress=False)
    assert [a.video_id for a in anns] == sorted([A, C, D]) and all(isinstance(a, VideoAnnotation) for a in anns)
    assert all(a.fps == 15.0 and a.frame_count == 4500 for a in anns)
    assert sum(len(a.relations) for a in anns) == 27
    assert load_dataset(dataclasses.replace(cfg, split="test"), progress=False) == []
    assert len(load_dataset(dataclasses.replace(cfg, split="", max_videos=2), progress=False)) == 2
    assert [a.video_id for a in load_dataset(dataclasses.replace(cfg, split="val"), progress=False)] == [F]
    excl = dataclasses.replace(cfg, meva_exclude_status=("not_good",))
    assert sum(len(a.relations) for a in load_dataset(excl, progress=False)) == 26
    for bad in (["split=dev"], ["meva_fps=7"], ["meva_workers=-1"], ["split=test", "meva_dates=[2018-03-05]"],
                ["meva_dates=2018-03-05"], ["meva_dates=[March-5]"]):
        with pytest.raises(ConfigError):
            load_dataset_config(None, ["kind=meva", f"paths=[{DATA}]", *bad])
