import subprocess
import sys


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
