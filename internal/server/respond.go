package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/offpeak-charging/offpeak/internal/contract"
)

// WriteJSON encodes v with the status code.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// WriteError answers with the error shape (contract.ErrorBody); code is one
// of contract's codes.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	WriteJSON(w, status, contract.ErrorBody{Status: contract.StatusError, Error: contract.ErrorDetail{Code: code, Message: message}})
}

// WriteRetryableError answers with the error shape and a Retry-After header,
// so Cloud Scheduler and the scout know to come back.
func WriteRetryableError(w http.ResponseWriter, status int, code, message string, retryAfter time.Duration) {
	secs := int(retryAfter.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	WriteError(w, status, code, message)
}

// NotFound answers unknown paths with the error shape.
func NotFound(w http.ResponseWriter, r *http.Request) {
	WriteError(w, http.StatusNotFound, contract.CodeNotFound, "no such endpoint: "+r.URL.Path)
}

// MethodNotAllowed answers a known path with the wrong method.
func MethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	WriteError(w, http.StatusMethodNotAllowed, contract.CodeMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
}

// DecodeJSON reads at most the configured body limit (see BodyLimit) and
// decodes it into v, rejecting unknown fields and trailing data. An empty
// body is accepted when optional and leaves v as it was, so callers with
// optional bodies fill v with their defaults first. It writes the error
// response itself and returns false when the body is bad.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any, optional bool) bool {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			WriteError(w, http.StatusRequestEntityTooLarge, contract.CodePayloadTooLarge,
				fmt.Sprintf("request body is larger than %d bytes", tooLarge.Limit))
			return false
		}
		WriteError(w, http.StatusBadRequest, contract.CodeBadRequest, "could not read request body")
		return false
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		if optional {
			return true
		}
		WriteError(w, http.StatusBadRequest, contract.CodeBadRequest, "request body is empty; JSON expected")
		return false
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		WriteError(w, http.StatusUnsupportedMediaType, contract.CodeUnsupportedMedia, "Content-Type must be application/json")
		return false
	}
	if err := DecodeStrict(data, v); err != nil {
		WriteError(w, http.StatusBadRequest, contract.CodeBadRequest, "malformed JSON body: "+err.Error())
		return false
	}
	return true
}

// DecodeStrict decodes one JSON value, rejecting unknown fields and anything
// after it. Split out so fuzz targets reach the same code as handlers.
func DecodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}
