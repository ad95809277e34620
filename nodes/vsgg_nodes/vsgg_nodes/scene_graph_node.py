"""scene_graph_node: a lifecycle node that runs the vsgg engine on a camera stream and publishes the scene graph.

Lifecycle (managed by ``ros2 lifecycle``, the launch file or ``vsgg ros-launch``):

* configure: parameters -> Engine built and warmed up (numba compiled, models loaded), so the first frame is fast;
* activate: subscription (``image_raw`` sensor_msgs/Image, or ``detections`` vision_msgs/Detection2DArray; sensor-data
  QoS: best effort, depth 1), publishers, services and the inference thread are created;
* deactivate: all of those released (the engine and its graph are kept); cleanup: the engine is dropped.

Topics and services (relative names; remap them in the launch file):

* ``graph_delta`` vsgg_msgs/SceneGraphDelta, reliable keep-last 100: one per processed frame, seq +1 each;
* ``graph`` vsgg_msgs/SceneGraph, reliable transient-local depth 1: the latest graph (late joiners get it at once);
* ``/diagnostics`` diagnostic_msgs/DiagnosticArray: input/processed rates, latency, dropped frames, epoch, seq;
* ``overlay`` sensor_msgs/Image, only with ``publish_overlay`` (input 'image'; refused at configure with input
  'detections', which has no pixels): each processed frame with the graph drawn (vsgg_nodes.overlay_output);
* ``get_graph`` vsgg_msgs/GetSceneGraph and ``reset`` vsgg_msgs/ResetGraph.

Inference and overlay drawing run on the node's own worker thread, never in an executor callback. That thread
also waits on the input subscription and takes its messages itself (vsgg_nodes.input_taker): no frame wakes the
executor, whose Python wait-set rebuild cost 1.8 ms of CPU per frame, and none is handed between threads. When
the worker was busy, the newest waiting frame is processed and the older ones are dropped and counted. Images
arrive serialized (a raw subscription) and are parsed on the worker thread without copying their pixels
(vsgg_nodes.image_cdr): rclpy's own conversion cost 1.1 ms per 640x480 frame. Frames older than
``max_frame_age_s``, malformed or oversized images and Detection2DArrays with a non-finite or negative box or
score are logged (throttled) and skipped; a detection class the class map does not know is dropped and logged once
per class; the node keeps running. ``filter.*`` thresholds can be changed at
run time (checked as a FilterConfig).
"""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType,
                                SetParametersResult)
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from vsgg_msgs.srv import GetSceneGraph, ResetGraph

from vsgg_nodes import convert
from vsgg_nodes.image_cdr import image_from_cdr, max_serialized_bytes
from vsgg_nodes.input_taker import InputTaker
from vsgg_nodes.node_engine import FILTER_PARAMS, build_engine
from vsgg_nodes.node_main import run_node
from vsgg_nodes.node_params import SCENE_GRAPH_NODE, scene_graph_conflicts

DELTA_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
GRAPH_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL)
WAIT_S = 0.5  # the worker's longest wait for input before it checks whether it should stop (a wake is at once)
LATENCY_WINDOW = 300  # frames kept for the latency figures of /diagnostics
_PTYPE = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}


def descriptor(spec) -> ParameterDescriptor:
    """A ParameterDescriptor with the spec's type, range, description and read-only flag."""
    d = ParameterDescriptor(name=spec.name, type=_PTYPE[type(spec.default)], read_only=not spec.dynamic,
                            description=spec.description + (f" (one of: {', '.join(spec.choices)})"
                                                             if spec.choices else ""))
    if isinstance(spec.default, float) and spec.lo is not None:
        d.floating_point_range = [FloatingPointRange(from_value=float(spec.lo), to_value=float(spec.hi), step=0.0)]
    elif isinstance(spec.default, int) and not isinstance(spec.default, bool) and spec.lo is not None:
        d.integer_range = [IntegerRange(from_value=int(spec.lo), to_value=int(spec.hi), step=0)]
    return d


class SceneGraphNode(LifecycleNode):
    """Thin lifecycle adapter: message -> convert -> Engine.step -> convert -> publish."""

    def __init__(self, **kwargs):
        super().__init__("scene_graph_node", **kwargs)
        for spec in SCENE_GRAPH_NODE:
            self.declare_parameter(spec.name, spec.default, descriptor(spec))
        self._bad = [r for r in (s.check(self.get_parameter(s.name).value) for s in SCENE_GRAPH_NODE) if r]
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.engine = self._class_index = None
        self._lock = threading.Lock()           # the engine: worker step vs. services and parameter changes
        self._input = None                       # InputTaker while active: read by the worker thread only
        self._running = False
        self._worker = None
        self._ros = []                           # entities made on activate, destroyed on deactivate
        self._overlay = None                     # OverlayOutput while active with publish_overlay
        self._raw_images = False                 # image input: messages arrive serialized (raw=True)
        self._stats = self._new_stats()

    # ------------------------------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = {s.name: self.get_parameter(s.name).value for s in SCENE_GRAPH_NODE}
        bad = self._bad + scene_graph_conflicts(values)
        if bad:
            self.get_logger().error("bad parameters: " + "; ".join(bad))
            return TransitionCallbackReturn.FAILURE
        try:
            self.engine, self._class_index = build_engine(values, on_unknown=self._on_unknown_class)
            self.engine.warmup()
        except (ValueError, FileNotFoundError, TypeError) as e:
            self.get_logger().error(f"configure failed: {e}")
            return TransitionCallbackReturn.FAILURE
        self._held = frozenset()
        self.get_logger().info(f"engine ready, epoch {self.engine.epoch}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self.get_parameter
        from vsgg_msgs.msg import SceneGraph, SceneGraphDelta
        self._kit = convert.rclpy_kit()
        self._delta_pub = self.create_publisher(SceneGraphDelta, "graph_delta", DELTA_QOS)
        self._graph_pub = self.create_publisher(SceneGraph, "graph", GRAPH_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._raw_images = p("input").value == "image"
        self._max_raw_bytes = max_serialized_bytes(p("max_image_pixels").value)
        if self._raw_images:
            # serialized bytes: parsed on the worker thread without copying the pixels (vsgg_nodes.image_cdr)
            self._input = InputTaker(self, Image, "image_raw", qos_profile_sensor_data, raw=True)
        else:
            from vision_msgs.msg import Detection2DArray  # optional package: imported only when used
            self._input = InputTaker(self, Detection2DArray, "detections", qos_profile_sensor_data)
        self._ros = [self._delta_pub, self._graph_pub, self._diag_pub,
                     self.create_service(GetSceneGraph, "get_graph", self._on_get_graph),
                     self.create_service(ResetGraph, "reset", self._on_reset),
                     self.create_timer(p("diagnostics_period_s").value, self._publish_diagnostics)]
        if p("publish_overlay").value:
            from vsgg_nodes.overlay_output import OverlayOutput  # OpenCV loaded only when an overlay is wanted
            self._overlay = OverlayOutput(self)
            self._ros.append(self._overlay.pub)
        self._stats = self._new_stats()
        self._running = True
        self._worker = threading.Thread(target=self._work, name="vsgg-inference", daemon=True)
        self._worker.start()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.engine = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def close(self) -> None:
        self._release()

    def _release(self) -> None:
        self._running = False
        if self._input is not None:
            self._input.wake()
        if self._worker is not None:
            self._worker.join(timeout=10)
            self._worker = None
        for ent in self._ros:
            if hasattr(ent, "cancel"):
                ent.cancel()
                self.destroy_timer(ent)
            elif hasattr(ent, "publish"):
                self.destroy_publisher(ent)
            elif hasattr(ent, "srv_type"):
                self.destroy_service(ent)
            else:
                self.destroy_subscription(ent)
        if self._input is not None:
            self._input.destroy()
        self._ros, self._overlay, self._input = [], None, None

    # ------------------------------------------------------------------------------------------ input
    def _work(self) -> None:
        """Worker thread: wait for input, take the newest message, process it; until _release stops it."""
        st = self._stats
        while self._running:
            msg, taken = self._input.take_newest(WAIT_S)
            if msg is None:
                continue
            t_in = time.monotonic()
            st["received"] += taken
            st["dropped_busy"] += taken - 1  # arrived while the previous frame was processed: superseded
            if self._raw_images and len(msg) > self._max_raw_bytes:
                st["dropped_bad"] += 1
                self.get_logger().error(f"input skipped: a {len(msg)}-byte image is over the {self._max_raw_bytes}"
                                        f"-byte limit of max_image_pixels", throttle_duration_sec=5.0)
                continue
            self._process(msg, t_in)

    def _process(self, msg, t_in: float) -> None:
        log, st = self.get_logger(), self._stats
        if self._raw_images:
            try:
                msg = image_from_cdr(msg)
            except ValueError as e:
                st["dropped_bad"] += 1
                log.error(f"input skipped: {e}", throttle_duration_sec=5.0)
                return
        stamp = convert.stamp_of(msg)
        t = float(stamp[0]) + float(stamp[1]) * 1e-9
        max_age = self.get_parameter("max_frame_age_s").value
        age = self.get_clock().now().nanoseconds * 1e-9 - t
        if max_age > 0 and age > max_age:
            st["dropped_old"] += 1
            log.warning(f"dropping frames older than max_frame_age_s={max_age} (this one {age:.2f} s)",
                        throttle_duration_sec=5.0)
            return
        try:
            if self.engine.detector is not None:
                frame = convert.image_to_bgr(msg, self.get_parameter("max_image_pixels").value)
            else:
                frame = convert.detections_from_vision(msg, self._class_index)
            with self._lock:
                res = self.engine.step(frame, t)
                held, self._held = self._held, frozenset(res.graph.relations)
        except (ValueError, TypeError) as e:
            st["dropped_bad"] += 1
            log.error(f"input skipped: {e}", throttle_duration_sec=5.0)
            return
        frame_id = self.get_parameter("frame_id").value or msg.header.frame_id
        self._delta_pub.publish(self._kit.delta(convert.delta_fields(res.delta, held, frame_id, stamp)))
        st["processed"] += 1
        if st["processed"] % self.get_parameter("snapshot_every").value == 0:
            self._graph_pub.publish(self._kit.graph(convert.graph_fields(res.graph, frame_id, stamp)))
        if self._overlay is not None:
            try:
                self._overlay.publish(res.graph, frame, msg.encoding, frame_id, stamp)
            except (ValueError, TypeError) as e:  # a frame without overlay, never a stopped worker
                log.error(f"overlay skipped: {e}", throttle_duration_sec=5.0)
        self._frame_id, self._stamp = frame_id, stamp
        st["latency_ms"].append((time.monotonic() - t_in) * 1e3)

    def _on_unknown_class(self, class_id: str) -> None:
        self.get_logger().warning(f"detections of class {class_id!r} dropped: no object of the relation model "
                                  f"(class_map '{self.get_parameter('class_map').value}'); reported once")

    # ------------------------------------------------------------------------------------------ services
    def _on_get_graph(self, request, response):
        with self._lock:
            g = self.engine.snapshot()
        frame_id, stamp = getattr(self, "_frame_id", ""), getattr(self, "_stamp", None)
        response.graph = self._kit.graph(convert.graph_fields(g, frame_id, stamp if g.seq else None))
        return response

    def _on_reset(self, request, response):
        with self._lock:
            self.engine.reset()
            self._held = frozenset()
            g = self.engine.snapshot()
        # the empty graph of the new epoch goes to late joiners at once
        self._graph_pub.publish(self._kit.graph(convert.graph_fields(g, getattr(self, "_frame_id", ""))))
        response.success, response.message, response.epoch = True, "", g.epoch
        self.get_logger().info(f"reset: new epoch {g.epoch}")
        return response

    # ------------------------------------------------------------------------------------------ parameters
    def _on_set_parameters(self, params) -> SetParametersResult:
        """Refuse any value outside its spec, and filter thresholds that do not form a valid FilterConfig."""
        specs = {s.name: s for s in SCENE_GRAPH_NODE}
        for prm in params:
            spec = specs.get(prm.name)
            reason = None if spec is None else spec.check(prm.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        new = {prm.name: prm.value for prm in params if prm.name in FILTER_PARAMS}
        if new and self.engine is not None:
            from dataclasses import replace

            from engine.config import ConfigError
            with self._lock:
                cur = self.engine.cfg.filter
                fields = {k.split(".", 1)[1]: float(v) for k, v in new.items()}
                try:
                    cfg = replace(cur, **fields)
                except (ConfigError, ValueError) as e:
                    return SetParametersResult(successful=False, reason=str(e))
                self.engine.cfg = replace(self.engine.cfg, filter=cfg)
                self.engine.filter.cfg = cfg
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------------------------------ diagnostics
    @staticmethod
    def _new_stats() -> dict:
        return {"received": 0, "processed": 0, "dropped_busy": 0, "dropped_old": 0, "dropped_bad": 0,
                "latency_ms": deque(maxlen=LATENCY_WINDOW), "since": time.monotonic(), "last": (0, 0)}

    def _publish_diagnostics(self) -> None:
        st = self._stats
        now = time.monotonic()
        dt = max(now - st["since"], 1e-9)
        r0, p0 = st["last"]
        lat = np.array(st["latency_ms"]) if st["latency_ms"] else np.zeros(1)
        g = self.engine.snapshot() if self.engine is not None else None
        values = {"input_hz": (st["received"] - r0) / dt, "processed_hz": (st["processed"] - p0) / dt,
                  "latency_p50_ms": float(np.percentile(lat, 50)), "latency_p95_ms": float(np.percentile(lat, 95)),
                  "dropped_busy": st["dropped_busy"], "dropped_old": st["dropped_old"],
                  "dropped_bad": st["dropped_bad"], "epoch": g.epoch if g else "", "seq": g.seq if g else 0}
        st["since"], st["last"] = now, (st["received"], st["processed"])
        dropped = st["dropped_old"] + st["dropped_bad"]
        status = DiagnosticStatus(level=DiagnosticStatus.WARN if dropped else DiagnosticStatus.OK,
                                  name=f"{self.get_name()}: scene graph", hardware_id=self.get_fully_qualified_name(),
                                  message="frames dropped (old or malformed)" if dropped else "ok",
                                  values=[KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v))
                                          for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)


def main(args=None) -> int:
    return run_node(SceneGraphNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
