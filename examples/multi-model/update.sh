#!/usr/bin/env bash
# The seed's update_model_deployment.sh, written for fleet: model_b moves to v2 with zero
# downtime; the other endpoints are not touched. If v2 fails to start, v1 keeps serving.
set -euo pipefail
cd "$(dirname "$0")"

WORKSPACE_NAME="${WORKSPACE_NAME:-default}"
RESOURCE_GROUP="your-resource-group"
MODEL_NAME="model_b"
MODEL_VERSION="v2"  # updated version
SERVICE_NAME="aci-model-b"

fleet workspace set -w $WORKSPACE_NAME -g $RESOURCE_GROUP

# v2 must be registered first (the seed assumes it is); --exist-ok makes re-runs harmless.
fleet model register --name $MODEL_NAME --version $MODEL_VERSION --path ./models/model_b_v2 \
    --description "Model B for user segment 2, retrained" --exist-ok --workspace-name $WORKSPACE_NAME

fleet online-deployment update --name default --endpoint $SERVICE_NAME --model $MODEL_NAME:$MODEL_VERSION --workspace-name $WORKSPACE_NAME --resource-group $RESOURCE_GROUP
