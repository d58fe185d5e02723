"""The record holds the config as run: PruneLoRA on a physically pruned ViT attention adapts its
q/k/v/out linears (in the weight form when intact attentions are adapted too, since those always
take it), and meta.json says so; the caller's request is kept beside it, and the run id stays the
request's."""

from __future__ import annotations

import json
import re

import pytest

from prunelora.checkpoint import unlearned_run_id

PRUNE = ["--prune-mode", "physical", "--prune-types", "mha,linear", "--prune-pattern", r"blocks\.{last}\.(attn|mlp)"]


@pytest.fixture(scope="module")
def vit_checkpoint(tmp_path_factory, run_cli):
    original = tmp_path_factory.mktemp("vit") / "vit"
    code, _, stderr = run_cli("train", "--model", "vit-tiny", "--steps", "1", "--out", original, "--no-progress")
    assert code == 0, stderr
    return original


# LoRA on the last attention only (pruned: its linears, through peft), or on every attention (the
# intact ones in the weight form, hence the pruned one's linears too)
@pytest.mark.parametrize("lora_pattern,types,backend", [(r"blocks\.{last}\.attn$", ["linear"], "peft"),
                                                        (r"blocks\.\d+\.attn$", ["mha", "linear"], "weight")])
def test_meta_of_a_physical_vit_prunelora_run_records_the_lora_that_ran(lora_pattern, types, backend, run_cli,
                                                                       vit_checkpoint, tmp_path):
    out = tmp_path / "unlearned"
    code, _, stderr = run_cli("unlearn", "--checkpoint", vit_checkpoint, "--forget-class", "3", "--out", out,
                              "--no-progress", "--method", "prunelora", "--steps", "1", *PRUNE, "--lora-types", "mha",
                              "--lora-pattern", lora_pattern, "--lora-dropout", "0")
    assert code == 0, stderr
    meta = json.loads((out / "meta.json").read_text())
    ran, asked = meta["method"]["config"], meta["method"]["requested"]
    assert asked["lora_types"] == ["mha"] and asked["lora_backend"] == "peft"  # what the caller asked for
    assert ran["lora_types"] == types and ran["lora_backend"] == backend  # what ran
    assert all(re.search(rf"attn\\\.{proj}", ran["lora_pattern"]) for proj in ("q_proj", "k_proj", "v_proj", "out_proj"))
    assert {k: v for k, v in ran.items() if not k.startswith("lora_")} == \
        {k: v for k, v in asked.items() if not k.startswith("lora_")}
    original_id = json.loads((vit_checkpoint / "meta.json").read_text())["run_id"]
    assert meta["run_id"] == unlearned_run_id(original_id, meta["forget"], "prunelora", asked)


def test_a_run_that_changes_nothing_records_no_request_beside_its_config(run_cli, checkpoint_dir, tmp_path):
    out = tmp_path / "mask"
    code, _, stderr = run_cli("unlearn", "--checkpoint", checkpoint_dir, "--forget-class", "3", "--out", out,
                              "--no-progress", "--method", "prunelora", "--steps", "1")
    assert code == 0, stderr
    method = json.loads((out / "meta.json").read_text())["method"]
    assert set(method) == {"name", "config"} and method["config"]["lora_backend"] == "peft"
