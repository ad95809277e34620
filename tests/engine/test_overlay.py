"""Overlay video: one frame per write, boxes and relation edges drawn where the graph says, readable back."""
import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from engine.io.overlay import OverlayWriter  # noqa: E402
from engine.types import Entity, Relation, SceneGraph  # noqa: E402


def graph(t):
    ents = {1: Entity(1, "person", 0.9, (20.0, 40.0, 80.0, 200.0)), 2: Entity(2, "dog", 0.8, (200.0, 120.0, 280.0, 200.0))}
    rels = {(1, "walk_with", 2): Relation(1, "walk_with", 2, 0.9), (2, "follow", 1): Relation(2, "follow", 1, 0.6)}
    return SceneGraph(t=t, entities=ents, relations=rels, epoch="E", seq=int(t * 10))


def read_frames(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames


def test_frames_written_and_drawn(tmp_path):
    path = tmp_path / "o.mp4"
    with OverlayWriter(path, (320, 240), 10.0) as w:
        for k in range(5):
            w.write(graph(k / 10))
        w.write(SceneGraph(t=0.5))  # an empty graph still makes a frame
    frames = read_frames(path)
    assert len(frames) == 6 and frames[0].shape == (240, 320, 3)
    f = frames[0].astype(int)
    # the person's box edge (x=20, y in 40..200) is drawn, the canvas far from any drawing is not
    assert np.abs(f[100:140, 18:23] - 32).max() > 60
    assert np.abs(f[225:232, 300:318] - 32).max() < 20
    # the empty graph's frame has no box there
    assert np.abs(frames[5].astype(int)[100:140, 18:23] - 32).max() < 20


def test_draws_on_a_given_image(tmp_path):
    path = tmp_path / "o.mp4"
    img = np.full((480, 640, 3), 200, np.uint8)
    with OverlayWriter(path, (320, 240), 10.0) as w:
        w.write(graph(0.0), image=img)  # resized to the overlay size
    (f,) = read_frames(path)
    assert abs(int(f[230, 310].mean()) - 200) < 20


def test_unwritable_path_is_a_clear_error(tmp_path):
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(ValueError, match="overlay"):
        OverlayWriter(tmp_path / "dir.mp4", (320, 240), 10.0)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="overlay: cannot open"):  # a file where the parent folder should be
        OverlayWriter(tmp_path / "file" / "o.mp4", (320, 240), 10.0)


def test_track_ids_and_relation_edges_are_drawn(tmp_path):
    g = graph(0.0)
    bare = SceneGraph(t=0.0, entities=g.entities, epoch="E")  # same boxes, no relations
    path = tmp_path / "o.mp4"
    with OverlayWriter(path, (320, 240), 10.0, max_edge_labels=0, max_pair_labels=0) as w:
        w.write(g)
        w.write(bare)
    with_rel, without = (f.astype(int) for f in read_frames(path))
    # the id + label text sits just above the person's box (top edge y=40)
    assert np.abs(without[26:38, 20:80] - 32).max() > 60
    # the pair 1 <-> 2 is one straight line from the person's centre (50, 120) towards the dog's (240, 160),
    # running between the two box borders (no sideways offset any more); look at its middle
    a, b = np.array([50.0, 120.0]), np.array([240.0, 160.0])
    x, y = (a + 0.6 * (b - a)).astype(int)
    assert np.abs(with_rel[y - 1:y + 2, x - 1:x + 2] - 32).max() > 40
    assert np.abs(without[y - 2:y + 3, x - 2:x + 3] - 32).max() < 20
    # both directions hold (walk_with, follow), so both ends carry an arrow head: pixels off the line near each end
    d = (b - a) / np.hypot(*(b - a))
    n = np.array([-d[1], d[0]])
    for end, back in (((80.0, 126.3), -d), ((200.0, 151.6), d)):  # where the line crosses each box border
        px, py = (np.array(end) - 6 * back + 4 * n).astype(int)
        assert np.abs(with_rel[py - 1:py + 2, px - 1:px + 2] - 32).max() > 40, end
