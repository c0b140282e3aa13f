package licensekey_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/licensekey"
)

func newKeyPair(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	public, private, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return public, private
}

func TestSignParseVerify(t *testing.T) {
	t.Parallel()
	public, private := newKeyPair(t)
	claims := licensekey.Claims{TenantID: uuid.New(), LicenseID: uuid.New()}
	key := licensekey.Sign(private, claims)
	require.Len(t, key, licensekey.Len)
	require.Equal(t, key, licensekey.Sign(private, claims), "keys are deterministic")

	parsed, err := licensekey.Parse(key)
	require.NoError(t, err)
	require.Equal(t, claims, parsed.Claims)
	require.NoError(t, parsed.Verify(public))

	otherPublic, _ := newKeyPair(t)
	require.ErrorIs(t, parsed.Verify(otherPublic), licensekey.ErrSignature, "another tenant's public key")
	require.ErrorIs(t, parsed.Verify(nil), licensekey.ErrSignature)
}

// TestSandboxMarker signs a sandbox key, parses it as one, and proves the marker is covered by
// the signature: swapping TST1. and TSR1. either way leaves a key that does not verify.
func TestSandboxMarker(t *testing.T) {
	t.Parallel()
	public, private := newKeyPair(t)
	claims := licensekey.Claims{TenantID: uuid.New(), LicenseID: uuid.New(), Sandbox: true}
	sandbox := licensekey.Sign(private, claims)
	require.Len(t, sandbox, licensekey.Len)
	require.True(t, strings.HasPrefix(sandbox, "TST1."), sandbox)
	parsed, err := licensekey.Parse(sandbox)
	require.NoError(t, err)
	require.Equal(t, claims, parsed.Claims)
	require.NoError(t, parsed.Verify(public))

	claims.Sandbox = false
	live := licensekey.Sign(private, claims)
	require.True(t, strings.HasPrefix(live, "TSR1."), live)
	require.Equal(t, live[5:43+5], sandbox[5:43+5], "the same claims")

	for name, forged := range map[string]string{"LiveAsSandbox": "TST1." + live[5:], "SandboxAsLive": "TSR1." + sandbox[5:]} {
		parsed, err := licensekey.Parse(forged)
		require.NoError(t, err, name)
		require.Equal(t, name == "LiveAsSandbox", parsed.Sandbox, name)
		require.ErrorIs(t, parsed.Verify(public), licensekey.ErrSignature, name)
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	public, private := newKeyPair(t)
	key := licensekey.Sign(private, licensekey.Claims{TenantID: uuid.New(), LicenseID: uuid.New()})

	for _, tc := range []struct {
		name string
		key  string
	}{
		{"Empty", ""},
		{"Garbage", "hello"},
		{"Truncated", key[:len(key)-1]},
		{"Extended", key + "A"},
		{"WrongVersion", "TSR2" + key[4:]},
		{"MissingDot", key[:48] + "x" + key[49:]},
		{"BadBase64", key[:10] + "*" + key[11:]},
		{"NonCanonicalBase64", key[:47] + "B" + key[48:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := licensekey.Parse(tc.key)
			if err == nil {
				// A flipped character may still decode; then the signature must fail.
				parsed, _ := licensekey.Parse(tc.key)
				require.ErrorIs(t, parsed.Verify(public), licensekey.ErrSignature)
				return
			}
			require.ErrorIs(t, err, licensekey.ErrMalformed)
		})
	}

	t.Run("ForgedClaims", func(t *testing.T) {
		t.Parallel()
		forged := licensekey.Sign(private, licensekey.Claims{TenantID: uuid.New(), LicenseID: uuid.New()})
		// Someone else's signature on these claims.
		mixed := key[:len(key)-86] + forged[len(forged)-86:]
		parsed, err := licensekey.Parse(mixed)
		require.NoError(t, err)
		require.ErrorIs(t, parsed.Verify(public), licensekey.ErrSignature)
	})
}

// FuzzParse feeds arbitrary strings to the parser: it never panics, and whatever it accepts
// is canonical and fails verification unless it was signed by the key.
func FuzzParse(f *testing.F) {
	public, private := newKeyPair(f)
	valid := licensekey.Sign(private, licensekey.Claims{TenantID: uuid.New(), LicenseID: uuid.New()})
	for _, seed := range []string{valid, "", "TSR1.", "TSR1..", valid[:60], valid + valid, "TSR1." + string(make([]byte, 130))} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parsed, err := licensekey.Parse(s)
		if err != nil {
			require.ErrorIs(t, err, licensekey.ErrMalformed)
			return
		}
		require.Len(t, s, licensekey.Len)
		if s != valid {
			require.ErrorIs(t, parsed.Verify(public), licensekey.ErrSignature)
		}
	})
}
