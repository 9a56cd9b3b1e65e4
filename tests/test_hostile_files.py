"""Hostile and damaged inputs (issue 22, section 2): every file the project reads is verified or re-measured, and
every failure is one clear line (exit 2 from the CLI, no traceback), or the result is correct.

Cases: non-checkpoint and malicious ``.pt`` files, checkpoint files without / with a wrong sha256 record or with
NaN weights, a malformed ``manifest.json``, a damaged leaderboard cache, over-long paths, catalog-folder rows that
point outside the folder, descriptions with words the catalog lacks or no product word, the studio's kernel limits.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from prodgen import checkpoints, paths
from prodgen.models import dcgan, registry

from cli_helpers import in_a_subprocess, in_this_process

TINY = {"z_dim": 8, "width": 8, "image_size": 32}


def _one_line(code: int, err: str, *must) -> str:
    """The CLI's failure contract: exit 2, exactly one line on stderr, no traceback; returns that line."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for text in must:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def run(monkeypatch, capsys):
    return in_this_process(monkeypatch, capsys)


@pytest.fixture
def tiny_file(tmp_path):
    """A tiny DCGAN written the way `prodgen train dcgan --out` writes (a file and its .sha256 record)."""
    torch.manual_seed(0)
    return registry.save("dcgan", dcgan.build(TINY), TINY, out=tmp_path / "models" / "tiny.pt")


# ----------------------------------------------------------------------------- 1. non-checkpoint .pt files
class _Payload:
    """Unpickling this runs code (creates the marker file): the loader must never get that far."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _hostile(kind: str, path, marker):
    _Payload.marker = str(marker)
    if kind == "pickle-reduce":
        path.write_bytes(pickle.dumps(_Payload()))
    elif kind == "torch-save-reduce":
        torch.save({"state_dict": {}, "x": _Payload()}, path)
    elif kind == "zip-of-junk":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", b"junk")
    elif kind == "text":
        path.write_text("not a checkpoint\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "dict-without-state_dict":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "state_dict-of-strings":
        torch.save({"state_dict": {"w": "text"}, "name": "dcgan", "config": TINY}, path)
    elif kind == "no-model-name":
        torch.save({"state_dict": dcgan.build(TINY).state_dict(), "config": TINY}, path)
    return path


KINDS = ("pickle-reduce", "torch-save-reduce", "zip-of-junk", "text", "empty", "tensor", "dict-without-state_dict",
         "state_dict-of-strings", "no-model-name")
SAYS = {"pickle-reduce": "refused without running anything", "torch-save-reduce": "rebuild Python objects",
        "zip-of-junk": "zip archive", "text": "neither a zip archive nor a pickle", "empty": "it is empty",
        "tensor": "holds a Tensor", "dict-without-state_dict": "without a state_dict",
        "state_dict-of-strings": "other than tensors", "no-model-name": "names no model"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["generate", "evaluate"])
def test_a_non_checkpoint_pt_is_one_line_and_runs_nothing(kind, command, run, tmp_path):
    marker = tmp_path / "code-ran"
    path = _hostile(kind, tmp_path / f"{kind}.pt", marker)
    args = (["generate", "--model", path, "--out", tmp_path / "out"] if command == "generate"
            else ["evaluate", path, "--n", "16"])
    code, out, err = run(args)
    line = _one_line(code, err, str(path), SAYS[kind])
    assert "weights_only" not in line and "weights only" not in line.lower(), "never relay torch's unsafe advice"
    assert "train" in line  # says what is valid
    assert not marker.exists(), "loading a .pt ran code from it"
    assert not (tmp_path / "out").exists()


def test_a_malicious_pickle_through_the_installed_command(tmp_path):
    marker = tmp_path / "code-ran"
    path = _hostile("pickle-reduce", tmp_path / "evil.pt", marker)
    code, out, err = in_a_subprocess(["generate", "--model", path, "--out", tmp_path / "out"])
    assert "weights_only" not in _one_line(code, err, "evil.pt", "pickle", "refused without running anything")
    assert not marker.exists()


def test_checkpoints_read_refuses_in_python_too(tmp_path):
    path = _hostile("torch-save-reduce", tmp_path / "evil.pt", tmp_path / "code-ran")
    with pytest.raises(ValueError, match="is not a prodgen checkpoint") as caught:
        checkpoints.read(path)
    assert "weights_only" not in str(caught.value) and not (tmp_path / "code-ran").exists()


# ----------------------------------------------------------------------------- 2. checkpoint files carry a sha256
def test_a_written_checkpoint_has_a_sha256_record_and_loads_without_warning(tiny_file, recwarn):
    record = checkpoints.sidecar(tiny_file)
    assert record.name == "tiny.pt.sha256"
    assert record.read_text() == f"{checkpoints.sha256(tiny_file)}  tiny.pt\n"  # sha256sum -c reads it
    assert checkpoints.verify_file(tiny_file) is True
    model, info = registry.load_file(tiny_file)
    assert info["name"] == "dcgan" and not [w for w in recwarn if w.category is checkpoints.UnverifiedCheckpoint]
    assert not [p for p in tiny_file.parent.iterdir() if p.name.startswith(".")], "no temporary file left"


def test_a_flipped_byte_is_corrupt_in_one_line(tiny_file, run, tmp_path):
    data = bytearray(tiny_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    tiny_file.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt: its sha256 does not match tiny.pt.sha256"):
        registry.load_file(tiny_file)
    code, out, err = run(["generate", "--model", tiny_file, "--out", tmp_path / "out"])
    _one_line(code, err, "tiny.pt is corrupt")
    code, out, err = run(["evaluate", tiny_file, "--n", "16"])
    _one_line(code, err, "tiny.pt is corrupt")


def test_a_damaged_sha256_record_is_one_line(tiny_file):
    checkpoints.sidecar(tiny_file).write_text("not a sum\n")
    with pytest.raises(ValueError, match="is not a sha256 record"):
        registry.load_file(tiny_file)


def test_nan_or_infinite_weights_are_refused(run, tmp_path, monkeypatch):
    for bad in (float("nan"), float("inf")):
        network = dcgan.build(TINY)
        with torch.no_grad():
            next(network.parameters()).view(-1)[3] = bad
        path = registry.save("dcgan", network, TINY, out=tmp_path / f"bad-{bad}.pt")  # its record matches
        code, out, err = run(["generate", "--model", path, "--out", tmp_path / "out"])
        _one_line(code, err, "NaN or infinite weights", "refused")
    monkeypatch.setenv("PRODGEN_CHECKPOINTS", str(tmp_path / "shipped"))  # a shipped one is checked too
    registry.save("dcgan", network, TINY)
    with pytest.raises(ValueError, match="NaN or infinite weights"):
        registry.load_generator("dcgan")


def test_a_file_without_its_record_loads_with_one_warning(tiny_file, run, tmp_path):
    """Older files (written before checkpoints carried a record) are accepted, with a warning saying how to
    record one: loading is weights-only and checked for finite weights anyway, and the record guards against
    damage, not tampering (whoever can change the file can change its record)."""
    checkpoints.sidecar(tiny_file).unlink()
    with pytest.warns(checkpoints.UnverifiedCheckpoint, match="sha256sum tiny.pt > tiny.pt.sha256"):
        registry.load_file(tiny_file)
    code, out, err = run(["generate", "--model", tiny_file, "--out", tmp_path / "out"])
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prodgen: warning: ") and "tiny.pt.sha256" in lines[0], err


# ----------------------------------------------------------------------------- 6. a malformed manifest.json
BROKEN_ENTRIES = {
    "no sha256": (lambda e: e.pop("sha256"), "has no sha256"),
    "no file": (lambda e: e.pop("file"), "has no file"),
    "sha256 a number": (lambda e: e.update(sha256=12), "'sha256' must be 64"),
    "file a path": (lambda e: e.update(file="../../etc/passwd"), "'file' must be the name of a file"),
    "metrics a list": (lambda e: e.update(metrics=[1, 2]), "'metrics' must be an object"),
}


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """The shipped manifest and the dcgan checkpoint in a folder of their own (PRODGEN_CHECKPOINTS)."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    entries = json.loads((paths.checkpoints_dir() / "manifest.json").read_text())
    shutil.copy(paths.checkpoints_dir() / entries["dcgan"]["file"], folder)
    monkeypatch.setenv("PRODGEN_CHECKPOINTS", str(folder))
    return folder, entries


@pytest.mark.parametrize("case", list(BROKEN_ENTRIES))
def test_a_malformed_manifest_entry_is_one_line(case, shipped_copy, run, tmp_path):
    from prodgen.course import doctor

    folder, entries = shipped_copy
    breaks, says = BROKEN_ENTRIES[case]
    breaks(entries["dcgan"])
    (folder / "manifest.json").write_text(json.dumps(entries))
    for args in (["models"], ["models", "--json"], ["generate", "--model", "dcgan", "--out", tmp_path / "out"],
                 ["evaluate", "dcgan", "--n", "16"], ["leaderboard", "--n", "16"]):
        code, out, err = run(args)
        _one_line(code, err, "manifest.json: entry 'dcgan'", says, "git checkout")
    finding = doctor._checkpoints_finding()
    assert not finding.ok and "entry 'dcgan'" in finding.detail and says in finding.detail


def test_a_manifest_that_is_not_an_object_is_one_line(shipped_copy, run):
    folder, _ = shipped_copy
    (folder / "manifest.json").write_text("[1, 2]")
    _one_line(*run(["models"])[::2], "must hold an object")
    (folder / "manifest.json").write_bytes(b"\xff\xfe{")
    _one_line(*run(["models"])[::2], "not valid JSON")


def test_the_shipped_manifest_passes_the_checks():
    assert set(checkpoints.manifest()) >= {"dcgan", "judge"}
    assert os.path.isfile(paths.checkpoints_dir() / "manifest.json")


# ----------------------------------------------------------------------------- 3. the leaderboard's cache
@pytest.fixture
def small_reference(tmp_path, monkeypatch):
    """The leaderboard's real reference built from 32 photos per split in a private cache; counts judge passes."""
    import prodgen.catalog
    from prodgen.evaluation import leaderboard

    small = prodgen.catalog.load_catalog("test", progress=False).subset(range(32))
    monkeypatch.setattr(prodgen.catalog, "load_catalog", lambda split, progress=False, size=32: small)
    monkeypatch.setenv("PRODGEN_CACHE", str(tmp_path / "cache"))
    passes, real = [], leaderboard._judge
    monkeypatch.setattr(leaderboard, "_judge", lambda judge, images: passes.append(len(images)) or real(judge, images))
    judge = registry.load("judge")
    return leaderboard, judge, passes, tmp_path / "cache" / "leaderboard"


def test_a_damaged_cached_reference_is_measured_again(small_reference):
    leaderboard, judge, passes, folder = small_reference
    clean = leaderboard.Reference(judge).floor(16)
    (path,) = folder.glob("reference-*.pt")
    assert (folder / (path.name + ".sha256")).read_text().split()[0] == checkpoints.sha256(path)
    assert len(passes) == 2 and leaderboard.Reference(judge).floor(16) == clean and len(passes) == 2  # cached
    data = torch.load(path, weights_only=True)
    data["train"]["features"][0, 0] = 1e37  # finite, so only the record can tell: the floor would be ~1e74
    torch.save(data, path)
    assert leaderboard.Reference(judge).floor(16) == pytest.approx(clean) and len(passes) == 4
    raw = bytearray(path.read_bytes())  # one flipped byte anywhere in the file
    raw[len(raw) // 3] ^= 0x10
    path.write_bytes(bytes(raw))
    assert leaderboard.Reference(judge).floor(16) == pytest.approx(clean) and len(passes) == 6
    assert checkpoints.sha256(path) == (folder / (path.name + ".sha256")).read_text().split()[0]  # re-cached
    (folder / (path.name + ".sha256")).unlink()  # a file cached before records existed: measured again
    leaderboard.Reference(judge)
    assert len(passes) == 8 and (folder / (path.name + ".sha256")).is_file()
    leaderboard.Reference(judge, refresh=True)  # --refresh rebuilds it even when intact
    assert len(passes) == 10


def test_refresh_rebuilds_the_reference_from_the_command_line(small_reference, monkeypatch, run):
    leaderboard, judge, passes, folder = small_reference
    leaderboard.Reference(judge)
    assert len(passes) == 2

    def measure(model, n=2000, seed=0, judge=None, speed_seconds=1.0, _ref=None):
        _ref.floor(16)  # rows are measured against the session's reference
        return {"model": model.name, "accepts": model.accepts, "n": n, "seed": seed,
                "protocol": leaderboard.PROTOCOL_VERSION, "fid": 1.0, "details": {}}

    monkeypatch.setattr(leaderboard, "measure", measure)
    code, out, err = run(["leaderboard", "--models", "dcgan,vae", "--n", "16", "--json"])
    assert code == 0 and len(passes) == 2, err  # the intact cached reference, once for both rows
    code, out, err = run(["leaderboard", "--models", "dcgan,vae", "--n", "16", "--json", "--refresh"])
    assert code == 0 and len(passes) == 4, err  # measured again, once


def test_a_damaged_cached_row_is_measured_again(small_reference, monkeypatch):
    leaderboard, judge, passes, folder = small_reference
    calls = []

    def measure(model, n=2000, seed=0, judge=None, speed_seconds=1.0, _ref=None):
        calls.append(model.name)
        return {"model": model.name, "accepts": model.accepts, "n": n, "seed": seed,
                "protocol": leaderboard.PROTOCOL_VERSION, "fid": 12.5, "details": {}}

    monkeypatch.setattr(leaderboard, "measure", measure)
    monkeypatch.setattr(leaderboard, "_Session", lambda refresh=False: type("S", (), {
        "judge_at": lambda self, size=32: None, "ref_at": lambda self, size=32: None})())
    assert leaderboard.evaluate_model("dcgan", n=16)["fid"] == 12.5 and len(calls) == 1
    path = leaderboard.cache_file("dcgan", 16)
    assert leaderboard.evaluate_model("dcgan", n=16)["cached"] and len(calls) == 1
    path.write_text(path.read_text().replace("12.5", "92.5"))  # one changed digit: still valid JSON
    row = leaderboard.evaluate_model("dcgan", n=16)
    assert not row["cached"] and row["fid"] == 12.5 and len(calls) == 2
    leaderboard._record(path).unlink()
    assert not leaderboard.evaluate_model("dcgan", n=16)["cached"] and len(calls) == 3


# ----------------------------------------------------------------------------- 4. over-long paths, 5. outside rows
LONG = "x" * 10_000


def _catalog_folder(folder, last_cell: str):
    """Four tiny PNGs and a metadata.csv whose last row lists ``last_cell``."""
    from PIL import Image

    folder.mkdir(exist_ok=True)
    for i in range(4):
        Image.new("RGB", (32, 32), (60 * i, 0, 0)).save(folder / f"{i}.png")
    cells = ["0.png", "1.png", "2.png", last_cell]
    (folder / "metadata.csv").write_text("file,shape\n" + "".join(f"{c},{'ab'[k % 2]}\n" for k, c in
                                                                   enumerate(cells)))
    return folder


@pytest.mark.parametrize("args", [
    ["generate", "--model", "dcgan", "--out", "{tmp}/" + LONG],
    ["generate", "--model", "{tmp}/" + LONG + ".pt", "--out", "{tmp}/out"],
    ["generate", "--model", "dcgan", "--batch", "{tmp}/" + LONG + ".csv", "--out", "{tmp}/out"],
    ["evaluate", "{tmp}/" + LONG + ".pt"],
    ["edit", "--model", "cvae", "--image", "{tmp}/" + LONG + ".png", "--set", "color=red", "--out", "{tmp}/out"],
    ["data", "info", "{tmp}/" + LONG],
    ["train", "judge", "--data", "{tmp}/" + LONG],
], ids=["generate-out", "generate-model", "generate-batch", "evaluate", "edit-image", "data-info", "train-data"])
def test_an_over_long_path_is_one_short_line(args, run, tmp_path):
    code, out, err = run([a.replace("{tmp}", str(tmp_path)) for a in args])
    line = _one_line(code, err)
    assert len(line) < 400 and "characters)" in line and "Errno" not in line, line
    assert not (tmp_path / "out").exists()


def test_an_over_long_path_through_the_installed_command(tmp_path):
    code, out, err = in_a_subprocess(["generate", "--model", "dcgan", "--out", tmp_path / LONG])
    assert "File name too long" in _one_line(code, err)


def test_an_over_long_file_cell_names_its_row(run, tmp_path):
    folder = _catalog_folder(tmp_path / "cat", LONG + ".png")
    code, out, err = run(["data", "info", folder, "--min-per-value", "1"])
    line = _one_line(code, err, "metadata.csv, row 5", "cannot be opened (File name too long)")
    assert len(line) < 400, line


@pytest.mark.parametrize("cell, says", [
    ("../../etc/passwd", "leading out of the folder"),
    ("/etc/passwd", "an absolute path"),
    ("link.png", "leading out of the folder"),
    ("sub/../../outside.png", "leading out of the folder"),
])
def test_a_file_cell_outside_the_folder_is_refused(cell, says, run, tmp_path, monkeypatch):
    from PIL import Image

    from prodgen.catalog.folder import load_folder

    Image.new("RGB", (32, 32)).save(tmp_path / "outside.png")  # a readable image: only the check can refuse it
    folder = _catalog_folder(tmp_path / "cat", cell)
    (folder / "sub").mkdir()
    (folder / "link.png").symlink_to(tmp_path / "outside.png")
    opened = []
    import PIL.Image

    real_open = PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda p, *a, **k: opened.append(str(p)) or real_open(p, *a, **k))
    with pytest.raises(ValueError, match=f"row 5: file .* {says}"):
        load_folder(folder, min_per_value=1)
    code, out, err = run(["data", "info", folder, "--min-per-value", "1"])
    _one_line(code, err, "metadata.csv, row 5", says)
    code, out, err = run(["train", "judge", "--data", folder, "--fast"])
    _one_line(code, err, "metadata.csv, row 5", says)
    assert not opened, f"opened {opened}"


def test_links_and_subfolders_inside_the_folder_still_work(tmp_path):
    from prodgen.catalog.folder import load_folder

    folder = _catalog_folder(tmp_path / "cat", "sub/3.png")
    (folder / "sub").mkdir()
    (folder / "3.png").rename(folder / "sub" / "3.png")
    (folder / "metadata.csv").write_text((folder / "metadata.csv").read_text().replace("1.png", "one.png"))
    (folder / "one.png").symlink_to("sub/3.png")
    assert len(load_folder(folder, min_per_value=1)) == 4


# ----------------------------------------------------------------------------- 7. descriptions
@pytest.mark.parametrize("description, says", [
    ("a white mug by Nova", "the colour 'white', which the catalog does not have"),
    ("a crimson tee", "the colour 'crimson'"),
    ("a sky-blue cap", "the colour 'sky-blue'"),
    ("白色马克杯", "the colour '白色'"),
    ("a blue dress", "names no product; say which one: t-shirt, mug"),
    ("蓝色连衣裙", "names no product"),
    ("hello world", "names no product attribute the catalog knows"),
])
def test_a_description_the_catalog_cannot_draw_is_refused(description, says, run, tmp_path):
    from prodgen.models.text import validate_description

    with pytest.raises(ValueError, match=says.replace("(", r"\(")):
        validate_description(description)
    for model in ("text2img", "diffusion-text"):
        code, out, err = run(["generate", "--model", model, "--text", description, "--out", tmp_path / "out"])
        _one_line(code, err, says)
        assert not (tmp_path / "out").exists()
    (tmp_path / "requests.csv").write_text(f"description,n\na red mug,1\n{description},1\n")
    code, out, err = run(["generate", "--model", "text2img", "--batch", tmp_path / "requests.csv", "--out",
                          tmp_path / "out"])
    _one_line(code, err, "request 2:", says)


def test_descriptions_the_catalog_can_draw_still_pass():
    from prodgen.catalog import load_catalog
    from prodgen.models.text import not_understood, validate_description
    from prodgen.models.text2img import NEW_PHRASINGS

    test = load_catalog("test", progress=False)
    for description in test.descriptions_en[:300] + test.descriptions_zh[:300] + [p for p, _ in NEW_PHRASINGS]:
        validate_description(description)
    assert validate_description("two red mugs") == ["two", "red", "mug"]
    assert not_understood("I would love a green t-shirt, please") == ["i", "would", "love", "please"]
    assert not_understood("大号红色条纹T恤，Acme品牌") == []
    validate_description("red and striped", require_category=False)  # lessons may read partial descriptions


def test_generate_says_which_words_it_did_not_understand(run, tmp_path):
    code, out, err = run(["generate", "--model", "text2img", "--text", "a lovely red mug for grandma", "--out",
                          tmp_path / "out"])
    assert code == 0, err
    assert "note: words not understood (ignored): lovely, grandma;" in out
    code, out, err = run(["generate", "--model", "text2img", "--text", "a red mug", "--out", tmp_path / "out2"])
    assert code == 0 and "not understood" not in out


# ----------------------------------------------------------------------------- 8. the studio's kernels
def test_the_voila_command_culls_idle_kernels_and_caps_them(tmp_path):
    from prodgen.apps.studio_server import KERNELS, voila_command

    command = voila_command(tmp_path / "studio.ipynb", 8866, "t0ken")
    assert f"--MappingKernelManager.cull_idle_timeout={KERNELS['cull_idle_timeout']}" in command
    assert f"--MappingKernelManager.cull_interval={KERNELS['cull_interval']}" in command
    assert "--MappingKernelManager.cull_connected=False" in command  # an open page keeps its kernel
    assert "--VoilaConfiguration.multi_kernel_manager_class=prodgen.apps.studio_kernels.CappedKernelManager" in command
    assert f"--CappedKernelManager.max_kernels={KERNELS['max_kernels']}" in command
    assert 0 < KERNELS["cull_interval"] <= KERNELS["cull_idle_timeout"] and KERNELS["max_kernels"] >= 2
    assert "--Voila.ip=127.0.0.1" in command and "--token=t0ken" in command


def test_the_kernel_cap_frees_a_closed_page_or_refuses_in_one_line(monkeypatch):
    pytest.importorskip("jupyter_server")
    import asyncio
    from types import SimpleNamespace

    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
    from tornado import web

    from prodgen.apps.studio_kernels import CappedKernelManager

    manager = CappedKernelManager(max_kernels=2)
    started, stopped = [], []

    async def start(self, *args, **kwargs):
        kernel = f"k{len(started)}"
        started.append(kernel)
        self._kernels[kernel] = SimpleNamespace(execution_state="idle", last_activity=len(started))
        return kernel

    async def shutdown(kernel, *args, **kwargs):
        stopped.append(kernel)
        manager._kernels.pop(kernel)

    monkeypatch.setattr(AsyncMappingKernelManager, "start_kernel", start)
    monkeypatch.setattr(manager, "shutdown_kernel", shutdown)
    run = asyncio.new_event_loop().run_until_complete
    run(manager.start_kernel()), run(manager.start_kernel())
    manager._kernel_connections.update({"k0": 0, "k1": 1})  # k0's page was closed (a reload), k1's is open
    assert run(manager.start_kernel()) == "k2" and stopped == ["k0"]  # the closed page's kernel made room
    manager._kernel_connections.update({"k2": 1})
    with pytest.raises(web.HTTPError) as refused:  # every page still open: no third kernel
        run(manager.start_kernel())
    assert refused.value.status_code == 503 and "close a studio tab" in refused.value.log_message
    assert sorted(manager.list_kernel_ids()) == ["k1", "k2"]


@pytest.mark.slow
def test_a_live_voila_server_keeps_at_most_max_kernels(tmp_path):
    """The real Voilà with the studio's command line, on a one-cell notebook: six page loads (no browser, so
    every page is closed at once) leave at most ``max_kernels`` kernels, the oldest shut down first."""
    import signal
    import subprocess
    import time
    import urllib.error
    import urllib.request

    import nbformat

    from prodgen.apps import studio_server

    if not studio_server.voila_available():
        pytest.skip("Voilà is not installed (the studio extra)")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('page')")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / "page.ipynb")
    port = 8899
    log = open(tmp_path / "voila.log", "wb")
    proc = subprocess.Popen(studio_server.voila_command(tmp_path / "page.ipynb", port, "tok"), cwd=tmp_path,
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
                                str(Path(studio_server.__file__).parents[2]), os.environ.get("PYTHONPATH")]))})
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/voila/static/", timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.5)
        for _ in range(6):
            assert urllib.request.urlopen(f"http://127.0.0.1:{port}/?token=tok", timeout=120).status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()
    text = (tmp_path / "voila.log").read_text(errors="replace")
    assert "Culling kernels with idle durations > 300 seconds" in text, text[-2000:]
    started, shut = text.count("Kernel started"), text.count("(its page is closed)")
    assert started == 6 and shut == 2, text[-2000:]


# ----------------------------------------------------------------------------- interrupted runs
@pytest.mark.slow(seconds=30)
def test_sigterm_during_a_batch_is_clean_like_ctrl_c(tmp_path):
    """SIGTERM (kill, a scheduler) ends `generate --batch` like Ctrl-C: one line, exit 130, no partial folder."""
    import signal
    import subprocess
    import sys
    import time

    sheet = tmp_path / "rows.csv"
    sheet.write_text("color,n\n" + "".join(f"red,{1000}\n" for _ in range(100)), encoding="utf-8")
    out = tmp_path / "out"
    run = subprocess.Popen([sys.executable, "-m", "prodgen", "generate", "--model", "cgan-projection", "--batch",
                            str(sheet), "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.partial-*")) and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
    assert list(tmp_path.glob(".out.partial-*")), "the run never started writing"
    time.sleep(1.0)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert err.strip().splitlines()[-1] == "prodgen: interrupted; nothing half-written was left behind", err
    assert "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))


def test_partial_folders_of_killed_runs_are_swept(tmp_path):
    """A run killed with SIGKILL cannot clean up; the next write to the same place removes its leftovers (its
    process is gone) and leaves a running process's folder alone."""
    import os

    from prodgen.paths import atomic_folder

    out = tmp_path / "out"
    dead = tmp_path / ".out.partial-999999999"  # no such process
    alive = tmp_path / f".out.partial-{os.getppid()}"  # the test runner's parent: running
    for folder in (dead, alive):
        folder.mkdir()
        (folder / "000000.png").write_bytes(b"x")
    with atomic_folder(out) as tmp:
        (tmp / "a.txt").write_text("a")
    assert (out / "a.txt").is_file() and not dead.exists() and alive.exists()


def test_a_16_bit_grey_photo_is_read_by_edit_like_the_catalog_does(tmp_path):
    """`prodgen edit` reads photos with the catalog folder's loader: a 16-bit greyscale PNG is scaled to 8 bits
    (it used to be clipped to 255, a 94-97 % white picture)."""
    import numpy as np
    from PIL import Image

    from prodgen.apps.edit import load_photo

    grey8 = (np.arange(32 * 32).reshape(32, 32) % 200 + 20).astype(np.uint8)  # 20..219
    path16 = tmp_path / "grey16.png"
    Image.fromarray(grey8.astype(np.uint16) * 257).save(path16)  # the same picture in 16 bits
    assert Image.open(path16).mode.startswith("I")
    image, note = load_photo(path16)
    assert note is None and image.shape == (1, 3, 32, 32)
    assert (image[0, 0].numpy().astype(int) - grey8).__abs__().max() <= 1  # the same grey levels, not white
    assert (image == 255).float().mean() < 0.01
