package main

import (
	"fmt"
	"os"

	"github.com/floatip/floatip/internal/auth"
)

type keygenCmd struct {
	Out   string `short:"o" placeholder:"FILE" help:"Write the key to FILE (created with mode 0600) instead of printing it."`
	Force bool   `help:"Replace FILE if it exists (atomically, by a new file renamed over it)."`
}

func (c keygenCmd) Run() error {
	k, err := auth.GenerateKey(nil)
	if err != nil {
		return err
	}
	if c.Out == "" {
		if c.Force {
			return fmt.Errorf("keygen: --force needs --out FILE")
		}
		b, err := k.MarshalText()
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(b)
		return err
	}
	if err := auth.WriteKeyFile(c.Out, k, c.Force); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote key %v to %s (mode 0600): copy it to every node and set auth.key_file\n", k.ID(), c.Out)
	return nil
}
