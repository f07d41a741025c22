"""Accuracy as a local ``evaluate`` module (no Hub download): ``evaluate.load("<this folder>")``."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Accuracy: the fraction of predictions equal to their reference label,
accuracy = (1/N) * sum_i 1[prediction_i == reference_i] (weighted by sample_weight when given)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class ids (integers; floats only when integral, e.g. 1.0 -- 0.5 or a
        score is refused rather than cast).
    references (`list` of `int`): ground-truth class ids, same length, same rule.
    normalize (`bool`, defaults to True): False returns the number (or total weight) of correct predictions.
    sample_weight (`list` of `float`, optional): non-negative per-example weights.
Returns:
    accuracy (`float`): in [0, 1] when normalize is True.
Examples:
    >>> accuracy = evaluate.load("hf_alm/evaluation/metrics/accuracy")
    >>> accuracy.compute(predictions=[0, 1, 2, 0], references=[0, 1, 1, 0])
    {'accuracy': 0.75}
"""


def _check_class_ids(values, name):
    """``ValueError`` unless ``values`` (one batch) are integer class ids: integers, or floats with integral values.
    Runs before ``evaluate`` casts the batch to int64, which would silently truncate 0.5 to 0."""
    if values is None:
        return
    arr = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values)
    if arr.dtype.kind in "iub":
        return
    if arr.dtype.kind != "f":
        raise ValueError(f"{name} must be integer class ids; got dtype {arr.dtype} (e.g. {arr.ravel()[:3].tolist()})")
    bad = ~np.isfinite(arr) | (np.mod(np.where(np.isfinite(arr), arr, 0), 1) != 0)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"{name} must be integer class ids; got {arr.ravel()[i].item()!r} at position {i} (use the "
                         "argmax of scores / logits, not the scores)")


_CITATION = """@misc{hf_alm_accuracy, title={Accuracy (hf-alm local evaluate module)}, year={2026}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}),
            reference_urls=["https://en.wikipedia.org/wiki/Accuracy_and_precision"],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of predictions and references (integer class ids, checked before evaluate casts them)."""
        _check_class_ids(predictions, "predictions")
        _check_class_ids(references, "references")
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one prediction and reference (integer class ids, checked before evaluate casts them)."""
        _check_class_ids(None if prediction is None else [prediction], "predictions")
        _check_class_ids(None if reference is None else [reference], "references")
        return super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        predictions = np.asarray(predictions, dtype=np.int64)
        references = np.asarray(references, dtype=np.int64)
        if predictions.shape != references.shape:
            raise ValueError(f"predictions and references differ in length: {predictions.shape[0]} vs "
                             f"{references.shape[0]}")
        if predictions.size == 0:
            raise ValueError("accuracy of an empty set of predictions is undefined (got 0 predictions)")
        correct = (predictions == references).astype(np.float64)
        if sample_weight is None:
            weights = np.ones_like(correct)
        else:
            weights = np.asarray(sample_weight, dtype=np.float64)
            if weights.shape != correct.shape:
                raise ValueError(f"sample_weight has {weights.shape[0] if weights.ndim else 0} values for "
                                 f"{correct.shape[0]} predictions")
            if np.any(weights < 0) or not np.isfinite(weights).all() or weights.sum() <= 0:
                raise ValueError(f"sample_weight must be finite, non-negative and not all zero, got {weights.tolist()}")
        total = float((correct * weights).sum())
        return {"accuracy": total / float(weights.sum()) if normalize else total}
