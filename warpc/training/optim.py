"""warpc's own Adam optimizer (same formula as torch.optim.Adam)."""
from __future__ import annotations

import torch


class Adam:
    """Plain Adam (L2 weight decay as torch.optim.Adam). torch.optim's first step imports torch._dynamo, which
    costs 3-8 s of start-up on this CPU: a large share of a one-minute training run."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        self.param_groups = [{"params": [p for p in params if p.requires_grad], "lr": lr, "betas": betas,
                              "eps": eps, "weight_decay": weight_decay}]
        self.state: dict = {}
        self._fused: bool | None = None  # None: try torch._fused_adam_ on the first step

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        g = self.param_groups[0]
        b1, b2 = g["betas"]
        if self._fused is not False:
            # CPU: one fused ATen kernel for all parameters (what torch.optim.Adam(fused=True) runs, without
            # importing torch._dynamo), same formula as torch.optim.Adam. Otherwise the loop below.
            ps = [p for p in g["params"] if p.grad is not None]
            if ps and all(p.device.type == "cpu" and p.dtype == torch.float32 for p in ps):
                sts = [self.state.get(p) or self.state.setdefault(p, {
                    "step": torch.zeros((), dtype=torch.float32),
                    "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}) for p in ps]
                steps = [st["step"] for st in sts]
                torch._foreach_add_(steps, 1)
                try:
                    torch._fused_adam_(ps, [p.grad for p in ps], [st["exp_avg"] for st in sts],
                                       [st["exp_avg_sq"] for st in sts], [], steps, amsgrad=False, lr=g["lr"],
                                       beta1=b1, beta2=b2, weight_decay=g["weight_decay"], eps=g["eps"],
                                       maximize=False, grad_scale=None, found_inf=None)
                    self._fused = True
                    return
                except (AttributeError, RuntimeError, NotImplementedError):
                    torch._foreach_sub_(steps, 1)
                    if self._fused:
                        raise
                    self._fused = False  # no fused kernel in this torch: the plain loop from now on
        for p in g["params"]:
            if p.grad is None:
                continue
            grad = p.grad if g["weight_decay"] == 0 else p.grad.add(p, alpha=g["weight_decay"])
            st = self.state.get(p)
            if st is None:
                st = self.state[p] = {"step": torch.zeros((), dtype=torch.float32),
                                      "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
            st["step"] += 1
            t = float(st["step"])  # a CPU scalar: no device sync
            st["exp_avg"].lerp_(grad, 1 - b1)
            st["exp_avg_sq"].mul_(b2).addcmul_(grad, grad, value=1 - b2)
            denom = (st["exp_avg_sq"] / (1 - b2 ** t)).sqrt_().add_(g["eps"])
            p.addcdiv_(st["exp_avg"], denom, value=-g["lr"] / (1 - b1 ** t))
