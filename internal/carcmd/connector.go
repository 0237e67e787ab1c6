package carcmd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/teslamotors/vehicle-command/pkg/connector"
	"github.com/teslamotors/vehicle-command/pkg/protocol"
	universal "github.com/teslamotors/vehicle-command/pkg/protocol/protobuf/universalmessage"

	"github.com/offpeak-charging/offpeak/internal/fleet"
)

// Transport carries one signed message to the car and its answer back:
// POST /api/1/vehicles/{vin}/signed_command. *fleet.Client is one, with our
// timeouts, error kinds and User-Agent.
type Transport interface {
	SignedCommand(ctx context.Context, vin string, message []byte) ([]byte, error)
}

// errBudgetSpent ends an operation that has sent as many messages as it
// may: Tesla's library resends while the car answers a temporary fault,
// until its context ends (vehicle-command pkg/vehicle/vehicle.go Send), and
// every POST is billed (developer.tesla.com billing-and-limits), so we
// bound it and decide ourselves.
var errBudgetSpent = errors.New("signed_command budget for this operation spent")

// connection is our connector.Connector: Tesla's own (pkg/connector/inet)
// builds https URLs and an http.Client without a timeout, so it cannot
// reach the simulator and would bypass our error kinds.
type connection struct {
	vin       string
	transport Transport
	retry     time.Duration
	latency   time.Duration

	mu     sync.Mutex
	inbox  chan []byte
	budget int // POSTs left in the current operation
	stats  opStats
}

// opStats is what one operation's POSTs did.
type opStats struct {
	handshakes, commands int
	lastFault            universal.MessageFault_E // the last fault the car answered, if any
	waited               bool                     // the car answered OPERATIONSTATUS_WAIT (busy, waking)
	lastErr              error                    // the last transport error
}

var _ connector.Connector = (*connection)(nil)

func newConnection(vin string, t Transport, retry, latency time.Duration) *connection {
	return &connection{vin: vin, transport: t, retry: retry, latency: latency, inbox: make(chan []byte, connector.BufferSize)}
}

// begin starts an operation allowed n POSTs.
func (c *connection) begin(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.budget = n
	c.stats = opStats{}
}

func (c *connection) snapshot() opStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

func (c *connection) Receive() <-chan []byte { return c.inbox }
func (c *connection) VIN() string            { return c.vin }

// PreferredAuthMethod is HMAC: Fleet API blocks AES-GCM-encrypted commands
// so that Tesla's backend can read the command and enforce OAuth scopes
// (vehicle-command pkg/protocol/protocol.md, "Authentication methods").
func (c *connection) PreferredAuthMethod() connector.AuthMethod { return connector.AuthMethodHMAC }
func (c *connection) RetryInterval() time.Duration              { return c.retry }

// AllowedLatency must cover a whole HTTP round trip: session info that
// arrives later than this after its request is discarded
// (vehicle-command internal/dispatcher/dispatcher.go checkForSessionUpdate).
func (c *connection) AllowedLatency() time.Duration { return c.latency }

// Close closes the inbox once; later Sends answer ErrNotConnected.
func (c *connection) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inbox != nil {
		close(c.inbox)
		c.inbox = nil
	}
}

// Send posts one message. Errors are never "temporary" to the library, so
// it does not loop on them: transport errors come back to the Signer,
// which decides (and the cycle's callers retry later).
func (c *connection) Send(ctx context.Context, buffer []byte) error {
	var msg universal.RoutableMessage
	handshake := proto.Unmarshal(buffer, &msg) == nil && msg.GetSessionInfoRequest() != nil
	c.mu.Lock()
	if c.inbox == nil {
		c.mu.Unlock()
		return protocol.ErrNotConnected
	}
	if c.budget <= 0 {
		c.mu.Unlock()
		return errBudgetSpent
	}
	c.budget--
	if handshake {
		c.stats.handshakes++
	} else {
		c.stats.commands++
	}
	c.mu.Unlock()

	answer, err := c.transport.SignedCommand(ctx, c.vin, buffer)
	if err != nil {
		c.mu.Lock()
		c.stats.lastErr = err
		c.mu.Unlock()
		// A POST whose answer was lost may have run on the car
		// (protocol.md §Response handling): say so, and do not resend.
		possible := errors.Is(err, fleet.ErrUpstream) && !errors.Is(err, fleet.ErrRateLimited)
		return &protocol.CommandError{Err: err, PossibleSuccess: possible, PossibleTemporary: false}
	}
	var reply universal.RoutableMessage
	if proto.Unmarshal(answer, &reply) == nil {
		c.mu.Lock()
		st := reply.GetSignedMessageStatus()
		if f := st.GetSignedMessageFault(); f != universal.MessageFault_E_MESSAGEFAULT_ERROR_NONE {
			c.stats.lastFault = f
		}
		if st.GetOperationStatus() == universal.OperationStatus_E_OPERATIONSTATUS_WAIT {
			c.stats.waited = true
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inbox == nil {
		return protocol.ErrNotConnected
	}
	select {
	case c.inbox <- answer:
		return nil
	default:
		return &protocol.CommandError{Err: fmt.Errorf("dropped the car's answer: inbox full"), PossibleSuccess: true}
	}
}
