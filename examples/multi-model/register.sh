#!/usr/bin/env bash
# The seed's model_registration_script.sh, written for fleet: `az ml` -> `fleet`, nothing else.
# Needs the trained models in ./models (python train_models.py makes them).
set -euo pipefail
cd "$(dirname "$0")"

MODEL_BASE_PATH="./models"
WORKSPACE_NAME="${WORKSPACE_NAME:-default}"
RESOURCE_GROUP="your-resource-group"   # accepted and ignored, so az ml scripts carry over

fleet workspace set -w $WORKSPACE_NAME -g $RESOURCE_GROUP

model_names=("model_a" "model_b" "model_c")
model_versions=("v1" "v1" "v2")
model_descriptions=("Model A for user segment 1" "Model B for user segment 2" "Model C for user segment 3")

for i in "${!model_names[@]}"; do
    model_name="${model_names[$i]}"
    model_version="${model_versions[$i]}"
    model_description="${model_descriptions[$i]}"
    model_path="$MODEL_BASE_PATH/$model_name"

    fleet model register \
        --name $model_name \
        --version $model_version \
        --description "$model_description" \
        --path $model_path \
        --workspace-name $WORKSPACE_NAME \
        --resource-group $RESOURCE_GROUP
done
