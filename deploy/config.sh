# Names shared by deploy.sh and iam.sh; override any of them in the
# environment (make deploy … WORKER_SERVICE=…). Sourced after PROJECT and
# REGION are known.
#
# Service-account ids need 6-30 characters, so the accounts the design calls
# scout, worker and scheduler carry an offpeak- prefix.
: "${WORKER_SERVICE:=offpeak-worker}"
: "${SCOUT_SERVICE:=offpeak-scout}"
: "${PUBKEY_SERVICE:=offpeak-pubkey}"
: "${SCHEDULER_JOB:=offpeak-scout-tick}"
: "${WORKER_SA_ID:=offpeak-worker}"
: "${SCOUT_SA_ID:=offpeak-scout}"
: "${PUBKEY_SA_ID:=offpeak-pubkey}"
: "${SCHEDULER_SA_ID:=offpeak-scheduler}"
: "${BUILDER_SA_ID:=offpeak-builder}"
: "${AR_REPO:=offpeak}"
: "${LEASE_ROLE_ID:=offpeakTokenLease}"
: "${STATE_BUCKET:=${PROJECT}-offpeak-state}"
: "${BUILD_BUCKET:=${PROJECT}-offpeak-build}"
# Where Cloud Build runs (and keeps its source and logs): not every region
# takes builds from every project (a new project may be refused in some),
# so it is a setting of its own. The images still go to REGION's registry.
: "${BUILD_REGION:=europe-west1}"
: "${SCHEDULE:=*/15 * * * *}"
: "${TIME_ZONE:=Europe/Warsaw}"
# SERVE_PUBLIC_KEY=0: no public-key service (no public service at all): the
# PEM is hosted elsewhere, or an organization policy forbids allUsers.
: "${SERVE_PUBLIC_KEY:=1}"
serve_public_key() { [[ ! "$SERVE_PUBLIC_KEY" =~ ^(0|false|no)$ ]]; }

# The secrets the Python system already uses: the same names, so a takeover
# needs no new Tesla login, and its command key (with the cars' pairing)
# carries over. planner-api-key only with PLANNER_URL.
FLEET_TOKENS_SECRET=fleet-tokens
CLIENT_ID_SECRET=tesla-client-id
CLIENT_SECRET_SECRET=tesla-client-secret
LEGACY_SECRET=tesla-refresh-token
PRIVATE_KEY_SECRET=tesla-private-key
PLANNER_KEY_SECRET=planner-api-key
DOMAIN_SECRET=tesla-domain

WORKER_SA="${WORKER_SA_ID}@${PROJECT}.iam.gserviceaccount.com"
SCOUT_SA="${SCOUT_SA_ID}@${PROJECT}.iam.gserviceaccount.com"
PUBKEY_SA="${PUBKEY_SA_ID}@${PROJECT}.iam.gserviceaccount.com"
SCHEDULER_SA="${SCHEDULER_SA_ID}@${PROJECT}.iam.gserviceaccount.com"
BUILDER_SA="${BUILDER_SA_ID}@${PROJECT}.iam.gserviceaccount.com"

# OPERATOR (optional): your Google account's email. It may then call both
# services (GET /health; POST /run-cycle and /refresh-tokens on the worker).
: "${OPERATOR:=}"
WORKER_ALLOWED_INVOKERS="${SCOUT_SA}${OPERATOR:+,${OPERATOR}}"
