"""Access to the BEATs audio tower without a hard dependency on where its code lives.

Inside the hf-alm package the BEATs code is the sibling model folder ``hf_alm.modeling.beats``. In a remote-code folder
written by :func:`~.remote_code.stage_remote_code` the BEATs files sit next to ours, and this file is replaced
by a three-line version with plain relative imports (``from .modeling_beats import ...``), which transformers' loader
follows to copy them. The imports below go through :mod:`importlib` on purpose: transformers' ``custom_object_save``
looks for ``from .x import`` lines and would try to copy a non-existent ``modeling_beats.py`` from this folder.
"""

import importlib
import os

_CANDIDATES = (".", "..beats.")
BEATS_MODULES = ("configuration_beats", "modeling_beats", "feature_extraction_beats")


def _import(name: str):
    errors = []
    for prefix in _CANDIDATES:
        try:
            return importlib.import_module(prefix + name, __package__)
        except (ImportError, ValueError) as err:  # try the next location
            errors.append(f"{prefix}{name}: {err}")
    raise ImportError(
        "the 'beats' audio tower needs the BEATs model code (hf_alm.modeling.beats, or modeling_beats.py / "
        "configuration_beats.py next to this file in a remote-code folder); tried " + "; ".join(errors)
    )


def beats_config_class():
    """Return ``BeatsConfig``."""
    return _import("configuration_beats").BeatsConfig


def beats_model_class():
    """Return ``BeatsModel``."""
    return _import("modeling_beats").BeatsModel


def beats_feature_extractor_class():
    """Return ``BeatsFeatureExtractor``."""
    return _import("feature_extraction_beats").BeatsFeatureExtractor


def beats_source_files() -> list:
    """Paths of the BEATs ``.py`` files that a self-contained remote-code folder needs (for staging)."""
    import os

    module = _import("modeling_beats")
    folder = os.path.dirname(module.__file__)
    return sorted(
        os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".py") and not f.startswith("__")
    )


def staged_source(beats_files) -> str:
    """The text of ``beats_tower.py`` for a remote-code folder that holds ``beats_files`` (BEATs' file names)."""
    names = sorted(os.path.basename(f) for f in beats_files)
    return _STAGED_TEMPLATE.replace("__BEATS_FILES__", repr(names))


# (written line by line so that transformers' import scanner does not read these lines as imports of this file)
_STAGED_TEMPLATE = "\n".join([
    '"""BEATs tower imports for a self-contained remote-code folder (written by stage_remote_code)."""',
    "",
    "import os",
    "",
    "from" + " .configuration_beats import BeatsConfig",
    "from" + " .modeling_beats import BeatsModel",
    "",
    "BEATS_FILES = __BEATS_FILES__",
    "",
    "",
    "def beats_config_class():",
    "    return BeatsConfig",
    "",
    "",
    "def beats_model_class():",
    "    return BeatsModel",
    "",
    "",
    "def beats_feature_extractor_class():",
    "    from" + " .feature_extraction_beats import BeatsFeatureExtractor",
    "",
    "    return BeatsFeatureExtractor",
    "",
    "",
    "def beats_source_files():",
    "    here = os.path.dirname(os.path.abspath(__file__))",
    "    return [os.path.join(here, name) for name in BEATS_FILES]",
    "",
    "",
    "def staged_source(beats_files):",
    "    with open(os.path.abspath(__file__), encoding='utf-8') as fh:",
    "        return fh.read()",
    "",
])
