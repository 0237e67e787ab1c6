// Package deploy holds the Google Cloud deployment: Cloud Run service
// definitions, the Cloud Build config, and the scripts that create service
// accounts, secrets, buckets, least-privilege bindings and the Scheduler job
// (see README.md). It has no Go code. Its tests read those files and run the
// scripts, in dry-run mode and against a fake gcloud, since no Docker engine
// or Google project is available where they run.
package deploy
