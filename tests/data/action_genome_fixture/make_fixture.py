"""Writes the small Action Genome fixture: person_bbox.pkl + object_bbox_and_relationship.pkl in AG v1.0's layout.

Run ``python tests/data/action_genome_fixture/make_fixture.py`` to rewrite the two files next to this script. The
content is invented (3 videos, 10 frames) but every key, field, type and spelling is the real files' layout: frame
names ``'VIDEO.mp4/000012.png'``, person boxes as (n, 4) float32 xyxy arrays with scores, image size and keypoints,
objects as dicts with xywh tuples, underscore predicate spellings, slash class spellings and metadata set/tag. Files
are written with pickle protocol 2 and numpy 1.x's global names (``numpy.core.multiarray``), as older dumps are.

What it contains (tests rely on it):
  A1B2C.mp4 (train, 480x270): frames 45, 12, 78, 111, 144 (inserted out of order). 78 has no person box; 144 has only
    an invisible object; table is invisible at 45; 111 has two contacting labels and a sofa/couch.
  D3E4F.mp4 (test, 480x360): frames 5, 30, 55; two person boxes at 30 (the first counts); closet/cabinet,
    paper/notebook, phone/camera; on_the_side_of, writing_on, two spatial labels at 55.
  G5H6I.mp4 (train, 320x240): frames 7, 19, both with a person: kept with min_frames 1, dropped with STTran's 3.
"""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _person(boxes, size):
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(b)
    rng = np.random.default_rng(n + size[0])
    return {"bbox": b, "bbox_score": np.linspace(0.99, 0.9, n).astype(np.float32), "bbox_size": size,
            "bbox_mode": "xyxy", "keypoints": rng.uniform(0, 100, (n, 17, 3)).astype(np.float32),
            "keypoints_logits": rng.normal(0, 1, (n, 17)).astype(np.float32)}


def _obj(video, frame, cls, bbox, att, spa, con, split, visible=True):
    tag = f"{video}/{cls.replace('/', '_')}/{frame}"
    if not visible:
        bbox, att, spa, con = None, None, None, None
    return {"class": cls, "bbox": bbox, "attention_relationship": att, "spatial_relationship": spa,
            "contacting_relationship": con, "metadata": {"tag": tag, "set": split}, "visible": visible}


def fixture_dicts() -> tuple[dict, dict]:
    """(person_bbox, object_bbox_and_relationship) exactly as the pickles hold them."""
    person, objects = {}, {}

    def frame(video, num, person_boxes, size, objs):
        key = f"{video}/{num:06d}.png"
        person[key] = _person(person_boxes, size)
        objects[key] = objs

    v, s, size = "A1B2C.mp4", "train", (480, 270)
    frame(v, 45, [[100, 50, 200, 260]], size, [
        _obj(v, "000045", "cup/glass/bottle", (12.0, 22.0, 30.0, 40.0), ["looking_at"], ["in_front_of"],
             ["holding"], s),
        _obj(v, "000045", "table", None, None, None, None, s, visible=False)])
    frame(v, 12, [[101.5, 51.0, 201.0, 262.5]], size, [
        _obj(v, "000012", "cup/glass/bottle", (10.0, 20.0, 30.0, 40.0), ["looking_at"], ["in_front_of"],
             ["holding"], s),
        _obj(v, "000012", "table", (0.0, 150.0, 300.0, 120.0), ["not_looking_at"], ["beneath", "in_front_of"],
             ["not_contacting"], s)])
    frame(v, 78, [], size, [
        _obj(v, "000078", "cup/glass/bottle", (14.0, 24.0, 30.0, 40.0), ["not_looking_at"], ["in_front_of"],
             ["holding"], s)])
    frame(v, 111, [[98.0, 40.0, 210.0, 265.0]], size, [
        _obj(v, "000111", "cup/glass/bottle", (16.0, 26.0, 30.0, 40.0), ["looking_at"], ["in_front_of"],
             ["holding", "touching"], s),
        _obj(v, "000111", "sofa/couch", (200.0, 100.0, 270.0, 160.0), ["unsure"], ["beneath"], ["sitting_on"], s)])
    frame(v, 144, [[99.0, 41.0, 209.0, 264.0]], size, [
        _obj(v, "000144", "cup/glass/bottle", None, None, None, None, s, visible=False)])

    v, s, size = "D3E4F.mp4", "test", (480, 360)
    frame(v, 5, [[10, 10, 120, 350]], size, [
        _obj(v, "000005", "closet/cabinet", (300.0, 0.0, 170.0, 300.0), ["not_looking_at"], ["behind"],
             ["not_contacting"], s),
        _obj(v, "000005", "paper/notebook", (150.0, 200.0, 40.0, 30.0), ["looking_at"], ["in_front_of"],
             ["writing_on", "holding"], s)])
    frame(v, 30, [[12, 11, 121, 352], [300, 20, 380, 340]], size, [
        _obj(v, "000030", "paper/notebook", (152.0, 201.0, 40.0, 30.0), ["looking_at"], ["in_front_of"],
             ["writing_on"], s),
        _obj(v, "000030", "phone/camera", (60.0, 80.0, 12.5, 20.0), ["not_looking_at"], ["on_the_side_of"],
             ["have_it_on_the_back"], s)])
    frame(v, 55, [[14, 12, 122, 353]], size, [
        _obj(v, "000055", "phone/camera", (61.0, 81.0, 12.5, 20.0), ["looking_at"], ["on_the_side_of", "in"],
             ["holding"], s)])

    v, s, size = "G5H6I.mp4", "train", (320, 240)
    frame(v, 7, [[5, 5, 100, 230]], size, [
        _obj(v, "000007", "door", (200.0, 0.0, 100.0, 240.0), ["looking_at"], ["in_front_of"], ["touching"], s)])
    frame(v, 19, [[8, 5, 104, 231]], size, [
        _obj(v, "000019", "door", (200.0, 0.0, 100.0, 240.0), ["looking_at"], ["in_front_of"],
             ["not_contacting"], s)])
    return person, objects


def dumps_like_ag(obj) -> bytes:
    """Protocol-2 pickle naming numpy's globals as numpy 1.x did (``numpy.core.*``)."""
    data = pickle.dumps(obj, protocol=2)
    # Protocol 2 writes a global as the text line 'c<module>\n<name>\n', so a plain rename is a valid pickle.
    return data.replace(b"cnumpy._core.", b"cnumpy.core.")


def write_fixture(folder: str | Path = HERE) -> Path:
    """Write both pickles into ``folder``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    person, objects = fixture_dicts()
    (folder / "person_bbox.pkl").write_bytes(dumps_like_ag(person))
    (folder / "object_bbox_and_relationship.pkl").write_bytes(dumps_like_ag(objects))
    return folder


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    print(write_fixture(argv[0] if argv else HERE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
