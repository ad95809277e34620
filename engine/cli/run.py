"""`vsgg run --source SPEC ...`: run the engine on a stream and publish the scene graph (ZeroMQ, JSONL, overlay)."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

# The MEVA model (real person/vehicle/object relations, measured on dates it never saw) is what `vsgg run` uses on
# real footage and detections; sources in the VidVRD label space (vidvrd:, synthetic:) get the VidVRD-vocabulary
# model trained on the synthetic world. README "Relation models" gives the figures behind this choice.
MODELS = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL = MODELS / "meva"
VIDVRD_MODEL = MODELS / "default"
VIDVRD_SOURCES = ("vidvrd", "synthetic")


def default_model(source: str) -> Path:
    """The relation model `vsgg run` uses when --model is not given, by the source's label space."""
    return VIDVRD_MODEL if source.split(":", 1)[0] in VIDVRD_SOURCES else DEFAULT_MODEL
# NanoDet's sigmoid scores sit around 0.3-0.6 on real footage (engine/models/nanodet/MODEL_CARD.md), below the
# tracker's defaults tuned for YOLO-like confidences: with those no track starts on bikes.mp4. Applied only with the
# shipped detector and only where the user's --config and key=value overrides leave these keys unset.
SHIPPED_DETECTOR_TRACKER = {"new_track_score": 0.45, "high_score": 0.4}


class _Stopped(Exception):
    """Raised in the main thread by SIGTERM (SIGINT raises KeyboardInterrupt) to end the run cleanly."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def add_parser(parser: argparse.ArgumentParser):
    parser.description = ("Run the causal scene-graph engine frame by frame on a source and publish the graph "
                          "incrementally. Sources: video:PATH and camera:INDEX (images: the shipped NanoDet COCO "
                          "detector unless --detector is given), mot:DET.txt, vidvrd:ANNOTATION.json, "
                          "synthetic:SEED. Ctrl-C / SIGTERM stop the run cleanly: outputs are closed and the "
                          "summary printed (exit 130 / 143).")
    parser.add_argument("--source", required=True, help="KIND:ARG, e.g. video:clip.mp4, camera:0, mot:det.txt")
    parser.add_argument("--detector", default="", help="ONNX detector for image sources: a model folder or .onnx "
                        "with a side-car (layout read from it), or a YOLO export with --classes; default: the "
                        "shipped NanoDet (engine/models/nanodet)")
    parser.add_argument("--classes", default="", help="class names of a detector without a side-car, one per line")
    parser.add_argument("--class-map", default="", help="detector class -> model object: a built-in map "
                        "(coco_to_vidvrd, coco_to_meva) or a class-map YAML file; default: the built-in map whose "
                        "targets are the relation model's objects, else equal names")
    parser.add_argument("--keep-unknown", action="store_true", help="keep detections of classes the relation "
                        "model does not know as entities without relations (default: reported once, dropped)")
    parser.add_argument("--sequential", action="store_true", help="run the detector in the main thread instead "
                        "of pipelined with tracking and relations (for measuring what pipelining gains)")
    parser.add_argument("--model", default="", help="relation model (.onnx or model folder); 'none' runs tracking "
                        "only; default: engine/models/meva (real MEVA relations), or engine/models/default (VidVRD "
                        "vocabulary) for vidvrd: and synthetic: sources")
    parser.add_argument("--predicates", default="", metavar="FILE", help="score relations against this "
                        "predicate list instead of the model's (open-vocabulary models only, exported with "
                        "model.uasan.enabled=true; at most 1024 names): an .npz table from `vsgg embed-names` "
                        "(names + text embeddings), or a text file of names the model was trained on, one per line "
                        "(no embedding extra needed)")
    parser.add_argument("--zmq", default="", help="publish deltas on this PUB endpoint (snapshots on port + 1), "
                        "e.g. tcp://127.0.0.1:5556")
    parser.add_argument("--jsonl", default="", help="write every delta as one JSON line here")
    parser.add_argument("--overlay", default="", help="write an overlay video (.mp4) here")
    parser.add_argument("--final-graph", default="", help="write the final graph here (JSON, "
                        "engine.graph.graph_json)")
    parser.add_argument("--record", default="", help="write a rosbag2 (MCAP) of vsgg_msgs deltas and snapshots "
                        "to this new folder (needs vsgg_nodes: `make ros`)")
    parser.add_argument("--frame-id", default="camera", help="--record: camera frame id written in the headers")
    parser.add_argument("--config", default=None, help="EngineConfig YAML")
    parser.add_argument("--fps", type=float, default=None, help="source frame rate when the source lacks it")
    parser.add_argument("--image-size", default="", help="WxH of the source images when the source lacks it")
    parser.add_argument("--category-map", default="", help="vidvrd sources: YAML/JSON {category: model label}")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0 = all)")
    parser.add_argument("--max-frame-gap", type=int, default=None, help="mot: longest run of frames without any "
                        "detection that is accepted (default 10000; a longer one is usually a typo in det.txt)")
    parser.add_argument("--realtime", action="store_true", help="pace file sources at their frame rate")
    parser.add_argument("--linger", type=float, default=0.0, help="keep serving snapshots this many seconds "
                        "after the stream ends")
    parser.add_argument("--quiet", action="store_true", help="no live status line")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="EngineConfig overrides, e.g. "
                        "tracker.max_age=20 filter.enter=0.7")
    return run


def _label_map(path: str) -> dict:
    """{name: model label or None} from a YAML/JSON file (the vidvrd source's --category-map); names checked."""
    from engine.vocab import load_name_map
    return load_name_map(path, "--category-map file") if path else {}


def _check_args(args) -> None:
    if args.max_frames < 0:
        raise ValueError(f"--max-frames must be >= 0 (0 = all frames), got {args.max_frames}")
    if args.fps is not None and not args.fps > 0:
        raise ValueError(f"--fps must be > 0, got {args.fps}")
    if args.linger < 0:
        raise ValueError(f"--linger must be >= 0 seconds, got {args.linger}")


def _image_size(text: str):
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--image-size: expected WxH such as 640x480, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"--image-size: width and height must be > 0 pixels, got {text!r}")
    return w, h


def _user_keys(config_data: dict, overrides) -> set[str]:
    """Dotted keys the user set in --config or key=value overrides."""
    keys, stack = set(), [("", config_data)]
    while stack:
        prefix, d = stack.pop()
        for k, v in d.items():
            key = f"{prefix}{k}"
            stack.append((key + ".", v)) if isinstance(v, dict) else keys.add(key)
    keys.update(o.split("=", 1)[0].strip().lstrip("-") for o in overrides if "=" in o)
    return keys


def default_class_map(detector_classes, objects) -> str:
    """The built-in class map whose targets are exactly ``objects`` and whose classes are the detector's, or ''."""
    from engine.detect.class_map import builtin_class_maps, load_class_map
    for name in builtin_class_maps():
        cm = load_class_map(name)
        if set(cm.targets) == set(objects.names) and set(cm.mapping) <= set(detector_classes.names):
            return name
    return ""


def build(args):
    """(engine, stream, publisher spec or None, mapped detector or None) from the parsed arguments."""
    from dataclasses import replace

    from engine.config import ClassMapConfig, EngineConfig, apply_overrides, from_dict, load_yaml
    from engine.io.streams import open_stream, parse_zmq_endpoint
    from engine.runtime import Engine
    from engine.vocab import Vocabulary, builtin

    _check_args(args)
    if not args.model:
        args.model = str(default_model(args.source))
    zmq_endpoints = parse_zmq_endpoint(args.zmq) if args.zmq else None
    base = load_yaml(args.config)
    cfg = from_dict(EngineConfig, apply_overrides(base, list(args.overrides)))
    backend = None
    if args.model.lower() != "none":
        from engine.backends import load_relation_backend
        backend = load_relation_backend(replace(cfg.relation, model_path=args.model))
        objects = Vocabulary("model_objects", tuple(backend.info.objects))
    else:
        objects = builtin("vidvrd_objects")
    wh = _image_size(args.image_size)
    stream = open_stream(args.source, objects, fps=args.fps, image_wh=wh, category_map=_label_map(args.category_map),
                         **({} if args.max_frame_gap is None else {"max_frame_gap": args.max_frame_gap}))
    detector = None
    if stream.pixels:
        from engine.detect.detector import OnnxDetector
        from engine.detect.mapped_detector import build_mapped_detector
        from engine.detect.sidecar import DEFAULT_DETECTOR_DIR
        if not args.detector:  # the shipped detector: its tracker defaults where the user set none
            user = _user_keys(base, args.overrides)
            cfg = replace(cfg, tracker=replace(cfg.tracker, **{k: v for k, v in SHIPPED_DETECTOR_TRACKER.items()
                                                               if f"tracker.{k}" not in user}))
        det_cfg = replace(cfg.detector, model_path=args.detector or str(DEFAULT_DETECTOR_DIR),
                          classes_file=args.classes or cfg.detector.classes_file)
        raw = OnnxDetector(det_cfg)
        class_map = args.class_map if args.class_map else default_class_map(raw.classes, objects)
        detector = build_mapped_detector(raw, objects, ClassMapConfig(class_map, args.keep_unknown))
        objects = detector.vocabulary
    elif args.detector or args.keep_unknown or args.class_map:
        raise ValueError(f"--detector, --class-map and --keep-unknown apply to image sources (video:, camera:), "
                         f"not to {stream.name}, which gives detections")
    if cfg.numba_cache_dir:
        from engine.jit import use_numba_cache_dir
        use_numba_cache_dir(cfg.numba_cache_dir)
    engine = Engine(cfg, objects, backend, None, image_wh=stream.image_wh)
    if args.predicates:
        from engine.relate.predicate_table import read_predicate_file
        if backend is None:
            raise ValueError("--predicates: needs a relation model (not --model none)")
        f = read_predicate_file(args.predicates)
        engine.set_predicates(f.names, f.table, embedding_model=f.embedding_model)
        print(f"predicates: {len(f.names)} names from {args.predicates} (open-vocabulary scoring)", file=sys.stderr)
    pub = None
    if zmq_endpoints is not None:
        from engine.transport import GraphPublisher
        pub = (replace(cfg.transport, pub_endpoint=zmq_endpoints[0], snapshot_endpoint=zmq_endpoints[1]),
               GraphPublisher)
    return engine, stream, pub, detector


def open_recorder(path: str, frame_id: str):
    """The ``rosbag`` sink of the ``vsgg.sinks`` entry-point group (vsgg_nodes provides it, so engine/ never
    imports rosbags-based code): ``write(delta, graph)``, ``close()``."""
    from importlib.metadata import entry_points
    sinks = {ep.name: ep for ep in entry_points(group="vsgg.sinks")}
    if "rosbag" not in sinks:
        raise ValueError("--record: no 'rosbag' sink installed (it comes with vsgg_nodes: run `make ros`)")
    return sinks["rosbag"].load()(path, frame_id=frame_id)


def _frames(stream, detector, sequential: bool):
    """(t, Detections, image or None, detect_ms or None) per frame: detections as they come for detection sources;
    for image sources the detector runs in a DetectorThread one frame ahead (or inline with ``sequential``)."""
    if detector is None:
        for _, t, item in stream.frames:
            yield t, item, None, None
        return
    if sequential:
        for _, t, image in stream.frames:
            c = time.perf_counter()
            dets = detector.detect(image)
            yield t, dets, image, (time.perf_counter() - c) * 1e3
        return
    from engine.detect.pipeline import DetectorThread
    for f in DetectorThread(detector, stream.frames):
        yield f.t, f.dets, f.image, f.detect_ms


def _on_sigterm(signum, frame):
    raise _Stopped(signum)


def run(args) -> int:
    from engine.cli.run_report import RunReport
    from engine.graph.graph_json import delta_to_dict, describe

    engine, stream, pub_spec, detector = build(args)
    recorder = open_recorder(args.record, args.frame_id) if args.record else None  # fails before any output opens
    engine.warmup()
    if detector is not None:
        detector.warmup()
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
    stopped_by = 0
    old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    # SIGINT stops the run even where it was inherited as ignored (a job started with `&` from a script, nohup):
    # Python installs its KeyboardInterrupt handler only when SIGINT is not ignored at start-up
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    frames = _frames(stream, detector, args.sequential)
    try:
        try:
            for n, (t, dets, image, detect_ms) in enumerate(frames):
                if args.max_frames and n >= args.max_frames:
                    break
                if args.realtime and image is None:
                    time.sleep(max(0.0, t - (time.monotonic() - t_start)))
                res = engine.step(dets, t)
                if detect_ms is not None:   # the detector ran outside step (pipelined): count it as its stage
                    res.timings_ms["detector"] = detect_ms
                if pub is not None:
                    pub.publish(res.delta)
                if recorder is not None:
                    recorder.write(res.delta, res.graph)
                if jsonl is not None:
                    jsonl.write(json.dumps(delta_to_dict(res.delta)) + "\n")
                if overlay is not None:
                    overlay.write(res.graph, image)
                report.add(res)
        except KeyboardInterrupt:
            stopped_by = signal.SIGINT
        except _Stopped as e:
            stopped_by = e.signum
        report.finish()
        if pub is not None:
            pub.end_stream()  # watchers learn the end while snapshots are still served during --linger
        if pub is not None and args.linger > 0 and not stopped_by:
            time.sleep(args.linger)
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        frames.close()  # stops a DetectorThread
        if recorder is not None:
            recorder.close()
        if jsonl is not None:
            jsonl.close()
        if overlay is not None:
            overlay.close()
        if pub is not None:
            pub.close()
    if stopped_by:
        print(f"stopped by {signal.Signals(stopped_by).name} after {report.frames} frames; outputs closed",
              file=sys.stderr)
    if args.final_graph:
        from engine.graph.graph_json import graph_to_dict
        Path(args.final_graph).parent.mkdir(parents=True, exist_ok=True)
        Path(args.final_graph).write_text(json.dumps(graph_to_dict(engine.snapshot()), sort_keys=True))
    print(describe(engine.snapshot()))
    print(report.summary(engine))
    if detector is not None and detector.unknown_counts:
        print("detector classes the relation model does not know ("
              + ("kept as entities" if detector.keep_unknown else "dropped") + "): "
              + ", ".join(f"{k} x{v}" for k, v in sorted(detector.unknown_counts.items(), key=lambda kv: -kv[1])))
    if overlay is not None:
        print(f"overlay written to {args.overlay} ({overlay.frames} frames)")
    return 128 + int(stopped_by) if stopped_by else 0
