"""Local ``evaluate`` modules shipped with hf-alm (loadable offline with ``evaluate.load(path)``).

``evaluate.load("accuracy")`` fetches its script from the Hub; these folders make the same metrics available with no
network. Use ``hf_alm.evaluation.classification.load_metric("accuracy")`` or ``evaluate.load(metric_path("accuracy"))``.
"""

from pathlib import Path

METRICS_DIR = Path(__file__).resolve().parent


def metric_path(name: str) -> str:
    """Folder of the local ``evaluate`` module ``name`` (e.g. ``"accuracy"``)."""
    path = METRICS_DIR / name
    if not (path / f"{name}.py").is_file():
        available = sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file())
        raise ValueError(f"no local evaluate module named {name!r}; available: {available}")
    return str(path)
