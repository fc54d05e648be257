#!/usr/bin/env bash
# Rebuild the learned selectors' artifacts for the shipped sst2-lora head (run from the project root
# with ../shared/data beside it). On 2 CPU cores: AdapLeR ~10 min, TR-BERT ~10 min, Token Dropping
# ~10 min; each writes its folder under assets/ with a model card.
set -euo pipefail
python -m pyramid train-adapler
python -m pyramid train-trbert
python -m pyramid train-token-dropping
