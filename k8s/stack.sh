#!/usr/bin/env bash
# Registers the `archft-kubeflow` ZenML stack in one command and prepares its namespace:
#   orchestrator    archft_kubeflow (pipelines/kubeflow.py: ZenML's Kubeflow orchestrator with
#                   GPUs, node selectors, tolerations, PVCs and KFP caching that work)
#   artifact store  S3 or MinIO (every artifact, and so every model, lives there)
#   registry        where `make kubeflow-image` pushes the step image
#   image builder   local docker (only used if you drop `skip_build` from configs/kubeflow.yaml)
# and, with kubectl, in $NAMESPACE: the secret the step pods read their ZenML API key from
# (a service account's key, never written into the pipeline YAML) and the PVC that keeps an
# interrupted search's checkpoint (k8s/pvc.yaml).
#
# First `zenml login https://your-zenml-server` (the step pods reach the server at that URL).
#   KUBEFLOW_HOST=https://kubeflow.example.com/pipeline REGISTRY=registry.example.com/ml \
#   ARTIFACT_PATH=s3://archft-artifacts S3_ENDPOINT=http://minio-service.kubeflow:9000 \
#   AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... NAMESPACE=kubeflow-user \
#   k8s/stack.sh                      (or: make kubeflow-stack with the same variables)
# Run it again to update: existing components are updated, not duplicated.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${KUBEFLOW_HOST:?the Kubeflow Pipelines API, e.g. https://kubeflow.example.com/pipeline}"
: "${REGISTRY:?the container registry, e.g. registry.example.com/ml}"
: "${ARTIFACT_PATH:?the artifact store bucket, e.g. s3://archft-artifacts}"
: "${AWS_ACCESS_KEY_ID:?the S3/MinIO access key}"
: "${AWS_SECRET_ACCESS_KEY:?the S3/MinIO secret key}"
NAMESPACE=${NAMESPACE:-kubeflow}
S3_ENDPOINT=${S3_ENDPOINT:-}          # empty: AWS S3
STACK=${STACK:-archft-kubeflow}
STORE_SECRET=${STORE_SECRET:-archft-zenml-store}   # = settings.orchestrator.store_secret
SERVICE_ACCOUNT=${SERVICE_ACCOUNT:-archft-steps}
ZENML=${ZENML:-zenml}
KUBECTL=${KUBECTL:-kubectl}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
umask 077  # the files below hold credentials

quiet() { # quiet <command...>: its output only if it fails
  "$@" > "$tmp/out" 2>&1 || { cat "$tmp/out" >&2; echo "k8s/stack.sh: failed: $*" >&2; return 1; }
}
exists() { # exists <component kind> <name>
  "$ZENML" "$1" describe "$2" >/dev/null 2>&1
}
register() { # register <component kind> <name> <args...>: register, or update if it exists
  local kind=$1 name=$2
  shift 2
  if exists "$kind" "$name"; then
    local args=() a
    for a in "$@"; do [[ $a == --flavor=* ]] || args+=("$a"); done
    quiet "$ZENML" "$kind" update "$name" "${args[@]}"
  else
    quiet "$ZENML" "$kind" register "$name" "$@"
  fi
  echo "  $kind $name"
}

echo "registering stack $STACK"
if ! "$ZENML" orchestrator flavor describe archft_kubeflow >/dev/null 2>&1; then
  quiet "$ZENML" orchestrator flavor register pipelines.kubeflow.ArchftKubeflowOrchestratorFlavor
fi

# S3 credentials as a ZenML secret (from a file: never on a command line).
printf '{"aws_access_key_id": "%s", "aws_secret_access_key": "%s"}\n' \
  "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" > "$tmp/s3.json"
if "$ZENML" secret get "$STACK-s3" >/dev/null 2>&1; then
  quiet "$ZENML" secret update "$STACK-s3" --values="@$tmp/s3.json"
else
  quiet "$ZENML" secret create "$STACK-s3" --values="@$tmp/s3.json"
fi
client_kwargs=()
[ -n "$S3_ENDPOINT" ] && client_kwargs=(--client_kwargs="{\"endpoint_url\": \"$S3_ENDPOINT\"}")
register artifact-store "$STACK-s3" --flavor=s3 --path="$ARTIFACT_PATH" \
  --authentication_secret="$STACK-s3" "${client_kwargs[@]}"
register container-registry "$STACK-registry" --flavor=default --uri="$REGISTRY"
register image-builder "$STACK-builder" --flavor=local
register orchestrator "$STACK" --flavor=archft_kubeflow --kubeflow_hostname="$KUBEFLOW_HOST" \
  --user_namespace="$NAMESPACE" --store_secret="$STORE_SECRET"
if exists stack "$STACK"; then
  quiet "$ZENML" stack set "$STACK"
else
  quiet "$ZENML" stack register "$STACK" -o "$STACK" -a "$STACK-s3" -c "$STACK-registry" \
    -i "$STACK-builder" --set
fi
echo "  active stack: $STACK"

# The step pods' ZenML credentials: a service account's API key in a Kubernetes secret.
if "$ZENML" service-account describe "$SERVICE_ACCOUNT" >/dev/null 2>&1; then
  quiet "$ZENML" service-account api-key "$SERVICE_ACCOUNT" create \
    "$STACK-$(date +%Y%m%d%H%M%S)" --output-file "$tmp/key"
else
  quiet "$ZENML" service-account create "$SERVICE_ACCOUNT" --output-file "$tmp/key"
fi
printf 'ZENML_STORE_API_KEY=%s\n' "$(tr -d '\n' < "$tmp/key")" > "$tmp/store.env"
"$KUBECTL" -n "$NAMESPACE" create secret generic "$STORE_SECRET" \
  --from-env-file="$tmp/store.env" --dry-run=client -o yaml \
  | "$KUBECTL" -n "$NAMESPACE" apply -f - >/dev/null
echo "  secret $NAMESPACE/$STORE_SECRET (ZENML_STORE_API_KEY of service account $SERVICE_ACCOUNT)"
quiet "$KUBECTL" -n "$NAMESPACE" apply -f k8s/pvc.yaml
echo "  PVC $NAMESPACE/archft-work (the search's checkpoints)"
echo "next: make kubeflow-image REGISTRY=$REGISTRY, then python run.py --config configs/kubeflow.yaml"
