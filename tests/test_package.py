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
