#!/usr/bin/env bash
# The committed command that trains the shipped `ae-64` (lesson 14's autoencoder, issue 25) in the background.
#
# What it runs: `prodgen train ae-64 --resume` with the recipe in prodgen/models/autoencoder.py (CHECKPOINT_CONFIG,
# chosen by benchmarks/ae64_recipe.py: data/results/ae64-recipe.json), then the recipe computes the latent scale,
# measures PSNR / judge-64 on reconstructions / FID against the 64 px floor, and writes data/checkpoints/ae-64.pt and
# its manifest entry. The 64 px catalog is rendered first if it is not cached (about a minute).
#
# Resumable: the engine saves the whole training state after every epoch ($PRODGEN_CACHE/train-state/ae-64.pt, or
# data/cache/train-state/ae-64.pt; commit it between sessions with `python tools/train_state.py pack ae-64`, into
# data/train-state/, which this script restores; epoch 3 of 30 on 2026-12-08); run this script again after an interruption and it continues from the last
# epoch (with --resume, the recipe's `epochs` is the total to reach). MINUTES caps one sitting's wall-clock time
# (the run then stops cleanly at a batch boundary, saves its state, and ships what it has: rerun to continue).
#
# Usage, from anywhere:   tools/train_ae64.sh              (background; the log path is printed)
#                         FOREGROUND=1 tools/train_ae64.sh (in this terminal)
# Settings: THREADS (torch threads, default 1: the recipe was measured on one), MINUTES (default 150), LOG.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-1}
MINUTES=${MINUTES:-150}
CACHE=${PRODGEN_CACHE:-data/cache}
LOG=${LOG:-$CACHE/train-ae64.log}
mkdir -p "$(dirname "$LOG")"
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
python -m prodgen data build --size 64 --split train --split test --workers "$THREADS"
# a fresh clone has no state in its cache: start from the committed one (tools/train_state.py), if it is newer
if [[ -f data/train-state/ae-64.pt.sha256 ]]; then python tools/train_state.py unpack ae-64 || true; fi
command=(python -m prodgen train ae-64 --resume --minutes "$MINUTES")
if [[ -n "${FOREGROUND:-}" ]]; then
    "${command[@]}" 2>&1 | tee -a "$LOG"
else
    nohup "${command[@]}" >> "$LOG" 2>&1 &
    echo "training ae-64 in the background (pid $!, $THREADS thread(s), at most $MINUTES min); log: $LOG"
fi
