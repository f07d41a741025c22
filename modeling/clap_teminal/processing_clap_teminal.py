"""Processor of CLAP-TeminAL: a feature extractor (CLAP log-mels, or BEATs fbank for BEATs) and a tokenizer."""

import inspect

from transformers import BatchFeature, ProcessorMixin


class ClapTeminalProcessor(ProcessorMixin):
    r"""Wraps a feature extractor ([`ClapTeminalFeatureExtractor`] for HTSAT, `BeatsFeatureExtractor` for BEATs) and a
    tokenizer (any fast tokenizer; RoBERTa-style special tokens for the default text tower).

    `processor(text=..., audio=..., sampling_rate=...)` returns a `BatchFeature` with `input_ids` / `attention_mask`
    (text) and `input_features` / `is_longer` (audio). An audio mask, when the feature extractor returns one, is
    `attention_mask` for audio-only calls (for `get_audio_features(**inputs)`) and `audio_attention_mask` when text is
    given too (for `model(**inputs)`), so it never collides with the text mask.
    """

    def __init__(self, feature_extractor, tokenizer):
        super().__init__(feature_extractor, tokenizer)

    @classmethod
    def from_preset(cls, name: str, tokenizer, **feature_kwargs) -> "ClapTeminalProcessor":
        """The processor matching `ClapTeminalConfig.from_preset(name)`, with `tokenizer` (a `BeatsFeatureExtractor`
        for BEATs-tower presets)."""
        from .configuration_clap_teminal import PRESETS
        from .feature_extraction_clap_teminal import ClapTeminalFeatureExtractor

        settings = dict(PRESETS[name]["feature_extractor"]) if name in PRESETS else {}
        if settings.pop("type", None) == "beats":
            from .beats_tower import beats_feature_extractor_class

            # no mask by default, so that pipeline("zero-shot-audio-classification") can pass the features and the
            # text mask side by side; __call__ asks for the mask explicitly
            settings.setdefault("return_attention_mask", False)
            return cls(beats_feature_extractor_class()(**{**settings, **feature_kwargs}), tokenizer)
        return cls(ClapTeminalFeatureExtractor.from_preset(name, **feature_kwargs), tokenizer)

    def __call__(
        self,
        text=None,
        audio=None,
        sampling_rate: int | None = None,
        return_tensors=None,
        padding=True,
        truncation=True,
        max_length: int | None = None,
        generator=None,
        text_kwargs: dict | None = None,
        audio_kwargs: dict | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Tokenise `text` (a string or a list) and featurise `audio` (one clip or a list, mono, at `sampling_rate`).

        Args:
            padding, truncation, max_length: for the tokenizer (default: pad to the longest, truncate to the
                tokenizer's `model_max_length`).
            generator: a seeded `torch.Generator` for random crops of long clips (training); `None` = deterministic.
            text_kwargs / audio_kwargs: extra arguments for the tokenizer / the feature extractor.
        """
        if text is None and audio is None:
            raise ValueError("ClapTeminalProcessor needs `text`, `audio` or both, got neither")
        if kwargs.pop("audios", None) is not None:
            raise ValueError("the `audios` argument is deprecated in transformers v5; pass `audio=`")
        data = {}
        if text is not None:
            tk = {"padding": padding, "truncation": truncation, "return_tensors": return_tensors}
            if max_length is not None:
                tk["max_length"] = max_length
            tk.update(text_kwargs or {})
            data.update(self.tokenizer(text, **tk))
        if audio is not None:
            ak = dict(audio_kwargs or {})
            accepted = inspect.signature(self.feature_extractor.__call__).parameters
            if generator is not None:
                if "generator" not in accepted:
                    raise ValueError(f"{type(self.feature_extractor).__name__} does not take a random-crop generator")
                ak["generator"] = generator
            if "attention_mask" in self.feature_extractor.model_input_names:
                ak.setdefault("return_attention_mask", True)  # padded variable-length batches need it (BEATs)
            features = self.feature_extractor(audio, sampling_rate=sampling_rate, return_tensors=return_tensors, **ak)
            main_name = self.feature_extractor.model_input_names[0]
            for key, value in features.items():
                if key == main_name:
                    key = "input_features"
                elif key == "attention_mask" and text is not None:
                    key = "audio_attention_mask"
                data[key] = value
        return BatchFeature(data, tensor_type=return_tensors)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`ProcessorMixin.save_pretrained`; with a BEATs feature extractor, BEATs' files are staged for remote code."""
        from .remote_code import stage_remote_code

        out = super().save_pretrained(save_directory, *args, **kwargs)
        if type(self.feature_extractor).__name__ == "BeatsFeatureExtractor":
            stage_remote_code(save_directory, audio_tower="beats")
        return out

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self):
        return ["input_ids", "attention_mask", "input_features", "is_longer", "audio_attention_mask"]


ClapTeminalProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["ClapTeminalProcessor"]
