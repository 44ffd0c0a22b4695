"""PGD: per-sample L∞ projected gradient ascent with a random start.

Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018.
Distance: L∞ per lead, in mV. At ε = 10 µV it is the SCAR paper's "invisible noise" reference (Fig. 2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from ecgaudit.attacks.interface import PerSampleAttack, attack_loss
from ecgaudit.constraints import LinfBox
from ecgaudit.errors import AttackError
from ecgaudit.models.interface import ModelAdapter
from ecgaudit.progress import ProgressFn, no_progress


@dataclass(frozen=True)
class PGD(PerSampleAttack):
    """Args: `eps_mv` L∞ budget (one value, or one per lead); `steps`; `step_mv` per-step size
    (default 2.5·ε/steps per lead, Madry's rule); `random_start` uniform in the ε box; `batch_size` records
    per pass (32: on 2 cores the bundled CNN's forward + backward is as fast per record as at 64, 2.6 against
    2.9 ms, and holds half the activations, 135 MB less).
    """

    name = "pgd"
    eps_mv: float | tuple[float, ...] = 0.01
    steps: int = 20
    step_mv: float | None = None
    random_start: bool = True
    batch_size: int = 32

    def __post_init__(self) -> None:
        eps = self.eps_mv if isinstance(self.eps_mv, tuple) else (self.eps_mv,)
        if not eps or any(not e > 0 for e in eps):
            raise AttackError(f"pgd: eps_mv must be positive; got {self.eps_mv}.")
        if self.steps < 1 or self.batch_size < 1:
            raise AttackError("pgd: steps and batch_size must be at least 1.")

    def params(self) -> dict[str, Any]:
        out = asdict(self)
        out["eps_mv"] = list(self.eps_mv) if isinstance(self.eps_mv, tuple) else self.eps_mv
        if self.step_mv is None:
            eps = self.eps_mv if isinstance(self.eps_mv, tuple) else (self.eps_mv,)
            steps = [2.5 * e / self.steps for e in eps]
            out["step_mv"] = steps if isinstance(self.eps_mv, tuple) else steps[0]
        return out

    @property
    def constraint(self) -> LinfBox:
        return LinfBox(self.eps_mv if isinstance(self.eps_mv, tuple) else (self.eps_mv,))

    def perturb(
        self, model: ModelAdapter, x_mv: torch.Tensor, targets: torch.Tensor, *, generator: torch.Generator,
        progress: ProgressFn = no_progress,
    ) -> torch.Tensor:
        eps = self.constraint.eps_tensor(x_mv)
        # Madry's 2.5·ε/steps, lead by lead: a per-lead budget gets a per-lead step.
        step = eps * (2.5 / self.steps) if self.step_mv is None else torch.full_like(eps, self.step_mv)
        # Every step works in place on buffers allocated once: at 64 records × 12 × 5000 samples each fresh
        # tensor is 15 MB, and allocating (and page-faulting) six of them per step cost a fifth of the model's own
        # forward + backward on 2 cores. The perturbations are built directly in `out`.
        out = torch.empty_like(x_mv)
        x_adv = torch.empty_like(x_mv[: self.batch_size])
        sign = torch.empty_like(x_adv)
        total = x_mv.shape[0] * self.steps
        for start in range(0, x_mv.shape[0], self.batch_size):
            x = x_mv[start : start + self.batch_size]
            y = targets[start : start + self.batch_size]
            delta, xa, sign_a = out[start : start + len(x)], x_adv[: len(x)], sign[: len(x)]
            if self.random_start:
                torch.rand(x.shape, generator=generator, out=delta).mul_(2).sub_(1).mul_(eps)
            else:
                delta.zero_()
            for i in range(self.steps):
                torch.add(x, delta, out=xa)
                xa.requires_grad_(True)
                loss = attack_loss(model, model.torch_forward(xa), y)
                (grad,) = torch.autograd.grad(loss, xa)
                xa.requires_grad_(False)
                # Π_ε(δ + step·sign ∇): the L∞ box's clip (`LinfBox.project`), in place.
                delta.addcmul_(torch.sign(grad, out=sign_a), step).clamp_(-eps, eps)
                progress(start * self.steps + (i + 1) * len(x), total)
        return out
