"""The two-stage abuse head (``second_stage``): a second head separates the labels other than the gate label on
their rows only; it saves, verifies and loads like the others and the shared pass gives its pipeline's numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from classifiers import shared_pass
from classifiers.build import ModelConfig, make_pipeline, train
from classifiers.datasets import Dataset, Example
from classifiers.errors import ConfigError
from classifiers.estimators import TwoStageLinear
from classifiers.persistence import load_artifact
from classifiers.registry import ModelRegistry
from classifiers.shared_pass import SharedPass

CONFIG = ModelConfig(
    C=0.3, calibration_folds=3, char_min_df=1, word_min_df=1, second_stage="neither", second_stage_C=0.5
)
ROWS = {
    "hate": ["all {g} people are vermin", "{g} should be driven out", "get rid of every {g}", "{g} are subhuman filth"],
    "offensive": ["shut up you stupid {x}", "this {x} is trash lol", "what a dumb {x}", "you absolute {x} idiot"],
    "neither": ["where is my {x} order", "thanks for the {x} tips", "lovely {x} today", "how much is the {x}"],
}
FILL = ["cat", "ref", "game", "show", "team", "post"]
GROUPS = ["outsiders", "foreigners", "those people", "immigrants", "them", "newcomers"]


def _dataset() -> Dataset:
    examples = [
        Example(text=template.format(g=group, x=word), label=label, split="train")
        for label, templates in ROWS.items()
        for template in templates
        for group, word in zip(GROUPS, FILL, strict=True)
    ]
    examples += [Example(text="you people are vermin, stupid idiot", label="hate", split="test")]
    return Dataset(path="two-stage", sha256="1" * 64, examples=examples)


def _probe() -> list[str]:
    return [
        "all newcomers are vermin",
        "what a stupid show",
        "where is my parcel",
        "",
        "ＦＲＥＥ stuff!!",
        "vermin idiot order",
        "get rid of this dumb team",
    ]


def test_the_second_head_learns_only_the_other_labels_and_keeps_the_gates_probability(tmp_path: Path) -> None:
    result = train("abuse", _dataset(), name="two-stage", out=tmp_path / "two-stage", config=CONFIG)
    head = result.estimator.named_steps["classify"]
    assert isinstance(head, TwoStageLinear)
    assert list(head.classes_) == ["hate", "neither", "offensive"]
    assert list(head.second_.classes_) == ["hate", "offensive"]  # trained on the non-"neither" rows only
    features = result.estimator[:-1].transform(_probe())
    first = head.first_.predict_proba(features)
    proba = result.estimator.predict_proba(_probe())
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(proba[:, 1], first[:, 1])  # p(neither) is the first head's
    second = head.second_.predict_proba(features)
    np.testing.assert_allclose(proba[:, [0, 2]], (1.0 - first[:, [1]]) * second, atol=1e-12)
    # "all newcomers are vermin" -> hate, "what a stupid show" -> offensive, "where is my parcel" -> neither
    assert [int(proba[i].argmax()) for i in range(3)] == [0, 2, 1]


@pytest.mark.parametrize("dense", [True, False], ids=["direct", "matrix"])
def test_a_two_stage_model_saves_verifies_and_matches_in_the_shared_pass(
    tmp_path: Path, dense: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    train("abuse", _dataset(), name="two-stage", out=tmp_path / "two-stage", config=CONFIG)
    model = load_artifact(tmp_path / "two-stage")
    assert "classifiers.estimators.TwoStageLinear" in model.manifest.trusted_types
    assert model.manifest.config["second_stage"] == "neither"
    if not dense:  # sparse weights: the shared pass builds the TF-IDF matrix instead of scoring directly
        monkeypatch.setattr(shared_pass, "DENSE_WEIGHTS", 0)
    other = ModelRegistry().get("spam-default")
    passes = SharedPass([model, other])
    assert passes.heads[0].two_stage and (passes.heads[0].direct is not None) == dense
    texts = _probe() * 3
    two_stage, spam = passes.predict_proba(texts)
    np.testing.assert_allclose(two_stage, model.predict_proba(texts), atol=1e-6, rtol=0)
    np.testing.assert_allclose(spam, other.predict_proba(texts), atol=1e-6, rtol=0)
    alone = np.concatenate([passes.predict_proba([t])[0] for t in texts])  # batch-invariant
    np.testing.assert_allclose(alone, two_stage, atol=1e-12, rtol=0)


def test_a_second_stage_needs_its_gate_label_two_others_and_no_sentence_head() -> None:
    with pytest.raises(ConfigError, match="second_stage 'neutral' must be one of the training labels"):
        train(
            "abuse",
            _dataset(),
            name="x",
            config=ModelConfig(calibration_folds=3, second_stage="neutral", second_stage_C=1.0),
        )
    with pytest.raises(ConfigError, match="sentence_weight"):
        make_pipeline(ModelConfig(second_stage="neither", second_stage_C=1.0, sentence_weight=0.2))
    with pytest.raises(ConfigError, match="positive second_stage_C"):
        make_pipeline(ModelConfig(second_stage="neither"))


def test_a_config_without_a_second_stage_keeps_its_version() -> None:
    assert "second_stage" not in ModelConfig(C=0.3, keep=20_000).to_dict()
    assert ModelConfig.from_dict(CONFIG.to_dict()) == CONFIG
