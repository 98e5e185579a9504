"""PASSL ConvNeXt. PaddlePaddle itself is not in install_requires: install the wheel for your machine first
(CPU: pip install paddlepaddle==3.2.2; GPU: paddlepaddle-gpu from Paddle's package index), see README.md."""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _version() -> str:
    with open(os.path.join(HERE, "passl", "__init__.py"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("__version__"):
                return line.split("=")[1].strip().strip('"')
    raise RuntimeError("no __version__ in passl/__init__.py")


def _requirements() -> list:
    with open(os.path.join(HERE, "requirements.txt"), encoding="utf-8") as f:
        lines = [ln.split("#")[0].strip() for ln in f]
    return [ln for ln in lines if ln and not ln.lower().startswith("paddlepaddle")]


setup(
    name="passl-convnext",
    version=_version(),
    description="ConvNeXt done right on PaddlePaddle: official architecture, recipes and weights",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["passl", "passl.*"]),
    package_data={"passl": ["data/*.txt", "data/*.json", "ops/csrc/*.cc", "ops/csrc/*.h"]},
    python_requires=">=3.9",
    install_requires=_requirements(),
    extras_require={"onnx": ["paddle2onnx", "onnxruntime"]},
    license="Apache-2.0",
)
