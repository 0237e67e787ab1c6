# Names shared by deploy.sh, iam.sh and the tests (deploy/deploy_test.go
# reads this file). Override any of them in the environment.
# Service-account ids must be 6-30 characters, so the accounts the design
# calls scout, worker and scheduler carry the offpeak- prefix.
: "${WORKER_SERVICE:=offpeak-worker}"
: "${SCOUT_SERVICE:=offpeak-scout}"
: "${SCHEDULER_JOB:=offpeak-scout-tick}"
: "${WORKER_SA_ID:=offpeak-worker}"
: "${SCOUT_SA_ID:=offpeak-scout}"
: "${SCHEDULER_SA_ID:=offpeak-scheduler}"
: "${AR_REPO:=offpeak}"
: "${LEASE_ROLE_ID:=offpeakTokenLease}"
: "${STATE_BUCKET:=${PROJECT}-offpeak-state}"
: "${SCHEDULE:=*/15 * * * *}"
: "${TIME_ZONE:=Europe/Warsaw}"
# The secrets the Python system already uses: same names, so a takeover
# needs no new Tesla login.
FLEET_TOKENS_SECRET=fleet-tokens
CLIENT_ID_SECRET=tesla-client-id
CLIENT_SECRET_SECRET=tesla-client-secret
LEGACY_SECRET=tesla-refresh-token
PLANNER_KEY_SECRET=planner-api-key

WORKER_SA="${WORKER_SA_ID}@${PROJECT}.iam.gserviceaccount.com"
SCOUT_SA="${SCOUT_SA_ID}@${PROJECT}.iam.gserviceaccount.com"
SCHEDULER_SA="${SCHEDULER_SA_ID}@${PROJECT}.iam.gserviceaccount.com"
