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
