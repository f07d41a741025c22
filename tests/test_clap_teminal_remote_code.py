"""Remote code: a saved HTSAT-tower and a saved BEATs-tower CLAP-TeminAL folder load with trust_remote_code=True in a
fresh interpreter where ``hf_alm`` cannot be imported, and give the same outputs as the in-repo classes; a folder
re-saved from there is complete too."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import hf_alm  # noqa: F401
from hf_alm.modeling.clap_teminal import ClapTeminalConfig, ClapTeminalModel, ClapTeminalProcessor
from hf_alm.training.tokenizer import train_caption_tokenizer

TEXTS = ["a dog barks", "a cat meows before a dog barks"]

CHILD = textwrap.dedent(
    """
    import sys
    sys.modules["hf_alm"] = None  # any import of hf_alm now fails
    import numpy as np, torch
    from transformers import AutoModel, AutoProcessor
    texts = %r

    def run(path, sr):
        model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        rng = np.random.default_rng(0)
        audio = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (sr // 3, sr // 2)]
        inputs = processor(text=texts, audio=audio, sampling_rate=sr, return_tensors="pt")
        with torch.no_grad():
            res = model(**inputs)
        return model, processor, res

    for folder, resaved, out, sr in zip(*[iter(sys.argv[1:])] * 4):
        sr = int(sr)
        model, processor, res = run(folder, sr)
        model.save_pretrained(resaved)
        processor.save_pretrained(resaved)
        _, _, res2 = run(resaved, sr)
        assert torch.equal(res.logits_per_audio, res2.logits_per_audio)
        np.savez(out, logits=res.logits_per_audio.numpy(), audio=res.audio_embeds.numpy(),
                 text=res.text_embeds.numpy())
        print("modules", type(model).__module__, type(processor.feature_extractor).__name__)
    """
) % (TEXTS,)


@pytest.fixture(scope="module")
def tokenizer():
    return train_caption_tokenizer(TEXTS * 3, vocab_size=280, model_max_length=38)


PRESETS = [("tiny", 48_000), ("tiny-beats", 16_000)]


def _build(preset, tokenizer, folder):
    torch.manual_seed(0)
    config = ClapTeminalConfig.from_preset(preset, text_config={"vocab_size": len(tokenizer)})
    model = ClapTeminalModel(config).eval()
    processor = ClapTeminalProcessor.from_preset(preset, tokenizer)
    # processor first, then model: each save leaves a complete folder whatever the order
    processor.save_pretrained(folder)
    model.save_pretrained(folder)
    return model, processor


def test_saved_folders_load_without_hf_alm(tokenizer, tmp_path):
    built, argv = {}, []
    for preset, sr in PRESETS:
        folder = tmp_path / preset
        built[preset] = _build(preset, tokenizer, folder)
        argv += [str(folder), str(tmp_path / f"{preset}-resaved"), str(tmp_path / f"{preset}.npz"), str(sr)]
        auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
        assert auto_map == {"AutoConfig": "configuration_clap_teminal.ClapTeminalConfig",
                            "AutoModel": "modeling_clap_teminal.ClapTeminalModel"}
        if preset == "tiny-beats":
            for name in ("modeling_beats.py", "configuration_beats.py", "feature_extraction_beats.py"):
                assert (folder / name).is_file(), name
            assert "from .modeling_beats import BeatsModel" in (folder / "beats_tower.py").read_text()
        for py in folder.glob("*.py"):  # model files import only torch / numpy / transformers / siblings
            assert not re.search(r"^\s*(from|import)\s+hf_alm", py.read_text(), flags=re.M), py.name

    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1",
               PYTHONPATH="", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("transformers_modules") == 2, proc.stdout

    for preset, sr in PRESETS:
        model, processor = built[preset]
        child = np.load(tmp_path / f"{preset}.npz")
        rng = np.random.default_rng(0)
        audio = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (sr // 3, sr // 2)]
        with torch.no_grad():
            ours = model(**processor(text=TEXTS, audio=audio, sampling_rate=sr, return_tensors="pt"))
        np.testing.assert_allclose(child["logits"], ours.logits_per_audio.numpy(), rtol=1e-5, atol=1e-5)  # fresh process: thread count may differ
        np.testing.assert_allclose(child["audio"], ours.audio_embeds.numpy(), rtol=1e-5, atol=1e-5)  # fresh process: thread count may differ
        np.testing.assert_allclose(child["text"], ours.text_embeds.numpy(), rtol=1e-5, atol=1e-5)  # fresh process: thread count may differ
