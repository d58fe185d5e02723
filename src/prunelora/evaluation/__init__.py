"""Metrics (accuracy family, membership inference, gap to retrain, cost) and reports."""

from prunelora.evaluation.attacks import (
    Attack,
    MIAResult,
    ShadowData,
    default_attacks,
    get_attack,
    list_attacks,
    mia_all,
    mia_efficacy,
    register_attack,
)
from prunelora.evaluation.metrics import (
    MIA_FEATURES,
    accuracy,
    avg_gap,
    per_sample_loss,
    unlearning_accuracy,
)

__all__ = ["MIA_FEATURES", "Attack", "MIAResult", "ShadowData", "accuracy", "avg_gap", "default_attacks",
           "get_attack", "list_attacks", "mia_all", "mia_efficacy", "per_sample_loss", "register_attack",
           "unlearning_accuracy"]
