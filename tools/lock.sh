#!/usr/bin/env bash
# Regenerate requirements-lock.txt: the course, its `dev` tools and the `studio` page at one exact version per
# package, resolved from the lower bounds in pyproject.toml (tooling; the README's set-up and .ci/run install it).
#
#   tools/lock.sh                       keep the current pins; resolve only what pyproject.toml changed
#   tools/lock.sh --upgrade             the newest versions of everything (then run the whole suite, CONTRIBUTING.md)
#   tools/lock.sh --upgrade-package X   the newest X only (and what X needs)
#
# Needs uv (`pip install uv`) and PyPI. The lock is universal: Linux, macOS and Windows, Python >= 3.10 (packages
# that differ carry markers such as `; python_full_version < '3.11'`); CI tests it on Linux with Python 3.11.
#
# Why torch is handled this way. PyPI has one torch per version, and its Linux wheels depend on the CUDA runtime
# (nvidia-*, cuda-*, triton: several GB). The CPU build (download.pytorch.org/whl/cpu, or this machine's local
# wheel) has the same version number plus a `+cpu` label and depends on none of them. So the lock is resolved
# against PyPI's metadata with torch pinned by tools/lock-constraints.txt (TORCH below) -- every package torch
# itself needs (sympy, networkx, filelock, ...) is locked together with the rest -- and the CUDA-only packages are
# left out of the file (--no-emit-package, the list read from torch's own resolution). Then:
#  - CPU users install the CPU build first (README, .ci/run), then the lock: `torch==TORCH` is already satisfied by
#    TORCH+cpu, and nothing CUDA is installed;
#  - CUDA users install the lock as it is: pip takes torch from PyPI, whose metadata pins triton and cuda-toolkit
#    (and through it the nvidia-* libraries) to exact versions; only cuda-bindings/cuda-pathfinder float in a range.
# Rejected: resolving against the local +cpu wheel (it exists for one Python and one platform, so the lock could
# only serve Linux / Python 3.11), and leaving torch out of the resolution (its own dependencies would go unpinned).
set -euo pipefail
cd "$(dirname "$0")/.."

CONSTRAINTS=tools/lock-constraints.txt   # torch==TORCH: the release the checkpoints and figures were measured with
TORCH=$(sed -n 's/^torch==\([^ ]*\).*/\1/p' "$CONSTRAINTS")
PYTHON_MIN=3.10   # pyproject.toml's requires-python
export UV_PYTHON_DOWNLOADS=never
command -v uv >/dev/null || { echo "tools/lock.sh: needs uv: pip install uv" >&2; exit 2; }

[ -n "$TORCH" ] || { echo "tools/lock.sh: no torch==VERSION line in $CONSTRAINTS" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "torch==$TORCH" > "$tmp/torch.txt"

# The CUDA-only packages PyPI's torch pulls in (on any platform), to be left out of the lock.
uv pip compile "$tmp/torch.txt" --universal --python-version "$PYTHON_MIN" --no-header --no-annotate --quiet \
    -o "$tmp/torch-closure.txt"
no_emit=()
cuda_names=$(sed -n 's/^\([A-Za-z0-9._-]*\)==.*/\1/p' "$tmp/torch-closure.txt" \
             | grep -E '^(nvidia-|cuda-|triton$)' | sort -u)
for name in $cuda_names; do
    no_emit+=(--no-emit-package "$name")
done
if [ ${#no_emit[@]} -eq 0 ]; then
    echo "tools/lock.sh: torch $TORCH pulls no CUDA package: check the policy above" >&2; exit 1
fi

# Resolve into a copy of the current lock (uv keeps its pins unless told to upgrade), then replace it atomically.
[ -f requirements-lock.txt ] && cp requirements-lock.txt "$tmp/lock.txt"
uv pip compile pyproject.toml --extra dev --extra studio --constraint "$CONSTRAINTS" \
    --universal --python-version "$PYTHON_MIN" "${no_emit[@]}" \
    --custom-compile-command "tools/lock.sh" --quiet -o "$tmp/lock.txt" "$@"

if grep -E '^(nvidia-|cuda-|triton==)' "$tmp/lock.txt"; then
    echo "tools/lock.sh: a CUDA-only package reached the lock (above)" >&2; exit 1
fi
grep -qx "torch==$TORCH" "$tmp/lock.txt" || { echo "tools/lock.sh: torch==$TORCH missing from the lock" >&2; exit 1; }
mv "$tmp/lock.txt" requirements-lock.txt.tmp && mv requirements-lock.txt.tmp requirements-lock.txt
echo "requirements-lock.txt: $(grep -c '^[a-z0-9]' requirements-lock.txt) pins" \
     "($(( ${#no_emit[@]} / 2 )) CUDA-only packages left out)"
