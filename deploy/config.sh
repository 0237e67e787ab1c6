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

# The state bucket's object-name prefixes each service uses, and the only
# objects its account may touch (iam.sh, IAM conditions). They are the keys
# in the code: the scout's per-car records vehicles/VIN.json and its
# account-wide rate-limit scout/backoff.json (internal/scout/store.go); the
# worker's plans/VIN.json, plans/planner-quota.json (internal/worker/quota.go),
# leases/cycle-VIN.json, sessions/VIN.json and command-paths/VIN.json
# (internal/worker/adapters.go), and the charge needs needs/VIN.json and
# needs/index.json (internal/needs). No object is shared; a test runs both
# services' code against these prefixes.
SCOUT_STATE_PREFIXES="vehicles/ scout/"
# What the scout may read but never write: the worker's charge needs, to
# ask for a cycle when a need's time comes (internal/scout/patrol/needs.go).
SCOUT_STATE_READ_PREFIXES="needs/"
WORKER_STATE_PREFIXES="plans/ leases/cycle- sessions/ command-paths/ needs/"

WORKER_SA="${WORKER_SA_ID}@${PROJECT}.iam.gserviceaccount.com"
SCOUT_SA="${SCOUT_SA_ID}@${PROJECT}.iam.gserviceaccount.com"
PUBKEY_SA="${PUBKEY_SA_ID}@${PROJECT}.iam.gserviceaccount.com"
SCHEDULER_SA="${SCHEDULER_SA_ID}@${PROJECT}.iam.gserviceaccount.com"
BUILDER_SA="${BUILDER_SA_ID}@${PROJECT}.iam.gserviceaccount.com"

# OPERATOR (optional): your Google account's email. It gets run.invoker on
# the worker and the scout, so it can pass Cloud Run's check (GET /health,
# which the services answer without a token of their own). The POST
# endpoints also check the token's audience (SERVICE_URL), which a user's
# `gcloud auth print-identity-token` never names: for those, impersonate an
# allowed service account (deploy/README.md, "Calling the services yourself").
: "${OPERATOR:=}"
WORKER_ALLOWED_INVOKERS="${SCOUT_SA}${OPERATOR:+,${OPERATOR}}"
