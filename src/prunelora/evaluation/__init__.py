"""Metrics (accuracy family, membership inference, gap to retrain, cost) and reports."""

from prunelora.evaluation.metrics import (
    ATTACKS,
    MIA_FEATURES,
    MIAResult,
    accuracy,
    avg_gap,
    mia_all,
    mia_efficacy,
    per_sample_loss,
    unlearning_accuracy,
)

__all__ = ["ATTACKS", "MIA_FEATURES", "MIAResult", "accuracy", "avg_gap", "mia_all", "mia_efficacy",
           "per_sample_loss", "unlearning_accuracy"]
