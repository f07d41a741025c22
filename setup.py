"""Package discovery for hf-alm (everything else lives in pyproject.toml).

``modeling/`` sits at the repository root (each model folder is self-contained so that ``save_pretrained`` can ship it
as Hub remote code) and is installed as ``hf_alm.modeling``; ``model_cards/`` is installed as ``hf_alm.model_cards``
so that card templates are available from a wheel too.
"""

from setuptools import find_packages, setup

MAPPED = {"hf_alm.modeling": "modeling", "hf_alm.model_cards": "model_cards"}

packages = find_packages(include=["hf_alm", "hf_alm.*"])
for package, folder in MAPPED.items():
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir={"hf_alm": "hf_alm", **MAPPED})
