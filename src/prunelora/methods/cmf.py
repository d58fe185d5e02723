"""CMF, unlearning through a class-mean-feature classifier (Gao, Unal, Rangamani and Zhu, "An
Illusion of Unlearning? Assessing Machine Unlearning Through Internal Representations", arXiv
2604.08271).

The paper finds that most methods forget by misaligning the last features and the classifier:
the head stops pointing at the forgotten class's features, which stay as separable as before
(a linear probe recovers them). Its remedy is a classifier that cannot be misaligned: each
class's weight *is* the mean of its features (the neural-collapse classifier), so the only way
to stop predicting a class is to move the features themselves.

Here: the whole model trains on D_r together with D_f relabelled to a random other class (the
random-label objective, which the paper runs with the CMF classifier among others), but every
logit is the scaled cosine between the sample's features (the classifier's input) and a class
mean, s · cos(f, m_c). The means start from one pass over D_r and follow the retained samples
of each batch (exponential moving average, momentum 0.9, no gradient through them); D_f's
samples never move a mean. After training, the model's own classifier is set to that CMF
classifier, so the returned model is plain and its head agrees with its features: for a
retained class c the row is (s / f̄) · m_c / ‖m_c‖ (f̄: the mean feature norm on D_r, so logits
keep the training scale), bias 0; a forgotten class's row points away from the retained classes'
average mean, its bias puts its logit below every retained logit seen on D_r — it is never
predicted on data like the retained classes', as for a model retrained without it.

Built from the paper's description of the method; where that gives no formula or setting, the
choice is ours. Choices the paper leaves open here, and why:
- the scale s = 16 (`cmf_scale`): cosine classifiers need one, NormFace-style values are 10-30;
- the forget objective is random labels (each D_f image a seeded random class of the CMF
  classifier other than its own), the simplest objective that must move D_f's features;
- the recipe is the house fine-tuning one (Adam, lr 1e-3, 5 epochs of D_r ∪ D_f), about 50
  steps on digits.

Forget kinds: all. Class-wise, the forgotten classes leave the classifier; for a random fraction
or an index list every class stays and D_f's records move to other classes' means.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from prunelora.data import Splits
from prunelora.data.generic import concat, eval_view, make_loader, relabel, subset, targets_of
from prunelora.errors import InvalidInputError
from prunelora.methods.base import Capabilities, MethodRecord, TrainingOptions, register_method
from prunelora.models.classifier import find_module

MOMENTUM = 0.9  # of the class means' moving average: about the last 10 batches


@dataclass
class CMFConfig(TrainingOptions):
    """Defaults and the reasons for them: see the module's docstring."""

    cmf_scale: float = field(default=16.0, metadata={"help": (
        "scale s of the class-mean-feature classifier's cosine logits, s * cos(features, class mean), > 0")})

    def validate(self) -> None:
        if not self.cmf_scale > 0:
            raise InvalidInputError(f"cmf_scale {self.cmf_scale} must be > 0")
        super().validate()


def kept_classes(splits: Splits) -> torch.Tensor:
    """The classes of the CMF classifier: all but the forgotten ones (class-wise), else all."""
    forgotten = splits.spec.classes if splits.spec is not None and splits.spec.kind == "class" else ()
    return torch.tensor([c for c in range(splits.num_classes) if c not in forgotten])


def forget_as_marked_labels(splits: Splits, classes: torch.Tensor, seed: int):
    """D_f with a seeded random kept class other than its own, shifted by `num_classes` so the loss
    can tell D_f's samples from D_r's in a mixed batch (they must not move the class means)."""
    own = targets_of(splits.forget)
    gen = torch.Generator().manual_seed(seed)
    choice = torch.randint(0, len(classes), (len(own),), generator=gen)
    wrong = classes[choice]
    clash = wrong == own  # only in sample-wise forgetting, where the own class is kept
    wrong[clash] = classes[(choice[clash] + 1) % len(classes)]  # the next kept class instead
    return relabel(splits.forget, wrong + splits.num_classes)


@torch.no_grad()
def initial_means(model: nn.Module, features: list[torch.Tensor], dataset, classes: torch.Tensor, device,
                  batch_size: int) -> torch.Tensor:
    """Mean classifier-input feature of each kept class over `dataset` (eval mode)."""
    was_training = model.training
    model.eval()
    sums, counts = None, torch.zeros(len(classes))
    index = {int(c): i for i, c in enumerate(classes)}
    for x, y in make_loader(dataset, batch_size=batch_size):
        features.clear()
        model(x.to(device))
        f = features[-1].detach().cpu()
        sums = torch.zeros(len(classes), f.shape[1]) if sums is None else sums
        for label in y.unique():
            if int(label) in index:
                mask = y == label
                sums[index[int(label)]] += f[mask].sum(0)
                counts[index[int(label)]] += int(mask.sum())
    model.train(was_training)
    if sums is None or bool((counts == 0).any()):
        raise InvalidInputError("cmf needs retained images of every retained class to compute its class means")
    return (sums / counts[:, None]).to(device)


@register_method("cmf", CMFConfig, "random labels through a class-mean-feature classifier, so the features must "
                 "move, not the head (CMF, Gao et al. 2026)",
                 capabilities=Capabilities(needs_forget_samples=True, trains=True, uses_pruning=False,
                                           uses_lora=False, from_scratch=False))
def cmf(model, splits, config: CMFConfig, ctx):
    classifier = find_module(model, ctx.classifier)
    if not isinstance(classifier, nn.Linear):
        raise InvalidInputError(f"cmf sets the classifier to class means: it needs an nn.Linear classifier, "
                                f"not {type(classifier).__name__} ({ctx.classifier})")
    classes = kept_classes(splits).to(ctx.device)
    if classifier.bias is None and len(classes) < splits.num_classes:
        raise InvalidInputError("cmf needs a classifier with a bias, to keep a forgotten class from being predicted")
    features: list[torch.Tensor] = []
    handle = classifier.register_forward_pre_hook(lambda _m, args: features.append(torch.flatten(args[0], 1)))
    position = torch.full((splits.num_classes,), -1, dtype=torch.long, device=ctx.device)
    position[classes] = torch.arange(len(classes), device=ctx.device)
    try:
        retain_sample = eval_view(splits.retain)
        means = initial_means(model, features, retain_sample, classes, ctx.device, config.batch_size)

        def loss_fn(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            features.clear()
            m(x)
            f = features[-1]
            is_forget = y >= splits.num_classes
            target = position[torch.where(is_forget, y - splits.num_classes, y)]
            logits = config.cmf_scale * F.normalize(f, dim=1) @ F.normalize(means, dim=1).T
            loss = F.cross_entropy(logits, target)
            with torch.no_grad():  # the retained samples of this batch move their class means
                kept = ~is_forget
                for t in target[kept].unique():
                    batch_mean = f[kept][target[kept] == t].mean(0)
                    means[t] = MOMENTUM * means[t] + (1 - MOMENTUM) * batch_mean.detach()
            return loss

        dataset = concat(splits.retain, forget_as_marked_labels(splits, classes.cpu(), config.seed))
        record = config.train(model, dataset, ctx, "cmf", loss_fn=loss_fn)
        set_cmf_classifier(model, classifier, features, means, classes, retain_sample, config, ctx)
    finally:
        handle.remove()
    return model, MethodRecord(record.trainable_params, record.steps, record.history,
                               details={"cmf": {"classes": [int(c) for c in classes], "scale": config.cmf_scale}})


@torch.no_grad()
def set_cmf_classifier(model: nn.Module, classifier: nn.Linear, features: list[torch.Tensor], means: torch.Tensor,
                       classes: torch.Tensor, retain, config: CMFConfig, ctx) -> None:
    """The model's classifier becomes the CMF classifier (see the module's docstring)."""
    model.eval()
    sample = subset(retain, torch.arange(min(len(retain), 1024)))
    feats = []
    for x, _ in make_loader(sample, batch_size=config.batch_size):
        features.clear()
        model(x.to(ctx.device))
        feats.append(features[-1])
    f = torch.cat(feats)
    scale = config.cmf_scale / f.norm(dim=1).mean()
    weight = torch.empty_like(classifier.weight)
    weight[classes] = scale * F.normalize(means, dim=1)
    forgotten = torch.ones(classifier.out_features, dtype=torch.bool, device=weight.device)
    forgotten[classes] = False
    # A forgotten class keeps a live row (a zero row would read as a pruned class): the direction
    # opposite the retained classes' average mean, with a bias that puts its logit below every
    # retained logit on the D_r sample.
    weight[forgotten] = -scale * F.normalize(means.mean(0), dim=0)
    bias = torch.zeros(classifier.out_features, device=weight.device)
    if bool(forgotten.any()):
        margin = (f @ weight[classes].T).min(dim=1).values - (f @ weight[forgotten].T).max(dim=1).values
        bias[forgotten] = float(margin.min()) - 1.0
    classifier.weight.copy_(weight)
    if classifier.bias is not None:
        classifier.bias.copy_(bias)
