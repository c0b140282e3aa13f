package jobargs

// IdempotencyExpireSweep deletes stored Idempotency-Key responses that have expired. It runs
// periodically; a sweep that fills its batch enqueues the next one.
type IdempotencyExpireSweep struct{}

// Kind is the job kind River UI shows.
func (IdempotencyExpireSweep) Kind() string { return "idempotency.expire_sweep" }
