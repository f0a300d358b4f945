from setuptools import find_packages, setup

setup(
    name="zoominnet_d2",
    version="0.1.0",
    description="ZoomInNet (Liu et al., Remote Sensing 2021): cross-scale knowledge "
    "distillation for small objects in drone images, as a Detectron2 project",
    packages=find_packages(include=["zoominnet_d2", "zoominnet_d2.*"]),
    python_requires=">=3.9",
    install_requires=[
        "torch>=1.10",
        "torchvision>=0.11",
        # Detectron2 is not on PyPI: `make setup` installs it (tools/install_detectron2.py)
        # before this package, or keeps an official build that is already there.
        "detectron2>=0.6",
        "fvcore>=0.1.5,<0.1.6",
        "pycocotools>=2.0.2",
        # opencv-python, not -headless: SAHI requires it, and both install the same cv2.
        "opencv-python>=4.5",
        # Sliced inference (zoominnet_d2/deploy/sahi_model.py, tools/alternatives.py).
        "sahi>=0.11",
        "numpy>=1.21",
        "Pillow>=8.0",
        "tqdm>=4.29",
    ],
    extras_require={
        # tools/export.py --format onnx and tools/predict.py --backend onnx.
        "deploy": ["onnx>=1.12", "onnxruntime>=1.12"],
        # The suite runs the ONNX parity tests, so dev includes deploy.
        "dev": ["pytest>=7.0", "pytest-timeout>=2.1", "onnx>=1.12", "onnxruntime>=1.12"],
    },
)
