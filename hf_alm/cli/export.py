"""``hf-alm export tiny MODEL_DIR OUT_DIR``: ONNX (fp32 + int8) and front-end JSON for edge devices."""

from __future__ import annotations

import json


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model for deployment (ONNX fp32 + int8, front-end JSON)",
        description="Export a trained model for deployment outside Python.",
    )
    targets = parser.add_subparsers(dest="target", metavar="TARGET")
    tiny = targets.add_parser(
        "tiny",
        help="tiny edge transformer -> model.onnx, model_int8.onnx, frontend.json",
        description="Export a tiny edge transformer folder (recipes/tiny_edge.py output) to OUT_DIR: model.onnx "
        "(the network on normalised log-mel frames, float32), model_int8.onnx (static int8 post-training "
        "quantisation calibrated on training features), frontend.json (the log-mel front-end: sampling rate, "
        "window, FFT size, hop, mel filter matrix, log floor, normalisation, labels), export_report.json and "
        "README.md. OUT_DIR is written atomically.",
    )
    tiny.add_argument("model_dir", help="the trained model folder (config.json, model.safetensors, "
                      "preprocessor_config.json)")
    tiny.add_argument("out_dir", help="output folder (written atomically: a temporary folder, then renamed)")
    tiny.add_argument("--calibration", default=None,
                      help="int8 calibration data: a .npz of training features (default: "
                      "MODEL_DIR/calibration_features.npz, written by the recipe) or a dataset spec such as "
                      "esc10:PATH, fsdd:PATH or synthetic")
    tiny.add_argument("--max_calibration_clips", type=int, default=64,
                      help="use at most this many calibration clips (default: 64)")
    tiny.add_argument("--per_channel", action="store_true",
                      help="per-output-channel weight scales instead of one scale per tensor")
    tiny.add_argument("--opset", type=int, default=18, help="ONNX opset version (default: 18)")
    tiny.add_argument("--keep_float", default="input_projection,attention_products,classifier",
                      help="parts left in float32 in the int8 model, comma-separated from input_projection, "
                      "attention_products, classifier; 'none' quantises them too (default: all three)")
    tiny.set_defaults(func=_run_tiny)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _run_tiny(args) -> int:
    from hf_alm.export import export_tiny
    from hf_alm.utils import check_weight_files

    check_weight_files(args.model_dir)  # an unsafe .bin / truncated .safetensors: one error naming the file

    if args.max_calibration_clips < 1:
        raise ValueError(f"--max_calibration_clips must be >= 1, got {args.max_calibration_clips}")
    keep_float = () if args.keep_float.strip().lower() in ("", "none") else tuple(
        p.strip() for p in args.keep_float.split(",") if p.strip())
    report = export_tiny(args.model_dir, args.out_dir, calibration=args.calibration,
                         max_calibration_clips=args.max_calibration_clips, per_channel=args.per_channel,
                         opset=args.opset, keep_float=keep_float)
    print(json.dumps(report, indent=2))
    print(f"exported {args.model_dir} -> {args.out_dir}")
    return 0
