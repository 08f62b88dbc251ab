package daemon

import (
	"log/slog"

	"github.com/floatip/floatip/internal/quorum"
	"github.com/floatip/floatip/internal/quorum/etcd"
)

// etcdQuorum is the OS layer's referee backend: etcd.
func etcdQuorum(cfg quorum.EtcdConfig, name string, log *slog.Logger) (quorum.Backend, error) {
	b, err := etcd.New(cfg, etcd.Options{Name: name, Logger: log})
	if err != nil {
		return nil, err
	}
	return b, nil
}
