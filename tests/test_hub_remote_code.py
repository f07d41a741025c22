"""Published folders are complete remote code: each staged folder loads with the Auto classes and
``trust_remote_code=True`` in a fresh process where ``hf_alm`` cannot be imported, gives the same outputs as the
in-process hf-alm model, and every Python snippet of its model card runs there (repo id -> the local folder).

Families: the tiny edge classifier, a BEATs classifier, the bare BEATs encoder (converted checkpoints), CLAP-TeminAL
with its HTSAT tower and with the BEATs tower whose code lives in another model folder (``stage_remote_code``
copies it in).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_alm import hub
from test_hub import BLOCK_HF_ALM, EVAL_RESULTS

# --------------------------------------------------------------------------- remote code in a fresh process
def _run_isolated(code: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(cwd / "hf_home"), OMP_NUM_THREADS="1", TRANSFORMERS_VERBOSITY="error")
    return subprocess.run([sys.executable, "-c", BLOCK_HF_ALM + "\n" + code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _caption_tokenizer():
    from hf_alm.data.synthetic import SYNTHETIC_CLASSES
    from hf_alm.training.tokenizer import train_caption_tokenizer

    texts = [t for c in SYNTHETIC_CLASSES for t in (c.name, c.noun, *c.captions)]
    return train_caption_tokenizer(texts + ["a dog barks before rain falls", "This is a sound of siren."],
                                   vocab_size=400, model_max_length=32)


def _build_family(name: str, out: Path):
    """Save a tiny random model of ``name`` + its preprocessor into ``out`` (a recipe-like folder).

    Returns (auto model class name, auto preprocessor class name, in-process model, in-process preprocessor).
    """
    torch.manual_seed(0)
    if name == "tiny_edge":
        from hf_alm.modeling.tiny_edge_transformer import (
            TinyEdgeTransformerConfig,
            TinyEdgeTransformerFeatureExtractor,
            TinyEdgeTransformerForAudioClassification,
        )

        config = TinyEdgeTransformerConfig.from_preset("tiny", id2label={0: "dog_bark", 1: "rain", 2: "siren"},
                                                       label2id={"dog_bark": 0, "rain": 1, "siren": 2})
        model, pre = TinyEdgeTransformerForAudioClassification(config), TinyEdgeTransformerFeatureExtractor()
        auto = ("AutoModelForAudioClassification", "AutoFeatureExtractor")
    elif name == "beats":
        from hf_alm.modeling.beats import BeatsFeatureExtractor, BeatsForAudioClassification, tiny_beats_config

        config = tiny_beats_config(id2label={0: "dog_bark", 1: "rain", 2: "siren"},
                                   label2id={"dog_bark": 0, "rain": 1, "siren": 2})
        model, pre = BeatsForAudioClassification(config), BeatsFeatureExtractor()
        auto = ("AutoModelForAudioClassification", "AutoFeatureExtractor")
    elif name == "beats_encoder":  # a converted pre-trained BEATs checkpoint: the bare encoder
        from hf_alm.modeling.beats import BeatsFeatureExtractor, BeatsModel, tiny_beats_config

        model, pre = BeatsModel(tiny_beats_config()), BeatsFeatureExtractor()
        auto = ("AutoModel", "AutoFeatureExtractor")
    elif name == "one_peace":
        from hf_alm.modeling.one_peace import (
            OnePeaceConfig,
            OnePeaceFeatureExtractor,
            OnePeaceImageProcessor,
            OnePeaceModelWithProjection,
            OnePeaceProcessor,
        )

        tokenizer = _caption_tokenizer()
        text = dict(vocab_size=len(tokenizer), max_position_embeddings=34, bucket_size=8, max_relative_positions=64)
        model = OnePeaceModelWithProjection(OnePeaceConfig.from_preset("tiny", text_config=text))
        pre = OnePeaceProcessor(feature_extractor=OnePeaceFeatureExtractor(min_duration=0.0),
                                image_processor=OnePeaceImageProcessor(size={"height": 32, "width": 32}),
                                tokenizer=tokenizer)
        auto = ("AutoModel", "AutoProcessor")
    else:  # CLAP-TeminAL with its HTSAT tower ("clap") or the BEATs tower from another model folder ("clap_beats")
        from hf_alm.modeling.clap_teminal import ClapTeminalConfig, ClapTeminalModel, ClapTeminalProcessor

        preset = "tiny-beats" if name == "clap_beats" else "tiny"
        tokenizer = _caption_tokenizer()
        model = ClapTeminalModel(ClapTeminalConfig.from_preset(preset, text_config={"vocab_size": len(tokenizer)}))
        pre = ClapTeminalProcessor.from_preset(preset, tokenizer)
        auto = ("AutoModel", "AutoProcessor")
    with torch.no_grad():  # non-trivial weights everywhere (zero-initialised gates/biases would hide mistakes)
        for param in model.parameters():
            param.add_(0.02 * torch.randn_like(param))
    model.eval().save_pretrained(out)
    pre.save_pretrained(out)
    zero_shot = name.startswith("clap") or name == "one_peace"
    (out / "eval_results.json").write_text(json.dumps(EVAL_RESULTS if zero_shot else {"final": {"accuracy": 0.8125}}))
    return (*auto, model, pre)


OUTPUTS_SRC = """
def _outputs(name, model, pre, audio, sr):
    if name.startswith("clap") or name == "one_peace":
        inputs = pre(text=["a dog barks before rain falls", "rain", "a siren"], audio=[audio], sampling_rate=sr,
                     return_tensors="pt")
        return model(**inputs).logits_per_audio
    out = model(**pre(audio, sampling_rate=sr, return_tensors="pt"))
    return out.logits if hasattr(out, "logits") else out.last_hidden_state
"""
_NS: dict = {}
exec(OUTPUTS_SRC, _NS)  # the same function runs in-process and in the isolated process
_outputs = _NS["_outputs"]


@pytest.mark.parametrize("family", ["tiny_edge", "beats", "beats_encoder", "clap", "clap_beats", "one_peace"])
def test_staged_folder_loads_without_hf_alm_and_card_snippets_run(family, tmp_path):
    """Stage a recipe-like folder, then in a fresh process where hf_alm cannot be imported: load it with the Auto
    classes and trust_remote_code=True, compare the outputs on the same audio, and run every snippet of the card."""
    auto_model, auto_pre, model, pre = _build_family(family, tmp_path / "run")
    repo_id = f"tester/{family.replace('_', '-')}"
    staged = hub.stage(tmp_path / "run", tmp_path / "staged", repo_id=repo_id)
    sr = int(getattr(pre, "sampling_rate", None) or pre.feature_extractor.sampling_rate)
    audio = np.random.default_rng(1).uniform(-0.5, 0.5, sr).astype(np.float32)
    np.save(tmp_path / "audio.npy", audio)
    with torch.no_grad():
        expected = _outputs(family, model, pre, audio, sr).numpy()
    if family == "clap_beats":
        assert {"modeling_beats.py", "configuration_beats.py"} <= {p.name for p in staged.glob("*.py")}

    readme = (staged / "README.md").read_text()
    snippets = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(snippets) == (1 if family == "beats_encoder" else 2)
    assert all("trust_remote_code=True" in s for s in snippets)
    snippet_code = "\n".join(s.replace(f'"{repo_id}"', repr(str(staged))) for s in snippets)
    code = "import numpy as np, torch, transformers\n" + OUTPUTS_SRC + textwrap.dedent(f"""
        model = getattr(transformers, {auto_model!r}).from_pretrained({str(staged)!r}, trust_remote_code=True).eval()
        pre = getattr(transformers, {auto_pre!r}).from_pretrained({str(staged)!r}, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        assert not any(m == "hf_alm" or m.startswith("hf_alm.") for m in __import__("sys").modules)
        with torch.no_grad():
            out = _outputs({family!r}, model, pre, np.load({str(tmp_path / 'audio.npy')!r}), {sr})
        np.save({str(tmp_path / 'remote.npy')!r}, out.numpy())
        print("REMOTE-OK", type(model).__module__)
    """) + "\n# ---- the model card's snippets ----\n" + snippet_code
    proc = _run_isolated(code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "REMOTE-OK transformers_modules" in proc.stdout
    np.testing.assert_allclose(np.load(tmp_path / "remote.npy"), expected, rtol=1e-5, atol=1e-5)
    if family in ("tiny_edge", "beats"):  # pipeline output, then the Auto-class snippet's arg-max label
        assert re.search(r"'label': '(dog_bark|rain|siren)'", proc.stdout)
        assert proc.stdout.strip().splitlines()[-1] in {"dog_bark", "rain", "siren"}
    elif family == "beats_encoder":  # feature-extraction card: the frame features' shape
        assert re.search(r"torch.Size\(\[1, \d+, 64\]\)", proc.stdout.strip().splitlines()[-1]), proc.stdout
    else:  # zero-shot pipeline output, then the ranked before/after/while captions
        assert re.search(r"'label': '(dog bark|rain|siren)'", proc.stdout)
        assert "a dog barks before rain falls" in proc.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("family", ["tiny_edge", "beats", "one_peace"])
def test_classifier_folder_loads_with_every_auto_class_without_hf_alm(family, tmp_path):
    """A saved classifier names every Auto class of its model type in ``auto_map`` (as ``import hf_alm`` registers
    them), so without hf-alm ``AutoModel`` gives its encoder, with the classifier's weights, and
    ``AutoModelForPreTraining`` works where the family has it. Before, only the saved class was listed."""
    if family == "one_peace":
        from hf_alm.modeling.one_peace import OnePeaceConfig, OnePeaceForAudioClassification

        torch.manual_seed(0)
        model = OnePeaceForAudioClassification(OnePeaceConfig.from_preset("tiny", id2label={0: "a", 1: "b"}))
        expected = {"AutoModel": "OnePeaceModelWithProjection",
                    "AutoModelForAudioClassification": "OnePeaceForAudioClassification",
                    "AutoModelForPreTraining": "OnePeaceForPreTraining"}
    else:
        _, _, model, _ = _build_family(family, tmp_path / "build")
        expected = ({"AutoModel": "BeatsModel", "AutoModelForAudioClassification": "BeatsForAudioClassification",
                     "AutoModelForPreTraining": "BeatsForPreTraining"} if family == "beats" else
                    {"AutoModel": "TinyEdgeTransformerModel",
                     "AutoModelForAudioClassification": "TinyEdgeTransformerForAudioClassification"})
    folder = tmp_path / "clf"
    model.eval().save_pretrained(folder)
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert {k: v.split(".")[-1] for k, v in auto_map.items() if k != "AutoConfig"} == expected
    check_encoder = family != "one_peace"  # ONE-PEACE's AutoModel adds freshly initialised projections
    if check_encoder:
        inputs = torch.randn(1, 48 if family == "beats" else 20, model.config.num_mel_bins)
        with torch.no_grad():
            hidden = getattr(model, model.base_model_prefix)(input_values=inputs).last_hidden_state
        torch.save({"inputs": inputs, "hidden": hidden}, tmp_path / "io.pt")
    code = "import torch, transformers\n" + textwrap.dedent(f"""
        for auto_name, class_name in {expected!r}.items():
            model = getattr(transformers, auto_name).from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
            assert type(model).__name__ == class_name, (auto_name, type(model).__name__)
            assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
            if auto_name == "AutoModel" and {check_encoder!r}:
                io = torch.load({str(tmp_path / 'io.pt')!r})
                with torch.no_grad():
                    hidden = model(input_values=io["inputs"]).last_hidden_state
                torch.testing.assert_close(hidden, io["hidden"], rtol=1e-5, atol=1e-5)
        assert not any(m == "hf_alm" or m.startswith("hf_alm.") for m in __import__("sys").modules)
        print("ALL-AUTO-OK")
    """)
    proc = _run_isolated(code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "ALL-AUTO-OK" in proc.stdout
