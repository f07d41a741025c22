"""Model definitions of hf-alm, one self-contained folder per model family.

Each folder imports only torch, transformers, numpy (torchaudio optional) and its siblings (``from .x import``), so that
``save_pretrained`` can ship it as Hub remote code. Installed as ``hf_alm.modeling``.
"""
