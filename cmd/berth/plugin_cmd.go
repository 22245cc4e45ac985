package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/berthpaas/berth/plugins"
)

func runPlugin(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: berth plugin NAME (mysql, redis or mongodb)")
	}
	return plugins.ServeBuiltin(args[0])
}

func randomPassword() string {
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
