"""``hf-alm push DIR REPO_ID``: publish a saved model folder to the Hugging Face Hub (see :mod:`hf_alm.hub`)."""

from __future__ import annotations

import json


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "push",
        help="publish a model folder to the Hugging Face Hub with a model card and remote code",
        description="Stage DIR (safetensors weights, config with auto_map, the model's remote-code files, "
        "feature extractor / processor / tokenizer files and a model card whose model-index comes from "
        "eval_results.json) and upload it to REPO_ID in one commit. The repository loads with "
        "AutoModel.from_pretrained(REPO_ID, trust_remote_code=True) without installing hf-alm. DIR is never "
        "modified. Fails within seconds with the cause named when the Hub is unreachable or the token is rejected.",
    )
    parser.add_argument("dir", metavar="DIR", help="model folder written by save_pretrained or a recipe's --output_dir")
    parser.add_argument("repo_id", metavar="REPO_ID", help="target repository on the Hub, 'user/name' or 'org/name'")
    parser.add_argument("--private", action="store_true",
                        help="create the repository as private (an existing repository keeps its visibility)")
    parser.add_argument("--revision", default=None,
                        help="branch to commit to; created from main when it does not exist (default: main)")
    parser.add_argument("--create_pr", action="store_true",
                        help="open a pull request with the upload instead of committing to the branch directly")
    parser.add_argument("--token", default=None,
                        help="Hugging Face token with write access (default: $HF_TOKEN, then the token saved by "
                        "`hf auth login`)")
    parser.add_argument("--eval_results", default=None,
                        help="eval_results.json whose numbers go into the card's model-index "
                        "(default: DIR/eval_results.json when present)")
    parser.add_argument("--commit_message", default=None,
                        help="commit message (default: 'Upload <ModelClass> with hf-alm <version>')")
    parser.add_argument("--base_model", default=None,
                        help="Hub id of the model this one was fine-tuned or converted from (card metadata)")
    parser.add_argument("--dataset", dest="datasets", action="append", default=None,
                        help="Hub id of a training dataset for the card metadata; repeat for several")
    parser.add_argument("--weights_license", default=None,
                        help="licence of the weights in the card (default: the model family's, e.g. mit for BEATs, "
                        "apache-2.0 for ONE-PEACE); the code licence is stated separately")
    parser.add_argument("--stage_dir", default=None,
                        help="keep the staged folder here (written atomically) instead of a temporary folder")
    parser.add_argument("--dry_run", action="store_true",
                        help="only stage the folder (to --stage_dir, required) and print its files; no network")
    parser.add_argument("--endpoint", default=None,
                        help="Hub URL (default: $HF_ENDPOINT or https://huggingface.co)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the Hub's answer to the reachability / token check (default: 10)")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from hf_alm import hub

    card_kwargs = {k: getattr(args, k) for k in ("base_model", "datasets", "weights_license")
                   if getattr(args, k) is not None}
    if args.dry_run:
        if not args.stage_dir:
            raise ValueError("--dry_run needs --stage_dir (where to write the staged folder)")
        folder = hub.stage(args.dir, args.stage_dir, repo_id=args.repo_id, eval_results=args.eval_results,
                           **card_kwargs)
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        print(json.dumps({"stage_dir": str(folder), "files": files}, indent=2))
        return 0
    result = hub.publish(args.dir, args.repo_id, eval_results=args.eval_results, private=args.private,
                         revision=args.revision, create_pr=args.create_pr, token=args.token,
                         commit_message=args.commit_message, stage_dir=args.stage_dir, endpoint=args.endpoint,
                         timeout=args.timeout, **card_kwargs)
    print(result)
    return 0
