"""Data: the CryCeleb2023 layout, audio, groupings into recordings, training batches."""
