package jobargs

// RevocationCheck is one firing of the upstream revocation check loop (SPEC 5): it takes the
// global permit and checks up to the configured number of licences, highest risk first. It
// runs periodically; a firing that finds the permit taken does nothing.
type RevocationCheck struct{}

// Kind is the job kind River UI shows.
func (RevocationCheck) Kind() string { return "revocation.check" }
