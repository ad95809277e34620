"""`--source synthetic:SEED` streams through generated videos that have no visible object (the crash at seed 7,
frame 2,550) and the engine runs on across them."""
import itertools

from engine.config import EngineConfig
from engine.io.streams import open_stream
from engine.runtime import Engine
from engine.vocab import builtin
from offline_train.synthetic.generate import SynthConfig, generate_video

OBJECTS = builtin("vidvrd_objects")


def test_seed_7_streams_across_its_empty_video():
    cfg = SynthConfig(max_agents=3)                      # what open_stream uses by default
    assert len(generate_video(cfg, 7, 17, "test").tids) == 0   # video 17 (frames 2550-2699) has no object
    assert len(generate_video(cfg, 7, 16, "test").tids) > 0
    stream = open_stream("synthetic:7", OBJECTS)
    eng = Engine(EngineConfig(), OBJECTS)
    entities, dets_in_empty = [], 0
    for f, t, d in itertools.islice(stream.frames, 2400, 2760):
        res = eng.step(d, t)
        entities.append(len(res.graph.entities))
        if 2550 <= f < 2700:
            dets_in_empty += len(d)
    assert f == 2759
    # the empty video still carries false positives (Poisson 0.1 per frame) and the engine holds nothing for long
    assert 3 <= dets_in_empty <= 40
    assert max(entities[:150]) > 0 and entities[150 + 60] == 0 and max(entities[300:]) > 0
