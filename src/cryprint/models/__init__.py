"""The cry embedder: ECAPA-TDNN (:mod:`~cryprint.models.ecapa`), loading and saving its weights
(:mod:`~cryprint.models.folder`), the devices and precisions it runs in
(:mod:`~cryprint.models.device`), running it over waveforms (:mod:`~cryprint.models.embed`) and
the ONNX export's format (:mod:`~cryprint.models.onnx_format`). Importing this package loads
nothing heavy."""

# The devices a model runs on, as every option that takes one explains them.
DEVICE_HELP = "auto (a GPU when there is one, else the CPU), cpu, cuda, cuda:N or mps"
