"""The live_camera launch plan: its arguments, the camera drivers, and the nodes they start (pure: no rclpy, no launch).

One source of truth for ``launch/live_camera.launch.py`` (``ros2 launch`` on a ROS 2 install) and
``vsgg ros-launch live_camera`` (processes started by vsgg where no ``ros2`` command exists): both turn the
``name:=value`` launch arguments into the same two ``NodePlan``s with ``plan()``.

* the camera: ``usb_cam``, ``v4l2_camera`` or vsgg's own ``video_source_node``, node name ``camera``;
* ``scene_graph_node`` (a lifecycle node) with the parameters file ``config/scene_graph.yaml`` (or ``params_file``),
  overridden by the launch arguments named after its parameters (``SCENE_GRAPH_ARGS``) when they are not ''.

Both run in ``namespace``; their topics are relative, and the camera's ``image_raw`` and scene_graph_node's
``image_raw`` are both remapped to ``image_topic``. Parameter values are typed here (from the ParamSpec of
vsgg's nodes, or the driver tables below), so a bad value is refused before anything starts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from vsgg_nodes.node_params import NODES, ParamSpec, spec_of

PACKAGE = "vsgg_nodes"
LAUNCH_NAME = "live_camera"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class LaunchArg:
    """One launch argument. ``default`` is text, as launch arguments are; '' for a node parameter means "keep the
    value of the parameters file (or the node's default)"."""

    name: str
    default: str
    description: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class CameraDriver:
    """A camera node: its package and executable, and ``params``: node parameter -> (launch argument, type)."""

    package: str
    executable: str
    params: Mapping[str, tuple[str, type]]


CAMERAS = {
    # usb_cam (ros-drivers/usb_cam): publishes image_raw; image_width/height in px, framerate in Hz
    "usb_cam": CameraDriver("usb_cam", "usb_cam_node_exe", {
        "video_device": ("video_device", str), "frame_id": ("frame_id", str), "image_width": ("width", int),
        "image_height": ("height", int), "framerate": ("rate_hz", float)}),
    # v4l2_camera (ros-perception/v4l2_camera, Humble+): publishes image_raw
    "v4l2_camera": CameraDriver("v4l2_camera", "v4l2_camera_node", {
        "video_device": ("video_device", str), "camera_frame_id": ("frame_id", str)}),
    # vsgg's video file / camera index publisher: types from node_params.VIDEO_SOURCE_NODE
    "video_source_node": CameraDriver(PACKAGE, "video_source_node", {
        "source": ("video", str), "frame_id": ("frame_id", str), "rate_hz": ("rate_hz", float),
        "width": ("width", int), "height": ("height", int), "loop": ("loop", bool)}),
}

#: launch arguments passed to scene_graph_node as the parameter of the same name (when not '')
SCENE_GRAPH_ARGS = ("model", "detector", "class_map", "config", "max_frame_age_s", "publish_overlay")

ARGUMENTS = (
    LaunchArg("camera", "usb_cam", "camera driver node", tuple(CAMERAS)),
    LaunchArg("namespace", "vsgg", "namespace of both nodes; their relative topics and services resolve in it"),
    LaunchArg("params_file", "", "scene_graph_node parameters YAML ('' = config/scene_graph.yaml of vsgg_nodes)"),
    LaunchArg("image_topic", "image_raw", "image topic between the camera and scene_graph_node (relative = inside "
              "the namespace)"),
    LaunchArg("video_device", "/dev/video0", "usb_cam, v4l2_camera: the V4L2 device"),
    LaunchArg("video", "", "video_source_node: a video file, or a camera index such as 0 (required there)"),
    LaunchArg("frame_id", "camera", "camera frame written into the image headers, and so into the graph's"),
    LaunchArg("width", "", "usb_cam, video_source_node: image width in px ('' = the driver's default)"),
    LaunchArg("height", "", "usb_cam, video_source_node: image height in px ('' = the driver's default)"),
    LaunchArg("rate_hz", "", "usb_cam, video_source_node: frame rate in Hz ('' = the driver's default)"),
    LaunchArg("loop", "", "video_source_node: restart the file at its end (true/false)"),
    LaunchArg("model", "", "scene_graph_node: relation model, or 'none' for tracking only"),
    LaunchArg("detector", "", "scene_graph_node: ONNX detector"),
    LaunchArg("class_map", "", "scene_graph_node: detector class -> model object label map"),
    LaunchArg("config", "", "scene_graph_node: EngineConfig YAML file"),
    LaunchArg("max_frame_age_s", "", "scene_graph_node: frames older than this (s) are dropped"),
    LaunchArg("publish_overlay", "", "scene_graph_node: publish the 'overlay' image (boxes and relations drawn on "
              "the frame; true/false)"),
)
DEFAULTS = {a.name: a.default for a in ARGUMENTS}


@dataclass(frozen=True)
class NodePlan:
    """One node to start. ``parameters``: name -> typed value (override ``params_file``, '' = none);
    ``remappings``: (from, to) topic names."""

    package: str
    executable: str
    name: str
    namespace: str
    parameters: Mapping[str, object] = field(default_factory=dict)
    params_file: str = ""
    remappings: tuple[tuple[str, str], ...] = ()
    lifecycle: bool = False

    @property
    def fqn(self) -> str:
        """Fully qualified node name, e.g. /vsgg/scene_graph_node."""
        return f"{self.namespace.rstrip('/')}/{self.name}"


def share_file(*parts: str) -> Path:
    """A file of the vsgg_nodes package: next to the sources (pip -e) or in its colcon share folder."""
    here = Path(__file__).resolve().parents[1].joinpath(*parts)
    if here.is_file():
        return here
    try:
        from ament_index_python.packages import get_package_share_directory
        shared = Path(get_package_share_directory(PACKAGE)).joinpath(*parts)
    except (ImportError, LookupError):
        shared = here
    if not shared.is_file():
        raise FileNotFoundError(f"{'/'.join(parts)}: not found next to the sources ({here}) nor in share/{PACKAGE}")
    return shared


def parse_value(spec: ParamSpec, text: str):
    """Launch-argument text -> the parameter's typed value; ValueError naming the parameter when it does not
    parse or is outside the spec."""
    want = type(spec.default)
    value = _typed(spec.name, want, text)
    reason = spec.check(value)
    if reason:
        raise ValueError(reason)
    return value


def _typed(name: str, want: type, text: str):
    try:
        if want is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        return want(text)
    except ValueError:
        raise ValueError(f"{name}: expected {want.__name__}, got {text!r}") from None


def _namespace(text: str) -> str:
    tokens = [t for t in text.strip("/").split("/") if t]
    if not all(_NAME.fullmatch(t) for t in tokens):
        raise ValueError(f"namespace: {text!r} is not a ROS namespace (tokens of letters, digits and _)")
    return "/" + "/".join(tokens)


def _topic(text: str) -> str:
    tokens = text.lstrip("/").split("/")
    if not text or not all(_NAME.fullmatch(t) for t in tokens):
        raise ValueError(f"image_topic: {text!r} is not a ROS topic name")
    return text


def plan(values: Mapping[str, str]) -> tuple[NodePlan, NodePlan]:
    """(camera, scene_graph_node) for the launch arguments ``values`` (text; missing ones take their defaults).

    Raises ValueError naming the argument for an unknown name, a value outside its choices or that does not parse
    as its parameter, or a missing ``video`` with camera:=video_source_node; FileNotFoundError for a missing
    params file."""
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown launch argument (known: {', '.join(DEFAULTS)})")
    v = {**DEFAULTS, **{k: str(x) for k, x in values.items()}}
    if v["camera"] not in CAMERAS:
        raise ValueError(f"camera: {v['camera']!r} is not one of {', '.join(CAMERAS)}")
    ns, topic = _namespace(v["namespace"]), _topic(v["image_topic"])
    driver = CAMERAS[v["camera"]]
    own = driver.package == PACKAGE
    cam_params = {}
    for param, (arg, kind) in driver.params.items():
        if v[arg] == "":
            continue
        cam_params[param] = (parse_value(spec_of(driver.executable, param), v[arg]) if own
                             else _typed(arg, kind, v[arg]))
    if own and not v["video"]:
        raise ValueError("video: camera:=video_source_node needs a video file or a camera index")
    camera = NodePlan(driver.package, driver.executable, "camera", ns, cam_params,
                      remappings=(("image_raw", topic),))
    graph_params = {k: parse_value(spec_of("scene_graph_node", k), v[k]) for k in SCENE_GRAPH_ARGS if v[k] != ""}
    params_file = Path(v["params_file"]) if v["params_file"] else share_file("config", "scene_graph.yaml")
    if not params_file.is_file():
        raise FileNotFoundError(f"params_file: no such file {str(params_file)!r}")
    graph = NodePlan(PACKAGE, "scene_graph_node", "scene_graph_node", ns, graph_params, str(params_file),
                     remappings=(("image_raw", topic),), lifecycle=True)
    return camera, graph


def yaml_scalar(value) -> str:
    """A typed value as the YAML text rcl parses back to the same type (strings always quoted: '0' stays text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def ros_arguments(node: NodePlan) -> list[str]:
    """The ``--ros-args ...`` command-line tail that gives a node process the plan's name, namespace, parameters
    and remappings (what launch_ros passes)."""
    out = ["--ros-args", "-r", f"__node:={node.name}", "-r", f"__ns:={node.namespace}"]
    if node.params_file:
        out += ["--params-file", node.params_file]
    for k, val in node.parameters.items():
        out += ["-p", f"{k}:={yaml_scalar(val)}"]
    for a, b in node.remappings:
        out += ["-r", f"{a}:={b}"]
    return out


def declared_parameters(node: str) -> set[str]:
    """Names of the parameters vsgg's ``node`` declares (scene_graph_node, video_source_node)."""
    return {p.name for p in NODES[node]}
