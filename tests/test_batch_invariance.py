"""Every model family, in default settings: a clip gives the same logits alone and inside a padded batch of
random-length clips (max difference <= 1e-5). The reference is the same model run on the clip alone (no padding at
all), which no batching rule can influence."""

import numpy as np
import pytest
import torch

import hf_alm  # noqa: F401  (registers the Auto classes)

torch.set_num_threads(2)
SR = 16000
TOL = 1e-5


def _clips(low_s, high_s, n=5, sr=SR, seed=0):
    """``n`` noise clips of random lengths in [low_s, high_s] seconds (shuffled, so the longest is not first)."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(int(rng.uniform(low_s, high_s) * sr)) * 0.1).astype(np.float32) for _ in range(n)]


def _batch_vs_alone(run, clips):
    """Max |batched - alone| over the clips, where ``run(list_of_clips) -> (B, C)``."""
    with torch.no_grad():
        batched = run(clips)
        alone = torch.cat([run([c]) for c in clips])
    assert batched.shape == alone.shape and batched.shape[0] == len(clips)
    return float((batched - alone).abs().max())


def _beats(padding_mode=None):
    from hf_alm.modeling.beats import BeatsFeatureExtractor, BeatsForAudioClassification, tiny_beats_config

    torch.manual_seed(0)
    config = tiny_beats_config(num_labels=5) if padding_mode is None else tiny_beats_config(
        num_labels=5, padding_mode=padding_mode)
    model = BeatsForAudioClassification(config).eval()
    fe = BeatsFeatureExtractor(padding_mode=config.padding_mode)
    return model, fe


def test_beats_default_is_batch_invariant():
    model, fe = _beats()
    assert model.config.padding_mode == "time_aligned"
    clips = _clips(0.3, 3.0, n=6)
    diff = _batch_vs_alone(lambda cs: model(**fe(cs, sampling_rate=SR, return_tensors="pt")).logits, clips)
    assert diff <= TOL, diff


def test_beats_reference_mode_is_not_batch_invariant():
    """The opt-in original rule really does depend on the batch (so the test above can fail)."""
    model, fe = _beats("reference")
    clips = _clips(0.3, 3.0, n=6)
    diff = _batch_vs_alone(lambda cs: model(**fe(cs, sampling_rate=SR, return_tensors="pt")).logits, clips)
    assert diff > 1e-4, diff


def test_beats_saved_default_folder_is_batch_invariant_through_the_pipeline(tmp_path):
    """Saved with the defaults and loaded back through pipeline("audio-classification", batch_size=4)."""
    from transformers import pipeline

    model, fe = _beats()
    model.save_pretrained(tmp_path)
    fe.save_pretrained(tmp_path)
    classifier = pipeline("audio-classification", model=str(tmp_path))
    clips = _clips(0.3, 3.0, n=8, seed=1)
    inputs = [{"raw": c, "sampling_rate": SR} for c in clips]
    batched = classifier(inputs, batch_size=4, top_k=5)
    alone = [classifier(x, top_k=5) for x in inputs]
    worst = 0.0
    for b, a in zip(batched, alone):
        scores_b = {r["label"]: r["score"] for r in b}
        scores_a = {r["label"]: r["score"] for r in a}
        assert scores_b.keys() == scores_a.keys()
        worst = max(worst, max(abs(scores_b[k] - scores_a[k]) for k in scores_a))
    assert worst <= TOL, worst


@pytest.mark.parametrize("preset", ["tiny", "tiny-beats"])
def test_clap_teminal_audio_logits_are_batch_invariant(preset):
    from hf_alm.modeling.beats import BeatsFeatureExtractor
    from hf_alm.modeling.clap_teminal import ClapTeminalConfig, ClapTeminalModel
    from hf_alm.modeling.clap_teminal.feature_extraction_clap_teminal import ClapTeminalFeatureExtractor

    torch.manual_seed(0)
    model = ClapTeminalModel(ClapTeminalConfig.from_preset(preset)).eval()
    ids = torch.randint(4, 90, (3, 6))
    with torch.no_grad():
        text = model.get_text_features(input_ids=ids).pooler_output
    if preset == "tiny":
        fe = ClapTeminalFeatureExtractor.from_preset(preset)
        sr = fe.sampling_rate
        clips = _clips(0.2, 0.5, n=5, sr=sr)

        def feats(cs):
            return dict(fe(cs, sampling_rate=sr, return_tensors="pt"))
    else:
        fe = BeatsFeatureExtractor(padding_mode=model.config.audio_config.padding_mode)
        clips = _clips(0.3, 3.0, n=5)

        def feats(cs):
            out = fe(cs, sampling_rate=SR, return_tensors="pt")
            return dict(input_features=out["input_values"], attention_mask=out["attention_mask"])

    def logits(cs):  # audio-text similarity logits, as the zero-shot pipeline scores them
        audio = model.get_audio_features(**feats(cs)).pooler_output
        return audio @ text.t() * model.logit_scale_a.exp()

    assert _batch_vs_alone(logits, clips) <= TOL


def test_one_peace_audio_classification_is_batch_invariant():
    from hf_alm.modeling.one_peace import OnePeaceConfig, OnePeaceForAudioClassification
    from hf_alm.modeling.one_peace.feature_extraction_one_peace import OnePeaceFeatureExtractor

    torch.manual_seed(0)
    model = OnePeaceForAudioClassification(OnePeaceConfig.from_preset("tiny", num_labels=5)).eval()
    fe = OnePeaceFeatureExtractor()

    def run(cs):
        out = fe(cs, sampling_rate=SR, return_tensors="pt")
        return model(out["input_values"], attention_mask=out.get("attention_mask")).logits

    assert _batch_vs_alone(run, _clips(0.1, 1.0, n=5)) <= TOL


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_tiny_edge_is_batch_invariant(pooling):
    from hf_alm.modeling.tiny_edge_transformer import (TinyEdgeTransformerConfig,
                                                       TinyEdgeTransformerFeatureExtractor,
                                                       TinyEdgeTransformerForAudioClassification)

    torch.manual_seed(0)
    config = TinyEdgeTransformerConfig.from_preset("tiny", num_labels=4, pooling=pooling)
    model = TinyEdgeTransformerForAudioClassification(config).eval()
    fe = TinyEdgeTransformerFeatureExtractor()
    run = lambda cs: model(**fe(cs, sampling_rate=SR, return_tensors="pt")).logits  # noqa: E731
    assert _batch_vs_alone(run, _clips(0.3, 1.5, n=5)) <= TOL
