// Package deploy holds the Google Cloud deployment: Cloud Run service
// definitions, the Cloud Build config, and the scripts that create service
// accounts, secrets, the state bucket, least-privilege bindings and the
// Scheduler job. It has no Go code; its tests read and check those files,
// since no Docker engine or Google project is available where they run.
package deploy
