"""Checks for lesson 10 (stabilising GANs): the WGAN-GP gradient penalty, the R1 penalty, an EMA update of the
generator's weights and a differentiable random translation (DiffAugment).

Each check builds small networks whose input gradient is known in closed form, so a wrong answer can be told
apart by *what* it got wrong (squared norm, missing ``create_graph``, penalty on the fakes, one ``e`` for the
whole batch, a shift that wraps around...). The checks use their own random state and leave torch's global
generator as they found it.
"""
from __future__ import annotations

import functools
import math

from prodgen.checks._core import _check, _expect, _torch

__all__ = ["check_ema_update", "check_gradient_penalty", "check_r1_penalty", "check_translate"]


# ------------------------------------------------------------------ shared
def _one_thread(fn):
    """Run a check on one thread: its tensors are tiny, and two threads only add hand-offs (slow on a busy CPU)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        torch = _torch()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return run


def _scalar_tensor(value, what: str):
    torch = _torch()
    _expect(isinstance(value, torch.Tensor), f"{what} should return a tensor (the loss adds it and backpropagates), "
            f"got {type(value).__name__}")
    _expect(value.numel() == 1, f"{what} should return one number (the mean over the batch), got a tensor of shape "
            f"{tuple(value.shape)}")
    got = float(value.detach())
    _expect(math.isfinite(got), f"{what} returned {got}")
    return value.reshape(()), got


def _close(a: float, b: float, rel: float = 1e-4) -> bool:
    return abs(a - b) <= rel * max(abs(b), 1e-8)


def _critic_class():
    """A critic ``D(x) = <w, x> + a/2 ||x||^2`` per image, whose input gradient is ``w + a x``; it records the
    inputs it is called with."""
    torch = _torch()

    class QuadraticCritic(torch.nn.Module):
        def __init__(self, shape, seed: int, w_scale: float, a: float):
            super().__init__()
            gen = torch.Generator().manual_seed(seed)
            self.w = torch.nn.Parameter(w_scale * torch.randn(shape, generator=gen))
            self.a = torch.nn.Parameter(torch.tensor(float(a)))
            self.calls = []

        def forward(self, x, *cond):
            self.calls.append((x.detach().clone(), bool(x.requires_grad)))
            flat = x.flatten(1)
            return flat @ self.w.flatten() + 0.5 * self.a * flat.pow(2).sum(dim=1)

        def reference_grads(self, points, form):
            """``(penalty, {name: d penalty / d param})`` of ``form(per-image gradient norms)`` at ``points``."""
            x = points.clone().requires_grad_(True)
            flat = x.flatten(1)
            scores = flat @ self.w.flatten() + 0.5 * self.a * flat.pow(2).sum(dim=1)
            (g,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
            value = form(g.flatten(1))
            w_grad, a_grad = torch.autograd.grad(value, [self.w, self.a])
            return float(value.detach()), {"w": w_grad, "a": a_grad}

    return QuadraticCritic


def _compare_param_grads(critic, want: dict, what: str) -> None:
    torch = _torch()
    got = {"w": critic.w.grad, "a": critic.a.grad}
    _expect(all(g is not None for g in got.values()), f"after {what}.backward() the discriminator's weights have no "
            "gradient: the penalty must stay differentiable with respect to D's weights (create_graph=True)")
    for name in ("w", "a"):
        _expect(torch.allclose(got[name], want[name], rtol=1e-3, atol=1e-5),
                "the penalty's gradient with respect to D's weights is wrong (it has the right value, so check "
                "that nothing in it is detached and that create_graph=True)")


def _gp(norms):
    return (norms - 1).pow(2).mean()


# ------------------------------------------------------------------ WGAN-GP
def _segment_positions(points, real, fake):
    """Per image: the ``e`` with ``point = e real + (1 - e) fake`` (least squares), how far the point is from that
    line, and per pixel ``(point - fake) / (real - fake)``."""
    r, f, p = real.flatten(1).double(), fake.flatten(1).double(), points.flatten(1).double()
    d = r - f
    e = ((p - f) * d).sum(1) / d.pow(2).sum(1)
    off = (p - (f + e[:, None] * d)).norm(dim=1) / d.norm(dim=1)
    safe = d.abs() > 0.05  # pixels where real and fake differ enough to read e off
    per_pixel = ((p - f) / d.where(safe, 1.0)).where(safe, 0.5)
    return e, off, per_pixel


def _input_gradients(critic, points):
    """The critic's input gradient at ``points``, one flattened row per image (no graph kept; the call is not
    counted among the student's calls)."""
    torch = _torch()
    x = points.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x)
    critic.calls.pop()
    return g.flatten(1)


@_check("gradient penalty", "e = torch.rand(N, 1, 1, 1); x_hat = (e * real + (1 - e) * fake).detach().requires_grad_"
        "(True); g, = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True); return "
        "((g.flatten(1).norm(dim=1) - 1) ** 2).mean()")
@_one_thread
def check_gradient_penalty(gradient_penalty) -> None:
    """Lesson 10: ``gradient_penalty(critic, real, fake) -> tensor``, WGAN-GP's E[(||grad D(x_hat)|| - 1)^2] at
    ``x_hat = e real + (1 - e) fake``, one ``e ~ U(0, 1)`` per image."""
    torch = _torch()
    n, shape = 64, (3, 4, 4)
    gen = torch.Generator().manual_seed(10)
    real = torch.rand(n, *shape, generator=gen) * 2 - 1
    g_weight = torch.nn.Parameter(torch.tensor(0.5))  # a stand-in generator: fake depends on it
    fake = g_weight * (torch.rand(n, *shape, generator=gen) * 2 - 1)
    real_copy, fake_copy = real.clone(), fake.detach().clone()
    critic = _critic_class()(shape, seed=11, w_scale=0.1, a=0.25)  # norms on both sides of 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12)
        out = gradient_penalty(critic, real, fake)
    value, got = _scalar_tensor(out, "gradient_penalty")
    _expect(torch.equal(real, real_copy) and torch.equal(fake.detach(), fake_copy),
            "your function changed the real or generated images it was given; build new tensors instead")
    _expect(critic.calls, "the critic was never called: evaluate it at the mixed images x_hat")
    on_line = None
    for points, _ in reversed(critic.calls):  # the last call on points of the segments is the penalty's
        if points.shape != real.shape:
            continue
        e, off, per_pixel = _segment_positions(points, real_copy, fake_copy)
        if float(off.max()) < 1e-4 and float(e.min()) > -1e-4 and float(e.max()) < 1 + 1e-4:
            on_line = (points, e)
            break
        spread = (per_pixel.max(1).values - per_pixel.min(1).values)
        if float(per_pixel.min()) > -1e-4 and float(per_pixel.max()) < 1 + 1e-4 and float(spread.min()) > 1e-3:
            _expect(False, "you drew a separate e for every pixel (torch.rand_like(real)): then x_hat is not on the "
                    "straight line between a real and a generated image; draw one e per image, torch.rand(N, 1, 1, 1)")
    _expect(on_line is not None, "the critic never saw points between the real and the generated images: the penalty "
            "is evaluated at x_hat = e * real + (1 - e) * fake, with e ~ U(0, 1)")
    points, e = on_line
    if float(e.min()) > 1 - 1e-4:
        _expect(False, "the penalty sits on the real images (e = 1): WGAN-GP puts it on random points between real and "
                "generated images, where the optimal critic has gradient norm 1")
    if float(e.max()) < 1e-4:
        _expect(False, "the penalty sits on the generated images (e = 0): "
                "WGAN-GP puts it on random points between real "
                "and generated images, where the optimal critic has gradient norm 1")
    _expect(float(e.std()) > 1e-3, f"every image got the same e ({float(e[0]):.3f}): draw one e per image, "
            "torch.rand(N, 1, 1, 1), so the points cover the whole segments")
    want, grads = critic.reference_grads(points, lambda g: _gp(g.norm(dim=1)))
    if not _close(got, want):
        g = _input_gradients(critic, points)
        norms = g.norm(dim=1)
        wrong = {
            "use the norm, not the squared norm: (||g|| - 1) ** 2 with ||g|| = g.flatten(1).norm(dim=1)":
                float(((norms.pow(2) - 1) ** 2).mean()),
            "the penalty is two-sided, (||g|| - 1) ** 2: it also pulls norms below 1 up (max(0, ||g|| - 1) ** 2 is a "
            "different, one-sided penalty)": float(torch.relu(norms - 1).pow(2).mean()),
            "subtract the target norm 1 before squaring: (||g|| - 1) ** 2, not ||g|| ** 2": float(norms.pow(2).mean()),
            "take one gradient norm per image (g.flatten(1).norm(dim=1)), not the norm of the whole batch's gradient":
                float((g.norm() - 1) ** 2),
            "average over the batch (.mean()), not the sum": float(_gp(norms) * len(norms)),
            "differentiate the SUM of the scores: each score depends only on its own image, and .mean() divides every "
            "gradient by N": float(_gp(norms / len(norms))),
            "return the penalty without its weight: the caller multiplies it by lambda = 10": float(10 * _gp(norms)),
        }
        for message, value_wrong in wrong.items():
            if _close(got, value_wrong):
                _expect(False, message)
        _expect(False, f"at the points your code chose the penalty is {want:.5f}, got {got:.5f}")
    _expect(value.requires_grad, "the penalty has no gradient with respect to D's weights, so it cannot train D: pass "
            "create_graph=True to torch.autograd.grad, which makes the gradient itself differentiable")
    value.backward()
    _expect(g_weight.grad is None or float(g_weight.grad.abs()) == 0.0,
            "the penalty also sends gradients into the generator: detach the images before mixing them "
            "((e * real + (1 - e) * fake).detach()), the penalty trains D only")
    _compare_param_grads(critic, grads, "gradient_penalty")


# ------------------------------------------------------------------ R1
@_check("R1 penalty", "x = real.detach().requires_grad_(True); g, = torch.autograd.grad(discriminator(x).sum(), x, "
        "create_graph=True); return g.flatten(1).pow(2).sum(dim=1).mean()")
@_one_thread
def check_r1_penalty(r1_penalty) -> None:
    """Lesson 10: ``r1_penalty(discriminator, real) -> tensor``, E[||grad_x D(x)||^2] on real images."""
    torch = _torch()
    n, shape = 32, (3, 4, 4)
    gen = torch.Generator().manual_seed(20)
    real = torch.rand(n, *shape, generator=gen) * 2 - 1
    real_copy = real.clone()
    critic = _critic_class()(shape, seed=21, w_scale=0.2, a=0.5)
    value, got = _scalar_tensor(r1_penalty(critic, real), "r1_penalty")
    _expect(torch.equal(real.detach(), real_copy), "your function changed the real images it was given")
    _expect(any(torch.equal(points, real_copy) for points, _ in critic.calls),
            "the discriminator was never called on the real images: R1 penalises D's gradient at the data")
    want, grads = critic.reference_grads(real_copy, lambda g: g.pow(2).sum(dim=1).mean())
    if not _close(got, want):
        g = _input_gradients(critic, real_copy)
        norms = g.norm(dim=1)
        wrong = {
            "R1 is the SQUARED gradient norm, ||g|| ** 2 (its gradient vanishes smoothly at 0), not ||g||":
                float(norms.mean()),
            "that is WGAN-GP's (||g|| - 1) ** 2; R1 is zero-centred: ||g|| ** 2, it wants D flat on the data":
                float(((norms - 1) ** 2).mean()),
            "sum the squares over each image's pixels (g.flatten(1).pow(2).sum(dim=1)) and then average over the "
            "images; g.pow(2).mean() also divides by the number of pixels": float(g.pow(2).mean()),
            "average over the batch (.mean()), not the sum": float(norms.pow(2).sum()),
            "differentiate the SUM of the scores: each score depends only on its own image, and .mean() divides every "
            "gradient by N": float((norms / n).pow(2).mean()),
        }
        for factor in (0.5, 5.0, 10.0):
            wrong[f"return the plain penalty E||g||^2; the weight (gamma / 2) is applied by the training loop"
                  f" (yours is {factor:g} times too large)"] = factor * float(norms.pow(2).mean())
        for message, value_wrong in wrong.items():
            if _close(got, value_wrong):
                _expect(False, message)
        _expect(False, f"for D(x) = <w, x> + a/2 ||x||^2 (gradient w + a x) on {n} images the penalty is {want:.5f}, "
                f"got {got:.5f}")
    _expect(value.requires_grad, "the penalty has no gradient with respect to D's weights, so it cannot train D: pass "
            "create_graph=True to torch.autograd.grad, which makes the gradient itself differentiable")
    value.backward()
    _compare_param_grads(critic, grads, "r1_penalty")


# ------------------------------------------------------------------ EMA
def _tiny_nets(seed: int):
    torch = _torch()
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    net.train()
    net(torch.randn(8, 3))  # batch norm collects statistics: buffers differ from their start
    return net


def _params(net) -> list:
    return [p.detach().clone() for p in net.parameters()]


def _buffers(net) -> list:
    return [b.detach().clone() for b in net.buffers()]


def _same(a, b, tol: float = 1e-6) -> bool:
    torch = _torch()
    return all(torch.allclose(x.double(), y.double(), rtol=tol, atol=tol) for x, y in zip(a, b))


@_check("EMA update", "with torch.no_grad(): for p_ema, p in zip(ema.parameters(), model.parameters()): "
        "p_ema.mul_(decay).add_(p, alpha=1 - decay) (or p_ema.lerp_(p, 1 - decay)); then copy the buffers: "
        "b_ema.copy_(b) for the pairs of ema.buffers(), model.buffers()")
@_one_thread
def check_ema_update(ema_update) -> None:
    """Lesson 10: ``ema_update(ema, model, decay)`` updates ``ema`` in place: ``ema <- decay ema + (1 - decay) model``
    for the weights, the buffers (batch-norm statistics) copied."""
    torch = _torch()
    with torch.random.fork_rng(devices=[]):
        model, ema = _tiny_nets(30), _tiny_nets(31)
    old, new, model_before = _params(ema), _params(model), _params(model)
    old_buffers, new_buffers = _buffers(ema), _buffers(model)
    decay = 0.9
    ema_update(ema, model, decay)
    got = _params(ema)
    _expect(_same(_params(model), model_before) and _same(_buffers(model), new_buffers),
            "your update changed the training model: only the average (ema) may change")
    if _same(got, old):
        _expect(False, "the average did not change: update ema's own tensors in place "
                "(p_ema.mul_(decay).add_(p, alpha=1 - "
                "decay) or p_ema.lerp_(p, 1 - decay)); `p_ema = ...` only rebinds a loop variable")
    want = [decay * o + (1 - decay) * m for o, m in zip(old, new)]
    if not _same(got, want, 1e-5):
        if _same(got, [(1 - decay) * o + decay * m for o, m in zip(old, new)], 1e-5):
            _expect(False, "the weights are swapped: decay (0.9) multiplies the OLD average and 1 - decay the model's "
                    "weights, so the average moves only a little each step")
        if _same(got, new):
            _expect(False, "the average became a copy of the model: keep decay x the old average and add (1 - decay) x "
                    "the model's weights")
        _expect(False, f"with decay {decay} every weight should become 0.9 x the average's + 0.1 x the model's; the "
                "first weights are wrong")
    _expect(all(not p.requires_grad or p.grad_fn is None for p in ema.parameters()),
            "the average's weights now carry an autograd history: do the update under torch.no_grad()")
    buffers = _buffers(ema)
    averaged = [decay * o + (1 - decay) * m if o.is_floating_point() else m for o, m in zip(old_buffers, new_buffers)]
    _expect(_same(buffers, new_buffers) or _same(buffers, averaged, 1e-5),
            "the batch-norm statistics (ema.buffers(): running mean and variance) were left as they were: copy them "
            "from the model, b_ema.copy_(b)")
    for _ in range(20):
        ema_update(ema, model, 0.5)
    gap = max(float((a - b).abs().max()) for a, b in zip(_params(ema), new))
    start_gap = max(float((a - b).abs().max()) for a, b in zip(got, new))
    _expect(gap <= start_gap * 0.5 ** 20 * 1.01 + 1e-6, f"after 20 more updates with decay 0.5 the average should be "
            f"within {start_gap * 0.5 ** 20:.2e} of the unchanging model (the gap halves each time); it is {gap:.2e}")


# ------------------------------------------------------------------ DiffAugment: translation
def _shift(x, dy: int, dx: int, wrap: bool = False):
    """One image (C x H x W) moved down by dy and right by dx, zeros (or wrap-around) where nothing lands."""
    torch = _torch()
    if wrap:
        return torch.roll(x, shifts=(dy, dx), dims=(1, 2))
    _, h, w = x.shape
    out = torch.zeros_like(x)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, yd, xd] = x[:, ys, xs]
    return out


def _found_shift(out, x):
    """The (dy, dx) by which the centre pixel of ``x`` (C x H x W, all values distinct) moved in ``out``, or None."""
    torch = _torch()
    _, h, w = x.shape
    where = torch.nonzero(out[0] == x[0, h // 2, w // 2])
    return None if len(where) != 1 else (int(where[0, 0]) - h // 2, int(where[0, 1]) - w // 2)


@_check("random translation", "s = int(ratio * size + 0.5); pad with F.pad(x, (s, s, s, s)) (zeros), draw dy, dx = "
        "torch.randint(-s, s + 1, (N,)) and cut each image's window padded[i, :, s + dy : s + dy + H, s + dx : s + dx "
        "+ W] (a loop and torch.stack is fine): slicing is differentiable")
@_one_thread
def check_translate(translate) -> None:
    """Lesson 10: ``translate(x, ratio) -> tensor``, every image of ``x`` (N x C x H x W) moved by its own random
    whole number of pixels in [-s, s] along each axis, ``s = round(ratio * size)``, zeros where nothing lands,
    differentiable in ``x``."""
    torch = _torch()
    n, c, h, w, ratio = 200, 3, 8, 8, 0.25
    s = int(h * ratio + 0.5)
    x = (torch.arange(n * c * h * w, dtype=torch.float32).reshape(n, c, h, w) + 1) / (n * c * h * w)  # all distinct
    x = x.requires_grad_(True)
    x_copy = x.detach().clone()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(40)
        out = translate(x, ratio)
    _expect(isinstance(out, torch.Tensor), f"translate should return a tensor, got {type(out).__name__}")
    _expect(tuple(out.shape) == (n, c, h, w), f"the output must have the input's shape {(n, c, h, w)}, got "
            f"{tuple(out.shape)}")
    _expect(torch.equal(x.detach(), x_copy), "your function changed its input in place: the same real images are used "
            "again, build a new tensor")
    _expect(out.requires_grad and out.grad_fn is not None,
            "the output is cut off from the input's gradient: "
            "the augmentation must be differentiable (torch operations "
            "on x: padding, slicing, indexing), so the generator learns through it; "
            "no .detach(), numpy or torch.tensor()")
    shifts = []
    for i in range(n):
        image, found = out[i].detach(), _found_shift(out[i].detach(), x_copy[i])
        if found is not None and not torch.equal(image, _shift(x_copy[i], *found)):
            if torch.equal(image, _shift(x_copy[i], *found, wrap=True)):
                _expect(False, "torch.roll wraps the pixels that leave one side around to the other: the uncovered "
                        "border must be zeros (pad with zeros, then cut a window)")
            found = None
        shifts.append(found)
    far = [(i, f) for i, f in enumerate(shifts) if f is not None and max(abs(f[0]), abs(f[1])) > s]
    _expect(not far, f"image {far[0][0] if far else 0} moved by {far[0][1] if far else 0}, further than s = {s} "
            f"pixels (ratio {ratio} of size {h})")
    lost = [i for i, f in enumerate(shifts) if f is None]
    _expect(not lost, f"image {lost[0] if lost else 0} of the output is not the input image moved by whole pixels "
            "with zeros around (all channels together, nothing else changed: colour is an attribute the model must "
            "control)")
    distinct = set(shifts)
    _expect(len(distinct) > 1, f"every image moved by the same {shifts[0]}: draw one shift per image, so real and "
            "generated images are augmented independently")
    dys, dxs = {d for d, _ in shifts}, {d for _, d in shifts}
    _expect(dys == set(range(-s, s + 1)) and dxs == set(range(-s, s + 1)),
            f"over {n} images the vertical shifts were {sorted(dys)} and the horizontal {sorted(dxs)}; "
            f"each should take every whole value from -{s} to {s} (torch.randint(-s, s + 1, ...))")
    out.sum().backward()
    mask = torch.stack([_shift(torch.ones(c, h, w), -dy, -dx) for dy, dx in shifts])  # pixels that land in the output
    _expect(x.grad is not None and torch.equal(x.grad, mask),
            "the gradient that reaches the input is wrong: each input pixel that lands in the output should get "
            "gradient 1, pixels pushed out 0")
