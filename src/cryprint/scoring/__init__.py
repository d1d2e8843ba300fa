"""Scoring: verification metrics, AS-norm score normalisation, logistic calibration, verdicts.

Pure numpy: scores and embeddings in, numbers out; no torch and no file I/O (a model folder's
``calibration.json`` is read and written by :mod:`cryprint.inference.operating_point`).
"""

from cryprint.scoring.calibration import Calibration, fit_calibration, reliability_bins, sigmoid
from cryprint.scoring.cosine import cosine_matrix, cosine_pairs, unit_rows
from cryprint.scoring.metrics import (
    DCFResult,
    EERResult,
    FalseAcceptResult,
    compute_auc,
    compute_eer,
    compute_min_dcf,
    det_points,
    error_rates,
    threshold_at_false_accept_rate,
    validate_trials,
)
from cryprint.scoring.normalization import as_norm_matrix, as_norm_pairs, cohort_statistics
from cryprint.scoring.verdict import (
    OperatingPoint,
    Verdict,
    prior_for_threshold,
    probability,
    threshold_for_prior,
)

__all__ = [
    "Calibration",
    "DCFResult",
    "EERResult",
    "FalseAcceptResult",
    "OperatingPoint",
    "Verdict",
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
    "prior_for_threshold",
    "probability",
    "reliability_bins",
    "sigmoid",
    "threshold_at_false_accept_rate",
    "threshold_for_prior",
    "unit_rows",
    "validate_trials",
]
