"""ZSTE-style multiple-choice scoring as a local ``evaluate`` module (no Hub download): ``evaluate.load("<folder>")``.

Takes precomputed similarities -- one list of candidate scores per item (e.g. cosine similarities of a clip with each
candidate caption) and the index of the correct candidate -- and returns accuracy (overall and per task) and
recall@k. It is what ``hf_alm.evaluation.zste.evaluate_zste`` computes after embedding, made available to any
pipeline that produces its own scores.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """ZSTE-style zero-shot temporal evaluation scoring (TeminAL-style, arXiv 2408.09269; the paper's exact
tasks are not public). For each item, `predictions` holds the scores of its candidates and `references` the index of
the correct one. accuracy = mean over items of 1[correct candidate has the highest score]; when the correct candidate
ties with others for the maximum (exactly equal scores), the item counts 1/(number tied), the expected value of a
random tie-break. recall@k = mean of the (tie-aware) probability that the correct candidate is among the top k:
clip((k - ahead) / tied, 0, 1) with `ahead` candidates scoring strictly higher and `tied` (the correct one included)
scoring exactly the same -- the definition hf_alm.evaluation.retrieval uses for every metric. Non-finite scores are
refused."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): per item, the score of every candidate (items may have different
        numbers of candidates).
    references (`list` of `int`): per item, the index of the correct candidate.
    tasks (`list` of `str`, optional): per item, a task name (e.g. "order", "relation", "both_events"); adds
        `<task>_accuracy` and `<task>_num_items` for each task.
    k_values (`list` of `int`, defaults to [1, 5, 10]): the k of recall@k (only k < the largest candidate count).
Returns:
    accuracy (`float`), num_items (`int`), recall@k (`float`), and per task <task>_accuracy / <task>_num_items.
Examples:
    >>> zste = evaluate.load("hf_alm/evaluation/metrics/zste")
    >>> zste.compute(predictions=[[0.9, 0.1], [0.2, 0.7]], references=[0, 0], tasks=["order", "order"])["accuracy"]
    0.5
"""

_CITATION = """@article{sinha2024teminal, title={Enhancing Audio-Language Models through Self-Supervised Post-Training
with Text-Audio Pairs}, author={Sinha, Anshuman and Migozzi, Camille and Rey, Aubin and Zhang, Chao},
journal={arXiv preprint arXiv:2408.09269}, year={2024}}"""


def _hit_probability(scores, answer, k):
    """P(correct candidate within the top k) under a uniformly random order of the candidates tied with it (exactly
    equal scores; as ``hf_alm.evaluation.retrieval.tie_aware_hit_probability`` with one correct candidate)."""
    target = scores[answer]
    ahead = int(np.sum(scores > target))
    tied = int(np.sum(scores == target))
    return float(np.clip((k - ahead) / tied, 0.0, 1.0))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Zste(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("float64")),
                                        "references": datasets.Value("int64")}),
            reference_urls=["https://arxiv.org/abs/2408.09269"],
        )

    def _compute(self, predictions, references, tasks=None, k_values=(1, 5, 10)):
        if len(predictions) != len(references):
            raise ValueError(f"predictions and references differ in length: {len(predictions)} vs {len(references)}")
        if not predictions:
            raise ValueError("ZSTE scoring of an empty set of items is undefined (got 0 items)")
        if tasks is not None and len(tasks) != len(references):
            raise ValueError(f"tasks has {len(tasks)} entries for {len(references)} items")
        rows = [np.asarray(p, dtype=np.float64) for p in predictions]
        for i, (row, ref) in enumerate(zip(rows, references)):
            if row.ndim != 1 or row.size == 0:
                raise ValueError(f"item {i}: predictions must be a non-empty list of scores, got {predictions[i]!r}")
            if not 0 <= int(ref) < row.size:
                raise ValueError(f"item {i}: reference index {ref} is out of range for {row.size} candidates")
            if not np.isfinite(row).all():
                j = int(np.flatnonzero(~np.isfinite(row))[0])
                raise ValueError(f"item {i}: non-finite score {row[j]} (candidate {j}); scores must be finite")
        acc = np.array([_hit_probability(r, int(a), 1) for r, a in zip(rows, references)])
        out = {"accuracy": float(acc.mean()), "num_items": len(rows)}
        max_candidates = max(r.size for r in rows)
        for k in k_values:
            k = int(k)
            if k < 1:
                raise ValueError(f"k_values must be >= 1, got {k}")
            if k < max_candidates:
                out[f"recall@{k}"] = float(np.mean([_hit_probability(r, int(a), k)
                                                    for r, a in zip(rows, references)]))
        if tasks is not None:
            for task in sorted(set(tasks)):
                sel = np.array([t == task for t in tasks])
                out[f"{task}_accuracy"] = float(acc[sel].mean())
                out[f"{task}_num_items"] = int(sel.sum())
        return out
