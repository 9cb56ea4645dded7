"""Packaging beyond pyproject.toml: the shipped models' weights ship inside the package.

The repository keeps them in ``weights/`` (the model card and training record beside them); the wheel carries
each file of ``tracker.shipped.MODELS``, their appearance embeddings, settings files and calibrated int8 search graphs
(listed again here: a build must not import the package; a test keeps the two lists equal) as
``tracker/data/<file>``, which ``tracker.shipped`` looks
up first. Only ``tracker`` is packaged: ``train`` runs from a checkout (``python -m train``) and would collide with
other projects' top-level ``train`` modules in site-packages.
"""

from setuptools import find_packages, setup

# tracker.shipped.MODELS' files, the appearance embeddings (tracker.appearance), settings files (tracker.tuned) and
# int8 search graphs (tracker.backends.graphs.shipped_int8) beside them
SHIPPED = [
    "mobilenetv2_box.safetensors",
    "mobilenetv2_pruned_box.safetensors",
    "mobilenetv1_box.safetensors",
    "siamfc.safetensors",
    "mobilenetv2_box_appearance.safetensors",
    "mobilenetv2_pruned_box_appearance.safetensors",
    "mobilenetv1_box_appearance.safetensors",
    "mobilenetv2_box_settings.json",
    "mobilenetv2_pruned_box_settings.json",
    "mobilenetv1_box_settings.json",
    "mobilenetv2_box_int8.onnx",
    "mobilenetv2_pruned_box_int8.onnx",
    "mobilenetv1_box_int8.onnx",
    "mobilenetv2_box_int8_w8.onnx",
    "mobilenetv2_pruned_box_int8_w8.onnx",
    "mobilenetv1_box_int8_w8.onnx",
]

setup(
    packages=[*find_packages(include=["tracker", "tracker.*"]), "tracker.data"],
    package_dir={"tracker.data": "weights"},
    package_data={"tracker.data": SHIPPED},
)
