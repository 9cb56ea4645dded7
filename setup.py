"""Packaging beyond pyproject.toml: the default weights ship inside the package.

The repository keeps them in ``weights/`` (the model card and training record beside them); the wheel carries
``weights/mobilenetv2_box.safetensors`` as ``tracker/data/mobilenetv2_box.safetensors``, which
``tracker.shipped`` looks up first.
Only ``tracker`` is packaged: ``train`` runs from a checkout (``python -m train``) and would collide with other
projects' top-level ``train`` modules in site-packages.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["tracker", "tracker.*"]), "tracker.data"],
    package_dir={"tracker.data": "weights"},
    package_data={"tracker.data": ["mobilenetv2_box.safetensors"]},
)
