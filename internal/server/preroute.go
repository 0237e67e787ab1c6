package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/offpeak-charging/offpeak/internal/contract"
)

// DefaultMaxHeaderBytes bounds a request's line and headers (64 KiB; Go's
// net/http allows 4 KiB of slack on top). A Google ID token is about 1 KiB.
const DefaultMaxHeaderBytes = 64 << 10

// net/http answers some requests itself, before routing, in plain text:
// 431 when the headers exceed MaxHeaderBytes, 400 for a malformed request,
// 501 for an unknown Transfer-Encoding, 505 for an HTTP version other than
// 1.x (all written in one piece straight to the connection, with exactly
// these headers: net/http server.go, conn.serve), and 417 for an Expect
// other than 100-continue (through a response with no body). No handler
// can see those requests, so preRouteListener wraps each connection and
// rewrites just those answers into the error shape; everything else passes
// through untouched. The rewrite keys on net/http's exact bytes, which no
// handler's response has (those carry a Date header; none of ours answers
// 417): if a Go release changed them, the answers would go back to plain
// text and the server tests would say so.
const plainErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// preRouteListener wraps accepted connections in preRouteConn.
type preRouteListener struct {
	net.Listener
	maxHeaderBytes int
	logger         *zap.Logger
}

func (l *preRouteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &preRouteConn{Conn: c, l: l}, nil
}

// preRouteConn rewrites net/http's own plain-text error answers.
type preRouteConn struct {
	net.Conn
	l *preRouteListener
}

func (c *preRouteConn) Write(p []byte) (int, error) {
	status, detail, ok := plainAnswer(p)
	if !ok {
		return c.Conn.Write(p)
	}
	code, message := c.l.describe(status, detail)
	c.l.logger.Warn("request refused before routing", zap.Object("httpRequest", httpRequest{
		status: status, remoteIP: c.RemoteAddr().String(),
	}), zap.String("code", code))
	if _, err := c.Conn.Write(errorResponse(status, code, message)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite keeps net/http's half-close after a 431 (closeWriteAndWait)
// working through the wrapper, so the client reads the answer before the
// connection goes.
func (c *preRouteConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// plainAnswer recognises one of net/http's pre-routing answers in p and
// returns its status and the detail net/http put in the body.
func plainAnswer(p []byte) (status int, detail string, ok bool) {
	const prefix = "HTTP/1.1 "
	if len(p) < len(prefix)+4 || !bytes.HasPrefix(p, []byte(prefix)) || p[len(prefix)+3] != ' ' {
		return 0, "", false
	}
	status, err := strconv.Atoi(string(p[len(prefix) : len(prefix)+3]))
	if err != nil {
		return 0, "", false
	}
	lineEnd := bytes.Index(p, []byte("\r\n"))
	if lineEnd < 0 {
		return 0, "", false
	}
	if rest := p[lineEnd:]; bytes.HasPrefix(rest, []byte(plainErrorHeaders)) {
		body := string(rest[len(plainErrorHeaders):])
		// "400 Bad Request: missing required Host header" → the part after
		// the status text.
		lead := strconv.Itoa(status) + " " + http.StatusText(status)
		switch {
		case body == lead:
			body = ""
		case len(body) > len(lead)+2 && body[:len(lead)+2] == lead+": ":
			body = body[len(lead)+2:]
		}
		return status, body, true
	}
	if status == http.StatusExpectationFailed {
		return status, "", true
	}
	return 0, "", false
}

// describe gives the error shape's code and message for a status.
func (l *preRouteListener) describe(status int, detail string) (code, message string) {
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		return contract.CodeHeadersTooLarge, fmt.Sprintf("request headers are larger than %d bytes", l.maxHeaderBytes)
	case http.StatusNotImplemented:
		return contract.CodeNotImplemented, "unsupported Transfer-Encoding"
	case http.StatusHTTPVersionNotSupported:
		return contract.CodeHTTPVersionNotSupported, "only HTTP/1.x is served here"
	case http.StatusExpectationFailed:
		return contract.CodeExpectationFailed, "the only Expect understood is 100-continue"
	}
	message = "malformed HTTP request"
	if detail != "" {
		message += ": " + detail
	}
	if status >= 500 {
		return contract.CodeInternal, message
	}
	return contract.CodeBadRequest, message
}

// errorResponse is a whole HTTP/1.1 answer with the error shape; the
// connection closes after it, as net/http's own answer would.
func errorResponse(status int, code, message string) []byte {
	body, _ := json.Marshal(contract.ErrorBody{Status: contract.StatusError, Error: contract.ErrorDetail{Code: code, Message: message}})
	body = append(body, '\n')
	head := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Length: %d\r\n\r\n",
		status, http.StatusText(status), len(body))
	return append([]byte(head), body...)
}
