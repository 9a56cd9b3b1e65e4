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

Used by lessons 03+ (and 08 in depth) and by ``prodgen evaluate``.
"""
from __future__ import annotations

import numpy as np
import torch

from .catalog.attributes import ATTRIBUTE_NAMES

__all__ = [
    "gaussian_stats",
    "frechet_distance",
    "fid",
    "precision_recall",
    "attribute_histograms",
    "histogram_distance",
    "control_accuracy",
    "judge_features",
    "sample_images",
    "evaluate_generator",
    "image_quality",
]


def judge_features(judge, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Judge features (N x 256) of images given as uint8 or as floats in [-1, 1]."""
    from .catalog.dataset import normalize

    x = normalize(images) if images.dtype == torch.uint8 else images.float()
    return judge.embed(x.contiguous(memory_format=torch.channels_last), batch_size=batch_size)


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of N x D features."""
    f = np.asarray(features.cpu() if isinstance(features, torch.Tensor) else features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need an N x D array of features with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (tiny negative eigenvalues clipped)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), the Fréchet distance of two Gaussians.

    Tr((S1 S2)^1/2) equals Tr((S1^1/2 S2 S1^1/2)^1/2) because both matrices have the same
    eigenvalues, and the second one is symmetric, so ``eigvalsh`` gives them stably.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    root1 = _sqrt_psd(s1)
    middle = root1 @ s2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt)


def fid(features_a, features_b) -> float:
    """FID between two sets of features (N x D each)."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


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
    real = torch.as_tensor(real_features, dtype=torch.float64)
    fake = torch.as_tensor(fake_features, dtype=torch.float64)
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"need more than k={k} real and generated samples, got {len(real)} and {len(fake)}")
    precision = _covered(fake, real, _kth_neighbour_radius(real, k)).double().mean().item()
    recall = _covered(real, fake, _kth_neighbour_radius(fake, k)).double().mean().item()
    return precision, recall


def attribute_histograms(predictions: torch.Tensor, num_classes: dict[str, int]) -> dict[str, np.ndarray]:
    """Share of each value per attribute, from class indices N x 5 (e.g. ``Judge.predict``)."""
    return {a: np.bincount(predictions[:, j].cpu().numpy(), minlength=num_classes[a]) / len(predictions)
            for j, a in enumerate(ATTRIBUTE_NAMES)}


def histogram_distance(hist_a: dict, hist_b: dict) -> dict[str, float]:
    """Total variation distance per attribute (0 = same histogram, 1 = disjoint), plus their mean."""
    d = {a: 0.5 * float(np.abs(hist_a[a] - hist_b[a]).sum()) for a in hist_a}
    d["mean"] = float(np.mean(list(d.values())))
    return d


def control_accuracy(judge, images: torch.Tensor, requested: torch.Tensor) -> dict[str, float]:
    """How often the judge sees the requested value, per attribute (-1 = not requested, skipped)."""
    from .catalog.dataset import normalize

    x = normalize(images) if images.dtype == torch.uint8 else images.float()
    pred = judge.predict(x.contiguous(memory_format=torch.channels_last))
    acc = {}
    for j, a in enumerate(ATTRIBUTE_NAMES):
        asked = requested[:, j] >= 0
        if asked.any():
            acc[a] = float((pred[asked, j] == requested[asked, j]).double().mean())
    acc["mean"] = float(np.mean(list(acc.values()))) if acc else float("nan")
    return acc


# ------------------------------------------------------------ whole evaluations
def sample_images(model, n: int, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """``n`` images in [-1, 1] from an unconditional model (``model.sample`` or ``model(z)``)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            if hasattr(model, "sample"):
                out.append(model.sample(m, generator=gen).float().cpu())
            else:
                out.append(model(torch.randn(m, model.z_dim, generator=gen)).float().cpu())
    return torch.cat(out)


def real_reference(n: int = 2000):
    """Judge-ready real sets: ``n`` training images (the reference) and ``n`` test images."""
    from .catalog import load_catalog

    return load_catalog("train", progress=False).images[:n], load_catalog("test", progress=False).images[:n]


def image_quality(judge, images: torch.Tensor, n: int = 2000) -> dict:
    """FID of ``images`` against ``n`` training photos, its floor (``n`` test photos against the same
    reference), and precision/recall (k = 3): the image-quality half of every model's evaluation."""
    train_imgs, test_imgs = real_reference(n)
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
    from .catalog.dataset import normalize

    x = normalize(images) if images.dtype == torch.uint8 else images.float()
    return x.contiguous(memory_format=torch.channels_last)
