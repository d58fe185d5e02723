"""Training cost of one optimizer step: full fine-tuning against LoRA (peft's and the weight form).

For a ResNet-8 (every conv adapted, the paper's ResNet recipe) and the Fashion-MNIST ViT
(`vit-tiny` at width 0.5, 4 blocks; LoRA on the last block's attention, the paper's ViT recipe)
on 1x28x28 inputs, batch 128, Adam: milliseconds per training step (forward, backward, optimizer)
and the peak memory of the steps, as ratios to full fine-tuning measured in the same run.
Variants: peft's LoRA with the paper's dropout 0.1 and without it; the weight form
(`lora_backend: weight`, W0 + s·B@A, one convolution per layer); and PruneLoRA's model (50%
structured pruning) with masks and with the channels physically removed.

Run:   .venv/bin/python benchmarks/lora_speed.py [--steps 20] [--rounds 3]
Timings are only meaningful on an otherwise idle machine (2 threads, as in the benchmarks).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from prunelora.adapters import LoraSettings, add_lora
from prunelora.models import create_model
from prunelora.pruning import physical_prune, prune
from prunelora.training.memory import PeakMemory

MODELS = {
    "resnet8": dict(name="resnet8", kwargs={}, lora=dict(types=("conv",), rank=8, alpha=16),
                    prune=dict(types=("conv",), pattern=None)),
    "vit-tiny-w0.5-d4": dict(name="vit-tiny", kwargs={"width": 0.5, "depth": 4},
                             lora=dict(types=("mha",), pattern=r"blocks\.{last}\.attn$", rank=16, alpha=32),
                             prune=dict(types=("mha", "linear"), pattern=r"blocks\.{last}\.(attn|mlp)")),
}


def variants(spec: dict) -> dict:
    """name -> function building the model to train (parameters to train have requires_grad)."""
    def base():
        torch.manual_seed(0)
        return create_model(spec["name"], 10, 1, 28, **spec["kwargs"])

    def lora(model, backend, dropout):
        return add_lora(model, LoraSettings(dropout=dropout, backend=backend, **spec["lora"]))

    def pruned(mode):
        model = base()
        if mode == "physical":
            physical_prune(model, 0.5, example_inputs=torch.randn(2, 1, 28, 28), **spec["prune"])
            return model
        return model, prune(model, 0.5, bake=True, example_inputs=torch.randn(2, 1, 28, 28), **spec["prune"])

    return {
        "finetune": base,
        "lora (peft, dropout 0.1)": lambda: lora(base(), "peft", 0.1),
        "lora (peft, dropout 0)": lambda: lora(base(), "peft", 0.0),
        "lora (weight form)": lambda: lora(base(), "weight", 0.0),
        "prunelora, masks (weight form)": lambda: _lora_masked(*pruned("mask"), spec),
        "prunelora, physical (weight form)": lambda: _lora_physical(pruned("physical"), spec),
    }


def _lora_masked(model: nn.Module, masks: dict, spec: dict) -> nn.Module:
    return add_lora(model, LoraSettings(dropout=0.0, backend="weight", **spec["lora"]), masks=masks)


def _lora_physical(model: nn.Module, spec: dict) -> nn.Module:
    from prunelora.methods.prunelora import PruneLoRAConfig, _lora_on_pruned_attention

    config = _lora_on_pruned_attention(model, PruneLoRAConfig(
        lora_types=spec["lora"]["types"], lora_pattern=spec["lora"].get("pattern")))
    settings = dict(spec["lora"], types=config.lora_types, pattern=config.lora_pattern)
    return add_lora(model, LoraSettings(dropout=0.0, backend="weight", **settings))


def time_steps(model: nn.Module, steps: int, batch: int = 128) -> tuple[float, float]:
    """(median ms per step over `steps` after 3 warm-up steps, peak memory MiB of the steps)."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (batch,), generator=generator)

    def step():
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    for _ in range(3):
        step()
    times = []
    with PeakMemory("cpu") as peak:
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, peak.mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="round-robin rounds; the best is kept")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/lora_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for model_name, spec in MODELS.items():
        builders = variants(spec)
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.rounds):  # round-robin, so that drifts in machine speed hit every variant
            for name, build in builders.items():
                model = build()
                ms, mb = time_steps(model, args.steps)
                old = best.get(name)
                best[name] = (min(ms, old[0]), min(mb, old[1])) if old else (ms, mb)
                del model
        base_ms, base_mb = best["finetune"]
        results[model_name] = {name: {"ms_per_step": round(ms, 1), "time_vs_finetune": round(ms / base_ms, 2),
                                      "peak_mb": round(mb, 1), "memory_vs_finetune": round(mb / base_mb, 2)}
                               for name, (ms, mb) in best.items()}
        print(f"\n{model_name} (batch 128, 1x28x28, {args.threads} threads)")
        print(f"{'variant':36} {'ms/step':>8} {'x finetune':>10} {'peak MiB':>9} {'x finetune':>10}")
        for name, row in results[model_name].items():
            print(f"{name:36} {row['ms_per_step']:8.1f} {row['time_vs_finetune']:10.2f} {row['peak_mb']:9.1f} "
                  f"{row['memory_vs_finetune']:10.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"threads": args.threads, "steps": args.steps, "rounds": args.rounds,
                               "results": results}, indent=2) + "\n")
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
