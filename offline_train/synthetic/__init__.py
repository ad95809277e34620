"""Synthetic trajectory world: seeded VidVRD-format videos whose relation labels come from checkable rules.

This is how the default relation model learns when no real benchmark or detector is available. Pipeline per video
(``generate.generate``)::

    scenario.sample_scenario   setting (street, park, pasture, savanna, zoo, home, terrarium, water, airfield,
                               railway), its camera, K agents with solo / pairwise behaviours
    world.simulate             ground-plane dynamics -> WorldStates (T, K) in metres and m/s
    camera.project_boxes       pinhole projection of each agent's upright 3D box -> image boxes (xyxy px)
    camera.visible_boxes       clipping and occlusion by nearer objects -> NaN where an annotator sees nothing
    rules + labelling          per-frame predicates (definitions and thresholds: the table in ``rules.py``)
    engine.io.vidvrd              [begin, end) relation instances, official VidVRD JSON

Categories (``categories.py``): the 35 VidVRD objects, each with a 3D size, walk/run speeds and a locomotion kind:

=========  ==================================================================================================
legged     person, dog, domestic_cat, horse, cattle, sheep, antelope, zebra, elephant, lion, tiger, bear, fox,
           giant_panda, red_panda, monkey, rabbit, squirrel, hamster; bird (also flies)
creeper    snake, lizard, turtle
swimmer    whale (water settings)
vehicle    car, bus, train, motorcycle, bicycle, skateboard, watercraft; airplane (also flies)
object     ball (rolled), frisbee (thrown, flies), sofa (static; people and pets sit or lie on it)
=========  ==================================================================================================

Motion (``world.py``, ``scenario.py``): static (idle with a posture), walk / run / creep / swim about, drive
across, fly (birds, airplanes, frisbees), and pair behaviours follow, chase (the other flees), approach, depart,
pass, with (side by side), ride (person or monkey on horse, elephant, bicycle, motorcycle, skateboard) and rest (on a
sofa). A moving agent may stop part-way, a still one set off, a bird land or take off.

Determinism: a video is a function of ``(SynthConfig, seed, split, index)``; the same arguments give byte-identical
JSON. The detection simulator (jitter, misses, false positives) is the VidVRD replay source of ``engine.io.sources``
(``generate.replay`` wraps it); this package writes clean ground truth only.

Command line: ``vsgg synth --out DIR --videos N --seed S [--frames T]`` (``offline_train/synthetic_cli.py``).
"""
from offline_train.synthetic.generate import (SynthConfig, SyntheticVideo, generate, generate_video,
                                              predicate_counts, replay, write_dataset)

__all__ = ["SynthConfig", "SyntheticVideo", "generate", "generate_video", "predicate_counts", "replay",
           "write_dataset"]
