"""The ``hf-alm`` command line: every subcommand's ``--help`` exits 0 and explains every flag; push and demo wiring."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys

import pytest

from hf_alm.cli import build_parser, main

REQUIRED = {"convert", "push", "demo"}
OPTIONAL = {"eval", "export"}  # written by other engineers; checked when present
REQUIRED_CONVERTERS = {"beats", "clap"}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _commands():
    """(argv prefix, parser) for every subcommand and nested subcommand (``convert beats`` ...)."""
    out = []

    def walk(prefix, parser):
        for name, sub in _subparsers(parser).items():
            out.append(([*prefix, name], sub))
            walk([*prefix, name], sub)

    walk([], build_parser())
    return out


def _help_text(argv) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0, argv
    return buf.getvalue()


def test_required_subcommands_exist():
    commands = _subparsers(build_parser())
    assert REQUIRED <= set(commands), sorted(commands)
    assert REQUIRED_CONVERTERS <= set(_subparsers(commands["convert"]))


@pytest.mark.parametrize("argv, parser", _commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_every_subcommand_help_exits_0_and_explains_every_flag(argv, parser):
    text = " ".join(_help_text(argv).split())  # argparse wraps lines
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        assert action.help and action.help.strip(), f"{' '.join(argv)}: {action.dest} has no help text"
        names = action.option_strings or [action.metavar or action.dest]
        for name in names:
            assert str(name) in text, f"{' '.join(argv)} --help does not mention {name}"


def test_optional_subcommands_present_are_checked():
    """eval / export are covered by the parametrised test as soon as they are wired; report which are present."""
    present = OPTIONAL & set(_subparsers(build_parser()))
    for name in present:
        assert _help_text([name])


def test_console_entry_point_runs_in_a_fresh_process():
    proc = subprocess.run([sys.executable, "-m", "hf_alm.cli", "push", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "--create_pr" in proc.stdout and "REPO_ID" in proc.stdout


# ------------------------------------------------------------------------------------------------------ push
@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    import torch

    from hf_alm.modeling.tiny_edge_transformer import (
        TinyEdgeTransformerConfig,
        TinyEdgeTransformerFeatureExtractor,
        TinyEdgeTransformerForAudioClassification,
    )

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("cli") / "run"
    config = TinyEdgeTransformerConfig.from_preset("tiny", id2label={0: "a", 1: "b"}, label2id={"a": 0, "b": 1})
    TinyEdgeTransformerForAudioClassification(config).save_pretrained(out)
    TinyEdgeTransformerFeatureExtractor().save_pretrained(out)
    (out / "eval_results.json").write_text(json.dumps({"accuracy": 0.5}))
    return out


def test_push_dry_run_stages_without_network(tiny_dir, tmp_path, capsys):
    assert main(["push", str(tiny_dir), "me/tiny", "--dry_run", "--stage_dir", str(tmp_path / "st"),
                 "--base_model", "me/base"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {"README.md", "config.json", "model.safetensors", "preprocessor_config.json"} <= set(printed["files"])
    assert "base_model: me/base" in (tmp_path / "st" / "README.md").read_text()


def test_push_offline_exits_1_with_the_cause(tiny_dir, monkeypatch, capsys):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert main(["push", str(tiny_dir), "me/tiny", "--token", "hf_x"]) == 1
    err = capsys.readouterr().err
    assert "hf-alm push: error:" in err and "offline mode is enabled (HF_HUB_OFFLINE=1)" in err


def test_push_bad_folder_exits_1(tmp_path, capsys):
    assert main(["push", str(tmp_path / "missing"), "me/tiny", "--dry_run", "--stage_dir", str(tmp_path / "s")]) == 1
    assert "model folder not found" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------ demo
def test_demo_builds_the_space_and_launches_with_the_flags(monkeypatch, tmp_path):
    gradio = pytest.importorskip("gradio")
    launched = {}
    monkeypatch.setattr(gradio.Blocks, "launch", lambda self, **kw: launched.update(kw, blocks=self))
    assert main(["demo", "--port", "7999", "--cache_dir", str(tmp_path), "--max_seconds", "5"]) == 0
    assert launched["server_port"] == 7999 and launched["server_name"] == "127.0.0.1"
    assert isinstance(launched["blocks"], gradio.Blocks)
    assert any(p.suffix == ".wav" for p in tmp_path.rglob("*"))  # examples were synthesised into --cache_dir


def test_demo_rejects_bad_flags(capsys):
    assert main(["demo", "--max_seconds", "0"]) == 1
    assert "--max_seconds must be positive, got 0.0" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------ convert
CONVERTERS = ["beats", "one_peace", "clap"]


def _src(tmp_path, family):
    """A stand-in SRC: the DST checks run before the source is read, so it need not be a real checkpoint."""
    if family == "clap":
        src = tmp_path / "clap_src"
        src.mkdir()
    else:
        src = tmp_path / f"{family}.pt"
        src.write_bytes(b"not read")
    return src


@pytest.mark.parametrize("family", CONVERTERS)
def test_convert_refuses_a_non_empty_dst_without_overwrite(family, tmp_path, capsys):
    """`convert beats SRC EXISTING_NONEMPTY_DIR` used to delete everything in DST."""
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "notes.txt").write_text("mine")
    assert main(["convert", family, str(_src(tmp_path, family)), str(dst)]) == 1
    err = capsys.readouterr().err
    assert f"hf-alm convert: error: output folder {dst} exists and is not empty; pass --overwrite" in err
    assert [p.name for p in dst.iterdir()] == ["notes.txt"] and (dst / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("family", CONVERTERS)
def test_convert_into_a_file_or_below_a_file_is_an_error_without_traceback(family, tmp_path, capsys):
    src = _src(tmp_path, family)
    (tmp_path / "isfile").write_text("data")
    for overwrite in ([], ["--overwrite"]):
        assert main(["convert", family, str(src), str(tmp_path / "isfile"), *overwrite]) == 1
        assert f"error: output {tmp_path / 'isfile'} is an existing file, not a folder" in capsys.readouterr().err
    # DST's parent is a file: was a raw FileExistsError traceback
    assert main(["convert", family, str(src), str(tmp_path / "isfile" / "out")]) == 1
    assert (f"hf-alm convert: error: cannot create the output folder {tmp_path / 'isfile' / 'out'}: "
            f"{tmp_path / 'isfile'} is a file, not a folder") in capsys.readouterr().err
    assert (tmp_path / "isfile").read_text() == "data"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no .isfile.old-<pid> litter


def test_convert_dot_is_resolved_before_use(tmp_path, monkeypatch, capsys):
    """`hf-alm convert beats ok.pt .` said "PosixPath('.') has an empty name"."""
    here = tmp_path / "here"
    here.mkdir()
    (here / "ok.pt").write_bytes(b"x")
    monkeypatch.chdir(here)
    assert main(["convert", "beats", "ok.pt", "."]) == 1
    err = capsys.readouterr().err
    assert "empty name" not in err
    assert f"error: output folder {here} contains the source {here / 'ok.pt'}" in err
    assert main(["convert", "beats", "ok.pt", ".", "--overwrite"]) == 1  # --overwrite must not delete the source
    assert (here / "ok.pt").read_bytes() == b"x"


def test_main_reports_any_oserror_as_an_error_line(tmp_path, monkeypatch, capsys):
    """PermissionError / disk full used to escape as a traceback (only FileNotFoundError was caught)."""
    import errno

    from hf_alm.convert import beats

    def full(src, dst, **_):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(beats, "convert", full)
    assert main(["convert", "beats", str(tmp_path / "a.pt"), str(tmp_path / "out")]) == 1
    assert f"hf-alm convert: error: [Errno 28] No space left on device: '{tmp_path / 'out'}'" in capsys.readouterr().err


def test_convert_help_matches_behaviour():
    beats = " ".join(_help_text(["convert", "beats"]).split())
    assert "the original BEATs checkpoint file (.pt)" in beats and "file or folder" not in beats
    assert "it must be missing or empty unless --overwrite is given" in beats
    clap = " ".join(_help_text(["convert", "clap"]).split())
    assert "the transformers ClapModel folder" in clap
    assert "--overwrite" in clap and "--no_overwrite" in clap and "this is now the default" in clap


def test_convert_clap_rejects_overwrite_with_no_overwrite(tmp_path, capsys):
    assert main(["convert", "clap", str(_src(tmp_path, "clap")), str(tmp_path / "out"), "--overwrite",
                 "--no_overwrite"]) == 1
    assert "overwrite and no_overwrite contradict each other" in capsys.readouterr().err
