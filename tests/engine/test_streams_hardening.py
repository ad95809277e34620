"""engine.io.streams: source options, camera indices, seqinfo.ini and the --zmq endpoint give clear errors."""
import pytest

from engine.io.streams import _seqinfo, open_stream, parse_zmq_endpoint
from engine.vocab import builtin

OBJECTS = builtin("vidvrd_objects")
DET = "1,-1,0,0,10,20,0.9\n2,-1,0,0,10,20,0.9\n"


@pytest.fixture
def det(tmp_path):
    p = tmp_path / "det.txt"
    p.write_text(DET)
    return p


@pytest.mark.parametrize("fps", [0, -5, 0.0, float("nan"), float("inf"), True, "30"])
def test_bad_fps_is_refused_not_replaced(det, fps):
    with pytest.raises(ValueError, match=r"fps \(--fps\): must be a finite number of frames per second > 0"):
        open_stream(f"mot:{det}", OBJECTS, fps=fps, image_wh=(640, 480))


@pytest.mark.parametrize("wh", [(0, 0), (640, 0), (-1, 480), (640.5, 480), (640,), "640x480", (True, 480)])
def test_bad_image_size_is_named(det, wh):
    with pytest.raises(ValueError, match=r"image_wh \(--image-size\): expected width and height as two integers"):
        open_stream(f"mot:{det}", OBJECTS, image_wh=wh)


def test_good_options_open_and_the_frame_gap_reaches_the_reader(det, tmp_path):
    s = open_stream(f"mot:{det}", OBJECTS, fps=12.5, image_wh=(640, 480))
    assert (s.fps, s.image_wh, s.length) == (12.5, (640, 480), 2)
    assert s.info["dropped"] == {"duplicates": 0, "zero_area": 0}
    far = tmp_path / "far.txt"
    far.write_text("1,-1,0,0,10,20,0.9\n60,-1,0,0,10,20,0.9\n")
    assert open_stream(f"mot:{far}", OBJECTS, image_wh=(640, 480)).length == 60
    with pytest.raises(ValueError, match="58 frames without detections .* more than max_frame_gap=50"):
        open_stream(f"mot:{far}", OBJECTS, image_wh=(640, 480), max_frame_gap=50)
    with pytest.raises(ValueError, match=r"max_frame_gap: must be an integer >= 1 \(frames\), got 0"):
        open_stream(f"mot:{far}", OBJECTS, image_wh=(640, 480), max_frame_gap=0)


def test_unknown_image_size_says_why(det):
    with pytest.raises(ValueError, match=r"image size unknown \(no seqinfo.ini next to it or one folder up\); "
                                         r"pass --image-size WxH"):
        open_stream(f"mot:{det}", OBJECTS)


@pytest.mark.parametrize("arg", ["abc", "-1", "", " 0", "1.5"])
def test_camera_index_must_be_a_number(arg):
    with pytest.raises(ValueError, match=rf"source camera:{arg}: expected a camera index \(a non-negative integer"):
        open_stream(f"camera:{arg}", OBJECTS)


@pytest.mark.parametrize("text, match", [
    ("[Sequence]\nframeRate=fast\n", r"frameRate must be a number, got 'fast'"),
    ("[Sequence]\nseqLength=-3\n", r"seqLength must be >= 0, got '-3'"),
    ("[Sequence]\nimWidth=640.5\n", r"imWidth must be a number, got '640.5'"),
    ("[Other]\nx=1\n", r"no \[Sequence\] section"),
    ("frameRate=30\n", r"not a valid INI file \(File contains no section headers"),
])
def test_malformed_seqinfo_is_named(tmp_path, det, text, match):
    (tmp_path / "seqinfo.ini").write_text(text)
    with pytest.raises(ValueError, match=rf"seqinfo .*seqinfo\.ini: {match}"):
        _seqinfo(det)


def test_binary_seqinfo_is_named(tmp_path, det):
    (tmp_path / "seqinfo.ini").write_bytes(b"[Sequence]\n\x89PNG\x00\xff")
    with pytest.raises(ValueError, match=r"seqinfo .*seqinfo\.ini: not UTF-8 text"):
        open_stream(f"mot:{det}", OBJECTS)


def test_seqinfo_values_are_used(tmp_path, det):
    (tmp_path / "seqinfo.ini").write_text("[Sequence]\nframeRate=25\nseqLength=4\nimWidth=320\nimHeight=240\n")
    s = open_stream(f"mot:{det}", OBJECTS)
    assert (s.fps, s.image_wh, s.length) == (25.0, (320, 240), 4)


@pytest.mark.parametrize("text, pub, snap", [
    ("tcp://127.0.0.1:5556", "tcp://127.0.0.1:5556", "tcp://127.0.0.1:5557"),
    ("tcp://*:7000", "tcp://*:7000", "tcp://*:7001"),
    ("tcp://robot-3.local:1", "tcp://robot-3.local:1", "tcp://robot-3.local:2"),
    ("tcp://[::1]:65534", "tcp://[::1]:65534", "tcp://[::1]:65535"),
    ("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", "tcp://127.0.0.1:*"),
])
def test_zmq_endpoint(text, pub, snap):
    assert parse_zmq_endpoint(text) == (pub, snap)


@pytest.mark.parametrize("text, match", [
    ("garbage", r"--zmq: expected tcp://HOST:PORT \(e\.g\. tcp://127\.0\.0\.1:5556\) or tcp://HOST:\*, got 'garbage'"),
    ("tcp://127.0.0.1:http", r"expected tcp://HOST:PORT .* got 'tcp://127\.0\.0\.1:http'"),
    ("tcp://127.0.0.1", r"expected tcp://HOST:PORT .* got 'tcp://127\.0\.0\.1'"),
    ("tcp://:5556", r"expected tcp://HOST:PORT .* got 'tcp://:5556'"),
    ("tcp://host name:5556", r"expected tcp://HOST:PORT .* got 'tcp://host name:5556'"),
    ("ipc:///tmp/x", r"expected tcp://HOST:PORT .* got 'ipc:///tmp/x'"),
    ("tcp://127.0.0.1:65535", r"--zmq: port must be 1-65534 \(snapshots use port \+ 1\), got 65535"),
    ("tcp://127.0.0.1:0", r"--zmq: port must be 1-65534 .* got 0 in"),
])
def test_bad_zmq_endpoint(text, match):
    with pytest.raises(ValueError, match=match):
        parse_zmq_endpoint(text)
    with pytest.raises(TypeError, match="--zmq: expected a string, got int"):
        parse_zmq_endpoint(5556)
