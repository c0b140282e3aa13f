// Package licensekey is the format of Tessera's licence keys, version 1:
//
//	TSR1.<claims>.<signature>
//
// claims is the unpadded base64url encoding of 32 bytes: the tenant id (16 bytes) then the
// licence id (16 bytes), both UUIDs in network order. signature is the unpadded base64url
// encoding of the 64-byte Ed25519 signature, by the tenant's signing key, of the message
//
//	"tessera-license-key/v1" 0x00 <the 32 claim bytes>
//
// A sandbox tenant's keys read TST1.<claims>.<signature> instead, and their signature is of
//
//	"tessera-sandbox-license-key/v1" 0x00 <the 32 claim bytes>
//
// so the marker is covered by the signature: a live key relabelled TST1. (or a sandbox key
// relabelled TSR1.) does not verify, and a sandbox key can never pass for a live one.
//
// Anyone with the tenant's public key (GET /v1/tenants/{slug}/public-key) can verify a key
// offline. Keys are canonical: each licence has exactly one key, and Ed25519 signatures are
// deterministic, so signing again yields the same key.
package licensekey

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/google/uuid"
)

const (
	prefix         = "TSR1."
	context        = "tessera-license-key/v1\x00"
	sandboxPrefix  = "TST1."
	sandboxContext = "tessera-sandbox-license-key/v1\x00"
	claimsLen      = 32
	// claimsB64 and sigB64 are the encoded lengths of the two parts.
	claimsB64 = 43
	sigB64    = 86
	// Len is the length of every version 1 key, live or sandbox.
	Len = len(prefix) + claimsB64 + 1 + sigB64
)

// ErrMalformed means a string is not a well-formed version 1 licence key.
var ErrMalformed = errors.New("licensekey: malformed key")

// ErrSignature means a key's signature does not verify with the public key.
var ErrSignature = errors.New("licensekey: bad signature")

var encoding = base64.RawURLEncoding.Strict()

// Claims are what a key says: whose licence it is, and whether its tenant is a sandbox.
type Claims struct {
	TenantID  uuid.UUID
	LicenseID uuid.UUID
	// Sandbox marks a sandbox tenant's key (TST1., signed as such); false is a live key (TSR1.).
	Sandbox bool
}

// prefix and context of the key's mode.
func (c Claims) mode() (string, string) {
	if c.Sandbox {
		return sandboxPrefix, sandboxContext
	}
	return prefix, context
}

func (c Claims) bytes() []byte {
	b := make([]byte, 0, claimsLen)
	b = append(b, c.TenantID[:]...)
	return append(b, c.LicenseID[:]...)
}

func message(context string, claims []byte) []byte {
	return append([]byte(context), claims...)
}

// Sign returns the key for c, signed with the tenant's private key; c.Sandbox chooses the
// sandbox marker and signed context.
func Sign(key ed25519.PrivateKey, c Claims) string {
	claims := c.bytes()
	scheme, context := c.mode()
	return scheme + encoding.EncodeToString(claims) + "." + encoding.EncodeToString(ed25519.Sign(key, message(context, claims)))
}

// Key is a parsed, not yet verified, licence key.
type Key struct {
	Claims
	claims    []byte
	signature []byte
}

// Parse reads a key's claims without verifying its signature: the caller looks up the
// tenant's public key by Claims.TenantID, then calls Verify. Parse never panics; anything
// that is not a canonical version 1 key, live or sandbox, is ErrMalformed.
func Parse(s string) (Key, error) {
	sandbox := strings.HasPrefix(s, sandboxPrefix)
	if len(s) != Len || (!sandbox && !strings.HasPrefix(s, prefix)) || s[len(prefix)+claimsB64] != '.' {
		return Key{}, ErrMalformed
	}
	claims, err := encoding.DecodeString(s[len(prefix) : len(prefix)+claimsB64])
	if err != nil || len(claims) != claimsLen {
		return Key{}, ErrMalformed
	}
	signature, err := encoding.DecodeString(s[len(prefix)+claimsB64+1:])
	if err != nil || len(signature) != ed25519.SignatureSize {
		return Key{}, ErrMalformed
	}
	k := Key{claims: claims, signature: signature}
	k.Sandbox = sandbox
	copy(k.TenantID[:], claims[:16])
	copy(k.LicenseID[:], claims[16:])
	return k, nil
}

// Verify checks the key's signature with the tenant's public key, over the context of the
// key's marker (live or sandbox).
func (k Key) Verify(public ed25519.PublicKey) error {
	_, context := k.mode()
	if len(public) != ed25519.PublicKeySize || len(k.signature) != ed25519.SignatureSize || !ed25519.Verify(public, message(context, k.claims), k.signature) {
		return ErrSignature
	}
	return nil
}
