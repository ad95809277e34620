"""offline_train.loop: crops that miss every co-present pair, and epochs with nothing to train on."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from offline_train.clips import VideoClip  # noqa: E402
from offline_train.config import OptimConfig  # noqa: E402
from offline_train.loop import LossSpec, _crop_with_pairs, train_one_epoch  # noqa: E402
from offline_train.train import load_model  # noqa: E402


def clip(present_frames, t_len=100, f=29, c=132):
    present = np.zeros((t_len, 2), bool)
    present[present_frames] = True
    z = np.zeros(2, np.int64)
    return VideoClip("v", np.zeros((t_len, 2, f), np.float32), present, np.array([0, 1]), np.array([1, 0]), z, z,
                     np.zeros((t_len, 2, c), bool))


def test_crop_keeps_a_start_with_pairs_and_moves_one_without():
    c = clip([70, 71, 72])
    assert _crop_with_pairs(c, 50, 32) == 50       # [50, 82) holds frame 70
    assert _crop_with_pairs(c, 0, 32) == 70 - 16    # centred on the nearest frame with a pair
    assert _crop_with_pairs(clip([99]), 0, 32) == 100 - 32  # clamped to the video
    assert _crop_with_pairs(clip([]), 10, 32) is None


def test_epoch_without_any_pair_is_a_clear_error(tiny_run):
    out, _ = tiny_run
    model, meta = load_model(out / "best")
    f = model.tokenizer.feat_mean.shape[-1]
    opt = torch.optim.AdamW(model.parameters())
    with pytest.raises(ValueError, match="no pair to train on"):
        train_one_epoch(model, [clip([], f=f, c=len(meta.predicates))], opt, np.random.default_rng(0),
                        OptimConfig(clip_len=32, videos_per_step=1, warmup_steps=0), LossSpec(meta.groups), step=0,
                        total_steps=1, epoch=1, progress=False)
