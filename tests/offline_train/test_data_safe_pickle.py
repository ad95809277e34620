"""The restricted unpickler: dataset pickles load at every protocol, anything that names other code is refused."""
import os
import pickle
import warnings

import numpy as np
import pytest

from offline_train.data.safe_pickle import UnsafePickleError, load_safe_pickle, loads_safe_pickle

SAMPLE = {"a.mp4/000001.png": {"bbox": np.arange(8, dtype=np.float32).reshape(2, 4), "bbox_size": (480, 270),
                               "bbox_score": np.float32(0.5), "bbox_mode": "xyxy", "n": 3, "empty": b"",
                               "tags": {"x", "y"}, "none": None, "obj": np.array(["a", 1], dtype=object)}}


class _System:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


class _Plain:
    pass


class _Eval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_round_trip_every_protocol(protocol):
    back = loads_safe_pickle(pickle.dumps(SAMPLE, protocol=protocol))
    d, s = back["a.mp4/000001.png"], SAMPLE["a.mp4/000001.png"]
    assert d["bbox"].dtype == np.float32 and np.array_equal(d["bbox"], s["bbox"])
    assert d["bbox_score"] == np.float32(0.5) and d["bbox_size"] == (480, 270) and d["tags"] == {"x", "y"}
    assert d["empty"] == b"" and list(d["obj"]) == ["a", 1]


def test_numpy1_global_names_load_without_warnings():
    data = pickle.dumps(SAMPLE, protocol=2).replace(b"cnumpy._core.", b"cnumpy.core.")
    assert b"numpy.core.multiarray" in data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = loads_safe_pickle(data)
    assert np.array_equal(back["a.mp4/000001.png"]["bbox"], SAMPLE["a.mp4/000001.png"]["bbox"])


def test_os_system_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "person_bbox.pkl"
    path.write_bytes(pickle.dumps({"k": _System(f"touch {marker}")}))
    with pytest.raises(UnsafePickleError, match=r"person_bbox.pkl: refusing to load global '(posix|nt|os)\.system'"):
        load_safe_pickle(path)
    assert not marker.exists()
    assert issubclass(UnsafePickleError, ValueError)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_eval_and_getattr_are_refused(protocol):
    with pytest.raises(UnsafePickleError, match=r"(__builtin__|builtins)\.eval"):
        loads_safe_pickle(pickle.dumps(_Eval(), protocol=protocol))
    crafted = b"cbuiltins\ngetattr\n(cbuiltins\nobject\nS'__subclasses__'\ntR."
    with pytest.raises(UnsafePickleError, match="builtins.getattr"):
        loads_safe_pickle(crafted)


def test_arbitrary_classes_are_refused():
    with pytest.raises(UnsafePickleError, match="_Plain"):
        loads_safe_pickle(pickle.dumps([1, _Plain()]))


def test_persistent_ids_are_refused():
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return "x" if obj == "secret" else None

    import io
    buf = io.BytesIO()
    P(buf, protocol=2).dump(["secret"])
    with pytest.raises(UnsafePickleError, match="persistent"):
        loads_safe_pickle(buf.getvalue())


def test_corrupt_and_missing_files(tmp_path):
    data = pickle.dumps(SAMPLE, protocol=4)
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.pkl: not a valid pickle"):
        load_safe_pickle(path)
    (tmp_path / "text.pkl").write_text("hello")
    with pytest.raises(ValueError, match="text.pkl: not a valid pickle"):
        load_safe_pickle(tmp_path / "text.pkl")
    with pytest.raises(FileNotFoundError):
        load_safe_pickle(tmp_path / "missing.pkl")
