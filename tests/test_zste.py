"""ZSTE-style evaluation: exact scores for an oracle with known answers, an order-blind model at chance, agreement with
transformers' own ClapModel forward, the local `evaluate` module, and the reporting helpers."""

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from hf_alm.evaluation.retrieval import multiple_choice_accuracy, recall_at_k, retrieval_metrics
from hf_alm.evaluation.zste import ZsteTemplates, build_zste_items, evaluate_zste, format_zste_table, write_zste_json

SR = 8000
CLASSES = {"alpha_tone": 300.0, "beta_tone": 700.0, "gamma_tone": 1100.0, "delta_tone": 1500.0, "eps_tone": 1900.0}
NAMES = list(CLASSES)


def _tone(name, seconds):
    t = np.arange(int(SR * seconds)) / SR
    return 0.5 * np.sin(2 * np.pi * CLASSES[name] * t).astype(np.float32)


def _rows():
    comps, singles = [], []
    pairs = [("alpha_tone", "beta_tone"), ("gamma_tone", "alpha_tone"), ("delta_tone", "eps_tone"),
             ("beta_tone", "gamma_tone"), ("eps_tone", "alpha_tone")]
    for a, b in pairs:
        comps.append({"audio": {"array": np.concatenate([_tone(a, 0.25), _tone(b, 0.25)]), "sampling_rate": SR},
                      "kind": "sequence", "first": a, "second": b})
    for a, b in pairs[:3]:
        comps.append({"audio": {"array": 0.5 * (_tone(a, 0.5) + _tone(b, 0.5)), "sampling_rate": SR},
                      "kind": "overlap", "first": a, "second": b})
    for name in NAMES:
        singles.append({"audio": {"array": _tone(name, 0.5), "sampling_rate": SR}, "label_name": name})
    return comps, singles


class _FeatureExtractor:
    sampling_rate = SR


class OracleProcessor:
    feature_extractor = _FeatureExtractor()

    def __call__(self, audio=None, text=None, sampling_rate=None, return_tensors=None, **kwargs):
        if audio is not None:
            assert sampling_rate == SR
            n = max(len(a) for a in audio)
            x = torch.zeros(len(audio), n)
            for i, a in enumerate(audio):
                x[i, : len(a)] = torch.as_tensor(a)
            return {"input_values": x, "lengths": torch.tensor([len(a) for a in audio])}
        return {"texts": list(text)}


class OracleModel(torch.nn.Module):
    """Reads the two halves of a clip (tone energies) and parses captions: it knows every answer. With
    ``order_blind=True`` the audio side averages both halves, so it cannot tell the order."""

    def __init__(self, order_blind=False):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.order_blind = order_blind
        self.phrases = {n.replace("_", " "): i for i, n in enumerate(NAMES)}

    def _energies(self, x):
        t = torch.arange(len(x)) / SR
        e = torch.stack([(x * torch.sin(2 * math.pi * f * t)).sum() ** 2 + (x * torch.cos(2 * math.pi * f * t)).sum()
                         ** 2 for f in CLASSES.values()])
        e = torch.where(e > 0.1 * e.max(), e, torch.zeros_like(e))
        return e / e.sum()

    def get_audio_features(self, input_values, lengths):  # returns a plain tensor (older transformers style)
        out = []
        for x, n in zip(input_values, lengths):
            x = x[: int(n)].double()
            s1, s2 = self._energies(x[: len(x) // 2]), self._energies(x[len(x) // 2 :])
            if self.order_blind:
                s1 = s2 = 0.5 * (s1 + s2)
            out.append(torch.cat([s1, s2]).float())
        return torch.stack(out)

    def _onehot(self, phrase):
        v = torch.zeros(len(NAMES))
        v[self.phrases[phrase.strip()]] = 1
        return v

    def get_text_features(self, texts):  # returns a ModelOutput with pooler_output (transformers v5 style)
        out = []
        for t in texts:
            m = re.fullmatch(r"This is a sound of (.+)\.", t)
            if m:
                v = self._onehot(m.group(1))
                out.append(torch.cat([v, v]))
                continue
            m = re.fullmatch(r"(.+) (before|after|then|while) (.+)", t)
            a, word, b = self._onehot(m.group(1).rstrip(",")), m.group(2), self._onehot(m.group(3))
            if word == "after":
                a, b = b, a
            if word == "while":
                a = b = 0.5 * (a + b)
            out.append(torch.cat([a, b]))
        return BaseModelOutputWithPooling(pooler_output=torch.stack(out))


def test_oracle_scores_perfectly():
    comps, singles = _rows()
    res = evaluate_zste(OracleModel(), OracleProcessor(), {"compositions": comps, "singles": singles}, batch_size=3)
    for key in ("order_accuracy", "relation_accuracy", "both_events_accuracy", "zero_shot_accuracy",
                "audio_to_text_R@1", "text_to_audio_R@1", "audio_to_text_R@5", "text_to_audio_R@5"):
        assert res[key] == pytest.approx(1.0), key
    assert "audio_to_text_R@10" not in res and "text_to_audio_R@10" not in res  # 8 clips: R@10 says nothing
    assert res["order_num_items"] == 5 * 3  # 5 sequence clips x (before, after, then)
    assert res["relation_num_items"] == 8 * 2
    assert res["both_events_num_items"] == 8
    assert res["both_events_num_choices"] == 5 and res["both_events_chance"] == pytest.approx(1 / 5)
    assert res["zero_shot_num_items"] == 5 and res["zero_shot_num_classes"] == 5
    assert res["retrieval_num_audio"] == 8 and res["retrieval_num_texts"] == 8 and res["retrieval_num_skipped"] == 0


def test_order_blind_model_is_at_chance_on_order_only():
    comps, singles = _rows()
    res = evaluate_zste(OracleModel(order_blind=True), OracleProcessor(), comps + singles, batch_size=4)
    assert res["order_accuracy"] == pytest.approx(0.5)  # exact ties: half credit, not the first choice
    # sequence clips look like overlaps to it: relation is right only for the 3 overlap clips
    assert res["relation_accuracy"] == pytest.approx(3 / 8)
    assert res["both_events_accuracy"] == pytest.approx(1.0)  # which events, not their order
    assert res["zero_shot_accuracy"] == pytest.approx(1.0)


def test_items_are_deterministic_and_well_formed():
    comps, _ = _rows()
    items1 = build_zste_items(comps, class_names=NAMES, num_distractors=3, seed=5)
    items2 = build_zste_items(comps, class_names=NAMES, num_distractors=3, seed=5)
    assert [(i.task, i.choices, i.answer) for i in items1] == [(i.task, i.choices, i.answer) for i in items2]
    t = ZsteTemplates()
    for it in items1:
        row = comps[it.clip]
        assert len(set(it.choices)) == len(it.choices), it
        if it.task == "both_events":
            assert len(it.choices) == 4
            assert it.choices[it.answer] == t.true_caption(row["kind"], row["first"], row["second"])
        if it.task == "order" and it.variant == "after":
            assert it.choices[it.answer] == f"{row['second'].replace('_', ' ')} after {row['first'].replace('_', ' ')}"
    answers = [i.answer for i in items1 if i.task == "both_events"]
    assert len(set(answers)) > 1  # the correct caption is not always in the same position


def test_bad_input_is_named():
    comps, _ = _rows()
    with pytest.raises(ValueError, match="kind must be.*'mixture'"):
        build_zste_items([dict(comps[0], kind="mixture")])
    with pytest.raises(ValueError, match="unknown ZSTE task.*'speed'"):
        evaluate_zste(OracleModel(), OracleProcessor(), comps, tasks=("speed",))
    with pytest.raises(ValueError, match="both events are 'alpha_tone'"):
        build_zste_items([dict(comps[0], second="alpha_tone")])


def test_metric_helpers_against_hand_computed_values():
    assert multiple_choice_accuracy([[0.1, 0.9], [0.5, 0.5], [0.3, 0.2, 0.3]], [1, 0, 2]) == pytest.approx(
        (1 + 0.5 + 0.5) / 3)
    sim = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8], [0.7, 0.6, 0.1]])
    # query 0 correct=0 (rank 0); query 1 correct=1 (rank 1); query 2 correct=2 (rank 2); R@3 of 3 candidates omitted
    r = recall_at_k(sim, [[0], [1], [2]], ks=(1, 2, 3))
    assert r == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3)}
    out = retrieval_metrics(torch.eye(3), torch.eye(3)[[0, 1]], [[0], [1], [1]], ks=(1,))
    # clip 2 is orthogonal to both texts: its caption ties with the other text -> half a hit, not a miss by column order
    assert out["audio_to_text_R@1"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert out["text_to_audio_R@1"] == pytest.approx(1.0)


def _tiny_transformers_clap():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapTextConfig,
                              PreTrainedTokenizerFast)

    words = ["<pad>", "<s>", "</s>", "<unk>", "this", "is", "a", "sound", "of", ".", ",", "before", "after", "then",
             "while"] + sorted({w for n in NAMES for w in n.split("_")})
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                        eos_token="</s>", model_max_length=32)
    tokenizer.backend_tokenizer.normalizer = None
    torch.manual_seed(0)
    audio = ClapAudioConfig(num_mel_bins=16, spec_size=32, patch_size=4, patch_stride=[4, 4], window_size=4,
                            patch_embeds_hidden_size=16, depths=[1, 1], num_attention_heads=[2, 2], hidden_size=32,
                            mlp_ratio=2.0)
    text = ClapTextConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=40, pad_token_id=0)
    model = ClapModel(ClapConfig(audio_config=audio.to_dict(), text_config=text.to_dict(), projection_dim=16)).eval()
    fe = ClapFeatureExtractor(feature_size=16, sampling_rate=48000, hop_length=480, max_length_s=0.5,
                              truncation="rand_trunc", padding="repeatpad")

    class Proc:  # a processor in the ClapProcessor calling convention
        feature_extractor = fe

        def __call__(self, audio=None, text=None, sampling_rate=None, return_tensors="pt", **kw):
            if audio is not None:
                return fe(audio, sampling_rate=sampling_rate, return_tensors=return_tensors)
            enc = tokenizer([t.lower() for t in text], return_tensors=return_tensors, padding=True)
            return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    return model, Proc()


def test_transformers_clapmodel_agrees_with_its_own_forward():
    from hf_alm.data.audio import load_audio

    model, proc = _tiny_transformers_clap()
    comps, singles = _rows()
    res = evaluate_zste(model, proc, {"compositions": comps, "singles": singles}, batch_size=4)
    # independent path: the model's own forward (logits_per_audio), one clip at a time, over each item's choices
    items = [i for i in build_zste_items(comps, class_names=NAMES) if i.task == "order"]
    hits = []
    with torch.no_grad():
        for it in items:
            wav = load_audio(comps[it.clip]["audio"], 48000).numpy()
            a = proc(audio=[wav], sampling_rate=48000)
            t = proc(text=it.choices)
            logits = model(input_features=a["input_features"], is_longer=a.get("is_longer"), **t).logits_per_audio
            hits.append(float(logits[0].argmax() == it.answer))
    assert res["order_accuracy"] == pytest.approx(np.mean(hits), abs=1e-9)
    for key in ("relation_accuracy", "both_events_accuracy", "zero_shot_accuracy", "text_to_audio_R@5"):
        assert 0.0 <= res[key] <= 1.0
    # deterministic: the same numbers a second time
    assert evaluate_zste(model, proc, {"compositions": comps, "singles": singles}, batch_size=3) == res


def test_table_and_json(tmp_path):
    table = format_zste_table({"base": {"order_accuracy": 0.5, "zero_shot_accuracy": 0.8},
                               "teminal": {"order_accuracy": 0.75, "zero_shot_accuracy": 0.79}})
    lines = table.splitlines()
    assert "base" in lines[1] and "teminal" in lines[1] and "delta" in lines[1]
    assert re.search(r"order_accuracy\s+-\s+50\.0\s+75\.0\s+\+25\.0", table)  # no chance level known: "-"
    assert re.search(r"zero_shot_accuracy\s+-\s+80\.0\s+79\.0\s+-1\.0", table)
    path = tmp_path / "out" / "eval_results.json"
    write_zste_json(path, {"base": {"order_accuracy": 0.5}}, extra={"dataset": "synthetic"})
    assert json.loads(path.read_text()) == {"dataset": "synthetic", "base": {"order_accuracy": 0.5}}
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_evaluate_module_loads_offline_and_matches():
    import evaluate

    path = Path(__file__).resolve().parents[1] / "hf_alm" / "evaluation" / "metrics" / "zste"
    metric = evaluate.load(str(path))
    scores = [[0.1, 0.9], [0.5, 0.5], [0.3, 0.2, 0.3], [0.9, 0.1, 0.0, 0.2]]
    refs = [1, 0, 2, 3]
    out = metric.compute(predictions=scores, references=refs, tasks=["order", "order", "relation", "both_events"],
                         k_values=[1, 2])
    assert out["accuracy"] == pytest.approx(multiple_choice_accuracy(scores, refs))
    assert out["order_accuracy"] == pytest.approx(0.75)
    assert out["relation_accuracy"] == pytest.approx(0.5)
    assert out["both_events_accuracy"] == pytest.approx(0.0)
    assert out["recall@1"] == pytest.approx(out["accuracy"])
    assert out["recall@2"] == pytest.approx(1.0)  # last item: the answer ranks second; ties fit in the top 2
    with pytest.raises(ValueError, match="reference index 5 is out of range for 2"):
        metric.compute(predictions=[[0.1, 0.2]], references=[5])


# --- fixes: overlap twins in retrieval, both-events chance, ties, NaN, R@k with k >= candidates, bad input ---------

def _overlap(a, b):
    return {"audio": {"array": 0.5 * (_tone(a, 0.5) + _tone(b, 0.5)), "sampling_rate": SR}, "kind": "overlap",
            "first": a, "second": b}


def _sequence(a, b):
    return {"audio": {"array": np.concatenate([_tone(a, 0.25), _tone(b, 0.25)]), "sampling_rate": SR},
            "kind": "sequence", "first": a, "second": b}


def test_retrieval_keeps_one_clip_of_each_overlap_twin():
    """A + B and B + A are the same sound and "A while B" / "B while A" mean the same: with both in the retrieval set
    a perfect model got R@1 = 0.75 here (each twin's caption was counted as a wrong answer)."""
    comps = [_overlap("alpha_tone", "beta_tone"), _overlap("beta_tone", "alpha_tone"),
             _sequence("gamma_tone", "delta_tone"), _sequence("delta_tone", "gamma_tone")]
    res = evaluate_zste(OracleModel(), OracleProcessor(), comps, tasks=("retrieval",), ks=(1,))
    assert res == {"audio_to_text_R@1": 1.0, "text_to_audio_R@1": 1.0, "retrieval_num_audio": 3,
                   "retrieval_num_texts": 3, "retrieval_num_skipped": 1,
                   "audio_to_text_R@1_ci95": [1.0, 1.0], "text_to_audio_R@1_ci95": [1.0, 1.0],
                   "audio_to_text_R@1_chance": pytest.approx(1 / 3), "text_to_audio_R@1_chance": pytest.approx(1 / 3)}
    # default settings, every ordered pair of the 5 classes as a sequence and as an overlap: 20 + 20 clips, of which
    # 10 overlaps are twins (and a repeated sequence pair is left out too)
    pairs = [(a, b) for a in NAMES for b in NAMES if a != b]
    comps = [_sequence(a, b) for a, b in pairs] + [_overlap(a, b) for a, b in pairs] + [_sequence(*pairs[0])]
    res = evaluate_zste(OracleModel(), OracleProcessor(), comps, batch_size=16)
    for key in ("audio_to_text_R@1", "audio_to_text_R@5", "audio_to_text_R@10", "text_to_audio_R@1",
                "text_to_audio_R@5", "text_to_audio_R@10"):
        assert res[key] == 1.0, key
    assert (res["retrieval_num_audio"], res["retrieval_num_skipped"]) == (30, 11)


def test_both_events_reports_fewer_choices_than_asked_and_warns(caplog):
    """3 classes allow only 2 distinct distractors of "A before B" ("C before B", "A before C"): 3 choices, chance
    1/3, not the 1/5 that num_distractors=4 promises -- it was silent."""
    names = ["alpha_tone", "beta_tone", "gamma_tone"]
    comps = [_sequence("alpha_tone", "beta_tone"), _overlap("beta_tone", "gamma_tone")]
    with caplog.at_level("WARNING", logger="hf_alm.evaluation.zste"):
        items = build_zste_items(comps, class_names=names, num_distractors=4)
    both = [it for it in items if it.task == "both_events"]
    assert sorted(both[0].choices) == ["alpha tone before beta tone", "alpha tone before gamma tone",
                                       "gamma tone before beta tone"]
    assert [len(it.choices) for it in both] == [3, 3]
    assert "fewer than the 4 requested distractors" in caplog.text and "3 event classes" in caplog.text
    res = evaluate_zste(OracleModel(), OracleProcessor(), comps, class_names=names, num_distractors=4)
    assert res["both_events_num_choices"] == 3 and res["both_events_chance"] == pytest.approx(1 / 3)
    assert res["both_events_accuracy"] == 1.0
    caplog.clear()
    with caplog.at_level("WARNING", logger="hf_alm.evaluation.zste"):
        build_zste_items(comps, class_names=NAMES, num_distractors=4)  # 5 classes: enough, no warning
    assert caplog.text == ""


def _brute_force_hit(row, positives, k):
    """Average over every order of the candidates (as the tie-break of a stable sort by score) of 1[a positive in
    the top k]."""
    n, hits, count = len(row), 0, 0
    for perm in itertools.permutations(range(n)):
        ranked = sorted(range(n), key=lambda j: (-row[j], perm[j]))
        hits += any(j in positives for j in ranked[:k])
        count += 1
    return hits / count


def test_ties_count_as_the_average_over_all_tie_orders():
    import evaluate

    from hf_alm.evaluation.metrics import metric_path

    rng = np.random.default_rng(0)
    metric = evaluate.load(metric_path("zste"))
    for _ in range(40):
        q, n = int(rng.integers(1, 4)), int(rng.integers(3, 7))
        sim = rng.integers(0, 3, size=(q, n)).astype(np.float64) / 4  # few distinct values: many ties
        pos = [sorted(set(rng.integers(0, n, size=int(rng.integers(1, 3))).tolist())) for _ in range(q)]
        got = recall_at_k(torch.tensor(sim), pos, ks=(1, 2, 3))
        for k, v in got.items():
            assert v == pytest.approx(np.mean([_brute_force_hit(sim[i], pos[i], k) for i in range(q)])), (sim, pos, k)
        answers = [p[0] for p in pos]
        want_acc = np.mean([_brute_force_hit(sim[i], [answers[i]], 1) for i in range(q)])
        assert multiple_choice_accuracy(sim.tolist(), answers) == pytest.approx(want_acc)
        out = metric.compute(predictions=sim.tolist(), references=answers, k_values=[1, 2])
        assert out["accuracy"] == pytest.approx(want_acc)
        assert out["recall@2"] == pytest.approx(np.mean([_brute_force_hit(sim[i], [answers[i]], 2) for i in range(q)]))
    # the auditor's case: all scores equal, 10 clips x 5 captions. audio->text R@5 = P(one of 5 correct texts among
    # the first 5 of 50 in random order) = 1 - (45 * 44 * 43 * 42 * 41) / (50 * 49 * 48 * 47 * 46); it was 0.10
    n_clips, n_caps = 10, 5
    out = retrieval_metrics(torch.ones(n_clips, 4) / 2, torch.ones(n_clips * n_caps, 4) / 2,
                            [[i * n_caps + c for c in range(n_caps)] for i in range(n_clips)])
    assert out["audio_to_text_R@5"] == pytest.approx(1 - np.prod([(45 - j) / (50 - j) for j in range(5)]))
    assert out["audio_to_text_R@1"] == pytest.approx(5 / 50)
    assert out["text_to_audio_R@1"] == pytest.approx(1 / 10) and out["text_to_audio_R@5"] == pytest.approx(5 / 10)


def test_near_ties_are_not_ties():
    """One definition everywhere: exact equality. (A tolerance made 1.0, 1.0 - 8e-7, 1.0 - 1.6e-6 tie pairwise but not
    all three: the three answers' credits did not sum to 1.)"""
    import evaluate

    from hf_alm.evaluation.metrics import metric_path

    metric = evaluate.load(metric_path("zste"))
    s = [1.0, 1.0 - 0.8e-6, 1.0 - 1.6e-6]
    for answer, want in enumerate([1.0, 0.0, 0.0]):
        assert multiple_choice_accuracy([s], [answer]) == want
        assert metric.compute(predictions=[s], references=[answer])["accuracy"] == want
        assert recall_at_k(torch.tensor([s]), [[answer]], ks=(1,))[1] == want


def test_non_finite_scores_are_refused_naming_the_row():
    import evaluate

    from hf_alm.evaluation.metrics import metric_path

    with pytest.raises(ValueError, match=r"item 1: non-finite score nan \(candidate 0\)"):
        multiple_choice_accuracy([[0.2, 0.1], [np.nan, 0.1]], [0, 1])
    with pytest.raises(ValueError, match=r"item 0: non-finite score nan \(candidate 0\)"):
        evaluate.load(metric_path("zste")).compute(predictions=[[np.nan, 0.1]], references=[1])
    with pytest.raises(ValueError, match=r"query\) 2: non-finite score inf \(candidate 1\)"):
        recall_at_k(torch.tensor([[0.1, 0.2], [0.3, 0.1], [0.0, np.inf]]), [[0], [1], [0]], ks=(1,))
    audio = torch.eye(3)
    audio[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"query\) 1: non-finite score nan"):
        retrieval_metrics(audio, torch.eye(3), [[0], [1], [2]], ks=(1,))


def test_recall_at_k_omits_k_not_below_the_number_of_candidates():
    """With 4 clips every query is a hit at R@5 / R@10 whatever the model does; they were reported as 1.0."""
    import evaluate

    from hf_alm.evaluation.metrics import metric_path

    comps, _ = _rows()
    res = evaluate_zste(OracleModel(order_blind=True), OracleProcessor(), comps[:4], tasks=("retrieval",))
    assert sorted(k for k in res if k.endswith("@1") or k.endswith("@5") or k.endswith("@10")) == [
        "audio_to_text_R@1", "text_to_audio_R@1"]
    sim = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8]])
    assert sorted(recall_at_k(sim, [[0], [1]], ks=(1, 2, 3, 5))) == [1, 2]
    out = evaluate.load(metric_path("zste")).compute(predictions=sim.tolist(), references=[0, 1], k_values=[1, 2, 3])
    assert sorted(k for k in out if k.startswith("recall@")) == ["recall@1", "recall@2"]  # the module agrees
    # text->audio ranks the 2 clips, audio->text the 3 texts: each direction keeps its own k < candidates
    out = retrieval_metrics(torch.eye(3)[:2], torch.eye(3), [[0, 2], [1]], ks=(1, 2))
    assert sorted(out) == ["audio_to_text_R@1", "audio_to_text_R@2", "text_to_audio_R@1"]


def test_bad_zste_input_names_the_problem():
    comps, singles = _rows()
    mixed = [dict(comps[0], kind="sequense")] + comps[1:] + singles
    with pytest.raises(ValueError, match=r"row 0: kind must be 'sequence' or 'overlap'.*got 'sequense'"):
        evaluate_zste(OracleModel(), OracleProcessor(), mixed)
    with pytest.raises(ValueError, match=r"order needs composition rows.*relation needs composition rows"):
        evaluate_zste(OracleModel(), OracleProcessor(), singles, tasks=("order", "relation"))
    with pytest.raises(ValueError, match=r"zero_shot needs single-event rows"):
        evaluate_zste(OracleModel(), OracleProcessor(), comps, tasks=("order", "zero_shot"))
    with pytest.raises(ValueError, match=r"order needs sequence compositions"):
        evaluate_zste(OracleModel(), OracleProcessor(), comps[5:], tasks=("order",))
    with pytest.raises(ValueError, match=r"both_events needs num_distractors >= 1 \(got 0\)"):
        evaluate_zste(OracleModel(), OracleProcessor(), comps, tasks=("both_events",), num_distractors=0)
    with pytest.raises(ValueError, match="no rows"):
        evaluate_zste(OracleModel(), OracleProcessor(), [])
    # default tasks: what the data supports (compositions only -> no zero-shot), no error
    assert "zero_shot_accuracy" not in evaluate_zste(OracleModel(), OracleProcessor(), comps)
    with pytest.raises(ValueError, match=r"clip 1: caption index -1 is out of range for 3 texts"):
        retrieval_metrics(torch.eye(3), torch.eye(3), [[0], [-1], [2]])
    with pytest.raises(ValueError, match=r"clip 2: caption index 3 is out of range for 3 texts"):
        retrieval_metrics(torch.eye(3), torch.eye(3), [[0], [1], [3]])


@pytest.mark.parametrize("subtype,channels", [("PCM_16", 1), ("PCM_24", 2), ("PCM_32", 1), ("FLOAT", 1),
                                              ("DOUBLE", 2), ("PCM_U8", 1)])
def test_fast_wav_path_matches_soundfile(tmp_path, subtype, channels):
    import io

    import soundfile

    from hf_alm.evaluation.retrieval import load_clip

    rng = np.random.default_rng(0)
    x = (0.8 * rng.uniform(-1, 1, size=(1234, channels))).astype(np.float64)
    buf = io.BytesIO()
    soundfile.write(buf, x, 8000, subtype=subtype, format="WAV")
    data = buf.getvalue()
    ref, sr = soundfile.read(io.BytesIO(data), dtype="float64", always_2d=True)
    got = load_clip({"bytes": data, "path": None}, 8000)
    np.testing.assert_allclose(got.numpy(), ref.mean(axis=1), atol=1e-6)
    # a different target rate goes through the project's resampler, same as load_audio on the file
    from hf_alm.data.audio import load_audio

    np.testing.assert_allclose(load_clip({"bytes": data, "path": None}, 16000).numpy(),
                               load_audio({"bytes": data, "path": None}, 16000).numpy(), atol=1e-5)


@pytest.fixture(scope="module")
def saved_tiny_clap(tmp_path_factory):
    import hf_alm  # noqa: F401
    from hf_alm.data.synthetic import SYNTHETIC_CLASSES
    from hf_alm.modeling.clap_teminal import ClapTeminalConfig, ClapTeminalModel, ClapTeminalProcessor
    from hf_alm.training.tokenizer import train_caption_tokenizer

    texts = [c for k in SYNTHETIC_CLASSES for c in (k.noun, *k.captions)] + ["before after while, then this is"]
    tok = train_caption_tokenizer(texts, vocab_size=300, model_max_length=38)
    torch.manual_seed(0)
    model = ClapTeminalModel(ClapTeminalConfig.from_preset("tiny", text_config={"vocab_size": len(tok)})).eval()
    proc = ClapTeminalProcessor.from_preset("tiny", tok)
    out = tmp_path_factory.mktemp("tiny_clap")
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out, model, proc


def test_cli_eval_zste_classification_retrieval(saved_tiny_clap, tmp_path):
    from hf_alm.cli import main
    from hf_alm.data.compositions import make_compositions
    from hf_alm.data.synthetic import make_synthetic_dataset

    path, model, proc = saved_tiny_clap
    out = tmp_path / "zste.json"
    assert main(["eval", "zste", str(path), "--dataset", "synthetic:2", "--num_pairs", "4", "--seed", "1",
                 "--output", str(out)]) == 0
    got = json.loads(out.read_text())["zste"]
    ds = make_synthetic_dataset(2, sampling_rate=48000)
    comps = make_compositions(ds, num_pairs=4, sampling_rate=48000, seed=1, max_seconds=0.5)
    want = evaluate_zste(model, proc, {"compositions": comps, "singles": ds}, sampling_rate=48000,
                         class_names=ds.features["label"].names, seed=1)
    for key in ("order_accuracy", "relation_accuracy", "both_events_accuracy", "zero_shot_accuracy",
                "audio_to_text_R@5"):
        assert got[key] == pytest.approx(want[key], abs=1e-9), key

    out = tmp_path / "cls.json"
    assert main(["eval", "classification", str(path), "--dataset", "synthetic:2", "--output", str(out)]) == 0
    cls = json.loads(out.read_text())["classification"]
    # argmax zero-shot accuracy equals ZSTE's zero-shot accuracy on the same clips (no exact ties with a real model)
    assert cls["accuracy"] == pytest.approx(want["zero_shot_accuracy"], abs=1e-9)
    assert cls["num_examples"] == 40

    out = tmp_path / "ret.json"
    assert main(["eval", "retrieval", str(path), "--dataset", "synthetic:1", "--output", str(out)]) == 0
    ret = json.loads(out.read_text())["retrieval"]
    assert ret["num_audio"] == 20 and 0 <= ret["text_to_audio_R@1"] <= ret["text_to_audio_R@5"] <= 1
    assert main(["eval", "zste", str(path), "--dataset", "synthetic:2", "--folds", "9"]) == 1  # clear error, exit 1


def test_bootstrap_interval_matches_the_normal_approximation():
    """Independent reference: for n independent 0/1 items the 95 % interval of the mean is close to
    p +- 1.96 sqrt(p (1 - p) / n)."""
    from hf_alm.evaluation.zste import bootstrap_ci

    rng = np.random.default_rng(0)
    hits = (rng.random(400) < 0.7).astype(float)
    p = hits.mean()
    half = 1.96 * np.sqrt(p * (1 - p) / len(hits))
    lo, hi = bootstrap_ci(hits, seed=1)
    assert lo == pytest.approx(p - half, abs=0.01) and hi == pytest.approx(p + half, abs=0.01)
    assert bootstrap_ci(hits, seed=1) == (lo, hi)  # deterministic
    # clustered items (3 identical answers per clip) get a wider interval than if they were independent
    clustered = np.repeat(hits[:134], 3)
    lo_c, hi_c = bootstrap_ci(clustered, np.repeat(np.arange(134), 3), seed=1)
    lo_i, hi_i = bootstrap_ci(clustered, seed=1)
    assert (hi_c - lo_c) > 1.4 * (hi_i - lo_i)


def test_chance_control_and_interval_in_results():
    """Every multiple-choice metric carries its chance level, a 95 % interval around its value and the
    unrelated-audio control; a model that ignores the audio scores its control like its real value."""
    torch.manual_seed(0)

    class Deaf(torch.nn.Module):
        """Audio embedding independent of the audio; text embedding from the caption's characters."""

        def get_audio_features(self, input_features=None, **kw):
            return torch.ones(input_features.shape[0], 8)

        def get_text_features(self, input_ids=None, **kw):
            g = torch.Generator().manual_seed(int(input_ids.sum()))
            return torch.randn(input_ids.shape[0], 8, generator=g) + input_ids.float().mean(1, keepdim=True)

    class Proc:
        class feature_extractor:
            sampling_rate = 16000

        def __call__(self, audio=None, text=None, sampling_rate=None, **kw):
            if text is not None:
                return {"input_ids": torch.tensor([[ord(c) % 50 for c in t[:20].ljust(20)] for t in text])}
            return {"input_features": torch.zeros(len(audio), 4)}

    names = ["dog", "rain", "bell", "saw", "cat"]
    comps = [{"audio": {"array": np.zeros(1600, np.float32), "sampling_rate": 16000}, "kind": "sequence",
              "first": a, "second": b} for a in names for b in names if a != b]
    singles = [{"audio": {"array": np.zeros(1600, np.float32), "sampling_rate": 16000}, "label_name": n}
               for n in names for _ in range(3)]
    res = evaluate_zste(Deaf(), Proc(), {"compositions": comps, "singles": singles}, batch_size=8)
    assert res["order_accuracy_chance"] == 0.5 and res["relation_accuracy_chance"] == pytest.approx(1 / 3)
    assert res["zero_shot_accuracy_chance"] == pytest.approx(1 / 5)
    assert res["both_events_accuracy_chance"] == pytest.approx(res["both_events_chance"])
    for m in ("order_accuracy", "relation_accuracy", "both_events_accuracy", "zero_shot_accuracy"):
        lo, hi = res[f"{m}_ci95"]
        assert lo <= res[m] <= hi, m
        # deaf model: the same audio embedding for every clip, so unrelated audio scores exactly the same
        assert res[f"{m}_control"] == pytest.approx(res[m]), m
    assert res["audio_to_text_R@1_chance"] == pytest.approx(1 / res["retrieval_num_audio"])
    table = format_zste_table({"base": res})
    assert "control (unrelated audio)" in table and "chance" in table.splitlines()[1]
    assert re.search(r"order_accuracy\s+50\.0\s+\d+\.\d \[\d+\.\d, \d+\.\d\]", table)


def test_warnings_name_chance_level_stages_and_a_zero_shot_drop():
    from hf_alm.evaluation.zste import zste_warnings

    base = {"order_accuracy": 0.5, "order_accuracy_ci95": [0.45, 0.55], "order_accuracy_chance": 0.5,
            "zero_shot_accuracy": 0.40, "zero_shot_accuracy_ci95": [0.33, 0.47], "zero_shot_accuracy_chance": 0.1}
    good = {"order_accuracy": 0.8, "order_accuracy_ci95": [0.75, 0.85], "order_accuracy_chance": 0.5,
            "zero_shot_accuracy": 0.42, "zero_shot_accuracy_ci95": [0.35, 0.49], "zero_shot_accuracy_chance": 0.1}
    assert zste_warnings({"base": base, "teminal_b": good}) == []  # base order at chance is not a base target
    flat = dict(good, order_accuracy=0.52, order_accuracy_ci95=[0.47, 0.57], zero_shot_accuracy=0.3)
    text = " | ".join(zste_warnings({"base": base, "teminal_b": flat}))
    assert "after stage teminal_b, order_accuracy = 52.0 % is within its 95 % interval of chance" in text
    assert "zero-shot accuracy fell from 40.0 % (base) to 30.0 % (teminal_b)" in text
