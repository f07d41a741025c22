"""Caption tokenizer, processor round trip (AutoProcessor after ``import hf_alm``) and the unchanged
transformers zero-shot-audio-classification pipeline on a tiny saved model."""

import numpy as np
import pytest
import torch

import hf_alm  # noqa: F401  (registers the Auto classes)
from hf_alm.modeling.clap_teminal import (ClapTeminalConfig, ClapTeminalFeatureExtractor, ClapTeminalModel,
                                          ClapTeminalProcessor)
from hf_alm.training.tokenizer import load_caption_tokenizer, train_caption_tokenizer

SR = 48_000
CAPTIONS = [
    "A dog barks.", "a cat meows", "A dog barks before a cat meows.", "a cat meows after a dog barks",
    "Rain falls while thunder rumbles.", "This is a sound of dog.", "This is a sound of rain.",
    "church bells ring", "a clock ticks before a rooster crows",
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_caption_tokenizer(CAPTIONS * 2, vocab_size=300, model_max_length=38)


def test_tokenizer_special_tokens_match_the_text_tower(tokenizer):
    from transformers import ClapTextConfig

    text = ClapTextConfig()
    assert tokenizer.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>", "<mask>"]) == [0, 1, 2, 3, 4]
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) == (
        text.bos_token_id, text.pad_token_id, text.eos_token_id)
    enc = tokenizer(["a dog barks", "a cat meows after a dog barks"], padding=True)
    assert enc["input_ids"][0][0] == 0 and 2 in enc["input_ids"][0]
    assert enc["input_ids"][0][-1] == 1 and enc["attention_mask"][0][-1] == 0  # right padding with <pad>
    assert len(tokenizer) <= 300
    # lower-casing: case does not change the ids; a decode gives the normalised text back
    assert tokenizer("A DOG BARKS")["input_ids"] == tokenizer("a dog barks")["input_ids"]
    assert tokenizer.decode(tokenizer("a dog barks")["input_ids"], skip_special_tokens=True).strip() == "a dog barks"
    # frequent words of the corpus become single tokens (BPE learned them)
    assert len(tokenizer.tokenize(" dog")) == 1


def test_tokenizer_is_deterministic_and_order_independent(tokenizer):
    again = train_caption_tokenizer(list(reversed(CAPTIONS * 2)), vocab_size=300, model_max_length=38)
    assert again.get_vocab() == tokenizer.get_vocab()
    assert again("a clock ticks before a rooster crows")["input_ids"] == \
        tokenizer("a clock ticks before a rooster crows")["input_ids"]


def test_tokenizer_can_keep_case():
    cased = train_caption_tokenizer(CAPTIONS, vocab_size=300, lowercase=False)
    assert cased("A dog")["input_ids"] != cased("a dog")["input_ids"]
    assert cased.decode(cased("A Dog barks")["input_ids"], skip_special_tokens=True).strip() == "A Dog barks"


def test_tokenizer_saves_as_fast_folder_and_errors(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path / "tok")
    assert (tmp_path / "tok" / "tokenizer.json").is_file()
    loaded = load_caption_tokenizer(tmp_path / "tok")
    assert loaded.is_fast and loaded("a cat meows")["input_ids"] == tokenizer("a cat meows")["input_ids"]
    with pytest.raises(ValueError, match=r"vocab_size must be at least 262 .*got 100"):
        train_caption_tokenizer(CAPTIONS, vocab_size=100)
    with pytest.raises(ValueError, match="texts is empty"):
        train_caption_tokenizer([])
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        train_caption_tokenizer(["ok", 3])
    with pytest.raises(FileNotFoundError, match="tokenizer folder not found"):
        load_caption_tokenizer(tmp_path / "missing")


def test_processor_outputs_and_round_trip(tokenizer, tmp_path):
    from transformers import AutoProcessor

    processor = ClapTeminalProcessor.from_preset("tiny", tokenizer)
    rng = np.random.default_rng(0)
    audio = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (SR // 4, SR)]
    out = processor(text=["a dog barks", "a cat meows before rain"], audio=audio, sampling_rate=SR,
                    return_tensors="pt")
    assert set(out) == {"input_ids", "attention_mask", "input_features", "is_longer"}
    assert out["input_features"].shape == (2, 1, 51, 16)
    assert torch.equal(out["input_ids"], tokenizer(["a dog barks", "a cat meows before rain"], padding=True,
                                                   return_tensors="pt")["input_ids"])
    fe_only = processor.feature_extractor(audio, sampling_rate=SR, return_tensors="pt")
    assert torch.equal(out["input_features"], fe_only["input_features"])
    # audio mask: `attention_mask` alone, `audio_attention_mask` next to text
    masked = processor(text=["x", "y"], audio=audio, sampling_rate=SR, return_tensors="pt",
                       audio_kwargs={"return_attention_mask": True})
    assert "audio_attention_mask" in masked and masked["attention_mask"].shape == masked["input_ids"].shape
    assert "attention_mask" in processor(audio=audio, sampling_rate=SR, audio_kwargs={"return_attention_mask": True})
    with pytest.raises(ValueError, match="needs `text`, `audio` or both"):
        processor()
    with pytest.raises(ValueError, match="got sampling_rate=16000"):
        processor(audio=audio, sampling_rate=16000)

    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is ClapTeminalProcessor
    assert type(loaded.feature_extractor) is ClapTeminalFeatureExtractor
    assert loaded.feature_extractor.to_dict() == processor.feature_extractor.to_dict()
    again = loaded(text=["a dog barks", "a cat meows before rain"], audio=audio, sampling_rate=SR, return_tensors="pt")
    for key in out:
        assert torch.equal(again[key], out[key]), key


def test_zero_shot_pipeline_runs_unchanged(tokenizer, tmp_path):
    from transformers import pipeline

    torch.manual_seed(0)
    config = ClapTeminalConfig.from_preset("tiny", text_config={"vocab_size": len(tokenizer)})
    model = ClapTeminalModel(config).eval()
    processor = ClapTeminalProcessor.from_preset("tiny", tokenizer)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)

    audio = (0.1 * np.random.default_rng(3).standard_normal(SR // 2)).astype(np.float32)
    labels = ["dog", "cat", "rain"]
    classifier = pipeline("zero-shot-audio-classification", model=str(tmp_path))
    result = classifier(audio, candidate_labels=labels)
    assert sorted(r["label"] for r in result) == sorted(labels)
    # the pipeline's scores are the softmax of our logits_per_audio for "This is a sound of {}."
    inputs = processor(text=[f"This is a sound of {x}." for x in labels], audio=[audio], sampling_rate=SR,
                       return_tensors="pt")
    with torch.no_grad():
        probs = model(**inputs).logits_per_audio[0].softmax(-1)
    expected = {label: p for label, p in zip(labels, probs.tolist())}
    for r in result:
        assert abs(r["score"] - expected[r["label"]]) < 1e-5


def test_processor_rejects_bad_audio_with_the_feature_extractor_errors(tokenizer):
    """Stereo (samples, channels) audio, int16 PCM, NaN samples and a malformed sampling_rate are errors naming the
    problem, with or without text."""
    processor = ClapTeminalProcessor.from_preset("tiny", tokenizer)
    clip = (0.1 * np.random.default_rng(0).standard_normal(SR // 2)).astype(np.float32)
    nan_clip = clip.copy()
    nan_clip[100] = np.nan
    for text in (None, ["a dog barks"]):
        with pytest.raises(ValueError, match=r"raw_speech of shape \(24000, 2\) looks like \(samples, channels\)"):
            processor(text=text, audio=np.stack([clip, clip], axis=1), sampling_rate=SR)
        with pytest.raises(ValueError, match=r"got dtype int16; convert integer PCM first \(e\.g\. int16 / 32768\)"):
            processor(text=text, audio=np.round(clip * 32767).astype(np.int16), sampling_rate=SR)
        with pytest.raises(ValueError, match=r"clip 0 has a non-finite sample \(nan\) at index 100"):
            processor(text=text, audio=[nan_clip], sampling_rate=SR)
        with pytest.raises(ValueError, match=r"sampling_rate must be a whole number of Hz, got '48k'"):
            processor(text=text, audio=clip, sampling_rate="48k")
