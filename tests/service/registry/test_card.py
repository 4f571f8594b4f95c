"""The model card without HTTP: a manifest's own view, a published card checked when read, both rendered."""

from __future__ import annotations

from pathlib import Path

import pytest

from usqa.service.registry import CHAMPION, IntegrityError, ModelRegistry, OodCalibration
from usqa.service.registry.card import (
    CARD_JSON,
    CARD_MARKDOWN,
    FROM_MANIFEST_NOTE,
    INTENDED_USE,
    Evaluation,
    ModelCard,
    RejectionCurve,
    manifest_card,
    out_of_scope_of,
    read_card,
)
from usqa.service.registry.card_render import (
    NO_EVALUATION,
    NO_OOD_CHECK,
    NO_REGENERATE,
    card_html,
    card_markdown,
)
from usqa.service.registry.manifest import Manifest
from usqa.service.registry.store import MSG_TAMPERED

from ..conftest import FIXTURE_MODEL_NAME, fixture_manifest

RATIOS = [0.0, 0.05, 0.1]


def exported(manifest: Manifest) -> ModelCard:
    """A card as export writes one (usqa/trainer/release/card_builder.py), built here from the schema alone."""
    curve = RejectionCurve(point=[0.8, 0.85, 0.9], mean=[0.8, 0.84, 0.88], std=[0.01, 0.02, 0.03])
    evaluation = Evaluation(metric="accuracy", rejection_ratios=RATIOS, curves={"controller": curve})
    update = {
        "source": "export",
        "note": None,
        "evaluation": evaluation,
        "kappa": {"controller": 0.42, "confidence": None},
        "regenerate": ["usqa export --run RUN"],
    }
    return ModelCard.model_validate({**dict(manifest_card(manifest)), **update})


def publish_with_card(registry: ModelRegistry, source: Path) -> int:
    """Publish the fixture classifier's graphs again, with a card written as export writes it."""
    champion = registry.load(FIXTURE_MODEL_NAME, CHAMPION)
    manifest = champion.manifest.model_copy(update={"version": 0, "files": {}})
    model_card = exported(manifest)
    source.mkdir(parents=True, exist_ok=True)
    (source / CARD_JSON).write_text(model_card.model_dump_json())
    (source / CARD_MARKDOWN).write_text(card_markdown(model_card))
    files = {name: champion.path / name for name in champion.manifest.graphs.values()}
    files |= {CARD_JSON: source / CARD_JSON, CARD_MARKDOWN: source / CARD_MARKDOWN}
    return registry.publish(manifest, files).version


def test_a_card_from_the_manifest_alone_says_so() -> None:
    card = manifest_card(fixture_manifest("m", "classify"))
    assert (card.source, card.note, card.evaluation) == ("manifest", FROM_MANIFEST_NOTE, None)
    assert card.intended_use == INTENDED_USE and "not a medical device" in INTENDED_USE
    assert card.score_spread is not None and card.score_spread.frames == 100
    assert all(lo <= hi for lo, hi in card.score_spread.quantiles.values())
    assert card.regenerate == []  # the trainer's commands are written by export, never re-spelled here
    markdown = card_markdown(card)
    assert FROM_MANIFEST_NOTE in markdown and NO_EVALUATION in markdown and NO_OOD_CHECK in markdown
    assert NO_REGENERATE in markdown


def test_an_exported_card_renders_its_evaluation_and_commands() -> None:
    markdown = card_markdown(exported(fixture_manifest("m", "classify")))
    assert "| 5% | 0.850 ± 0.020 |" in markdown
    assert "| controller | 0.420 |" in markdown and "usqa export --run RUN" in markdown


def test_html_escapes_what_the_manifest_says() -> None:
    manifest = fixture_manifest("m", "classify").model_copy(
        update={"class_names": ["<script>x</script>", "b"]}
    )
    page = card_html(manifest_card(manifest))
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_the_out_of_scope_section_is_read_when_a_manifest_has_one() -> None:
    ood = OodCalibration(
        feature_dim=4,
        shrinkage=0.1,
        threshold=3.5,
        false_alarm_rate=0.05,
        fit_frames=10,
        validation_frames=10,
        validation_quantiles=[0.0, 1.0],
    )
    manifest = fixture_manifest("m", "classify").model_copy(update={"ood": ood})
    check = out_of_scope_of(manifest)
    assert check is not None and (check.false_alarm_rate, check.threshold) == (0.05, 3.5)
    assert "False-alarm rate on in-scope validation frames: 0.050" in card_markdown(manifest_card(manifest))
    assert out_of_scope_of(fixture_manifest("m", "classify")) is None


def test_a_published_card_is_covered_by_the_manifest_and_checked(registry_root: Path, tmp_path: Path) -> None:
    registry = ModelRegistry(registry_root)
    version = publish_with_card(registry, tmp_path / "card")
    published = registry.load(FIXTURE_MODEL_NAME, version)  # verifies every sha256, the card's too
    assert {CARD_JSON, CARD_MARKDOWN} <= set(published.manifest.files)
    card = read_card(registry, FIXTURE_MODEL_NAME, "latest")
    assert (card.version, card.source, card.evaluation is not None) == (version, "export", True)
    assert read_card(registry, FIXTURE_MODEL_NAME, CHAMPION).source == "manifest"

    path = published.path / CARD_JSON
    path.write_text(path.read_text().replace("Research", "Clinical"))
    with pytest.raises(IntegrityError) as refused:
        read_card(registry, FIXTURE_MODEL_NAME, version)
    assert str(refused.value) == MSG_TAMPERED.format(name=FIXTURE_MODEL_NAME, version=version, file=CARD_JSON)
