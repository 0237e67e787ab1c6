package gcsstate_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/offpeak-charging/offpeak/internal/state"
	"github.com/offpeak-charging/offpeak/internal/state/gcsstate"
)

const testBucket = "offpeak-state-test"

// newFakeGCS starts fake-gcs-server on a loopback port with one bucket and
// returns the real Cloud Storage client pointed at it.
func newFakeGCS(t *testing.T, opts ...option.ClientOption) (*storage.Client, *fakestorage.Server) {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Host:       "127.0.0.1",
		Port:       0,
		Scheme:     "http",
		NoListener: false,
	})
	if err != nil {
		t.Fatalf("start fake-gcs-server: %v", err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: testBucket})
	return newGCSClient(t, srv.URL(), opts...), srv
}

func newGCSClient(t *testing.T, baseURL string, opts ...option.ClientOption) *storage.Client {
	t.Helper()
	opts = append([]option.ClientOption{
		option.WithEndpoint(baseURL + "/storage/v1/"),
		option.WithoutAuthentication(),
		// Reads go through the JSON API, which fake-gcs-server serves at the
		// endpoint; the default XML reads would go to another host.
		storage.WithJSONReads(),
	}, opts...)
	client, err := storage.NewClient(context.Background(), opts...)
	if err != nil {
		t.Fatalf("storage.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// TestFakeGCSHonoursIfGenerationMatch proves, with the storage client alone
// and no code of ours, that the fake enforces the preconditions the GCS
// backend relies on; otherwise the conformance suite would prove nothing.
func TestFakeGCSHonoursIfGenerationMatch(t *testing.T) {
	t.Parallel()
	client, _ := newFakeGCS(t)
	ctx := context.Background()
	obj := client.Bucket(testBucket).Object("raw/counter.json")

	write := func(cond storage.Conditions, data string) (int64, error) {
		w := obj.If(cond).NewWriter(ctx)
		w.ChunkSize = 0
		if _, err := io.WriteString(w, data); err != nil {
			return 0, err
		}
		if err := w.Close(); err != nil {
			return 0, err
		}
		return w.Attrs().Generation, nil
	}
	is412 := func(err error) bool {
		var gerr *googleapi.Error
		return errors.As(err, &gerr) && gerr.Code == http.StatusPreconditionFailed
	}

	g1, err := write(storage.Conditions{DoesNotExist: true}, `{"n":0}`)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := write(storage.Conditions{DoesNotExist: true}, `{"n":9}`); !is412(err) {
		t.Fatalf("second DoesNotExist write: err = %v, want 412", err)
	}

	// Two writers read g1 and both write conditioned on it, concurrently.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	start := make(chan struct{})
	for i := range errs {
		wg.Go(func() {
			<-start
			_, errs[i] = write(storage.Conditions{GenerationMatch: g1}, `{"n":1}`)
		})
	}
	close(start)
	wg.Wait()
	var ok, conflicts int
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case is412(err):
			conflicts++
		default:
			t.Fatalf("write: %v", err)
		}
	}
	if ok != 1 || conflicts != 1 {
		t.Fatalf("two writers on generation %d: %d succeeded, %d got 412; want 1 and 1", g1, ok, conflicts)
	}

	// The same through the GCS backend: two Puts with one read generation.
	s := gcsstate.New(client, testBucket, "")
	cur := mustGet(t, s, "raw/counter.json")
	if _, err := s.Put(ctx, "raw/counter.json", []byte(`{"n":2}`), cur.Generation); err != nil {
		t.Fatalf("first Put: %v", err)
	}
	if _, err := s.Put(ctx, "raw/counter.json", []byte(`{"n":2}`), cur.Generation); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("second Put with the same read generation: err = %v, want state.ErrConflict", err)
	}
}

func TestGCSObjectLayout(t *testing.T) {
	t.Parallel()
	client, srv := newFakeGCS(t)
	s := gcsstate.New(client, testBucket, "/state")
	gen := mustPut(t, s, "vehicles/A.json", `{"a":1}`, 0)

	obj, err := srv.GetObject(testBucket, "state/vehicles/A.json")
	if err != nil {
		t.Fatalf("object not stored under the prefix: %v", err)
	}
	if obj.ContentType != "application/json" || string(obj.Content) != `{"a":1}` || obj.Generation != gen {
		t.Fatalf("stored %q %s@%d, want application/json {\"a\":1}@%d", obj.ContentType, obj.Content, obj.Generation, gen)
	}
	// Objects outside the prefix are not part of this store.
	srv.CreateObject(fakestorage.Object{
		ObjectAttrs: fakestorage.ObjectAttrs{BucketName: testBucket, Name: "other/vehicles/B.json"},
		Content:     []byte(`{}`),
	})
	keys, err := s.List(context.Background(), "")
	if err != nil || len(keys) != 1 || keys[0] != "vehicles/A.json" {
		t.Fatalf("List = %q, %v; want [vehicles/A.json]", keys, err)
	}
}

func TestGCSCorruptObject(t *testing.T) {
	t.Parallel()
	client, srv := newFakeGCS(t)
	srv.CreateObject(fakestorage.Object{
		ObjectAttrs: fakestorage.ObjectAttrs{BucketName: testBucket, Name: "vehicles/half.json"},
		Content:     []byte(`{"soc":`),
	})
	_, err := gcsstate.New(client, testBucket, "").Get(context.Background(), "vehicles/half.json")
	if !errors.Is(err, state.ErrCorrupt) {
		t.Fatalf("Get of half an object: err = %v, want state.ErrCorrupt", err)
	}
}

// loseFirstUploadAnswer forwards every request, but answers the first
// upload with a 503 after the server has applied it: the answer was lost
// on the way back, as in a timeout.
type loseFirstUploadAnswer struct {
	next    http.RoundTripper
	uploads atomic.Int64
}

func (l *loseFirstUploadAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(r)
	if err != nil || !strings.Contains(r.URL.Path, "/upload/") {
		return resp, err
	}
	if l.uploads.Add(1) > 1 {
		return resp, nil
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return &http.Response{
		StatusCode: http.StatusServiceUnavailable,
		Header:     http.Header{"Content-Type": []string{"application/json"}},
		Body:       io.NopCloser(strings.NewReader(`{"error":{"code":503,"message":"backend error"}}`)),
		Request:    r,
	}, nil
}

// TestGCSPutSurvivesLostAnswer: the client retries the upload, the retry
// fails its precondition because the first attempt landed, and Put must
// still report success (and Update must not apply fn twice).
func TestGCSPutSurvivesLostAnswer(t *testing.T) {
	t.Parallel()
	_, srv := newFakeGCS(t)
	lossy := &loseFirstUploadAnswer{next: http.DefaultTransport}
	client := newGCSClient(t, srv.URL(), option.WithHTTPClient(&http.Client{Transport: lossy}))
	client.SetRetry(storage.WithBackoff(gax.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond}))
	s := gcsstate.New(client, testBucket, "")
	ctx := context.Background()

	var calls atomic.Int64
	got, err := state.Update(ctx, s, "vehicles/lossy.json", increment(&calls))
	if err != nil {
		t.Fatalf("Update with a lost answer: %v", err)
	}
	if lossy.uploads.Load() != 2 {
		t.Fatalf("%d uploads, want 2 (the lost one and the client's retry)", lossy.uploads.Load())
	}
	if got.N != 1 || calls.Load() != 1 {
		t.Fatalf("Update = %d after %d fn calls, want 1 after 1", got.N, calls.Load())
	}
	stored, gen, err := state.Load[counter](ctx, s, "vehicles/lossy.json")
	if err != nil || stored.N != 1 || gen < 1 {
		t.Fatalf("stored = %+v@%d, %v; want n=1", stored, gen, err)
	}
}

func TestGCSErrorKinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  int
		want    error
		notWant []error
	}{
		{"503 is transient", http.StatusServiceUnavailable, state.ErrUnavailable, nil},
		{"429 is transient", http.StatusTooManyRequests, state.ErrUnavailable, nil},
		{"412 is a conflict", http.StatusPreconditionFailed, state.ErrConflict, nil},
		{"403 is none of them", http.StatusForbidden, nil, []error{state.ErrUnavailable, state.ErrConflict, state.ErrNotFound}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var hits atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, `{"error":{"code":`+strconv.Itoa(tt.status)+`,"message":"no"}}`)
			}))
			t.Cleanup(srv.Close)
			client := newGCSClient(t, srv.URL)
			client.SetRetry(storage.WithPolicy(storage.RetryNever))
			s := gcsstate.New(client, testBucket, "")

			_, err := s.Put(context.Background(), "vehicles/a.json", []byte(`{}`), 5)
			if hits.Load() == 0 {
				t.Fatal("server never called")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Put: err = %v, want %v", err, tt.want)
			}
			if err == nil {
				t.Fatal("Put: err = nil")
			}
			for _, e := range tt.notWant {
				if errors.Is(err, e) {
					t.Fatalf("Put: err = %v, must not be %v", err, e)
				}
			}
		})
	}
}

// TestGCSDeadline: a backend that never answers ends in state.ErrUnavailable once
// the store's own timeout passes, even though the caller set none.
func TestGCSDeadline(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	client := newGCSClient(t, srv.URL)
	s := gcsstate.New(client, testBucket, "")
	s.Timeout = 50 * time.Millisecond

	_, err := s.Get(context.Background(), "vehicles/a.json")
	if !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("Get from a silent backend: err = %v, want state.ErrUnavailable", err)
	}
	_, err = s.Put(context.Background(), "vehicles/a.json", bytes.Repeat([]byte("1"), 10), 0)
	if !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("Put to a silent backend: err = %v, want state.ErrUnavailable", err)
	}
}

// The contract every backend keeps runs against this one in package state
// (store_test.go); the helpers below serve the tests of Cloud Storage's own
// behaviour above.

type counter struct {
	N int `json:"n"`
}

// increment is an Update function that counts its calls.
func increment(calls *atomic.Int64) func(cur *counter, exists bool) (*counter, error) {
	return func(cur *counter, exists bool) (*counter, error) {
		calls.Add(1)
		if !exists {
			return &counter{N: 1}, nil
		}
		cur.N++
		return cur, nil
	}
}

func mustPut(t *testing.T, s state.Store, key, data string, ifGen int64) int64 {
	t.Helper()
	gen, err := s.Put(context.Background(), key, []byte(data), ifGen)
	if err != nil {
		t.Fatalf("Put(%s, if %d): %v", key, ifGen, err)
	}
	if gen < 1 {
		t.Fatalf("Put(%s) returned generation %d, want >= 1", key, gen)
	}
	return gen
}

func mustGet(t *testing.T, s state.Store, key string) state.Object {
	t.Helper()
	obj, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	return obj
}
