package licensekey_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"

	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/licensekey"
)

// Verifying a licence key offline, in a client that ships with its vendor's public key
// (GET /v1/tenants/{slug}/public-key, field public_key).
func Example_verifyOffline() {
	// What the vendor's server holds; the client only ever sees public and key.
	private := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	public := base64.StdEncoding.EncodeToString(private.Public().(ed25519.PublicKey))
	key := licensekey.Sign(private, licensekey.Claims{
		TenantID:  uuid.MustParse("01a20377-38e3-7138-a4bf-2b0af47becec"),
		LicenseID: uuid.MustParse("01a2038e-b366-767e-83c5-59fcbee90cfa"),
	})

	// In the client:
	publicKey, _ := base64.StdEncoding.DecodeString(public)
	parsed, err := licensekey.Parse(key)
	if err != nil {
		fmt.Println("not a licence key")
		return
	}
	if err := parsed.Verify(publicKey); err != nil {
		fmt.Println("forged")
		return
	}
	fmt.Println("licence", parsed.LicenseID, "of tenant", parsed.TenantID)
	// Output: licence 01a2038e-b366-767e-83c5-59fcbee90cfa of tenant 01a20377-38e3-7138-a4bf-2b0af47becec
}
