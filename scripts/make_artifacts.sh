#!/usr/bin/env bash
# Rebuild every shipped model (run from the project root with ../shared/data beside it). Each command
# writes its folder under assets/ with a model card. Times on 2 CPU cores (the model cards' train_seconds
# and the closing notes): sst2-lora ~22 min; each LengthDrop Train-Select head ~20-30 min; Pyramid-BERT's
# setting ~11-12 min each; AdapLeR frozen ~7 min, joint ~16 min (3 of them saliency targets); TR-BERT RL ~3 min (4,000 rows x 3
# epochs), joint ~60 min (one epoch, 2,105 steps); LTP ~13 min on all of SST-2 train; Token Dropping's table
# ~6 min. Every trainer takes --device cuda|mps; on one H100 (README, Training on a GPU) sst2-lora took ~2 min,
# a LengthDrop head 7-9 min, AdapLeR joint 4 min, TR-BERT joint 14 min (six jobs sharing the GPU).
# Set ONLY="name ..." to run some of the steps (names below).
set -euo pipefail
ONLY=${ONLY:-"sst2-lora pyramid-setting token-dropping-table train-select adapler trbert ltp"}
want() { [[ " $ONLY " == *" $1 "* ]]; }

# The inference-only regime's model: fine-tuned at full length. (The shipped one was trained before
# length-grouped batches existed: add --group-by-length false to reproduce it exactly.)
want sst2-lora && python -m pyramid train

# Pyramid-BERT's own setting: from the pre-trained model, core-set at one fixed final retention.
if want pyramid-setting; then
  python -m pyramid train --selector coreset --retention 0.3 --name sst2-lora-pyramid
  python -m pyramid train --selector coreset --retention 0.1 --name sst2-lora-pyramid-rho0.1
fi

# Token Dropping's importance table (the MLM head on the frozen encoder, then the EMA of its losses).
want token-dropping-table && python -m pyramid train-token-dropping

# Train-Select for the fixed-schedule selectors: LengthDrop from sst2-lora, one model for every rho in [0.1, 0.5].
if want train-select; then
  for sel in coreset attention random first-k token-dropping tome coreset-pool; do
    python -m pyramid train --selector "$sel" --retention-range 0.1,0.5 --init-head sst2-lora
  done
fi

# AdapLeR: predictors on the frozen sst2-lora (inference-only), then joint training (Train-Select).
if want adapler; then
  python -m pyramid train-adapler --limit 8000 --epochs 3 --phi 0.005 --eta-lr 5e-3
  python -m pyramid train-adapler --joint true --phi 0.002 --eta-lr 5e-3
fi

# TR-BERT: the RL phase on the frozen sst2-lora (inference-only), then the joint phase (Train-Select).
if want trbert; then
  python -m pyramid train-trbert --limit 4000 --epochs 3
  python -m pyramid train-trbert --phase joint --batch-size 4 --accumulate 8 --lr 3e-5 --alpha 0.5
fi

# LTP: soft then hard stage from sst2-lora (writes the Train-Select model and the thresholds on sst2-lora).
want ltp && python -m pyramid train-ltp
