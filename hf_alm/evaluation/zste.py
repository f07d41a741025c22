"""ZSTE-style zero-shot temporal evaluation of contrastive audio-language models.

ZSTE ("Zero-Shot Temporal Evaluation", TeminAL paper, arXiv 2408.09269) is described only in the paper's abstract and
reviews (``models.md`` section 1): "five tasks and their variations", some needing both events to be named. The exact
tasks are not public; this module implements a documented, deterministic **ZSTE-style** suite for any model with
``get_audio_features`` / ``get_text_features`` (hf-alm's ``ClapTeminalModel`` and transformers' ``ClapModel``):

``order``
    Sequence clips (event A, then event B). For each order template (``"{a} before {b}"``, ``"{b} after {a}"``,
    ``"{a}, then {b}"``) the model chooses between the caption of the true order and the swapped one. Chance 50 %.
``relation``
    Sequence and overlap clips. Naming the events in both orders, the model picks the relation word among
    ``before`` / ``after`` / ``while`` (``"A before B"``, ``"A after B"``, ``"A while B"``). Chance 33 %.
``both_events``
    Every composition clip: its true caption versus ``num_distractors`` captions with the same relation where one or
    both events are replaced by other classes (seeded construction). Chance ``1 / (1 + num_distractors)`` -- unless
    the vocabulary is too small for that many distinct distractors (e.g. 3 classes allow at most 2): then items get
    fewer choices, a warning is logged, and ``both_events_num_choices`` (mean choices per item) and
    ``both_events_chance`` (mean ``1 / choices``) in the results give the real chance level.
``zero_shot``
    Single-event clips: ``"This is a sound of {label}."`` over all classes; accuracy.
``retrieval``
    R@1/5/10 audio->text and text->audio over the composition clips and their canonical captions, one caption per
    clip and one clip per caption: a clip whose caption would repeat (or restate) one already in the set is left out
    (``retrieval_num_skipped``). That covers the overlap twins -- ``A + B`` and ``B + A`` are the same sound, and
    "A while B" / "B while A" mean the same, so both in the set would make a perfect model score R@1 < 1 -- and
    repeated sequence pairs. So every query has exactly one correct item. R@k is reported for ``k`` below the number
    of clips only (with ``k >= clips`` every query is a hit).

Ties (exactly equal scores) count as the expected value of a random tie-break, non-finite scores are refused
(``hf_alm.evaluation.retrieval``).

Everything is deterministic: the only randomness is the seeded choice of distractors. Results are a flat ``dict``
(``order_accuracy``, ``relation_accuracy``, ``both_events_accuracy``, ``zero_shot_accuracy``,
``audio_to_text_R@{1,5,10}``, ``text_to_audio_R@{1,5,10}`` plus per-template detail, item counts and the
both-events chance level);
:func:`format_zste_table` prints a before/after table and :func:`write_zste_json` writes JSON atomically.

Input rows (``datasets.Dataset``, list of dicts): compositions carry ``audio``, ``kind`` (``"sequence"`` /
``"overlap"``), ``first``, ``second`` (event names) and optionally ``caption``; single clips carry ``audio`` and
``label_name`` (or ``label`` with a ``ClassLabel`` feature). Audio is anything ``hf_alm.data.audio.load_audio``
accepts.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .retrieval import embed_audio, embed_texts, load_clip, multiple_choice_hits, recall_at_k_hits

logger = logging.getLogger(__name__)

__all__ = [
    "ZsteTemplates",
    "evaluate_zste",
    "build_zste_items",
    "format_zste_table",
    "write_zste_json",
    "HEADLINE_METRICS",
    "bootstrap_ci",
    "zste_warnings",
]

HEADLINE_METRICS = (
    "order_accuracy",
    "relation_accuracy",
    "both_events_accuracy",
    "zero_shot_accuracy",
    "audio_to_text_R@1",
    "audio_to_text_R@5",
    "audio_to_text_R@10",
    "text_to_audio_R@1",
    "text_to_audio_R@5",
    "text_to_audio_R@10",
)

SEQUENCE, OVERLAP = "sequence", "overlap"
TASKS = ("order", "relation", "both_events", "zero_shot", "retrieval")
COMPOSITION_TASKS = ("order", "relation", "both_events", "retrieval")


def default_phrase(name: str) -> str:
    """Event name -> words in a caption: ``hf_alm.data.compositions.noun_phrase`` (the phrase the composed training
    captions use: a synthetic class's noun, "a rising chirp"; any other label lower-cased, ``"Dog_bark"`` ->
    ``"dog bark"``)."""
    from hf_alm.data.compositions import noun_phrase

    return noun_phrase(str(name))


@dataclass
class ZsteTemplates:
    """Caption templates of the ZSTE-style tasks (``{a}`` / ``{b}`` are event phrases).

    ``relations`` maps a relation word to the template stating it. ``order`` lists the relation words whose templates
    are used for the order task (``"a"`` happens first). The training captions of TeminAL-style post-training use
    the same templates (``hf_alm.training.teminal``), which is what a user of a matching vocabulary wants; pass other
    templates to probe a model trained with different wording.
    """

    relations: dict = field(default_factory=lambda: {
        "before": "{a} before {b}",
        "after": "{a} after {b}",
        "while": "{a} while {b}",
    })
    order: tuple = ("before", "after", "then")
    then: str = "{a}, then {b}"
    zero_shot: str = "This is a sound of {label}."
    phrase: Callable[[str], str] = default_phrase

    def relation(self, word: str, a: str, b: str) -> str:
        template = self.then if word == "then" else self.relations[word]
        return template.format(a=self.phrase(a), b=self.phrase(b))

    def true_caption(self, kind: str, first: str, second: str) -> str:
        """The canonical caption of a composition: "first before second" or "first while second"."""
        return self.relation("while" if kind == OVERLAP else "before", first, second)

    def order_pair(self, word: str, first: str, second: str) -> tuple[str, str]:
        """(correct, swapped) captions for an ``A then B`` clip with the relation word ``word``."""
        if word == "after":  # "B after A" is true when A comes first
            return self.relation("after", second, first), self.relation("after", first, second)
        return self.relation(word, first, second), self.relation(word, second, first)


@dataclass
class _Item:
    task: str
    clip: int
    choices: list
    answer: int
    variant: str = ""


def _rows(data) -> list[dict]:
    if data is None:
        return []
    try:
        import datasets

        if isinstance(data, datasets.Dataset) and isinstance(data.features.get("audio"), datasets.Audio):
            data = data.cast_column("audio", datasets.Audio(decode=False))  # decoded by load_clip (fast for WAV)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(data, Mapping) and "audio" in data and not isinstance(data.get("audio"), Mapping):
        # a dict of columns
        keys = list(data.keys())
        return [dict(zip(keys, values)) for values in zip(*[data[k] for k in keys])]
    return [dict(row) for row in data]


def _label_names(data) -> list[str] | None:
    features = getattr(data, "features", None)
    if features is not None and "label" in features and hasattr(features["label"], "names"):
        return list(features["label"].names)
    return None


def _split_input(data) -> tuple[list[dict], list[dict], list[str] | None]:
    """(composition rows, single rows, class names of the singles' ClassLabel)."""
    if isinstance(data, Mapping) and ("compositions" in data or "singles" in data):
        comp, singles = data.get("compositions"), data.get("singles")
        return _rows(comp), _rows(singles), _label_names(singles)
    rows = _rows(data)
    for idx, row in enumerate(rows):
        if row.get("kind") not in (SEQUENCE, OVERLAP, None, ""):
            raise ValueError(f"row {idx}: kind must be {SEQUENCE!r} or {OVERLAP!r} for a composition, or empty / "
                             f"absent for a single-event clip; got {row['kind']!r}")
    comp = [r for r in rows if r.get("kind") in (SEQUENCE, OVERLAP)]
    singles = [r for r in rows if r.get("kind") not in (SEQUENCE, OVERLAP)]
    return comp, singles, _label_names(data)


def _single_name(row: dict, names: list[str] | None) -> str:
    if row.get("label_name") not in (None, ""):
        return str(row["label_name"])
    if names is not None and row.get("label") is not None:
        return names[int(row["label"])]
    raise ValueError(f"single-event row has neither `label_name` nor a ClassLabel `label`: keys {sorted(row)}")


def build_zste_items(compositions: Sequence[dict], *, templates: ZsteTemplates | None = None,
                     class_names: Sequence[str] | None = None, num_distractors: int = 4, seed: int = 0,
                     tasks: Sequence[str] = ("order", "relation", "both_events")) -> list[_Item]:
    """The multiple-choice items of the order / relation / both-events tasks for composition rows (no audio needed).

    ``class_names`` is the vocabulary distractors are drawn from (default: every event name in ``compositions``).
    When it is too small for ``num_distractors`` distinct distractors, both-events items get fewer choices (their
    chance level is higher than ``1 / (1 + num_distractors)``) and a warning says so.
    """
    if num_distractors < 0:
        raise ValueError(f"num_distractors must be >= 0; got {num_distractors}")
    templates = templates or ZsteTemplates()
    vocab = sorted(set(class_names or []) | {str(r[k]) for r in compositions for k in ("first", "second")})
    rng = np.random.default_rng(seed)
    items: list[_Item] = []
    for idx, row in enumerate(compositions):
        kind = row.get("kind")
        if kind not in (SEQUENCE, OVERLAP):
            raise ValueError(f"composition row {idx}: kind must be {SEQUENCE!r} or {OVERLAP!r}; got {kind!r}")
        a, b = str(row["first"]), str(row["second"])
        if a == b:
            raise ValueError(f"composition row {idx}: both events are {a!r}; ZSTE needs two different events")
        if "order" in tasks and kind == SEQUENCE:
            for word in templates.order:
                correct, swapped = templates.order_pair(word, a, b)
                items.append(_Item("order", idx, [correct, swapped], 0, word))
        if "relation" in tasks:
            words = ("before", "after", "while")
            truth_ab = "while" if kind == OVERLAP else "before"
            truth_ba = "while" if kind == OVERLAP else "after"
            items.append(_Item("relation", idx, [templates.relation(w, a, b) for w in words],
                               words.index(truth_ab), "a_first"))
            items.append(_Item("relation", idx, [templates.relation(w, b, a) for w in words],
                               words.index(truth_ba), "b_first"))
        if "both_events" in tasks and num_distractors > 0:
            others = [c for c in vocab if c not in (a, b)]
            if not others:
                raise ValueError(f"both_events needs at least 3 event classes; got {vocab}")
            word = "while" if kind == OVERLAP else "before"
            seen = {(a, b), (b, a)}
            choices = [templates.relation(word, a, b)]
            attempts = 0
            while len(choices) < 1 + num_distractors and attempts < 100 * num_distractors:
                attempts += 1
                mode = rng.integers(3)  # 0: replace first, 1: replace second, 2: replace both
                x = a if mode == 1 else others[rng.integers(len(others))]
                y = b if mode == 0 else others[rng.integers(len(others))]
                if x == y or (x, y) in seen:
                    continue
                seen.add((x, y))
                choices.append(templates.relation(word, x, y))
            perm = rng.permutation(len(choices))
            shuffled = [choices[p] for p in perm]
            items.append(_Item("both_events", idx, shuffled, int(np.where(perm == 0)[0][0]), word))
    short = [it for it in items if it.task == "both_events" and len(it.choices) < 1 + num_distractors]
    if short:
        logger.warning(
            "both_events: %d of %d items have fewer than the %d requested distractors (as few as %d) -- the %d event "
            "classes allow no more distinct ones; their chance level is above 1/%d (see both_events_chance)",
            len(short), sum(it.task == "both_events" for it in items), num_distractors,
            min(len(it.choices) for it in short) - 1, len(vocab), 1 + num_distractors)
    return items


def _load_clips(rows: Sequence[dict], sampling_rate: int) -> list[torch.Tensor]:
    return [load_clip(r["audio"], sampling_rate) for r in rows]


def _score_items(items: Sequence[_Item], audio_emb: torch.Tensor, text_index: dict, text_emb: torch.Tensor,
                 clip_map: Sequence[int] | None = None):
    """Scores of each item's choices against its clip (or against ``clip_map[clip]``: the unrelated-audio control)."""
    scores, answers = [], []
    for item in items:
        cols = [text_index[c] for c in item.choices]
        clip = item.clip if clip_map is None else clip_map[item.clip]
        scores.append((text_emb[cols].double() @ audio_emb[clip].double()).tolist())
        answers.append(item.answer)
    return scores, answers


CI_RESAMPLES = 2000


def bootstrap_ci(hits, clusters=None, *, seed: int = 0, resamples: int = CI_RESAMPLES,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``hits``, resampling whole ``clusters`` (e.g. the clip an item was
    asked about: the three order templates of one clip are not independent) with replacement. Deterministic by
    ``seed``. ``(nan, nan)`` for no items."""
    hits = np.asarray(hits, dtype=np.float64)
    if hits.size == 0:
        return float("nan"), float("nan")
    clusters = np.arange(hits.size) if clusters is None else np.asarray(clusters)
    _, inverse = np.unique(clusters, return_inverse=True)
    sums = np.bincount(inverse, weights=hits)
    counts = np.bincount(inverse).astype(np.float64)
    rng = np.random.default_rng([int(seed), 0xC1])
    weights = rng.multinomial(len(sums), np.full(len(sums), 1.0 / len(sums)), size=resamples).astype(np.float64)
    means = (weights @ sums) / np.maximum(weights @ counts, 1e-12)
    alpha = (1.0 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def _put_stats(results: dict, key: str, hits, clusters, seed: int, chance: float, control_hits=None) -> None:
    """``key`` (the mean), ``key_ci95`` ([low, high]), ``key_chance`` and ``key_control`` into ``results``."""
    hits = np.asarray(hits, dtype=np.float64)
    results[key] = float(np.mean(hits)) if hits.size else float("nan")
    results[f"{key}_ci95"] = list(bootstrap_ci(hits, clusters, seed=seed))
    results[f"{key}_chance"] = float(chance)
    if control_hits is not None and len(control_hits):
        results[f"{key}_control"] = float(np.mean(control_hits))


def _unrelated_clips(events: Sequence[frozenset], seed: int) -> list | None:
    """For each clip, another clip that shares no event with it (seeded choice), or ``None`` when some clip has no
    such partner (too few classes)."""
    rng = np.random.default_rng([int(seed), 0xC2])
    out = []
    for i, ev in enumerate(events):
        candidates = [j for j, other in enumerate(events) if j != i and not (ev & other)]
        if not candidates:
            return None
        out.append(candidates[int(rng.integers(len(candidates)))])
    return out


def evaluate_zste(model, processor, dataset_or_compositions, *, batch_size: int = 32, sampling_rate: int | None = None,
                  templates: ZsteTemplates | None = None, class_names: Sequence[str] | None = None,
                  num_distractors: int = 4, seed: int = 0, tasks: Sequence[str] | None = None,
                  ks: Sequence[int] = (1, 5, 10), progress: bool = False) -> dict:
    """Run the ZSTE-style tasks (module docstring) and return a flat dict of metrics.

    Args:
        model: anything with ``get_audio_features`` / ``get_text_features`` (put in eval mode, restored after).
        processor: called as ``processor(audio=[...], sampling_rate=sr)`` and ``processor(text=[...])``.
        dataset_or_compositions: composition rows, single-clip rows, a mix of both in one table (told apart by
            ``kind``), or ``{"compositions": ..., "singles": ...}``.
        batch_size: clips / texts per forward pass.
        sampling_rate: rate the clips are resampled to (default: the processor's feature extractor's).
        templates: caption templates (:class:`ZsteTemplates`).
        class_names: zero-shot classes and distractor vocabulary (default: the names found in the data).
        num_distractors: wrong choices per both-events item.
        seed: seeds the distractor choice (the only randomness).
        tasks: subset of ``order``, ``relation``, ``both_events``, ``zero_shot``, ``retrieval``. Default: every task
            the data has rows for (composition tasks with compositions, ``zero_shot`` with single clips). A task
            named here that the data cannot run (no compositions, no sequence clip for ``order``, no single clips,
            ``num_distractors=0`` for ``both_events``) is a ``ValueError`` naming it.
        ks: the ``k`` of R@k (only ``k`` below the number of retrieval clips are reported).
    """
    explicit = tasks is not None
    tasks = tuple(TASKS if tasks is None else ([tasks] if isinstance(tasks, str) else tasks))
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown ZSTE task(s) {sorted(unknown)}; choose from order, relation, both_events, "
                         "zero_shot, retrieval")
    templates = templates or ZsteTemplates()
    if sampling_rate is None:
        fe = getattr(processor, "feature_extractor", processor)
        sampling_rate = getattr(fe, "sampling_rate", None)
        if not sampling_rate:
            raise ValueError("sampling_rate not given and the processor has no feature_extractor.sampling_rate")
    compositions, singles, label_names = _split_input(dataset_or_compositions)
    single_names = [_single_name(r, label_names) for r in singles]
    zs_classes = list(class_names) if class_names else (label_names or sorted(set(single_names)))
    if not compositions and not singles:
        raise ValueError("evaluate_zste: the input has no rows (neither composition nor single-event clips)")
    if explicit:
        why = {}
        for task in tasks:
            if task in COMPOSITION_TASKS and not compositions:
                why[task] = "needs composition rows (kind 'sequence' / 'overlap') and the input has none"
            elif task == "order" and all(r.get("kind") == OVERLAP for r in compositions):
                why[task] = "needs sequence compositions and every composition is an overlap"
            elif task == "both_events" and num_distractors < 1:
                why[task] = f"needs num_distractors >= 1 (got {num_distractors})"
            elif task == "zero_shot" and not singles:
                why[task] = "needs single-event rows (label_name / ClassLabel label) and the input has none"
        if why:
            raise ValueError("ZSTE task(s) with no data: " + "; ".join(f"{t} {w}" for t, w in why.items()))
    results: dict = {}

    # --- composition tasks -------------------------------------------------------------------------------------
    if compositions and set(tasks) & {"order", "relation", "both_events", "retrieval"}:
        vocab = sorted(set(class_names or []) | set(single_names))
        items = build_zste_items(compositions, templates=templates, class_names=vocab,
                                 num_distractors=num_distractors, seed=seed,
                                 tasks=[t for t in tasks if t in ("order", "relation", "both_events")])
        captions = [templates.true_caption(r["kind"], str(r["first"]), str(r["second"])) for r in compositions]
        texts = sorted({c for it in items for c in it.choices} | set(captions))
        text_index = {t: i for i, t in enumerate(texts)}
        audio_emb = embed_audio(model, processor, _load_clips(compositions, sampling_rate),
                                sampling_rate=sampling_rate, batch_size=batch_size, progress=progress)
        text_emb = embed_texts(model, processor, texts, batch_size=max(batch_size, 64))
        control_map = _unrelated_clips([frozenset((str(r["first"]), str(r["second"]))) for r in compositions], seed)
        chance_of = {"order": 0.5, "relation": 1.0 / 3.0}
        for task in ("order", "relation", "both_events"):
            task_items = [it for it in items if it.task == task]
            if task not in tasks or not task_items:
                continue
            scores, answers = _score_items(task_items, audio_emb, text_index, text_emb)
            hits = multiple_choice_hits(scores, answers)
            control = None
            if control_map is not None:
                control = multiple_choice_hits(*_score_items(task_items, audio_emb, text_index, text_emb,
                                                             control_map))
            chance = chance_of.get(task) or float(np.mean([1.0 / len(it.choices) for it in task_items]))
            _put_stats(results, f"{task}_accuracy", hits, [it.clip for it in task_items], seed, chance, control)
            results[f"{task}_num_items"] = len(task_items)
            if task == "both_events":
                results["both_events_num_choices"] = float(np.mean([len(it.choices) for it in task_items]))
                results["both_events_chance"] = chance
            variants = sorted({it.variant for it in task_items})
            if len(variants) > 1:
                for v in variants:
                    sel = [i for i, it in enumerate(task_items) if it.variant == v]
                    results[f"{task}_accuracy_{v}"] = float(np.mean(hits[sel]))
        if "retrieval" in tasks:
            # one clip per caption: an overlap's twin (B + A next to A + B, "B while A" = "A while B") and a repeated
            # sequence pair would be a second correct answer that the metric counts as wrong
            seen, keep = set(), []
            for i, row in enumerate(compositions):
                a, b = str(row["first"]), str(row["second"])
                key = (OVERLAP, frozenset((a, b))) if row["kind"] == OVERLAP else (SEQUENCE, a, b)
                if key not in seen:
                    seen.add(key)
                    keep.append(i)
            cap_emb = text_emb[[text_index[captions[i]] for i in keep]]
            sim = audio_emb[keep].double() @ cap_emb.double().t()
            positives = [[j] for j in range(len(keep))]
            for name, matrix in (("audio_to_text", sim), ("text_to_audio", sim.t())):
                for k, hits in recall_at_k_hits(matrix, positives, ks).items():
                    _put_stats(results, f"{name}_R@{k}", hits, None, seed, k / len(keep))
            results["retrieval_num_audio"] = len(keep)
            results["retrieval_num_texts"] = len(keep)
            results["retrieval_num_skipped"] = len(compositions) - len(keep)

    # --- single-event zero-shot classification ---------------------------------------------------------------
    if singles and "zero_shot" in tasks:
        missing = sorted(set(single_names) - set(zs_classes))
        if missing:
            raise ValueError(f"zero-shot: labels {missing} are not among class_names {zs_classes}")
        prompts = [templates.zero_shot.format(label=templates.phrase(c)) for c in zs_classes]
        audio_emb = embed_audio(model, processor, _load_clips(singles, sampling_rate), sampling_rate=sampling_rate,
                                batch_size=batch_size, progress=progress)
        text_emb = embed_texts(model, processor, prompts, batch_size=max(batch_size, 64))
        gold = [zs_classes.index(n) for n in single_names]
        scores = (audio_emb.double() @ text_emb.double().t()).tolist()
        control_map = _unrelated_clips([frozenset((n,)) for n in single_names], seed)
        control = None if control_map is None else multiple_choice_hits([scores[j] for j in control_map], gold)
        _put_stats(results, "zero_shot_accuracy", multiple_choice_hits(scores, gold), None, seed,
                   1.0 / len(zs_classes), control)
        results["zero_shot_num_items"] = len(singles)
        results["zero_shot_num_classes"] = len(zs_classes)
    return results


# --- reporting -----------------------------------------------------------------------------------------------------

def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{100 * value:.1f}"
    return str(value)


def _cell(stage_results: Mapping, metric: str) -> str:
    value = stage_results.get(metric)
    ci = stage_results.get(f"{metric}_ci95")
    text = _fmt(value)
    if isinstance(value, float) and ci and all(isinstance(v, float) and math.isfinite(v) for v in ci):
        text += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return text


def format_zste_table(results: Mapping[str, Mapping], metrics: Sequence[str] = HEADLINE_METRICS,
                      title: str | None = "ZSTE-style evaluation (accuracy / recall in %, [95 % bootstrap CI])") -> str:
    """A plain-text table: one row per metric with its chance level, one column per stage (e.g.
    ``{"base": {...}, "teminal": {...}}``; each cell the value and its 95 % confidence interval when known), plus
    ``delta`` (last minus first stage, in points) when there are two or more stages. Under a metric with an
    unrelated-audio control, a ``control`` row gives the same captions scored against audio that shares no event
    with them (what the model scores without hearing the events)."""
    stages = list(results)
    rows = [m for m in metrics if any(m in results[s] for s in stages)]
    header = ["metric", "chance", *stages] + (["delta"] if len(stages) > 1 else [])
    body = []
    for m in rows:
        chance = next((results[s].get(f"{m}_chance") for s in stages if f"{m}_chance" in results[s]), None)
        line = [m, _fmt(chance)] + [_cell(results[s], m) for s in stages]
        if len(stages) > 1:
            first, last = results[stages[0]].get(m), results[stages[-1]].get(m)
            line.append(f"{100 * (last - first):+.1f}" if isinstance(first, float) and isinstance(last, float)
                        else "-")
        body.append(line)
        if any(f"{m}_control" in results[s] for s in stages):
            line = ["  control (unrelated audio)", ""] + [_fmt(results[s].get(f"{m}_control")) for s in stages]
            body.append(line + ([""] if len(stages) > 1 else []))
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    fmt_line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    out = [title] if title else []
    out += [fmt_line(header), "  ".join("-" * w for w in widths)] + [fmt_line(r) for r in body]
    return "\n".join(out)


STAGE_TARGETS = {"base": ("zero_shot_accuracy",), "teminal_a": ("relation_accuracy", "both_events_accuracy"),
                 "teminal_b": ("order_accuracy",)}
VERDICT_METRICS = ("order_accuracy", "relation_accuracy", "both_events_accuracy", "zero_shot_accuracy")


def _at_chance(stage_results: Mapping, metric: str) -> bool:
    ci, chance = stage_results.get(f"{metric}_ci95"), stage_results.get(f"{metric}_chance")
    if not ci or chance is None or not all(isinstance(v, float) and math.isfinite(v) for v in ci):
        return False
    return ci[0] <= chance <= ci[1]


def zste_warnings(results: Mapping[str, Mapping], targets: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Plain-language warnings about a before/after ZSTE comparison (``results``: stage -> metrics, first = before):

    * a stage leaves one of the metrics it trains for (``targets``, default :data:`STAGE_TARGETS`) within its 95 %
      interval of chance; the last stage is checked on all of :data:`VERDICT_METRICS`;
    * the last stage's zero-shot accuracy is below the first's (outside nothing: any drop of the point estimate).
    """
    targets = STAGE_TARGETS if targets is None else targets
    stages = list(results)
    out = []
    for i, stage in enumerate(stages):
        names = set(targets.get(stage, ()))
        if i == len(stages) - 1:
            names |= set(VERDICT_METRICS)
        for m in [m for m in VERDICT_METRICS if m in names]:
            if m in results[stage] and _at_chance(results[stage], m):
                lo, hi = results[stage][f"{m}_ci95"]
                out.append(f"after stage {stage}, {m} = {100 * results[stage][m]:.1f} % is within its 95 % interval "
                           f"of chance ({100 * results[stage][f'{m}_chance']:.1f} % in [{100 * lo:.1f}, "
                           f"{100 * hi:.1f}]): not distinguishable from guessing")
    if len(stages) > 1:
        first, last = results[stages[0]].get("zero_shot_accuracy"), results[stages[-1]].get("zero_shot_accuracy")
        if isinstance(first, float) and isinstance(last, float) and last < first:
            out.append(f"zero-shot accuracy fell from {100 * first:.1f} % ({stages[0]}) to {100 * last:.1f} % "
                       f"({stages[-1]}): the post-trained model classifies single sounds worse than the base")
    return out


def write_zste_json(path, results: Mapping, *, extra: Mapping | None = None) -> None:
    """Write ``results`` (and ``extra`` top-level keys) as indented JSON, atomically."""
    from hf_alm.utils import atomic_write_text

    payload = dict(extra or {})
    payload.update({k: (asdict(v) if hasattr(v, "__dataclass_fields__") else v) for k, v in results.items()})
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=float) + "\n")
