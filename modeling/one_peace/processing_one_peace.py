# Copyright 2026 the hf-alm developers. MIT licence.
"""``OnePeaceProcessor(audio=, images=, text=)``: one call for the three ONE-PEACE inputs.

Text is lower-cased (ONE-PEACE's convention) and tokenised with the wrapped BPE tokenizer (padding, truncation to
``max_text_length`` tokens); audio goes through ``OnePeaceFeatureExtractor`` and images through
``OnePeaceImageProcessor``. Returned keys match the model: ``input_ids`` / ``attention_mask`` (text),
``input_values`` / ``audio_attention_mask`` (audio) and ``pixel_values`` (images).
"""

from __future__ import annotations

from transformers import BatchFeature, ProcessorMixin


class OnePeaceProcessor(ProcessorMixin):
    def __init__(self, feature_extractor=None, image_processor=None, tokenizer=None, max_text_length: int = 70,
                 lowercase: bool = True, **kwargs):
        self.max_text_length = max_text_length
        self.lowercase = lowercase
        super().__init__(feature_extractor, image_processor, tokenizer, **kwargs)

    def __call__(self, text=None, images=None, audio=None, sampling_rate=None, return_tensors="pt", **kwargs):
        if text is None and images is None and audio is None:
            raise ValueError("give at least one of text=, images=, audio=")
        data = {}
        if text is not None:
            if self.tokenizer is None:
                raise ValueError("this processor has no tokenizer; pass tokenizer= when building it")
            texts = [text] if isinstance(text, str) else list(text)
            if not all(isinstance(t, str) for t in texts):
                raise ValueError(f"text must be a string or a list of strings, got {type(text).__name__}")
            if self.lowercase:
                texts = [t.lower() for t in texts]
            enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_text_length,
                                 return_tensors=return_tensors)
            data["input_ids"] = enc["input_ids"]
            data["attention_mask"] = enc["attention_mask"]
        if audio is not None:
            if self.feature_extractor is None:
                raise ValueError("this processor has no feature extractor")
            feats = self.feature_extractor(audio, sampling_rate=sampling_rate, return_tensors=return_tensors,
                                           return_attention_mask=True)
            data["input_values"] = feats["input_values"]
            data["audio_attention_mask"] = feats["attention_mask"]
        if images is not None:
            if self.image_processor is None:
                raise ValueError("this processor has no image processor")
            data["pixel_values"] = self.image_processor(images, return_tensors=return_tensors)["pixel_values"]
        return BatchFeature(data, tensor_type=return_tensors)


__all__ = ["OnePeaceProcessor"]

OnePeaceProcessor.register_for_auto_class("AutoProcessor")
