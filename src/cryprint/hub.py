"""The Hugging Face hub ids cryprint uses: one home, importable without loading anything."""

# The CryCeleb2023 data set (gated: accept its terms on the hub and log in).
DATASET_REPO_ID = "Ubenwa/CryCeleb2023"
# The pretrained starting point of every published CryCeleb2023 system.
DEFAULT_HUB_MODEL = "speechbrain/spkrec-ecapa-voxceleb"
