# Copyright 2026 the hf-alm developers. MIT licence.
"""ONE-PEACE image processor: RGB, bicubic resize to a square (256 px in the original), CLIP mean / std."""

from __future__ import annotations

from transformers.image_processing_backends import PilBackend
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling


class OnePeaceImageProcessor(PilBackend):
    """Resize (bicubic, no crop) to ``size`` -> rescale to [0, 1] -> normalise with the CLIP mean / std."""

    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BICUBIC
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    size = {"height": 256, "width": 256}
    default_to_square = True
    do_resize = True
    do_center_crop = False
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True


__all__ = ["OnePeaceImageProcessor"]

OnePeaceImageProcessor.register_for_auto_class("AutoImageProcessor")
