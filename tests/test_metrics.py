"""FID, precision/recall, histogram distance and control accuracy (prodgen.metrics)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg

from prodgen import metrics
from prodgen.catalog import load_catalog, normalize
from prodgen.models import registry


def _reference_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's general matrix square root."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean.real))


@pytest.mark.parametrize("dim, shift", [(8, 0.0), (32, 0.5), (64, 2.0)])
def test_fid_agrees_with_scipy(dim, shift):
    rng = np.random.default_rng(dim)
    mix_a, mix_b = rng.normal(size=(dim, dim)), rng.normal(size=(dim, dim))
    a = rng.normal(size=(600, dim)) @ mix_a
    b = rng.normal(size=(500, dim)) @ mix_b + shift
    ours, ref = metrics.fid(a, b), _reference_fid(a, b)
    assert abs(ours - ref) <= 1e-3 * abs(ref)


def test_fid_of_identical_sets_is_zero():
    a = np.random.default_rng(0).normal(size=(400, 16))
    assert abs(metrics.fid(a, a)) < 1e-8 * np.trace(np.cov(a, rowvar=False))


def test_fid_rejects_too_few_samples():
    with pytest.raises(ValueError, match="N >= 2"):
        metrics.fid(np.zeros((1, 4)), np.zeros((5, 4)))


def test_precision_recall_behave():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(800, 8))
    same = rng.normal(size=(800, 8))
    p, r = metrics.precision_recall(real, same)
    assert p > 0.8 and r > 0.8
    collapsed = np.repeat(real[:1], 800, axis=0) + 1e-3 * rng.normal(size=(800, 8))
    p, r = metrics.precision_recall(real, collapsed)
    assert p > 0.9 and r < 0.05, "one mode: precise but no coverage"
    far = rng.normal(size=(800, 8)) + 20
    p, r = metrics.precision_recall(real, far)
    assert p == 0.0 and r == 0.0


def test_histogram_distance():
    h = {"color": np.array([0.5, 0.5, 0.0]), "size": np.array([1.0, 0.0, 0.0])}
    assert metrics.histogram_distance(h, h)["mean"] == 0.0
    other = {"color": np.array([0.0, 0.0, 1.0]), "size": np.array([1.0, 0.0, 0.0])}
    d = metrics.histogram_distance(h, other)
    assert d["color"] == 1.0 and d["size"] == 0.0 and d["mean"] == 0.5


# ---------------------------------------------------------------- lesson 08 metrics
def _kid_by_loops(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD² with k(a, b) = (a·b / d + 1)³, term by term."""
    d = x.shape[1]
    k = lambda a, b: (float(a @ b) / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("m, n, shift", [(30, 30, 0.0), (25, 40, 0.3), (40, 17, 1.0)])
def test_kid_matches_the_direct_sum_over_all_samples(m, n, shift):
    rng = np.random.default_rng(m + n)
    x, y = rng.normal(size=(m, 6)), rng.normal(size=(n, 6)) * 1.2 + shift
    mean, std = metrics.kid(x, y, subset_size=max(m, n))
    ref = _kid_by_loops(x, y)
    assert std == 0.0
    assert abs(mean - ref) <= 1e-6 * abs(ref), (mean, ref)


def test_kid_over_subsets_is_the_mean_and_std_of_the_direct_sums():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(50, 5)), rng.normal(size=(45, 5)) + 0.5
    mean, std = metrics.kid(x, y, subsets=6, subset_size=20, seed=4)
    per = [_kid_by_loops(x[i.numpy()], y[j.numpy()]) for i, j in metrics._kid_subsets(50, 45, 6, 20, 4)]
    assert all(len(i) == 20 and len(set(i.tolist())) == 20 for i, _ in metrics._kid_subsets(50, 45, 6, 20, 4))
    assert abs(mean - np.mean(per)) <= 1e-6 * abs(np.mean(per))
    assert abs(std - np.std(per)) <= 1e-6 * np.std(per)
    assert metrics.kid(x, y, subsets=6, subset_size=20, seed=4) == (mean, std), "same seed, same subsets"


def test_kid_is_unbiased_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(5)
    draws = [metrics.kid(rng.normal(size=(200, 8)), rng.normal(size=(200, 8)), subset_size=200)[0] for _ in range(20)]
    assert min(draws) < 0 < max(draws), "an unbiased estimate of 0 falls on both sides of 0"
    assert abs(np.mean(draws)) < 3 * np.std(draws) / np.sqrt(len(draws))
    shifted = [metrics.kid(rng.normal(size=(200, 8)), rng.normal(size=(200, 8)) + s, subset_size=200)[0]
               for s in (0.25, 0.5, 1.0)]
    assert max(draws) < shifted[0] < shifted[1] < shifted[2]


def test_density_and_coverage_on_hand_made_points():
    # Four real points on a line, k = 1: each ball reaches the nearest other real point.
    real = np.array([[0.0], [1.0], [3.0], [7.0]])  # radii: 1, 1, 2, 4
    fake = np.array([[0.5], [0.6], [5.5], [20.0]])
    # 0.5 and 0.6 lie in the balls of 0 and 1 (2 each); 5.5 lies in the ball of 7 (|7-5.5| < 4) and of 3 (2.5 < 2? no)
    density, coverage = metrics.density_coverage(real, fake, k=1)
    assert density == pytest.approx((2 + 2 + 1 + 0) / (1 * 4))
    assert coverage == pytest.approx(3 / 4), "the ball of 3 holds no sample"
    # Samples piled on one real point: coverage low, density counts every ball they are in.
    density, coverage = metrics.density_coverage(real, np.full((10, 1), 0.1), k=1)
    assert coverage == pytest.approx(2 / 4) and density == pytest.approx(2.0)
    far = metrics.density_coverage(real, np.full((3, 1), 100.0), k=1)
    assert far == (0.0, 0.0)


def test_density_coverage_ignore_an_outlier_that_fools_precision_recall():
    """Naeem et al.: identical Gaussians give density/coverage near 1; a real outlier's huge k-NN ball
    makes a cluster of samples far from the data fully "precise", but adds only 1/k to its density."""
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(1000, 2)), rng.normal(size=(1000, 2))
    density, coverage = metrics.density_coverage(real, fake, k=5)
    assert 0.85 < density < 1.15 and 0.9 < coverage <= 1.0
    far = rng.normal(size=(100, 2)) * 0.3 + [11.0, 11.0]
    assert metrics.precision_recall(real, far, k=5)[0] == 0.0
    assert metrics.density_coverage(real, far, k=5) == (0.0, 0.0)
    with_outlier = np.vstack([real, [[12.0, 12.0]]])
    assert metrics.precision_recall(with_outlier, far, k=5)[0] == 1.0, "the outlier's ball swallows the cluster"
    density, coverage = metrics.density_coverage(with_outlier, far, k=5)
    assert density == pytest.approx(1 / 5) and coverage == pytest.approx(1 / 1001)


def test_fid_infinity_recovers_a_known_intercept():
    # Real and fake from two Gaussians with a known FID: ||mu||² + Tr(S1 + S2 - 2 (S1 S2)^1/2).
    rng = np.random.default_rng(0)
    dim = 32
    real = rng.normal(size=(20000, dim))
    fake = rng.normal(size=(20000, dim)) * 1.5 + 0.5
    true_fid = dim * 0.25 + dim * (1 + 2.25 - 2 * 1.5)  # 8 + 8 = 16
    out = metrics.fid_infinity(real, fake, sizes=[250, 500, 1000, 2000, 5000, 10000, 20000], seed=1)
    assert set(out) == {"sizes", "fids", "slope", "intercept"} and len(out["fids"]) == 7
    assert out["slope"] > 0, "FID is biased upward at small n"
    assert out["fids"][0] - true_fid > 1.0, "FID at n = 250 is clearly above the truth"
    assert abs(out["intercept"] - true_fid) < 0.4, (out["intercept"], true_fid)


def test_fid_infinity_fit_is_exact_for_points_on_a_line(monkeypatch):
    values = iter([3.0 + 500.0 / n for n in (100, 200, 400)])
    monkeypatch.setattr(metrics, "fid", lambda a, b: next(values))
    out = metrics.fid_infinity(np.zeros((400, 2)), np.zeros((400, 2)), sizes=[100, 200, 400])
    assert out["intercept"] == pytest.approx(3.0, abs=1e-9) and out["slope"] == pytest.approx(500.0, rel=1e-9)


def test_fid_infinity_default_sizes_and_bad_sizes():
    rng = np.random.default_rng(0)
    out = metrics.fid_infinity(rng.normal(size=(800, 4)), rng.normal(size=(1000, 4)))
    assert out["sizes"][0] == 200 and out["sizes"][-1] == 800 and len(out["sizes"]) >= 6
    with pytest.raises(ValueError, match=r"sample sizes must lie in \[2, 800\]"):
        metrics.fid_infinity(rng.normal(size=(800, 4)), rng.normal(size=(1000, 4)), sizes=[100, 900])
    with pytest.raises(ValueError, match="at least 2 different sample sizes"):
        metrics.fid_infinity(rng.normal(size=(800, 4)), rng.normal(size=(1000, 4)), sizes=[100, 100])


def test_fid_interval_contains_the_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(4000, 8))
    widths = []
    for n in (250, 1000, 4000):
        fake = rng.normal(size=(n, 8)) + 0.3
        low, high = metrics.fid_interval(real, fake, rounds=30)
        assert low < metrics.fid(real, fake) < high
        widths.append(high - low)
    assert widths[0] > 1.5 * widths[1] > 2.25 * widths[2], widths
    both = metrics.fid_interval(real, rng.normal(size=(1000, 8)) + 0.3, rounds=10, resample="both")
    assert both[0] < both[1]
    with pytest.raises(ValueError, match="resample must be 'fake' or 'both'"):
        metrics.fid_interval(real, real, resample="real")


@pytest.mark.slow
def test_fid_interval_is_as_wide_as_the_seed_to_seed_spread():
    """The bootstrap's width is about what redrawing the samples (another seed) really does."""
    rng = np.random.default_rng(1)
    real = rng.normal(size=(4000, 8))
    low, high = metrics.fid_interval(real, rng.normal(size=(1000, 8)) + 0.3, rounds=100)
    redraws = [metrics.fid(real, rng.normal(size=(1000, 8)) + 0.3) for _ in range(100)]
    true_width = 2 * 1.96 * np.std(redraws, ddof=1)
    assert 0.6 * true_width < high - low < 1.6 * true_width, (high - low, true_width)


def test_accuracy_interval_contains_the_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (100, 400, 1600):
        hits = (rng.random((n, 3)) < [0.9, 0.7, 0.5]).astype(float)
        hits[rng.random(n) < 0.3, 2] = np.nan  # attribute 2 not asked for 30% of the images
        point = np.mean([np.nanmean(hits[:, j]) for j in range(3)])
        low, high = metrics.accuracy_interval(hits, rounds=500)
        assert low <= point <= high
        widths.append(high - low)
    assert widths[0] > 1.5 * widths[1] > 2.25 * widths[2], widths
    # One attribute at 70% over 1600 images: the binomial interval is +-1.96 * sqrt(.21/1600) = +-0.022.
    one = (rng.random(1600) < 0.7).astype(float)
    low, high = metrics.accuracy_interval(one, rounds=2000)
    assert 0.036 < high - low < 0.054
    with pytest.raises(ValueError, match="only 1 .hit., 0 .miss. or NaN"):
        metrics.accuracy_interval(np.array([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="level must be between 0 and 1"):
        metrics.accuracy_interval(one, level=95)


def test_diversity_ratio():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(50), 8)  # 50 requests, 8 images each
    centres = rng.normal(size=(50, 16)) * 3
    real = centres[groups] + rng.normal(size=(400, 16))
    fake = centres[groups] + rng.normal(size=(400, 16))
    assert 0.95 < metrics.diversity_ratio(fake, groups, real, groups) < 1.05
    one_look = centres[groups] + rng.normal(size=(50, 16))[groups] + 1e-3 * rng.normal(size=(400, 16))
    assert metrics.diversity_ratio(one_look, groups, real, groups) < 0.01
    half = centres[groups] + 0.5 * rng.normal(size=(400, 16))
    assert 0.45 < metrics.diversity_ratio(half, groups, real, groups) < 0.55
    # Attribute rows as groups: each distinct row is a group; only groups in both sets count.
    rows = np.stack([groups % 5, groups // 5], axis=1)
    assert metrics.diversity_ratio(fake, rows, real, rows) == pytest.approx(
        metrics.diversity_ratio(fake, groups, real, groups))
    assert metrics.diversity_ratio(fake[:16], groups[:16], real, groups) == pytest.approx(
        metrics.diversity_ratio(fake[:16], groups[:16], real[:16], groups[:16]))
    spread = metrics.group_spread(np.array([[0.0, 0], [3, 4], [0, 0], [1, 1]]), [7, 7, 8, 9])
    assert spread == {7: 5.0}, "group 8 and 9 have one sample each"
    with pytest.raises(ValueError, match="no group has at least 2 generated and 2 real"):
        metrics.diversity_ratio(fake, groups, real, groups + 100)
    with pytest.raises(ValueError, match="one group id .* per sample, 400 in all"):
        metrics.diversity_ratio(fake, groups[:10], real, groups)


def test_memorisation_ratio():
    rng = np.random.default_rng(0)
    train, heldout = rng.normal(size=(3000, 16)), rng.normal(size=(500, 16))
    fresh = rng.normal(size=(500, 16))
    assert 0.9 < metrics.memorisation_ratio(train, fresh, heldout) < 1.1
    copies = train[rng.choice(3000, 500)] + 1e-3 * rng.normal(size=(500, 16))
    assert metrics.memorisation_ratio(train, copies, heldout) < 0.01
    d = metrics.nearest_distances(train, train[:5] + np.array([0.1] + [0.0] * 15))
    assert torch.allclose(d, torch.full((5,), 0.1, dtype=torch.float64), atol=1e-9)
    with pytest.raises(ValueError, match="held-out photos are copies of training photos"):
        metrics.memorisation_ratio(train, fresh, train[:100])


@pytest.mark.parametrize("call", [
    lambda r, f: metrics.kid(r, f), lambda r, f: metrics.density_coverage(r, f),
    lambda r, f: metrics.fid_infinity(r, f), lambda r, f: metrics.fid_interval(r, f, rounds=3),
    lambda r, f: metrics.fid(r, f), lambda r, f: metrics.precision_recall(r, f),
    lambda r, f: metrics.memorisation_ratio(r, f, r + 1),
    lambda r, f: metrics.diversity_ratio(f, np.zeros(len(f), int), r, np.zeros(len(r), int)),
], ids=["kid", "density_coverage", "fid_infinity", "fid_interval", "fid", "precision_recall", "memorisation",
        "diversity"])
def test_every_metric_rejects_bad_features_with_one_clear_line(call):
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(40, 6)), rng.normal(size=(40, 6))
    with_nan = fake.copy()
    with_nan[3, 2] = np.nan
    with pytest.raises(ValueError, match="(fake_features|features_b) holds 1 NaN or infinite values; features must be "
                                         "finite numbers") as e:
        call(real, with_nan)
    assert "\n" not in str(e.value)
    with_inf = real.copy()
    with_inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="holds 1 NaN or infinite values"):
        call(with_inf, fake)
    with pytest.raises(ValueError,
                       match=r"different feature dimensions \((6 vs 5|5 vs 6)\); both must come from the same"):
        call(real, fake[:, :5])
    with pytest.raises(ValueError, match=r"N x D array of features .* got shape \(40,\)"):
        call(real, fake[:, 0])
    if "memorisation_ratio" not in call.__code__.co_names:  # one sample is a valid query or training set
        with pytest.raises(ValueError, match="needs N >= |no group has at least 2 generated"):
            call(real[:1], fake[:1])


def test_as_features_messages():
    with pytest.raises(ValueError, match="features must be an N x D array of numbers, got ndarray"):
        metrics.as_features(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="must be an N x D array of real numbers, got dtype torch.bool"):
        metrics.as_features(np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="needs N >= 3"):
        metrics.as_features(np.zeros((2, 4)), min_samples=3)
    f = metrics.as_features(torch.ones(3, 2, dtype=torch.float16))
    assert f.dtype == torch.float64 and f.shape == (3, 2)


# ---------------------------------------------------------------- with the judge
@pytest.fixture(scope="module")
def judge():
    if not registry.available("judge"):
        pytest.fail("the shipped judge checkpoint is missing or corrupt (data/checkpoints/judge.pt)")
    return registry.load("judge")


@pytest.fixture(scope="module")
def real_sets():
    return load_catalog("train", progress=False).subset(range(2000)), load_catalog("test", progress=False)


def _blur(x: torch.Tensor, k: int) -> torch.Tensor:
    if k == 1:
        return x
    kernel = torch.ones(3, 1, k, k) / (k * k)
    return torch.nn.functional.conv2d(torch.nn.functional.pad(x, [k // 2] * 4, mode="replicate"), kernel, groups=3)


@pytest.mark.slow  # 9 x 1,000 photos through the judge
def test_fid_rises_with_noise_and_blur(judge, real_sets):
    # 1,000 photos a side: the smallest gap (floor 66 vs 96 at noise 0.05; blur 5 vs 7: 3336 vs 3627) is as
    # clear as with 2,000 (36 vs 74; 3257 vs 3554), in half the time.
    train, test = real_sets
    ref = metrics.judge_features(judge, train.images[:1000])
    x = normalize(test.images[:1000])
    floor = metrics.fid(ref, metrics.judge_features(judge, x))
    gen = torch.Generator().manual_seed(0)
    noisy = [metrics.fid(ref, metrics.judge_features(judge, (x + s * torch.randn(x.shape, generator=gen)).clamp(-1, 1)))
             for s in (0.05, 0.15, 0.3, 0.6)]
    blurred = [metrics.fid(ref, metrics.judge_features(judge, _blur(x, k))) for k in (3, 5, 7)]
    assert floor < noisy[0] and all(a < b for a, b in zip(noisy, noisy[1:])), (floor, noisy)
    assert floor < blurred[0] and all(a < b for a, b in zip(blurred, blurred[1:])), (floor, blurred)


def test_control_accuracy_of_real_images_is_high(judge, real_sets):
    _, test = real_sets
    acc = metrics.control_accuracy(judge, test.images, test.labels)
    assert acc["mean"] >= 0.98 and min(v for k, v in acc.items() if k != "mean") >= 0.98
    unrequested = test.labels.clone()
    unrequested[:, 1:] = -1
    assert set(metrics.control_accuracy(judge, test.images[:50], unrequested[:50])) == {"category", "mean"}


def test_describe_control_words_follow_the_numbers():
    from prodgen.metrics import describe_control

    chance = {"category": 0.125, "color": 0.1, "brand": 0.25, "mean": 0.158}
    good = describe_control({"category": 1.0, "color": 0.85, "brand": 0.6, "mean": 0.817}, chance)
    assert good == ("82% mean control (chance 16%). category 100%, color 85%: read in most photos (>= 80%); "
                    "brand 60%: only partly.")
    blobs = describe_control({"category": 0.2, "color": 0.15, "brand": 0.3, "mean": 0.217}, chance)
    assert "read in most" not in blobs and "category 20%, color 15%, brand 30%: hardly above chance" in blobs
    with pytest.raises(ValueError, match="control_accuracy's dict"):
        describe_control({"mean": 0.5})


def test_linear_probe_reads_what_the_features_carry_and_checks_its_input():
    """Features that hold attribute 0 linearly and nothing of attribute 1: the probe reads the first (unknown labels,
    -1, skipped) and is near chance on the second; shapes that do not match say so in one line."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (600, 2), generator=gen)
    feats = torch.randn(600, 8, generator=gen)
    feats[:, :4] += 5 * torch.nn.functional.one_hot(labels[:, 0], 4)  # attribute 0 is visible, attribute 1 is not
    labels[:10, 0] = -1
    acc = metrics.linear_probe(feats[:400], labels[:400], feats[400:], labels[400:], {"a": 4, "b": 4})
    assert acc["a"] > 0.95 and acc["b"] < 0.4 and acc["mean"] == pytest.approx((acc["a"] + acc["b"]) / 2)
    assert metrics.linear_probe(feats[:400], labels[:400], feats[400:], labels[400:], {"a": 4, "b": 4}) == acc
    with pytest.raises(ValueError, match=r"train_labels must be 400 x 3 .one column per attribute"):
        metrics.linear_probe(feats[:400], labels[:400], feats[400:], labels[400:], {"a": 4, "b": 4, "c": 2})
    with pytest.raises(ValueError, match="different feature dimensions"):
        metrics.linear_probe(feats[:400], labels[:400], feats[400:, :5], labels[400:], {"a": 4, "b": 4})
