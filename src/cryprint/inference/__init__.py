"""Where a recording becomes an embedding, and a score a verdict.

- :mod:`~cryprint.inference.api`: :class:`CryPrint`, a model loaded once (embed, score, verify).
- :mod:`~cryprint.inference.options`: :class:`EmbeddingOptions`, how recordings are embedded.
- :mod:`~cryprint.inference.engines`: what runs the model (PyTorch, or ONNX Runtime through
  :mod:`~cryprint.inference.onnx_runtime`); :mod:`~cryprint.inference.tta`: test-time views.
- :mod:`~cryprint.inference.store`: the embedding store every command shares;
  :mod:`~cryprint.inference.splits` and :mod:`~cryprint.inference.shards`: a data set split's
  embeddings (``.npz``), whole or in parts.
- :mod:`~cryprint.inference.operating_point`: thresholds and calibrations a model folder holds.
"""
