"""Evaluation: embeddings of recordings, pair scoring, reports, plots, submission, verify."""
