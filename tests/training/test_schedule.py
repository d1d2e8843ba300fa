"""Learning-rate schedules: each curve against its formula, a resumed run continues the curve
bit for bit, and the run tells when it stopped while still learning."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import torch

from cryprint.data.corpus import Corpus
from cryprint.errors import ConfigError
from cryprint.training import trainer
from cryprint.training.config import make_config
from cryprint.training.learning_curve import format_duration, seconds_left, still_learning
from cryprint.training.schedule import build_scheduler, step_scheduler
from cryprint.training.trainer import train
from tiny_recipe import TINY_TRAINING as TINY


def _rates(schedule: str, epochs: int, **options: object) -> list[float]:
    """The learning rate of each epoch, as the trainer steps the schedule."""
    config = make_config({"schedule": schedule, "epochs": epochs, "learning_rate": 0.01, **options})
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([weight], lr=config.lr)
    scheduler = build_scheduler(optimizer, config)
    rates = []
    for _ in range(epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        step_scheduler(scheduler, validation_loss=1.0)
    return rates


def test_cosine_warms_up_then_follows_the_cosine_to_the_floor() -> None:
    rates = _rates("cosine", 12, warmup_epochs=2, lr_floor=0.05)
    assert rates[:3] == pytest.approx([0.001, 0.0055, 0.01])  # linear from a tenth
    floor, decay = 0.01 * 0.05, 10
    expected = [floor + (0.01 - floor) * (1 + math.cos(math.pi * k / decay)) / 2 for k in range(10)]
    assert rates[2:] == pytest.approx(expected)


def test_exponential_decays_geometrically_to_the_floor() -> None:
    rates = _rates("exponential", 10, warmup_epochs=0, lr_floor=0.01)
    assert rates == pytest.approx([0.01 * 0.01 ** (k / 10) for k in range(10)])


def test_onecycle_rises_then_falls_to_the_floor() -> None:
    rates = _rates("onecycle", 20, lr_floor=0.01)
    peak = rates.index(max(rates))
    assert rates[0] == pytest.approx(0.01 / 25) and max(rates) == pytest.approx(0.01, rel=0.05)
    assert 4 <= peak <= 7  # 30 % of the run
    assert rates[-1] < 0.01 * 0.05 and rates == sorted(rates[: peak + 1]) + rates[peak + 1 :]


def test_plateau_keeps_the_rate_until_the_loss_stalls() -> None:
    assert _rates("plateau", 5, plateau_patience=8) == [0.01] * 5
    assert _rates("plateau", 5, plateau_patience=1)[-1] < 0.01  # a flat loss: it halves


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"schedule": "linear"}, "schedule must be one of"),
        ({"lr_floor": 0}, "lr_floor"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
    ],
)
def test_bad_schedules_are_refused(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(values)


def _digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode() + value.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("schedule", ["cosine", "exponential", "onecycle"])
def test_a_resumed_run_continues_the_schedule_bit_for_bit(
    small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schedule: str
) -> None:
    corpus = Corpus(small_corpus, splits=("train",))

    def config(run: str, **changes: object):
        values = {**TINY, "data": str(small_corpus), "run": str(tmp_path / run)}
        return make_config({**values, "epochs": 3, "schedule": schedule, **changes})

    whole = train(config("whole"), quiet=True, corpus=corpus)
    saving = trainer.save_epoch

    def stop_after_two(state, run, config, metrics) -> None:
        saving(state, run, config, metrics)
        if metrics.epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "save_epoch", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        train(config("parts"), quiet=True, corpus=corpus)
    monkeypatch.setattr(trainer, "save_epoch", saving)
    resumed = train(config("parts"), resume=True, quiet=True, corpus=corpus)
    assert _digest(resumed.model) == _digest(whole.model)
    rates = [row["learning_rate"] for row in resumed.history]
    assert rates == [row["learning_rate"] for row in whole.history]
    # The schedule is planned over the epochs: a resumed run may not change them.
    with pytest.raises(ConfigError, match="epochs"):
        train(config("parts", epochs=5), resume=True, quiet=True, corpus=corpus)


def _history(eers: list[float], seconds: float = 10.0) -> list[dict]:
    return [
        {"epoch": epoch, "validation_eer": eer, "seconds": seconds}
        for epoch, eer in enumerate(eers)
    ]


def test_a_run_still_learning_says_so() -> None:
    falling = _history([0.30, 0.25, 0.22, 0.20, 0.18, 0.16, 0.14, 0.12])
    note = still_learning(falling)
    assert note is not None and "still learning" in note and "2.00 points per epoch" in note
    flat = _history([0.30, 0.25, 0.20, 0.15, 0.150, 0.151, 0.149, 0.150])
    assert still_learning(flat) is None
    rebounding = _history([0.30, 0.25, 0.20, 0.15, 0.10, 0.06, 0.08, 0.09])  # best 2 back
    assert still_learning(rebounding) is None
    assert still_learning(falling[:5]) is None  # too short to tell


def test_the_time_left_comes_from_the_epochs_so_far() -> None:
    assert seconds_left(_history([0.3, 0.2, 0.1], seconds=30.0), epochs=10) == 30.0 * 8
    assert seconds_left(_history([0.3]), epochs=10) is None  # epoch 0 only: nothing to go by
    assert [format_duration(s) for s in (40, 600, 9000)] == ["40 s", "10 min", "2.5 h"]
