"""Staging of a complete CLAP-TeminAL remote-code folder (the BEATs tower's files included)."""

import json
import os
import shutil


def stage_remote_code(folder, *, audio_tower: str | None = None) -> list:
    """Make `folder` a self-contained remote-code folder for CLAP-TeminAL and return the files written.

    Copies this folder's model files (configuration, modeling, feature extraction, processing, helpers) and, for a
    BEATs tower (read from `folder/config.json` unless given), BEATs' own files, writing a `beats_tower.py` with plain
    relative imports that transformers' remote-code loader follows. `save_pretrained` of the model and the processor
    call this, so a saved folder loads with `trust_remote_code=True` where hf-alm is not installed.
    """
    from .beats_tower import beats_source_files, staged_source

    os.makedirs(folder, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))
    if audio_tower is None:
        audio_tower = "htsat"
        config_path = os.path.join(folder, "config.json")
        if os.path.isfile(config_path):
            with open(config_path, encoding="utf-8") as fh:
                audio_tower = json.load(fh).get("audio_tower", "htsat")
    beats_files = beats_source_files() if audio_tower == "beats" else []
    beats_names = {os.path.basename(f) for f in beats_files}
    written = []
    for name in sorted(os.listdir(here)):
        if name.endswith(".py") and not name.startswith("__") and name not in beats_names:
            dest = os.path.join(folder, name)
            if os.path.abspath(dest) != os.path.join(here, name):
                shutil.copyfile(os.path.join(here, name), dest)
            written.append(dest)
    for path in beats_files:
        dest = os.path.join(folder, os.path.basename(path))
        if os.path.abspath(dest) != os.path.abspath(path):
            shutil.copyfile(path, dest)
        written.append(dest)
    if audio_tower == "beats":
        text = staged_source(beats_files)
        with open(os.path.join(folder, "beats_tower.py"), "w", encoding="utf-8") as fh:
            fh.write(text)
    return written


__all__ = ["stage_remote_code"]
