"""CLAP-TeminAL: a CLAP-style contrastive audio-text dual encoder (HTSAT or BEATs audio tower) in transformers' style.

Self-contained remote code: these files import only torch, numpy, transformers and each other (the BEATs tower is
found through `beats_tower.py`; `stage_remote_code` writes a complete folder).
"""

from .configuration_clap_teminal import AUDIO_TOWERS, PRESETS, ClapTeminalConfig
from .feature_extraction_clap_teminal import ClapTeminalFeatureExtractor
from .modeling_clap_teminal import ClapTeminalModel, ClapTeminalOutput, ClapTeminalPreTrainedModel
from .processing_clap_teminal import ClapTeminalProcessor
from .remote_code import stage_remote_code

__all__ = [
    "AUDIO_TOWERS",
    "PRESETS",
    "ClapTeminalConfig",
    "ClapTeminalFeatureExtractor",
    "ClapTeminalModel",
    "ClapTeminalOutput",
    "ClapTeminalPreTrainedModel",
    "ClapTeminalProcessor",
    "stage_remote_code",
]
