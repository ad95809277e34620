"""Open a frame stream from a `--source` spec: video:PATH, camera:INDEX, mot:PATH, vidvrd:PATH, or a plugin kind.

Every stream yields ``(frame_index, t_seconds, item)`` where item is ``Detections`` (external detections: MOT,
VidVRD/VidOR replay) or an (H, W, 3) uint8 BGR image (video, camera: needs a detector). Kinds not built in are
looked up in the ``vsgg.sources`` entry-point group (``synthetic`` comes from offline_train that way, so engine/
never imports it): an entry point is ``open(arg, objects, options) -> Stream``.
"""
from __future__ import annotations

import configparser
import time
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Iterable

from engine.vocab import Vocabulary


@dataclass
class Stream:
    """frames: iterable of (frame_index, t seconds, Detections | image); image_wh: (width, height) pixels;
    pixels: True when items are images; length: number of frames when known."""

    frames: Iterable
    image_wh: tuple[int, int]
    fps: float
    pixels: bool = False
    length: int | None = None
    name: str = ""
    info: dict = field(default_factory=dict)


def _seqinfo(det_path: Path) -> dict:
    """MOTChallenge seqinfo.ini next to det.txt or one folder up (det/det.txt layout); {} if none."""
    for d in (det_path.parent, det_path.parent.parent):
        f = d / "seqinfo.ini"
        if f.is_file():
            cp = configparser.ConfigParser()
            cp.read(f)
            s = cp["Sequence"]
            return {"fps": float(s.get("frameRate", 0)) or None, "length": int(s.get("seqLength", 0)) or None,
                    "image_wh": (int(s.get("imWidth", 0)), int(s.get("imHeight", 0)))}
    return {}


def _open_mot(arg: str, objects: Vocabulary, options: dict) -> Stream:
    from engine.io.sources import MotDetections
    p = Path(arg)
    if p.is_dir():
        raise ValueError(f"source mot:{arg}: is a folder; give the detections file itself (e.g. {p / 'det.txt'})")
    if not p.is_file():
        raise FileNotFoundError(f"source mot:{arg}: no such detections file")
    info = _seqinfo(p)
    fps = options.get("fps") or info.get("fps") or 30.0
    wh = options.get("image_wh") or info.get("image_wh")
    if not wh or min(wh) <= 0:
        raise ValueError(f"source mot:{arg}: image size unknown (no seqinfo.ini); pass --image-size WxH")
    src = MotDetections(p, fps=fps, label=objects.index(options.get("mot_label", "person")),
                        num_frames=info.get("length"), score_transform=options.get("score_transform", "none"))
    return Stream(iter(src), tuple(wh), fps, False, len(src), f"mot:{p}", {"det": str(p)})


def _open_vidvrd(arg: str, objects: Vocabulary, options: dict) -> Stream:
    from engine.io.sources import VidvrdReplay
    from engine.io.vidvrd import load_vidvrd
    ann = load_vidvrd(arg)
    src = VidvrdReplay(ann, objects, category_map=options.get("category_map") or None, seed=options.get("seed", 0))
    return Stream(iter(src), (ann.width, ann.height), ann.fps, False, ann.frame_count, f"vidvrd:{arg}")


def _video_frames(cap, fps: float, live: bool):
    i = 0
    t0 = time.monotonic()
    while True:
        ok, img = cap.read()
        if not ok:
            break
        # files: presentation time from the frame index; cameras: the host clock (strictly increasing)
        t = (time.monotonic() - t0) if live else i / fps
        yield i, t, img
        i += 1
    cap.release()


def _open_video(arg: str, objects: Vocabulary, options: dict, live: bool = False) -> Stream:
    import cv2
    src = int(arg) if live else arg
    if not live and not Path(arg).is_file():
        raise FileNotFoundError(f"source video:{arg}: file not found")
    cap = cv2.VideoCapture(src)
    if not cap.isOpened():
        raise ValueError(f"source {'camera' if live else 'video'}:{arg}: cannot be opened by OpenCV")
    fps = options.get("fps") or cap.get(cv2.CAP_PROP_FPS) or 30.0
    wh = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not live else None
    return Stream(_video_frames(cap, fps, live), wh, fps, True, n or None, f"{'camera' if live else 'video'}:{arg}")


BUILTIN = {"mot": _open_mot, "vidvrd": _open_vidvrd, "video": _open_video,
           "camera": lambda a, o, opt: _open_video(a, o, opt, live=True)}


def open_stream(spec: str, objects: Vocabulary, **options) -> Stream:
    """Open ``kind:arg`` (see module docstring). options: fps, image_wh, category_map, seed, score_transform."""
    if ":" not in spec:
        raise ValueError(f"source '{spec}': expected KIND:ARG, e.g. mot:det.txt, video:clip.mp4, camera:0, "
                         "vidvrd:video.json, synthetic:7")
    kind, arg = spec.split(":", 1)
    if kind in BUILTIN:
        return BUILTIN[kind](arg, objects, options)
    plugins = {ep.name: ep for ep in entry_points(group="vsgg.sources")}
    if kind in plugins:
        return plugins[kind].load()(arg, objects, options)
    raise ValueError(f"source '{spec}': unknown kind '{kind}' (known: {', '.join(sorted([*BUILTIN, *plugins]))})")
