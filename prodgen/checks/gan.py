"""Checks for lesson 03 (GANs): the discriminator loss, the generator loss, one training step."""
from __future__ import annotations

import copy
import math

from prodgen.checks._core import _check, _expect, _torch

__all__ = ["check_discriminator_loss", "check_generator_loss", "check_train_step"]

LN2 = math.log(2.0)


def _scalar(value, what: str) -> float:
    torch = _torch()
    _expect(isinstance(value, torch.Tensor), f"{what} should return a tensor (so it can be backpropagated), "
            f"got {type(value).__name__}")
    _expect(value.numel() == 1, f"{what} should return one number (the mean over the batch), "
            f"got a tensor of shape {tuple(value.shape)}")
    return float(value.detach())


def _close(a: float, b: float, tol: float = 1e-4) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(b))


@_check("discriminator loss", "with logits l, -log D = softplus(-l) and -log(1 - D) = softplus(l): "
        "return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()")
def check_discriminator_loss(discriminator_loss) -> None:
    """Lesson 03: ``discriminator_loss(real_logits, fake_logits)`` = -E[log D(x)] - E[log(1 - D(G(z)))]."""
    torch = _torch()
    F = torch.nn.functional
    zero = torch.zeros(4)
    got = _scalar(discriminator_loss(zero, zero), "discriminator_loss")
    _expect(math.isfinite(got), f"with all logits 0 it returned {got}")
    if _close(got, -2 * LN2):
        _expect(False, "the sign is flipped: D *maximises* E[log D(x)] + E[log(1 - D(G(z)))], so the loss to "
                "minimise is its negative (at D = 0.5 everywhere it is 2 ln 2 = 1.386, not -1.386)")
    if _close(got, 8 * LN2):
        _expect(False, "take the mean over the batch, not the sum")
    _expect(_close(got, 2 * LN2), f"with all logits 0, D = 0.5 everywhere and the loss is -log 0.5 - log 0.5 = "
            f"2 ln 2 = 1.386; got {got:.4f}")
    real = torch.tensor([math.log(3.0), 2.0, -1.0, 0.5])
    fake = torch.tensor([-math.log(3.0), -2.0, 1.0, 0.0])
    want = float(F.softplus(-real).mean() + F.softplus(fake).mean())
    got = _scalar(discriminator_loss(real, fake), "discriminator_loss")
    swapped = float(F.softplus(-fake).mean() + F.softplus(real).mean())
    _expect(not _close(got, swapped) or _close(want, swapped),
            "real and fake are swapped: D should call real images real (D(x) -> 1) and fakes fake (D(G(z)) -> 0)")
    _expect(_close(got, want), f"for real logits {[round(v, 3) for v in real.tolist()]} and fake logits "
            f"{[round(v, 3) for v in fake.tolist()]} the loss should be {want:.4f}, got {got:.4f}")
    sure_wrong_real, sure_wrong_fake = torch.tensor([-40.0, -120.0]), torch.tensor([40.0, 120.0])
    want = float(F.softplus(-sure_wrong_real).mean() + F.softplus(sure_wrong_fake).mean())  # = 160
    got = _scalar(discriminator_loss(sure_wrong_real, sure_wrong_fake), "discriminator_loss")
    _expect(math.isfinite(got) and _close(got, want, 1e-3),
            f"a discriminator that is sure and wrong (real logits -40, -120; fake logits 40, 120) should have a "
            f"large but finite loss, {want:.0f}; got {got}: log(sigmoid(l)) underflows to log(0) for large |l|, "
            "so compute it from the logits with F.softplus (or F.binary_cross_entropy_with_logits)")
    r, f = real.clone().requires_grad_(), fake.clone().requires_grad_()
    discriminator_loss(r, f).backward()
    _expect(r.grad is not None and f.grad is not None, "no gradient reaches the logits: use torch operations only")
    _expect(bool((r.grad < 0).all() and (f.grad > 0).all()),
            "the gradients point the wrong way: lowering the loss should raise the real logits and lower the fake ones")


@_check("generator loss", "the non-saturating loss is -E[log D(G(z))] = F.softplus(-fake_logits).mean()")
def check_generator_loss(generator_loss) -> None:
    """Lesson 03: the non-saturating ``generator_loss(fake_logits)`` = -E[log D(G(z))]."""
    torch = _torch()
    F = torch.nn.functional
    zero = torch.zeros(4)
    got = _scalar(generator_loss(zero), "generator_loss")
    _expect(math.isfinite(got), f"with all logits 0 it returned {got}")
    if _close(got, -LN2):
        _expect(False, "that is either the saturating loss log(1 - D(G(z))) or a flipped sign: the non-saturating "
                "loss is -log D(G(z)), which is ln 2 = 0.693 at D = 0.5")
    if _close(got, 4 * LN2):
        _expect(False, "take the mean over the batch, not the sum")
    _expect(_close(got, LN2), f"with all logits 0, D(G(z)) = 0.5 and -log 0.5 = 0.693; got {got:.4f}")
    fake = torch.tensor([-6.0, -2.0, 0.5, 3.0])
    want = float(F.softplus(-fake).mean())
    got = _scalar(generator_loss(fake), "generator_loss")
    if _close(got, float(-F.softplus(fake).mean())):
        _expect(False, "that is the saturating form log(1 - D(G(z))): its gradient vanishes exactly when D "
                "rejects the fakes; use -log D(G(z)) instead")
    _expect(_close(got, want), f"for fake logits {fake.tolist()} the loss should be {want:.4f}, got {got:.4f}")
    rejected = torch.tensor([-60.0, -200.0], requires_grad=True)
    got = _scalar(generator_loss(rejected), "generator_loss")
    _expect(math.isfinite(got), "for logits -60 and -200 (D is sure they are fake) the loss is not finite: "
            "compute -log sigmoid(l) as F.softplus(-l)")
    generator_loss(rejected).backward()
    _expect(rejected.grad is not None and bool((rejected.grad < -0.4).all()),
            "when D confidently rejects the fakes the non-saturating loss still has a strong gradient "
            f"(about -1/N per logit); got {None if rejected.grad is None else rejected.grad.tolist()}")


def _tiny_gan(seed: int):
    torch = _torch()
    from prodgen.models.dcgan import build_pair

    g, d = build_pair(z_dim=16, width=8, image_size=32, seed=seed)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.5, 0.999))
    return g, d, opt_g, opt_d


def _losses(out, what: str) -> tuple[float, float]:
    torch = _torch()
    if isinstance(out, dict):
        _expect("loss_d" in out and "loss_g" in out, f"{what} returned a dict without 'loss_d' and 'loss_g' "
                f"(keys: {list(out)})")
        out = (out["loss_d"], out["loss_g"])
    _expect(isinstance(out, (tuple, list)) and len(out) == 2,
            f"{what} should return (loss_d, loss_g), got {type(out).__name__}")
    return tuple(float(v.detach() if isinstance(v, torch.Tensor) else v) for v in out)


def _max_change(a, b) -> float:
    return max(float((p.detach() - q.detach()).abs().max()) for p, q in zip(a.parameters(), b.parameters()))


@_check("one training step", "D first: zero D's gradients, loss on D(real) and D(fake.detach()), backward, "
        "opt_d.step(); then G: zero G's gradients, loss on D(fake) (D already updated), backward, opt_g.step()")
def check_train_step(train_step) -> None:
    """Lesson 03: ``train_step(generator, discriminator, opt_g, opt_d, real, z) -> (loss_d, loss_g)``."""
    torch = _torch()
    from prodgen.engine.train import gan_step

    mine, ref = _tiny_gan(0), _tiny_gan(0)
    start = copy.deepcopy(mine[:2])
    gen = torch.Generator().manual_seed(3)
    for step in range(2):
        real = torch.rand(8, 3, 32, 32, generator=gen) * 2 - 1
        z = torch.randn(8, 16, generator=gen)
        got = _losses(train_step(*mine, real.clone(), z.clone()), "train_step")
        out = gan_step(*ref, real, z)
        want = (float(out["loss_d"]), float(out["loss_g"]))
        (g, d), (g_ref, d_ref) = mine[:2], ref[:2]
        if step == 0:
            _expect(_max_change(d, start[1]) > 0, "the discriminator's weights did not change: call opt_d.step()")
            _expect(_max_change(g, start[0]) > 0, "the generator's weights did not change: call opt_g.step()")
            _expect(_close(got[0], want[0], 1e-3), f"loss_d is {got[0]:.4f}, expected {want[0]:.4f}: use the "
                    "discriminator loss on D(real) and D(fake.detach()) from two separate calls "
                    "(one call on a mixed batch changes what batch norm sees)")
        _expect(_max_change(d, d_ref) < 1e-4, f"after step {step + 1} the discriminator's weights differ from the "
                "reference: zero D's gradients before backward, call D separately on real and on fake.detach() "
                "(one call on a mixed batch changes batch norm), and update only D in this part")
        _expect(_max_change(g, g_ref) < 1e-4, f"after step {step + 1} the generator's weights differ from the "
                "reference (the discriminator's match): zero G's gradients before backward, feed the fakes to the "
                "*updated* D, and use the non-saturating generator loss")
        _expect(_close(got[1], want[1], 1e-3), f"loss_g is {got[1]:.4f}, expected {want[1]:.4f}")
