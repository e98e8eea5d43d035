#!/usr/bin/env bash
# The seed's aci_deployment_script.sh, written for fleet. Each deployment is ready in seconds.
set -euo pipefail
cd "$(dirname "$0")"

WORKSPACE_NAME="${WORKSPACE_NAME:-default}"
RESOURCE_GROUP="your-resource-group"
COMPUTE_TYPE="${COMPUTE_TYPE:-local}"   # local: processes on this machine (az: aci); aks or ray: the Ray compute

fleet workspace set -w $WORKSPACE_NAME -g $RESOURCE_GROUP

model_names=("model_a" "model_b" "model_c")
model_versions=("v1" "v1" "v2")
service_names=("aci-model-a" "aci-model-b" "aci-model-c")

for i in "${!model_names[@]}"; do
    model_name="${model_names[$i]}"
    model_version="${model_versions[$i]}"
    service_name="${service_names[$i]}"

    fleet online-endpoint create --name $service_name --compute-type $COMPUTE_TYPE --workspace-name $WORKSPACE_NAME --resource-group $RESOURCE_GROUP
    fleet online-deployment create --name default --endpoint $service_name --model $model_name:$model_version --workspace-name $WORKSPACE_NAME --resource-group $RESOURCE_GROUP
done
