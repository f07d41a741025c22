"""Audio I/O benchmark: resampling and decoding speed and accuracy; prints one table (and --json writes it).

Run: ``.venv/bin/python benchmarks/audio_io.py`` (defaults: 2 threads, CPU, 5 s clips, median of 7 runs).

(a) ``hf_alm.data.resample`` vs ``torchaudio.functional.resample`` (same filter) vs FFmpeg's resampler (torchcodec
    ``AudioDecoder(sample_rate=...)``, what ``datasets.Audio(sampling_rate=...)`` uses), for common rate pairs:
    milliseconds per 5 s clip and the largest difference from torchaudio computed in float64;
(b) batched resampling of ``--batch`` clips on ``--device`` (e.g. ``cuda``);
(c) ``load_audio`` end to end: an Ogg Vorbis 44.1 kHz clip (ESC-10 when ``../shared`` is present, otherwise one we
    encode) decoded and resampled to 16 kHz, vs torchcodec decoding + FFmpeg resampling, per clip; and 2 s of 16 kHz
    PCM16 WAV bytes (the synthetic corpus's form) through load_audio's numpy WAV branch vs torchcodec;
(d) with ``--hostile``: the lying-header files of tests/test_hostile_audio.py through ``load_audio`` at its default
    limits and through the Space's ``read_clip`` (30 s), each in a fresh subprocess: peak RSS growth during the call
    (``/proc/self/status`` VmHWM after ``clear_refs``), the whole process's peak, seconds, and the error.
Timings are noisy on a shared machine; rerun on a quiet one before quoting them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def _timeit(fn, repeats: int, warmup: int = 1, sync=lambda: None) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _ogg_clip(seconds: float) -> Path:
    from hf_alm.utils import shared_dir

    shared = shared_dir()
    if shared is not None:
        clips = sorted((shared / "data" / "esc10").glob("*/*.ogg"))
        if clips:
            return clips[0]
    from torchcodec.encoders import AudioEncoder

    sr = 44100
    t = torch.arange(int(sr * seconds)) / sr
    wave = (0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.05 * torch.randn(t.shape)).unsqueeze(0)
    path = Path(tempfile.mkdtemp()) / "clip.ogg"
    AudioEncoder(wave, sample_rate=sr).to_file(path)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--seconds", type=float, default=5.0, help="clip length in seconds (default 5)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement; the median is shown")
    parser.add_argument("--batch", type=int, default=32, help="clips per batch for the batched measurement")
    parser.add_argument("--device", default="cpu", help="device for the batched measurement (cpu, cuda, ...)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    parser.add_argument("--hostile", action="store_true",
                        help="also measure peak memory and time of the lying-header files (library and Space)")
    parser.add_argument("--hostile-only", action="store_true", help="measure only the lying-header files")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from torchcodec.decoders import AudioDecoder

    from hf_alm.data.audio import load_audio, resample

    try:
        import torchaudio.functional as taf
    except Exception:  # torchaudio is optional
        taf = None

    results: dict = {"threads": args.threads, "seconds": args.seconds, "resample": [], "batched": {}, "load": {}}
    if args.hostile_only:
        results["hostile"] = _hostile()
        if args.json is not None:
            args.json.write_text(json.dumps(results, indent=2))
        return 0
    gen = torch.Generator().manual_seed(0)
    print(f"(a) resample one {args.seconds:g} s clip, {args.threads} thread(s), ms (median of {args.repeats})")
    print(f"{'rates':>14} {'hf_alm':>8} {'torchaudio':>10} {'ffmpeg':>8} {'max|ours-ta64|':>15} {'max|ta32-ta64|':>15}")
    for orig, new in [(44100, 16000), (48000, 16000), (22050, 16000), (8000, 16000), (16000, 44100), (32000, 16000)]:
        x = torch.randn(1, int(orig * args.seconds), generator=gen) * 0.3
        row = {"orig": orig, "new": new, "hf_alm_ms": 1e3 * _timeit(lambda: resample(x, orig, new), args.repeats)}
        if taf is not None:
            row["torchaudio_ms"] = 1e3 * _timeit(lambda: taf.resample(x, orig, new), args.repeats)
            ref = taf.resample(x.double(), orig, new)
            row["max_abs_diff_vs_torchaudio_f64"] = float((resample(x, orig, new).double() - ref).abs().max())
            row["torchaudio_f32_max_abs_diff_vs_f64"] = float((taf.resample(x, orig, new).double() - ref).abs().max())
        from torchcodec.encoders import AudioEncoder

        wav = AudioEncoder(x.clamp(-1, 1), sample_rate=orig).to_tensor("wav")
        row["ffmpeg_ms"] = 1e3 * _timeit(lambda: AudioDecoder(wav, sample_rate=new).get_all_samples(), args.repeats)
        row["ffmpeg_decode_only_ms"] = 1e3 * _timeit(lambda: AudioDecoder(wav).get_all_samples(), args.repeats)
        results["resample"].append(row)
        print(f"{orig:>6}->{new:<6} {row['hf_alm_ms']:8.2f} {row.get('torchaudio_ms', float('nan')):10.2f} "
              f"{row['ffmpeg_ms'] - row['ffmpeg_decode_only_ms']:8.2f} "
              f"{row.get('max_abs_diff_vs_torchaudio_f64', float('nan')):15.2e} "
              f"{row.get('torchaudio_f32_max_abs_diff_vs_f64', float('nan')):15.2e}")
    print("    (ffmpeg = decode with resampling minus decode alone, from an in-memory wav)")

    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    xb = (torch.randn(args.batch, int(44100 * args.seconds), generator=gen) * 0.3).to(device)
    ours = _timeit(lambda: resample(xb, 44100, 16000), args.repeats, sync=sync)
    results["batched"] = {"device": str(device), "batch": args.batch, "hf_alm_ms": 1e3 * ours}
    line = f"(b) batched 44100->16000, {args.batch} x {args.seconds:g} s on {device}: hf_alm {1e3 * ours:.1f} ms"
    if taf is not None:
        try:
            ta = _timeit(lambda: taf.resample(xb, 44100, 16000), args.repeats, sync=sync)
            results["batched"]["torchaudio_ms"] = 1e3 * ta
            line += f", torchaudio {1e3 * ta:.1f} ms"
        except Exception as err:  # e.g. a CPU-only torchaudio build
            line += f", torchaudio failed: {type(err).__name__}"
    print(line)

    clip = _ogg_clip(args.seconds)
    ours = _timeit(lambda: load_audio(clip, 16000), args.repeats)
    ffmpeg = _timeit(lambda: AudioDecoder(str(clip), sample_rate=16000, num_channels=1).get_all_samples(),
                     args.repeats)
    decode = _timeit(lambda: AudioDecoder(str(clip)).get_all_samples(), args.repeats)
    results["load"] = {"clip": str(clip), "load_audio_ms": 1e3 * ours, "torchcodec_ffmpeg_resample_ms": 1e3 * ffmpeg,
                       "torchcodec_decode_only_ms": 1e3 * decode}
    print(f"(c) {clip.name} -> 16 kHz mono: load_audio {1e3 * ours:.2f} ms, torchcodec+FFmpeg resampling "
          f"{1e3 * ffmpeg:.2f} ms, decoding alone {1e3 * decode:.2f} ms")
    import io

    import numpy as np
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.random.default_rng(0).uniform(-0.5, 0.5, 32000), 16000, format="WAV", subtype="PCM_16")
    wav = {"bytes": buf.getvalue(), "path": None}
    ours = _timeit(lambda: load_audio(wav, 16000), max(args.repeats, 50))
    codec = _timeit(lambda: AudioDecoder(wav["bytes"]).get_all_samples(), args.repeats)
    results["load"].update({"wav_branch_ms": 1e3 * ours, "wav_torchcodec_ms": 1e3 * codec})
    print(f"    2 s PCM16 WAV bytes -> 16 kHz: load_audio's WAV branch {1e3 * ours:.3f} ms, torchcodec decoding alone "
          f"{1e3 * codec:.2f} ms")
    if args.hostile:
        results["hostile"] = _hostile()
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


_HOSTILE_CHILD = r"""
import ctypes, gc, importlib.util, json, sys, time
import hf_alm.data.audio as audio
kind, path, app_path, warmup = sys.argv[1:5]
if kind == "space":
    import gradio  # loaded in a running Space; the app imports it lazily, which must not count as the upload's cost
    spec = importlib.util.spec_from_file_location("space_app", app_path)
    app = importlib.util.module_from_spec(spec); sys.modules["space_app"] = app; spec.loader.exec_module(app)
    call = lambda: app.read_clip(path, 16000, max_seconds=30.0)
else:
    call = lambda: audio.load_audio(path, 16000)
audio.load_audio(warmup, 16000)
def status():
    return {k: int(v.split()[0]) / 1024 for k, _, v in (l.partition(":") for l in open("/proc/self/status"))
            if k in ("VmRSS", "VmHWM")}
gc.collect(); ctypes.CDLL("libc.so.6").malloc_trim(0)
open("/proc/self/clear_refs", "w").write("5")
before = status()["VmRSS"]
start = time.perf_counter()
try:
    call(); error = message = None
except Exception as err:
    error, message = type(err).__name__, str(err)
seconds = time.perf_counter() - start
after = status()
print("RESULT " + json.dumps({"error": error, "message": message, "seconds": seconds, "rss_before_mb": before,
                              "peak_rss_mb": after["VmHWM"], "peak_growth_mb": after["VmHWM"] - before}))
"""


def _hostile() -> list[dict]:
    import subprocess

    import numpy as np
    import soundfile as sf

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "tests"))
    from test_hostile_audio import lying_files

    folder = Path(tempfile.mkdtemp())
    paths = lying_files(folder)
    warmup = folder / "warmup.wav"
    sf.write(warmup, np.zeros(800), 8000)
    rows = []
    print("(d) lying-header files, one fresh subprocess per call: peak RSS growth during the call / whole process")
    for name, path in paths.items():
        for kind in ("library", "space"):
            out = subprocess.run([sys.executable, "-c", _HOSTILE_CHILD, kind, str(path),
                                  str(root / "spaces" / "hf-alm-demo" / "app.py"), str(warmup)],
                                 capture_output=True, text=True, cwd=root)
            lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
            row = {"file": path.name, "bytes": path.stat().st_size, "kind": kind}
            row.update(json.loads(lines[-1][7:]) if lines else {"error": "crashed", "message": out.stderr[-500:]})
            rows.append(row)
            print(f"{kind:8s} {path.name:36s} {row['bytes'] / 1e3:7.0f} KB  +{row.get('peak_growth_mb', 0):6.0f} MB "
                  f"(process {row.get('peak_rss_mb', 0):5.0f} MB)  {row.get('seconds', 0):5.2f} s  {row['error']}")
    return rows


if __name__ == "__main__":
    sys.exit(main())
