package leanauth_test

import (
	"os"
	"testing"
)

var tempDirs []string

// mkTemp makes a temp dir that lives for the whole test binary.
func mkTemp() (string, error) {
	d, err := os.MkdirTemp("", "leanauth-go-")
	if err == nil {
		tempDirs = append(tempDirs, d)
	}
	return d, err
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range tempDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}
