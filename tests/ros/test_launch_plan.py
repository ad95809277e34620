"""live_camera.launch.py and its plan (no rclpy, no launch_ros: neither is needed here).

launch_ros is not installed here, so the launch file is compiled and its structure read from the AST; what it starts
comes from vsgg_nodes.launch_plan, tested directly: every parameter it passes to a vsgg node, every key of the
params YAML, is a parameter that node declares, with a value its ParamSpec accepts."""
import ast
import py_compile
from pathlib import Path

import pytest
import yaml

launch_plan = pytest.importorskip("vsgg_nodes.launch_plan", reason="vsgg_nodes is not installed: run `make ros`")
from vsgg_nodes.node_params import NODES, scene_graph_conflicts, spec_of  # noqa: E402

PKG = Path(launch_plan.__file__).resolve().parents[1]
LAUNCH = PKG / "launch" / "live_camera.launch.py"
PARAMS = PKG / "config" / "scene_graph.yaml"
VIDEO = "/data/clip.mp4"


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_launch_file_compiles_and_drives_the_lifecycle(tmp_path):
    py_compile.compile(str(LAUNCH), cfile=str(tmp_path / "live_camera.pyc"), doraise=True)
    tree = ast.parse(LAUNCH.read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs
    # every argument of the plan is declared, the nodes come from plan(), the graph node is a LifecycleNode
    assert {"DeclareLaunchArgument", "LifecycleNode", "Node", "plan", "OpaqueFunction"} <= calls
    assert "ARGUMENTS" in names
    # configure when its process starts, activate when it reaches inactive
    assert {"TRANSITION_CONFIGURE", "TRANSITION_ACTIVATE"} <= attrs
    assert {"OnProcessStart", "OnStateTransition", "ChangeState", "EmitEvent"} <= calls
    goals = [kw.value.value for n in ast.walk(tree) if isinstance(n, ast.Call) for kw in n.keywords
             if kw.arg == "goal_state"]
    assert goals == ["inactive"]
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module ==
                "vsgg_nodes.launch_plan" for a in n.names}
    assert imported == {"ARGUMENTS", "plan"}


def test_arguments_named_after_the_parameters_they_set():
    names = [a.name for a in launch_plan.ARGUMENTS]
    assert len(names) == len(set(names))
    graph_params = launch_plan.declared_parameters("scene_graph_node")
    assert set(launch_plan.SCENE_GRAPH_ARGS) <= graph_params
    assert set(launch_plan.SCENE_GRAPH_ARGS) <= set(names)
    for driver in launch_plan.CAMERAS.values():
        assert {arg for arg, _ in driver.params.values()} <= set(names)
    own = launch_plan.CAMERAS["video_source_node"]
    assert set(own.params) <= launch_plan.declared_parameters("video_source_node")
    for param, (_, kind) in own.params.items():  # the driver table's types are the node's
        assert kind is type(spec_of("video_source_node", param).default)


def test_params_yaml_keys_are_declared_with_accepted_values():
    doc = yaml.safe_load(PARAMS.read_text())
    assert list(doc) == ["/**/scene_graph_node"]
    values = _flatten(doc["/**/scene_graph_node"]["ros__parameters"])
    assert len(values) >= 8
    specs = {s.name: s for s in NODES["scene_graph_node"]}
    for k, v in values.items():
        assert k in specs, f"{k} is not a declared parameter"
        assert specs[k].check(v) is None, specs[k].check(v)
        assert v == specs[k].default, f"{k}: the shipped YAML should state the node's default"


def test_plan_defaults_and_overrides():
    camera, graph = launch_plan.plan({})
    assert (camera.package, camera.executable, camera.name, camera.namespace) == \
        ("usb_cam", "usb_cam_node_exe", "camera", "/vsgg")
    assert camera.parameters == {"video_device": "/dev/video0", "frame_id": "camera"}
    assert camera.remappings == graph.remappings == (("image_raw", "image_raw"),)
    assert graph.lifecycle and graph.fqn == "/vsgg/scene_graph_node" and graph.parameters == {}
    assert Path(graph.params_file) == PARAMS

    camera, graph = launch_plan.plan({"camera": "video_source_node", "video": "0", "rate_hz": "30", "loop": "True",
                                      "namespace": "/r1/", "image_topic": "/cam/image", "model": "none",
                                      "max_frame_age_s": "2"})
    assert camera.parameters == {"source": "0", "frame_id": "camera", "rate_hz": 30.0, "loop": True}
    assert camera.namespace == "/r1" and camera.remappings == (("image_raw", "/cam/image"),)
    assert graph.parameters == {"model": "none", "max_frame_age_s": 2.0}
    _, graph = launch_plan.plan({"publish_overlay": "true"})
    assert graph.parameters == {"publish_overlay": True}
    args = launch_plan.ros_arguments(camera)
    assert args[:5] == ["--ros-args", "-r", "__node:=camera", "-r", "__ns:=/r1"]
    assert "source:='0'" in args and "rate_hz:=30.0" in args and "loop:=true" in args  # '0' stays text
    assert ["--params-file", str(PARAMS)] == launch_plan.ros_arguments(graph)[5:7]


@pytest.mark.parametrize("values, field", [
    ({"speed": "1"}, "speed"),
    ({"camera": "kinect"}, "camera"),
    ({"camera": "video_source_node"}, "video"),
    ({"camera": "video_source_node", "video": VIDEO, "rate_hz": "fast"}, "rate_hz"),
    ({"camera": "video_source_node", "video": VIDEO, "loop": "yes"}, "loop"),
    ({"camera": "video_source_node", "video": VIDEO, "width": "-5"}, "width"),
    ({"max_frame_age_s": "abc"}, "max_frame_age_s"),
    ({"max_frame_age_s": "-1"}, "max_frame_age_s"),
    ({"namespace": "a b"}, "namespace"),
    ({"image_topic": "cam/1x"}, "image_topic"),
    ({"camera": "usb_cam", "width": "wide"}, "width"),
    ({"publish_overlay": "yes"}, "publish_overlay"),
])
def test_bad_arguments_are_refused_by_name(values, field):
    with pytest.raises(ValueError, match=rf"^{field}:"):
        launch_plan.plan(values)


def test_missing_params_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="params_file"):
        launch_plan.plan({"params_file": str(tmp_path / "nope.yaml")})


@pytest.mark.parametrize("value, text", [(True, "true"), (3, "3"), (2.0, "2.0"), ("0", "'0'"), ("it's", "'it''s'")])
def test_yaml_scalar_round_trips_through_yaml(value, text):
    assert launch_plan.yaml_scalar(value) == text
    assert yaml.safe_load(text) == value and type(yaml.safe_load(text)) is type(value)


def test_overlay_needs_image_input():
    """publish_overlay with input 'detections' (no pixels) is a conflict the node refuses at configure, by name."""
    defaults = {s.name: s.default for s in NODES["scene_graph_node"]}
    assert scene_graph_conflicts(defaults) == []
    assert scene_graph_conflicts(defaults | {"publish_overlay": True}) == []
    assert scene_graph_conflicts(defaults | {"input": "detections"}) == []
    (reason,) = scene_graph_conflicts(defaults | {"input": "detections", "publish_overlay": True})
    assert reason.startswith("publish_overlay: needs input 'image'")
