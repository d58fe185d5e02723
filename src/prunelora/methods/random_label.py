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

from prunelora.adapters import trainable_parameters
from prunelora.methods.base import MethodConfig, register_method
from prunelora.methods.common import random_label_dataset
from prunelora.training import fit


@dataclass
class RandomLabelConfig(MethodConfig):
    """Defaults: SalUn's public code (OPTML-Group/Unlearn-Saliency, `Classification/arg_parser.py`):
    10 epochs at lr 0.01 (its `--unlearn_epochs` / `--unlearn_lr` defaults), SGD with momentum 0.9,
    weight decay 5e-4, batch 256; its step decay (epochs 91/136) never fires within 10 epochs.
    """

    epochs: float = 10
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4


@register_method("random-label", RandomLabelConfig,
                 "fine-tune on D_r plus D_f with random wrong labels (RL, Golatkar et al. 2020)",
                 needs_forget_samples=True)
def random_label(model, splits, config: RandomLabelConfig, ctx):
    dataset = random_label_dataset(splits, config.seed)
    result = fit(model, dataset, config.train_config(), freeze_batchnorm=config.bn_mode == "freeze",
                 device=ctx.device, progress=ctx.progress, description="random-label")
    return model, {"cost": {"trainable_params": trainable_parameters(model), "steps": result.steps},
                   "history": result.history}
