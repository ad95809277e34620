"""node_engine.build_engine: the object vocabulary of a tracking-only node (model 'none') follows its class map."""
from vsgg_nodes.node_engine import build_engine
from vsgg_nodes.node_params import SCENE_GRAPH_NODE


def values(**kw) -> dict:
    return {s.name: s.default for s in SCENE_GRAPH_NODE} | {"input": "detections", "model": "none"} | kw


def test_tracking_only_objects_are_the_class_maps_targets():
    engine, class_index = build_engine(values())  # the default class map, coco_to_meva
    assert "vehicle" in engine.objects.names and "bag" in engine.objects.names
    assert class_index("car") == engine.objects.index("vehicle")
    assert class_index("handbag") == engine.objects.index("bag")
    assert class_index("toilet") is None


def test_tracking_only_without_class_map_uses_detector_names():
    engine, class_index = build_engine(values(class_map=""))
    assert class_index("car") == engine.objects.index("car")  # vidvrd_objects has 'car'
    assert class_index("vehicle") is None
