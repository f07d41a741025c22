"""Local accuracy evaluate module and classification metrics, checked against hand counts and scikit-learn."""

import numpy as np
import pytest

from hf_alm.evaluation.classification import (
    classification_metrics,
    confusion_matrix,
    load_metric,
    metrics_from_logits,
    predict_logits,
)
from hf_alm.evaluation.metrics import metric_path


def test_accuracy_module_loads_offline_by_path_and_matches_hand_counts(monkeypatch):
    import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    metric = evaluate.load(metric_path("accuracy"))
    assert metric.compute(predictions=[0, 1, 2, 0], references=[0, 1, 1, 0]) == {"accuracy": 0.75}
    assert metric.compute(predictions=[0, 1, 2, 0], references=[0, 1, 1, 0], normalize=False) == {"accuracy": 3.0}
    # weighted: correct examples weigh 1 + 3, wrong ones 4 -> 4 / 8
    assert metric.compute(predictions=[0, 1, 1], references=[0, 0, 1], sample_weight=[1, 4, 3]) == {"accuracy": 0.5}
    # incremental batches (how an evaluation loop uses it)
    metric.add_batch(predictions=[1, 1], references=[1, 0])
    metric.add_batch(predictions=[2], references=[2])
    assert metric.compute()["accuracy"] == pytest.approx(2 / 3)


def test_accuracy_module_bad_input_is_named():
    metric = load_metric("accuracy")
    with pytest.raises(ValueError, match="sample_weight"):
        metric.compute(predictions=[0, 1], references=[0, 1], sample_weight=[-1, 1])
    with pytest.raises(ValueError, match="no local evaluate module named 'f2'"):
        metric_path("f2")


def test_classification_metrics_against_hand_computed_values():
    refs = [0, 0, 0, 1, 1, 2]
    preds = [0, 0, 1, 1, 2, 2]
    out = classification_metrics(preds, refs, label_names=["dog", "rain", "clock"])
    assert out["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # F1: dog 2*2/(3+2)=0.8, rain 2*1/(2+2)=0.5, clock 2*1/(1+2)=2/3
    assert out["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert out["per_class_recall"] == pytest.approx({"dog": 2 / 3, "rain": 0.5, "clock": 1.0})


def test_classification_metrics_match_scikit_learn_on_random_labels():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    refs = rng.integers(0, 7, 500)
    preds = np.where(rng.random(500) < 0.6, refs, rng.integers(0, 7, 500))
    out = classification_metrics(preds, refs, num_labels=7)
    assert out["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(refs, preds))
    assert out["balanced_accuracy"] == pytest.approx(sklearn_metrics.balanced_accuracy_score(refs, preds))
    assert out["macro_f1"] == pytest.approx(sklearn_metrics.f1_score(refs, preds, average="macro"))
    np.testing.assert_array_equal(out["confusion_matrix"], sklearn_metrics.confusion_matrix(refs, preds))


def test_metrics_from_logits_uses_argmax_and_validates_input():
    logits = np.array([[0.1, 2.0], [3.0, -1.0], [0.0, 0.5]])
    assert metrics_from_logits(logits, [1, 0, 0])["accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="differ in length: 2 vs 3"):
        classification_metrics([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match=r"class ids must be in \[0, 1\].*to 2"):
        confusion_matrix([0, 2], [0, 1], num_labels=2)
    with pytest.raises(ValueError, match="got 0"):
        classification_metrics([], [])
    with pytest.raises(ValueError, match=r"got \(3,\)"):
        metrics_from_logits(np.zeros(3), [0, 1, 2])


def test_predict_logits_batches_like_one_call():
    import torch

    from hf_alm.modeling.tiny_edge_transformer import (
        TinyEdgeTransformerConfig,
        TinyEdgeTransformerFeatureExtractor,
        TinyEdgeTransformerForAudioClassification,
    )

    torch.manual_seed(0)
    model = TinyEdgeTransformerForAudioClassification(TinyEdgeTransformerConfig.from_preset("tiny", num_labels=3))
    fe = TinyEdgeTransformerFeatureExtractor()
    rng = np.random.default_rng(1)
    clips = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (8000, 16000, 5000)]
    batched = predict_logits(model, fe, clips, batch_size=2)
    one_by_one = torch.cat([predict_logits(model, fe, [c], batch_size=1) for c in clips])
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=1e-5)
    assert batched.shape == (3, 3)


def test_accuracy_module_refuses_non_integer_class_ids():
    """[0.5, 1.0] against [0, 1] scored 1.0: evaluate cast 0.5 to class 0 silently."""
    metric = load_metric("accuracy")
    with pytest.raises(ValueError, match=r"predictions must be integer class ids; got 0\.5 at position 0"):
        metric.compute(predictions=[0.5, 1.0], references=[0, 1])
    with pytest.raises(ValueError, match=r"references must be integer class ids; got 1\.5 at position 1"):
        metric.compute(predictions=[0, 1], references=[0, 1.5])
    with pytest.raises(ValueError, match=r"predictions must be integer class ids; got nan at position 0"):
        metric.add_batch(predictions=[float("nan")], references=[0])
    with pytest.raises(ValueError, match=r"predictions must be integer class ids; got 0\.25"):
        metric.add(prediction=0.25, reference=0)
    with pytest.raises(ValueError, match=r"predictions must be integer class ids; got dtype <U1"):
        metric.compute(predictions=["a", "b"], references=[0, 1])
    # integral floats are class ids (as classification_metrics accepts them): 2 of 3 right by hand
    assert metric.compute(predictions=[0.0, 1.0, 2.0], references=[0, 1, 1]) == {"accuracy": pytest.approx(2 / 3)}


def _tie_break_average(logits, refs, score):
    """Average of ``score(refs, preds)`` over every way to pick one of each row's top-scoring classes (a random
    tie-break picks each such combination with the same probability)."""
    import itertools

    tops = [np.flatnonzero(row == row.max()) for row in logits]
    values = [score(refs, np.array(choice)) for choice in itertools.product(*tops)]
    return np.mean(values, axis=0)


def test_metrics_from_logits_counts_ties_as_the_average_over_tie_breaks():
    """All-equal logits gave class 0 for every row (argmax): accuracy 1/4 here instead of the expected 1/3."""
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    assert metrics_from_logits(np.zeros((4, 3)), [0, 1, 2, 2])["accuracy"] == pytest.approx(1 / 3)
    rng = np.random.default_rng(0)
    for _ in range(30):
        n, c = int(rng.integers(1, 7)), int(rng.integers(2, 5))
        logits = rng.integers(0, 2, size=(n, c)).astype(np.float64)  # many ties
        refs = rng.integers(0, c, n)
        out = metrics_from_logits(logits, refs)
        assert out["accuracy"] == pytest.approx(_tie_break_average(logits, refs, sklearn_metrics.accuracy_score))
        assert out["balanced_accuracy"] == pytest.approx(
            _tie_break_average(logits, refs, lambda r, p: np.mean([np.mean(p[r == k] == k) for k in np.unique(r)])))
        np.testing.assert_allclose(out["confusion_matrix"], _tie_break_average(
            logits, refs, lambda r, p: sklearn_metrics.confusion_matrix(r, p, labels=range(c))), atol=1e-12)
        # macro-F1 of the expected counts = scikit-learn's F1 with every tied class weighted 1 / (number tied)
        rows, preds = np.nonzero(logits == logits.max(axis=1, keepdims=True))
        weights = 1.0 / (logits == logits.max(axis=1, keepdims=True)).sum(axis=1)[rows]
        assert out["macro_f1"] == pytest.approx(sklearn_metrics.f1_score(refs[rows], preds, average="macro",
                                                                         sample_weight=weights))
        assert out["num_examples"] == n


def test_metrics_from_logits_refuses_non_finite_logits_naming_the_row():
    with pytest.raises(ValueError, match=r"logits row 1: non-finite score nan \(class 0\)"):
        metrics_from_logits(np.array([[0.0, 1.0, 0.0], [np.nan, 0.0, 0.0]]), [1, 1])
    with pytest.raises(ValueError, match=r"logits row 0: non-finite score inf"):
        metrics_from_logits(np.array([[np.inf, 0.0]]), [0])


def test_classification_metrics_from_many_threads_match_the_single_thread_result():
    """The local evaluate module keeps state inside compute(); one instance per thread (it was shared)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from hf_alm.evaluation.classification import classification_metrics

    rng = np.random.default_rng(0)
    cases = [(rng.integers(0, 4, n), rng.integers(0, 4, n)) for n in rng.integers(50, 400, 64)]
    expected = [float(np.mean(p == r)) for p, r in cases]  # accuracy by hand
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda c: classification_metrics(c[0], c[1], num_labels=4)["accuracy"], cases))
    assert got == pytest.approx(expected, abs=1e-12)
