"""Tiny edge transformer benchmark: parameters, ONNX sizes, single-clip onnxruntime latency on one CPU thread.

Run: ``.venv/bin/python benchmarks/tiny_edge.py`` (both presets, random weights, 10 classes) or
``... benchmarks/tiny_edge.py --model_dir outputs/tiny_edge/model`` (a trained folder: its own export).

For each preset it reports
(a) the parameter count (goal for ``tiny``: just over 6,000 with a 10-class head);
(b) the sizes of ``model.onnx`` and ``model_int8.onnx`` written by ``hf-alm export tiny`` (goal: int8 < 16 KB for
    ``tiny``); sizes do not depend on the weight values, so random weights measure them exactly;
(c) single-clip latency with onnxruntime, ``intra_op_num_threads=1``, sequential execution: the network alone (fp32
    and int8) and the numpy log-mel front-end, for ``--clip_seconds`` of audio (default 5 s = 155 frames, an ESC
    clip), in ms and in ms per second of audio (goal: < 1 ms per second of audio); median of ``--repeats`` runs
    after warm-up; PyTorch eager on one thread for comparison. BLAS/OpenMP pools are limited to one thread.
Timings are noisy on a shared machine; re-run on a quiet one. ``--output`` writes the numbers as JSON.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread everywhere, as on a device
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402


def _median_seconds(fn, repeats: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _random_model_dir(preset: str, root: Path, seed: int = 0) -> Path:
    from hf_alm.export import save_calibration_features
    from hf_alm.modeling.tiny_edge_transformer import (
        TinyEdgeTransformerConfig,
        TinyEdgeTransformerFeatureExtractor,
        TinyEdgeTransformerForAudioClassification,
    )

    torch.manual_seed(seed)
    model = TinyEdgeTransformerForAudioClassification(TinyEdgeTransformerConfig.from_preset(preset, num_labels=10))
    fe = TinyEdgeTransformerFeatureExtractor()
    rng = np.random.default_rng(seed)
    waves = [(rng.standard_normal(16000 * 5) * rng.uniform(0.01, 0.5)).astype(np.float32) for _ in range(16)]
    logs = [fe.log_mel(w) for w in waves]
    fe.mean, fe.std = float(np.mean(np.concatenate(logs))), float(np.std(np.concatenate(logs)))
    out = root / f"{preset}_model"
    model.save_pretrained(out)
    fe.save_pretrained(out)
    save_calibration_features(out / "calibration_features.npz", [fe.normalize(x) for x in logs])
    return out


def bench_model_dir(model_dir: Path, out_dir: Path, clip_seconds: float, repeats: int,
                    calibration: str | None = None) -> dict:
    from hf_alm.export import export_tiny, load_tiny, onnx_session

    if calibration is None and not (Path(model_dir) / "calibration_features.npz").is_file():
        calibration = "synthetic"  # a folder not written by the recipe: calibrate the int8 model on synthetic clips
        print(f"{model_dir}: no calibration_features.npz, int8 calibrated on the synthetic corpus (--calibration)",
              file=sys.stderr)
    report = export_tiny(model_dir, out_dir, calibration=calibration)
    model, fe = load_tiny(model_dir)
    wave = (np.random.default_rng(1).standard_normal(int(16000 * clip_seconds)) * 0.1).astype(np.float32)
    feats = fe(wave, sampling_rate=fe.sampling_rate)["input_values"].astype(np.float32)
    inputs = {"input_values": feats, "attention_mask": np.ones(feats.shape[:2], dtype=np.int64)}
    row = {
        "model_dir": str(model_dir),
        "num_parameters": report["num_parameters"],
        "model_onnx_bytes": report["model_onnx_bytes"],
        "model_int8_onnx_bytes": report["model_int8_onnx_bytes"],
        "fp32_max_abs_diff_vs_pytorch": report["fp32_max_abs_diff_vs_pytorch"],
        "clip_seconds": clip_seconds,
        "frames": int(feats.shape[1]),
    }
    for name, file in (("onnx_fp32", "model.onnx"), ("onnx_int8", "model_int8.onnx")):
        session = onnx_session(out_dir / file, num_threads=1)
        seconds = _median_seconds(lambda: session.run(["logits"], inputs), repeats)
        row[f"{name}_ms"] = seconds * 1e3
        row[f"{name}_ms_per_audio_second"] = seconds * 1e3 / clip_seconds
    frontend = _median_seconds(lambda: fe.log_mel(wave), max(20, repeats // 10), warmup=10)
    row["frontend_numpy_ms"] = frontend * 1e3
    row["frontend_numpy_ms_per_audio_second"] = frontend * 1e3 / clip_seconds
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = torch.from_numpy(feats)
        with torch.no_grad():
            seconds = _median_seconds(lambda: model(x), max(20, repeats // 5))
    finally:
        torch.set_num_threads(threads)
    row["pytorch_eager_ms"] = seconds * 1e3
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="tiny,small",
                        help="comma-separated presets to benchmark with random weights (default: tiny,small)")
    parser.add_argument("--model_dir", action="append", default=[],
                        help="a trained model folder to benchmark instead (repeatable); overrides --presets")
    parser.add_argument("--calibration", default=None, metavar="NPZ|DATASET",
                        help="int8 calibration data for --model_dir folders: a calibration_features.npz or a dataset "
                             "spec (default: the folder's own calibration_features.npz, else 'synthetic')")
    parser.add_argument("--clip_seconds", type=float, default=5.0,
                        help="length of the benchmark clip in seconds (default: 5.0, an ESC clip)")
    parser.add_argument("--repeats", type=int, default=500, help="timed runs per measurement (default: 500)")
    parser.add_argument("--output", default=None, help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    if args.clip_seconds <= 0 or args.repeats < 1:
        parser.error(f"--clip_seconds must be > 0 and --repeats >= 1, got {args.clip_seconds}, {args.repeats}")

    import onnxruntime

    import hf_alm  # noqa: F401

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        targets = [("/".join(Path(d).resolve().parts[-2:]), Path(d)) for d in args.model_dir] or [
            (p, None) for p in args.presets.split(",") if p]
        for name, model_dir in targets:
            model_dir = model_dir or _random_model_dir(name, tmp)
            rows.append({"name": name, **bench_model_dir(model_dir, tmp / f"{name}_onnx", args.clip_seconds,
                                                         args.repeats, calibration=args.calibration)})
    meta = {"machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0], "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}
    width = max(10, *(len(r["name"]) + 2 for r in rows))
    header = (f"{'model':<{width}}{'params':>8}{'fp32 B':>9}{'int8 B':>9}{'frames':>8}{'fp32 ms':>9}{'int8 ms':>9}"
              f"{'int8 ms/s':>11}{'front-end ms/s':>16}{'torch ms':>10}")
    print(header)
    for r in rows:
        print(f"{r['name']:<{width}}{r['num_parameters']:>8}{r['model_onnx_bytes']:>9}{r['model_int8_onnx_bytes']:>9}"
              f"{r['frames']:>8}{r['onnx_fp32_ms']:>9.3f}{r['onnx_int8_ms']:>9.3f}"
              f"{r['onnx_int8_ms_per_audio_second']:>11.3f}{r['frontend_numpy_ms_per_audio_second']:>16.3f}"
              f"{r['pytorch_eager_ms']:>10.3f}")
    print(f"(onnxruntime on 1 thread, {args.clip_seconds:g} s clip, median of {args.repeats}; load average "
          f"{meta['load_average']})")
    if args.output:
        Path(args.output).write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
