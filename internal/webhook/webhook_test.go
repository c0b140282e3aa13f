package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/webhook"
)

func TestSign(t *testing.T) {
	t.Parallel()

	t.Run("SpecificationVector", func(t *testing.T) {
		t.Parallel()
		// The test vector of the Standard Webhooks specification's reference libraries.
		header, err := webhook.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
			time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
		require.NoError(t, err)
		require.Equal(t, http.Header{
			"Webhook-Id":        {"msg_p5jXN8AQM9LWM0D4loKWxJek"},
			"Webhook-Timestamp": {"1614265330"},
			"Webhook-Signature": {"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
		}, header)
	})

	t.Run("MatchesStandardLibraryHMAC", func(t *testing.T) {
		t.Parallel()
		secret := webhook.NewSecret()
		at := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
		body := []byte(`{"type":"license.issued"}`)

		header, err := webhook.Sign(secret, "evt-1", at, body)
		require.NoError(t, err)

		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		require.NoError(t, err)
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte("evt-1.1768478400." + string(body)))
		require.Equal(t, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)), header.Get("webhook-signature"))
	})

	t.Run("RefusesSecretWithoutPrefix", func(t *testing.T) {
		t.Parallel()
		_, err := webhook.Sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "id", time.Unix(0, 0), nil)
		require.EqualError(t, err, "sign webhook id: the secret does not start with whsec_")
	})

	t.Run("RefusesSecretThatIsNotBase64", func(t *testing.T) {
		t.Parallel()
		_, err := webhook.Sign("whsec_not base64!", "id", time.Unix(0, 0), nil)
		require.ErrorContains(t, err, "sign webhook id: ")
	})
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, b := webhook.NewSecret(), webhook.NewSecret()
	require.NotEqual(t, a, b)
	require.Regexp(t, `^whsec_[A-Za-z0-9+/]{43}=$`, a)
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, webhook.SecretPrefix))
	require.NoError(t, err)
	require.Len(t, key, 32)
}

func TestSecretLabel(t *testing.T) {
	t.Parallel()
	id := uuid.MustParse("019bc2a0-0000-7000-8000-000000000001")
	require.Equal(t, "webhook-secret/019bc2a0-0000-7000-8000-000000000001", webhook.SecretLabel(id))
}
