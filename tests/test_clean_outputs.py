"""Lessons whose outputs carry no warnings: no committed solution notebook holds a stderr stream or
an error output, and the causes of the warnings lessons used to show stay fixed (a read-only array
handed to torch, matplotlib's missing CJK glyphs, the kernel's unencrypted-transport warning).

The notebook check only reads the committed JSON (fast); it applies to every lesson added later.
"""
import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def _noise(path: Path) -> list[str]:
    """'cell N: first line' for each stderr stream or error output in a notebook."""
    found = []
    for i, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"cell {i + 1}: error {output.get('ename')}: {output.get('evalue', '')[:120]}")
            elif output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = output["text"] if isinstance(output["text"], str) else "".join(output["text"])
                first = next((line for line in text.splitlines() if line.strip()), "")
                found.append(f"cell {i + 1}: stderr ({len(text.splitlines())} lines): {first[:160]}")
    return found


def test_there_are_lessons_to_check():
    assert len(SOLUTIONS) >= 8


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_committed_solution_has_no_warnings_or_errors_in_its_outputs(path):
    noise = _noise(path)
    assert not noise, (f"{path.name} shows warnings or errors to students; fix their cause and re-execute "
                       "the lesson:\n" + "\n".join(noise))


def test_the_check_sees_stderr_and_errors(tmp_path):
    nb = {"cells": [
        {"cell_type": "code", "source": "x", "metadata": {}, "outputs": [
            {"output_type": "stream", "name": "stdout", "text": "fine\n"},
            {"output_type": "stream", "name": "stderr", "text": ["\n", "UserWarning: careful\n"]}]},
        {"cell_type": "code", "source": "y", "metadata": {}, "outputs": [
            {"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": []}]},
    ]}
    path = tmp_path / "00_noisy.ipynb"
    path.write_text(json.dumps(nb))
    assert _noise(path) == ["cell 1: stderr (2 lines): UserWarning: careful", "cell 2: error ValueError: bad"]


def test_rendered_products_are_writable_so_torch_does_not_warn():
    torch = pytest.importorskip("torch")
    from prodgen.catalog import render_product

    photo = render_product("handbag", "teal", "large", "zenith", "checked", image_size=64, seed=3)
    assert photo.flags.writeable
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.from_numpy(photo)
    assert not [w for w in caught if "not writable" in str(w.message)]


def test_lesson_kernels_get_encrypted_channels():
    pytest.importorskip("jupyter_client")
    from jupyter_client.manager import KernelManager

    from prodgen.course import _encrypted_kernel_config

    config = _encrypted_kernel_config()
    if "transport_encryption" not in KernelManager.class_trait_names():
        assert config == {}  # an older jupyter_client: nothing to ask for
    else:
        assert config["config"].KernelManager.transport_encryption == "auto"


@pytest.mark.slow
def test_course_run_prints_only_its_own_progress(tmp_path):
    """A real kernel runs a tiny lesson; the terminal shows the progress line and nothing else."""
    script = textwrap.dedent(f"""
        import nbformat
        from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
        from prodgen import course
        nb = new_notebook(metadata={{"kernelspec": {{"name": "python3", "display_name": "Python 3",
                                                     "language": "python"}}}})
        nb.cells = [new_markdown_cell("# Tiny"), new_code_cell("FAST = False", metadata={{"tags": ["parameters"]}}),
                    new_code_cell("print(1 + 1)")]
        root = {str(tmp_path)!r}
        (course.Path(root) / "solutions").mkdir()
        nbformat.write(nb, root + "/solutions/00_tiny.ipynb")
        [run] = course.run(["0"], fast=True, root=root, log=lambda line: print("progress:", line.split(" (")[0]))
        print("ok" if run.ok else run.message)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.stdout.splitlines() == ["progress: 00_tiny", "ok"], done.stdout + done.stderr
    assert "without encryption" not in done.stderr
    assert done.stderr.strip() == "", done.stderr
    assert (tmp_path / "build" / "executed" / "solutions" / "00_tiny.kernel.log").is_file()  # the kernel's own log
