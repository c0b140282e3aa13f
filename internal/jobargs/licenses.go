package jobargs

// LicenseExpireSweep marks expired the active licences whose expiry has passed and emits
// license.expired for each. It runs every minute; a sweep that fills its batch enqueues the
// next one.
type LicenseExpireSweep struct{}

// Kind is the job kind River UI shows.
func (LicenseExpireSweep) Kind() string { return "license.expire_sweep" }
