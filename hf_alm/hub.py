"""Publishing hf-alm models to the Hugging Face Hub: a complete, self-describing repository in one commit.

The one entry point, used by ``hf-alm push`` and by every recipe's ``--push_to_hub``::

    from hf_alm.hub import publish

    result = publish(
        model_or_dir,                 # a PreTrainedModel, or a folder written by save_pretrained / a recipe
        repo_id,                      # "user/name" on the Hub
        processor=None,               # a processor / feature extractor / tokenizer to ship (default: the folder's)
        eval_results=None,            # dict, or path to eval_results.json (default: <dir>/eval_results.json)
        private=False,                # create the repository as private
        revision=None,                # branch to commit to (created from main when missing)
        create_pr=False,              # open a pull request instead of committing to the branch
        token=None,                   # default: HF_TOKEN, then the token saved by `hf auth login`
        commit_message=None,          # default: "Upload <ClassName> with hf-alm <version>"
        stage_dir=None,               # keep the staged folder here (default: a temporary folder, removed after)
        endpoint=None,                # Hub URL (default: HF_ENDPOINT or https://huggingface.co)
        timeout=10.0,                 # seconds for the reachability / credentials check before any upload
        **card_kwargs,                # model-card fields: base_model, datasets, dataset_name, weights_license,
                                      # tags, pipeline_tag, language, model_name, training_summary, ...
    ) -> PublishResult                # repo_id, repo_url, commit_url, pr_url, revision, files, stage_dir

What gets staged (atomically, through :func:`hf_alm.utils.atomic_directory`):

* ``model.safetensors`` (+ index when sharded) and ``config.json`` with ``auto_map``, written by ``save_pretrained``;
* the model's remote-code ``.py`` files, including code a model needs from another model folder (CLAP-TeminAL's BEATs
  audio tower: the model module's ``stage_remote_code(folder)`` hook copies it in); the closure is checked: every
  ``from .x import`` and every ``auto_map`` entry must resolve to a staged file;
* the processor / feature extractor / tokenizer files (their ``auto_map`` included);
* ``eval_results.json`` when there is one, and ``README.md``: a model card rendered from ``model_cards/<family>.md``
  (``huggingface_hub.ModelCard`` / ``ModelCardData``) whose ``model-index`` is built from the evaluation results.

Then ``HfApi.create_repo(exist_ok=True)`` and one ``upload_folder`` commit. Before anything else a short request
checks that the Hub is reachable and the token is accepted, so offline mode, DNS failures, refused connections,
timeouts and 401/403 answers become a :class:`HubPublishError` naming the cause within seconds. Publishing never
writes into the source folder.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import math
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

__all__ = [
    "HubPublishError",
    "PublishResult",
    "build_eval_results",
    "detect_family",
    "load_eval_results",
    "publish",
    "render_model_card",
    "stage",
]

WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json")
PREPROCESSOR_FILES = (
    "preprocessor_config.json", "processor_config.json", "feature_extractor_config.json", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt",
    "spiece.model", "sentencepiece.bpe.model", "tokenizer.model",
)
EXTRA_FILES = ("eval_results.json", "train_results.json", "training_args.json", "all_results.json")


class HubPublishError(RuntimeError):
    """Publishing failed; the message names the cause (offline, DNS, refused, 401/403, ...) and what to do."""


@dataclasses.dataclass
class PublishResult:
    repo_id: str
    repo_url: str
    commit_url: str | None
    pr_url: str | None
    revision: str | None
    files: list[str]
    stage_dir: str | None

    def __str__(self) -> str:
        target = self.pr_url or self.commit_url or self.repo_url
        return f"published {len(self.files)} files to {self.repo_id}: {target}"


# ----------------------------------------------------------------------------------------------------- families
def _families() -> dict[str, dict]:
    from hf_alm import model_cards

    path = Path(model_cards.__path__[0]) / "families.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _template_path(family: str) -> Path:
    from hf_alm import model_cards

    return Path(model_cards.__path__[0]) / f"{family}.md"


_INCLUDE = re.compile(r"<!-- include: (_[\w.]+\.md) -->")


def load_template(family: str) -> str:
    """The Jinja template of ``family`` with its ``<!-- include: _part.md -->`` lines expanded (shared sections)."""
    path = _template_path(family)
    if not path.is_file():
        path = _template_path("generic")
    text = path.read_text(encoding="utf-8")
    for _ in range(3):  # nested includes, bounded
        text = _INCLUDE.sub(lambda m: (path.parent / m.group(1)).read_text(encoding="utf-8").rstrip("\n"), text)
    return text


def detect_family(config) -> str:
    """The model-card family (``beats``, ``clap_teminal``, ``tiny_edge``, ``one_peace`` or ``generic``)."""
    model_type = getattr(config, "model_type", None) or (config.get("model_type") if isinstance(config, dict) else None)
    for name, info in _families().items():
        if model_type in info.get("model_types", []):
            return name
    return "generic"


# ------------------------------------------------------------------------------------------------ eval results
_METRIC_LIKE = re.compile(r"(accuracy|(^|_)acc$|recall|(^|_)r@?_?\d+$|(^|_)map$|f1|auc|precision)", re.I)
_NOT_METRIC = re.compile(r"(stdev|_std$|num_items|^num_|_num_|count|loss|time|_s$|_points$|gain|change)", re.I)
_RECALL = re.compile(r"(?:^|_)(?:r|recall)@?_?(\d+)$", re.I)
_META_GROUPS = re.compile(r"^(summary|meta|metadata|config|.*_config|training|timing.*|held_out|args|per_fold)$", re.I)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def is_metric_key(key: str) -> bool:
    """Whether a (flattened) key names a benchmark metric (accuracy, recall@k, mAP, F1, ...), not bookkeeping."""
    leaf = key.rsplit("/", 1)[-1]
    return bool(_METRIC_LIKE.search(leaf)) and not _NOT_METRIC.search(leaf)


def load_eval_results(eval_results) -> dict[str, Any]:
    """Read ``eval_results`` (a dict or a path to JSON) and return the flat metrics of the final stage.

    Accepts a flat ``{"accuracy": 0.9, ...}``; per-stage dicts (``{"base": {...}, "teminal_a": {...},
    "teminal_b": {...}}``): the stage named by a top-level ``"final"`` string, else a ``"final"`` dict, else the last
    stage; and nested metric groups (``{"retrieval": {"text_to_audio_R@1": ...}}``, flattened with ``/``). Groups of
    bookkeeping (``summary``, ``timing_s``, ``training``, ``*_config``...) are never taken for a stage. Top-level
    scalars (``dataset``, ``split``...) are kept for the card.
    """
    if eval_results is None:
        return {}
    if isinstance(eval_results, (str, os.PathLike)):
        path = Path(eval_results)
        if not path.is_file():
            raise FileNotFoundError(f"eval_results file not found: {path}")
        try:
            eval_results = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"eval_results file {path} is not valid JSON: {err}") from err
    if not isinstance(eval_results, dict):
        raise ValueError(f"eval_results must be a dict or a path to a JSON object, got {type(eval_results).__name__}")

    stages = [k for k, v in eval_results.items() if isinstance(v, dict) and not _META_GROUPS.match(str(k))
              and any(is_metric_key(f) and _is_number(x) for f, x in _flatten(v).items())]
    top_metrics = any(is_metric_key(k) and _is_number(v) for k, v in eval_results.items())
    final = eval_results.get("final")
    chosen = None
    if isinstance(final, str) and final in stages:
        chosen = final
    elif "final" in stages:
        chosen = "final"
    elif stages and not top_metrics:
        chosen = stages[-1]
    if chosen is None:
        return _flatten({k: v for k, v in eval_results.items() if not _META_GROUPS.match(str(k))})
    flat = _flatten(eval_results[chosen])
    flat.setdefault("stage", chosen)
    for key, value in eval_results.items():  # shared metadata (dataset, split) outside the stages
        if key not in stages and key != "final" and not isinstance(value, (dict, list)):
            flat.setdefault(key, value)
    return flat


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}/"))
        else:
            out[name] = value
    return out


_RETRIEVAL_DIRECTIONS = (
    (r"(t2a|text_to_audio|text2audio)", "text-to-audio-retrieval", "Text-to-audio retrieval"),
    (r"(a2t|audio_to_text|audio2text)", "audio-to-text-retrieval", "Audio-to-text retrieval"),
    (r"(t2i|text_to_image|text2image)", "text-to-image-retrieval", "Text-to-image retrieval"),
    (r"(i2t|image_to_text|image2text)", "image-to-text-retrieval", "Image-to-text retrieval"),
)


def _metric_spec(key: str, family_task: str) -> dict | None:
    """Map a metric key to EvalResult fields, or None to leave it out of the model-index."""
    if not is_metric_key(key):
        return None
    leaf = key.rsplit("/", 1)[-1]
    low = leaf.lower()
    words = leaf.replace("_", " ")
    recall = _RECALL.search(low)
    if recall:
        k = recall.group(1)
        direction = low[: recall.start()]
        task, task_name = "audio-text-retrieval", "Audio-text retrieval"
        for pattern, t, name in _RETRIEVAL_DIRECTIONS:
            if re.search(pattern, direction):
                task, task_name = t, name
                break
        return dict(task_type=task, task_name=task_name, metric_type=f"recall@{k}", metric_name=f"R@{k}")
    if re.search(r"(order|relation|both_events|zste|temporal)", low) and "zero_shot" not in low:
        prefix = "" if low.startswith("zste") else "ZSTE "
        return dict(task_type="zero-shot-audio-classification", task_name="ZSTE temporal evaluation",
                    metric_type="accuracy" if low.endswith("accuracy") else low, metric_name=prefix + words)
    if ("zero_shot" in low or "zeroshot" in low) and "accuracy" in low:
        return dict(task_type="zero-shot-audio-classification", task_name="Zero-shot audio classification",
                    metric_type="accuracy", metric_name="Zero-shot accuracy")
    if low in {"accuracy", "acc", "eval_accuracy", "test_accuracy"}:
        return dict(task_type="audio-classification", task_name="Audio classification", metric_type="accuracy",
                    metric_name="Accuracy")
    if family_task in ("audio-classification", "feature-extraction"):
        task, task_name = "audio-classification", "Audio classification"
    else:
        task, task_name = family_task, None
    metric_type = "accuracy" if low.endswith("accuracy") and low == "top1_accuracy" else low
    return dict(task_type=task, task_name=task_name, metric_type=metric_type, metric_name=words.capitalize())


def build_eval_results(metrics: dict[str, Any], *, family_task: str = "audio-classification",
                       dataset_name: str | None = None, dataset_type: str | None = None,
                       dataset_split: str | None = None) -> list:
    """Turn flat metrics (see :func:`load_eval_results`) into ``huggingface_hub.EvalResult``s (exact values)."""
    from huggingface_hub import EvalResult

    spec_type, spec_name = _dataset_from_spec(dataset_name or metrics.get("dataset_name") or metrics.get("dataset"))
    dataset_type = dataset_type or spec_type
    dataset_name = spec_name
    dataset_split = dataset_split or (str(metrics["split"]) if metrics.get("split") is not None else None)
    results = []
    for key, value in metrics.items():
        if not _is_number(value):
            continue
        spec = _metric_spec(key, family_task)
        if spec is None:
            continue
        group = key.rsplit("/", 1)[0] if "/" in key else None
        results.append(EvalResult(
            task_type=spec["task_type"], task_name=spec["task_name"], dataset_type=dataset_type,
            dataset_name=dataset_name, dataset_split=dataset_split, metric_type=spec["metric_type"],
            metric_name=spec["metric_name"] if group is None else f"{spec['metric_name']} ({group})",
            metric_value=value,
        ))
    return results


# model-index entries need a dataset type and name: without a stated dataset these say so (no dataset is claimed)
NO_DATASET = ("unspecified", "unspecified dataset")


def _dataset_from_spec(spec) -> tuple[str, str]:
    """(dataset_type, display name) from a recipe's ``--dataset`` spec; local paths never reach the card.

    Without a spec no dataset is claimed: :data:`NO_DATASET` keeps the model-index valid and the card says that the
    dataset was not stated.
    """
    if not spec:
        return NO_DATASET
    spec = str(spec)
    prefix = spec.split(":", 1)[0].strip().lower()
    if prefix in _DATASET_NAMES:
        return prefix, _DATASET_NAMES[prefix]
    if re.fullmatch(r"[\w.-]+/[\w.-]+", spec):  # a Hub dataset id
        return spec, spec
    name = Path(spec.split(":", 1)[-1]).name or prefix
    return prefix or name, name


_DATASET_NAMES = {
    "synthetic": "hf-alm synthetic sound events",
    "audiofolder": "audio folder",
    "esc10": "ESC-10",
    "esc50": "ESC-50",
    "fsdd": "Free Spoken Digit Dataset",
    "audiocaps": "AudioCaps",
    "clotho": "Clotho",
    "audioset": "AudioSet",
}


# -------------------------------------------------------------------------------------------------- model card
def render_model_card(config, *, repo_id: str, eval_results=None, family: str | None = None, **card_kwargs):
    """Render the model card (``huggingface_hub.ModelCard``) for a model config and its evaluation results.

    ``card_kwargs`` override the family defaults of ``model_cards/families.json``: ``base_model``, ``datasets``,
    ``dataset_name``, ``weights_license``, ``code_license``, ``tags`` (added), ``pipeline_tag``, ``language``,
    ``model_name``, ``training_summary`` (free text), ``limitations`` (free text, added).
    """
    from huggingface_hub import ModelCard, ModelCardData

    family = family or detect_family(config)
    info = dict(_families().get(family) or _families()["generic"])
    metrics = load_eval_results(eval_results)
    unknown = set(card_kwargs) - _CARD_KWARGS
    if unknown:
        raise ValueError(f"unknown model-card field(s) {sorted(unknown)}; known: {sorted(_CARD_KWARGS)}")

    architectures = list(getattr(config, "architectures", None) or [])
    arch = architectures[0] if architectures else None
    pipeline_tag = card_kwargs.get("pipeline_tag")
    if pipeline_tag is None:
        by_arch = info.get("pipeline_tag_by_architecture", {})
        pipeline_tag = next((tag for suffix, tag in by_arch.items() if arch and arch.endswith(suffix)),
                            info.get("pipeline_tag"))
    weights_license = card_kwargs.get("weights_license") or info.get("weights_license", "mit")
    code_license = card_kwargs.get("code_license") or info.get("code_license", "mit")
    datasets_meta = card_kwargs.get("datasets")
    if isinstance(datasets_meta, str):
        datasets_meta = [datasets_meta]
    extra_tags = card_kwargs.get("tags") or []
    tags_by_arch = info.get("tags_by_architecture", {})  # e.g. a ONE-PEACE classifier is not tagged zero-shot
    family_tags = next((t for suffix, t in tags_by_arch.items() if arch and arch.endswith(suffix)),
                       info.get("tags", []))
    tags = list(dict.fromkeys(["hf-alm", "audio", "custom_code", *family_tags, *extra_tags]))
    eval_list = build_eval_results(
        metrics, family_task=pipeline_tag or "audio-classification", dataset_name=card_kwargs.get("dataset_name"),
        dataset_type=card_kwargs.get("dataset_type"),
    )
    model_name = card_kwargs.get("model_name") or repo_id.split("/")[-1]
    data = ModelCardData(
        license=weights_license,
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=tags,
        datasets=datasets_meta or None,
        base_model=card_kwargs.get("base_model"),
        language=card_kwargs.get("language"),
        model_name=model_name,
        eval_results=eval_list or None,
    )
    id2label = dict(getattr(config, "id2label", None) or {})
    labels = [str(v) for _, v in sorted(id2label.items(), key=lambda kv: int(kv[0]))] if id2label else []
    fe_sr = card_kwargs.get("sampling_rate") or _guess_sampling_rate(config, info)
    card = ModelCard.from_template(
        data,
        template_str=load_template(family),
        pipeline_tag=pipeline_tag,
        repo_id=repo_id,
        model_name=model_name,
        info=info,
        architecture=arch or type(config).__name__,
        model_type=getattr(config, "model_type", None),
        code_license=code_license,
        weights_license=weights_license,
        labels=labels,
        num_labels=len(labels),
        sampling_rate=fe_sr,
        metrics=[(r.metric_name, r.task_name or r.task_type, r.dataset_name, r.metric_value) for r in eval_list],
        eval_stage=metrics.get("stage"),
        base_model=card_kwargs.get("base_model"),
        training_summary=card_kwargs.get("training_summary"),
        extra_limitations=card_kwargs.get("limitations"),
        dataset_name=_card_dataset_name(eval_list, card_kwargs.get("dataset_name")),
        dataset_unstated=any((r.dataset_type, r.dataset_name) == NO_DATASET for r in eval_list),
        num_parameters=card_kwargs.get("num_parameters"),
        padding_mode=getattr(config, "padding_mode", None),  # BEATs: which padded-batch rule (see the card)
    )
    return card


def _card_dataset_name(eval_list, dataset_spec) -> str | None:
    """The dataset the card's training section names: the evaluation's, else the given spec's; None when unstated."""
    if eval_list:
        name = eval_list[0].dataset_name
        return None if (eval_list[0].dataset_type, name) == NO_DATASET else name
    return _dataset_from_spec(dataset_spec)[1] if dataset_spec else None


_CARD_KWARGS = {
    "base_model", "datasets", "dataset_name", "dataset_type", "weights_license", "code_license", "tags",
    "pipeline_tag", "language", "model_name", "training_summary", "limitations", "sampling_rate", "num_parameters",
}


def _guess_sampling_rate(config, info) -> int:
    for name in ("sampling_rate", "sample_rate"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return int(info.get("sampling_rate", 16000))


# ------------------------------------------------------------------------------------------------------ staging
def _load_model_from_dir(folder: Path):
    """Load the model saved in ``folder`` with hf-alm's own classes (no remote code executed)."""
    import hf_alm  # noqa: F401  (registers the Auto classes)
    from transformers import AutoConfig

    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder} has no config.json: not a saved model folder (expected the output of "
                                f"save_pretrained or of a recipe's --output_dir)")
    raw = json.loads(config_path.read_text(encoding="utf-8"))
    model_type = raw.get("model_type")
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    except (ValueError, KeyError, OSError) as err:
        raise ValueError(f"cannot read the config of {folder} (model_type {model_type!r}): {err}") from err
    architectures = raw.get("architectures") or []
    if not architectures:
        raise ValueError(f"{config_path} has no 'architectures' entry, so the model class is unknown")
    cls = _find_model_class(type(config), architectures[0])
    return cls.from_pretrained(folder)


def _find_model_class(config_cls, name: str):
    package = config_cls.__module__.rsplit(".", 1)[0]
    module = importlib.import_module(package)
    if hasattr(module, name):
        return getattr(module, name)
    folder = Path(module.__file__).parent
    for path in sorted(folder.glob("modeling_*.py")):
        mod = importlib.import_module(f"{package}.{path.stem}")
        if hasattr(mod, name):
            return getattr(mod, name)
    import transformers

    if hasattr(transformers, name):
        return getattr(transformers, name)
    raise ValueError(f"model class {name!r} (config.architectures) not found in {package}")


def _load_preprocessor_from_dir(folder: Path):
    """The processor, else feature extractor, else tokenizer saved in ``folder`` (hf-alm classes), or None."""
    import hf_alm  # noqa: F401
    from transformers import AutoFeatureExtractor, AutoProcessor, AutoTokenizer

    present = {p.name for p in folder.iterdir()}
    loaders = []
    if "processor_config.json" in present:
        loaders.append(AutoProcessor)
    if "preprocessor_config.json" in present or "feature_extractor_config.json" in present:
        loaders += [AutoProcessor, AutoFeatureExtractor]
    if "tokenizer_config.json" in present or "tokenizer.json" in present:
        loaders.append(AutoTokenizer)
    errors = []
    for loader in dict.fromkeys(loaders):
        try:
            return loader.from_pretrained(folder, trust_remote_code=False)
        except Exception as err:  # noqa: BLE001 - try the next kind; reported below if all fail
            errors.append(f"{loader.__name__}: {err}")
    if errors:
        raise ValueError(f"could not load the preprocessing files of {folder}: " + "; ".join(errors))
    return None


def stage(model_or_dir, stage_dir, *, repo_id: str, processor=None, eval_results=None, **card_kwargs) -> Path:
    """Write the complete Hub folder for ``model_or_dir`` to ``stage_dir`` (atomically) and return its path."""
    from transformers import PreTrainedModel

    from hf_alm.utils import atomic_directory

    _check_repo_id(repo_id)
    source_dir: Path | None = None
    if isinstance(model_or_dir, PreTrainedModel):
        model = model_or_dir
    elif isinstance(model_or_dir, (str, os.PathLike)):
        source_dir = Path(model_or_dir)
        if not source_dir.is_dir():
            raise FileNotFoundError(f"model folder not found: {source_dir}")
        model = _load_model_from_dir(source_dir)
    else:
        raise ValueError(f"model_or_dir must be a transformers PreTrainedModel or a folder path, "
                         f"got {type(model_or_dir).__name__}")
    if processor is None and source_dir is not None:
        processor = _load_preprocessor_from_dir(source_dir)
    if processor is None:
        warnings.warn(f"publishing {type(model).__name__} without a processor / feature extractor: the repository "
                      f"will have no preprocessing config, so the model card's snippets cannot run; pass processor=",
                      stacklevel=3)
    if eval_results is None and source_dir is not None and (source_dir / "eval_results.json").is_file():
        eval_results = source_dir / "eval_results.json"
    metrics_raw = None
    if eval_results is not None:
        load_eval_results(eval_results)  # validates (clear errors for a missing file, bad JSON, a non-dict)
        metrics_raw = (json.loads(Path(eval_results).read_text(encoding="utf-8"))
                       if isinstance(eval_results, (str, os.PathLike)) else eval_results)

    stage_dir = Path(stage_dir)
    with atomic_directory(stage_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True) if _accepts_safe(model) else model.save_pretrained(tmp)
        if processor is not None:
            processor.save_pretrained(tmp)
        if source_dir is not None:
            for name in PREPROCESSOR_FILES:  # files the processor object did not rewrite (e.g. extra vocab)
                if (source_dir / name).is_file() and not (tmp / name).exists():
                    shutil.copy2(source_dir / name, tmp / name)
            for name in EXTRA_FILES:
                if (source_dir / name).is_file():
                    shutil.copy2(source_dir / name, tmp / name)
        if metrics_raw is not None:
            (tmp / "eval_results.json").write_text(json.dumps(metrics_raw, indent=2, sort_keys=False) + "\n",
                                                   encoding="utf-8")
        _run_remote_code_hooks(model, processor, tmp)
        _check_remote_code(tmp, model)
        _check_preprocessor_remote_code(processor)
        if hasattr(model, "num_parameters") and "num_parameters" not in card_kwargs:
            card_kwargs["num_parameters"] = f"{model.num_parameters():,}"
        sampling_rate = getattr(processor, "sampling_rate", None) or getattr(
            getattr(processor, "feature_extractor", None), "sampling_rate", None)
        if sampling_rate and "sampling_rate" not in card_kwargs:
            card_kwargs["sampling_rate"] = int(sampling_rate)
        card = render_model_card(model.config, repo_id=repo_id, eval_results=metrics_raw, **card_kwargs)
        (tmp / "README.md").write_text(str(card), encoding="utf-8")
    return stage_dir


def _accepts_safe(model) -> bool:
    import inspect

    return "safe_serialization" in inspect.signature(model.save_pretrained).parameters


def _run_remote_code_hooks(model, processor, folder: Path) -> None:
    """Call ``stage_remote_code(folder)`` of the model's (and processor's) module when it defines one.

    A model that needs code from another model folder (CLAP-TeminAL's BEATs tower) provides the hook; it copies the
    extra files and rewrites its import shim so the folder is self-contained.
    """
    seen = set()
    for obj in (model, processor):
        if obj is None:
            continue
        for klass in type(obj).__mro__:
            module = importlib.import_module(klass.__module__) if klass.__module__ else None
            hook = getattr(module, "stage_remote_code", None)
            if hook is not None and hook not in seen:
                seen.add(hook)
                hook(folder)  # reads folder/config.json when it needs the config
                break


_RELATIVE_IMPORT = re.compile(r"^\s*from\s+\.(\w+)\s+import", re.M)


def _check_remote_code(folder: Path, model) -> None:
    """Every ``auto_map`` entry and every relative import of the staged code must resolve to a staged file."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    auto_map = config.get("auto_map")
    in_transformers = type(model).__module__.startswith("transformers.")
    if not auto_map:
        if in_transformers:
            return
        raise HubPublishError(
            f"{type(model).__name__} does not call register_for_auto_class(...), so config.json has no auto_map and "
            f"the Hub repository could not be loaded without hf-alm; add e.g. "
            f"{type(model).__name__}.register_for_auto_class('AutoModel') to its modeling file")
    needed: set[str] = set()
    for name in ("config.json", "preprocessor_config.json", "processor_config.json", "tokenizer_config.json"):
        path = folder / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        for value in (data.get("auto_map") or {}).values():
            for ref in value if isinstance(value, (list, tuple)) else [value]:
                if ref:
                    needed.add(ref.split("--")[-1].rsplit(".", 1)[0] + ".py")
    for path in folder.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        needed.update(f"{m}.py" for m in _RELATIVE_IMPORT.findall(text))
        try:
            ast.parse(text)
        except SyntaxError as err:
            raise HubPublishError(f"staged remote-code file {path.name} does not parse: {err}") from err
    missing = sorted(n for n in needed if not (folder / n).is_file())
    if missing:
        raise HubPublishError(f"the staged folder is not self-contained: {missing} referenced by auto_map or a "
                              f"relative import but not staged (a model needing another model folder's code must "
                              f"define stage_remote_code(folder) in its modeling module)")


def _check_preprocessor_remote_code(processor) -> None:
    """Custom processors / feature extractors must call ``register_for_auto_class`` so their JSON gets ``auto_map``.

    Without it the Hub repository's preprocessing cannot be loaded without hf-alm (``AutoProcessor`` /
    ``AutoFeatureExtractor`` / the pipelines fail with "Unrecognized feature extractor").
    """
    if processor is None:
        return
    parts = [processor] + [getattr(processor, name, None) for name in ("feature_extractor", "image_processor")]
    for part in parts:
        if part is None or not hasattr(type(part), "_auto_class"):
            continue
        klass = type(part)
        if klass.__module__.startswith("transformers.") or getattr(klass, "_auto_class", None) is not None:
            continue
        kind = "AutoProcessor" if part is processor and len(parts) > 1 and hasattr(part, "feature_extractor") \
            else ("AutoImageProcessor" if "Image" in klass.__name__ else "AutoFeatureExtractor")
        raise HubPublishError(
            f"{klass.__name__} (module {klass.__module__}) does not call register_for_auto_class, so its saved "
            f"config has no auto_map and the Hub repository could not load it without hf-alm; add "
            f"{klass.__name__}.register_for_auto_class({kind!r}) to its file")


# ------------------------------------------------------------------------------------------------------- upload
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")


def _check_repo_id(repo_id) -> None:
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or ".." in repo_id or "--" in repo_id:
        raise ValueError(f"invalid Hub repo_id {repo_id!r}: expected 'user/name' (letters, digits, '-', '_', '.')")


def _resolve_token(token):
    from huggingface_hub import get_token

    return token or get_token()


def _endpoint(endpoint: str | None) -> str:
    from huggingface_hub import constants

    return (endpoint or constants.ENDPOINT).rstrip("/")


def check_hub_access(*, token=None, endpoint=None, timeout: float = 10.0) -> str:
    """Check quickly that the Hub is reachable and accepts ``token``; return the user name.

    Raises :class:`HubPublishError` naming the cause: offline mode, no token, DNS failure, connection refused,
    timeout, or a 401/403 answer.
    """
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers, get_session

    url = _endpoint(endpoint)
    if constants.HF_HUB_OFFLINE:
        raise HubPublishError(f"cannot publish to {url}: offline mode is enabled (HF_HUB_OFFLINE=1); unset it and "
                              f"retry")
    token = _resolve_token(token)
    if not token:
        raise HubPublishError("no Hugging Face token: pass --token / token=..., set HF_TOKEN, or run `hf auth login`")
    try:
        response = get_session().get(f"{url}/api/whoami-v2", headers=build_hf_headers(token=token),
                                     timeout=httpx2.Timeout(timeout))
    except httpx2.ConnectError as err:
        text = str(err)
        if re.search(r"name or service not known|nodename nor servname|getaddrinfo|temporary failure in name|"
                      r"no address associated|name resolution", text, re.I):
            cause = f"DNS lookup failed for {httpx2.URL(url).host} ({text})"
        elif re.search(r"refused", text, re.I):
            cause = f"connection refused by {url} ({text})"
        else:
            cause = f"cannot connect to {url} ({text or type(err).__name__})"
        raise HubPublishError(f"cannot reach the Hugging Face Hub: {cause}; check the network or HF_ENDPOINT") from err
    except httpx2.TimeoutException as err:
        raise HubPublishError(f"cannot reach the Hugging Face Hub: no answer from {url} within {timeout:g} s "
                              f"({type(err).__name__})") from err
    except httpx2.HTTPError as err:
        raise HubPublishError(f"cannot reach the Hugging Face Hub at {url}: {type(err).__name__}: {err}") from err
    if response.status_code in (401, 403):
        raise HubPublishError(
            f"the Hugging Face Hub at {url} rejected the token (HTTP {response.status_code} "
            f"{'Unauthorized' if response.status_code == 401 else 'Forbidden'}): it is invalid, expired, or lacks "
            f"write access; create a write token at https://huggingface.co/settings/tokens")
    if response.status_code >= 400:
        raise HubPublishError(f"the Hugging Face Hub at {url} answered HTTP {response.status_code} to the token check")
    try:
        return str(response.json().get("name", ""))
    except ValueError:
        return ""


def _wrap_hub_error(err: Exception, action: str, repo_id: str) -> HubPublishError:
    status = getattr(getattr(err, "response", None), "status_code", None)
    if status in (401, 403):
        return HubPublishError(f"{action} {repo_id} failed: HTTP {status} "
                               f"({'Unauthorized' if status == 401 else 'Forbidden'}): the token cannot write to "
                               f"{repo_id} (wrong owner/organisation, or a read-only token)")
    return HubPublishError(f"{action} {repo_id} failed: {type(err).__name__}: {err}")


def publish(model_or_dir, repo_id: str, *, processor=None, eval_results=None, private: bool = False,
            revision: str | None = None, create_pr: bool = False, token=None, commit_message: str | None = None,
            stage_dir=None, endpoint: str | None = None, timeout: float = 10.0, **card_kwargs) -> PublishResult:
    """Stage ``model_or_dir`` (see the module docstring) and upload it to ``repo_id`` in one commit."""
    from huggingface_hub import HfApi

    from hf_alm import __version__

    _check_repo_id(repo_id)
    keep = stage_dir is not None
    tmp_root = None
    if stage_dir is None:
        tmp_root = tempfile.mkdtemp(prefix="hf-alm-publish-")
        stage_dir = Path(tmp_root) / repo_id.replace("/", "--")
    try:
        check_hub_access(token=token, endpoint=endpoint, timeout=timeout)  # fail fast, before any heavy work
        folder = stage(model_or_dir, stage_dir, repo_id=repo_id, processor=processor, eval_results=eval_results,
                       **card_kwargs)
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        api = HfApi(endpoint=_endpoint(endpoint), token=_resolve_token(token), library_name="hf-alm",
                    library_version=__version__)
        try:
            repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        except Exception as err:  # noqa: BLE001 - re-raised with the cause named
            raise _wrap_hub_error(err, "creating the repository", repo_id) from err
        repo_id = getattr(repo_url, "repo_id", None) or repo_id  # "name" -> "user/name" (the token's namespace)
        if revision is not None and not create_pr:
            try:
                api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
            except Exception as err:  # noqa: BLE001
                raise _wrap_hub_error(err, f"creating branch {revision!r} of", repo_id) from err
        message = commit_message or f"Upload {_model_name(folder)} with hf-alm {__version__}"
        try:
            info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=message,
                                     revision=revision, create_pr=create_pr, repo_type="model")
        except Exception as err:  # noqa: BLE001
            raise _wrap_hub_error(err, "uploading to", repo_id) from err
        return PublishResult(
            repo_id=repo_id, repo_url=str(repo_url), commit_url=getattr(info, "commit_url", None),
            pr_url=getattr(info, "pr_url", None), revision=revision, files=files,
            stage_dir=str(folder) if keep else None,
        )
    finally:
        if tmp_root is not None:
            shutil.rmtree(tmp_root, ignore_errors=True)


def _model_name(folder: Path) -> str:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))["architectures"][0]
    except (KeyError, IndexError, ValueError, OSError):
        return "model"


def publish_from_args(args, model_dir, *, eval_results=None) -> PublishResult:
    """The ``--push_to_hub`` step every recipe shares (flags of ``hf_alm.training.loop.add_common_args``).

    Publishes ``model_dir`` to ``--hub_model_id`` (default: the output folder's name), private with
    ``--hub_private``, with ``--dataset`` on the card, and prints where it went. Call it on the main process only.
    """
    repo_id = args.hub_model_id or Path(args.output_dir).name
    result = publish(model_dir, repo_id, private=args.hub_private, eval_results=eval_results,
                     dataset_name=getattr(args, "dataset", None))
    print(f"published to {getattr(result, 'repo_url', repo_id)}")
    return result
