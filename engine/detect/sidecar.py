"""The detector side-car: a JSON file beside an ONNX detector that states its classes, preprocessing and output layout.

A model ``NAME.onnx`` has a side-car when ``NAME.json`` sits in the same folder. Format (version 1)::

    {"format": "vsgg-detector", "version": 1,
     "model_file": "nanodet.onnx", "sha256": "<hex digest of the ONNX file>",
     "classes": ["person", ...],                     # the model's class order; label i = classes[i]
     "input": {"name": "input_1:0", "height": 416, "width": 416,
               "channel_order": "bgr",               # plane order the model expects
               "mean": [103.53, 116.28, 123.675],    # per model plane, pixel units (0-255)
               "std": [57.375, 57.12, 58.395],       # model input = (pixel - mean) / std
               "pad_value": 0,                       # letterbox fill, pixel units, before normalisation
               "letterbox": "centred"},              # aspect kept, image centred in the input
     "decoder": {"kind": "nanodet_gfl", "strides": [8, 16, 32], "reg_max": 10, "centre_offset": 0.5,
                 "outputs": [{"stride": 8, "scores": "Identity:0", "boxes": "Identity_3:0"}, ...]},
     "source": {...}, "licences": {...}}             # free-form provenance, kept as read

``decoder.kind`` is one of DECODERS: ``"nanodet_gfl"`` (engine.detect.nanodet) or a YOLO layout of
engine.detect.detector (``"yolov8"``, ``"yolov8_transposed"``, ``"yolov5"``, ``"auto"``). Anything that does not fit
(other format or version, unknown decoder, a digest that is not the file's, a class list whose length is not the
model's) is refused with a ValueError naming the side-car field; engine.detect.detector checks the model side.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from engine.file_hash import sha256_file

SIDECAR_FORMAT = "vsgg-detector"
SIDECAR_VERSION = 1
YOLO_DECODERS = ("auto", "yolov8", "yolov8_transposed", "yolov5")
DECODERS = (*YOLO_DECODERS, "nanodet_gfl")
# The shipped pretrained COCO detector; the default for image sources (video:, camera:).
DEFAULT_DETECTOR_DIR = Path(__file__).resolve().parents[1] / "models" / "nanodet"


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the model input: letterbox (aspect kept, centred), then (pixel - mean) / std per plane.

    channel_order: plane order of the model input, "rgb" or "bgr". mean, std: per model plane, pixel units (0-255).
    pad_value: letterbox fill in pixel units, normalised like the image.
    """

    channel_order: str = "rgb"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)
    pad_value: float = 114.0


# What Ultralytics trains and exports with: RGB in [0, 1], gray 114 padding.
YOLO_PREPROCESS = Preprocess()


@dataclass(frozen=True)
class GflDecoder:
    """NanoDet's generalised-focal-loss head: per stride one class-score and one box-distribution output.

    strides: feature strides in model-input pixels. reg_max: each box side is a distribution over reg_max + 1 bins
    (0..reg_max strides). score_outputs[i] / box_outputs[i]: output names for strides[i].
    centre_offset: anchor centre = (column + offset) * stride, (row + offset) * stride.
    """

    strides: tuple[int, ...]
    reg_max: int
    score_outputs: tuple[str, ...]
    box_outputs: tuple[str, ...]
    centre_offset: float = 0.5


@dataclass(frozen=True)
class DetectorSidecar:
    """A validated side-car (see the module docstring). ``gfl`` is set when decoder == "nanodet_gfl"."""

    path: Path
    model_file: str
    sha256: str
    classes: tuple[str, ...]
    input_name: str
    input_hw: tuple[int, int]
    preprocess: Preprocess
    decoder: str
    gfl: GflDecoder | None = None
    provenance: dict = field(default_factory=dict)

    def check_model_file(self, model_path: str | Path) -> None:
        """Raise ValueError when ``model_path``'s SHA-256 is not the side-car's (a re-exported or swapped model)."""
        digest = sha256_file(model_path)
        if digest != self.sha256:
            raise ValueError(f"{self.path}: sha256 {self.sha256[:12]}... is not the digest of '{model_path}' "
                             f"({digest[:12]}...); the side-car belongs to another model file")


def sidecar_path(model_path: str | Path) -> Path:
    """Where the side-car of ``model_path`` would be: the same name with the .json suffix."""
    return Path(model_path).with_suffix(".json")


def resolve_model_path(model_path: str | Path) -> Path:
    """A model file, or a model folder holding exactly one .onnx file (e.g. engine/models/nanodet) -> the file."""
    p = Path(model_path)
    if p.is_dir():
        found = sorted(p.glob("*.onnx"))
        if len(found) != 1:
            raise ValueError(f"model_path: folder '{p}' must hold exactly one .onnx file, found {len(found)}")
        return found[0]
    return p


def find_sidecar(model_path: str | Path) -> DetectorSidecar | None:
    """The validated side-car beside ``model_path``, or None when there is none."""
    p = sidecar_path(model_path)
    return load_sidecar(p) if p.is_file() else None


def _need(cond: bool, path: Path, msg: str) -> None:
    if not cond:
        raise ValueError(f"{path}: {msg}")


def _numbers(value, n: int) -> bool:
    return (isinstance(value, list) and len(value) == n
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))


def load_sidecar(path: str | Path) -> DetectorSidecar:
    """Read and validate a side-car file; every problem is a ValueError naming the file and the field."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{p}: cannot read the detector side-car: {e}") from e
    _need(isinstance(data, dict), p, "expected a JSON object")
    _need(data.get("format") == SIDECAR_FORMAT, p,
          f"format: expected '{SIDECAR_FORMAT}', got {data.get('format')!r} (not a detector side-car)")
    _need(data.get("version") == SIDECAR_VERSION, p,
          f"version: this engine reads version {SIDECAR_VERSION}, the file is version {data.get('version')!r}")
    for key in ("model_file", "sha256"):
        _need(isinstance(data.get(key), str) and data[key], p, f"{key}: expected a non-empty string")
    _need(len(data["sha256"]) == 64 and all(c in "0123456789abcdef" for c in data["sha256"]), p,
          "sha256: expected 64 lower-case hex digits")
    classes = data.get("classes")
    _need(isinstance(classes, list) and classes and all(isinstance(c, str) and c.strip() == c and c
                                                        for c in classes), p,
          "classes: expected a non-empty list of non-empty, unpadded names")
    _need(len(set(classes)) == len(classes), p, "classes: duplicate names")

    inp = data.get("input")
    _need(isinstance(inp, dict), p, "input: expected an object")
    _need(isinstance(inp.get("name"), str) and inp["name"], p, "input.name: expected the model's input name")
    for key in ("height", "width"):
        _need(isinstance(inp.get(key), int) and not isinstance(inp.get(key), bool) and inp[key] >= 1, p,
              f"input.{key}: expected a positive integer")
    _need(inp.get("channel_order") in ("rgb", "bgr"), p,
          f"input.channel_order: expected 'rgb' or 'bgr', got {inp.get('channel_order')!r}")
    for key in ("mean", "std"):
        _need(_numbers(inp.get(key), 3), p, f"input.{key}: expected 3 numbers (pixel units, one per plane)")
    _need(all(s > 0 for s in inp["std"]), p, "input.std: every value must be > 0")
    _need(_numbers([inp.get("pad_value")], 1), p, "input.pad_value: expected a number (pixel units)")
    _need(inp.get("letterbox") == "centred", p,
          f"input.letterbox: only 'centred' is supported, got {inp.get('letterbox')!r}")
    preprocess = Preprocess(inp["channel_order"], tuple(float(v) for v in inp["mean"]),
                            tuple(float(v) for v in inp["std"]), float(inp["pad_value"]))

    dec = data.get("decoder")
    _need(isinstance(dec, dict), p, "decoder: expected an object")
    kind = dec.get("kind")
    _need(kind in DECODERS, p, f"decoder.kind: unknown layout {kind!r}; known: {', '.join(DECODERS)}")
    gfl = _gfl_decoder(dec, p) if kind == "nanodet_gfl" else None
    provenance = {k: data[k] for k in ("source", "licences") if k in data}
    return DetectorSidecar(p, data["model_file"], data["sha256"], tuple(classes), inp["name"],
                           (inp["height"], inp["width"]), preprocess, kind, gfl, provenance)


def _gfl_decoder(dec: dict, p: Path) -> GflDecoder:
    reg_max = dec.get("reg_max")
    _need(isinstance(reg_max, int) and not isinstance(reg_max, bool) and reg_max >= 1, p,
          "decoder.reg_max: expected an integer >= 1")
    offset = dec.get("centre_offset", 0.5)
    _need(_numbers([offset], 1), p, "decoder.centre_offset: expected a number")
    outputs = dec.get("outputs")
    _need(isinstance(outputs, list) and outputs, p, "decoder.outputs: expected a list of {stride, scores, boxes}")
    strides, scores, boxes = [], [], []
    for i, o in enumerate(outputs):
        _need(isinstance(o, dict) and set(o) == {"stride", "scores", "boxes"}, p,
              f"decoder.outputs[{i}]: expected exactly the keys stride, scores, boxes")
        _need(isinstance(o["stride"], int) and not isinstance(o["stride"], bool) and o["stride"] >= 1, p,
              f"decoder.outputs[{i}].stride: expected a positive integer")
        _need(isinstance(o["scores"], str) and isinstance(o["boxes"], str), p,
              f"decoder.outputs[{i}]: scores and boxes must be output names")
        strides.append(o["stride"])
        scores.append(o["scores"])
        boxes.append(o["boxes"])
    _need(len(set(strides)) == len(strides), p, f"decoder.outputs: duplicate strides {strides}")
    _need(len(set(scores + boxes)) == 2 * len(strides), p, "decoder.outputs: an output name is used twice")
    _need(dec.get("strides", strides) == strides, p,
          f"decoder.strides {dec.get('strides')} disagrees with the strides of decoder.outputs {strides}")
    return GflDecoder(tuple(strides), reg_max, tuple(scores), tuple(boxes), float(offset))
