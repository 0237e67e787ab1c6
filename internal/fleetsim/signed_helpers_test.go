package fleetsim

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/teslamotors/vehicle-command/pkg/cache"
	"github.com/teslamotors/vehicle-command/pkg/connector"
	"github.com/teslamotors/vehicle-command/pkg/protocol"
	universal "github.com/teslamotors/vehicle-command/pkg/protocol/protobuf/universalmessage"
	"github.com/teslamotors/vehicle-command/pkg/vehicle"
)

// testConn is a connector.Connector that POSTs the library's messages to the
// simulator's signed_command endpoint, as a service's own connector does
// (vehicle-commands.md §3; Tesla's pkg/connector/inet is the model).
type testConn struct {
	h     *harness
	vin   string
	token string

	// before, if set, sees every message before it is POSTed (i counts
	// POSTs from 0) and returns the bytes to send instead.
	before func(i int, msg []byte) []byte

	mu       sync.Mutex
	inbox    chan []byte
	closed   bool
	sent     [][]byte // what was POSTed
	statuses []int
	replies  [][]byte // the RoutableMessages of 200 answers
}

// errTestAsleep is what inet.go makes of a 408 "vehicle is offline" or a 503.
var errTestAsleep = protocol.NewError("vehicle unavailable: vehicle is offline or asleep", false, false)

func newTestConn(h *harness, vin string) *testConn {
	return &testConn{h: h, vin: vin, token: h.token(), inbox: make(chan []byte, connector.BufferSize)}
}

func (c *testConn) Receive() <-chan []byte { return c.inbox }
func (c *testConn) VIN() string            { return c.vin }

func (c *testConn) PreferredAuthMethod() connector.AuthMethod { return connector.AuthMethodHMAC }

// RetryInterval is short to keep tests fast, but long enough that a
// handshake reply is processed before the library resends the request.
func (c *testConn) RetryInterval() time.Duration  { return 25 * time.Millisecond }
func (c *testConn) AllowedLatency() time.Duration { return 30 * time.Second }

func (c *testConn) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.inbox)
	}
}

// posts is how many POSTs the connector made.
func (c *testConn) posts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sent)
}

func (c *testConn) lastSent() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent[len(c.sent)-1]
}

// lastReply is the car's last answer, decoded.
func (c *testConn) lastReply(t *testing.T) *universal.RoutableMessage {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var m universal.RoutableMessage
	if len(c.replies) == 0 || proto.Unmarshal(c.replies[len(c.replies)-1], &m) != nil {
		t.Fatal("no decodable reply")
	}
	return &m
}

func (c *testConn) Send(ctx context.Context, msg []byte) error {
	c.mu.Lock()
	i := len(c.sent)
	c.mu.Unlock()
	if c.before != nil {
		msg = c.before(i, msg)
	}
	c.mu.Lock()
	c.sent = append(c.sent, msg)
	c.mu.Unlock()

	body, _ := json.Marshal(struct {
		RoutableMessage []byte `json:"routable_message"`
	}{msg})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.h.url+"/api/1/vehicles/"+c.vin+"/signed_command", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.h.client.Do(req)
	if err != nil {
		return &protocol.CommandError{Err: err, PossibleSuccess: true, PossibleTemporary: true}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, connector.MaxResponseLength+1))
	if err != nil {
		return &protocol.CommandError{Err: err, PossibleSuccess: true, PossibleTemporary: false}
	}
	c.mu.Lock()
	c.statuses = append(c.statuses, resp.StatusCode)
	c.mu.Unlock()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnprocessableEntity:
		return protocol.ErrProtocolNotSupported
	case http.StatusServiceUnavailable:
		return errTestAsleep
	case http.StatusRequestTimeout:
		if bytes.Contains(data, []byte("vehicle is offline")) {
			return errTestAsleep
		}
		fallthrough
	default:
		return protocol.NewError(fmt.Sprintf("HTTP %d: %s", resp.StatusCode, data), false, false)
	}
	var env struct {
		Response []byte `json:"response"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return &protocol.CommandError{Err: err, PossibleSuccess: true, PossibleTemporary: false}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.replies = append(c.replies, env.Response)
	if c.closed {
		return protocol.ErrNotConnected
	}
	select {
	case c.inbox <- env.Response:
		return nil
	default:
		return protocol.NewError("inbox full", true, false)
	}
}

// newClientKey is a fresh P-256 key as the library takes it.
func newClientKey(t *testing.T) protocol.ECDHPrivateKey {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk := protocol.UnmarshalECDHPrivateKey(k.Bytes())
	if pk == nil {
		t.Fatal("UnmarshalECDHPrivateKey returned nil")
	}
	return pk
}

// connectVehicle builds a library Vehicle over a testConn and connects it.
func (h *harness) connectVehicle(vin string, key protocol.ECDHPrivateKey, sessions *cache.SessionCache) (*vehicle.Vehicle, *testConn) {
	h.t.Helper()
	conn := newTestConn(h, vin)
	v, err := vehicle.NewVehicle(conn, key, sessions)
	if err != nil {
		h.t.Fatalf("NewVehicle: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := v.Connect(ctx); err != nil {
		h.t.Fatalf("Connect: %v", err)
	}
	h.t.Cleanup(v.Disconnect)
	return v, conn
}

// cmdCtx is a command context: its deadline also sets the command's expires_at.
func cmdCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var infotainmentOnly = []universal.Domain{universal.Domain_DOMAIN_INFOTAINMENT}

// startSession handshakes with infotainment and fails the test on error.
func startSession(t *testing.T, v *vehicle.Vehicle) {
	t.Helper()
	if err := v.StartSession(cmdCtx(t), infotainmentOnly); err != nil {
		t.Fatalf("StartSession: %v", err)
	}
}

// rewrite decodes a RoutableMessage, lets f change it and encodes it again.
func rewrite(t *testing.T, msg []byte, f func(*universal.RoutableMessage)) []byte {
	var m universal.RoutableMessage
	if err := proto.Unmarshal(msg, &m); err != nil {
		t.Errorf("rewrite: %v", err)
		return msg
	}
	f(&m)
	out, err := proto.Marshal(&m)
	if err != nil {
		t.Errorf("rewrite: %v", err)
		return msg
	}
	return out
}

// postSigned POSTs a raw RoutableMessage and decodes the car's answer (nil unless 200).
func (h *harness) postSigned(vin string, msg []byte) (int, *universal.RoutableMessage) {
	h.t.Helper()
	st, data := h.apiRaw(http.MethodPost, "/api/1/vehicles/"+vin+"/signed_command", h.token(), map[string][]byte{"routable_message": msg})
	if st != http.StatusOK {
		return st, nil
	}
	var env struct {
		Response []byte `json:"response"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		h.t.Fatalf("signed_command answer %s: %v", data, err)
	}
	var reply universal.RoutableMessage
	if err := proto.Unmarshal(env.Response, &reply); err != nil {
		h.t.Fatalf("signed_command answer is not a RoutableMessage: %v", err)
	}
	return st, &reply
}

// addSigningCar adds an online car that requires signing and pairs key with it.
func (h *harness) addSigningCar(vin string, key protocol.ECDHPrivateKey) {
	h.t.Helper()
	h.addCar(vin)
	if key != nil {
		if err := h.sim.PairKey(vin, key.PublicBytes()); err != nil {
			h.t.Fatal(err)
		}
	}
}
