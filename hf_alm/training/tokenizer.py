"""An offline caption tokenizer for the CLAP-TeminAL text tower.

:func:`train_caption_tokenizer` trains a byte-level BPE (RoBERTa's scheme) on caption strings with the `tokenizers`
library, entirely offline, and wraps it as a `PreTrainedTokenizerFast` with RoBERTa's special tokens at RoBERTa's
ids (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, ``<mask>`` 4), which are the ids transformers' `ClapTextConfig`
defaults to (``bos_token_id=0``, ``pad_token_id=1``, ``eos_token_id=2``). ``save_pretrained`` writes an ordinary fast
tokenizer folder that `AutoTokenizer.from_pretrained` loads; :func:`load_caption_tokenizer` accepts such a folder or
any other Hugging Face tokenizer folder / Hub id instead.

Training is deterministic: the same captions (in any order, duplicates included) give the same vocabulary.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
BYTE_ALPHABET = 256


def train_caption_tokenizer(
    texts: Iterable[str],
    *,
    vocab_size: int = 2000,
    lowercase: bool = True,
    min_frequency: int = 1,
    model_max_length: int = 64,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE caption tokenizer offline and return it as a `PreTrainedTokenizerFast`.

    Args:
        texts: caption strings (e.g. every caption of the training corpus).
        vocab_size: the maximum vocabulary size, special tokens and the 256 byte symbols included (at least 262);
            a small corpus may give fewer tokens (the text tower's `vocab_size` must be `len(tokenizer)` or more).
        lowercase: lower-case (and NFKC-normalise) text before tokenising.
        min_frequency: merges need at least this many occurrences.
        model_max_length: longest encoded caption (with ``<s>`` and ``</s>``); `ClapTextConfig` needs
            `max_position_embeddings >= model_max_length + 2` (RoBERTa positions start after the pad id).

    Returns:
        A fast tokenizer; encoding adds ``<s> ... </s>``, padding uses ``<pad>`` (id 1).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    minimum = BYTE_ALPHABET + len(SPECIAL_TOKENS) + 1
    if vocab_size < minimum:
        raise ValueError(f"vocab_size must be at least {minimum} (256 bytes + 5 special tokens + 1), got {vocab_size}")
    if model_max_length < 3:
        raise ValueError(f"model_max_length must be at least 3, got {model_max_length}")
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of caption strings, got a single string")
    # sorted unique captions with their counts: the result does not depend on the corpus order
    counts: dict[str, int] = {}
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, not a string: {text!r}")
        counts[text] = counts.get(text, 0) + 1
    if not counts:
        raise ValueError("texts is empty: need at least one caption to train a tokenizer")
    corpus = [text for text in sorted(counts) for _ in range(counts[text])]

    tokenizer = Tokenizer(models.BPE())
    if lowercase:
        tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer, length=len(corpus))
    ids = {tok: tokenizer.token_to_id(tok) for tok in SPECIAL_TOKENS}
    if [ids[t] for t in SPECIAL_TOKENS] != list(range(len(SPECIAL_TOKENS))):  # pragma: no cover - tokenizers contract
        raise RuntimeError(f"unexpected special-token ids {ids}")
    tokenizer.post_processor = processors.RobertaProcessing(
        ("</s>", ids["</s>"]), ("<s>", ids["<s>"]), trim_offsets=True, add_prefix_space=True
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=model_max_length,
        padding_side="right",
    )


def load_caption_tokenizer(name_or_path: str | os.PathLike, **kwargs):
    """Load a tokenizer folder written by ``save_pretrained`` (or any Hugging Face tokenizer folder / Hub id)."""
    from transformers import AutoTokenizer

    path = os.fspath(name_or_path)
    if os.path.sep in path and not os.path.isdir(path):
        raise FileNotFoundError(f"tokenizer folder not found: {path}")
    return AutoTokenizer.from_pretrained(path, **kwargs)


__all__ = ["SPECIAL_TOKENS", "load_caption_tokenizer", "train_caption_tokenizer"]
