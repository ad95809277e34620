"""Overlay label placement: no label overlaps another label, the relation panel or the status line; all inside."""
import itertools

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("av")

from engine.io.overlay import OverlayWriter, overlaps  # noqa: E402
from engine.types import Entity, Relation, SceneGraph  # noqa: E402

PREDICATES = ["ride", "next_to", "behind", "in_front_of", "watch", "follow", "taller", "away"]


def crowded_graph(seed=0, n_entities=15, n_relations=30, size=(640, 360)):
    """15 boxes scattered (and partly overlapping, some touching the frame border), 30 relations among them,
    several pairs in both directions and several predicates per pair."""
    rng = np.random.default_rng(seed)
    w, h = size
    ents = {}
    for i in range(n_entities):
        bw, bh = rng.uniform(30, 160), rng.uniform(30, 160)
        x0, y0 = rng.uniform(-10, w - bw + 10), rng.uniform(-10, h - bh + 10)
        ents[i + 1] = Entity(i + 1, ["person", "bicycle", "car", "dog"][i % 4], float(rng.uniform(0.3, 1.0)),
                             (float(x0), float(y0), float(x0 + bw), float(y0 + bh)))
    rels = {}
    while len(rels) < n_relations:
        s, o = (int(v) for v in rng.choice(n_entities, 2, replace=False) + 1)
        p = PREDICATES[int(rng.integers(len(PREDICATES)))]
        rels[(s, p, o)] = Relation(s, p, o, float(rng.uniform(0.2, 1.0)))
        if len(rels) < n_relations and rng.random() < 0.3:  # the reverse direction too
            rels[(o, "watch", s)] = Relation(o, "watch", s, float(rng.uniform(0.2, 1.0)))
    return SceneGraph(t=1.0, entities=ents, relations=rels, epoch="E", seq=1)


def check_no_overlap(lay, size):
    w, h = size
    rects = [lab.rect for lab in lay.labels()]
    for r in rects + ([lay.panel] if lay.panel else []):
        assert 0 <= r[0] < r[2] <= w and 0 <= r[1] < r[3] <= h, r
    for a, b in itertools.combinations(rects, 2):
        assert not overlaps(a, b), (a, b)
    if lay.panel is not None:
        assert not any(overlaps(r, lay.panel) for r in rects)
        for line in lay.panel_lines:  # panel text stays on its plate
            assert lay.panel[0] <= line.rect[0] and line.rect[2] <= lay.panel[2]
            assert lay.panel[1] <= line.rect[1] and line.rect[3] <= lay.panel[3]


@pytest.mark.parametrize("seed", range(6))
def test_crowded_graph_labels_never_overlap(tmp_path, seed):
    size = (640, 360)
    g = crowded_graph(seed, size=size)
    with OverlayWriter(tmp_path / "o.mp4", size, 10.0) as ow:
        lay = ow.layout(g)
        check_no_overlap(lay, size)
        # most entities still get a label (full or bare id); each arrow label shows no "+N" counters
        assert len(lay.entity_labels) >= 11
        assert lay.arrow_labels and not any("+" in lab.text for lab in lay.arrow_labels.values())
        assert len(lay.panel_lines) >= 5 and lay.panel_lines[-1].text.startswith("+")  # "+N more" line
        # the pixels follow the plan: each label's plate is dark with some text pixels in the label's colour
        img = ow.render(g, image=np.full((size[1], size[0], 3), 230, np.uint8)).astype(int)
        for lab in lay.entity_labels.values():
            x0, y0, x1, y1 = lab.rect
            plate = img[y0:y1, x0:x1]
            assert np.median(plate) < 40
            assert (np.abs(plate - np.array(lab.color)).max(axis=2) < 60).sum() >= 3, lab


def test_pair_in_both_directions_is_one_double_headed_arrow_labelled_with_ids(tmp_path):
    ents = {3: Entity(3, "person", 0.9, (40.0, 40.0, 120.0, 200.0)), 5: Entity(5, "dog", 0.8, (300.0, 120.0, 380.0, 200.0))}
    rels = {(3, "walk", 5): Relation(3, "walk", 5, 0.9), (3, "watch", 5): Relation(3, "watch", 5, 0.5),
            (5, "follow", 3): Relation(5, "follow", 3, 0.7)}
    with OverlayWriter(tmp_path / "o.mp4", (480, 240), 10.0) as ow:
        lay = ow.layout(SceneGraph(t=0.0, entities=ents, relations=rels))
        one_way = ow.layout(SceneGraph(t=0.0, entities=ents, relations={(3, "walk", 5): rels[(3, "walk", 5)]}))
    (arrow,) = lay.arrows
    assert arrow.pair == (3, 5) and arrow.head_start and arrow.head_end
    assert lay.arrow_labels[(3, 5)].text == "3>5 walk  5>3 follow"  # strongest predicate of each direction
    # the arrow runs between the box borders: from x=120 (right of 3) to x=300 (left of 5)
    assert arrow.p0[0] == 120 and arrow.p1[0] == 300
    (a1,) = one_way.arrows
    assert a1.head_end and not a1.head_start and one_way.arrow_labels[(3, 5)].text == "walk"
    # the panel still lists every relation, including the weaker second predicate of 3 -> 5
    assert [lab.text.split("  ")[0] for lab in lay.panel_lines] == ["3 walk 5", "5 follow 3", "3 watch 5"]


def test_labels_of_boxes_at_the_frame_edges_stay_inside(tmp_path):
    size = (320, 200)
    ents = {1: Entity(1, "person", 0.9, (-30.0, -20.0, 40.0, 60.0)),      # sticks out top-left
            2: Entity(2, "bicycle", 0.9, (290.0, 150.0, 360.0, 240.0)),  # sticks out bottom-right
            3: Entity(3, "car", 0.9, (0.0, 150.0, 30.0, 200.0))}
    rels = {(1, "next_to", 2): Relation(1, "next_to", 2, 0.9), (3, "in_front_of", 2): Relation(3, "in_front_of", 2, 0.8)}
    with OverlayWriter(tmp_path / "o.mp4", size, 10.0, max_edge_labels=0) as ow:
        lay = ow.layout(SceneGraph(t=0.0, entities=ents, relations=rels))
    assert lay.panel is None and set(lay.entity_labels) == {1, 2, 3} and len(lay.arrow_labels) == 2
    check_no_overlap(lay, size)


def test_label_goes_above_its_box_when_free(tmp_path):
    with OverlayWriter(tmp_path / "o.mp4", (320, 240), 10.0) as ow:
        lay = ow.layout(SceneGraph(entities={4: Entity(4, "dog", 0.9, (100.0, 100.0, 200.0, 180.0))}))
    lab = lay.entity_labels[4]
    assert lab.text == "4 dog" and lab.rect[0] == 100 and lab.rect[3] == 100  # bottom of the plate on the top edge


def test_panel_avoids_boxes_and_does_not_flicker(tmp_path):
    size = (640, 360)
    rels = {(1, "near", 2): Relation(1, "near", 2, 0.9)}

    def scene(box_of_1):
        return SceneGraph(entities={1: Entity(1, "car", 0.9, box_of_1),
                                    2: Entity(2, "dog", 0.9, (300.0, 200.0, 360.0, 260.0))}, relations=rels)

    big_top_left = (0.0, 0.0, 200.0, 150.0)
    with OverlayWriter(tmp_path / "o.mp4", size, 10.0) as ow:
        ow.render(scene(big_top_left))  # a car filling the top-left corner: the panel goes elsewhere
        lay = ow.layout(scene(big_top_left))
        assert lay.corner != 0 and not overlaps(lay.panel, (0, 0, 200, 150))
        corner = lay.corner
        away = (300.0, 280.0, 340.0, 300.0)
        ow.render(scene(away))  # the car leaves: the panel has no reason to move back
        assert ow.layout(scene(away)).corner == corner
        # a small box nicking the panel by a few pixels is not worth a jump to another (free) corner
        x0, y0 = ow.layout(scene(away)).panel[:2]
        nick = (float(x0), float(y0), x0 + 8.0, y0 + 8.0)
        ow.render(scene(nick))
        lay = ow.layout(scene(nick))
        assert lay.corner == corner and overlaps(lay.panel, tuple(int(v) for v in nick))
