"""One model type per Auto behaviour: a saved BEATs tokenizer loads as the tokenizer through ``AutoModel`` with hf-alm
installed and through remote code in a process where hf_alm cannot be imported; tokenizer folders saved before the
tokenizers had their own ``model_type`` (``hf_alm_beats`` + the tokenizer architecture) still load as the tokenizer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import hf_alm  # noqa: F401  (registers the Auto classes)
from hf_alm.modeling.beats import (BeatsAcousticTokenizer, BeatsConfig, BeatsRandomProjectionConfig,
                                   BeatsRandomProjectionTokenizer, BeatsTokenizerConfig, tiny_beats_config)
from test_hub import BLOCK_HF_ALM

KINDS = {"acoustic": (BeatsAcousticTokenizer, BeatsTokenizerConfig, "hf_alm_beats_tokenizer"),
         "random_projection": (BeatsRandomProjectionTokenizer, BeatsRandomProjectionConfig,
                               "hf_alm_beats_random_projection")}


def _features(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 64, 128, generator=g)


def _saved(kind, path):
    """A tiny tokenizer of ``kind`` (built from a plain BeatsConfig, as the recipes do), its codebook randomised so the
    labels are not trivial, saved in ``path``; returns (tokenizer, labels of _features())."""
    torch.manual_seed(0)
    cls = KINDS[kind][0]
    tok = cls(tiny_beats_config(quant_kmeans_init=False)).eval()
    if kind == "acoustic":
        with torch.no_grad():
            tok.quantizer.weight.normal_()
    tok.save_pretrained(path)
    return tok, tok.extract_labels(_features())


def _make_legacy(path):
    """Rewrite a saved tokenizer folder as it was written before this change: model_type hf_alm_beats, AutoConfig ->
    BeatsConfig (the tokenizer's AutoModel entry stays), and (older still) no padding_mode."""
    cfg_path = path / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model_type"] = "hf_alm_beats"
    cfg["auto_map"]["AutoConfig"] = "configuration_beats.BeatsConfig"
    del cfg["padding_mode"]
    cfg_path.write_text(json.dumps(cfg))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_auto_model_gives_the_tokenizer(kind, tmp_path):
    from transformers import AutoConfig, AutoModel

    cls, config_cls, model_type = KINDS[kind]
    tok, labels = _saved(kind, tmp_path)
    assert type(tok.config) is config_cls and tok.config.model_type == model_type
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == model_type
    # only the Auto classes that give this model: no AutoModelForAudioClassification / ForPreTraining entries
    assert saved["auto_map"] == {"AutoConfig": f"configuration_beats.{config_cls.__name__}",
                                 "AutoModel": f"modeling_beats.{cls.__name__}"}
    assert type(AutoConfig.from_pretrained(tmp_path)) is config_cls
    loaded = AutoModel.from_pretrained(tmp_path)
    assert type(loaded) is cls
    assert torch.equal(loaded.extract_labels(_features()), labels)
    # an encoder folder is still an encoder
    from hf_alm.modeling.beats import BeatsModel

    BeatsModel(tiny_beats_config()).save_pretrained(tmp_path / "encoder")
    assert type(AutoModel.from_pretrained(tmp_path / "encoder")) is BeatsModel


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_old_tokenizer_folders_still_load_as_the_tokenizer(kind, tmp_path):
    from transformers import AutoConfig, AutoModel

    cls, config_cls, _ = KINDS[kind]
    _, labels = _saved(kind, tmp_path)
    _make_legacy(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert type(config) is config_cls and config.padding_mode == "reference"  # no field: the old default
    for loaded in (AutoModel.from_pretrained(tmp_path), cls.from_pretrained(tmp_path)):
        assert type(loaded) is cls
        assert torch.equal(loaded.extract_labels(_features()), labels)
    # re-saving migrates it to the tokenizer's own model_type
    loaded.save_pretrained(tmp_path / "resaved")
    assert json.loads((tmp_path / "resaved" / "config.json").read_text())["model_type"] == KINDS[kind][2]
    # a plain encoder folder without architectures is untouched by this rule
    assert type(BeatsConfig.from_dict({"padding_mode": "time_aligned"})) is BeatsConfig


REMOTE = textwrap.dedent("""
    import json, sys, torch
    from transformers import AutoConfig, AutoModel
    out = {}
    for name, path in json.loads(sys.argv[1]).items():
        model = AutoModel.from_pretrained(path, trust_remote_code=True)
        config = AutoConfig.from_pretrained(path, trust_remote_code=True)
        g = torch.Generator().manual_seed(0)
        labels = model.extract_labels(torch.randn(2, 64, 128, generator=g))
        out[name] = {"class": type(model).__name__, "module": type(model).__module__,
                     "config": type(config).__name__, "labels": labels.tolist()}
    out["hf_alm_loaded"] = any(m == "hf_alm" or m.startswith("hf_alm.") for m in sys.modules)
    print(json.dumps(out))
""")


def test_remote_code_gives_the_same_tokenizer_class_without_hf_alm(tmp_path):
    """The same folders through trust_remote_code in a fresh process where hf_alm cannot be imported."""
    folders, expected = {}, {}
    for kind in KINDS:
        _, expected[kind] = _saved(kind, tmp_path / kind)
        folders[kind] = str(tmp_path / kind)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), OMP_NUM_THREADS="1",
               TRANSFORMERS_VERBOSITY="error")
    run = subprocess.run([sys.executable, "-c", BLOCK_HF_ALM + "\n" + REMOTE, json.dumps(folders)], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert not result["hf_alm_loaded"]
    for kind, (cls, config_cls, _) in KINDS.items():
        got = result[kind]
        assert got["class"] == cls.__name__ and got["config"] == config_cls.__name__, got
        assert got["module"].startswith("transformers_modules"), got["module"]
        assert got["labels"] == expected[kind].tolist()
