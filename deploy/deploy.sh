#!/usr/bin/env bash
# make deploy PROJECT=… REGION=… HOME_LAT=… HOME_LON=… [DRY_RUN=1]
#
# From an empty project (or the Python system's) to a running deployment:
# APIs, service accounts, secrets (empty), buckets and least-privilege
# bindings; the three images built by Cloud Build (in BUILD_REGION); the
# worker, the scout and the public-key service deployed by image digest,
# never a moving tag; the Scheduler job created or updated; and a last check
# that the worker and the scout are private. Safe to run again: it creates
# only what is missing. DRY_RUN=1 prints every command instead of running it
# (and runs no gcloud at all). deploy/README.md walks through it.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/lib.sh
source deploy/lib.sh
require PROJECT REGION HOME_LAT HOME_LON
require_number HOME_LAT HOME_LON
# shellcheck source=deploy/config.sh
source deploy/config.sh
# shellcheck source=deploy/iam.sh
source deploy/iam.sh

# Optional settings; empty ones are left out of the services, which then use
# their own defaults (README.md, "Configuration").
: "${TESLA_FLEET_API_URL:=https://fleet-api.prd.eu.vn.cloud.tesla.com}"
for optional in VEHICLE_VINS HOME_RADIUS_M TARIFF_WINDOWS TARIFF_WINDOWS_WEEKEND TARIFF_HOLIDAYS \
  CHARGE_TARGET_PERCENT CHARGE_FLOOR_PERCENT BATTERY_KWH CHARGER_KW READY_BY PLANNER_URL \
  TESLA_COMMAND_MODE TESLA_COMMAND_URL; do
  printf -v "$optional" '%s' "${!optional:-}"
  export "${optional?}"
done
# How commands reach the cars (README.md, "Signed commands"): by default the
# worker signs them with the key in tesla-private-key; TESLA_COMMAND_URL names
# an external signer. The Fleet API's own URL there means "no signer" (the
# Python system's deploy set it so when it had none): it is dropped, as the
# worker would. The worker refuses what does not fit together at start-up;
# refuse it here, before a revision that never becomes ready.
if [[ "${TESLA_COMMAND_URL%/}" == "${TESLA_FLEET_API_URL%/}" ]]; then
  TESLA_COMMAND_URL=""
fi
case "$TESLA_COMMAND_MODE" in
  "" | auto) ;;
  proxy)
    if [[ -z "$TESLA_COMMAND_URL" ]]; then
      echo "deploy: TESLA_COMMAND_MODE=proxy needs TESLA_COMMAND_URL (the external signer's URL)" >&2
      exit 2
    fi ;;
  sign | rest)
    if [[ -n "$TESLA_COMMAND_URL" ]]; then
      echo "deploy: TESLA_COMMAND_URL is set but TESLA_COMMAND_MODE=${TESLA_COMMAND_MODE} does not use it: unset it, or use proxy or auto" >&2
      exit 2
    fi ;;
  *)
    echo "deploy: TESLA_COMMAND_MODE=${TESLA_COMMAND_MODE} is not one of auto, sign, proxy, rest" >&2
    exit 2 ;;
esac
if dry_run; then
  VERSION=dry-run
else
  : "${VERSION:=$(git describe --always --dirty 2>/dev/null || date -u +%Y%m%d%H%M%S)}"
fi
REPO="${REGION}-docker.pkg.dev/${PROJECT}/${AR_REPO}"
: "${RENDER_DIR:=deploy/.rendered}"

# 1. APIs.
run gcloud services enable run.googleapis.com secretmanager.googleapis.com cloudscheduler.googleapis.com \
  cloudbuild.googleapis.com artifactregistry.googleapis.com storage.googleapis.com iamcredentials.googleapis.com \
  iam.googleapis.com --project "$PROJECT"

# 2. Identities, secrets, buckets, the image repository and their bindings.
iam_accounts
iam_resources

# The worker reads the planner's key when it starts: without one it would
# never become ready, and `services replace` would fail after a long wait.
if [[ -n "$PLANNER_URL" ]] && ! dry_run &&
  [[ -z "$(gcloud secrets versions list "$PLANNER_KEY_SECRET" --project "$PROJECT" --filter state=enabled --limit 1 --format 'value(name)')" ]]; then
  echo "deploy: PLANNER_URL is set but the secret ${PLANNER_KEY_SECRET} has no enabled version; add the key first:" >&2
  echo "  printf %s \"\$PLANNER_API_KEY\" | gcloud secrets versions add ${PLANNER_KEY_SECRET} --data-file=- --project ${PROJECT}" >&2
  exit 2
fi
# Without a command key the worker starts (its /health says key_missing) but
# cannot sign: say so, and where the README tells how to add one.
if [[ -z "$TESLA_COMMAND_URL" && "$TESLA_COMMAND_MODE" != rest ]] && ! dry_run &&
  [[ -z "$(gcloud secrets versions list "$PRIVATE_KEY_SECRET" --project "$PROJECT" --filter state=enabled --limit 1 --format 'value(name)')" ]]; then
  echo "deploy: note: the secret ${PRIVATE_KEY_SECRET} has no enabled version: the worker cannot sign commands, and" >&2
  echo "  the public-key service answers 503, until \`fleetctl keygen\` stores a key (deploy/README.md, \"Tesla side\")" >&2
fi

# 3. Images, then their digests: a service must never follow a moving tag.
# The build runs in BUILD_REGION (not every region takes a new project's
# builds) and pushes to the registry in REGION.
run gcloud builds submit --project "$PROJECT" --region "$BUILD_REGION" --config deploy/cloudbuild.yaml \
  --service-account "projects/${PROJECT}/serviceAccounts/${BUILDER_SA}" \
  --gcs-source-staging-dir "gs://${BUILD_BUCKET}/source" --gcs-log-dir "gs://${BUILD_BUCKET}/logs" \
  --substitutions "_REPO=${REPO},_VERSION=${VERSION}" .
query WORKER_DIGEST sha256:DRY-RUN-DIGEST \
  gcloud artifacts docker images describe "${REPO}/worker:${VERSION}" --format 'value(image_summary.digest)'
query SCOUT_DIGEST sha256:DRY-RUN-DIGEST \
  gcloud artifacts docker images describe "${REPO}/scout:${VERSION}" --format 'value(image_summary.digest)'
PUBKEY_DIGEST=""
if serve_public_key; then
  query PUBKEY_DIGEST sha256:DRY-RUN-DIGEST \
    gcloud artifacts docker images describe "${REPO}/pubkey:${VERSION}" --format 'value(image_summary.digest)'
fi
WORKER_IMAGE="${REPO}/worker@${WORKER_DIGEST}"
SCOUT_IMAGE="${REPO}/scout@${SCOUT_DIGEST}"
PUBKEY_IMAGE="${REPO}/pubkey@${PUBKEY_DIGEST}"

# 4. The worker first: the scout needs its URL.
#
# Each private service checks that its callers' ID tokens name it as the
# audience (SERVICE_URL), and its callers use the URL Cloud Run reports
# (status.url), which a new service has only once it is deployed. So a
# service's SERVICE_URL lists its deterministic URL
# (https://SERVICE-PROJECT_NUMBER.REGION.run.app), known in advance, and its
# reported URL once it exists; a first deploy, which learns the reported
# URL only after the first revision, deploys a second one that lists it.
query PROJECT_NUMBER 123456789012 gcloud projects describe "$PROJECT" --format 'value(projectNumber)'

# service_urls VAR SERVICE: SERVICE's URLs, comma-separated, into VAR.
service_urls() {
  local var="$1" svc="$2" KNOWN_URL urls
  inspect KNOWN_URL "https://${svc}-DRY-RUN.a.run.app" \
    gcloud run services list --project "$PROJECT" --region "$REGION" --filter "metadata.name=${svc}" --format 'value(status.url)'
  urls="https://${svc}-${PROJECT_NUMBER}.${REGION}.run.app"
  if [[ -n "$KNOWN_URL" && "$KNOWN_URL" != "$urls" ]]; then
    urls+=",${KNOWN_URL}"
  fi
  printf -v "$var" '%s' "$urls"
}

# deploy_private NAME SERVICE URLS_VAR URL_VAR: render deploy/NAME.yaml with
# SERVICE's URLs in URLS_VAR, replace the service, read its reported URL
# into URL_VAR, and if the URLs did not list it yet, list it and replace
# again (a new service's first deploy).
deploy_private() {
  local name="$1" svc="$2" urls_var="$3" url_var="$4"
  service_urls "$urls_var" "$svc"
  export "${urls_var?}"
  render "deploy/${name}.yaml" "${RENDER_DIR}/${name}.yaml"
  run gcloud run services replace "${RENDER_DIR}/${name}.yaml" --project "$PROJECT" --region "$REGION"
  query "$url_var" "https://${svc}-DRY-RUN.a.run.app" \
    gcloud run services describe "$svc" --project "$PROJECT" --region "$REGION" --format 'value(status.url)'
  if [[ ",${!urls_var}," != *",${!url_var},"* ]]; then
    echo "deploy: ${svc} is new: a second revision that accepts its URL ${!url_var}" >&2
    printf -v "$urls_var" '%s' "${!urls_var},${!url_var}"
    render "deploy/${name}.yaml" "${RENDER_DIR}/${name}.yaml"
    run gcloud run services replace "${RENDER_DIR}/${name}.yaml" --project "$PROJECT" --region "$REGION"
  fi
  export "${url_var?}"
}

export PROJECT REGION WORKER_SERVICE SCOUT_SERVICE PUBKEY_SERVICE WORKER_SA SCOUT_SA PUBKEY_SA SCHEDULER_SA \
  WORKER_ALLOWED_INVOKERS STATE_BUCKET TIME_ZONE TESLA_FLEET_API_URL HOME_LAT HOME_LON WORKER_IMAGE SCOUT_IMAGE PUBKEY_IMAGE
run mkdir -p "$RENDER_DIR"
deploy_private worker "$WORKER_SERVICE" WORKER_SERVICE_URL WORKER_URL
deploy_private scout "$SCOUT_SERVICE" SCOUT_SERVICE_URL SCOUT_URL
# The public-key service: the only public one (iam_invokers opens it to
# allUsers). It serves the command key's public half and nothing else.
# SERVE_PUBLIC_KEY=0 leaves it out (the PEM is hosted elsewhere).
if serve_public_key; then
  render deploy/pubkey.yaml "${RENDER_DIR}/pubkey.yaml"
  run gcloud run services replace "${RENDER_DIR}/pubkey.yaml" --project "$PROJECT" --region "$REGION"
  query PUBKEY_URL "https://${PUBKEY_SERVICE}-DRY-RUN.a.run.app" \
    gcloud run services describe "$PUBKEY_SERVICE" --project "$PROJECT" --region "$REGION" --format 'value(status.url)'
fi
iam_invokers

# 5. The Scheduler job: every 15 minutes, OIDC as its own account (audience:
# the scout's URL). The attempt deadline (320 s) is above the scout's worst
# case (TICK_TIMEOUT 240 s, Cloud Run timeout 300 s). Retries help a fast
# failure (a cold start, a 503): two, 30 s then 60 s apart. No
# --max-retry-duration: with a retry count, Scheduler retries until BOTH
# limits are reached, which would add attempts. Should every attempt run into
# the deadline, Scheduler skips the next tick rather than overlap it.
job_flags=(--project "$PROJECT" --location "$REGION" --schedule "$SCHEDULE" --time-zone "$TIME_ZONE"
  --uri "${SCOUT_URL}/tick" --http-method POST
  --oidc-service-account-email "$SCHEDULER_SA" --oidc-token-audience "$SCOUT_URL"
  --attempt-deadline 320s --max-retry-attempts 2 --min-backoff 30s --max-backoff 60s --max-doublings 1)
create_if_missing gcloud scheduler jobs describe "$SCHEDULER_JOB" --project "$PROJECT" --location "$REGION" \
  --then gcloud scheduler jobs create http "$SCHEDULER_JOB" "${job_flags[@]}"
# Also after a create: converges a job made by an earlier version of this script.
run gcloud scheduler jobs update http "$SCHEDULER_JOB" "${job_flags[@]}"

# 6. The worker and the scout must be private: no invoker binding for
# everyone, the invoker check on. Something outside this script (the
# console, an old deploy) may have opened them; say which, and fail.
if ! iam_check_private; then
  echo "deploy: fix the above and run the deploy (or deploy/iam.sh check) again" >&2
  exit 1
fi

if dry_run; then
  echo "dry run: nothing was changed" >&2
else
  echo "deployed: worker ${WORKER_URL} (${WORKER_DIGEST}), scout ${SCOUT_URL} (${SCOUT_DIGEST})" >&2
  if serve_public_key; then
    echo "  public key: ${PUBKEY_URL}/.well-known/appspecific/com.tesla.3p.public-key.pem (${PUBKEY_DIGEST})" >&2
  fi
fi
