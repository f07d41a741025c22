"""Registration of hf-alm models with the transformers Auto classes.

Each model family has one module here (``hf_alm/auto/<family>.py``) defining ``register()``; ``register_all`` imports
every such module and calls it once. A family whose optional dependency is missing is skipped with a warning rather
than breaking ``import hf_alm``.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil

logger = logging.getLogger(__name__)
_DONE: set[str] = set()


def register_all() -> list[str]:
    """Register every model family; returns the names registered (idempotent)."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in _DONE:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is None:
            continue
        try:
            register()
        except ImportError as err:  # pragma: no cover - depends on the environment
            logger.warning("hf-alm: could not register %s: %s", info.name, err)
            continue
        _DONE.add(info.name)
    return sorted(_DONE)


def register_auto(config_cls, *, model_type: str, auto_models: dict | None = None, feature_extractor=None,
                  processor=None) -> None:
    """Register ``config_cls`` and its classes with the Auto factories, tolerating a repeated call.

    ``auto_models`` maps an Auto class name (``"AutoModel"``, ``"AutoModelForAudioClassification"``, ...) to a model
    class. ``feature_extractor`` / ``processor`` are registered for ``AutoFeatureExtractor`` / ``AutoProcessor``.
    """
    import transformers
    from transformers import AutoConfig

    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        AutoConfig.register(model_type, config_cls)
    for auto_name, model_cls in (auto_models or {}).items():
        auto_cls = getattr(transformers, auto_name)
        try:
            auto_cls.register(config_cls, model_cls)
        except ValueError:  # already registered (a second import of the same class)
            pass
    if feature_extractor is not None:
        try:
            transformers.AutoFeatureExtractor.register(config_cls, feature_extractor)
        except ValueError:
            pass
    if processor is not None:
        try:
            transformers.AutoProcessor.register(config_cls, processor)
        except ValueError:
            pass
