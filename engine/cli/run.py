"""`vsgg run --source SPEC ...`: run the engine on a stream and publish the scene graph (ZeroMQ, JSONL, overlay)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "default"


def add_parser(parser: argparse.ArgumentParser):
    parser.description = ("Run the causal scene-graph engine frame by frame on a source and publish the graph "
                          "incrementally. Sources: video:PATH, camera:INDEX (need --detector), mot:DET.txt, "
                          "vidvrd:ANNOTATION.json, synthetic:SEED.")
    parser.add_argument("--source", required=True, help="KIND:ARG, e.g. mot:det.txt, video:clip.mp4, camera:0")
    parser.add_argument("--detector", default="", help="ONNX detector in the YOLO export layout (images only)")
    parser.add_argument("--classes", default="", help="class names of the detector, one per line")
    parser.add_argument("--class-map", default="", help="YAML/JSON {detector class: model object label}; "
                        "detections of classes that map to nothing are dropped")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="relation model (.onnx or model folder); "
                        "'none' runs tracking only")
    parser.add_argument("--zmq", default="", help="publish deltas on this PUB endpoint (snapshots on port + 1), "
                        "e.g. tcp://127.0.0.1:5556")
    parser.add_argument("--jsonl", default="", help="write every delta as one JSON line here")
    parser.add_argument("--overlay", default="", help="write an overlay video (.mp4) here")
    parser.add_argument("--config", default=None, help="EngineConfig YAML")
    parser.add_argument("--fps", type=float, default=None, help="source frame rate when the source lacks it")
    parser.add_argument("--image-size", default="", help="WxH of the source images when the source lacks it")
    parser.add_argument("--category-map", default="", help="vidvrd sources: YAML/JSON {category: model label}")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0 = all)")
    parser.add_argument("--realtime", action="store_true", help="pace file sources at their frame rate")
    parser.add_argument("--linger", type=float, default=0.0, help="keep serving snapshots this many seconds "
                        "after the stream ends")
    parser.add_argument("--quiet", action="store_true", help="no live status line")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="EngineConfig overrides")
    return run


def _label_map(path: str) -> dict:
    if not path:
        return {}
    import yaml
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"map file not found: {p}")
    data = json.loads(p.read_text()) if p.suffix == ".json" else yaml.safe_load(p.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a mapping {{name: model label}}")
    return {str(k): (None if v is None else str(v)) for k, v in data.items()}


class _DetectorInVocab:
    """Wraps an OnnxDetector so its labels are model object indices; unmapped classes are dropped."""

    def __init__(self, detector, objects, class_map: dict):
        from engine.types import Detections
        self.detector, self.Detections = detector, Detections
        lut = []
        for name in detector.classes.names:
            target = class_map.get(name, name)
            lut.append(objects.index(target) if target is not None and target in objects else -1)
        self.lut = np.array(lut, np.int64)
        if (self.lut < 0).all():
            raise ValueError("--class-map: none of the detector's classes maps to a model object label")

    def warmup(self):
        self.detector.warmup()

    def detect(self, image):
        d = self.detector.detect(image)
        lab = self.lut[d.labels]
        keep = lab >= 0
        return self.Detections(d.boxes_xyxy[keep], d.scores[keep], lab[keep].astype(np.int32))


def build(args):
    """(engine, stream, publisher or None) from the parsed arguments."""
    from dataclasses import replace

    from engine.config import TransportConfig, load_engine_config
    from engine.runtime import Engine
    from engine.io.streams import open_stream
    from engine.vocab import Vocabulary, builtin

    cfg = load_engine_config(args.config, args.overrides)
    if cfg.numba_cache_dir:
        from engine.jit import use_numba_cache_dir
        use_numba_cache_dir(cfg.numba_cache_dir)
    backend = None
    if args.model.lower() != "none":
        from engine.backends import load_relation_backend
        backend = load_relation_backend(replace(cfg.relation, model_path=args.model))
        objects = Vocabulary("model_objects", tuple(backend.info.objects))
    else:
        objects = builtin("vidvrd_objects")
    detector = None
    if args.detector:
        from engine.detect.detector import OnnxDetector
        det_cfg = replace(cfg.detector, model_path=args.detector, classes_file=args.classes or cfg.detector.classes_file)
        detector = _DetectorInVocab(OnnxDetector(det_cfg), objects, _label_map(args.class_map))
    wh = None
    if args.image_size:
        try:
            w, h = (int(v) for v in args.image_size.lower().split("x"))
        except ValueError:
            raise ValueError(f"--image-size: expected WxH such as 640x480, got {args.image_size!r}") from None
        wh = (w, h)
    stream = open_stream(args.source, objects, fps=args.fps, image_wh=wh, category_map=_label_map(args.category_map))
    if stream.pixels and detector is None:
        raise ValueError(f"source {stream.name} gives images: pass --detector MODEL.onnx --classes FILE")
    engine = Engine(cfg, objects, backend, detector, image_wh=stream.image_wh)
    pub = None
    if args.zmq:
        from engine.transport import GraphPublisher
        host, port = args.zmq.rsplit(":", 1)
        tcfg = replace(cfg.transport, pub_endpoint=args.zmq,
                       snapshot_endpoint=f"{host}:{int(port) + 1}" if port != "*" else f"{host}:*")
        pub = (tcfg, GraphPublisher)
    return engine, stream, pub


def run(args) -> int:
    from engine.graph.graph_json import delta_to_dict, describe
    from engine.cli.run_report import RunReport

    engine, stream, pub_spec = build(args)
    engine.warmup()
    pub = pub_spec[1](pub_spec[0], engine.epoch) if pub_spec else None
    if pub is not None:
        print(f"publishing on {pub.pub_endpoint} (snapshots: {pub.snapshot_endpoint}), epoch {engine.epoch}",
              file=sys.stderr)
    jsonl = open(args.jsonl, "w") if args.jsonl else None
    overlay = None
    if args.overlay:
        from engine.io.overlay import OverlayWriter
        overlay = OverlayWriter(args.overlay, stream.image_wh, stream.fps)
    report = RunReport(live=not args.quiet)
    t_start = time.monotonic()
    try:
        for n, (_, t, item) in enumerate(stream.frames):
            if args.max_frames and n >= args.max_frames:
                break
            if args.realtime and not stream.pixels:
                time.sleep(max(0.0, t - (time.monotonic() - t_start)))
            res = engine.step(item, t)
            if pub is not None:
                pub.publish(res.delta)
            if jsonl is not None:
                jsonl.write(json.dumps(delta_to_dict(res.delta)) + "\n")
            if overlay is not None:
                overlay.write(res.graph, item if stream.pixels else None)
            report.add(res)
        report.finish()
        if pub is not None and args.linger > 0:
            time.sleep(args.linger)
    finally:
        if jsonl is not None:
            jsonl.close()
        if overlay is not None:
            overlay.close()
        if pub is not None:
            pub.close()
    print(describe(engine.snapshot()))
    print(report.summary(engine))
    if overlay is not None:
        print(f"overlay written to {args.overlay} ({overlay.frames} frames)")
    return 0
