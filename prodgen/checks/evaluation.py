"""Checks for lesson 08 (evaluation): the unbiased KID, coverage, the within-request diversity ratio."""
from __future__ import annotations

import math

from prodgen.checks._core import _check, _expect, _torch

__all__ = ["check_kid", "check_coverage", "check_diversity_ratio"]


def _number(value, what: str) -> float:
    torch = _torch()
    if isinstance(value, torch.Tensor):
        _expect(value.numel() == 1, f"{what} should return one number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    _expect(isinstance(value, (int, float)) and not isinstance(value, bool),
            f"{what} should return one number (a float), got {type(value).__name__}")
    _expect(math.isfinite(value), f"{what} returned {value}")
    return float(value)


def _close(a: float, b: float, rel: float = 1e-6) -> bool:
    return abs(a - b) <= rel * max(abs(b), 1e-12)


def _features(seed: int, n: int, d: int, shift: float = 0.0, scale: float = 1.0):
    torch = _torch()
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen, dtype=torch.float64) * scale + shift


# ------------------------------------------------------------------ KID
def _mmd_terms(x, y, power: int = 3, divide: bool = True):
    d = x.shape[1] if divide else 1
    kxx, kyy, kxy = ((x @ x.T / d + 1) ** power, (y @ y.T / d + 1) ** power, (x @ y.T / d + 1) ** power)
    return kxx, kyy, kxy


def _unbiased(kxx, kyy, kxy) -> float:
    m, n = len(kxx), len(kyy)
    return float((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
                 - 2 * kxy.mean())


@_check("unbiased KID", "k = (x @ y.T / d + 1) ** 3 for each pair of sets; for k(x, x) and k(y, y) subtract the "
        "diagonal from the sum and divide by m (m - 1); return kxx_term + kyy_term - 2 * kxy.mean()")
def check_kid(kid_unbiased) -> None:
    """Lesson 08: ``kid_unbiased(x m x d, y n x d) -> float``, the unbiased MMD² with k(a, b) = (a·b/d + 1)³."""
    x, y = _features(0, 30, 6), _features(1, 24, 6, shift=0.4, scale=1.3)
    got = _number(kid_unbiased(x.clone(), y.clone()), "kid_unbiased")
    want = _unbiased(*_mmd_terms(x, y))
    kxx, kyy, kxy = _mmd_terms(x, y)
    biased = float(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    if _close(got, biased, 1e-4):
        _expect(False, "this is the biased estimate: k(x_i, x_i) on the diagonal is not a pair of two different "
                f"samples; leave it out and divide by m (m - 1) (expected {want:.6f}, got {got:.6f})")
    if _close(got, _unbiased(*_mmd_terms(x, y, divide=False)), 1e-4):
        _expect(False, "divide the dot product by the feature dimension d before adding 1: k = (x·y / d + 1)³")
    for power in (1, 2):
        if _close(got, _unbiased(*_mmd_terms(x, y, power=power)), 1e-4):
            _expect(False, f"the kernel is cubic: (x·y / d + 1) ** 3, not ** {power}")
    m, n = len(x), len(y)
    one_size = float((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
                     + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
                     - 2 * kxy.mean())
    if _close(got, one_size, 1e-4):
        _expect(False, f"the two sets may differ in size (here {m} and {n}): normalise the y-term by n (n - 1)")
    _expect(_close(got, want, 1e-6), f"for two small random sets the unbiased MMD² is {want:.6f}, got {got:.6f}")
    same = _features(2, 40, 5)
    got_same = _number(kid_unbiased(same.clone(), same.clone()), "kid_unbiased")
    want_same = _unbiased(*_mmd_terms(same, same))
    _expect(_close(got_same, want_same, 1e-6), f"with two identical sets of 40 samples the unbiased MMD² is "
            f"{want_same:.6f} (not 0: the cross term keeps the diagonal), got {got_same:.6f}")
    got_sizes = _number(kid_unbiased(x[:10].clone(), y.clone()), "kid_unbiased")
    want_sizes = _unbiased(*_mmd_terms(x[:10], y))
    _expect(_close(got_sizes, want_sizes, 1e-6), f"with 10 and 24 samples the result should be {want_sizes:.6f}, got "
            f"{got_sizes:.6f}: normalise the x-term by m (m - 1), the y-term by n (n - 1), the cross term by m n")


# ------------------------------------------------------------------ coverage
def _coverage(real, fake, k: int, own: str = "real", plus_one: bool = True, strict: bool = True) -> float:
    torch = _torch()
    balls = real if own == "real" else fake
    others = fake if own == "real" else real
    radii = torch.cdist(balls, balls).kthvalue(k + 1 if plus_one else k, dim=1).values
    nearest = torch.cdist(balls, others).min(dim=1).values
    return float((nearest < radii if strict else nearest <= radii).double().mean())


@_check("coverage", "radii = torch.cdist(real, real).kthvalue(k + 1, dim=1).values (k + 1: each real point is its own "
        "nearest neighbour); then the share of real points whose nearest fake is closer than their radius")
def check_coverage(coverage) -> None:
    """Lesson 08: ``coverage(real N x d, fake M x d, k) -> float``, Naeem et al.'s coverage."""
    torch = _torch()
    real = _features(3, 60, 2)
    fake = torch.cat([_features(4, 30, 2, scale=0.5), _features(5, 10, 2, shift=3.0)])
    got = _number(coverage(real.clone(), fake.clone(), 3), "coverage")
    want = _coverage(real, fake, 3)
    _expect(0 <= got <= 1, f"coverage is a share of real samples, between 0 and 1; got {got}")
    if not _close(got, want, 1e-9) and _close(got, _coverage(real, fake, 3, own="fake"), 1e-9):
        _expect(False, "the balls belong to the REAL samples (each real sample's k-NN radius among the real ones); "
                "coverage asks how many of them hold at least one generated sample")
    if not _close(got, want, 1e-9) and _close(got, _coverage(real, fake, 3, plus_one=False), 1e-9):
        _expect(False, "the distance of a real point to itself (0) is the smallest in its row: the k-th nearest "
                "OTHER point is kthvalue(k + 1)")
    _expect(_close(got, want, 1e-9), f"with 60 real and 40 generated points (k = 3) the coverage is {want:.4f}, "
            f"got {got:.4f}")
    wide = _features(6, 200, 2, scale=0.2)  # generated samples crowded at the centre: most outer balls are empty
    got = _number(coverage(real.clone(), wide.clone(), 5), "coverage")
    want = _coverage(real, wide, 5)
    _expect(_close(got, want, 1e-9), f"with 200 samples crowded at the centre (k = 5) the coverage is {want:.4f}, "
            f"got {got:.4f}")


# ------------------------------------------------------------------ diversity ratio
def _groups_data():
    torch = _torch()
    gen = torch.Generator().manual_seed(7)
    centres = torch.randn(5, 4, generator=gen, dtype=torch.float64) * 4
    fake_groups = torch.arange(5).repeat_interleave(6)  # six images per request
    real_sizes = torch.tensor([2, 3, 5, 8, 4])  # real photos per attribute combination differ
    real_groups = torch.arange(5).repeat_interleave(real_sizes)
    fake = centres[fake_groups] + 0.6 * torch.randn(len(fake_groups), 4, generator=gen, dtype=torch.float64)
    real = centres[real_groups] + torch.randn(len(real_groups), 4, generator=gen, dtype=torch.float64)
    order = torch.randperm(len(real_groups), generator=gen)  # groups are not stored in blocks
    return fake, fake_groups, real[order], real_groups[order]


def _spread(features, groups, diagonal: bool = False, squared: bool = False, pooled: bool = False) -> float:
    torch = _torch()
    per, total, pairs = [], 0.0, 0
    for g in torch.unique(groups):
        f = features[groups == g]
        d = torch.cdist(f, f) ** (2 if squared else 1)
        m = len(f)
        s, count = float(d.sum()), (m * m if diagonal else m * (m - 1))
        per.append(s / count)
        total, pairs = total + s, pairs + count
    return total / pairs if pooled else sum(per) / len(per)


@_check("diversity ratio", "for each group id g: f = features[groups == g]; its spread is torch.pdist(f).mean() "
        "(each pair once, no zero self-distances); average the spreads over the groups, then divide fake by real")
def check_diversity_ratio(diversity_ratio) -> None:
    """Lesson 08: ``diversity_ratio(fake, fake_groups, real, real_groups) -> float`` (the same groups in both)."""
    fake, fg, real, rg = _groups_data()
    got = _number(diversity_ratio(fake.clone(), fg.clone(), real.clone(), rg.clone()), "diversity_ratio")
    want = _spread(fake, fg) / _spread(real, rg)
    if not _close(got, want, 1e-6):
        wrong = {
            "the zero distances of each image to itself are in the average: use only pairs of two different "
            "samples (torch.pdist, or the off-diagonal of cdist divided by m (m - 1))":
                _spread(fake, fg, diagonal=True) / _spread(real, rg, diagonal=True),
            "use plain Euclidean distances, not squared ones": _spread(fake, fg, squared=True) / _spread(real, rg,
                                                                                                       squared=True),
            "average each group's spread first, then over groups (pooling all pairs lets big groups dominate)":
                _spread(fake, fg, pooled=True) / _spread(real, rg, pooled=True),
            "the ratio is generated over real (1.0 = as varied as real photos), not the other way round":
                _spread(real, rg) / _spread(fake, fg),
        }
        for message, value in wrong.items():
            if _close(got, value, 1e-6):
                _expect(False, message)
        _expect(False, f"for 5 requests (6 generated images each, 2 to 8 real photos) the ratio is {want:.4f}, "
                f"got {got:.4f}")
    torch = _torch()
    copies = fake[fg * 6] + 1e-6 * torch.arange(len(fg), dtype=torch.float64)[:, None]  # one look per request
    got = _number(diversity_ratio(copies, fg.clone(), real.clone(), rg.clone()), "diversity_ratio")
    _expect(got < 1e-4, f"six copies of one image per request have (almost) no spread: the ratio should be ~0, "
            f"got {got:.4f}")
