"""Training in several processes (``torchrun`` + DistributedDataParallel, gloo on the CPU): the shard of each
rank, the refusals, and real 2-process runs of ``prodgen train`` (slow: each launch starts two Pythons)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from prodgen.engine import distributed


# ----------------------------------------------------------------------------- without processes
def test_shards_are_disjoint_slices_of_the_same_global_batches():
    order = torch.randperm(103, generator=torch.Generator().manual_seed(0))
    parts = [distributed.shard(order, 12, rank, 3) for rank in range(3)]
    assert all(p.shape == (8, 4) for p in parts)  # 103 // 12 = 8 global batches, 4 products per rank each
    for step in range(8):  # together the ranks see exactly the global batch one process would see
        assert torch.equal(torch.cat([p[step] for p in parts]), order[12 * step:12 * (step + 1)])
    seen = torch.cat([p.flatten() for p in parts])
    assert len(set(seen.tolist())) == len(seen) == 96  # no product twice in an epoch
    assert torch.equal(distributed.shard(order, 12), order[:96].view(8, 12))  # one process: the plain batches
    with pytest.raises(ValueError, match="multiple of the 3 processes"):
        distributed.shard(order, 10, 0, 3)


def test_one_process_is_the_identity():
    assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main()
    net = torch.nn.Linear(2, 2)
    assert distributed.wrap(net, "cpu") is net
    t = torch.ones(3)
    assert distributed.all_reduce_sum(t) is t and torch.equal(t, torch.ones(3))
    assert distributed.init("cpu") is None  # no torchrun: nothing to join


def test_more_processes_than_gpus_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"started 4 processes on this machine but it has 2 GPU\(s\).*"
                                         r"--nproc_per_node=2, or add --device cpu"):
        distributed.init("auto")
    with pytest.raises(ValueError, match="each process takes the GPU cuda:LOCAL_RANK"):
        distributed.init("cuda:1")
    with pytest.raises(ValueError, match="not on mps: add --device cpu"):
        distributed.init("mps")
    with pytest.raises(ValueError, match="unknown device 'tpu'; valid devices: auto, cpu, cuda, mps"):
        distributed.init("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no usable CUDA GPU: add --device cpu"):
        distributed.init("cuda")


def test_the_batch_must_split_evenly_across_processes(monkeypatch):
    from prodgen.catalog import Catalog
    from prodgen.engine import train
    from prodgen.models.dcgan import build_pair

    monkeypatch.setattr(train.distributed, "world_size", lambda: 3)
    cat = Catalog(torch.zeros(64, 3, 32, 32, dtype=torch.uint8), torch.zeros(64, 5, dtype=torch.long),
                  ["a"] * 64, ["一"] * 64)
    g, d = build_pair(z_dim=8, width=8)
    with pytest.raises(ValueError, match="batch_size 32 is the global batch, split evenly across the 3 processes"):
        train.train_gan(g, d, cat, epochs=1, batch_size=32, callbacks=[train.Progress(False)], device="cpu")


# ----------------------------------------------------------------------------- two real processes
# The driver is `prodgen train` (prodgen.cli.main, what `torchrun -m prodgen` runs) with tiny networks (the
# test is about processes, not quality). It records, per rank, a hash of every parameter and buffer after
# training, the images the history counted, and the products each rank was given.
DRIVER = textwrap.dedent('''
    import hashlib, json, os, sys
    import torch
    torch.set_num_threads(1)
    from prodgen import cli
    from prodgen.engine import distributed, train
    from prodgen.models import dcgan
    dcgan.CHECKPOINT_CONFIG.update(width=8, z_dim=16)
    rank, record = int(os.environ["RANK"]), os.environ["RECORD"]
    seen, steps = [], [0]
    shard = distributed.shard
    def recording_shard(order, batch_size, *a):
        part = shard(order, batch_size, *a)
        seen.append(part.flatten().tolist())
        return part
    distributed.shard = recording_shard
    gan_step = train.gan_step
    def dying_step(*a, **k):
        steps[0] += 1
        if rank == 1 and steps[0] == int(os.environ.get("DIE_AT", "0")):
            raise RuntimeError("rank 1 died on purpose")
        return gan_step(*a, **k)
    train.gan_step = dying_step
    train_gan = train.train_gan
    def recording_train_gan(g, d, *a, **k):
        history = train_gan(g, d, *a, **k)
        h = hashlib.sha256()
        for m in (g, d):
            for v in m.state_dict().values():
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
        with open(f"{record}/rank{rank}.json", "w") as f:
            json.dump({"hash": h.hexdigest(), "images_seen": history.images_seen, "seen": seen,
                       "world": distributed.world_size()}, f)
        return history
    train.train_gan = recording_train_gan
    sys.exit(cli.main(sys.argv[1:]))
''')


def _torchrun(tmp_path, *args, die_at=0):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed next to this Python")
    (tmp_path / "driver.py").write_text(DRIVER)
    record = tmp_path / "record"
    record.mkdir(exist_ok=True)
    (tmp_path / "shipped").mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RECORD": str(record), "DIE_AT": str(die_at),
           "PRODGEN_CHECKPOINTS": str(tmp_path / "shipped")}
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", str(tmp_path / "driver.py"), "train", "dcgan", "--fast",
           "--device", "cpu", "--out", str(tmp_path / "out" / "x.pt"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path)


def _records(tmp_path):
    return [json.loads((tmp_path / "record" / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("ddp")
    return tmp_path, _torchrun(tmp_path)


@pytest.mark.slow
def test_two_gloo_processes_train_one_model(two_process_run):
    from prodgen.models import registry

    tmp_path, done = two_process_run
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    r0, r1 = _records(tmp_path)
    assert r0["world"] == r1["world"] == 2
    assert r0["hash"] == r1["hash"]  # every parameter and buffer identical on both ranks
    assert r0["images_seen"] == r1["images_seen"] == 1024  # the global count: 8 steps x 128, not 8 x 64
    a, b = r0["seen"][0], r1["seen"][0]
    assert len(a) == len(b) == 512 and not set(a) & set(b)  # disjoint halves of the epoch
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["x.pt", "x.pt.sha256", "x.state.pt"]  # rank 0 alone wrote
    assert list((tmp_path / "shipped").iterdir()) == []
    model, info = registry.load_file(tmp_path / "out" / "x.pt")
    assert info["training"]["processes"] == 2 and info["training"]["images_seen"] == 1024
    assert info["metrics"]["images_seen"] == 1024 and info["config"]["width"] == 8
    assert done.stdout.count("saved dcgan to") == 1  # rank 0 alone reports


@pytest.mark.slow
def test_resume_under_two_processes(two_process_run):
    from prodgen.models import registry

    tmp_path, first = two_process_run
    assert first.returncode == 0
    done = _torchrun(tmp_path, "--resume", "--epochs", "2")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    r0, r1 = _records(tmp_path)
    assert r0["hash"] == r1["hash"] and r0["images_seen"] == 2048  # the first epoch's 1024 + this one's
    assert len(r0["seen"]) == 1  # only the second epoch was trained
    model, info = registry.load_file(tmp_path / "out" / "x.pt")
    assert info["training"]["epochs_done"] == 2 and info["training"]["images_seen"] == 2048


@pytest.mark.slow
def test_a_rank_that_dies_ends_the_run_and_leaves_no_checkpoint(tmp_path):
    done = _torchrun(tmp_path, die_at=3)
    assert done.returncode != 0
    assert "rank 1 died on purpose" in done.stdout + done.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []  # nothing half-written
