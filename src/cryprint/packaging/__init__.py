"""A trained model made ready for others: a SpeechBrain model folder
(:mod:`~cryprint.packaging.speechbrain`), an ONNX embedder (:mod:`~cryprint.packaging.onnx_export`)
and the model card (:mod:`~cryprint.packaging.card`)."""
