package a

import (
	"errors"
	"fmt"
	"log"
	"strconv"
)

var errNotFound = errors.New("not found")

func read() (int, error) { return strconv.Atoi("1") }

// Bad: the error vanishes.

func swallowed() (int, error) {
	n, err := read()
	if err != nil { // want `err is checked but never used in the if body`
		return 0, errNotFound
	}
	return n, nil
}

func swallowedInit() int {
	if _, err := read(); err != nil { // want `err is checked but never used in the if body`
		return 0
	}
	return 1
}

func swallowedAnd(strict bool) int {
	_, err := read()
	if err != nil && strict { // want `err is checked but never used in the if body`
		return 0
	}
	if strict && (err != nil) { // want `err is checked but never used in the if body`
		return 0
	}
	return 1
}

func shadowed() error {
	_, err := read()
	if err != nil { // want `err is checked but never used in the if body`
		_, err := read()
		return err
	}
	return nil
}

func inLoop() {
	for range 3 {
		if _, err := read(); err != nil { // want `err is checked but never used in the if body`
			continue
		}
	}
}

type parseError struct{}

func (*parseError) Error() string { return "parse" }

func parse() *parseError { return nil }

func concreteError() bool {
	if perr := parse(); perr != nil { // want `perr is checked but never used in the if body`
		return false
	}
	return true
}

func noReason() int {
	//lint:swallow
	if _, err := read(); err != nil { // want `//lint:swallow needs a reason`
		return 0
	}
	return 1
}

// Good: the error is used, classified, or dropped on purpose with a reason.

func returned() error {
	if _, err := read(); err != nil {
		return err
	}
	return nil
}

func wrapped() error {
	if _, err := read(); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	return nil
}

func logged() {
	if _, err := read(); err != nil {
		log.Print(err)
	}
}

func compared() error {
	if _, err := read(); err != nil {
		if errors.Is(err, errNotFound) {
			return nil
		}
		return errNotFound
	}
	return nil
}

func classifiedInCondition() error {
	if _, err := read(); err != nil && !errors.Is(err, errNotFound) {
		return errNotFound
	}
	return nil
}

func inClosure() func() error {
	if _, err := read(); err != nil {
		return func() error { return err }
	}
	return nil
}

func namedResult() (n int, err error) {
	n, err = read()
	if err != nil {
		return
	}
	return n + 1, nil
}

func directiveOnLine() int {
	if _, err := read(); err != nil { //lint:swallow the default is the answer for any unreadable value
		return 0
	}
	return 1
}

func directiveAbove() int {
	//lint:swallow the default is the answer for any unreadable value
	if _, err := read(); err != nil {
		return 0
	}
	return 1
}

func notAnError() int {
	p := new(int)
	if p != nil {
		return 1
	}
	return 0
}

func elseUsesIt() error {
	_, err := read()
	if err == nil {
		return nil
	}
	return err
}
