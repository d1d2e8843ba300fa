"""Whose cry is this? The ward's answer end to end: probabilities that sum to one, an answer that
never disagrees with them (text, JSON, API), the stranger threshold, AS-norm kept per gallery."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cryprint.cli import main
from cryprint.errors import ConfigError
from cryprint.evaluation.calibrate_model import calibrate_model
from cryprint.evaluation.evaluate import evaluate
from cryprint.inference.api import CryPrint
from cryprint.inference.options import EmbeddingOptions
from cryprint.scoring.open_set import NAMED, NONE_OF_THESE, REVIEW, UNCERTAIN, WardRule
from cryprint.ward.enrol import enrol
from cryprint.ward.identify import WardQuestion, identify

BABIES = ("anonymous000", "anonymous001", "anonymous002")


def _recording(corpus: Path, baby_id: str, period: str) -> Path:
    (folder,) = corpus.glob(f"audio/*/{baby_id}/{period}")
    return folder


@pytest.fixture(scope="module")
def ward(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny model evaluated on dev (thresholds, cohort, different-baby scores), calibrated,
    and a gallery of three babies' birth cries."""
    import torch

    from cryprint.models.ecapa import CryEmbedder, ModelConfig
    from cryprint.models.folder import save_model_folder

    root = tmp_path_factory.mktemp("ward")
    torch.manual_seed(11)
    model = save_model_folder(CryEmbedder(ModelConfig.small(16)).eval(), root / "model")
    evaluate([model], small_corpus, "dev", root / "evaluation")
    calibrate_model(model, small_corpus)
    gallery = root / "ward.db"
    embedder = CryPrint(model, store=root / "store.sqlite")
    for baby in BABIES:
        enrol(embedder, gallery, baby, [_recording(small_corpus, baby, "B")])
    return {"model": model, "gallery": gallery, "embedder": embedder, "corpus": small_corpus}


def test_probabilities_sum_to_one_and_follow_the_scores(ward: dict) -> None:
    cry = _recording(ward["corpus"], BABIES[1], "D")
    result = identify(ward["embedder"], ward["gallery"], cry)
    probabilities = [c.probability for c in result.candidates]
    assert math.isclose(sum(probabilities) + result.p_none, 1.0, abs_tol=1e-9)
    # Evenly spread prior, one calibration: a higher score is a higher probability.
    assert probabilities == sorted(probabilities, reverse=True)
    assert result.enrolled_prior == 0.9 and result.probabilities.startswith("from ")
    assert result.scoring == ward["embedder"].scoring


def test_the_answer_never_disagrees_with_the_probabilities_on_a_grid(
    ward: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    """Text, JSON and the API give one answer, and it is the rule's answer for the printed
    probabilities, whatever the levels and the prior."""
    base = ["identify", "--gallery", str(ward["gallery"]), "--model", str(ward["model"])]
    kinds = set()
    for baby in BABIES:
        cry = _recording(ward["corpus"], baby, "D")
        for enrolled_prior in ("0.05", "0.5", "0.99"):
            for levels in (("0.5", "0.2"), ("0.9", "0.05"), ("0.3", "0.5")):
                options = [
                    "--enrolled-prior", enrolled_prior,
                    "--min-probability", levels[0], "--review-level", levels[1],
                ]  # fmt: skip
                assert main([*base, *options, str(cry), "--json"]) == 0
                answer = json.loads(capsys.readouterr().out)
                assert main([*base, *options, str(cry)]) == 0
                text = capsys.readouterr().out.splitlines()
                assert text[0] == answer["answer"]["answer"]
                rule = WardRule(float(levels[0]), float(levels[1]))
                question = WardQuestion(enrolled_prior=float(enrolled_prior), rule=rule)
                api = identify(ward["embedder"], ward["gallery"], cry, question)
                assert api.answer.to_dict() == answer["answer"]
                _check(answer, rule)
                kinds.add(answer["answer"]["kind"])
    assert len(kinds) >= 2, kinds  # the grid reaches more than one kind of answer


def _check(result: dict, rule: WardRule) -> None:
    p = {c["baby_id"]: c["probability"] for c in result["candidates"]}
    p_none, answer = result["p_none"], result["answer"]
    close = [b for b, q in p.items() if q >= min(rule.review_level, rule.min_probability)]
    leader = max(p, key=lambda b: (p[b], -BABIES.index(b)))
    if len(close) >= 2:
        assert answer["kind"] == REVIEW
    elif p[leader] >= rule.min_probability:
        assert answer["kind"] == NAMED and answer["baby"] == leader
    elif p_none >= p[leader]:
        assert answer["kind"] == NONE_OF_THESE
    else:
        assert answer["kind"] == UNCERTAIN


def test_a_score_rule_decides_instead_and_is_stated(ward: dict) -> None:
    cry = _recording(ward["corpus"], BABIES[0], "D")
    embedder = ward["embedder"]
    stranger = identify(embedder, ward["gallery"], cry, WardQuestion(max_false_alarm=0.01))
    assert "named at most 1 % of the time among 3 babies" in stranger.threshold_source
    assert stranger.p_none is not None  # the probabilities are still shown
    top = stranger.candidates[0]
    expected = NAMED if top.score >= stranger.threshold else NONE_OF_THESE
    reaching = [c for c in stranger.candidates if c.score >= stranger.threshold]
    assert stranger.answer.kind == (REVIEW if len(reaching) >= 2 else expected)
    high = identify(embedder, ward["gallery"], cry, WardQuestion(threshold=50.0))
    assert high.answer.kind == NONE_OF_THESE and high.threshold_source == "given"
    with pytest.raises(ConfigError, match="threshold and max_false_alarm each set the rule"):
        WardQuestion(threshold=0.5, max_false_alarm=0.1)


def test_without_a_calibration_the_stranger_threshold_decides(ward: dict, tmp_path: Path) -> None:
    calibration = ward["model"] / "calibration.json"
    saved = calibration.read_bytes()
    calibration.unlink()
    try:
        cry = _recording(ward["corpus"], BABIES[2], "D")
        result = identify(CryPrint(ward["model"], store=False), ward["gallery"], cry)
    finally:
        calibration.write_bytes(saved)
    assert result.p_none is None and result.probabilities.startswith("none: ")
    assert "named at most 5 % of the time among 3 babies" in result.threshold_source
    assert all(c.probability is None for c in result.candidates)


def test_a_gallery_keeps_its_scoring(ward: dict, tmp_path: Path) -> None:
    """A gallery enrolled with AS-norm scores refuses raw ones, and the other way round."""
    embedder = ward["embedder"]
    cry = _recording(ward["corpus"], BABIES[0], "D")
    other = EmbeddingOptions(as_norm=not embedder.as_norm)
    with pytest.raises(ConfigError, match="the ward's answers would change meaning"):
        identify(ward["model"], ward["gallery"], cry, embedding=other)


def test_gallery_list_shows_each_enrolment_and_when(
    ward: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gallery", "list", "--gallery", str(ward["gallery"]), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    [first] = listed["babies"][0]["enrolments"]
    assert first["source"].endswith(f"{BABIES[0]}/B") and first["created"].startswith("20")
    assert main(["gallery", "list", "--gallery", str(ward["gallery"])]) == 0
    text = capsys.readouterr().out
    assert f"    {first['created']}  {first['source']}" in text
