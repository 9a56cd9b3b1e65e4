"""Shared test fixtures."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks: one thread is as fast as two and immune to a busy machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def squares_catalog():
    """128 synthetic products for engine tests: coloured squares on a light background, labels 0-2 (valid
    for every attribute); 4 steps of 32 per epoch."""
    from prodgen.catalog import Catalog

    gen = torch.Generator().manual_seed(0)
    n = 128
    images = torch.full((n, 3, 32, 32), 230, dtype=torch.uint8)
    colours = torch.randint(0, 256, (n, 3), generator=gen, dtype=torch.int64).to(torch.uint8)
    for i in range(n):
        a = int(torch.randint(4, 12, (1,), generator=gen))
        images[i, :, a:32 - a, a:32 - a] = colours[i, :, None, None]
    labels = torch.randint(0, 3, (n, 5), generator=gen)
    return Catalog(images, labels, ["a product"] * n, ["一个产品"] * n)


@pytest.fixture(scope="module")
def tiny_ae():
    """An untrained autoencoder of width 8 (latents 4 x 16 x 16), its scale set to something other than 1: the latent
    models' tests (test_latent.py, test_tryon_latent.py) decode with it."""
    from prodgen.models.autoencoder import AutoEncoder

    torch.manual_seed(0)
    ae = AutoEncoder(width=8)
    ae.scale.fill_(0.7)
    return ae.eval()
