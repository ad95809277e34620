"""The declared parameters of scene_graph_node and video_source_node: names, defaults, ranges, meaning (no rclpy).

One table per node, read by the nodes (to declare the parameters with descriptors and ranges), by
``vsgg ros-launch`` (to check ``name:=value`` arguments) and by the launch-file test (every argument the launch file
passes must be a declared parameter).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_ENGINE_MODELS = Path(__file__).resolve().parents[3] / "engine" / "models"


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter. ``lo``/``hi``: inclusive range of numeric values (None: unbounded). ``dynamic``: may be
    changed while the node runs (else read-only after start). ``choices``: allowed strings (empty: any)."""

    name: str
    default: object
    description: str
    lo: float | None = None
    hi: float | None = None
    dynamic: bool = False
    choices: tuple[str, ...] = ()

    def check(self, value) -> str | None:
        """Why ``value`` is refused for this parameter, or None when it is accepted."""
        want = type(self.default)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not want:
            return f"{self.name}: expected {want.__name__}, got {type(value).__name__}"
        if self.lo is not None and value < self.lo or self.hi is not None and value > self.hi:
            return f"{self.name}: {value} is outside [{self.lo}, {self.hi}]"
        if self.choices and value not in self.choices:
            return f"{self.name}: {value!r} is not one of {', '.join(self.choices)}"
        return None


SCENE_GRAPH_NODE = (
    ParamSpec("input", "image", "what the node subscribes to: 'image' (sensor_msgs/Image on image_raw, run through "
              "the engine's ONNX detector) or 'detections' (vision_msgs/Detection2DArray on detections)",
              choices=("image", "detections")),
    ParamSpec("model", str(_ENGINE_MODELS / "meva"), "relation model (.onnx or model folder); 'none' = tracking "
              "only"),
    ParamSpec("detector", str(_ENGINE_MODELS / "nanodet"), "ONNX detector (.onnx or folder with a side-car) for "
              "input 'image'"),
    ParamSpec("classes", "", "class names file of a detector without side-car, one per line"),
    ParamSpec("class_map", "coco_to_meva", "detector class -> model object label: a built-in map name "
              "(engine/detect/class_maps), a YAML file, or '' for equal names"),
    ParamSpec("config", "", "EngineConfig YAML file ('' = defaults); the filter.* parameters override it"),
    ParamSpec("frame_id", "", "camera frame written into the output headers ('' = the input's header.frame_id)"),
    ParamSpec("max_frame_age_s", 1.0, "frames whose stamp is older than this (s, node clock) are dropped with a "
              "throttled warning; 0 = never", 0.0, 3600.0, dynamic=True),
    ParamSpec("max_image_pixels", 3840 * 2160, "larger input images are logged and skipped", 1, 1 << 28),
    ParamSpec("snapshot_every", 1, "publish the transient-local graph snapshot every this many frames", 1, 10_000),
    ParamSpec("diagnostics_period_s", 1.0, "period (s) of the /diagnostics status", 0.1, 3600.0),
    ParamSpec("publish_overlay", False, "publish 'overlay' (sensor_msgs/Image, the input's size, stamp and rgb/bgr "
              "order): each processed frame with the tracked boxes, track ids and relations drawn; input 'image' "
              "only. Off = nothing is drawn (drawing costs a few ms per frame)"),
    ParamSpec("filter.enter", 0.6, "smoothed score at or above which a relation may start", 0.0, 1.0, dynamic=True),
    ParamSpec("filter.exit", 0.4, "smoothed score below which an active relation ends (<= filter.enter)", 0.0, 1.0,
              dynamic=True),
    ParamSpec("filter.min_duration_s", 0.3, "a relation starts after staying above filter.enter this long (s)",
              0.0, 3600.0, dynamic=True),
    ParamSpec("filter.tau_s", 0.3, "EMA time constant of the relation scores (s); 0 = no smoothing", 0.0, 3600.0,
              dynamic=True),
)

VIDEO_SOURCE_NODE = (
    ParamSpec("source", "", "video file path, or a camera index such as '0'"),
    ParamSpec("rate_hz", 0.0, "publish rate (Hz); 0 = the video's own frame rate (30 for cameras)", 0.0, 1000.0),
    ParamSpec("loop", False, "restart the file at its end"),
    ParamSpec("frame_id", "camera", "header.frame_id of the published images"),
    ParamSpec("width", 0, "resize to this width (px); 0 = as read", 0, 16384),
    ParamSpec("height", 0, "resize to this height (px); 0 = as read", 0, 16384),
    ParamSpec("max_frames", 0, "stop after this many frames; 0 = no limit", 0, 1 << 31),
)

NODES = {"scene_graph_node": SCENE_GRAPH_NODE, "video_source_node": VIDEO_SOURCE_NODE}


def scene_graph_conflicts(values: dict) -> list[str]:
    """Why a combination of scene_graph_node parameter values is refused (each value alone being valid); [] if
    none. Checked at configure, before the engine is built, so the reason is the first thing logged."""
    reasons = []
    if values.get("publish_overlay") and values.get("input") == "detections":
        # a Detection2DArray carries boxes, no pixels: there is no frame to draw on
        reasons.append("publish_overlay: needs input 'image' (input 'detections' has no pixels to draw on)")
    return reasons


def spec_of(node: str, name: str) -> ParamSpec:
    """The ParamSpec of parameter ``name`` of ``node``; KeyError naming both when it is not declared."""
    for p in NODES[node]:
        if p.name == name:
            return p
    raise KeyError(f"{node} has no parameter '{name}' (declared: {', '.join(p.name for p in NODES[node])})")
