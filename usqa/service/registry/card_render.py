"""A model card as Markdown or HTML: one list of sections, two writers, so the two never say different things."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from usqa.service.registry.card import ModelCard

NO_EVALUATION = "No evaluation report: rejection curves and agreement with the labels were not measured."
NO_REGENERATE = "Not recorded: the commands are written by `usqa export` into the card it publishes."
NO_OOD_CHECK = (
    "This version has no out-of-scope check: frames unlike its training data are scored as any other."
)
HTML_STYLE = (
    "body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem}"
    "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:2px 8px;text-align:left}"
    "pre{overflow-x:auto;background:#f4f4f4;padding:8px}.note{font-weight:bold}"
)


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    header: tuple[str, ...] = ()
    rows: list[tuple[str, ...]] = field(default_factory=list)
    code: list[str] = field(default_factory=list)


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def max_kappa(rejected: float, prevalence: float) -> float:
    """Cohen's kappa of a perfect ranking that rejects the fraction `rejected` of frames, `prevalence` of
    which are non-amenable: every rejected frame non-amenable (or every non-amenable frame rejected)."""
    agreement = 1 - abs(rejected - prevalence)
    expected = rejected * prevalence + (1 - rejected) * (1 - prevalence)
    return 1.0 if expected >= 1 else (agreement - expected) / (1 - expected)


def _title(card: ModelCard) -> str:
    return f"Model card: {card.name}" + (f" version {card.version}" if card.version else "")


def _evaluation(card: ModelCard) -> list[Section]:
    sections = []
    agreement = Section("Agreement with amenability labels (Cohen's kappa)")
    if card.kappa:
        point = card.evaluation.operating_point if card.evaluation else None
        if point is not None:
            agreement.paragraphs.append(
                f"At the operating point: the lowest-scored {point:.0%} of frames rejected."
            )
        agreement.header = ("rejection by", "kappa")
        agreement.rows = [(method, _num(kappa)) for method, kappa in card.kappa.items()]
        evaluation = card.evaluation
        prevalence = evaluation.non_amenable_fraction if evaluation else None
        if evaluation is not None and evaluation.kappa_at_prevalence and prevalence is not None:
            # Rejecting a fixed 5 % caps kappa well below 1 when more frames than that are non-amenable;
            # rejecting as many as are gives the view in which a perfect ranking scores 1.
            cap = "" if not point else f" (here at most {max_kappa(point, prevalence):.3f} at {point:.0%})"
            agreement.paragraphs.append(
                f"At prevalence: as many frames rejected as are labelled non-amenable ({prevalence:.1%} of "
                "the holdout), where a perfect ranking has kappa 1; at a fixed operating point away from the "
                f"prevalence even a perfect ranking scores less{cap}."
            )
            at_prevalence = evaluation.kappa_at_prevalence
            agreement.header = (
                "rejection by",
                f"kappa at {point:.0%}" if point else "kappa",
                "at prevalence",
            )
            agreement.rows = [
                (method, _num(kappa), _num(at_prevalence.get(method))) for method, kappa in card.kappa.items()
            ]
    else:
        agreement.paragraphs.append("Not recorded for this version.")
    sections.append(agreement)
    spread = Section("Controller score spread (validation split)")
    if card.score_spread is not None:
        s = card.score_spread
        quantiles = ", ".join(f"{q} in {lo:.2f}–{hi:.2f}" for q, (lo, hi) in s.quantiles.items())
        spread.paragraphs.append(
            f"{s.frames} frames; mean {s.mean:.3f}, standard deviation {s.std:.3f} "
            f"(from a histogram of bins {s.bin_width:.2f} wide)."
        )
        spread.paragraphs.append(f"Quantiles: {quantiles}.")
    else:
        spread.paragraphs.append("Not recorded for this version.")
    sections.append(spread)
    curves = Section("Rejection curves (holdout split)")
    evaluation = card.evaluation
    if evaluation is None:
        curves.paragraphs.append(NO_EVALUATION)
    else:
        curves.paragraphs.append(
            f"Mean {evaluation.metric} of the frames kept after rejecting the lowest-scored fraction "
            f"({evaluation.frames} frames, {evaluation.subjects} subjects; point estimate ± std over "
            f"{evaluation.bootstrap_resamples} subject-level bootstrap resamples)."
        )
        methods = list(evaluation.curves)
        curves.header = ("rejected", *methods)
        for i, ratio in enumerate(evaluation.rejection_ratios):
            curves.rows.append(
                (
                    f"{ratio:.0%}",
                    *(f"{c.point[i]:.3f} ± {c.std[i]:.3f}" for c in evaluation.curves.values()),
                )
            )
        if evaluation.ttest:
            t = evaluation.ttest
            curves.paragraphs.append(
                f"Paired t-test over subjects, controller-selected vs non-selective baseline: t = "
                f"{t.get('t', float('nan')):.2f}, p = {t.get('p', float('nan')):.3g}."
            )
    sections.append(curves)
    return sections


def card_sections(card: ModelCard) -> list[Section]:
    """The card's content in reading order."""
    head = Section(_title(card))
    if card.note:
        head.paragraphs.append(f"Note: {card.note}.")
    if not card.version:
        head.paragraphs.append("The version number is assigned at publish (see manifest.json).")
    use = Section("Intended use", [card.intended_use, f"Out of scope: {card.out_of_scope_uses}"])
    task = Section(
        "Task and classes",
        [f"Task: {card.task}. Classes: {', '.join(card.class_names)}."],
        ("target rejection rate", "controller score threshold"),
        [(rate, f"{threshold:.4f}") for rate, threshold in card.thresholds.items()],
    )
    contract = Section(
        "Input contract",
        [
            f"Input `{card.input.name}`: {card.input.dtype} {list(card.input.shape)}, grayscale, batch axis dynamic.",
            "Preprocessing: " + ", ".join(f"{k} {v}" for k, v in card.preprocessing.items()) + ".",
            *(f"Output of the {role}: {text}." for role, text in card.outputs.items()),
        ],
    )
    data = Section("Training data")
    if card.training_data is not None:
        d = card.training_data
        data.header = ("what", "value")
        data.rows = [
            (key, value)
            for key, value in (
                ("data set", d.dataset or "–"),
                ("frames per split", ", ".join(f"{k} {v}" for k, v in d.frames_per_split.items()) or "–"),
                ("subjects per split", ", ".join(f"{k} {v}" for k, v in d.subjects_per_split.items()) or "–"),
                ("simulator preset", d.preset or "–"),
                ("data seed", "–" if d.data_seed is None else str(d.data_seed)),
                ("training preset", d.training_preset or "–"),
                ("algorithm, reward", f"{d.algo or '–'}, {d.reward or '–'}"),
                ("training seed", "–" if d.training_seed is None else str(d.training_seed)),
            )
        ]
    else:
        data.paragraphs.append("Not recorded for this version.")
    scope = Section("Out-of-scope frames")
    if card.out_of_scope is not None:
        o = card.out_of_scope
        scope.paragraphs.append(
            f"False-alarm rate on in-scope validation frames: {_num(o.false_alarm_rate)} "
            f"({o.method or 'check'}, threshold {_num(o.threshold)}, {o.validation_frames or '–'} frames)."
        )
    else:
        scope.paragraphs.append(NO_OOD_CHECK)
    regenerate = Section("How to regenerate", ["From a checkout with the `train` extra installed:"])
    line = _pass_line(card)
    regenerate.code = list(card.regenerate)
    if not card.regenerate:
        regenerate.paragraphs = [NO_REGENERATE]
    provenance = Section(
        "Provenance",
        [
            f"Created {card.created}; code revision {card.code_revision}; quantization {card.quantization or 'none'}."
        ],
    )
    if card.cost is not None:
        c = card.cost
        provenance.paragraphs.append(
            f"Per-frame cost at export: {c.frame_ms:.2f} ms mean, {c.p50_ms:.2f} ms median over {c.frames} frames "
            f"(a PNG at the input size decoded and prepared, both graphs at batch 1, {c.threads} thread) on "
            f"{c.cpu} ({c.cores} cores), {c.measured}. The service starts its capacity estimate from it and "
            'then measures its own frames (docs/service.md, "Capacity").'
        )
    return [head, use, task, contract, data, *_evaluation(card), line, scope, regenerate, provenance]


def _pass_line(card: ModelCard) -> Section:
    section = Section("The pass line")
    p = card.pass_line
    if p is None:
        section.paragraphs.append("Not recorded for this version.")
        return section
    section.paragraphs.append(p.promise if p.promise.endswith(".") else p.promise + ".")
    section.paragraphs.append(f"Served rejector: {p.rejector}" + (f" ({p.reason})." if p.reason else "."))
    if p.display_scale == "p_correct":
        section.paragraphs.append(
            "The score shown is the calibrated probability that the task model is right on the frame; its "
            f"expected calibration error on frames it was not fitted on: {_num(p.display_ece)}."
        )
    if p.reliability:
        section.header = ("score shown (mean)", "right (observed)", "frames")
        section.rows = [
            (_num(b.get("predicted")), _num(b.get("observed")), str(int(b.get("frames", 0))))
            for b in p.reliability
        ]
    return section


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def card_markdown(card: ModelCard) -> str:
    """`card.md`, and what the route answers for `text/markdown`."""
    lines: list[str] = []
    for i, section in enumerate(card_sections(card)):
        lines += [f"{'#' if i == 0 else '##'} {section.title}", ""]
        for paragraph in section.paragraphs:
            lines += [paragraph, ""]
        if section.rows:
            lines.append("| " + " | ".join(_md_cell(h) for h in section.header) + " |")
            lines.append("|" + " --- |" * len(section.header))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in section.rows]
            lines.append("")
        if section.code:
            lines += ["```bash", *section.code, "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def card_article(card: ModelCard) -> str:
    """The card as an HTML `<article>`; the live page embeds it, `card_html` wraps it in a page."""
    e = html.escape
    parts = ['<article class="model-card">']
    for i, section in enumerate(card_sections(card)):
        tag = "h1" if i == 0 else "h2"
        parts.append(f"<section><{tag}>{e(section.title)}</{tag}>")
        for paragraph in section.paragraphs:
            css = ' class="note"' if paragraph.startswith("Note:") else ""
            parts.append(f"<p{css}>{e(paragraph)}</p>")
        if section.rows:
            parts.append('<div class="table-scroll"><table>')
            if any(section.header):
                parts.append("<tr>" + "".join(f"<th>{e(h)}</th>" for h in section.header) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in section.rows]
            parts.append("</table></div>")
        if section.code:
            parts.append("<pre><code>" + e("\n".join(section.code)) + "</code></pre>")
        parts.append("</section>")
    parts.append("</article>")
    return "\n".join(parts)


def card_html(card: ModelCard) -> str:
    """A standalone HTML page of the card (no script, no request to anywhere)."""
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(_title(card))}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{HTML_STYLE}</style></head>'
        f"<body>\n{card_article(card)}\n</body></html>\n"
    )
