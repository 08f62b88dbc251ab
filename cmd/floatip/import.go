package main

import (
	"os"

	"github.com/floatip/floatip/internal/keepalived"
)

type importCmd struct {
	Keepalived importKeepalivedCmd `cmd:"" help:"Convert a keepalived.conf (VRRP instances, sync groups, scripts, notify) into a floatip configuration on stdout."`
}

type importKeepalivedCmd struct {
	File      string `arg:"" help:"keepalived.conf to read (its includes are followed)."`
	Interface string `short:"i" placeholder:"IF" help:"Import only the instances on this interface (floatip runs one daemon per interface)."`
	ConfigID  string `placeholder:"ID" help:"keepalived's config id (its -i): selects the lines beginning @ID (default: the host name)."`
}

func (c importKeepalivedCmd) Run() error {
	id := c.ConfigID
	if id == "" {
		id, _ = os.Hostname()
	}
	out, err := keepalived.Import(c.File, id, keepalived.Options{Interface: c.Interface})
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}
