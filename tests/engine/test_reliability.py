"""The fast subset of `vsgg bench reliability`: parser fuzzing, live wire fuzzing, two injected faults and a short
soak on real processes and sockets (loopback), plus the suite's own classification and fitting rules."""
import argparse
import json
import random
from pathlib import Path

import pytest

from engine.bench.reliability import check_args
from engine.bench.reliability.cli_cases import outcome
from engine.bench.reliability.faults import run_faults
from engine.bench.reliability.fuzz import classify, run_case, run_fuzz, summarize
from engine.bench.reliability.mutators import MUTATION_CLASSES, case_rng, mutate
from engine.bench.reliability.parser_targets import TARGETS, Target, check_seeds
from engine.bench.reliability.report import verdict
from engine.bench.reliability.soak import growth_mb_per_100k, run_soak
from engine.bench.reliability.wire_live import fuzz_router, fuzz_subscriber
from engine.vocab import check_name

FILE_PARSERS = ("engine_config_yaml", "class_map_yaml", "detector_sidecar_json", "relation_sidecar_json",
                "category_map_json", "category_map_yaml", "vidvrd_json")


def _raised(fn):
    try:
        fn()
    except BaseException as e:  # noqa: BLE001
        return e
    raise AssertionError("did not raise")


def test_classify_tells_clear_errors_from_unclear_ones_and_crashes():
    assert classify(None) == ("accepted", "")
    clear = classify(_raised(lambda: check_name("per\x9bson", "labels file")))
    assert clear[0] == "clear" and "labels file" in clear[1]
    assert classify(_raised(lambda: int("abc")))[0] == "unclear"  # an operation's error, not a check's
    assert classify(_raised(lambda: {}["x"]))[0] == "crash"
    assert classify(RecursionError("deep"))[0] == "crash"


def test_mutations_are_reproducible_and_malformed():
    t = TARGETS["vidvrd_json"]
    valid = t.serialize(t.seed(lambda n: 0))
    for cls in MUTATION_CLASSES:
        a = mutate(t.seed(lambda n: 0), t.serialize, cls, random.Random(f"x/{cls}"))
        b = mutate(t.seed(lambda n: 0), t.serialize, cls, random.Random(f"x/{cls}"))
        assert a == b, cls
        assert a != valid, cls
    deep = mutate(t.seed(lambda n: 0), t.serialize, "deep_nesting", case_rng(0, "vidvrd_json", 3))
    assert deep.count(b"[") + deep.count(b"{") >= 5000 and deep.startswith(b'{"version"')  # nested inside the doc


def test_every_seed_document_is_valid(tmp_path):
    check_seeds(tmp_path)  # else the fuzz would only ever exercise the first check of each parser


def test_a_parser_that_crashes_is_reported_as_a_crash(tmp_path, monkeypatch):
    def fragile(data: bytes, workdir: Path):
        return json.loads(data)["fps"] * 2  # KeyError / TypeError from operations, RecursionError when deep
    monkeypatch.setitem(TARGETS, "fragile", Target("fragile", TARGETS["vidvrd_json"].seed, TARGETS["vidvrd_json"]
                                                   .serialize, fragile))
    recs = [run_case("fragile", i, 0, tmp_path) for i in range(40)]
    s = summarize(recs)
    assert s["outcomes"]["crash"] + s["outcomes"]["unclear"] > 0 and s["outcomes"]["clear"] == 0, s["outcomes"]


@pytest.mark.parametrize("name", FILE_PARSERS)
def test_deeply_nested_files_are_clear_errors(tmp_path, name):
    """The fuzz found RecursionError tracebacks in the config, class-map and both side-car readers."""
    deep = b"[" * 100_000 + b"]" * 100_000
    err = _raised(lambda: TARGETS[name].run(deep, tmp_path))
    assert classify(err)[0] == "clear", (name, repr(err))


def test_a_huge_vocabulary_file_with_duplicates_is_refused(tmp_path):
    """The fuzz found `vsgg` hanging on a 100k-line class file (duplicates were reported in quadratic time)."""
    err = _raised(lambda: TARGETS["vocabulary_file"].run(b"person\ndog\ncar\n" * 50_000, tmp_path))
    assert classify(err)[0] == "clear" and "duplicate entries: ['car', 'dog', 'person']" in str(err)


@pytest.mark.parametrize("edit", [lambda j: j["groups"][0][2].__setitem__(0, float("inf")),
                                  lambda j: j["embedding_tables"]["objects"]["shape"].__setitem__(1, float("inf"))])
def test_infinite_numbers_in_a_model_side_car_are_clear_errors(tmp_path, edit):
    """The fuzz found OverflowError tracebacks (int(inf)) in the relation-model side-car reader."""
    j = json.loads(TARGETS["relation_sidecar_json"].serialize(TARGETS["relation_sidecar_json"].seed(None)))
    edit(j)
    err = _raised(lambda: TARGETS["relation_sidecar_json"].run(json.dumps(j).encode(), tmp_path))
    assert classify(err)[0] == "clear", repr(err)


def test_parser_fuzz_finds_no_crash():
    recs = run_fuzz(None, 6, seed=1)
    s = summarize(recs)
    assert s["cases"] == 6 * len(TARGETS) and set(s["by_target"]) == set(TARGETS)
    assert s["outcomes"]["crash"] == 0 and s["outcomes"]["unclear"] == 0, s["failures"]
    assert s["outcomes"]["clear"] > s["cases"] // 3 and sum(s["by_class"].values()) == s["cases"]


def test_live_wire_fuzz_leaves_service_and_subscriber_working():
    sub = fuzz_subscriber(40, seed=2)
    assert sub["crash"] == 0 and sub["clear"] > 0 and sub["recovered"], sub
    router = fuzz_router(15, seed=2)
    assert router["crash"] == 0 and router["service_alive"] and not router["traceback"], router
    assert router["clear"] >= 10 and router["cases"] == 15 + 3, router  # 3 oversized requests are always sent


def test_kill9_and_lossy_proxy_recover_to_the_engines_graph(tmp_path):
    res = run_faults(tmp_path, ["kill9_restart", "lossy_proxy"], frames=90, fps=45.0, seed=3, model="none")
    by = {r["fault"]: r for r in res}
    assert all(r["recovered"] and not r["tracebacks"] for r in res), res
    assert by["kill9_restart"]["killed_exit"] == -9 and by["kill9_restart"]["watcher"]["snapshots"] >= 2
    assert by["lossy_proxy"]["dropped"] > 0 and by["lossy_proxy"]["graph"]["entities"] > 0


def test_short_soak_ends_on_an_equal_graph(tmp_path):
    s = run_soak(tmp_path, 4.0, seed=4, engine_fps=500, service_fps=300)
    assert s["subscriber_equal_graph"] and not s["tracebacks"], s
    assert all(s[k]["frames"] > 200 and s[k]["growth_mb_per_100k_frames"] is not None
               for k in ("engine", "service", "subscriber")), s


def test_growth_fit_ignores_the_warm_up():
    samples = [{"t": t, "frames": 1000 * t, "rss_kb": 100_000 + (50_000 if t > 2 else 0) + 1024 * t / 100}
               for t in range(10)]  # +50 MB during warm-up, then 1 MB per 100k frames
    assert growth_mb_per_100k(samples, 0.25) == pytest.approx(1.0)
    assert growth_mb_per_100k(samples, 0.0) > 10
    assert growth_mb_per_100k(samples[:2]) is None


def test_cli_outcomes():
    assert outcome(1, "vsgg run: error: --fps must be > 0") == "clear"
    assert outcome(1, "Traceback (most recent call last):\n ValueError: x") == "traceback"
    assert outcome(0, "") == "accepted" and outcome(-9, "") == "crash" and outcome(2, "usage") == "unclear"


def test_verdict_fails_on_each_missed_target():
    good = {"fuzz": {"outcomes": {"crash": 0, "unclear": 0}},
            "faults": [{"recovered": True, "tracebacks": []}],
            "soak": {"tracebacks": [], "max_growth_mb_per_100k_frames": 0.4, "subscriber_equal_graph": True}}
    assert verdict(good)["targets_met"]
    for bad in ({"fuzz": {"outcomes": {"crash": 1, "unclear": 0}}}, {"faults": [{"recovered": False,
                                                                                 "tracebacks": []}]},
                {"soak": dict(good["soak"], max_growth_mb_per_100k_frames=1.5)}):
        assert not verdict({**good, **bad})["targets_met"], bad


@pytest.mark.parametrize("field,value,match", [("phases", "fuzz,bogus", r"--phases: expected"),
                                               ("seconds", 0.0, r"--seconds must be > 0"),
                                               ("cases", -1, r"--cases must be >= 0"),
                                               ("fault_model", "big", r"--fault-model must be")])
def test_bad_arguments_name_the_option(field, value, match):
    args = argparse.Namespace(phases="fuzz", seconds=1.0, cases=1, fault_frames=60, fault_fps=30.0,
                              fault_model="none")
    setattr(args, field, value)
    with pytest.raises(ValueError, match=match):
        check_args(args)
