// Package secrets seals the small secrets Tessera must read back — tenants' Ed25519 private
// keys, webhook signing secrets, upstream store API keys — with AES-256-GCM under the
// server's secret key (TESSERA_SECRET_KEY), so a copy of the database alone does not reveal
// them.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

// KeySize is the length of the server's secret key: 32 bytes, AES-256.
const KeySize = 32

// Box seals and opens secrets under one key. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box for a KeySize-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret key must be %d bytes, not %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Parse returns a Box for a key written as standard base64 (what `openssl rand -base64 32`
// prints).
func Parse(encoded string) (*Box, error) {
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, fmt.Errorf("secret key must be base64: %w", err)
	}
	return New(key)
}

// Seal encrypts plaintext bound to label (for example "signing-key/<tenant id>"): the sealed
// value opens only with the same label, so a sealed value copied to another row is useless.
func (b *Box) Seal(plaintext []byte, label string) []byte {
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Sprintf("secrets: read random nonce: %v", err)) // crypto/rand never fails on supported platforms
	}
	return b.aead.Seal(nonce, nonce, plaintext, []byte(label))
}

// ErrOpen means a sealed value was tampered with, sealed under another key or label, or is
// not a sealed value at all.
var ErrOpen = errors.New("secrets: cannot open sealed value")

// Open decrypts a value sealed with Seal and the same label.
func (b *Box) Open(sealed []byte, label string) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n+b.aead.Overhead() {
		return nil, ErrOpen
	}
	plaintext, err := b.aead.Open(nil, sealed[:n], sealed[n:], []byte(label))
	if err != nil { //lint:swallow the AEAD's error only says that authentication failed, which ErrOpen says in Tessera's terms
		return nil, ErrOpen
	}
	return plaintext, nil
}
