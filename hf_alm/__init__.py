"""hf-alm: audio-language models as first-class citizens of the Hugging Face ecosystem.

``import hf_alm`` registers every model of ``hf_alm.modeling`` with the transformers Auto classes (``AutoConfig``,
``AutoModel``, ``AutoFeatureExtractor``, ...), so converted or trained folders load with
``AutoModel.from_pretrained(path)``. It never imports gradio or other optional extras.
"""

__version__ = "0.1.0.dev0"

from .auto import register_all as _register_all

_register_all()

__all__ = ["__version__"]
