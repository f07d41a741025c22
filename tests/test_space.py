"""The Gradio Space (spaces/hf-alm-demo): front matter, every endpoint through gradio_client on 127.0.0.1, readable
errors for bad uploads, and a bounded load test (50 concurrent zero-shot requests).

References: zero-shot / "what came first?" probabilities are recomputed with the model's own ``forward``
(``logits_per_audio``, as transformers' zero-shot-audio-classification pipeline reads it), tagging with the
classifier's ``logits``, search with the model's embeddings: never with the app's helper functions.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import socket
import sys
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

gradio = pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
gradio_client = pytest.importorskip("gradio_client", reason="gradio_client is not installed")

SPACE = Path(__file__).resolve().parents[1] / "spaces" / "hf-alm-demo"
MAX_SECONDS = 3.0


def load_app_module():
    name = "hf_alm_space_app"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SPACE / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_wav(path: Path, audio: np.ndarray, sr: int) -> Path:
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(sr)
        fh.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """One app launch for the module: tiny random models, examples in a temporary cache folder."""
    app = load_app_module()
    demo = app.build_demo(cache_dir=tmp_path_factory.mktemp("demo-cache"), max_seconds=MAX_SECONDS)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
                            ssr_mode=False)
    client = gradio_client.Client(url, verbose=False)
    yield {"app": app, "demo": demo, "url": url, "client": client, **demo.hf_alm_backends}
    demo.close()


def _confidences(label_output) -> dict[str, float]:
    return {c["label"]: c["confidence"] for c in label_output["confidences"]}


def _reference_probs(backend, clip: np.ndarray, texts: list[str]) -> np.ndarray:
    """Softmax of ``logits_per_audio`` from the model's forward pass on processor outputs."""
    proc = backend.processor
    inputs = proc(text=texts, audio=[clip], sampling_rate=proc.feature_extractor.sampling_rate, return_tensors="pt",
                  padding=True)
    with torch.no_grad():
        logits = backend.model(**inputs).logits_per_audio[0]
    return torch.softmax(logits.double(), -1).numpy()


def _load(path, sr) -> np.ndarray:
    from hf_alm.data.audio import load_audio

    return load_audio(str(path), sr).numpy()


# ---------------------------------------------------------------------------------------------- static checks
def test_space_front_matter_is_valid():
    from huggingface_hub import SpaceCard, SpaceCardData

    card = SpaceCard.load(SPACE / "README.md")
    data = card.data
    assert isinstance(data, SpaceCardData)
    assert SpaceCardData(**data.to_dict()).to_dict() == data.to_dict()  # round-trips through the validated class
    assert data.sdk == "gradio" and data.sdk_version == gradio.__version__
    assert data.app_file == "app.py" and (SPACE / data.app_file).is_file()
    assert data.title and data.emoji and data.license == "mit"
    colours = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
    assert data.colorFrom in colours and data.colorTo in colours
    assert data.models and all(re.fullmatch(r"[\w.-]+/[\w.-]+", m) for m in data.models)
    assert len(data.short_description) <= 60


def test_requirements_name_hf_alm_and_app_launches_only_under_main():
    requirements = (SPACE / "requirements.txt").read_text()
    assert re.search(r"^hf-alm\[demo\]", requirements, re.M)
    tree = ast.parse((SPACE / "app.py").read_text())
    top_level_calls = [n for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
    assert not top_level_calls  # importing the module runs nothing
    main_guard = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    assert len(main_guard) == 1 and "main()" in ast.unparse(main_guard[0])
    assert ".launch(" in ast.unparse(next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"))


def test_examples_are_synthesised_deterministically(tmp_path):
    app = load_app_module()
    first = app.make_examples(tmp_path / "a")
    second = app.make_examples(tmp_path / "b")
    assert list(first) == list(second) and len(first) >= 6
    assert all(first[k].read_bytes() == second[k].read_bytes() for k in first)
    with wave.open(str(first["siren"])) as fh:
        assert fh.getframerate() == app.EXAMPLE_RATE and fh.getnframes() == app.EXAMPLE_RATE


# ---------------------------------------------------------------------------------------------- the endpoints
def test_api_lists_every_endpoint_and_audio_accepts_mic_and_upload(space):
    api = space["client"].view_api(return_format="dict", print_info=False)
    assert set(api["named_endpoints"]) == {"/zero_shot", "/what_came_first", "/tag", "/search"}
    audio = [b for b in space["demo"].blocks.values() if isinstance(b, gradio.Audio) and b.interactive is not False]
    assert len(audio) == 3 and all(set(a.sources) == {"upload", "microphone"} for a in audio)
    assert "random weights" in str(space["demo"].config)  # the page says the models are random


def test_zero_shot_matches_the_model_forward(space):
    clip_path = space["examples"]["siren"]
    labels = ["siren", "bell", "knocking", "click train"]
    label, bars, plot = space["client"].predict(gradio_client.handle_file(str(clip_path)), ", ".join(labels),
                                                api_name="/zero_shot")
    got = _confidences(label)
    clap = space["clap"]
    ref = _reference_probs(clap, _load(clip_path, clap.sampling_rate), [f"This is a sound of {x}." for x in labels])
    assert list(got) == [labels[i] for i in np.argsort(-ref, kind="stable")]
    np.testing.assert_allclose([got[x] for x in labels], ref, rtol=1e-4, atol=1e-6)
    assert label["label"] == labels[int(np.argmax(ref))]
    assert [row[0] for row in bars["data"]] == labels and plot["type"] == "matplotlib"


def test_what_came_first_ranks_before_after_while_captions(space):
    from hf_alm.data.compositions import canonical_caption

    key = canonical_caption("rising chirp", "bell", "before")
    label, bars, _ = space["client"].predict(gradio_client.handle_file(str(space["examples"][key])), "rising chirp",
                                             "bell", api_name="/what_came_first")
    got = _confidences(label)
    captions = [canonical_caption("rising chirp", "bell", r) for r in ("before", "after", "while")]
    assert set(got) == set(captions) and abs(sum(got.values()) - 1) < 1e-6
    clap = space["clap"]
    ref = _reference_probs(clap, _load(space["examples"][key], clap.sampling_rate), captions)
    np.testing.assert_allclose([got[c] for c in captions], ref, rtol=1e-4, atol=1e-6)
    confidences = [c["confidence"] for c in label["confidences"]]
    assert confidences == sorted(confidences, reverse=True)  # ranked


def test_tag_matches_the_classifier(space):
    clip_path = space["examples"]["bell"]
    label, plot = space["client"].predict(gradio_client.handle_file(str(clip_path)), api_name="/tag")
    tagger = space["beats"]
    fe = tagger.feature_extractor
    with torch.no_grad():
        logits = tagger.model(**fe(_load(clip_path, fe.sampling_rate), sampling_rate=fe.sampling_rate,
                                   return_tensors="pt")).logits[0]
    probs = torch.softmax(logits.double(), -1).numpy()
    id2label = tagger.model.config.id2label
    got = _confidences(label)
    assert len(got) == 5 and label["label"] == id2label[int(np.argmax(probs))]
    for name, p in got.items():
        idx = next(i for i, n in id2label.items() if n == name)
        assert abs(p - probs[idx]) < 1e-5


def test_search_ranks_clips_by_embedding_similarity(space):
    table, best, bars = space["client"].predict("a siren wailing", api_name="/search")
    clap = space["clap"]
    names = list(space["examples"])
    proc = clap.processor
    with torch.no_grad():
        audio = clap.model.get_audio_features(**proc(audio=[_load(space["examples"][n], clap.sampling_rate)
                                                            for n in names],
                                                     sampling_rate=clap.sampling_rate, return_tensors="pt"))
        text = clap.model.get_text_features(**proc(text=["a siren wailing"], return_tensors="pt", padding=True))
    sims = (torch.nn.functional.normalize(audio.pooler_output, dim=-1)
            @ torch.nn.functional.normalize(text.pooler_output, dim=-1).T)[:, 0].numpy()
    rows = table["data"]
    assert [r[0] for r in rows] == list(range(1, len(names) + 1))
    assert [r[1] for r in rows] == [names[i] for i in np.argsort(-sims, kind="stable")]
    np.testing.assert_allclose([r[2] for r in rows], np.sort(sims)[::-1], atol=1e-5)
    assert Path(best).name == Path(space["examples"][rows[0][1]]).name


@pytest.mark.parametrize("case, needle", [
    ("empty", r"empty"),
    ("too_long", r"is 4\.0 s long; this demo accepts at most 3 s"),
    ("undecodable", r"Could not read the audio: cannot decode audio file 'noise\.wav'"),
])
def test_bad_uploads_give_readable_errors(space, tmp_path, case, needle):
    from gradio_client.exceptions import AppError

    if case == "empty":
        path = write_wav(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    elif case == "too_long":
        path = write_wav(tmp_path / "long.wav", 0.1 * np.ones(4 * 16000, dtype=np.float32), 16000)
    else:
        path = tmp_path / "noise.wav"
        path.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(AppError, match=needle):
        space["client"].predict(gradio_client.handle_file(str(path)), "siren, bell", api_name="/zero_shot")


def test_missing_audio_and_bad_labels_give_readable_errors(space):
    from gradio_client.exceptions import AppError

    client = space["client"]
    with pytest.raises(AppError, match="No audio: upload a clip or record one"):
        client.predict(None, "siren, bell", api_name="/zero_shot")
    with pytest.raises(AppError, match="at least two comma-separated labels"):
        client.predict(gradio_client.handle_file(str(space["examples"]["bell"])), "siren", api_name="/zero_shot")
    with pytest.raises(AppError, match="The two events must differ"):
        client.predict(gradio_client.handle_file(str(space["examples"]["bell"])), "bell", "Bell",
                       api_name="/what_came_first")


def test_fifty_concurrent_zero_shot_requests_all_answer_correctly(space):
    """A bounded load test on loopback: 50 requests over 3 clips from 16 threads, each checked against the model."""
    clap = space["clap"]
    labels = ["siren", "bell", "knocking"]
    clips = ["siren", "bell", "knocking"]
    expected = {}
    for name in clips:
        ref = _reference_probs(clap, _load(space["examples"][name], clap.sampling_rate),
                               [f"This is a sound of {x}." for x in labels])
        expected[name] = dict(zip(labels, ref))
    client = space["client"]

    def one(i):
        name = clips[i % len(clips)]
        label, _, _ = client.predict(gradio_client.handle_file(str(space["examples"][name])), ", ".join(labels),
                                     api_name="/zero_shot")
        return name, _confidences(label)

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = [f.result(timeout=300) for f in [pool.submit(one, i) for i in range(50)]]
    assert len(results) == 50
    for name, got in results:
        assert set(got) == set(labels)
        for label in labels:
            assert abs(got[label] - expected[name][label]) < 1e-5, (name, got, expected[name])


def test_build_demo_from_recipe_folders(tmp_path):
    """Models given as folders (what the recipes write) load through the Auto classes; the app's answers equal the
    saved models' own forward passes and the page carries no random-model warning."""
    from hf_alm.data.synthetic import SYNTHETIC_CLASSES
    from hf_alm.modeling.beats import BeatsFeatureExtractor, BeatsForAudioClassification, tiny_beats_config
    from hf_alm.modeling.clap_teminal import ClapTeminalConfig, ClapTeminalModel, ClapTeminalProcessor
    from hf_alm.training.tokenizer import train_caption_tokenizer

    torch.manual_seed(3)
    tokenizer = train_caption_tokenizer([t for c in SYNTHETIC_CLASSES for t in (c.name, *c.captions)],
                                        vocab_size=300, model_max_length=32)
    clap = ClapTeminalModel(ClapTeminalConfig.from_preset("tiny", text_config={"vocab_size": len(tokenizer)})).eval()
    processor = ClapTeminalProcessor.from_preset("tiny", tokenizer)
    clap.save_pretrained(tmp_path / "clap")
    processor.save_pretrained(tmp_path / "clap")
    beats = BeatsForAudioClassification(tiny_beats_config(id2label={0: "x", 1: "y"}, label2id={"x": 0, "y": 1}))
    beats.eval().save_pretrained(tmp_path / "beats")
    BeatsFeatureExtractor().save_pretrained(tmp_path / "beats")

    app = load_app_module()
    demo = app.build_demo(clap=str(tmp_path / "clap"), beats=str(tmp_path / "beats"), cache_dir=tmp_path / "cache")
    assert "random weights" not in str(demo.config) and not demo.hf_alm_backends["clap"].is_random
    fns = {f.api_name: f.fn for f in demo.fns.values()}
    clip_path = demo.hf_alm_backends["examples"]["bell"]
    label, _, _ = fns["zero_shot"](str(clip_path), "bell, siren")
    ref = _reference_probs(app.ZeroShotBackend(clap, processor, "in-memory"),
                           _load(clip_path, processor.feature_extractor.sampling_rate),
                           ["This is a sound of bell.", "This is a sound of siren."])
    np.testing.assert_allclose([label["bell"], label["siren"]], ref, rtol=1e-4, atol=1e-6)
    tags, _ = fns["tag"](str(clip_path))
    with torch.no_grad():
        logits = beats(**BeatsFeatureExtractor()(_load(clip_path, 16000), sampling_rate=16000,
                                                 return_tensors="pt")).logits[0]
    np.testing.assert_allclose([tags["x"], tags["y"]], torch.softmax(logits, -1).numpy(), rtol=1e-4, atol=1e-6)


def test_read_clip_accepts_gradio_numpy_audio_and_rejects_bad_input():
    """Gradio's numpy audio is (sr, int16 data), possibly stereo: scaled by 1/32768, down-mixed, resampled."""
    app = load_app_module()
    t = np.arange(8000) / 8000.0
    tone = (16384 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    stereo = np.stack([tone, tone], axis=1)
    clip = app.read_clip((8000, stereo), 16000)
    assert clip.dtype == np.float32 and clip.shape == (16000,)
    assert abs(float(np.abs(clip).max()) - 0.5) < 0.01  # 16384 / 32768, whatever the resampler
    with pytest.raises(gradio.Error, match="empty"):
        app.read_clip((16000, np.zeros(0, dtype=np.int16)), 16000)
    with pytest.raises(gradio.Error, match=r"is 40\.0 s long; this demo accepts at most 30 s"):
        app.read_clip((1000, np.zeros(40000, dtype=np.int16)), 16000)
    with pytest.raises(gradio.Error, match="No audio"):
        app.read_clip(None, 16000)


def test_a_long_upload_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch):
    """A 40 s file is refused by load_audio's limit from its header, no sample read (an hour-long upload used to be
    decoded into memory first); a FLAC stating 40 s likewise, without FFmpeg decoding a frame."""
    import soundfile as sf

    import hf_alm.data.audio as audio

    app = load_app_module()
    path = write_wav(tmp_path / "long.wav", np.zeros(40 * 8000, dtype=np.float32), 8000)
    flac = tmp_path / "long.flac"
    sf.write(flac, np.zeros(40 * 8000, dtype=np.float32), 8000, format="FLAC")

    def no_decoding(*args, **kwargs):
        raise AssertionError("the file was decoded")

    from torchcodec.decoders import AudioDecoder

    monkeypatch.setattr(audio._Reader, "array", no_decoding)
    monkeypatch.setattr(AudioDecoder, "get_samples_played_in_range", no_decoding)
    for upload in (path, flac):
        with pytest.raises(gradio.Error, match=r"is 40\.0 s long; this demo accepts at most 30 s"):
            app.read_clip(str(upload), 16000)


def test_an_upload_whose_header_hides_its_length_is_refused_at_the_limit(space, tmp_path):
    """A FLAC with STREAMINFO's total-samples zeroed (2 h of audio in 92 KB, which the header-duration check let
    through to a full decode) is decoded only up to the Space's limit, then refused."""
    from gradio_client.exceptions import AppError

    from test_hostile_audio import constant_flac

    path = tmp_path / "hidden_length.flac"
    path.write_bytes(constant_flac(7200, 48000, 2, header_samples=0))
    with pytest.raises(AppError, match=r"The clip is longer than this demo accepts \(at most 3 s; decoding stopped"):
        space["client"].predict(gradio_client.handle_file(str(path)), "siren, bell", api_name="/zero_shot")


def test_tagging_a_clip_shorter_than_one_frame_gives_a_readable_error(space, tmp_path):
    """A microphone stopped at once gives a few samples: BEATs needs one 25 ms frame (it was a bare 'Error')."""
    from gradio_client.exceptions import AppError

    path = write_wav(tmp_path / "blip.wav", 0.1 * np.ones(10, dtype=np.float32), 16000)
    with pytest.raises(AppError, match=r"Could not tag this clip: .*shorter than one 25 ms frame"):
        space["client"].predict(gradio_client.handle_file(str(path)), api_name="/tag")
