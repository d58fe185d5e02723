"""Random labels (RL): fine-tune on D_r together with D_f relabelled at random.

Golatkar, Achille and Soatto, "Eternal Sunshine of the Spotless Net" (CVPR 2020), as the RL
baseline of SalUn (Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight
Saliency in Both Image Classification and Generation", ICLR 2024). Every D_f sample gets a seeded,
uniformly random label *different* from its true one; the relabelled D_f and D_r are shuffled
together. (SalUn's CIFAR-10 code instead draws labels from all classes, so about 1 in 10 keeps its
true label, and visits D_f before D_r in every epoch.) An epoch is one pass over D_r ∪ D_f.
"""

from __future__ import annotations

from dataclasses import dataclass

from prunelora.methods.base import Capabilities, register_method
from prunelora.methods.common import OptmlRecipe, random_label_dataset


@dataclass
class RandomLabelConfig(OptmlRecipe):
    """Defaults: SalUn's public code (OPTML-Group/Unlearn-Saliency, `Classification/arg_parser.py`):
    10 epochs at lr 0.01 (its `--unlearn_epochs` / `--unlearn_lr` defaults), SGD with momentum 0.9,
    weight decay 5e-4, batch 256; its step decay (epochs 91/136) never fires within 10 epochs.
    """



@register_method("random-label", RandomLabelConfig,
                 "fine-tune on D_r plus D_f with random wrong labels (RL, Golatkar et al. 2020)",
                 capabilities=Capabilities(needs_forget_samples=True, trains=True, uses_pruning=False,
                                           uses_lora=False, from_scratch=False))
def random_label(model, splits, config: RandomLabelConfig, ctx):
    return model, config.train(model, random_label_dataset(splits, config.seed), ctx, "random-label")
