"""engine.io.sources: the MOTChallenge det.txt stream and the VidVRD / VidOR replay stream."""
from pathlib import Path

import numpy as np
import pytest

from engine.boxes import iou_xyxy
from engine.config import TrackerConfig
from engine.io.sources import MotDetections, VidvrdReplay
from engine.track.tracker import Tracker
from engine.io.vidvrd import load_vidvrd
from engine.vocab import Vocabulary, builtin

DATA = Path(__file__).resolve().parents[1] / "data"
TUD_DET = DATA / "mot15" / "TUD-Campus" / "det.txt"
VIDOR = DATA / "vidor" / "3598080384.json"
VIDOR_MAP = {"adult": "person", "stingray": "whale"}  # VidOR categories missing from the VidVRD vocabulary


def write(tmp_path, text, name="det.txt"):
    p = tmp_path / name
    p.write_text(text)
    return p


# ---------------------------------------------------------------------------------------------- MOT det.txt


def test_tud_campus_stream():
    src = MotDetections(TUD_DET, fps=25.0)
    items = list(src)
    assert len(src) == len(items) == 71
    assert [f for f, _, _ in items] == list(range(1, 72))
    assert [t for _, t, _ in items] == pytest.approx([(f - 1) / 25 for f in range(1, 72)])
    assert sum(len(d) for _, _, d in items) == 321
    d1 = items[0][2]
    # first line: 1,-1,281.931,187.466,79.93,209.537,0.997784
    np.testing.assert_allclose(d1.boxes_xyxy[0], [281.931, 187.466, 281.931 + 79.93, 187.466 + 209.537], rtol=1e-6)
    assert d1.scores[0] == pytest.approx(0.997784) and d1.labels.tolist() == [0] * len(d1)


def test_frames_without_detections_are_yielded(tmp_path):
    p = write(tmp_path, "1,-1,0,0,10,20,0.9,-1,-1,-1\n\n4,-1,5,5,10,10,0.8,-1,-1,-1\n2,-1,1,1,2,2,0.5,-1,-1,-1\n")
    items = list(MotDetections(p, fps=10.0, label=3))
    assert [(f, len(d)) for f, _, d in items] == [(1, 1), (2, 1), (3, 0), (4, 1)]
    assert items[3][1] == pytest.approx(0.3) and items[3][2].labels.tolist() == [3]
    longer = list(MotDetections(p, num_frames=6))
    assert [len(d) for _, _, d in longer] == [1, 1, 0, 1, 0, 0]
    with pytest.raises(ValueError, match="num_frames"):
        MotDetections(p, num_frames=3)
    assert len(MotDetections(write(tmp_path, "", "empty.txt"))) == 0


@pytest.mark.parametrize("line,msg", [
    ("1,-1,0,0,10", "at least 7"),
    ("1,-1,0,zero,10,20,0.9", "non-numeric"),
    ("1,-1,0,0,nan,20,0.9", "NaN or inf"),
    ("0,-1,0,0,10,20,0.9", "frame must be an integer >= 1"),
    ("1.5,-1,0,0,10,20,0.9", "frame must be an integer >= 1"),
    ("1,-1,0,0,-10,20,0.9", "negative box width"),
    ("1,-1,0,0,10,20,1.7", "outside \\[0, 1\\]"),
])
def test_malformed_lines_name_the_line(tmp_path, line, msg):
    p = write(tmp_path, "1,-1,0,0,10,20,0.9,-1,-1,-1\n\n" + line + "\n")
    with pytest.raises(ValueError, match=f":3: .*{msg}"):
        MotDetections(p)


def test_score_transforms(tmp_path):
    p = write(tmp_path, "1,-1,0,0,10,20,-2\n1,-1,0,0,10,20,0\n2,-1,0,0,10,20,3\n")

    def scores(tf):
        return np.concatenate([d.scores for _, _, d in MotDetections(p, score_transform=tf)])

    with pytest.raises(ValueError, match="score_transform"):
        scores("none")
    np.testing.assert_allclose(scores("clip"), [0, 0, 1])
    np.testing.assert_allclose(scores("sigmoid"), 1 / (1 + np.exp(-np.array([-2, 0, 3]))), rtol=1e-6)
    np.testing.assert_allclose(scores("minmax"), [0, 0.4, 1])
    with pytest.raises(ValueError, match="score_transform"):
        MotDetections(p, score_transform="softmax")


def test_bad_arguments(tmp_path):
    p = write(tmp_path, "1,-1,0,0,10,20,0.9\n")
    for kw, field in [({"fps": 0}, "fps"), ({"fps": float("nan")}, "fps"), ({"label": -1}, "label"),
                      ({"label": 1.5}, "label"), ({"num_frames": -2}, "num_frames")]:
        with pytest.raises(ValueError, match=field):
            MotDetections(p, **kw)
    with pytest.raises(FileNotFoundError, match="path"):
        MotDetections(tmp_path / "missing.txt")


# ---------------------------------------------------------------------------------------------- VidVRD replay


def test_vidor_replay_clean():
    vocab = builtin("vidvrd_objects")
    ann = load_vidvrd(VIDOR)
    src = VidvrdReplay(VIDOR, vocab, VIDOR_MAP)
    assert len(src) == ann.frame_count == 368
    n = 0
    for f, t, d, tids in src.with_truth():
        k = np.flatnonzero(ann.present[f])
        assert t == pytest.approx(f / 25.0)
        assert tids.tolist() == ann.tids[k].tolist()
        np.testing.assert_array_equal(d.boxes_xyxy, ann.boxes[f, k])  # no noise: exactly the annotation
        assert d.labels.tolist() == [vocab.index(VIDOR_MAP[ann.categories[i]]) for i in k]
        assert ((d.scores >= 0.6) & (d.scores <= 1.0)).all()
        n += len(d)
    assert n == int(ann.present.sum())


def test_vidor_replay_unknown_category_is_named():
    vocab = builtin("vidvrd_objects")
    with pytest.raises(ValueError, match="'adult'"):
        VidvrdReplay(VIDOR, vocab)
    with pytest.raises(ValueError, match="'stingray'"):
        VidvrdReplay(VIDOR, vocab, {"adult": "person"})
    with pytest.raises(ValueError, match="'adult' \\(mapped to 'grown-up'\\)"):
        VidvrdReplay(VIDOR, vocab, {"adult": "grown-up", "stingray": "whale"})
    with pytest.raises(TypeError, match="vocab"):
        VidvrdReplay(VIDOR, ["person"], VIDOR_MAP)


def test_vidor_replay_noise_is_seeded_and_realistic():
    vocab = Vocabulary("vidor_two", ("adult", "stingray"))  # a vocabulary that has the VidOR names itself
    kw = dict(jitter=0.05, drop_prob=0.2, false_positives=1.0)
    a = list(VidvrdReplay(VIDOR, vocab, seed=7, **kw).with_truth())
    b = list(VidvrdReplay(VIDOR, vocab, seed=7, **kw).with_truth())
    c = list(VidvrdReplay(VIDOR, vocab, seed=8, **kw).with_truth())
    same = all(np.array_equal(x[2].boxes_xyxy, y[2].boxes_xyxy) and np.array_equal(x[3], y[3]) for x, y in zip(a, b))
    assert same
    assert not all(np.array_equal(x[2].boxes_xyxy, y[2].boxes_xyxy) for x, y in zip(a, c))
    tids = np.concatenate([x[3] for x in a])
    n_present = int(load_vidvrd(VIDOR).present.sum())
    assert 0.7 * n_present < (tids >= 0).sum() < 0.9 * n_present      # about 20 % dropped
    assert 300 < (tids < 0).sum() < 440                                 # about 1 false positive per frame
    for _, _, d, _ in a:
        b_ = d.boxes_xyxy
        assert (b_[:, 0] >= 0).all() and (b_[:, 2] <= 640).all() and (b_[:, 3] <= 480).all()
        assert (b_[:, 2] - b_[:, 0] >= 1 - 1e-4).all()


def test_tracker_on_noisy_vidor_replay_keeps_identities():
    """Real object motion, 5 % jitter, 10 % drops, false positives: each object keeps one id while it is visible."""
    src = VidvrdReplay(VIDOR, builtin("vidvrd_objects"), VIDOR_MAP, jitter=0.05, drop_prob=0.1,
                       false_positives=0.5, seed=1)
    tr = Tracker(TrackerConfig())
    ids_of = {0: set(), 1: set()}
    fp_reported = 0
    for f, t, d, tids in src.with_truth():
        out = tr.step(d, t)
        if len(out) and len(d):
            iou = iou_xyxy(out.boxes_xyxy, d.boxes_xyxy)
            for i in range(len(out)):
                j = int(iou[i].argmax())
                if iou[i, j] > 0.5 and tids[j] >= 0:
                    ids_of[int(tids[j])].add(int(out.ids[i]))
                elif iou[i, j] > 0.5:
                    fp_reported += 1
    assert len(ids_of[0]) == 1
    assert len(ids_of[1]) == 2  # the stingray leaves the annotation for 55 frames > max_age: a new id is right
    assert fp_reported < 10


def test_vidor_replay_bad_arguments():
    vocab = builtin("vidvrd_objects")
    for kw, field in [({"jitter": -0.1}, "jitter"), ({"drop_prob": 1.5}, "drop_prob"),
                      ({"false_positives": float("inf")}, "false_positives"),
                      ({"true_scores": (0.9, 0.2)}, "true_scores"), ({"false_scores": (0.1, 2.0)}, "false_scores")]:
        with pytest.raises(ValueError, match=field):
            VidvrdReplay(VIDOR, vocab, VIDOR_MAP, **kw)
    with pytest.raises(TypeError, match="seed"):
        VidvrdReplay(VIDOR, vocab, VIDOR_MAP, seed=1.5)


# ---------------------------------------------------------------------------------------------- MOT hardening


def test_absurd_frame_number_is_refused_quickly_and_names_the_line(tmp_path):
    import time
    import tracemalloc
    p = write(tmp_path, "1,-1,0,0,10,20,0.9\n2,-1,0,0,10,20,0.9\n300000000,-1,0,0,10,20,0.9\n")
    tracemalloc.start()
    t0 = time.process_time()
    with pytest.raises(ValueError, match=r"det\.txt:3: frame 300000000 comes 299,999,997 frames without detections "
                                         r"after frame 2; more than max_frame_gap=10,000"):
        MotDetections(p)
    cpu, peak = time.process_time() - t0, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # no allocation proportional to the frame number (one int64 per frame would be 2.4 GB)
    assert peak < 5_000_000 and cpu < 5.0
    with pytest.raises(ValueError, match=r"late\.txt:1: frame 20002 comes 20,001 frames .* after the start"):
        MotDetections(write(tmp_path, "20002,-1,0,0,10,20,0.9\n", "late.txt"))


def test_sparse_frames_stream_without_per_frame_arrays(tmp_path):
    """A real gap within max_frame_gap streams lazily: the first frames come at once, memory stays flat."""
    import itertools
    import tracemalloc
    p = write(tmp_path, "1,-1,0,0,10,20,0.9\n3,-1,1,1,10,20,0.8\n300000000,-1,0,0,10,20,0.7\n")
    tracemalloc.start()
    src = MotDetections(p, max_frame_gap=10**9)
    first = list(itertools.islice(src, 4))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(src) == 300000000 and peak < 5_000_000
    assert [(f, len(d)) for f, _, d in first] == [(1, 1), (2, 0), (3, 1), (4, 0)]
    assert first[2][2].scores.tolist() == pytest.approx([0.8])


def test_gap_counts_leading_and_trailing_frames(tmp_path):
    p = write(tmp_path, "5,-1,0,0,10,20,0.9\n9,-1,0,0,10,20,0.9\n")
    assert [f for f, _, d in MotDetections(p, max_frame_gap=4) if len(d)] == [5, 9]   # 4 empty before 5, 3 between
    with pytest.raises(ValueError, match=r":1: frame 5 comes 4 frames .* after the start; more than max_frame_gap=3"):
        MotDetections(p, max_frame_gap=3)
    assert len(MotDetections(p, max_frame_gap=4, num_frames=13)) == 13
    with pytest.raises(ValueError, match="num_frames: 14 leaves 5 frames without detections after the last"):
        MotDetections(p, max_frame_gap=4, num_frames=14)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="max_frame_gap: must be a positive integer"):
            MotDetections(p, max_frame_gap=bad)


def test_duplicate_lines_are_dropped_once_with_a_warning(tmp_path):
    line = "1,-1,10,10,20,40,0.9,-1,-1,-1\n"
    other = "1,-1,50,10,20,40,0.9,-1,-1,-1\n"
    p = write(tmp_path, line + other + line + line + "2,7,10,10,20,40,0.9\n2,8,10,10,20,40,0.9\n")
    with pytest.warns(UserWarning, match=r"det\.txt: dropped 3 exact duplicate lines \(first: line 3\)"):
        src = MotDetections(p)
    items = list(src)
    # one entity per distinct box: the duplicate of line 1 (twice) and of line 5 (same box, other id) are gone
    assert [len(d) for _, _, d in items] == [2, 1]
    np.testing.assert_allclose(items[0][2].boxes_xyxy, [[10, 10, 30, 50], [50, 10, 70, 50]])
    assert src.dropped == {"duplicates": 3, "zero_area": 0}
    # same box with another confidence is a different detection (NMS is the detector's job, not the reader's)
    q = write(tmp_path, "1,-1,10,10,20,40,0.9\n1,-1,10,10,20,40,0.8\n", "conf.txt")
    assert [len(d) for _, _, d in MotDetections(q)] == [2]


def test_zero_area_boxes_are_dropped_with_a_count(tmp_path):
    p = write(tmp_path, "1,-1,10,10,0,40,0.9\n1,-1,10,10,20,0,0.9\n1,-1,10,10,20,40,0.9\n2,-1,1,1,0,0,0.5\n")
    with pytest.warns(UserWarning, match=r"dropped 3 zero-area boxes \(first: line 1\)"):
        src = MotDetections(p)
    assert [len(d) for _, _, d in src] == [1]       # frame 2 had only a dropped box: the file ends at frame 1
    assert src.dropped == {"duplicates": 0, "zero_area": 3}
    with pytest.warns(UserWarning, match="zero-area"):
        assert [len(d) for _, _, d in MotDetections(p, num_frames=2)] == [1, 0]


def test_binary_det_file_names_the_file(tmp_path):
    p = tmp_path / "det.txt"
    p.write_bytes(b"1,-1,0,0,10,20,0.9\n\xff\xfe\x00binary")
    with pytest.raises(ValueError, match=r"MOT detection file .*det\.txt: not UTF-8 text \(undecodable byte at "
                                         r"offset 19\)"):
        MotDetections(p)


# ---------------------------------------------------------------------------------------------- empty videos


def test_replay_of_a_video_without_objects_gives_false_positives_only():
    """The synthetic:SEED crash: an annotation with no objects is valid; its false positives take any label."""
    from engine.io.vidvrd import VideoAnnotation
    vocab = builtin("vidvrd_objects")
    ann = VideoAnnotation("empty", 15.0, 640, 480, np.zeros(0, np.int64), (), np.zeros((200, 0, 4), np.float32))
    items = list(VidvrdReplay(ann, vocab, jitter=0.03, drop_prob=0.05, false_positives=0.5, seed=3).with_truth())
    assert len(items) == 200
    labels = np.concatenate([d.labels for _, _, d, _ in items])
    tids = np.concatenate([t for *_, t in items])
    assert 60 < len(labels) < 140 and (tids == -1).all()        # Poisson(0.5) per frame over 200 frames
    assert labels.min() >= 0 and labels.max() < len(vocab) and len(set(labels.tolist())) > 5
    assert [len(d) for _, _, d in VidvrdReplay(ann, vocab, false_positives=0.0)] == [0] * 200
