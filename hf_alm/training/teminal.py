"""TeminAL-style post-training of a contrastive audio-text model: data, batch builders and the loss of each stage.

TeminAL (Sinha et al., arXiv 2408.09269; ``models.md`` section 1) post-trains a CLAP-like model in two stages:
"TeminAL A" teaches it to tell several sounds in one clip apart, "TeminAL B" instils a sense of time. The paper's
body and code are **not public**; what is known comes from its abstract and reviews. This module is therefore a
configurable, documented **TeminAL-style** implementation; every choice below is ours unless marked otherwise.

Data (all from one single-event labelled dataset, e.g. the synthetic corpus or ESC-10/50):

* the *source clips* are split into train / validation / test with :func:`hf_alm.data.splits.split_train_val_test`
  (test: whole ESC folds nearest to ``eval_fraction``, or stratified per class when the folds are too uneven;
  validation: stratified, ``val_fraction``), so every test composition is made of clips never heard in training
  nor used to choose a checkpoint; a split that leaves a class fewer than 2 training clips is refused;
* each source clip is cut to its loudest window of ``event_seconds`` (default: half of the model's input window minus
  the largest gap), so two events and a gap always fit in the window and nothing is cropped away;
* compositions are rendered on the fly with the data layer's :func:`~hf_alm.data.compositions.concat_events` ("A
  then B", a random 0-0.2 s gap) and :func:`~hf_alm.data.compositions.overlay_events` ("A while B", B at -3..+3 dB),
  captioned with :func:`~hf_alm.data.compositions.relation_captions` (before / after / while, "followed by",
  "then", both directions; one template per item, drawn with a seeded generator).

Stages (each one call of :func:`hf_alm.training.loop.fit`):

``base``
    Contrastive pre-training on single clips and their captions (the dataset's captions, the class noun phrase and,
    for ``zero_shot_caption_fraction`` of the items, ``"This is a sound of {label}."``). Skipped when a pre-trained
    model is given. (Reviews say the authors pre-trained their own CLAP.)
``teminal_a``
    Symmetric InfoNCE (:func:`~hf_alm.training.losses.contrastive_loss`) over a mix of single-event clips
    (``stage_a_single_fraction``), sequences and overlaps of two events with relation captions (reviews: stage A
    uses "single and dual events", with single and "X while Y" captions in one batch).
``teminal_b``
    Each unit is a pair of events A, B: the sequence "A then B" with its caption *and* the same two waveforms in the
    reversed order with the mirrored caption, in the same batch (the reversal is the hard negative). The batch is
    laid out ``[originals; reversals; extras]`` and trained with the TACT-style weighted InfoNCE
    (:func:`~hf_alm.training.losses.tact_weighted_loss`; ``alpha_same`` / ``alpha_cross`` weight the own / other
    samples' reversals; 1 = plain InfoNCE). Extras keep the rest of the skills alive: with probability
    ``stage_b_overlap_fraction`` a unit adds the overlap "A while B", with ``stage_b_single_fraction`` one of its
    single events. (Reviews: stage B uses "varying temporal sequences of the same event combinations", temporally
    inverted and overlapped data, and a modified InfoNCE that upweights temporal relations; TACT's form is our
    reading, UNVERIFIED for TeminAL.)

Stage lengths are step budgets by default (the recipe's ``--<stage>_steps``): a stage of ``S`` optimizer steps runs
as ``rounds`` rounds (:class:`StageItems`, :func:`step_budget`), each drawing fresh items from the pair space and
followed by a ZSTE on the validation side; the round with the best :func:`validation_score` is kept
(:func:`keep_best_round`). Epoch mode (``base_items`` / ``stage_a_items`` / ``stage_b_units``: item lists sized by
the number of training clips) stays available. Epochs counted in source clips gave a 193-clip dataset 48 base and 80
stage-B steps and left it at chance; a budget in steps is the same for 100 or 100,000 clips.

Everything is deterministic by seed (an item is a function of the seed, stage, round and index; no augmentation
draws at batch time), so a resumed run sees exactly the batches of an uninterrupted one.

Order needs an order-aware clip vector (measured 2026-11-25, synthetic corpus, 2 CPU threads). With the HTSAT tower
and its mean pooling, ZSTE order accuracy stayed at 49-51 % in seven settings (stage-B learning rate 3e-4 / 1e-3, 2-4
epochs, ``alpha_same`` 1 or 3) while relation and both-events accuracy rose: a Swin with only *relative* position
biases followed by global average pooling is close to invariant to swapping the two halves of the clip (with the
segment pooling below, the same tower reaches 48.9 -> 87.2 % with the recipe's defaults). The BEATs tower with
plain mean pooling learned some order (48.1 -> 62.2 % with the current stage defaults) but not enough. The model
option ``audio_time_segments`` (:class:`~hf_alm.modeling.clap_teminal.ClapTeminalConfig`) makes the pooling itself
order-preserving: the clip vector concatenates the means of K equal time segments of the clip's valid frames. With
K = 2 (the ``small-beats`` preset, the main job's default) the same stages moved order accuracy from 49.4 to 77.9 %
and zero-shot accuracy from 41.9 to 44.4 %; K = 4 gave 53.6 -> 73.1 % (zero-shot 45.0 -> 46.3 %). Over seeds 0 / 1 / 2
that setting (stage B at 4 epochs) gained +28.2 / +13.8 / +21.4 points; with 8 stage-B epochs (the recipe's default
since) +40.0 / +38.1 / +43.1, zero-shot accuracy +16 to +21. Pooling by time segments is our choice, not the paper's
(whose architecture is not public): TeminAL's claim is about the training, and any tower can be post-trained with
``audio_time_segments=1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from hf_alm.data.compositions import (
    concat_events,
    make_compositions,
    noun_phrase,
    overlay_events,
    relation_captions,
)
from hf_alm.data.splits import SourceSplit, split_train_val_test
from hf_alm.evaluation.retrieval import audio_rows, load_clip
from hf_alm.evaluation.zste import ZsteTemplates
from hf_alm.training.losses import contrastive_loss, tact_weighted_loss

__all__ = [
    "TeminalConfig",
    "EventBank",
    "TeminalData",
    "TeminalCollator",
    "prepare_teminal_data",
    "base_items",
    "stage_a_items",
    "stage_b_units",
    "StageItems",
    "STAGE_DRAWS",
    "make_compute_loss",
    "caption_corpus",
    "model_logit_scale",
]

_PEAK = 0.99


@dataclass
class TeminalConfig:
    """Settings of TeminAL-style data and losses (see the module docstring; each has a recipe flag)."""

    window_seconds: float = 2.0
    gap_seconds: tuple = (0.0, 0.2)
    overlap_snr_db: tuple = (-3.0, 3.0)
    event_seconds: float | None = None
    eval_fraction: float = 0.2
    val_fraction: float = 0.1
    split_by: str | None = "auto"
    min_train_per_class: int = 2
    allow_small_split: bool = False
    num_eval_pairs: int = 150
    num_val_pairs: int = 60
    base_views_per_clip: int = 3
    zero_shot_caption_fraction: float = 0.25
    stage_a_items_per_clip: float = 3.0
    stage_a_single_fraction: float = 0.4
    stage_a_overlap_fraction: float = 0.2
    stage_b_units_per_clip: float = 1.5
    stage_b_overlap_fraction: float = 0.5
    stage_b_single_fraction: float = 0.5
    alpha_same: float = 1.0
    alpha_cross: float = 1.0
    label_smoothing: float = 0.0
    seed: int = 0

    def __post_init__(self):
        self.gap_seconds = tuple(float(v) for v in self.gap_seconds)
        self.overlap_snr_db = tuple(float(v) for v in self.overlap_snr_db)
        for name in ("stage_a_single_fraction", "stage_a_overlap_fraction", "stage_b_overlap_fraction",
                     "stage_b_single_fraction", "zero_shot_caption_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]; got {v}")
        if self.stage_a_single_fraction + self.stage_a_overlap_fraction > 1.0:
            raise ValueError("stage_a_single_fraction + stage_a_overlap_fraction must be <= 1; got "
                             f"{self.stage_a_single_fraction} + {self.stage_a_overlap_fraction}")
        if len(self.gap_seconds) != 2 or not 0 <= self.gap_seconds[0] <= self.gap_seconds[1]:
            raise ValueError(f"gap_seconds must be (low, high) with 0 <= low <= high; got {self.gap_seconds}")
        if self.window_seconds <= self.gap_seconds[1] + 0.1:
            raise ValueError(f"window_seconds={self.window_seconds} leaves no room for two events and a gap of "
                             f"{self.gap_seconds[1]} s")
        for name in ("alpha_same", "alpha_cross"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0; got {v}")

    @property
    def event_length_seconds(self) -> float:
        if self.event_seconds is not None:
            return float(self.event_seconds)
        return (self.window_seconds - self.gap_seconds[1]) / 2

    @classmethod
    def from_args(cls, args, **overrides) -> "TeminalConfig":
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in vars(args).items() if k in names and v is not None}
        values.update(overrides)
        return cls(**values)


def _loudest(x: np.ndarray, length: int) -> np.ndarray:
    if len(x) <= length:
        return x
    energy = np.concatenate(([0.0], np.cumsum(x.astype(np.float64) ** 2)))
    start = int(np.argmax(energy[length:] - energy[:-length]))
    return x[start : start + length]


def _class_names(dataset) -> tuple[np.ndarray, list[str]]:
    import datasets

    if "label" not in dataset.column_names:
        raise ValueError("TeminAL-style training composes labelled single-event clips: the dataset needs a 'label' "
                         f"column (and a class name per label); it has {dataset.column_names}")
    feature = dataset.features["label"]
    labels = dataset["label"]
    if isinstance(feature, datasets.ClassLabel):
        return np.asarray(labels, dtype=np.int64), list(feature.names)
    if labels and isinstance(labels[0], str):
        names = sorted(set(labels))
        return np.asarray([names.index(v) for v in labels], dtype=np.int64), names
    ids = np.asarray(labels, dtype=np.int64)
    if "label_name" in dataset.column_names:
        mapping = dict(zip(ids.tolist(), dataset["label_name"]))
    else:
        mapping = {i: str(i) for i in set(ids.tolist())}
    return ids, [mapping.get(i, str(i)) for i in range(int(ids.max()) + 1)]


@dataclass
class EventBank:
    """Single-event clips in memory at one sampling rate, each cut to its loudest ``event_samples`` window."""

    waves: list
    labels: np.ndarray
    class_names: list
    captions: list
    source_ids: list
    sampling_rate: int

    @classmethod
    def from_dataset(cls, dataset, *, sampling_rate: int, event_seconds: float, progress: bool = False) -> "EventBank":
        labels, names = _class_names(dataset)
        length = max(1, int(round(event_seconds * sampling_rate)))
        audio = audio_rows(dataset)
        iterator = range(len(dataset))
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, desc="loading clips", leave=False)
        waves = [_loudest(load_clip(audio[i], sampling_rate).numpy(), length) for i in iterator]
        if "captions" in dataset.column_names:
            captions = [list(c or []) for c in dataset["captions"]]
        else:
            captions = [[] for _ in range(len(dataset))]
        for i, lab in enumerate(labels.tolist()):
            phrase = noun_phrase(names[lab])
            if phrase not in captions[i]:
                captions[i] = [phrase, *captions[i]]
        source_ids = dataset["source_id"] if "source_id" in dataset.column_names else list(range(len(dataset)))
        return cls(waves, labels, names, captions, list(source_ids), int(sampling_rate))

    def __len__(self) -> int:
        return len(self.waves)

    def name(self, i: int) -> str:
        return self.class_names[int(self.labels[i])]

    def singles_rows(self) -> list[dict]:
        """ZSTE rows for zero-shot classification of these clips (as cut for training)."""
        return [{"audio": {"array": w, "sampling_rate": self.sampling_rate}, "label_name": self.name(i)}
                for i, w in enumerate(self.waves)]


@dataclass
class TeminalData:
    """Train bank (training stages), eval singles and eval compositions (ZSTE), all from disjoint source clips."""

    train: EventBank
    eval_singles: list
    eval_compositions: object
    class_names: list
    train_source_ids: set = field(default_factory=set)
    eval_source_ids: set = field(default_factory=set)
    val_singles: list = field(default_factory=list)
    val_compositions: object = None
    val_source_ids: set = field(default_factory=set)
    split: SourceSplit | None = None

    def zste_input(self, side: str = "test") -> dict:
        """ZSTE rows of the ``"test"`` side (the reported numbers) or the ``"val"`` side (model selection)."""
        if side == "val":
            return {"compositions": self.val_compositions, "singles": self.val_singles}
        if side != "test":
            raise ValueError(f"side must be 'test' or 'val'; got {side!r}")
        return {"compositions": self.eval_compositions, "singles": self.eval_singles}

    @property
    def has_validation(self) -> bool:
        return bool(self.val_singles) and self.val_compositions is not None and len(self.val_compositions) > 0


def _compositions(sources, *, num_pairs: int, sampling_rate: int, config: TeminalConfig, seed: int):
    return make_compositions(
        sources, num_pairs=num_pairs, sampling_rate=sampling_rate, seed=seed, gap=config.gap_seconds,
        snr_db=config.overlap_snr_db, max_seconds=config.window_seconds, include_reversed=True, include_overlap=True,
    )


def prepare_teminal_data(dataset, *, sampling_rate: int, config: TeminalConfig, progress: bool = False) -> TeminalData:
    """Split ``dataset`` (single-event clips with labels) into train / validation / test sources
    (:func:`hf_alm.data.splits.split_train_val_test`) and build the validation and test evaluation sets."""
    if "source_id" not in dataset.column_names:
        dataset = dataset.add_column("source_id", list(range(len(dataset))))
    split = split_train_val_test(dataset, test_fraction=config.eval_fraction, val_fraction=config.val_fraction,
                                 by=config.split_by, seed=config.seed, min_train_per_class=config.min_train_per_class,
                                 allow_small=config.allow_small_split)
    event_s = config.event_length_seconds
    bank = lambda src: EventBank.from_dataset(src, sampling_rate=sampling_rate, event_seconds=event_s,
                                              progress=progress)
    train, eval_bank = bank(split.train), bank(split.test)
    compositions = _compositions(split.test, num_pairs=config.num_eval_pairs, sampling_rate=sampling_rate,
                                 config=config, seed=config.seed + 1)
    val_singles, val_compositions, val_ids = [], None, set()
    if len(split.val) and len(set(split.val["label"])) >= 2:
        val_bank = bank(split.val)
        val_singles, val_ids = val_bank.singles_rows(), set(val_bank.source_ids)
        val_compositions = _compositions(split.val, num_pairs=config.num_val_pairs, sampling_rate=sampling_rate,
                                         config=config, seed=config.seed + 2)
    _, names = _class_names(dataset)
    return TeminalData(train=train, eval_singles=eval_bank.singles_rows(), eval_compositions=compositions,
                       class_names=names, train_source_ids=set(train.source_ids),
                       eval_source_ids=set(eval_bank.source_ids), val_singles=val_singles,
                       val_compositions=val_compositions, val_source_ids=val_ids, split=split)


# --------------------------------------------------------------------------------------------------------------------
# item lists (drawn once per stage, seeded)

def _rng(seed: int, stage: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), 0x7E41, stage])


def _pair(rng: np.random.Generator, bank: EventBank) -> tuple[int, int]:
    n = len(bank)
    for _ in range(1000):
        i, j = (int(v) for v in rng.integers(n, size=2))
        if bank.labels[i] != bank.labels[j]:
            return i, j
    raise ValueError("composing two events needs clips of at least two different labels in the training split")


def _seq(rng, bank, cfg):
    i, j = _pair(rng, bank)
    return ("sequence", i, j, float(rng.uniform(*cfg.gap_seconds)), int(rng.integers(1 << 30)))


def _overlap(rng, bank, cfg):
    i, j = _pair(rng, bank)
    return ("overlap", i, j, float(rng.uniform(*cfg.overlap_snr_db)), int(rng.integers(1 << 30)))


def _single(rng, bank, i=None):
    i = int(rng.integers(len(bank))) if i is None else int(i)
    return ("single", i, float(rng.random()), int(rng.integers(1 << 30)))


def _draw_base(rng: np.random.Generator, bank: EventBank, cfg: TeminalConfig, i=None) -> tuple:
    return _single(rng, bank, i)


def _draw_a(rng: np.random.Generator, bank: EventBank, cfg: TeminalConfig) -> tuple:
    u = rng.random()
    if u < cfg.stage_a_single_fraction:
        return _single(rng, bank)
    if u < cfg.stage_a_single_fraction + cfg.stage_a_overlap_fraction:
        return _overlap(rng, bank, cfg)
    return _seq(rng, bank, cfg)


def _draw_b(rng: np.random.Generator, bank: EventBank, cfg: TeminalConfig) -> tuple:
    seq = _seq(rng, bank, cfg)
    extras = []
    if rng.random() < cfg.stage_b_overlap_fraction:
        extras.append(("overlap", seq[1], seq[2], float(rng.uniform(*cfg.overlap_snr_db)),
                       int(rng.integers(1 << 30))))
    if rng.random() < cfg.stage_b_single_fraction:
        extras.append(_single(rng, bank, seq[1 + int(rng.integers(2))]))
    return ("unit", seq, tuple(extras))


STAGE_DRAWS = {"base": (0, _draw_base), "teminal_a": (1, _draw_a), "teminal_b": (2, _draw_b)}


def base_items(bank: EventBank, cfg: TeminalConfig) -> list:
    """Epoch mode: ``base_views_per_clip`` caption views of every training clip."""
    rng = _rng(cfg.seed, 0)
    return [_single(rng, bank, i) for i in range(len(bank)) for _ in range(cfg.base_views_per_clip)]


def stage_a_items(bank: EventBank, cfg: TeminalConfig) -> list:
    """Epoch mode, stage A: single clips, sequences and overlaps of two events (fractions from ``cfg``)."""
    rng = _rng(cfg.seed, 1)
    return [_draw_a(rng, bank, cfg) for _ in range(max(1, int(round(cfg.stage_a_items_per_clip * len(bank)))))]


def stage_b_units(bank: EventBank, cfg: TeminalConfig) -> list:
    """Epoch mode, stage B: units ``(sequence A->B, [extras])``; the collator adds the reversal B->A of each unit."""
    rng = _rng(cfg.seed, 2)
    return [_draw_b(rng, bank, cfg) for _ in range(max(1, int(round(cfg.stage_b_units_per_clip * len(bank)))))]


class StageItems(torch.utils.data.Dataset):
    """Step-budget mode: the items of one stage, drawn fresh from the pair space for every round.

    A stage of ``S`` optimizer steps is trained as ``rounds`` "epochs" of :func:`hf_alm.training.loop.fit` (one
    validation and one checkpoint per round). Item ``k`` of round ``e`` is drawn by the stage's draw function
    (:data:`STAGE_DRAWS`) from its own generator seeded by ``(seed, stage, e, k)``: every round sees new pairs (the
    number of distinct pairs grows with the square of the clip count, so nothing is tied to the dataset size), the
    items do not depend on the order the sampler visits them in, and a run resumed at round ``e`` draws exactly the
    items of an uninterrupted one. ``fit`` calls :meth:`set_epoch` at the start of each round (before its
    DataLoader workers start, so they see it too).
    """

    def __init__(self, stage: str, bank: EventBank, cfg: TeminalConfig, items_per_round: int):
        if stage not in STAGE_DRAWS:
            raise ValueError(f"unknown stage {stage!r}; choose from {', '.join(STAGE_DRAWS)}")
        if int(items_per_round) < 1:
            raise ValueError(f"items_per_round must be >= 1; got {items_per_round}")
        self.stage_id, self.draw = STAGE_DRAWS[stage]
        self.bank, self.cfg, self.n, self.epoch = bank, cfg, int(items_per_round), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, k: int) -> tuple:
        if not 0 <= k < self.n:
            raise IndexError(k)
        rng = np.random.default_rng([int(self.cfg.seed), 0x7E42, self.stage_id, self.epoch, int(k)])
        return self.draw(rng, self.bank, self.cfg)


def reverse_item(item: tuple) -> tuple:
    """The time-reversed version of a sequence item: the same two waveforms and gap, in the other order, captioned
    with the same template (so the two captions differ only in the order of the events)."""
    kind, i, j, gap, template = item
    if kind != "sequence":
        raise ValueError(f"only sequence items have a time-reversed version; got {kind!r}")
    return ("sequence", j, i, gap, template)


# --------------------------------------------------------------------------------------------------------------------
# rendering and batches

def render_item(bank: EventBank, item: tuple, templates: ZsteTemplates, cfg: TeminalConfig) -> tuple[np.ndarray, str]:
    """(waveform, caption) of an item."""
    kind = item[0]
    sr = bank.sampling_rate
    if kind == "single":
        _, i, u, t = item
        name = bank.name(i)
        if u < cfg.zero_shot_caption_fraction:
            return bank.waves[i], templates.zero_shot.format(label=templates.phrase(name))
        caps = bank.captions[i]
        return bank.waves[i], caps[t % len(caps)]
    if kind == "sequence":
        _, i, j, gap, t = item
        wave = concat_events(bank.waves[i], bank.waves[j], sampling_rate=sr, gap=gap)
        caps = relation_captions(bank.name(i), bank.name(j), "before")
    elif kind == "overlap":
        _, i, j, snr, t = item
        wave = overlay_events(bank.waves[i], bank.waves[j], snr_db=snr)
        caps = relation_captions(bank.name(i), bank.name(j), "while")
    else:
        raise ValueError(f"unknown item kind {kind!r}")
    peak = float(np.max(np.abs(wave)))
    if peak > _PEAK:
        wave = wave * np.float32(_PEAK / peak)
    return wave, caps[t % len(caps)]


class TeminalCollator:
    """``collate_fn`` for :func:`hf_alm.training.loop.fit`: renders items, runs the processor, adds ``n_orig``.

    Items are flat (base, stage A) or stage-B units; a batch of units is laid out ``[originals; reversals; extras]``
    with ``n_orig`` = number of units (the layout :func:`~hf_alm.training.losses.tact_weighted_loss` expects).
    """

    def __init__(self, bank: EventBank, processor, cfg: TeminalConfig, templates: ZsteTemplates | None = None):
        self.bank, self.processor, self.cfg = bank, processor, cfg
        self.templates = templates or ZsteTemplates()

    def __call__(self, items: Sequence[tuple]) -> dict:
        if items and items[0][0] == "unit":
            origs = [u[1] for u in items]
            flat = origs + [reverse_item(o) for o in origs] + [e for u in items for e in u[2]]
            n_orig = len(origs)
        else:
            flat, n_orig = list(items), 0
        waves, texts = zip(*(render_item(self.bank, it, self.templates, self.cfg) for it in flat))
        batch = dict(self.processor(text=list(texts), audio=list(waves), sampling_rate=self.bank.sampling_rate,
                                    return_tensors="pt"))
        batch["n_orig"] = torch.tensor(n_orig)
        return batch


def model_logit_scale(model) -> torch.Tensor:
    """The audio->text logit multiplier of a CLAP-style model (``exp(logit_scale_a)``, clamped like the model)."""
    core = getattr(model, "module", model)
    if hasattr(core, "_scales"):
        return core._scales()[0]
    for name in ("logit_scale_a", "logit_scale"):
        if hasattr(core, name):
            return getattr(core, name).exp()
    raise AttributeError(f"{type(core).__name__} has no logit_scale_a / logit_scale parameter")


def make_compute_loss(cfg: TeminalConfig, *, gather: bool = True):
    """``compute_loss(model, batch)`` for ``fit``: the TACT-style loss when the batch has reversals (stage B), plain
    symmetric InfoNCE otherwise; negatives gathered across processes."""

    def compute_loss(model, batch):
        batch = dict(batch)
        n_orig = int(batch.pop("n_orig", 0))
        out = model(**batch, return_loss=False)
        scale = model_logit_scale(model)
        if n_orig > 0:
            loss = tact_weighted_loss(out.audio_embeds, out.text_embeds, scale, n_orig=n_orig,
                                      alpha_same=cfg.alpha_same, alpha_cross=cfg.alpha_cross, gather=gather)
        else:
            loss = contrastive_loss(out.audio_embeds, out.text_embeds, scale, label_smoothing=cfg.label_smoothing,
                                    gather=gather)
        # touch every output so DistributedDataParallel sees a gradient (zero) for the text->audio scale too
        loss = loss + 0.0 * out.logits_per_text.sum()
        return loss, {"logit_scale": scale.detach()}

    return compute_loss


def caption_corpus(bank: EventBank, class_names: Sequence[str], templates: ZsteTemplates | None = None) -> list[str]:
    """Every caption the stages and ZSTE may produce, to train the caption tokenizer on (no eval audio involved)."""
    templates = templates or ZsteTemplates()
    texts = {c for caps in bank.captions for c in caps}
    for a in class_names:
        texts.add(templates.zero_shot.format(label=templates.phrase(a)))
        for b in class_names:
            if a != b:
                for rel in ("before", "after", "while"):
                    texts.update(relation_captions(a, b, rel))
                texts.add(templates.relation("before", a, b))
                texts.add(templates.then.format(a=templates.phrase(a), b=templates.phrase(b)))
    return sorted(texts)


# --------------------------------------------------------------------------------------------------------------------
# step budgets and model selection on the validation split

SELECTION_METRICS = ("order_accuracy", "relation_accuracy", "both_events_accuracy", "zero_shot_accuracy")


def validation_score(metrics: dict) -> float:
    """The model-selection score of ZSTE results: the mean of the four multiple-choice accuracies (order, relation,
    both events, zero-shot) that are present. One rule for every stage, so a stage that gains order by losing
    zero-shot accuracy is not preferred over one that keeps both."""
    values = [float(metrics[k]) for k in SELECTION_METRICS if k in metrics and math.isfinite(float(metrics[k]))]
    if not values:
        raise ValueError(f"no selection metric among {list(metrics)[:8]}...")
    return float(np.mean(values))


def make_validation_fn(processor, data: "TeminalData", *, sampling_rate: int, batch_size: int, seed: int,
                       num_distractors: int):
    """``eval_fn`` for :func:`~hf_alm.training.loop.fit`: ZSTE on the validation side only (never the test clips);
    returns ``val_score`` (:func:`validation_score`) and the four accuracies as ``val_<metric>``."""
    from hf_alm.evaluation.zste import evaluate_zste

    def val_fn(model) -> dict:
        r = evaluate_zste(model, processor, data.zste_input("val"), batch_size=batch_size, sampling_rate=sampling_rate,
                          class_names=data.class_names, num_distractors=num_distractors, seed=seed)
        return {"val_score": validation_score(r), **{f"val_{k}": float(r[k]) for k in SELECTION_METRICS if k in r}}

    return val_fn


def step_budget(steps: int, rounds: int, *, batch_size: int, world_size: int = 1, accumulation: int = 1) -> dict:
    """How a stage of ``steps`` optimizer steps is run as ``rounds`` validation rounds: ``num_epochs`` (= rounds),
    ``items_per_round`` (items of one round over all processes) and the resulting ``total_steps`` (``steps`` rounded
    up to a whole number of rounds)."""
    for name, v in (("steps", steps), ("rounds", rounds), ("batch_size", batch_size), ("world_size", world_size),
                    ("accumulation", accumulation)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}")
    rounds = min(int(rounds), int(steps))
    per_round = math.ceil(steps / rounds)
    return {"num_epochs": rounds, "items_per_round": per_round * batch_size * world_size * accumulation,
            "steps_per_round": per_round, "total_steps": per_round * rounds}


def keep_best_round(model, result, stage_dir) -> dict | None:
    """After a stage's ``fit`` with a validation ``eval_fn``: the round with the highest ``val_score`` (the earliest on
    ties). When it is not the last round its weights are loaded from its checkpoint
    (``stage_dir/epoch_<k>/model.safetensors``) into ``model``. Returns what was kept (round, step, score), or
    ``None`` when the rounds carry no validation score."""
    from pathlib import Path

    scored = [m for m in result.epoch_metrics if "val_score" in m]
    if not scored:
        return None
    best = max(scored, key=lambda m: (m["val_score"], -m["epoch"]))
    last = scored[-1]
    steps = {}
    for rec in result.history:
        steps[rec["epoch"]] = rec["step"]
    kept = {"round": int(best["epoch"]) + 1, "rounds": len(scored), "step": steps.get(best["epoch"]),
            "total_steps": steps.get(last["epoch"]), "val_score": best["val_score"],
            **{k: v for k, v in best.items() if k.startswith("val_") and k != "val_score"}}
    if best["epoch"] != last["epoch"]:
        from safetensors.torch import load_model

        path = Path(stage_dir) / f"epoch_{best['epoch']}" / "model.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"the best validation round's checkpoint is missing: {path}")
        load_model(getattr(model, "module", model), str(path))
    return kept


def summarize_seeds(eval_results: dict, out_path) -> str:
    """Mean and sd over seeds of the test metrics of several runs (``{seed: path to eval_results.json}``): each
    verdict metric before (first stage) and after (last stage) and its change in points. Writes the summary as JSON
    to ``out_path`` (atomically) and returns it as a table."""
    import json
    from pathlib import Path

    from hf_alm.evaluation.zste import VERDICT_METRICS
    from hf_alm.utils import atomic_write_text

    rows: dict = {}
    for seed, path in eval_results.items():
        payload = json.loads(Path(path).read_text())
        first, last = payload["summary"]["compared"]
        for m in VERDICT_METRICS:
            if m in payload[first] and m in payload[last]:
                before, after = 100 * payload[first][m], 100 * payload[last][m]
                for key, v in ((f"{m} before", before), (f"{m} after", after), (f"{m} change", after - before)):
                    rows.setdefault(key, {})[int(seed)] = v
    stats = {k: {"per_seed": v, "mean": float(np.mean(list(v.values()))),
                 "sd": float(np.std(list(v.values()), ddof=1)) if len(v) > 1 else 0.0} for k, v in rows.items()}
    seeds = sorted(int(s) for s in eval_results)
    atomic_write_text(out_path, json.dumps({"seeds": seeds, "metrics": stats}, indent=2) + "\n")
    width = max(len(k) for k in stats) if stats else 10
    lines = [f"test metrics over seeds {', '.join(map(str, seeds))} (%, mean +- sd)"]
    lines += [f"{k.ljust(width)}  {v['mean']:6.1f} +- {v['sd']:4.1f}   ("
              + ", ".join(f"{x:.1f}" for x in v["per_seed"].values()) + ")" for k, v in stats.items()]
    return "\n".join(lines)
