"""hf-alm demo Space: zero-shot sound classification, "what came first?", audio tagging and text-to-audio search.

``build_demo(clap=..., beats=...)`` returns a ``gradio.Blocks``; nothing is launched on import. Models come from
local folders (what the recipes wrote) or Hub ids; with none given the app builds tiny *random* models so that it
always starts, and says so on the page. Example clips are synthesised from hf-alm's synthetic corpus (no downloads)
into a cache folder.

Run locally: ``hf-alm demo --clap runs/teminal --beats runs/beats/model`` or ``python app.py --clap ... --beats ...``. On a
Space, set the variables ``HF_ALM_CLAP`` / ``HF_ALM_BEATS`` to Hub ids.

API endpoints (``gradio_client``): ``/zero_shot`` (audio, labels), ``/what_came_first`` (audio, event_a, event_b),
``/tag`` (audio), ``/search`` (query).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import threading
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

DEFAULT_TEMPLATE = "This is a sound of {}."
MAX_SECONDS = 30.0
#: Decoding budget per upload, in values (samples x channels): MAX_SECONDS of 48 kHz stereo. A 96 kHz 8-channel
#: upload is refused after 3.75 s of it instead of decoding 23 million values.
BUDGET_RATE, BUDGET_CHANNELS = 48000, 2
MAX_LABELS = 32
TEXT_CACHE_SIZE = 4096
SPECTROGRAM_RATE = 16000
EXAMPLE_RATE = 16000
SINGLE_EXAMPLES = ("siren", "bell", "click train", "rising chirp", "knocking", "pink noise burst")
PAIR_EXAMPLES = (("rising chirp", "bell", "before"), ("knocking", "siren", "after"), ("harmonic hum", "trill", "while"))
DEFAULT_LABELS = "siren, bell, click train, rising chirp, knocking, pink noise burst"


def _gr():
    import gradio as gr

    return gr


# ------------------------------------------------------------------------------------------------------ backends
@dataclass
class ZeroShotBackend:
    """A CLAP-style model (``get_audio_features`` / ``get_text_features``) with its processor."""

    model: torch.nn.Module
    processor: object
    source: str
    is_random: bool = False
    _text_cache: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def sampling_rate(self) -> int:
        return int(self.processor.feature_extractor.sampling_rate)

    @property
    def logit_scale(self) -> float:
        for name in ("logit_scale_a", "logit_scale"):
            value = getattr(self.model, name, None)
            if value is not None:
                limit = getattr(self.model.config, "logit_scale_max", math.inf)
                return float(min(float(value.detach().exp()), limit))
        return 1.0 / 0.07

    @torch.no_grad()
    def embed_audio(self, clips: list[np.ndarray]) -> np.ndarray:
        inputs = self.processor(audio=[np.asarray(c, dtype=np.float32) for c in clips],
                                sampling_rate=self.sampling_rate, return_tensors="pt")
        out = self.model.get_audio_features(**inputs)
        emb = getattr(out, "pooler_output", out)
        return torch.nn.functional.normalize(emb.float(), dim=-1).numpy()

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            found = {t: self._text_cache[t] for t in texts if t in self._text_cache}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            inputs = self.processor(text=missing, padding=True, return_tensors="pt")
            out = self.model.get_text_features(**inputs)
            emb = torch.nn.functional.normalize(getattr(out, "pooler_output", out).float(), dim=-1).numpy()
            found.update(zip(missing, emb))
            with self._lock:
                if len(self._text_cache) > TEXT_CACHE_SIZE:  # user-typed labels: keep the cache bounded
                    self._text_cache.clear()
                self._text_cache.update(zip(missing, emb))
        return np.stack([found[t] for t in texts])

    def scores(self, clip: np.ndarray, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarities and softmax probabilities of ``texts`` for one clip."""
        sims = (self.embed_text(texts) @ self.embed_audio([clip])[0]).astype(np.float64)
        logits = self.logit_scale * sims
        probs = np.exp(logits - logits.max())
        return sims, probs / probs.sum()


@dataclass
class TaggerBackend:
    """An ``AutoModelForAudioClassification`` model (a BEATs classifier) with its feature extractor."""

    model: torch.nn.Module
    feature_extractor: object
    source: str
    is_random: bool = False

    @property
    def sampling_rate(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    @torch.no_grad()
    def tag(self, clip: np.ndarray) -> dict[str, float]:
        inputs = self.feature_extractor(np.asarray(clip, dtype=np.float32), sampling_rate=self.sampling_rate,
                                        return_tensors="pt")
        logits = self.model(**inputs).logits[0].float()
        multi = getattr(self.model.config, "problem_type", None) == "multi_label_classification"
        probs = torch.sigmoid(logits) if multi else torch.softmax(logits, dim=-1)
        id2label = self.model.config.id2label
        return {str(id2label[i]): float(p) for i, p in enumerate(probs.tolist())}


def load_clap(source: str | os.PathLike) -> ZeroShotBackend:
    """CLAP-TeminAL (or another hf-alm contrastive model) from a local folder or a Hub id."""
    import hf_alm  # noqa: F401  (registers the hf-alm Auto classes)
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(source).eval()
    for name in ("get_audio_features", "get_text_features"):
        if not hasattr(model, name):
            raise ValueError(f"{source}: {type(model).__name__} has no {name}(); the zero-shot tabs need a CLAP-style "
                             f"audio-text model such as CLAP-TeminAL")
    return ZeroShotBackend(model, AutoProcessor.from_pretrained(source), str(source))


def load_tagger(source: str | os.PathLike) -> TaggerBackend:
    """An audio classifier (BEATs, tiny edge transformer, ...) from a local folder or a Hub id."""
    import hf_alm  # noqa: F401
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    model = AutoModelForAudioClassification.from_pretrained(source).eval()
    return TaggerBackend(model, AutoFeatureExtractor.from_pretrained(source), str(source))


def tiny_random_clap(seed: int = 0) -> ZeroShotBackend:
    """A tiny CLAP-TeminAL with random weights and a caption tokenizer trained on the synthetic captions (offline)."""
    from hf_alm.data.synthetic import SYNTHETIC_CLASSES
    from hf_alm.modeling.clap_teminal import ClapTeminalConfig, ClapTeminalModel, ClapTeminalProcessor
    from hf_alm.training.tokenizer import train_caption_tokenizer

    texts = [t for c in SYNTHETIC_CLASSES for t in (c.name, c.noun, *c.captions)]
    texts += [DEFAULT_TEMPLATE.format(c.name) for c in SYNTHETIC_CLASSES]
    tokenizer = train_caption_tokenizer(texts, vocab_size=400, model_max_length=32)
    torch.manual_seed(seed)
    config = ClapTeminalConfig.from_preset("tiny", text_config={"vocab_size": len(tokenizer)})
    model = ClapTeminalModel(config).eval()
    return ZeroShotBackend(model, ClapTeminalProcessor.from_preset("tiny", tokenizer), "tiny random CLAP-TeminAL",
                           is_random=True)


def tiny_random_tagger(seed: int = 0) -> TaggerBackend:
    """A tiny BEATs classifier with random weights over the synthetic class names."""
    from hf_alm.data.synthetic import SYNTHETIC_CLASS_NAMES
    from hf_alm.modeling.beats import BeatsFeatureExtractor, BeatsForAudioClassification, tiny_beats_config

    labels = list(SYNTHETIC_CLASS_NAMES)
    torch.manual_seed(seed)
    config = tiny_beats_config(id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    model = BeatsForAudioClassification(config).eval()
    return TaggerBackend(model, BeatsFeatureExtractor(), "tiny random BEATs classifier", is_random=True)


# ---------------------------------------------------------------------------------------------------- examples
def _write_wav(path: Path, audio: np.ndarray, sampling_rate: int) -> None:
    """16-bit PCM WAV with the standard library, written atomically."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        with wave.open(tmp, "wb") as fh:
            fh.setnchannels(1)
            fh.setsampwidth(2)
            fh.setframerate(sampling_rate)
            fh.writeframes(pcm.tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def default_cache_dir() -> Path:
    base = os.environ.get("HF_ALM_DEMO_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "hf-alm", "demo")
    return Path(base)


def make_examples(cache_dir: str | os.PathLike | None = None, *, seed: int = 0) -> dict[str, Path]:
    """Synthesise the example clips (single events and two-event compositions) into ``cache_dir``; name -> path.

    Deterministic: the same seed gives byte-identical files, so existing files are reused.
    """
    from hf_alm.data.compositions import canonical_caption, concat_events, overlay_events
    from hf_alm.data.synthetic import generate_event

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = folder / f"examples-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    clips: dict[str, Path] = {}
    for i, name in enumerate(SINGLE_EXAMPLES):
        path = folder / f"{name.replace(' ', '_')}.wav"
        if not path.is_file():
            _write_wav(path, generate_event(name, sampling_rate=EXAMPLE_RATE, rng=seed * 1000 + i, duration=1.0),
                       EXAMPLE_RATE)
        clips[name] = path
    for j, (a, b, relation) in enumerate(PAIR_EXAMPLES):
        caption = canonical_caption(a, b, relation)
        path = folder / f"{caption.replace(' ', '_')}.wav"
        if not path.is_file():
            ea = generate_event(a, sampling_rate=EXAMPLE_RATE, rng=seed * 1000 + 100 + 2 * j, duration=0.8)
            eb = generate_event(b, sampling_rate=EXAMPLE_RATE, rng=seed * 1000 + 101 + 2 * j, duration=0.8)
            if relation == "while":
                mix = overlay_events(ea, eb)
            elif relation == "before":
                mix = concat_events(ea, eb, sampling_rate=EXAMPLE_RATE, gap=0.1)
            else:  # "a after b": b is heard first
                mix = concat_events(eb, ea, sampling_rate=EXAMPLE_RATE, gap=0.1)
            peak = float(np.max(np.abs(mix))) or 1.0
            _write_wav(path, mix / max(peak, 1.0), EXAMPLE_RATE)
        clips[caption] = path
    return clips


# ------------------------------------------------------------------------------------------------- audio input
def read_clip(audio, sampling_rate: int, *, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """A Gradio audio value (file path, or ``(sr, int16 data)``) as float32 mono at ``sampling_rate``.

    ``max_seconds`` is enforced by ``load_audio`` itself, whatever a file's header says: a file whose header omits or
    understates its length is decoded only up to the limit, one with an absurd sampling rate is refused unread.
    Bad input raises ``gradio.Error`` with a readable message (no audio, empty, too long, undecodable).
    """
    gr = _gr()
    from hf_alm.data.audio import AudioInputError, AudioTooLongError, load_audio

    if audio is None or (isinstance(audio, str) and not audio):
        raise gr.Error("No audio: upload a clip or record one with the microphone first.")
    if isinstance(audio, dict):  # FileData-like
        audio = audio.get("path") or audio
    source, layout = audio, {}
    if isinstance(audio, (tuple, list)) and len(audio) == 2 and np.isscalar(audio[0]):
        sr, data = audio
        data = np.asarray(data)
        source = (sr, data)
        if data.ndim == 2:
            layout = {"channels_first": False}  # gradio's numpy audio is (samples, channels)
    elif isinstance(audio, (str, os.PathLike)):
        path = Path(audio)
        if not path.is_file():
            raise gr.Error(f"The uploaded file {path.name!r} could not be found on the server; upload it again.")
        if path.stat().st_size == 0:
            raise gr.Error(f"The uploaded file {path.name!r} is empty (0 bytes).")
    try:
        clip = load_audio(source, sampling_rate, max_seconds=max_seconds,
                          max_samples=int(max_seconds * BUDGET_RATE * BUDGET_CHANNELS), **layout)
    except AudioTooLongError as err:
        if err.limit == "max_samples":
            raise gr.Error(f"The clip holds more audio than this demo decodes (at most {max_seconds:g} s of "
                           f"{BUDGET_RATE // 1000} kHz stereo, or as many samples at other rates and channel counts). "
                           "Down-mix or resample it and try again.") from err
        if err.seconds is not None:
            raise gr.Error(f"The clip is {err.seconds:.1f} s long; this demo accepts at most {max_seconds:g} s. Trim "
                           "it and try again.") from err
        raise gr.Error(f"The clip is longer than this demo accepts (at most {max_seconds:g} s; decoding stopped "
                       f"there, its header does not state its true length). Trim it and try again.") from err
    except AudioInputError as err:
        message = str(err)
        if isinstance(source, (str, os.PathLike)):  # do not show the server's temporary paths
            message = message.replace(str(source), Path(source).name)
        if "empty" in message.lower() or "0 samples" in message:
            raise gr.Error(f"The audio is empty: {message}") from err
        raise gr.Error(f"Could not read the audio: {message}") from err
    if clip.numel() == 0:
        raise gr.Error("The audio is empty (0 samples): record or upload a longer clip.")
    return clip.numpy().astype(np.float32, copy=False)


def parse_labels(text: str) -> list[str]:
    gr = _gr()
    labels = list(dict.fromkeys(part.strip() for part in (text or "").replace("\n", ",").split(",") if part.strip()))
    if len(labels) < 2:
        raise gr.Error(f"Enter at least two comma-separated labels (got {len(labels)}: {text!r}).")
    if len(labels) > MAX_LABELS:
        raise gr.Error(f"Too many labels ({len(labels)}); at most {MAX_LABELS}.")
    return labels


# ------------------------------------------------------------------------------------------------------- plots
def spectrogram_figure(clip: np.ndarray, sampling_rate: int, title: str = "Spectrogram"):
    """A log-power spectrogram (matplotlib ``Figure``, thread-safe object API; no pyplot state)."""
    from matplotlib.figure import Figure

    from hf_alm.data.audio import resample

    x = torch.as_tensor(clip, dtype=torch.float32)
    if sampling_rate != SPECTROGRAM_RATE:
        x = resample(x, sampling_rate, SPECTROGRAM_RATE)
    n_fft, hop = 512, 160
    if x.numel() < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - x.numel()))
    spec = torch.stft(x, n_fft=n_fft, hop_length=hop, window=torch.hann_window(n_fft), return_complex=True)
    db = 10.0 * torch.log10(spec.abs().pow(2) + 1e-10)
    db = torch.clamp(db, min=float(db.max()) - 80.0).numpy()
    fig = Figure(figsize=(7, 2.6), dpi=80)
    ax = fig.add_subplot(1, 1, 1)
    duration = x.numel() / SPECTROGRAM_RATE
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma",
              extent=(0.0, duration, 0.0, SPECTROGRAM_RATE / 2000.0))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (kHz)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _bar_frame(names: list[str], values, column: str = "similarity"):
    import pandas as pd

    return pd.DataFrame({"text": list(names), column: [round(float(v), 6) for v in values]})


# ---------------------------------------------------------------------------------------------------- the app
def _resolve(backend, loader, fallback):
    if backend is None:
        return fallback()
    if isinstance(backend, (ZeroShotBackend, TaggerBackend)):
        return backend
    return loader(backend)


def build_demo(clap=None, beats=None, *, cache_dir=None, max_seconds: float = MAX_SECONDS,
               search_clips: dict[str, str] | None = None, seed: int = 0):
    """Build the Space (a ``gradio.Blocks``; call ``.launch()`` yourself).

    Args:
        clap: CLAP-TeminAL folder / Hub id / :class:`ZeroShotBackend` for zero-shot, "what came first?" and search;
            ``None`` builds a tiny random model (the page says so).
        beats: audio-classifier folder / Hub id / :class:`TaggerBackend` for tagging; ``None``: tiny random BEATs.
        cache_dir: where the synthetic example clips are written (default ``$HF_ALM_DEMO_CACHE`` or
            ``~/.cache/hf-alm/demo``).
        max_seconds: longest accepted clip.
        search_clips: ``{name: path}`` searched by the text-to-audio tab (default: the example clips).
    """
    gr = _gr()
    zs = _resolve(clap, load_clap, lambda: tiny_random_clap(seed))
    tagger = _resolve(beats, load_tagger, lambda: tiny_random_tagger(seed))
    examples = make_examples(cache_dir, seed=seed)
    corpus = {name: str(path) for name, path in (search_clips or examples).items()}
    corpus_names = list(corpus)
    corpus_audio = [read_clip(corpus[n], zs.sampling_rate, max_seconds=max_seconds) for n in corpus_names]
    corpus_embeds = zs.embed_audio(corpus_audio)

    def zero_shot(audio, labels_text):
        labels = parse_labels(labels_text)
        clip = read_clip(audio, zs.sampling_rate, max_seconds=max_seconds)
        sims, probs = zs.scores(clip, [DEFAULT_TEMPLATE.format(label) for label in labels])
        return ({label: float(p) for label, p in zip(labels, probs)}, _bar_frame(labels, sims),
                spectrogram_figure(clip, zs.sampling_rate))

    def what_came_first(audio, event_a, event_b):
        from hf_alm.data.compositions import RELATIONS, canonical_caption

        a, b = (event_a or "").strip(), (event_b or "").strip()
        if not a or not b:
            raise gr.Error("Name both events (for example 'rising chirp' and 'bell').")
        if a.lower() == b.lower():
            raise gr.Error(f"The two events must differ (both are {a!r}).")
        captions = [canonical_caption(a, b, relation) for relation in RELATIONS]
        clip = read_clip(audio, zs.sampling_rate, max_seconds=max_seconds)
        sims, probs = zs.scores(clip, captions)
        return ({c: float(p) for c, p in zip(captions, probs)}, _bar_frame(captions, sims),
                spectrogram_figure(clip, zs.sampling_rate))

    def tag(audio):
        clip = read_clip(audio, tagger.sampling_rate, max_seconds=max_seconds)
        try:
            tags = tagger.tag(clip)
        except ValueError as err:  # e.g. a clip shorter than one analysis frame (a microphone stopped at once)
            raise gr.Error(f"Could not tag this clip: {err}") from err
        return tags, spectrogram_figure(clip, tagger.sampling_rate)

    def search(query):
        query = (query or "").strip()
        if not query:
            raise gr.Error("Type a description of the sound to search for (for example 'a siren').")
        sims = corpus_embeds @ zs.embed_text([query])[0]
        order = np.argsort(-sims, kind="stable")
        table = [[int(rank + 1), corpus_names[i], round(float(sims[i]), 6)] for rank, i in enumerate(order)]
        best = corpus[corpus_names[order[0]]]
        return table, best, _bar_frame([corpus_names[i] for i in order], sims[order])

    notes = []
    if zs.is_random:
        notes.append("**No CLAP-TeminAL model was given: the zero-shot, \"what came first?\" and search tabs use a "
                     "tiny model with random weights**, so their answers are meaningless (start with `--clap DIR` or "
                     "set `HF_ALM_CLAP`).")
    if tagger.is_random:
        notes.append("**No BEATs classifier was given: tagging uses a tiny random BEATs model** (start with "
                     "`--beats DIR` or set `HF_ALM_BEATS`).")

    single = [[str(examples[n])] for n in SINGLE_EXAMPLES]
    pairs = [(a, b, rel) for a, b, rel in PAIR_EXAMPLES]
    with gr.Blocks(title="hf-alm: listen with audio-language models") as demo:
        gr.Markdown("# hf-alm demo\nZero-shot sound classification and temporal order with CLAP-TeminAL, audio "
                    "tagging with BEATs, and text-to-audio search. Upload a clip or record one (at most "
                    f"{max_seconds:g} s). Models: CLAP `{zs.source}`, tagger `{tagger.source}`.")
        if notes:
            gr.Markdown("⚠️ " + "<br>⚠️ ".join(notes), elem_id="random-model-warning")
        with gr.Tab("Zero-shot classification"):
            with gr.Row():
                with gr.Column():
                    zs_audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio",
                                        elem_id="zs-audio")
                    zs_labels = gr.Textbox(value=DEFAULT_LABELS, label="Candidate labels (comma-separated)",
                                           elem_id="zs-labels")
                    zs_button = gr.Button("Classify", variant="primary", elem_id="zs-submit")
                with gr.Column():
                    zs_label = gr.Label(num_top_classes=5, label="Zero-shot prediction", elem_id="zs-label")
                    zs_bars = gr.BarPlot(x="text", y="similarity", sort="-y", label="Cosine similarity per label",
                                         elem_id="zs-bars")
            zs_spec = gr.Plot(label="Spectrogram", elem_id="zs-spectrogram")
            gr.Examples([[p[0], DEFAULT_LABELS] for p in single], inputs=[zs_audio, zs_labels])
            zs_button.click(zero_shot, [zs_audio, zs_labels], [zs_label, zs_bars, zs_spec], api_name="zero_shot")
        with gr.Tab("What came first?"):
            with gr.Row():
                with gr.Column():
                    wf_audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio",
                                        elem_id="wf-audio")
                    wf_a = gr.Textbox(value=pairs[0][0], label="Event A", elem_id="wf-a")
                    wf_b = gr.Textbox(value=pairs[0][1], label="Event B", elem_id="wf-b")
                    wf_button = gr.Button("Which order?", variant="primary", elem_id="wf-submit")
                with gr.Column():
                    wf_label = gr.Label(label="Ranked captions (A before / after / while B)", elem_id="wf-label")
                    wf_bars = gr.BarPlot(x="text", y="similarity", sort="-y", label="Cosine similarity per caption",
                                         elem_id="wf-bars")
            wf_spec = gr.Plot(label="Spectrogram", elem_id="wf-spectrogram")
            from hf_alm.data.compositions import canonical_caption

            gr.Examples([[str(examples[canonical_caption(a, b, rel)]), a, b] for a, b, rel in pairs],
                        inputs=[wf_audio, wf_a, wf_b])
            wf_button.click(what_came_first, [wf_audio, wf_a, wf_b], [wf_label, wf_bars, wf_spec],
                            api_name="what_came_first")
        with gr.Tab("Audio tagging (BEATs)"):
            with gr.Row():
                with gr.Column():
                    tg_audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio",
                                        elem_id="tg-audio")
                    tg_button = gr.Button("Tag", variant="primary", elem_id="tg-submit")
                tg_label = gr.Label(num_top_classes=5, label="Tags", elem_id="tg-label")
            tg_spec = gr.Plot(label="Spectrogram", elem_id="tg-spectrogram")
            gr.Examples(single, inputs=[tg_audio])
            tg_button.click(tag, [tg_audio], [tg_label, tg_spec], api_name="tag")
        with gr.Tab("Text-to-audio search"):
            gr.Markdown(f"Searches {len(corpus)} clips: " + ", ".join(f"`{n}`" for n in corpus_names) + ".")
            with gr.Row():
                with gr.Column():
                    se_query = gr.Textbox(value="a siren wailing", label="Describe a sound", elem_id="se-query")
                    se_button = gr.Button("Search", variant="primary", elem_id="se-submit")
                    se_best = gr.Audio(label="Best match", type="filepath", interactive=False, elem_id="se-best")
                with gr.Column():
                    se_table = gr.Dataframe(headers=["rank", "clip", "similarity"], label="Ranked clips",
                                            interactive=False, elem_id="se-table")
                    se_bars = gr.BarPlot(x="text", y="similarity", label="Cosine similarity per clip",
                                         elem_id="se-bars")
            se_button.click(search, [se_query], [se_table, se_best, se_bars], api_name="search")
    demo.queue(default_concurrency_limit=4)
    demo.hf_alm_backends = {"clap": zs, "beats": tagger, "examples": examples}
    return demo


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="hf-alm demo Space")
    parser.add_argument("--clap", default=os.environ.get("HF_ALM_CLAP"),
                        help="CLAP-TeminAL folder or Hub id (default: $HF_ALM_CLAP, else a tiny random model)")
    parser.add_argument("--beats", default=os.environ.get("HF_ALM_BEATS"),
                        help="BEATs classifier folder or Hub id (default: $HF_ALM_BEATS, else a tiny random model)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 7860)), help="server port")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"), help="server address")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    build_demo(clap=args.clap, beats=args.beats).launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
