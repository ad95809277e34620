"""RunReport: constant memory over any run length (reservoir percentiles), and a final status line that shows the
final figures."""
import io
from types import SimpleNamespace

import numpy as np

from engine.cli.run_report import RESERVOIR_SIZE, Reservoir, RunReport
from engine.runtime import STAGES


def fake_result(ms: float, entities: int = 2):
    return SimpleNamespace(timings_ms={**{s: ms / len(STAGES) for s in STAGES}, "total": ms},
                           graph=SimpleNamespace(entities=range(entities), relations=()), changes=())


def test_reservoir_is_bounded_and_its_percentiles_follow_the_stream():
    r = Reservoir(4000, seed=1)   # p95 sampling error ~0.35 here: the bound below is ~6 standard errors
    rng = np.random.default_rng(0)
    data = rng.exponential(5.0, 200_000)
    for v in data:
        r.add(v)
    s = r.sample()
    assert len(s) == 4000 and r.seen == 200_000
    assert abs(np.percentile(s, 50) - np.percentile(data, 50)) < 0.5
    assert abs(np.percentile(s, 95) - np.percentile(data, 95)) < 2.0
    # the sample reaches into the end of the stream (a "first N values" buffer would not)
    late = Reservoir(100, seed=0)
    for v in range(10_000):
        late.add(float(v))
    assert late.sample().max() > 5_000


def test_report_memory_does_not_grow_with_run_length():
    rep = RunReport(live=False)
    for i in range(3 * RESERVOIR_SIZE):
        rep.add(fake_result(1.0 + (i % 7)))
    assert all(len(r.sample()) == RESERVOIR_SIZE for r in rep.stage_ms.values())
    f = rep.figures()
    assert f["frames"] == 3 * RESERVOIR_SIZE and 1.0 <= f["total_ms_median"] <= 7.0


def test_final_status_line_shows_the_last_frame():
    out = io.StringIO()
    rep = RunReport(live=True, every_s=3600, stream=out)   # only the first frame would be drawn live
    for _ in range(25):
        rep.add(fake_result(2.0, entities=5))
    rep.finish()
    last = out.getvalue().rstrip("\n").split("\r")[-1]
    assert "frame     25" in last and "entities   5" in last and out.getvalue().endswith("\n")
