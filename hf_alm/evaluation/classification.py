"""Single-label classification metrics (accuracy, balanced accuracy, macro-F1, confusion matrix) and predictions.

Accuracy comes from our local ``evaluate`` module (``hf_alm/evaluation/metrics/accuracy``), which loads offline;
``evaluate.load("accuracy")`` would need the Hub. Definitions, for ``C`` classes and confusion matrix
``M[r, p]`` (= number of examples of reference class ``r`` predicted as ``p``):

- ``accuracy = trace(M) / sum(M)``
- ``balanced_accuracy`` = mean over classes *present in the references* of ``recall_c = M[c, c] / sum_p M[c, p]``
- ``macro_f1`` = mean over classes present in the references or the predictions of
  ``F1_c = 2 M[c, c] / (sum_p M[c, p] + sum_r M[r, c])``

From scores (:func:`metrics_from_logits`), ties are counted as hf-alm's other metrics count them
(``hf_alm.evaluation.retrieval``): an example whose ``t`` top scores are exactly equal is spread over those ``t``
classes with weight ``1 / t`` each -- the expected confusion matrix under a random tie-break, not ``argmax``'s first
class. Accuracy and balanced accuracy are then the exact expected values (accuracy counts ``1 / t`` when the reference
is among the tied classes); macro-F1 is the F1 of the expected counts. Non-finite scores are refused.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import numpy as np

from hf_alm.evaluation.metrics import metric_path


_METRICS = threading.local()  # an evaluate metric keeps per-call state in compute(): one instance per thread


def _cached_metric(name: str):
    cache = _METRICS.__dict__.setdefault("by_name", {})
    if name not in cache:
        import evaluate

        cache[name] = evaluate.load(metric_path(name))
    return cache[name]


def load_metric(name: str = "accuracy", **kwargs):
    """A fresh local ``evaluate`` module (offline), e.g. ``load_metric("accuracy")``; ``kwargs`` go to
    ``evaluate.load`` (``num_process``, ``process_id``, ``experiment_id`` for distributed evaluation)."""
    import evaluate

    return evaluate.load(metric_path(name), **kwargs)


def _as_labels(values, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of class ids, got shape {arr.shape}")
    if arr.size and (arr.dtype.kind not in "iu" and not np.all(np.equal(np.mod(arr, 1), 0))):
        raise ValueError(f"{name} must be integer class ids, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def confusion_matrix(predictions, references, num_labels: int | None = None, *, sample_weight=None) -> np.ndarray:
    """``M[r, p]`` counts (rows = references, columns = predictions), shape ``(num_labels, num_labels)``; with
    ``sample_weight``, summed weights (float)."""
    preds, refs = _as_labels(predictions, "predictions"), _as_labels(references, "references")
    if preds.shape != refs.shape:
        raise ValueError(f"predictions and references differ in length: {preds.size} vs {refs.size}")
    if preds.size == 0:
        raise ValueError("no predictions to score (got 0)")
    largest = int(max(preds.max(), refs.max()))
    num_labels = largest + 1 if num_labels is None else int(num_labels)
    if min(preds.min(), refs.min()) < 0 or largest >= num_labels:
        raise ValueError(f"class ids must be in [0, {num_labels - 1}], got values from "
                         f"{int(min(preds.min(), refs.min()))} to {largest}")
    if sample_weight is None:
        matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
        np.add.at(matrix, (refs, preds), 1)
        return matrix
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != preds.shape or not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"sample_weight must be finite, non-negative, one per prediction; got shape {weights.shape} "
                         f"for {preds.size} predictions")
    matrix = np.zeros((num_labels, num_labels), dtype=np.float64)
    np.add.at(matrix, (refs, preds), weights)
    return matrix


def classification_metrics(predictions, references, *, num_labels: int | None = None,
                           label_names: Sequence[str] | None = None) -> dict:
    """Accuracy (through the local evaluate module), balanced accuracy, macro-F1, per-class recall and the confusion
    matrix. ``label_names`` (length ``num_labels``) names the per-class entries."""
    return _metrics(predictions, references, None, num_labels=num_labels, label_names=label_names)


def _metrics(predictions, references, weights, *, num_labels, label_names, num_examples=None) -> dict:
    """:func:`classification_metrics` of (prediction, reference) pairs with ``weights`` (``None``: 1 each), e.g. an
    example's tied classes with ``1 / t`` each; ``num_examples`` is the number of original examples."""
    if label_names is not None:
        num_labels = len(label_names) if num_labels is None else num_labels
        if len(label_names) != num_labels:
            raise ValueError(f"label_names has {len(label_names)} names for num_labels={num_labels}")
    matrix = confusion_matrix(predictions, references, num_labels, sample_weight=weights)
    num_labels = matrix.shape[0]
    names = list(label_names) if label_names is not None else [str(i) for i in range(num_labels)]
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    diag = np.diag(matrix).astype(np.float64)
    present = support > 0
    recall = np.divide(diag, support, out=np.zeros_like(diag), where=present)
    f1_den = support + predicted
    f1 = np.divide(2 * diag, f1_den, out=np.zeros_like(diag), where=f1_den > 0)
    accuracy = _cached_metric("accuracy").compute(predictions=_as_labels(predictions, "predictions").tolist(),
                                                  references=_as_labels(references, "references").tolist(),
                                                  sample_weight=None if weights is None else list(weights))
    return {
        "accuracy": float(accuracy["accuracy"]),
        "balanced_accuracy": float(recall[present].mean()),
        "macro_f1": float(f1[f1_den > 0].mean()),
        "per_class_recall": {names[i]: float(recall[i]) for i in range(num_labels) if present[i]},
        "confusion_matrix": matrix.tolist(),
        "label_names": names,
        "num_examples": int(matrix.sum()) if num_examples is None else int(num_examples),
    }


def metrics_from_logits(logits, references, *, num_labels: int | None = None,
                        label_names: Sequence[str] | None = None) -> dict:
    """``classification_metrics`` of the top-scoring class of each row of ``logits`` (``(N, num_labels)``, numpy or
    torch), tie-aware: a row whose ``t`` highest scores are exactly equal counts ``1 / t`` for each of those classes
    (the expected value of a random tie-break; with no ties this is ``argmax``). ``confusion_matrix`` holds
    fractional counts when there are ties. Non-finite logits are a ``ValueError`` naming the row."""
    if hasattr(logits, "detach"):
        logits = logits.detach().double().cpu().numpy()
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (num_examples, num_labels), got {logits.shape}")
    refs = _as_labels(references, "references")
    if refs.size != logits.shape[0]:
        raise ValueError(f"logits and references differ in length: {logits.shape[0]} vs {refs.size}")
    bad = ~np.isfinite(logits)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"logits row {row}: non-finite score {logits[row, col]} (class {col}); logits must be finite")
    num_labels = logits.shape[1] if num_labels is None else num_labels
    top = logits == logits.max(axis=1, keepdims=True)
    rows, preds = np.nonzero(top)
    if len(rows) == len(refs):  # no ties: plain argmax, integer confusion matrix
        return _metrics(preds, refs, None, num_labels=num_labels, label_names=label_names)
    weights = 1.0 / top.sum(axis=1)[rows]
    return _metrics(preds, refs[rows], weights, num_labels=num_labels, label_names=label_names,
                    num_examples=len(refs))


def predict_logits(model, feature_extractor, clips: Iterable, *, sampling_rate: int | None = None,
                   batch_size: int = 16):
    """Logits ``(N, num_labels)`` of an audio classifier over waveforms ``clips`` (1-D arrays at the feature
    extractor's sampling rate), in batches, without gradients."""
    import torch

    sampling_rate = feature_extractor.sampling_rate if sampling_rate is None else sampling_rate
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model.eval()
    outputs, batch = [], []

    def flush():
        inputs = feature_extractor(batch, sampling_rate=sampling_rate, return_tensors="pt")
        with torch.no_grad():
            outputs.append(model(**inputs).logits.float().cpu())
        batch.clear()

    for clip in clips:
        batch.append(np.asarray(clip.detach().cpu() if hasattr(clip, "detach") else clip, dtype=np.float32))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if not outputs:
        raise ValueError("no clips given")
    return torch.cat(outputs)


__all__ = ["classification_metrics", "confusion_matrix", "load_metric", "metrics_from_logits", "predict_logits"]
