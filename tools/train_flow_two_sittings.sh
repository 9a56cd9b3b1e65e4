#!/usr/bin/env bash
# How the shipped `flow` and `flow-text` checkpoints (lesson 13) were made, 2026-12-07, on one CPU thread.
# Sitting 1 (63 min): `prodgen train flow --out data/train-state/flow-epoch18.pt`, stopped after epoch 18; its EMA
# weights were kept in git (commit 697b4f5, data/train-state/flow-epoch18.pt). Sitting 2 (this script's first step):
# 70 more minutes from those weights with a fresh Adam and seed 1 (the recipe's `init` setting), written to a file;
# then the file is shipped as `flow` and, with the same weights behind the text reader, `flow-text`.
# Run from the repository root; needs the epoch-18 file (git show 697b4f5:data/train-state/flow-epoch18.pt > ...).
set -euo pipefail
INIT=${1:-data/train-state/flow-epoch18.pt}
OUT=${2:-build/flow-continued.pt}
mkdir -p "$(dirname "$OUT")"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
python - "$INIT" "$OUT" <<'PY'
import sys

import torch

from prodgen.models import registry
from prodgen.models.flow import train_checkpoint

torch.set_num_threads(1)
init, out = sys.argv[1], sys.argv[2]
print(train_checkpoint("flow", init=init, minutes=70, seed=1, out=out, checkpoint=out.replace(".pt", ".state.pt")))
model, info = registry.load_file(out)
training = {**info["training"], "command": "tools/train_flow_two_sittings.sh (after `prodgen train flow` stopped "
            "at epoch 18)"}
registry.save("flow", model, info["config"], metrics=info["metrics"], training=training)
registry.save("flow-text", model, {**info["config"], "reader": "text-votes"}, metrics={},
              training={**training, "same_weights_as": "flow"})
PY
