"""Metrics that say how good generated products are, all measured with the judge.

- **FID on judge features**: the Fréchet distance between Gaussians fitted to the judge's
  256-d features of real and generated images (statistics in float64, matrix square
  root through symmetric eigendecompositions). Always reported with its **floor**, the
  FID between two sets of *real* images (train vs test): no model can beat that.
- **Precision and recall** (Kynkäänniemi et al., 2019, k = 3): how many samples fall
  inside the real data's manifold, and how much of the real manifold the samples cover.
- **Attribute histogram distance**: for unconditional models, how far the judge's
  attribute histograms of samples are from the real ones (total variation, 0..1).
- **Control accuracy**: for conditional models, how often the judge sees the attribute
  that was asked for.

Lesson 08 (evaluation) adds the rest of an honest evaluation:

- **KID** (Bińkowski et al., 2018): the unbiased MMD² with a cubic polynomial kernel.
- **Density and coverage** (Naeem et al., 2020): precision/recall that outliers cannot fool.
- **FID∞** (Chong & Forsyth, 2020): FID extrapolated to infinitely many samples.
- **Intervals**: bootstrap intervals for FID and for control accuracy.
- **Within-request diversity**: how varied the images for one fully specified request are,
  against real photos with the same attributes.
- **Memorisation**: how close samples sit to their nearest training photo, against new real photos.
- **Linear probe**: how much of the attributes a frozen feature space carries (the SSL encoder's, lessons 08, 13).

Every metric checks its features first (``as_features``): NaN, wrong shapes, mismatched
dimensions or too few samples raise a one-line ``ValueError``.

Used by lessons 03+ (and 08 in depth), ``prodgen evaluate`` and ``prodgen leaderboard``.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "gaussian_stats",
    "frechet_distance",
    "fid",
    "precision_recall",
    "attribute_histograms",
    "histogram_distance",
    "control_accuracy",
    "describe_control",
    "judge_features",
    "sample_images",
    "evaluate_generator",
    "image_quality",
    "as_features",
    "kid",
    "density_coverage",
    "fid_infinity",
    "fid_interval",
    "control_hits",
    "accuracy_interval",
    "group_spread",
    "diversity_ratio",
    "nearest_distances",
    "memorisation_ratio",
    "linear_probe",
]


def judge_features(judge, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Judge features (N x 256) of images given as uint8 or as floats in [-1, 1]."""
    from prodgen.catalog.dataset import normalize

    x = normalize(images) if images.dtype == torch.uint8 else images.float()
    return judge.embed(x.contiguous(memory_format=torch.channels_last), batch_size=batch_size)


class _one_thread:
    """Run torch on one thread inside the block. The FID's matrices are small (256 x 256, or 2,000 x 256):
    one thread is about as fast as two on a quiet machine and 10-100x faster on a busy one, where
    multithreaded BLAS/LAPACK spin while they wait for a core."""

    def __enter__(self):
        self.old = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of N x D features."""
    f = as_features(features)
    with _one_thread():
        mu = f.mean(dim=0)
        centred = f - mu
        cov = centred.T @ centred / (len(f) - 1)
    return mu.numpy(), cov.numpy()


def _eigh(a, vectors: bool = True):
    """Eigen-decomposition of the symmetric part of ``a`` (float64 tensors)."""
    a = (a + a.T) / 2
    return torch.linalg.eigh(a) if vectors else torch.linalg.eigvalsh(a)


def _sqrt_psd(a) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (tiny negative eigenvalues clipped)."""
    with _one_thread():
        w, v = _eigh(torch.as_tensor(np.asarray(a, np.float64)))
        return ((v * w.clamp(min=0).sqrt()) @ v.T).numpy()


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), the Fréchet distance of two Gaussians.

    Tr((S1 S2)^1/2) equals Tr((S1^1/2 S2 S1^1/2)^1/2) because both matrices have the same
    eigenvalues, and the second one is symmetric, so ``eigvalsh`` gives them stably.
    """
    s1 = np.asarray(sigma1, np.float64)
    return _frechet_from_root(mu1, s1, _sqrt_psd(s1), mu2, sigma2)


def _frechet_from_root(mu1, s1, root1, mu2, sigma2) -> float:
    """``frechet_distance`` with S1^1/2 already computed (bootstraps against one fixed reference)."""
    t = [torch.as_tensor(np.asarray(v, np.float64)) for v in (mu1, s1, root1, mu2, sigma2)]
    mu1, s1, root1, mu2, s2 = t
    with _one_thread():
        middle = root1 @ s2 @ root1
        trace_sqrt = _eigh(middle, vectors=False).clamp(min=0).sqrt().sum()
        return float(((mu1 - mu2) ** 2).sum() + s1.trace() + s2.trace() - 2 * trace_sqrt)


def fid(features_a, features_b) -> float:
    """FID between two sets of features (N x D each)."""
    a, b = _pair(features_a, features_b, "features_a", "features_b")
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def _kth_neighbour_radius(x: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point in the same set."""
    radii = []
    for s in range(0, len(x), chunk):
        d = torch.cdist(x[s:s + chunk], x)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # +1: the point itself is at distance 0
    return torch.cat(radii)


def _covered(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """For each point: does it lie inside at least one centre's ball?"""
    out = []
    for s in range(0, len(points), chunk):
        d = torch.cdist(points[s:s + chunk], centres)
        out.append((d <= radii[None, :]).any(dim=1))
    return torch.cat(out)


def precision_recall(real_features, fake_features, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019) with k-NN balls."""
    real, fake = _pair(real_features, fake_features)
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"need more than k={k} real and generated samples, got {len(real)} and {len(fake)}")
    precision = _covered(fake, real, _kth_neighbour_radius(real, k)).double().mean().item()
    recall = _covered(real, fake, _kth_neighbour_radius(fake, k)).double().mean().item()
    return precision, recall


def attribute_histograms(predictions: torch.Tensor, num_classes: dict[str, int]) -> dict[str, np.ndarray]:
    """Share of each value per attribute, from class indices N x A (e.g. ``Judge.predict``), columns in the
    order of ``num_classes``."""
    return {a: np.bincount(predictions[:, j].cpu().numpy(), minlength=k) / len(predictions)
            for j, (a, k) in enumerate(num_classes.items())}


def histogram_distance(hist_a: dict, hist_b: dict) -> dict[str, float]:
    """Total variation distance per attribute (0 = same histogram, 1 = disjoint), plus their mean."""
    d = {a: 0.5 * float(np.abs(hist_a[a] - hist_b[a]).sum()) for a in hist_a}
    d["mean"] = float(np.mean(list(d.values())))
    return d


def control_hits(judge, images: torch.Tensor, requested: torch.Tensor) -> torch.Tensor:
    """Per image and attribute: 1.0 if the judge sees the requested value, 0.0 if not, NaN if the
    attribute was not requested (-1). N x A float64, one column per judge head (the judge's schema: 5
    for the course catalog); the raw material of ``control_accuracy`` and ``accuracy_interval`` (lesson 08)."""
    requested = torch.as_tensor(requested)
    a = len(judge.heads)
    if requested.ndim != 2 or requested.shape[1] != a or len(requested) != len(images):
        raise ValueError(f"requested must be an N x {a} array of class indices (-1 = not asked; columns "
                         f"{', '.join(judge.heads)}) for the {len(images)} images, got shape {tuple(requested.shape)}")
    pred = judge.predict(_judge_input(images))
    hits = (pred == requested).double()
    hits[requested < 0] = float("nan")
    return hits


def control_accuracy(judge, images: torch.Tensor, requested: torch.Tensor) -> dict[str, float]:
    """How often the judge sees the requested value, per attribute (-1 = not requested, skipped)."""
    hits = control_hits(judge, images, requested)
    acc = {}
    for j, a in enumerate(judge.heads):
        asked = ~hits[:, j].isnan()
        if asked.any():
            acc[a] = float(hits[asked, j].mean())
    acc["mean"] = float(np.mean(list(acc.values()))) if acc else float("nan")
    return acc


def describe_control(acc: dict, chance: dict | None = None, most: float = 0.8) -> str:
    """One sentence in words chosen from the numbers of :func:`control_accuracy`, so a lesson's text about a live
    run says what *this* run reached (lessons 05, 07, 10, 11, 12). Attributes at or above ``most`` are "read in
    most photos"; those within 0.1 of their ``chance`` level (or below 0.3 without one) "hardly above chance";
    the rest "partly"."""
    names = [a for a in acc if a != "mean"]
    if not names or not 0.0 < most <= 1.0:
        raise ValueError("acc must be control_accuracy's dict (attributes and 'mean'); most in (0, 1]")
    groups = {"most": [], "partly": [], "hardly": []}
    for a in names:
        low = (chance[a] + 0.1) if chance and a in chance else 0.3
        groups["most" if acc[a] >= most else "hardly" if acc[a] <= low else "partly"].append(f"{a} {acc[a]:.0%}")
    words = {"most": f"read in most photos (>= {most:.0%})", "partly": "only partly", "hardly": "hardly above chance"}
    said = "; ".join(f"{', '.join(v)}: {words[k]}" for k, v in groups.items() if v)
    base = f" (chance {chance['mean']:.0%})" if chance and "mean" in chance else ""
    return f"{acc.get('mean', float(np.mean([acc[a] for a in names]))):.0%} mean control{base}. {said}."


# ------------------------------------------------------------ whole evaluations
def sample_images(model, n: int, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """``n`` images in [-1, 1] from a GAN generator network (``model(z)`` with ``z ~ N(0, I)`` of ``model.z_dim``
    columns, drawn ``batch_size`` rows at a time from one generator seeded with ``seed``; ``dcgan.save_checkpoint``).
    Any other model: its protocol ``ImageModel.generate`` (``prodgen.models.protocol``), e.g. ``VAEImageModel(vae)``.
    """
    gen = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            out.append(model(torch.randn(m, model.z_dim, generator=gen)).float().cpu())
    return torch.cat(out)


def real_reference(n: int = 2000, size: int = 32):
    """Judge-ready real sets: ``n`` training images (the reference) and ``n`` test images, ``size`` px."""
    from prodgen.catalog import load_catalog

    return (load_catalog("train", size=size, progress=False).images[:n],
            load_catalog("test", size=size, progress=False).images[:n])


def image_quality(judge, images: torch.Tensor, n: int = 2000) -> dict:
    """FID of ``images`` against ``n`` training photos, its floor (``n`` test photos against the same
    reference), and precision/recall (k = 3): the image-quality half of every model's evaluation. The real photos
    are taken at the images' size (64 px for lesson 14's models, with the 64 px judge)."""
    train_imgs, test_imgs = real_reference(n, images.shape[-1])
    ref = judge_features(judge, train_imgs)
    fake = judge_features(judge, images)
    precision, recall = precision_recall(ref, fake)
    return {"fid": round(fid(ref, fake), 3), "fid_floor": round(fid(ref, judge_features(judge, test_imgs)), 3),
            "precision": round(precision, 4), "recall": round(recall, 4)}


def evaluate_generator(model, judge, n: int = 2000, seed: int = 0) -> dict:
    """FID (with its real-vs-real floor), precision/recall and attribute-histogram distance of ``n`` samples."""
    train_imgs, _ = real_reference(n)
    samples = sample_images(model, n, seed)
    num_classes = judge.num_classes
    real_hist = attribute_histograms(judge.predict(_judge_input(train_imgs)), num_classes)
    fake_hist = attribute_histograms(judge.predict(_judge_input(samples)), num_classes)
    return {
        "n": n,
        **image_quality(judge, samples, n),
        "histogram_distance": {k: round(v, 4) for k, v in histogram_distance(real_hist, fake_hist).items()},
    }


def _judge_input(images: torch.Tensor) -> torch.Tensor:
    from prodgen.catalog.dataset import normalize

    x = normalize(images) if images.dtype == torch.uint8 else images.float()
    return x.contiguous(memory_format=torch.channels_last)


# ------------------------------------------------------------ input checks (lesson 08)
def as_features(features, name: str = "features", min_samples: int = 2) -> torch.Tensor:
    """``features`` as an N x D float64 CPU tensor, or a one-line ``ValueError`` saying what is wrong.

    Checked: a 2-D numeric array, at least ``min_samples`` rows, only finite numbers. Every metric
    of this module calls it (lesson 08 shows why a NaN must never reach an FID silently).
    """
    try:
        f = torch.as_tensor(features.detach().cpu() if isinstance(features, torch.Tensor) else np.asarray(features))
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be an N x D array of numbers, got {type(features).__name__}") from None
    integer = (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64)
    if f.dtype == torch.bool or f.is_complex() or not (f.is_floating_point() or f.dtype in integer):
        raise ValueError(f"{name} must be an N x D array of real numbers, got dtype {f.dtype}")
    if f.ndim != 2:
        raise ValueError(f"{name} must be an N x D array of features (N samples, D dimensions), "
                         f"got shape {tuple(f.shape)}")
    if f.shape[1] < 1:
        raise ValueError(f"{name} has no feature dimensions (shape {tuple(f.shape)}); D must be at least 1")
    if len(f) < min_samples:
        raise ValueError(f"{name} has {len(f)} samples (N = {len(f)}); this metric needs N >= {min_samples}")
    f = f.to(torch.float64)
    bad = f.numel() - int(np.isfinite(f.numpy()).sum())  # numpy: one thread, fast on a busy machine too
    if bad:
        raise ValueError(f"{name} holds {bad} NaN or infinite values; features must be finite numbers")
    return f


def _pair(real_features, fake_features, real_name: str = "real_features", fake_name: str = "fake_features",
          min_real: int = 2, min_fake: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets checked by ``as_features`` and of the same feature dimension."""
    real = as_features(real_features, real_name, min_real)
    fake = as_features(fake_features, fake_name, min_fake)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"{real_name} and {fake_name} have different feature dimensions ({real.shape[1]} vs "
                         f"{fake.shape[1]}); both must come from the same feature extractor")
    return real, fake


def _check_level(level: float, rounds: int) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), got {level}")
    if int(rounds) != rounds or rounds < 2:
        raise ValueError(f"rounds must be a whole number >= 2, got {rounds}")


# ------------------------------------------------------------ KID
def _poly_kernel_products(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """K(a, b) @ weights for the kernel k(x, y) = (x·y / d + 1)³, without keeping K (rows in chunks)."""
    d = a.shape[1]
    chunk = max(1, 4_000_000 // len(b))  # at most ~32 MB of kernel values at a time
    out = []
    for s in range(0, len(a), chunk):
        out.append(((a[s:s + chunk] @ b.T / d + 1) ** 3) @ weights)
    return torch.cat(out)


def _kid_subsets(n_real: int, n_fake: int, subsets: int, subset_size: int, seed: int):
    """The rows each KID subset uses: a list of (real indices, fake indices), drawn without replacement."""
    m_real, m_fake = min(subset_size, n_real), min(subset_size, n_fake)
    if m_real == n_real and m_fake == n_fake:
        return [(torch.arange(n_real), torch.arange(n_fake))]
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randperm(n_real, generator=gen)[:m_real], torch.randperm(n_fake, generator=gen)[:m_fake])
            for _ in range(subsets)]


def kid(real_features, fake_features, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al., 2018) on (judge) features: (mean, std).

    The unbiased estimate of the squared maximum mean discrepancy with the kernel
    k(x, y) = (x·y / d + 1)³::

        MMD² = Σ_{i≠j} k(x_i, x_j) / m(m-1) + Σ_{i≠j} k(y_i, y_j) / n(n-1) - 2 Σ_{i,j} k(x_i, y_j) / mn

    averaged over ``subsets`` random subsets of ``subset_size`` rows of each set (std = their
    population standard deviation). When ``subset_size`` is at least both set sizes, it is the
    single estimate over all samples and std is 0. Unbiased, so two real sets can give a slightly
    negative KID (lesson 08).
    """
    real, fake = _pair(real_features, fake_features)
    if int(subsets) != subsets or subsets < 1:
        raise ValueError(f"subsets must be a whole number >= 1, got {subsets}")
    if int(subset_size) != subset_size or subset_size < 2:
        raise ValueError(f"subset_size must be a whole number >= 2, got {subset_size}")
    chosen = _kid_subsets(len(real), len(fake), int(subsets), int(subset_size), seed)
    # Indicator columns: sums over a subset's kernel block are s_a^T K s_b, so the Gram matrices are
    # built once (in row chunks) for all subsets together.
    s_real = torch.zeros(len(real), len(chosen), dtype=torch.float64)
    s_fake = torch.zeros(len(fake), len(chosen), dtype=torch.float64)
    for c, (ir, jf) in enumerate(chosen):
        s_real[ir, c] = 1.0
        s_fake[jf, c] = 1.0
    d = real.shape[1]
    diag_real = (((real * real).sum(1) / d + 1) ** 3) @ s_real
    diag_fake = (((fake * fake).sum(1) / d + 1) ** 3) @ s_fake
    k_rr = (s_real * _poly_kernel_products(real, real, s_real)).sum(0) - diag_real
    k_ff = (s_fake * _poly_kernel_products(fake, fake, s_fake)).sum(0) - diag_fake
    k_rf = (s_real * _poly_kernel_products(real, fake, s_fake)).sum(0)
    m, n = s_real.sum(0), s_fake.sum(0)
    mmd = k_rr / (m * (m - 1)) + k_ff / (n * (n - 1)) - 2 * k_rf / (m * n)
    return float(mmd.mean()), float(mmd.std(correction=0)) if len(mmd) > 1 else 0.0


# ------------------------------------------------------------ density and coverage
def density_coverage(real_features, fake_features, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al., 2020): (density, coverage), lesson 08.

    Every real sample gets a ball reaching its k-th nearest real neighbour. **Density** counts how
    many real balls each generated sample falls in, divided by k and averaged (about 1 when the two
    sets match; above 1 when samples crowd where the real data is dense). **Coverage** is the share
    of real balls that hold at least one generated sample (0..1). Unlike precision/recall, only the
    real data's balls are used, so one real outlier's huge ball cannot inflate them.
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a whole number >= 1, got {k}")
    real, fake = _pair(real_features, fake_features, min_real=int(k) + 1, min_fake=1)
    radii = _kth_neighbour_radius(real, int(k))
    inside_count = torch.zeros(len(fake), dtype=torch.float64)
    nearest_fake = []
    for s in range(0, len(real), 2048):
        dist = torch.cdist(real[s:s + 2048], fake)  # real chunk x fake
        inside = dist < radii[s:s + 2048, None]
        inside_count += inside.double().sum(0)
        nearest_fake.append(dist.min(dim=1).values)
    density = float(inside_count.sum() / (k * len(fake)))
    coverage = float((torch.cat(nearest_fake) < radii).double().mean())
    return density, coverage


# ------------------------------------------------------------ FID at infinitely many samples
def fid_infinity(real_features, fake_features, sizes=None, seed: int = 0) -> dict:
    """FID∞ (Chong & Forsyth, 2020), lesson 08: FID measured at several sample sizes n and fitted
    as FID(n) = intercept + slope / n; the intercept is the FID at n → ∞, free of the small-sample
    bias, so models measured with different n can be compared.

    FID(n) uses n real and n generated rows drawn without replacement (both sets shrink, as when
    a whole evaluation is run at n). ``sizes`` defaults to 8 sizes evenly spaced in 1/n from
    n_max/4 to n_max = min(len(real), len(fake)). Returns
    ``{"sizes": [...], "fids": [...], "slope": float, "intercept": float}``.
    """
    real, fake = _pair(real_features, fake_features)
    n_max = min(len(real), len(fake))
    if sizes is None:
        n_min = max(2, n_max // 4)
        sizes = sorted({int(round(1 / v)) for v in np.linspace(1 / n_min, 1 / n_max, 8)})
    sizes = [int(n) for n in sizes]
    if len(set(sizes)) < 2:
        raise ValueError(f"fid_infinity needs at least 2 different sample sizes to fit a line, got {sizes}")
    bad = [n for n in sizes if not 2 <= n <= n_max]
    if bad:
        raise ValueError(f"sample sizes must lie in [2, {n_max}] (the smaller set's size), got {bad}")
    gen = torch.Generator().manual_seed(seed)
    fids = []
    for n in sizes:
        r = real[torch.randperm(len(real), generator=gen)[:n]]
        f = fake[torch.randperm(len(fake), generator=gen)[:n]]
        fids.append(fid(r, f))
    slope, intercept = np.polyfit(1.0 / np.asarray(sizes, dtype=np.float64), np.asarray(fids), 1)
    return {"sizes": sizes, "fids": [float(v) for v in fids], "slope": float(slope), "intercept": float(intercept)}


# ------------------------------------------------------------ intervals
def _weighted_stats(x: torch.Tensor, counts: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the rows of ``x`` repeated ``counts`` times (a bootstrap resample)."""
    with _one_thread():
        n = counts.sum()
        mu = counts @ x / n
        centred = x - mu
        cov = (centred * counts[:, None]).T @ centred / (n - 1)
    return mu.numpy(), cov.numpy()


def _normal_quantile(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def fid_interval(real_features, fake_features, rounds: int = 50, level: float = 0.95, seed: int = 0,
                 resample: str = "fake") -> tuple[float, float]:
    """A bootstrap confidence interval (low, high) for the FID, lesson 08.

    The generated rows (``resample="fake"``: what changes when the model is sampled with another
    seed against the fixed real reference) or both sets (``"both"``) are resampled with
    replacement ``rounds`` times; the interval is FID ± z · (bootstrap standard deviation). A
    normal interval, because resampled sets hold duplicates, which push every bootstrapped FID up
    (the small-sample bias), so the plain percentile interval can miss the estimate itself.
    """
    _check_level(level, rounds)
    if resample not in ("fake", "both"):
        raise ValueError(f"resample must be 'fake' or 'both', got {resample!r}")
    real, fake = _pair(real_features, fake_features)
    mu_r, s_r = gaussian_stats(real)
    root_r = _sqrt_psd(s_r)
    point = _frechet_from_root(mu_r, s_r, root_r, *gaussian_stats(fake))
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(int(rounds)):
        w_f = torch.bincount(torch.randint(len(fake), (len(fake),), generator=gen), minlength=len(fake)).double()
        if resample == "both":
            w_r = torch.bincount(torch.randint(len(real), (len(real),), generator=gen), minlength=len(real)).double()
            values.append(frechet_distance(*_weighted_stats(real, w_r), *_weighted_stats(fake, w_f)))
        else:
            values.append(_frechet_from_root(mu_r, s_r, root_r, *_weighted_stats(fake, w_f)))
    half = _normal_quantile((1 + level) / 2) * float(np.std(values, ddof=1))
    return point - half, point + half


def accuracy_interval(hits, rounds: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """A percentile-bootstrap confidence interval (low, high) for control accuracy, lesson 08.

    ``hits``: N values (one attribute) or N x A (``control_hits``): 1 = the judge saw what was
    asked, 0 = it did not, NaN = not asked. The statistic is the mean over attributes of each
    attribute's accuracy (``control_accuracy(...)["mean"]``); images are resampled with replacement.
    """
    _check_level(level, rounds)
    h = torch.as_tensor(np.asarray(hits, dtype=np.float64))
    if h.ndim == 1:
        h = h[:, None]
    if h.ndim != 2 or len(h) < 2:
        raise ValueError(f"hits must be N or N x A values (1 hit, 0 miss, NaN not asked) with N >= 2, "
                         f"got shape {tuple(h.shape)}")
    asked = ~h.isnan()
    if ((h[asked] != 0) & (h[asked] != 1)).any() or torch.isinf(h).any():
        raise ValueError("hits must hold only 1 (hit), 0 (miss) or NaN (not asked)")
    if not asked.any():
        raise ValueError("hits holds no requested attribute (all NaN); nothing to measure")
    gen = torch.Generator().manual_seed(seed)
    h0, a = torch.nan_to_num(h), asked.double()
    stats = []
    for s in range(0, int(rounds), 100):  # 100 resamples at a time: rounds x N x A stays small
        idx = torch.randint(len(h), (min(100, int(rounds) - s), len(h)), generator=gen)
        hit_sum, ask_sum = h0[idx].sum(1), a[idx].sum(1)  # resamples x A
        per_attr = torch.where(ask_sum > 0, hit_sum / ask_sum.clamp(min=1), torch.nan)
        stats.append(per_attr.nanmean(1))
    values = torch.cat(stats).numpy()
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


# ------------------------------------------------------------ within-request diversity
def _group_keys(groups, n: int, name: str) -> list:
    g = np.asarray(groups.cpu() if isinstance(groups, torch.Tensor) else groups)
    if g.ndim not in (1, 2) or len(g) != n:
        raise ValueError(f"{name} must hold one group id (or one attribute row) per sample, {n} in all; "
                         f"got shape {g.shape}")
    if g.dtype.kind not in "iu":
        raise ValueError(f"{name} must be whole numbers (group ids or attribute class indices), got dtype {g.dtype}")
    return [int(v) for v in g] if g.ndim == 1 else [tuple(int(v) for v in row) for row in g]


def _spread_by_key(f: torch.Tensor, keys: list, min_size: int, max_members: int, seed: int) -> dict:
    members: dict = {}
    for i, key in enumerate(keys):
        members.setdefault(key, []).append(i)
    gen = torch.Generator().manual_seed(seed)
    spread = {}
    for key, idx in members.items():
        if len(idx) < min_size:
            continue
        idx = torch.tensor(idx)
        if len(idx) > max_members:
            idx = idx[torch.randperm(len(idx), generator=gen)[:max_members]]
        spread[key] = float(torch.pdist(f[idx]).mean())
    return spread


def _check_min_size(min_size) -> int:
    if int(min_size) != min_size or min_size < 2:
        raise ValueError(f"min_size must be a whole number >= 2 (a spread needs two samples), got {min_size}")
    return int(min_size)


def group_spread(features, groups, min_size: int = 2, max_members: int = 64, seed: int = 0) -> dict:
    """Mean pairwise Euclidean distance among the samples of each group: ``{group: spread}``.

    ``groups`` holds one id per sample, or one attribute row per sample (each distinct row is a
    group, keyed by a tuple). Groups with fewer than ``min_size`` samples are left out; groups
    larger than ``max_members`` use that many members drawn with a fixed seed (lesson 08).
    """
    min_size = _check_min_size(min_size)
    f = as_features(features, "features", 1)
    return _spread_by_key(f, _group_keys(groups, len(f), "groups"), min_size, max_members, seed)


def diversity_ratio(fake_features, fake_groups, real_features, real_groups, min_size: int = 2) -> float:
    """Within-request diversity, lesson 08: how varied the images for one request are, against real
    photos with the same attributes.

    Groups are requests (ids, or fully specified attribute rows, the same kind for both sets). For
    the groups with at least ``min_size`` samples in both sets: the mean over groups of the
    generated spread (mean pairwise judge-feature distance, ``group_spread``) divided by the mean
    over the same groups of the real spread. 1.0 = as varied as real photos (pose, position,
    shading); near 0 = one image per request.
    """
    min_size = _check_min_size(min_size)
    fake, real = _pair(fake_features, real_features, "fake_features", "real_features", min_real=1, min_fake=1)
    fake_spread = _spread_by_key(fake, _group_keys(fake_groups, len(fake), "fake_groups"), min_size, 64, 0)
    real_keys = _group_keys(real_groups, len(real), "real_groups")
    wanted = [i for i, key in enumerate(real_keys) if key in fake_spread]  # only the requested groups
    real_spread = _spread_by_key(real[wanted], [real_keys[i] for i in wanted], min_size, 64, 0)
    common = [key for key in fake_spread if key in real_spread]
    if not common:
        raise ValueError(f"no group has at least {min_size} generated and {min_size} real samples; "
                         "use the same kind of group ids (or attribute rows) for both sets "
                         "and several images per request")
    fake_mean = float(np.mean([fake_spread[key] for key in common]))
    real_mean = float(np.mean([real_spread[key] for key in common]))
    if real_mean == 0:
        raise ValueError("the real samples of every shared group are identical (spread 0); the ratio is undefined")
    return fake_mean / real_mean


# ------------------------------------------------------------ memorisation
def nearest_distances(reference_features, query_features, chunk: int = 1024) -> torch.Tensor:
    """Euclidean distance from each query row to its nearest reference row (float64), lesson 08."""
    ref, query = _pair(reference_features, query_features, "reference_features", "query_features", 1, 1)
    ref32 = ref.float()
    out = []
    for s in range(0, len(query), chunk):
        q = query[s:s + chunk]
        d2 = torch.cdist(q.float(), ref32).square()  # fast float32 search for the nearest row ...
        best = d2.argmin(dim=1)
        out.append((q - ref[best]).norm(dim=1))  # ... then the exact float64 distance to it
    return torch.cat(out)


def memorisation_ratio(train_features, fake_features, heldout_features) -> float:
    """Memorisation, lesson 08: median distance from each generated sample to its nearest training
    photo, divided by the same median for held-out real photos (not in the training set).

    About 1: samples sit as far from the training photos as new real photos do; well below 1:
    the model copies. The median, not the mean: it says what a typical sample does, and a few
    broken, far-away samples cannot raise it and so hide a model that copies the rest.
    """
    train, fake = _pair(train_features, fake_features, "train_features", "fake_features", 1, 1)
    _, heldout = _pair(train, heldout_features, "train_features", "heldout_features", 1, 1)
    held = float(nearest_distances(train, heldout).median())
    if held == 0:
        raise ValueError("the held-out photos are copies of training photos (median distance 0); "
                         "heldout_features must come from photos outside the training set")
    return float(nearest_distances(train, fake).median()) / held


# ------------------------------------------------------------ what a feature space carries
def linear_probe(train_features, train_labels, test_features, test_labels, num_classes: dict[str, int],
                 weight_decay: float = 1e-3, iterations: int = 200) -> dict[str, float]:
    """Accuracy of a linear classifier per attribute on frozen features (lessons 08 and 13): fitted on
    ``train_features`` (N x D) and ``train_labels`` (N x attributes, -1 = unknown, skipped) by full-batch L-BFGS
    on the cross-entropy with an L2 penalty ``weight_decay`` (features standardised with the training mean and
    spread), scored on the test set. Returns ``{attribute: accuracy, ..., "mean": ...}``. Deterministic."""
    train, test = _pair(train_features, test_features, "train_features", "test_features")
    train_labels, test_labels = torch.as_tensor(train_labels), torch.as_tensor(test_labels)
    names = list(num_classes)
    for labels, feats, what in ((train_labels, train, "train"), (test_labels, test, "test")):
        if labels.shape != (len(feats), len(names)):
            raise ValueError(f"{what}_labels must be {len(feats)} x {len(names)} (one column per attribute of "
                             f"num_classes), got {tuple(labels.shape)}")
    mu, sd = train.mean(0), train.std(0).clamp(min=1e-6)
    train, test = ((train - mu) / sd).float(), ((test - mu) / sd).float()
    out = {}
    with _one_thread():
        for j, a in enumerate(names):
            known = train_labels[:, j] >= 0
            layer = _fit_linear(train[known], train_labels[known, j], num_classes[a], weight_decay, iterations)
            seen = test_labels[:, j] >= 0
            with torch.no_grad():
                out[a] = float((layer(test[seen]).argmax(1) == test_labels[seen, j]).float().mean())
    out["mean"] = sum(out.values()) / len(names)
    return out


def _fit_linear(x: torch.Tensor, y: torch.Tensor, classes: int, weight_decay: float, iterations: int):
    """A linear layer ``D -> classes`` fitted to ``(x, y)`` by L-BFGS on cross-entropy + ``weight_decay`` * |W|^2,
    from zero weights (so the same data give the same layer)."""
    layer = torch.nn.Linear(x.shape[1], classes)
    torch.nn.init.zeros_(layer.weight), torch.nn.init.zeros_(layer.bias)
    opt = torch.optim.LBFGS(layer.parameters(), max_iter=iterations, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(x), y) + weight_decay * layer.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return layer
