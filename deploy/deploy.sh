#!/usr/bin/env bash
# make deploy PROJECT=… REGION=… HOME_LAT=… HOME_LON=… [DRY_RUN=1]
#
# From an empty project (or the Python system's) to a running pair: APIs,
# service accounts, secrets and bucket with least-privilege bindings, images
# built by Cloud Build, both services deployed by image digest (never a
# moving tag), and the Scheduler job. Safe to run again: it creates only what
# is missing and replaces the services with the new revision.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
# shellcheck source=deploy/lib.sh
source deploy/lib.sh
require PROJECT REGION HOME_LAT HOME_LON
# shellcheck source=deploy/config.sh
source deploy/config.sh
# shellcheck source=deploy/iam.sh
source deploy/iam.sh

: "${TESLA_FLEET_API_URL:=https://fleet-api.prd.eu.vn.cloud.tesla.com}"
: "${TESLA_COMMAND_URL:=$TESLA_FLEET_API_URL}"
: "${VEHICLE_VINS:=}"
: "${VERSION:=$(git describe --always --dirty 2>/dev/null || echo manual)}"
[[ "${DRY_RUN:-0}" == "1" ]] && VERSION=dry-run
REPO="${REGION}-docker.pkg.dev/${PROJECT}/${AR_REPO}"
RENDERED=deploy/.rendered
mkdir -p "$RENDERED"

# 1. APIs.
run gcloud services enable run.googleapis.com secretmanager.googleapis.com cloudscheduler.googleapis.com \
  cloudbuild.googleapis.com artifactregistry.googleapis.com storage.googleapis.com iamcredentials.googleapis.com \
  --project "$PROJECT"

# 2. Identities, secrets, bucket and their bindings.
iam_accounts
iam_resources
run_or_create "gcloud artifacts repositories describe ${AR_REPO} --project ${PROJECT} --location ${REGION}" \
  "gcloud artifacts repositories create ${AR_REPO} --project ${PROJECT} --location ${REGION} --repository-format docker"

# 3. Images, then their digests: a service must never follow a moving tag.
run gcloud builds submit --project "$PROJECT" --region "$REGION" --config deploy/cloudbuild.yaml \
  --substitutions "_REPO=${REPO},_VERSION=${VERSION}" .
digest() {
  if [[ "${DRY_RUN:-0}" == "1" ]]; then
    echo "sha256:DRY-RUN-$1"
  else
    gcloud artifacts docker images describe "${REPO}/$1:${VERSION}" --format 'value(image_summary.digest)'
  fi
}
WORKER_IMAGE="${REPO}/worker@$(digest worker)"
SCOUT_IMAGE="${REPO}/scout@$(digest scout)"

# 4. Worker first: the scout needs its URL.
export PROJECT REGION WORKER_SERVICE SCOUT_SERVICE WORKER_SA SCOUT_SA SCHEDULER_SA STATE_BUCKET TIME_ZONE \
  TESLA_FLEET_API_URL TESLA_COMMAND_URL HOME_LAT HOME_LON VEHICLE_VINS WORKER_IMAGE SCOUT_IMAGE
render deploy/worker.yaml "$RENDERED/worker.yaml"
run gcloud run services replace "$RENDERED/worker.yaml" --project "$PROJECT" --region "$REGION"
if [[ "${DRY_RUN:-0}" == "1" ]]; then
  WORKER_URL="https://${WORKER_SERVICE}-DRY-RUN.a.run.app"
else
  WORKER_URL="$(gcloud run services describe "$WORKER_SERVICE" --project "$PROJECT" --region "$REGION" --format 'value(status.url)')"
fi
export WORKER_URL
render deploy/scout.yaml "$RENDERED/scout.yaml"
run gcloud run services replace "$RENDERED/scout.yaml" --project "$PROJECT" --region "$REGION"
if [[ "${DRY_RUN:-0}" == "1" ]]; then
  SCOUT_URL="https://${SCOUT_SERVICE}-DRY-RUN.a.run.app"
else
  SCOUT_URL="$(gcloud run services describe "$SCOUT_SERVICE" --project "$PROJECT" --region "$REGION" --format 'value(status.url)')"
fi
iam_invokers

# 5. The Scheduler job: every 15 minutes, OIDC as its own account, an attempt
# deadline above the scout's worst case (TICK_TIMEOUT 240 s), retries with backoff.
job_flags=(--project "$PROJECT" --location "$REGION" --schedule "$SCHEDULE" --time-zone "$TIME_ZONE"
  --uri "${SCOUT_URL}/tick" --http-method POST
  --oidc-service-account-email "$SCHEDULER_SA" --oidc-token-audience "$SCOUT_URL"
  --attempt-deadline 320s --max-retry-attempts 2 --min-backoff 30s --max-backoff 120s)
if [[ "${DRY_RUN:-0}" == "1" ]] || ! gcloud scheduler jobs describe "$SCHEDULER_JOB" --project "$PROJECT" --location "$REGION" >/dev/null 2>&1; then
  run gcloud scheduler jobs create http "$SCHEDULER_JOB" "${job_flags[@]}"
else
  run gcloud scheduler jobs update http "$SCHEDULER_JOB" "${job_flags[@]}"
fi
echo "deployed: worker ${WORKER_URL}, scout ${SCOUT_URL} (images ${WORKER_IMAGE##*@}, ${SCOUT_IMAGE##*@})" >&2
