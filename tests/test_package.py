import errno
import os
import re
import stat
import subprocess
import sys

import pytest


def test_import_does_not_pull_gradio():
    code = "import sys, hf_alm; assert 'gradio' not in sys.modules, 'import hf_alm imported gradio'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_modeling_is_installed_as_hf_alm_modeling():
    import hf_alm.modeling

    assert hf_alm.modeling.__file__.replace("\\", "/").endswith("modeling/__init__.py")


def test_cli_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "hf_alm.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "convert" in out.stdout


def test_atomic_directory_leaves_nothing_on_error(tmp_path):
    from hf_alm.utils import atomic_directory

    dst = tmp_path / "out"
    try:
        with atomic_directory(dst) as tmp:
            (tmp / "half.bin").write_bytes(b"x")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert not dst.exists()
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(dst) as tmp:
        (tmp / "full.bin").write_bytes(b"y")
    assert (dst / "full.bin").read_bytes() == b"y"


def test_atomic_directory_refuses_a_non_empty_folder_unless_overwrite(tmp_path):
    """A non-empty DST used to be deleted silently (user notes, checkpoints); now only with overwrite=True."""
    from hf_alm.utils import atomic_directory

    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=rf"output folder {re.escape(str(dst))} exists and is not empty; pass "
                                              rf"--overwrite to replace it \(overwrite=True in Python\)"):
        with atomic_directory(dst, overwrite=False) as tmp:
            (tmp / "model.bin").write_bytes(b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and (dst / "notes.txt").read_text() == "mine"
    dst.chmod(0o751)
    with atomic_directory(dst, overwrite=True) as tmp:
        (tmp / "model.bin").write_bytes(b"new")
    assert sorted(p.name for p in dst.iterdir()) == ["model.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no .out.old-* / .out.tmp-* left over
    assert stat.S_IMODE(dst.stat().st_mode) == 0o751  # the replaced folder's mode, not mkdtemp's 0700


def test_atomic_directory_writes_into_a_missing_or_empty_folder(tmp_path):
    from hf_alm.utils import atomic_directory

    empty = tmp_path / "empty"
    empty.mkdir(mode=0o755)
    empty.chmod(0o755)
    with atomic_directory(empty, overwrite=False) as tmp:
        (tmp / "a.txt").write_text("a")
    assert (empty / "a.txt").read_text() == "a" and stat.S_IMODE(empty.stat().st_mode) == 0o755
    fresh = tmp_path / "deep" / "fresh"
    with atomic_directory(fresh, overwrite=False) as tmp:
        (tmp / "b.txt").write_text("b")
    assert (fresh / "b.txt").read_text() == "b"
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o777 & ~umask  # what mkdir gives, not 0700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "empty"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_atomic_directory_never_turns_a_file_into_a_folder(tmp_path, overwrite):
    """It used to move the file to .name.old-<pid> (left behind) and put a folder in its place."""
    from hf_alm.utils import atomic_directory

    dst = tmp_path / "isfile"
    dst.write_text("data")
    with pytest.raises(FileExistsError, match=rf"output {re.escape(str(dst))} is an existing file, not a folder"):
        with atomic_directory(dst, overwrite=overwrite) as tmp:
            (tmp / "x").write_text("x")
    assert dst.read_text() == "data" and [p.name for p in tmp_path.iterdir()] == ["isfile"]


def test_atomic_directory_errors_name_dst_not_the_temporary_folder(tmp_path, monkeypatch):
    import tempfile

    from hf_alm.utils import atomic_directory

    (tmp_path / "parent").write_text("a file")
    dst = tmp_path / "parent" / "out"
    with pytest.raises(NotADirectoryError, match=rf"cannot create the output folder {re.escape(str(dst))}: "
                                                 rf"{re.escape(str(tmp_path / 'parent'))} is a file, not a folder"):
        with atomic_directory(dst):
            pass
    # disk full while writing: the message names DST (and the file), not .out.tmp-*
    dst = tmp_path / "out"
    with pytest.raises(OSError, match=re.escape(repr(str(dst / "model.bin")))) as info:
        with atomic_directory(dst) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp / "model.bin"))
    assert info.value.errno == errno.ENOSPC and ".tmp-" not in str(info.value)
    # the error keeps its attributes (only the temporary path in them is swapped for DST)
    assert info.value.strerror == "No space left on device" and info.value.filename == str(dst / "model.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parent"]
    # no permission to create the temporary folder: PermissionError naming DST (root ignores chmod, so simulate)

    def denied(prefix="", dir=None, **_):
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, prefix + "abc"))

    monkeypatch.setattr(tempfile, "mkdtemp", denied)
    with pytest.raises(PermissionError, match=rf"cannot create the output folder {re.escape(str(dst))}: "
                                              rf"Permission denied") as info:
        with atomic_directory(dst):
            pass
    assert ".tmp-" not in str(info.value)


def test_atomic_directory_resolves_dot_and_refuses_a_root(tmp_path, monkeypatch):
    """`hf-alm convert beats ok.pt .` used to fail with "PosixPath('.') has an empty name"."""
    from hf_alm.utils import atomic_directory, check_output_dir

    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert check_output_dir(".") == here
    with atomic_directory(".", overwrite=False) as tmp:
        (tmp / "a.txt").write_text("a")
    assert (here / "a.txt").read_text() == "a"
    with pytest.raises(ValueError, match=r"output folder / is a file-system root"):
        check_output_dir("/", overwrite=True)


def test_check_output_dir_refuses_a_dst_containing_the_source(tmp_path):
    from hf_alm.utils import check_output_dir

    (tmp_path / "ckpt.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match=rf"output folder {re.escape(str(tmp_path))} contains the source "
                                         rf"{re.escape(str(tmp_path / 'ckpt.pt'))}"):
        check_output_dir(tmp_path, overwrite=True, sources=[tmp_path / "ckpt.pt"])
    assert check_output_dir(tmp_path / "out", sources=[tmp_path / "ckpt.pt"]) == tmp_path / "out"


def test_save_pretrained_into_keeps_other_files_and_cleans_up(tmp_path):
    from hf_alm.utils import save_pretrained_into

    class Saves:
        def __init__(self, name, fail=False):
            self.name, self.fail = name, fail

        def save_pretrained(self, folder):
            (folder / self.name).write_text("new")
            if self.fail:
                raise OSError("disk full")

    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "config.json").write_text("old")
    save_pretrained_into(out, Saves("config.json"), Saves("processor_config.json"))
    assert (out / "config.json").read_text() == "new" and (out / "processor_config.json").read_text() == "new"
    assert (out / "checkpoints").is_dir()
    try:
        save_pretrained_into(out, Saves("model.safetensors", fail=True))
    except OSError:
        pass
    assert not (out / "model.safetensors").exists()
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "config.json", "processor_config.json"]


def test_wheel_ships_the_space_and_hf_alm_demo_finds_it(tmp_path):
    """`hf-alm demo` must work from a wheel, not only from a clone: setup.py installs spaces/hf-alm-demo as
    hf_alm/space, and find_app looks there (checked on the unpacked wheel, away from this checkout)."""
    import zipfile
    from pathlib import Path

    import shutil

    root, src = Path(__file__).resolve().parents[1], tmp_path / "src"
    src.mkdir()  # build from a copy, so that no build/ folder lands in the checkout
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(root / name, src / name)
    for name in ("hf_alm", "modeling", "model_cards", "spaces"):
        shutil.copytree(root / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path / "dist")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("hf_alm-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert {"hf_alm/space/app.py", "hf_alm/space/README.md", "hf_alm/space/requirements.txt"} <= names
        assert "hf_alm/modeling/beats/modeling_beats.py" in names
        zf.extractall(tmp_path / "site")
    code = ("import hf_alm, hf_alm.cli.demo as d; p = d.find_app(); "
            "assert str(p).startswith(%r), (p, hf_alm.__file__); print(p)" % str(tmp_path / "site"))
    env = {k: v for k, v in __import__("os").environ.items() if k != "HF_ALM_DEMO_APP"}
    env["PYTHONPATH"] = str(tmp_path / "site")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert run.stdout.strip().endswith("hf_alm/space/app.py")


def test_every_recipe_path_named_in_docs_and_help_exists():
    """README, model cards, the Space, recipes and library help texts name recipes by path; a renamed recipe must not
    leave a dead ``recipes/<name>.py`` behind (one did: ``recipes/beats.py`` in the BEATs card and ``hf-alm demo``)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = [root / "README.md", *root.glob("model_cards/*.md"), *root.glob("spaces/*/*.md"), *root.glob("spaces/*/*.py"),
             *root.glob("recipes/*.py"), *root.glob("hf_alm/**/*.py"), *root.glob("benchmarks/*.py")]
    named = {}
    for path in files:
        for name in re.findall(r"recipes/([A-Za-z0-9_]+)\.py", path.read_text(encoding="utf-8")):
            named.setdefault(name, set()).add(str(path.relative_to(root)))
    assert named, "no recipe paths found: the scan itself is broken"
    missing = {name: sorted(where) for name, where in named.items() if not (root / "recipes" / f"{name}.py").exists()}
    assert not missing, f"dead recipe paths: {missing}"


def test_written_files_get_the_modes_open_would_give(tmp_path):
    """transformers writes model.safetensors through a private temporary file (0600); our atomic writers add the read
    bits the umask allows to every file, so a published or exported model is readable by others (it was 0600)."""
    import os
    import stat

    from hf_alm.modeling.tiny_edge_transformer import TinyEdgeTransformerConfig, TinyEdgeTransformerModel
    from hf_alm.utils import atomic_directory, atomic_write_text, save_pretrained_into

    umask = os.umask(0o022)
    try:
        expected = 0o666 & ~0o022
        model = TinyEdgeTransformerModel(TinyEdgeTransformerConfig.from_preset("tiny"))
        save_pretrained_into(tmp_path / "run", model)
        with atomic_directory(tmp_path / "converted") as tmp:
            model.save_pretrained(tmp)
            (tmp / "private.txt").write_text("x")
            os.chmod(tmp / "private.txt", 0o600)
            (tmp / "run.sh").write_text("#!/bin/sh\n")
            os.chmod(tmp / "run.sh", 0o750)
        atomic_write_text(tmp_path / "eval_results.json", "{}")
        files = [tmp_path / "run" / "model.safetensors", tmp_path / "converted" / "model.safetensors",
                 tmp_path / "converted" / "private.txt", tmp_path / "eval_results.json"]
        modes = {str(f.relative_to(tmp_path)): oct(stat.S_IMODE(f.stat().st_mode)) for f in files}
        assert modes == {name: oct(expected) for name in modes} and len(modes) == 4
        # read bits are added, nothing is taken away: an executable keeps its x bits
        assert stat.S_IMODE((tmp_path / "converted" / "run.sh").stat().st_mode) == 0o754
        assert os.umask(0o022) == 0o022  # the umask was read, not left changed
    finally:
        os.umask(umask)
