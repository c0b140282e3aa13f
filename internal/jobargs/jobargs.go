// Package jobargs holds the args of every River job: the contract between whoever enqueues
// a job (the API, a shared step, another job) and the worker in package jobs. It imports no
// other Tessera package, so anyone can enqueue in their transaction without import cycles.
package jobargs
