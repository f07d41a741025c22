"""Package discovery for hf-alm (everything else lives in pyproject.toml).

``modeling/`` sits at the repository root (each model folder is self-contained so that ``save_pretrained`` can ship it
as Hub remote code) and is installed as ``hf_alm.modeling``; ``model_cards/`` is installed as ``hf_alm.model_cards``
so that card templates are available from a wheel too, and the Gradio Space ``spaces/hf-alm-demo/`` as
``hf_alm.space`` (data files plus ``app.py``, never imported by ``hf_alm``) so that ``hf-alm demo`` works from a wheel.
"""

from setuptools import find_packages, setup

MAPPED = {"hf_alm.modeling": "modeling", "hf_alm.model_cards": "model_cards", "hf_alm.space": "spaces/hf-alm-demo"}

packages = find_packages(include=["hf_alm", "hf_alm.*"])
for package, folder in MAPPED.items():
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir={"hf_alm": "hf_alm", **MAPPED})
