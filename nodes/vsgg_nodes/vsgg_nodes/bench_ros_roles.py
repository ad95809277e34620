"""The child processes of ``vsgg bench ros``: the camera that publishes the frames, and the ZeroMQ engine.

``python -m vsgg_nodes.bench_ros_roles camera ...``: publishes ``--frames`` BGR images (``--width`` x ``--height``,
cycled from the first frames of ``--video``) at ``--rate`` Hz, in blocks of ``--block`` frames that alternate
between the two pipelines (each ZeroMQ block shows the same clip frames as the ROS block before it): even blocks as
sensor_msgs/Image on ``--topic`` (sensor-data QoS, as a camera driver does), odd blocks on a ZeroMQ PUSH socket to
``--zmq``. The time of publishing, ``time.time()`` (s, the system clock every process of the machine shares),
travels with each frame: as ``header.stamp`` on ROS, in the message header on ZeroMQ. Blocks are separated by
``--gap`` seconds of silence, so the two engines never work at once. Every message is built before the run;
the stamp is taken just before the publish (send) call.

``python -m vsgg_nodes.bench_ros_roles zmq-engine ...``: the same Engine as scene_graph_node (built from the same
parameter values by ``node_engine.build_engine``, warmed up) fed from a ZeroMQ PULL socket that keeps only the
newest frame (CONFLATE: the counterpart of the node's best-effort subscription, of which it processes the
newest), each delta published by engine.transport.GraphPublisher. Its bound endpoints go to ``--ready-file``
(JSON) once it is ready. Stops on SIGINT/SIGTERM.

ZeroMQ frame message (one part, little-endian): float64 t (s), uint32 height, uint32 width, then height * width *
3 bytes of BGR pixels.
"""
from __future__ import annotations

import argparse
import json
import signal
import struct
import sys
import threading
import time
from pathlib import Path

import numpy as np

FRAME_HEADER = struct.Struct("<dII")


def encode_frame(t: float, img: np.ndarray) -> bytes:
    """A (H, W, 3) uint8 BGR image and its time ``t`` (s) -> one ZeroMQ message."""
    h, w = img.shape[:2]
    return FRAME_HEADER.pack(t, h, w) + np.ascontiguousarray(img).tobytes()


def decode_frame(msg: bytes) -> tuple[float, np.ndarray]:
    """One ZeroMQ message -> (t, (H, W, 3) uint8 BGR view); ValueError when the length does not add up."""
    if len(msg) < FRAME_HEADER.size:
        raise ValueError(f"frame: {len(msg)} bytes is shorter than its header")
    t, h, w = FRAME_HEADER.unpack_from(msg)
    if len(msg) != FRAME_HEADER.size + h * w * 3:
        raise ValueError(f"frame: {len(msg)} bytes for a {w}x{h} BGR image")
    return t, np.frombuffer(msg, np.uint8, offset=FRAME_HEADER.size).reshape(h, w, 3)


def load_frames(video: str, count: int, width: int, height: int) -> list[np.ndarray]:
    """Up to ``count`` frames of ``video`` resized to width x height (uint8 BGR); ValueError if none can be read."""
    import cv2
    cap = cv2.VideoCapture(video)
    frames = []
    while len(frames) < count:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA))
    cap.release()
    if not frames:
        raise ValueError(f"video: no frame could be read from {video!r}")
    return frames


def path_of_frame(i: int, block: int) -> str:
    """Which pipeline frame ``i`` goes to: 'ros' for even blocks of ``block`` frames, 'zmq' for odd ones."""
    return "ros" if (i // block) % 2 == 0 else "zmq"


def content_of_frame(i: int, block: int) -> int:
    """Which clip frame the ``i``-th published frame shows: a ZeroMQ block repeats the frames of the ROS block
    before it, so both pipelines see the same pictures in the same order (the detector's and tracker's work
    depends on the picture; without this, ROS would always get clip frames 0-14, 30-44, ... and ZeroMQ the
    others)."""
    return (i // (2 * block)) * block + i % block


def camera_main(a) -> int:
    from vsgg_nodes import dds_env
    dds_env.check()
    import rclpy
    import zmq
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    frames = load_frames(a.video, min(a.frames, 60), a.width, a.height)
    zctx = zmq.Context()
    push = zctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.setsockopt(zmq.SNDHWM, 2)
    push.connect(a.zmq)
    sent = {"ros": 0, "zmq": 0}
    block_starts = []  # time (s) each block's first frame was stamped: lets the bench pair ROS and ZeroMQ blocks
    with rclpy.init(args=[]):
        node = rclpy.create_node("vsgg_bench_camera")
        pub = node.create_publisher(Image, a.topic, qos_profile_sensor_data)
        t_end = time.monotonic() + 30
        while pub.get_subscription_count() == 0 and time.monotonic() < t_end:
            time.sleep(0.02)
        time.sleep(0.5)  # discovery of the reverse direction and the ZeroMQ connection
        # every message is built before the clock starts, so the stamp marks the publish call (the bench measures
        # from image publish): building a 640x480 sensor_msgs/Image in Python takes about 1 ms, a ZeroMQ frame less
        ros_msgs, zmq_bufs = [], []
        for img in frames:
            msg = Image(height=img.shape[0], width=img.shape[1], encoding="bgr8", is_bigendian=0,
                        step=img.shape[1] * 3)
            msg.header.frame_id = "camera"
            msg.data = img.tobytes()
            ros_msgs.append(msg)
            zmq_bufs.append(bytearray(encode_frame(0.0, img)))  # its time is written in place at publish
        period = 1.0 / a.rate
        t_next = time.monotonic()
        for i in range(a.frames):
            if i and i % a.block == 0:
                t_next += a.gap
            time.sleep(max(0.0, t_next - time.monotonic()))
            t_next += period
            k = content_of_frame(i, a.block) % len(frames)
            path = path_of_frame(i, a.block)
            now_ns = time.time_ns()
            if i % a.block == 0:
                block_starts.append(now_ns * 1e-9)
            if path == "ros":
                msg = ros_msgs[k]
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
                pub.publish(msg)
            else:
                buf = zmq_bufs[k]
                FRAME_HEADER.pack_into(buf, 0, now_ns * 1e-9, *frames[k].shape[:2])
                try:  # best effort, like the sensor-data QoS: never wait for a busy engine
                    push.send(buf, zmq.NOBLOCK)  # copied into the message: the buffer is free to reuse
                except zmq.Again:
                    continue
            sent[path] += 1
        node.destroy_node()
    push.close()
    zctx.term()
    print(json.dumps({"sent": sent, "block_starts": block_starts}), flush=True)
    return 0


def zmq_engine_main(a) -> int:
    import zmq

    from engine.config import TransportConfig
    from engine.transport import GraphPublisher
    from vsgg_nodes.node_engine import build_engine

    stop = threading.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.set())
    engine, _ = build_engine(json.loads(a.params))
    engine.warmup()
    zctx = zmq.Context()
    pull = zctx.socket(zmq.PULL)
    pull.setsockopt(zmq.CONFLATE, 1)
    pull.setsockopt(zmq.LINGER, 0)
    pull.bind("tcp://127.0.0.1:*")
    cfg = TransportConfig(pub_endpoint="tcp://127.0.0.1:*", snapshot_endpoint="tcp://127.0.0.1:*")
    with GraphPublisher(cfg, engine.epoch) as pub:
        ready = {"image": pull.getsockopt_string(zmq.LAST_ENDPOINT), "pub": pub.pub_endpoint,
                 "snapshot": pub.snapshot_endpoint}
        tmp = Path(a.ready_file + ".tmp")
        tmp.write_text(json.dumps(ready))
        tmp.rename(a.ready_file)  # atomic: the bench never reads half a file
        while not stop.is_set():
            if not pull.poll(100):
                continue
            t, img = decode_frame(pull.recv())
            pub.publish(engine.step(img, t).delta)
    pull.close()
    zctx.term()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vsgg_nodes.bench_ros_roles")
    sub = p.add_subparsers(dest="role", required=True)
    c = sub.add_parser("camera")
    c.add_argument("--video", required=True)
    c.add_argument("--frames", type=int, required=True)
    c.add_argument("--rate", type=float, required=True)
    c.add_argument("--width", type=int, required=True)
    c.add_argument("--height", type=int, required=True)
    c.add_argument("--block", type=int, required=True)
    c.add_argument("--gap", type=float, required=True)
    c.add_argument("--topic", required=True)
    c.add_argument("--zmq", required=True)
    e = sub.add_parser("zmq-engine")
    e.add_argument("--params", required=True, help="scene_graph_node parameter values, JSON")
    e.add_argument("--ready-file", required=True)
    a = p.parse_args(argv)
    from vsgg_nodes.malloc_tuning import keep_freed_buffers
    from vsgg_nodes.node_process import die_with_parent
    die_with_parent()  # no role outlives the bench
    keep_freed_buffers()  # as scene_graph_node does (node_main.run_node): both pipelines move frames the same way
    return camera_main(a) if a.role == "camera" else zmq_engine_main(a)


if __name__ == "__main__":
    sys.exit(main())
