"""Audio I/O benchmark: resampling and decoding speed and accuracy; prints one table (and --json writes it).

Run: ``.venv/bin/python benchmarks/audio_io.py`` (defaults: 2 threads, CPU, 5 s clips, median of 7 runs).

(a) ``hf_alm.data.resample`` vs ``torchaudio.functional.resample`` (same filter) vs FFmpeg's resampler (torchcodec
    ``AudioDecoder(sample_rate=...)``, what ``datasets.Audio(sampling_rate=...)`` uses), for common rate pairs:
    milliseconds per 5 s clip and the largest difference from torchaudio computed in float64;
(b) batched resampling of ``--batch`` clips on ``--device`` (e.g. ``cuda``);
(c) ``load_audio`` end to end: an Ogg Vorbis 44.1 kHz clip (ESC-10 when ``../shared`` is present, otherwise one we
    encode) decoded and resampled to 16 kHz, vs torchcodec decoding + FFmpeg resampling, per clip.
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
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from torchcodec.decoders import AudioDecoder

    from hf_alm.data.audio import load_audio, resample

    try:
        import torchaudio.functional as taf
    except Exception:  # torchaudio is optional
        taf = None

    results: dict = {"threads": args.threads, "seconds": args.seconds, "resample": [], "batched": {}, "load": {}}
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
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
