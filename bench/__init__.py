"""Benchmarks for the assistant: `python -m bench.run` (see bench/README.md).

The environment is set here, before any bench module can import torch: with the default
spin-waiting OpenMP policy, encoding on two shared cores runs about 3x slower, and nothing may
reach a model hub.
"""

import os

for _name, _value in {
    "OMP_WAIT_POLICY": "PASSIVE",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",
}.items():
    os.environ.setdefault(_name, _value)
