"""Measurements behind ``tools/benchmark.py`` (one module per table) and the report renderer.

- :mod:`.common`: configs, models, inputs, device-generic timing rounds and training steps;
- :mod:`.inference`: per-image inference and the thread-count table;
- :mod:`.train`: the training steps and the CSKD step's breakdown (``torch.profiler``);
- :mod:`.akdp`: AKDP against boxes and anchors;
- :mod:`.memory`: peak RSS, measured in fresh subprocesses;
- :mod:`.device`: the inference and training-step tables on one device, AMP off and on;
- :mod:`.render`: the markdown report (BENCHMARKS.md).
"""
