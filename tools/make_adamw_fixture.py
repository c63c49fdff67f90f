#!/usr/bin/python3
"""Writes tests/fixtures/train/adamw_reference.json: torch.optim.AdamW on a toy problem.

Two parameters (a 3x4 matrix with weight decay, a 5-vector without), fixed pseudo-random
gradients for 6 steps with a changing learning rate; the file holds the initial values, every
step's gradients and learning rate, and the parameters after each step (float64 printed from
float32 tensors). tests/train checks resp's AdamW against it.

    /usr/bin/python3 tools/make_adamw_fixture.py
"""
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def main():
    g = torch.Generator().manual_seed(7)
    shapes = {"w": (3, 4), "b": (5,)}
    params = {k: torch.randn(*s, generator=g, dtype=torch.float32) for k, s in shapes.items()}
    init = {k: v.flatten().tolist() for k, v in params.items()}
    tensors = {k: torch.nn.Parameter(v.clone()) for k, v in params.items()}
    hyper = {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1}
    opt = torch.optim.AdamW([{"params": [tensors["w"]], "weight_decay": hyper["weight_decay"]},
                             {"params": [tensors["b"]], "weight_decay": 0.0}],
                            lr=1e-2, betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"])
    steps = []
    for s in range(6):
        lr = 1e-2 * (0.5 + 0.1 * s)
        for group in opt.param_groups:
            group["lr"] = lr
        grads = {k: torch.randn(*shapes[k], generator=g, dtype=torch.float32) * (0.1 + s)
                 for k in shapes}
        for k in shapes:
            tensors[k].grad = grads[k].clone()
        opt.step()
        steps.append({"lr": lr, "grads": {k: v.flatten().tolist() for k, v in grads.items()},
                      "after": {k: tensors[k].detach().flatten().tolist() for k in shapes}})
    out = {"hyper": hyper, "shapes": {k: list(s) for k, s in shapes.items()}, "init": init,
           "decay": {"w": True, "b": False}, "steps": steps}
    path = ROOT / "tests/fixtures/train/adamw_reference.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
