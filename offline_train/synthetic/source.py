"""`--source synthetic:SEED` for `vsgg run`: an endless stream of generated videos seen through the detection
simulator (registered in the ``vsgg.sources`` entry-point group, so engine/ never imports this package).

Videos ``(SEED, 'test', 0), (SEED, 'test', 1), ...`` follow each other with time running on; each one's objects
are new, so tracks are born and die at every cut, which is what long-run boundedness tests need.
"""
from __future__ import annotations

import itertools

from engine.io.sources import VidvrdReplay
from engine.io.streams import Stream
from engine.vocab import Vocabulary
from offline_train.synthetic.generate import SynthConfig, generate_video

DETECTION_NOISE = {"jitter": 0.03, "drop_prob": 0.05, "false_positives": 0.1}


def _frames(seed: int, objects: Vocabulary, cfg: SynthConfig):
    frame = 0
    for index in itertools.count():
        ann = generate_video(cfg, seed, index, "test")
        for _, t, dets in VidvrdReplay(ann, objects, seed=seed * 1_000_003 + index, **DETECTION_NOISE):
            yield frame, frame / cfg.fps, dets
            frame += 1


def open_stream(arg: str, objects: Vocabulary, options: dict) -> Stream:
    try:
        seed = int(arg)
    except ValueError:
        raise ValueError(f"source synthetic:{arg}: the argument must be an integer seed") from None
    if seed < 0:
        raise ValueError(f"source synthetic:{arg}: the seed must be >= 0")
    cfg = SynthConfig(max_agents=options.get("max_agents", 3))
    return Stream(_frames(seed, objects, cfg), (cfg.width, cfg.height), cfg.fps, False, None, f"synthetic:{seed}")
