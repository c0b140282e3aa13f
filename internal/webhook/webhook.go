// Package webhook holds the Standard Webhooks (https://www.standardwebhooks.com) side of
// Tessera's outgoing webhooks: endpoint secrets, the payload, and the signed request
// headers. Signatures are made by the specification's reference library,
// github.com/standard-webhooks/standard-webhooks/libraries/go.
package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// SecretPrefix starts every endpoint secret.
const SecretPrefix = "whsec_"

// secretBytes is the length of an endpoint's signing key: 32 random bytes (the
// specification asks for 24 to 64).
const secretBytes = 32

// The headers of a signed request.
const (
	HeaderID        = standardwebhooks.HeaderWebhookID
	HeaderTimestamp = standardwebhooks.HeaderWebhookTimestamp
	HeaderSignature = standardwebhooks.HeaderWebhookSignature
)

// NewSecret returns a new endpoint secret: SecretPrefix and the standard base64 of 32
// random bytes, the form Standard Webhooks libraries accept.
func NewSecret() string {
	key := make([]byte, secretBytes)
	_, _ = rand.Read(key) // crypto/rand.Read never returns an error and always fills key
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// SecretLabel is the label an endpoint's secret is sealed under: the sealed value opens only
// for that endpoint.
func SecretLabel(endpointID uuid.UUID) string {
	return "webhook-secret/" + endpointID.String()
}

// Payload is the body of every webhook request, the Standard Webhooks shape.
type Payload struct {
	// Type is the event type, e.g. "license.issued".
	Type string `json:"type"`
	// Timestamp is when the event happened.
	Timestamp time.Time `json:"timestamp"`
	// Data is the event's JSON payload.
	Data json.RawMessage `json:"data"`
}

// Sign returns the headers of a request carrying body, for the message id (stable across
// retries, so receivers can deduplicate) at time at, signed with secret
// (SecretPrefix + base64 key): webhook-id, webhook-timestamp (Unix seconds) and
// webhook-signature ("v1," + base64 HMAC-SHA256 of "id.timestamp.body").
func Sign(secret, id string, at time.Time, body []byte) (http.Header, error) {
	if !strings.HasPrefix(secret, SecretPrefix) {
		return nil, fmt.Errorf("sign webhook %s: the secret does not start with %s", id, SecretPrefix)
	}
	signer, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, fmt.Errorf("sign webhook %s: %w", id, err)
	}
	signature, err := signer.Sign(id, at, body)
	if err != nil {
		return nil, fmt.Errorf("sign webhook %s: %w", id, err)
	}
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(HeaderSignature, signature)
	return h, nil
}
