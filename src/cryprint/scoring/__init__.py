"""Scoring: verification metrics, AS-norm score normalisation, logistic calibration.

Pure numpy: scores and embeddings in, numbers out; no torch and no I/O except the calibration
JSON helpers.
"""

from cryprint.scoring.calibration import (
    Calibration,
    fit_calibration,
    load_calibration,
    save_calibration,
)
from cryprint.scoring.cosine import cosine_matrix, cosine_pairs, unit_rows
from cryprint.scoring.metrics import (
    DCFResult,
    EERResult,
    compute_auc,
    compute_eer,
    compute_min_dcf,
    det_points,
    error_rates,
    validate_trials,
)
from cryprint.scoring.normalization import as_norm_matrix, as_norm_pairs, cohort_statistics

__all__ = [
    "Calibration",
    "DCFResult",
    "EERResult",
    "as_norm_matrix",
    "as_norm_pairs",
    "cohort_statistics",
    "compute_auc",
    "compute_eer",
    "compute_min_dcf",
    "cosine_matrix",
    "cosine_pairs",
    "det_points",
    "error_rates",
    "fit_calibration",
    "load_calibration",
    "save_calibration",
    "unit_rows",
    "validate_trials",
]
