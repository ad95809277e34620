"""Open a frame stream from a `--source` spec: video:PATH, camera:INDEX, mot:PATH, vidvrd:PATH, or a plugin kind.

Every stream yields ``(frame_index, t_seconds, item)`` where item is ``Detections`` (external detections: MOT,
VidVRD/VidOR replay) or an (H, W, 3) uint8 BGR image (video, camera: needs a detector). Kinds not built in are
looked up in the ``vsgg.sources`` entry-point group (``synthetic`` comes from offline_train that way, so engine/
never imports it): an entry point is ``open(arg, objects, options) -> Stream``.

Options are checked before anything is opened: ``fps`` (frames per second) must be a finite number > 0 when given,
``image_wh`` two integers > 0 (pixels), ``max_frame_gap`` (``mot:`` only: the longest run of frames without any
detection that is accepted, default ``engine.io.sources.MAX_FRAME_GAP``) an integer >= 1. ``parse_zmq_endpoint``
checks ``vsgg run --zmq``.
"""
from __future__ import annotations

import configparser
import math
import numbers
import re
import time
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Iterable

from engine.vocab import Vocabulary, read_text_file


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
    """MOTChallenge seqinfo.ini next to det.txt or one folder up (det/det.txt layout); {} if none. A malformed file
    (binary, bad syntax, a non-numeric or negative value) raises ValueError naming the file and the key."""
    for d in (det_path.parent, det_path.parent.parent):
        f = d / "seqinfo.ini"
        if f.is_file():
            cp = configparser.ConfigParser()
            try:
                cp.read_string(read_text_file(f, "seqinfo"), source=str(f))
            except configparser.Error as e:
                raise ValueError(f"seqinfo {f}: not a valid INI file ({e.message.splitlines()[0]})") from None
            if "Sequence" not in cp:
                raise ValueError(f"seqinfo {f}: no [Sequence] section")
            s = cp["Sequence"]

            def num(key, kind):
                text = s.get(key, "0").strip()
                try:
                    v = kind(text)
                except ValueError:
                    raise ValueError(f"seqinfo {f}: {key} must be a number, got {text!r}") from None
                if not math.isfinite(v) or v < 0:
                    raise ValueError(f"seqinfo {f}: {key} must be >= 0, got {text!r}")
                return v

            return {"fps": num("frameRate", float) or None, "length": num("seqLength", int) or None,
                    "image_wh": (num("imWidth", int), num("imHeight", int))}
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
        why = "seqinfo.ini gives no imWidth/imHeight" if info else "no seqinfo.ini next to it or one folder up"
        raise ValueError(f"source mot:{arg}: image size unknown ({why}); pass --image-size WxH")
    kw = {} if options.get("max_frame_gap") is None else {"max_frame_gap": options["max_frame_gap"]}
    src = MotDetections(p, fps=fps, label=objects.index(options.get("mot_label", "person")),
                        num_frames=info.get("length"), score_transform=options.get("score_transform", "none"), **kw)
    return Stream(iter(src), tuple(wh), fps, False, len(src), f"mot:{p}", {"det": str(p), "dropped": src.dropped})


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
    if live and not arg.isdigit():  # isdigit: also refuses a sign, spaces and '' (cv2 would take -1 as "any")
        raise ValueError(f"source camera:{arg}: expected a camera index (a non-negative integer such as camera:0)")
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


def _check_options(options: dict) -> None:
    """ValueError naming the option (and its CLI flag) for an fps, image size or frame gap that cannot be right."""
    fps = options.get("fps")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not math.isfinite(fps)
                            or fps <= 0):
        raise ValueError(f"fps (--fps): must be a finite number of frames per second > 0, got {fps!r}")
    wh = options.get("image_wh")
    if wh is not None and (not isinstance(wh, (tuple, list)) or len(wh) != 2
                           or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0 for v in wh)):
        raise ValueError(f"image_wh (--image-size): expected width and height as two integers > 0 (pixels), "
                         f"got {wh!r}")
    gap = options.get("max_frame_gap")
    if gap is not None and (isinstance(gap, bool) or not isinstance(gap, numbers.Integral) or gap < 1):
        raise ValueError(f"max_frame_gap: must be an integer >= 1 (frames), got {gap!r}")


def open_stream(spec: str, objects: Vocabulary, **options) -> Stream:
    """Open ``kind:arg`` (see module docstring). options: fps, image_wh, max_frame_gap, category_map, seed,
    score_transform; bad fps / image_wh / max_frame_gap values raise ValueError before anything is opened."""
    _check_options(options)
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


_ENDPOINT = re.compile(r"tcp://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.*-]+):(?P<port>\*|[0-9]{1,5})")


def parse_zmq_endpoint(text: str) -> tuple[str, str]:
    """``vsgg run --zmq``: ``tcp://HOST:PORT`` -> (PUB endpoint, snapshot endpoint on PORT + 1); ``tcp://HOST:*``
    lets both bind free ports. HOST: a name, an IPv4 address, ``*`` (all interfaces) or ``[IPv6]``; PORT 1-65534.
    Anything else raises ValueError naming ``--zmq`` and showing the expected form."""
    if not isinstance(text, str):
        raise TypeError(f"--zmq: expected a string, got {type(text).__name__}")
    m = _ENDPOINT.fullmatch(text)
    if m is None:
        raise ValueError(f"--zmq: expected tcp://HOST:PORT (e.g. tcp://127.0.0.1:5556) or tcp://HOST:*, got {text!r}")
    host, port = m["host"], m["port"]
    if port == "*":
        return text, f"tcp://{host}:*"
    if not 1 <= int(port) <= 65534:
        raise ValueError(f"--zmq: port must be 1-65534 (snapshots use port + 1), got {port} in {text!r}")
    return f"tcp://{host}:{int(port)}", f"tcp://{host}:{int(port) + 1}"
