"""P×K batches: K crops of each of P babies, seeded, crops in range, padding as SpeechBrain."""

import numpy as np
import pytest

from cryprint.data.audio import SAMPLE_RATE
from cryprint.data.batches import CropBatches, PKSampler, pad_batch, random_crop
from cryprint.data.corpus import Recording
from cryprint.errors import DataError


def _recording(baby: int, seconds: float, value: int) -> Recording:
    samples = np.full(int(seconds * SAMPLE_RATE), value, dtype=np.int16)
    return Recording(
        f"{baby:04d}", "B", "train", (samples[: len(samples) // 2], samples[len(samples) // 2 :])
    )


def test_sampler_gives_k_crops_of_p_babies() -> None:
    sampler = PKSampler(num_babies=23, babies_per_batch=4, crops_per_baby=3, seed=1)
    batches = sampler.epoch(0)
    assert len(batches) == len(sampler) == 5
    seen = []
    for labels in batches:
        values, counts = np.unique(labels, return_counts=True)
        assert len(values) == 4 and (counts == 3).all()
        seen.extend(values)
    assert len(seen) == len(set(seen))  # no baby twice in an epoch


def test_sampler_is_seeded_per_epoch() -> None:
    a = PKSampler(20, 4, 2, seed=5)
    b = PKSampler(20, 4, 2, seed=5)
    assert all((x == y).all() for x, y in zip(a.epoch(3), b.epoch(3), strict=True))
    assert any((x != y).any() for x, y in zip(a.epoch(3), a.epoch(4), strict=True))


def test_processes_get_different_babies() -> None:
    ranks = [PKSampler(40, 4, 2, seed=0, rank=r, world_size=2) for r in range(2)]
    first, second = (set(np.concatenate(s.epoch(0))) for s in ranks)
    assert first and second and not first & second


@pytest.mark.parametrize(
    ("p", "k", "message"), [(4, 1, "at least 2"), (1, 4, "at least 2"), (40, 2, "fewer")]
)
def test_sampler_rejects_bad_shapes(p: int, k: int, message: str) -> None:
    with pytest.raises(DataError, match=message):
        PKSampler(20, p, k)


def test_crop_lengths_and_short_recordings() -> None:
    rng = np.random.default_rng(0)
    long = _recording(0, 10.0, 100)
    for _ in range(20):
        assert len(random_crop(long, 3 * SAMPLE_RATE, rng)) == 3 * SAMPLE_RATE
    short = _recording(1, 1.5, 100)
    assert len(random_crop(short, 3 * SAMPLE_RATE, rng)) == short.num_samples


def test_batch_crops_share_one_length_in_range() -> None:
    groups = [[_recording(i, 6.0, i + 1)] for i in range(8)]
    lengths = set()
    for batch in CropBatches(groups, PKSampler(8, 2, 3, seed=1), 1.0, 2.0).epoch(0):
        assert batch.lengths.eq(1.0).all()  # no padding: every recording is long enough
        assert SAMPLE_RATE <= batch.waveforms.shape[1] <= 2 * SAMPLE_RATE
        lengths.add(batch.waveforms.shape[1])
    assert len(lengths) > 1  # the length is drawn per batch


def test_pad_batch_relative_lengths() -> None:
    waveforms, lengths = pad_batch([np.ones(100, np.float32), np.ones(50, np.float32)])
    assert waveforms.shape == (2, 100)
    assert lengths.tolist() == [1.0, 0.5]
    assert waveforms[1, 50:].abs().sum() == 0


def test_crop_batches_follow_labels_and_seed() -> None:
    groups = [[_recording(i, 6.0, i + 1)] for i in range(8)]
    sampler = PKSampler(8, 2, 3, seed=9)
    batches = CropBatches(groups, sampler, 1.0, 2.0)
    first = list(batches.epoch(0))
    again = list(CropBatches(groups, PKSampler(8, 2, 3, seed=9), 1.0, 2.0).epoch(0))
    assert len(first) == 4
    for batch, repeat in zip(first, again, strict=True):
        assert batch.waveforms.equal(repeat.waveforms)
        # each crop comes from its labelled baby's recording (constant value label+1)
        for row, label in enumerate(batch.labels.tolist()):
            valid = int(batch.lengths[row] * batch.waveforms.shape[1])
            values = (batch.waveforms[row, :valid] * 32768).round().unique().tolist()
            assert values == [label + 1]
