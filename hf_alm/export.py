"""Export of the tiny edge transformer for microcontroller-class devices: ONNX fp32, int8 ONNX, front-end JSON.

``hf-alm export tiny MODEL_DIR OUT_DIR`` (or :func:`export_tiny`) writes, atomically:

- ``model.onnx``: the network only (no front-end), float32. Inputs ``input_values`` float32
  ``(batch, frames, num_mel_bins)`` = *normalised* log-mel frames (``frontend.json``), ``frames <= max_frames``;
  ``attention_mask`` int64 ``(batch, frames)``, 1 = real frame, 0 = padding (all ones for one unpadded clip).
  Output ``logits`` float32 ``(batch, num_labels)``; ``softmax`` gives class probabilities, labels in
  ``frontend.json["labels"]``.
- ``model_int8.onnx``: the same graph after onnxruntime static post-training quantisation (QDQ, int8 weights and
  activations, MinMax calibration on log-mel features of *training* clips) of the position table, the attention
  projections and the feed-forward layers (83 % of the ``tiny`` parameters); the input projection, the two attention
  products and the classifier stay float32 (:data:`KEEP_FLOAT_DEFAULT`); same inputs and outputs.
- ``frontend.json``: everything needed to reimplement the front-end in C (sampling rate, window, FFT size, hop, mel
  formula and the filter matrix itself, log floor, normalisation, frame limit) plus the labels.
- ``export_report.json``: file sizes, calibration clip count, and the measured max |onnxruntime - PyTorch| of the
  fp32 model on the calibration features.
- ``README.md``: the same description for whoever receives the folder.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

FRONTEND_FORMAT = "hf-alm-tiny-edge-frontend/1"
INPUT_NAMES = ("input_values", "attention_mask")
OUTPUT_NAME = "logits"


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("exporting needs onnx and onnxruntime: pip install 'hf-alm[export]'") from err


# ---------------------------------------------------------------------------------------------------- loading

def load_tiny(model_dir: str | os.PathLike):
    """Load a tiny edge transformer folder: ``(model in eval mode with eager attention, feature extractor)``."""
    import hf_alm  # noqa: F401  (Auto registration)
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"not a model folder (no config.json): {model_dir}")
    model = AutoModelForAudioClassification.from_pretrained(model_dir, attn_implementation="eager").eval()
    if model.config.model_type != "hf_alm_tiny_edge_transformer":
        raise ValueError(f"expected a tiny edge transformer (model_type hf_alm_tiny_edge_transformer), got "
                         f"model_type {model.config.model_type!r} in {model_dir}")
    if not (model_dir / "preprocessor_config.json").is_file():
        raise FileNotFoundError(f"no preprocessor_config.json (feature extractor) in {model_dir}")
    fe = AutoFeatureExtractor.from_pretrained(model_dir)
    return model, fe


# ---------------------------------------------------------------------------------------------------- front-end

def frontend_spec(feature_extractor, config=None) -> dict:
    """The front-end as JSON-able data (formula in ``feature_extraction_tiny_edge_transformer``)."""
    fe = feature_extractor
    spec = {
        "format": FRONTEND_FORMAT,
        "description": (
            "x: mono float32 waveform in [-1, 1] at sampling_rate, at least n_fft samples (the extractor refuses shorter "
            "clips). "
            "Frames t = 0..F-1, F = 1 + (len(x) - n_fft) // hop_length (no centring, no pre-emphasis, no dither); "
            "frame_t[n] = x[t*hop_length + n] * window[n], window[n] = 0.5 - 0.5*cos(2*pi*n/n_fft) (periodic "
            "Hann, length n_fft). P_t[k] = |rfft(frame_t)[k]|^2, k = 0..n_fft/2. E_t[j] = sum_k "
            "mel_filters[j][k] * P_t[k]. L_t[j] = ln(max(E_t[j], log_floor)). features_t[j] = (L_t[j] - mean) / "
            "std. Keep at most max_frames frames (the first ones). Network input: input_values[0, t, j] = "
            "features_t[j], attention_mask[0, t] = 1."),
        "sampling_rate": int(fe.sampling_rate),
        "channels": 1,
        "sample_format": "float32 in [-1, 1] (int16 PCM / 32768)",
        "window": "hann_periodic",
        "window_length": int(fe.n_fft),
        "n_fft": int(fe.n_fft),
        "hop_length": int(fe.hop_length),
        "center": False,
        "preemphasis": 0.0,
        "power": 2.0,
        "num_mel_bins": int(fe.feature_size),
        "mel_scale": "htk",
        "mel_formula": "mel(f) = 2595 * log10(1 + f / 700); num_mel_bins + 2 points equally spaced in mel from "
                       "f_min to f_max; filter j: triangle from point j to point j+2, peak 1 at point j+1, "
                       "evaluated at bin frequencies k * sampling_rate / n_fft; no area normalisation",
        "f_min": float(fe.f_min),
        "f_max": float(fe.f_max),
        "log": "natural",
        "log_floor": float(fe.log_floor),
        "mean": float(fe.mean),
        "std": float(fe.std),
        "max_frames": int(fe.max_frames),
        "mel_filters_shape": [int(s) for s in fe.mel_filters.shape],
        "mel_filters": np.asarray(fe.mel_filters, dtype=np.float32).tolist(),
    }
    if config is not None:
        spec["labels"] = [config.id2label[i] for i in range(config.num_labels)]
        spec["max_frames"] = int(min(fe.max_frames, config.max_position_embeddings))
    return spec


def frontend_from_spec(spec: dict):
    """A reference front-end built from a ``frontend.json`` dict alone (numpy, explicit framing loop), for checking
    a port: returns a function ``waveform -> (frames, num_mel_bins)`` normalised float32 features."""
    n_fft, hop = spec["n_fft"], spec["hop_length"]
    filters = np.asarray(spec["mel_filters"], dtype=np.float64)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)

    def features(waveform):
        x = np.asarray(waveform, dtype=np.float64)
        if x.shape[0] < n_fft:
            raise ValueError(f"waveform has {x.shape[0]} samples, shorter than one frame (n_fft={n_fft}); the "
                             "front-end (like the feature extractor) needs at least n_fft samples")
        count = 1 + (x.shape[0] - n_fft) // hop
        frames = np.stack([x[t * hop: t * hop + n_fft] * window for t in range(count)])[: spec["max_frames"]]
        power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
        log_mel = np.log(np.maximum(power @ filters.T, spec["log_floor"]))
        return ((log_mel - spec["mean"]) / spec["std"]).astype(np.float32)

    return features


# ---------------------------------------------------------------------------------------------------- ONNX

class _LogitsOnly(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_values, attention_mask):
        return self.model(input_values, attention_mask=attention_mask, return_dict=False)[0]


def compact_onnx(model_proto):
    """Remove what a device does not need (doc strings, exporter metadata, value_info, node names) and give the
    intermediate tensors short names; the computation is unchanged."""
    graph = model_proto.graph
    model_proto.ClearField("doc_string")
    del model_proto.metadata_props[:]
    graph.ClearField("doc_string")
    del graph.metadata_props[:]
    del graph.value_info[:]
    for value in list(graph.input) + list(graph.output):
        value.ClearField("doc_string")
        del value.metadata_props[:]
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    renames: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        if name not in renames:
            renames[name] = f"t{len(renames)}"
        return renames[name]

    for init in graph.initializer:
        init.name = short(init.name)
        init.ClearField("doc_string")
        del init.metadata_props[:]
    for node in graph.node:
        node.ClearField("name")
        node.ClearField("doc_string")
        del node.metadata_props[:]
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    return model_proto


def export_onnx(model, path: str | os.PathLike, *, num_frames: int = 32, opset: int = 18) -> Path:
    """Export the network (``input_values``, ``attention_mask`` -> ``logits``) to ``path`` with dynamic batch and
    frame axes (frames up to ``max_position_embeddings``), eager attention, float32."""
    _require_onnx()
    import onnx

    model = copy.deepcopy(model).float().eval()
    model.config._attn_implementation = "eager"
    config = model.config
    num_frames = min(num_frames, config.max_position_embeddings)
    example = (torch.zeros(2, num_frames, config.num_mel_bins), torch.ones(2, num_frames, dtype=torch.int64))
    batch = torch.export.Dim("batch")
    frames = torch.export.Dim("frames", min=1, max=config.max_position_embeddings)
    path = Path(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
        program = torch.onnx.export(_LogitsOnly(model).eval(), example, input_names=list(INPUT_NAMES),
                                    output_names=[OUTPUT_NAME], opset_version=opset, dynamo=True,
                                    dynamic_shapes={"input_values": {0: batch, 1: frames},
                                                    "attention_mask": {0: batch, 1: frames}},
                                    verbose=False)
    proto = compact_onnx(program.model_proto)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


class FeatureCalibrationReader:
    """onnxruntime ``CalibrationDataReader`` over normalised log-mel feature arrays ``(frames, num_mel_bins)``,
    one clip per calibration run."""

    def __init__(self, features: Sequence[np.ndarray], max_frames: int):
        from onnxruntime.quantization import CalibrationDataReader

        if not isinstance(self, CalibrationDataReader):  # registered lazily so the import stays optional
            CalibrationDataReader.register(type(self))
        if len(features) == 0:
            raise ValueError("calibration needs at least one clip of features, got 0")
        self._features = [np.asarray(f, dtype=np.float32)[:max_frames] for f in features]
        self._index = 0

    def get_next(self):
        if self._index >= len(self._features):
            return None
        feats = self._features[self._index]
        self._index += 1
        return {"input_values": feats[None], "attention_mask": np.ones((1, feats.shape[0]), dtype=np.int64)}

    def rewind(self):
        self._index = 0


#: parts of the network left in float32 by default (``quantize_int8(keep_float=...)``), chosen by measurement: on
#: ESC-10 folds, quantising them flipped 1-2 of 80 near-tie predictions, keeping them float made int8 agree with fp32.
KEEP_FLOAT_DEFAULT = ("input_projection", "attention_products", "classifier")


def _float_node_names(proto, keep_float: Sequence[str]) -> list[str]:
    """Name every node ``n{i}`` and return the names of the nodes to keep in float32:
    ``input_projection`` (the MatMul that reads ``input_values``), ``attention_products`` (MatMuls of two
    activations: q k^T and attention x v) and ``classifier`` (the Gemm / final MatMul that produces ``logits``)."""
    unknown = set(keep_float) - {"input_projection", "attention_products", "classifier"}
    if unknown:
        raise ValueError(f"unknown keep_float part(s) {sorted(unknown)}; choose from input_projection, "
                         "attention_products, classifier")
    graph = proto.graph
    constants = {i.name for i in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    producers = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    out = []
    for index, node in enumerate(graph.node):
        node.name = f"n{index}"
    if "input_projection" in keep_float:
        out += [n.name for n in consumers.get(INPUT_NAMES[0], []) if n.op_type in ("MatMul", "Gemm")]
    if "attention_products" in keep_float:
        out += [n.name for n in graph.node if n.op_type == "MatMul" and not any(i in constants for i in n.input)]
    if "classifier" in keep_float:
        node = producers.get(OUTPUT_NAME)
        while node is not None and node.op_type not in ("MatMul", "Gemm"):  # e.g. MatMul -> Add(bias) -> logits
            node = producers.get(node.input[0])
        if node is not None:
            out.append(node.name)
    return out


def quantize_int8(fp32_path: str | os.PathLike, int8_path: str | os.PathLike, calibration_features,
                  *, max_frames: int, per_channel: bool = False,
                  op_types: Sequence[str] = ("MatMul", "Gemm", "Gather"),
                  keep_float: Sequence[str] = KEEP_FLOAT_DEFAULT) -> Path:
    """Static post-training quantisation (onnxruntime, QDQ, int8 activations and weights, MinMax calibration on
    ``calibration_features``) of the ``op_types`` nodes: the position-table lookup, the q/k/v/output projections and
    the feed-forward layers; ``keep_float`` parts (see :data:`KEEP_FLOAT_DEFAULT`), LayerNorm, softmax and the
    element-wise ops stay float32."""
    _require_onnx()
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    reader = FeatureCalibrationReader(calibration_features, max_frames)
    int8_path = Path(int8_path)
    proto = onnx.load(str(fp32_path))
    exclude = _float_node_names(proto, keep_float)
    with tempfile.TemporaryDirectory(dir=int8_path.parent) as tmp:
        named = Path(tmp) / "named.onnx"
        onnx.save(proto, str(named))
        quantize_static(str(named), str(int8_path), reader, quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(op_types), nodes_to_exclude=exclude or None,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=per_channel,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    proto = compact_onnx(onnx.load(str(int8_path)))
    onnx.save(proto, str(int8_path))
    return int8_path


def _int8_weight_count(path) -> int:
    import onnx

    proto = onnx.load(str(path))
    return int(sum(np.prod(i.dims) for i in proto.graph.initializer
                   if i.data_type == onnx.TensorProto.INT8 and len(i.dims) >= 2))


def onnx_session(path: str | os.PathLike, *, num_threads: int = 1):
    """An onnxruntime CPU session limited to ``num_threads`` threads."""
    _require_onnx()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session_or_path, features: Iterable[np.ndarray]) -> np.ndarray:
    """Logits ``(N, num_labels)`` for clips of normalised features ``(frames, num_mel_bins)``, one clip per run."""
    session = session_or_path if hasattr(session_or_path, "run") else onnx_session(session_or_path)
    out = []
    for feats in features:
        feats = np.asarray(feats, dtype=np.float32)
        out.append(session.run([OUTPUT_NAME], {"input_values": feats[None],
                                                "attention_mask": np.ones((1, feats.shape[0]), np.int64)})[0][0])
    if not out:
        raise ValueError("no clips given")
    return np.stack(out)


# ---------------------------------------------------------------------------------------------------- calibration

def calibration_features(source, feature_extractor, *, max_clips: int = 64, seed: int = 0,
                         split: str | None = "train") -> list[np.ndarray]:
    """Normalised log-mel features of up to ``max_clips`` training clips, from ``source``: a ``.npz`` written by the
    recipe (``calibration_features.npz``: arrays ``f0, f1, ...``), or a dataset spec of ``hf_alm.data.loaders``
    (``esc10:PATH``, ``synthetic``, ...; ``split`` picks a split of a ``DatasetDict``), or a list of waveforms."""
    fe = feature_extractor
    if isinstance(source, (list, tuple)):
        waves = list(source)
        return [fe.normalize(fe.log_mel(w)[: fe.max_frames]) for w in waves[:max_clips]]
    source = str(source)
    if source.endswith(".npz"):
        if not Path(source).is_file():
            raise FileNotFoundError(f"calibration file not found: {source}")
        with np.load(source) as data:
            keys = sorted(data.files, key=lambda k: int(k[1:]) if k[1:].isdigit() else k)
            feats = [np.asarray(data[k], dtype=np.float32) for k in keys][:max_clips]
        bad = [f.shape for f in feats if f.ndim != 2 or f.shape[1] != fe.feature_size]
        if bad:
            raise ValueError(f"calibration features must be (frames, {fe.feature_size}) arrays, got shapes {bad[:3]}")
        return feats
    from hf_alm.data.audio import load_audio
    from hf_alm.data.loaders import load_dataset_spec

    dataset = load_dataset_spec(source)
    if hasattr(dataset, "keys"):  # DatasetDict
        if split not in dataset:
            raise ValueError(f"dataset {source!r} has splits {sorted(dataset.keys())}, not {split!r}")
        dataset = dataset[split]
    order = np.random.default_rng(seed).permutation(len(dataset))[:max_clips]
    out = []
    for index in order:
        wave = load_audio(dataset[int(index)]["audio"], fe.sampling_rate).numpy()
        out.append(fe.normalize(fe.log_mel(wave)[: fe.max_frames]))
    return out


def save_calibration_features(path: str | os.PathLike, features: Sequence[np.ndarray]) -> None:
    """Write features for :func:`calibration_features` (``np.savez_compressed``, arrays ``f0, f1, ...``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
    np.savez_compressed(tmp, **{f"f{i}": np.asarray(f, dtype=np.float16) for i, f in enumerate(features)})
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------- all together

_README = """# Tiny edge transformer export

- `model.onnx`: float32 network. `model_int8.onnx`: int8 (static post-training quantisation, QDQ, calibrated on
  {num_calibration} clips of {calibration_source}; kept in float32: {keep_float}). Same interface:
  - input `input_values` float32 `(batch, frames, {num_mel_bins})`: normalised log-mel frames, frames <= {max_frames};
  - input `attention_mask` int64 `(batch, frames)`: 1 for real frames, 0 for padding (all ones for a single clip);
  - output `logits` float32 `(batch, {num_labels})`; labels in `frontend.json["labels"]`.
- `frontend.json`: the log-mel front-end (run it on the device before the network); `description` gives the
  formula, `mel_filters` the `({num_mel_bins}, {num_bins})` filter matrix.
- `export_report.json`: sizes and the fp32 onnxruntime-vs-PyTorch check.
"""


def _calibration_source(calibration) -> str:
    """Words for the model card: where the int8 calibration clips came from."""
    if isinstance(calibration, (list, tuple)):
        return "the given waveforms"
    text = str(calibration)
    if text.endswith("calibration_features.npz"):
        return "training features saved by the recipe (calibration_features.npz)"
    if text.endswith(".npz"):
        return f"the features in {Path(text).name}"
    return "the synthetic corpus" if text.split(":")[0] == "synthetic" else f"the dataset {text}"


def export_tiny(model_dir: str | os.PathLike, out_dir: str | os.PathLike, *, calibration=None,
                max_calibration_clips: int = 64, per_channel: bool = False, opset: int = 18,
                keep_float: Sequence[str] = KEEP_FLOAT_DEFAULT) -> dict:
    """Export ``model_dir`` (a trained tiny edge transformer folder) to ``out_dir`` (see the module docstring).

    ``calibration``: a ``.npz`` of training features, a dataset spec, or a list of waveforms; by default
    ``MODEL_DIR/calibration_features.npz`` (written by ``recipes/tiny_edge.py``). Returns the export report.
    """
    _require_onnx()
    from hf_alm.utils import atomic_directory, atomic_write_text

    model_dir = Path(model_dir)
    model, fe = load_tiny(model_dir)
    if calibration is None:
        default = model_dir / "calibration_features.npz"
        if not default.is_file():
            raise FileNotFoundError(
                f"no calibration data: {default} does not exist; pass --calibration / calibration= (a .npz of "
                f"training features or a dataset spec such as esc10:PATH)")
        calibration = default
    feats = calibration_features(calibration, fe, max_clips=max_calibration_clips)
    max_frames = int(min(fe.max_frames, model.config.max_position_embeddings))
    with atomic_directory(out_dir) as tmp:
        fp32 = export_onnx(model, tmp / "model.onnx", opset=opset)
        int8 = quantize_int8(fp32, tmp / "model_int8.onnx", feats, max_frames=max_frames, per_channel=per_channel,
                             keep_float=keep_float)
        spec = frontend_spec(fe, model.config)
        atomic_write_text(tmp / "frontend.json", json.dumps(spec, indent=1))
        with torch.no_grad():
            reference = np.stack([model(torch.from_numpy(f[None]).float()).logits[0].numpy() for f in feats])
        session = onnx_session(fp32)
        fp32_logits = run_onnx(session, feats)
        int8_logits = run_onnx(onnx_session(int8), feats)
        report = {
            "model_dir": str(model_dir),
            "num_parameters": int(sum(p.numel() for p in model.parameters())),
            "num_calibration_clips": len(feats),
            "per_channel": per_channel,
            "kept_float32": list(keep_float),
            "int8_weight_parameters": _int8_weight_count(int8),
            "opset": opset,
            "model_onnx_bytes": fp32.stat().st_size,
            "model_int8_onnx_bytes": int8.stat().st_size,
            "fp32_max_abs_diff_vs_pytorch": float(np.abs(fp32_logits - reference).max()),
            "int8_argmax_agreement_with_fp32_on_calibration": float(
                (int8_logits.argmax(-1) == fp32_logits.argmax(-1)).mean()),
        }
        atomic_write_text(tmp / "export_report.json", json.dumps(report, indent=2))
        atomic_write_text(tmp / "README.md", _README.format(
            num_calibration=len(feats), calibration_source=_calibration_source(calibration),
            num_mel_bins=fe.feature_size, max_frames=max_frames,
            num_labels=model.config.num_labels, num_bins=fe.n_fft // 2 + 1,
            keep_float=", ".join(keep_float) or "nothing"))
    return report


__all__ = [
    "FeatureCalibrationReader", "calibration_features", "compact_onnx", "export_onnx", "export_tiny",
    "frontend_from_spec", "frontend_spec", "load_tiny", "onnx_session", "quantize_int8", "run_onnx",
    "save_calibration_features",
]
