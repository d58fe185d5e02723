"""Is a membership attack better than a coin flip? The noise of an attack's own accuracy.

An attack's efficacy on D_f (the share it calls non-member) means something only when the attack can
tell members from non-members at all. Its own balanced accuracy is measured on a held-out set of
`n_heldout` samples, half members and half non-members, so it carries sampling noise: an attack at
chance scores 50 only on average. An attack is **at chance** when its balanced accuracy is within two
standard errors of 50, or below 50 (an attack that learned the inverted direction is no attack):

    at chance  <=>  attack_accuracy - 2 * SE <= 50,   SE = 50 / sqrt(n_heldout)   (in points)

Why that SE: for an attack at chance its predictions do not depend on membership. If it calls a share q
of the samples "member", the member recall (TPR) and the non-member recall (TNR) are binomial shares
over n_heldout / 2 samples each, with rates q and 1 − q, so balanced accuracy = (TPR + TNR) / 2 has
variance q(1 − q) / n_heldout, the largest at q = 1/2: SE = 0.5 / sqrt(n_heldout). The largest is
taken because q is not known in advance; it makes the flag err on the side of warning.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = ["CHANCE", "Z", "attack_at_chance", "attacks_at_chance", "chance_note", "chance_standard_error"]

CHANCE = 50.0
"""Balanced accuracy (percent) of an attack that cannot tell members from non-members."""
Z = 2.0
"""Standard errors above chance an attack's balanced accuracy must reach not to be flagged."""


def chance_standard_error(n_heldout: int) -> float:
    """Standard error (points) of the balanced accuracy of an attack at chance on `n_heldout` samples.

    Args:
        n_heldout: held-out samples, members and non-members together (`MIAResult.n_heldout`).

    Returns:
        `50 / sqrt(n_heldout)`; NaN when nothing was held out.
    """
    return CHANCE / math.sqrt(n_heldout) if n_heldout > 0 else float("nan")


def attack_at_chance(attack_accuracy: float, n_heldout: int, z: float = Z) -> bool:
    """Whether an attack's balanced accuracy is within `z` standard errors of 50, or below it.

    Args:
        attack_accuracy: the attack's balanced accuracy (percent) on its held-out samples.
        n_heldout: how many held-out samples it was measured on.
        z: standard errors of margin (2 by default).

    Returns:
        True when `attack_accuracy - z * SE <= 50` (also when the accuracy or the SE is NaN: there is
        no evidence that the attack tells members apart).
    """
    se = chance_standard_error(n_heldout)
    if math.isnan(attack_accuracy) or math.isnan(se):
        return True
    return attack_accuracy - z * se <= CHANCE


def attacks_at_chance(mia: Mapping[str, Mapping]) -> list[str]:
    """The attacks of `evaluate()`'s `mia` details (name -> `MIAResult.to_dict()`) that are at chance,
    in their order (an entry without `attack_accuracy` and `n_heldout` is not judged)."""
    return [name for name, result in mia.items()
            if "attack_accuracy" in result and "n_heldout" in result
            and attack_at_chance(float(result["attack_accuracy"]), int(result["n_heldout"]))]


def chance_note(names: Iterable[str], gap_attack: str = "confidence-svc") -> str:
    """One line naming the attacks at chance and what that means for MIA and Avg.Gap ("" when none).

    Args:
        names: the attacks at chance.
        gap_attack: the attack whose efficacy is `MIA` and enters Avg.Gap.
    """
    names = list(names)
    if not names:
        return ""
    text = (f"attacks at chance (balanced accuracy within {Z:g} standard errors of {CHANCE:g}%, or below): "
            f"{', '.join(names)}: their MIA efficacy is a coin flip")
    if gap_attack in names:
        text += f"; MIA ({gap_attack}) and the Avg.Gap through it too: read Out.Gap (UA, RA, TA only)"
    return text
