package keepalived

import (
	"fmt"

	"github.com/floatip/floatip/internal/config"
)

// Import reads the keepalived configuration at path (includes followed;
// configID selects its "@ID" lines) and returns the floatip configuration,
// which it has checked as `floatip check` does.
func Import(path, configID string, opts Options) ([]byte, error) {
	nodes, err := ParseFile(path, configID)
	if err != nil {
		return nil, err
	}
	if opts.Source == "" {
		opts.Source = path
	}
	out, err := Convert(nodes, opts)
	if err != nil {
		return nil, err
	}
	if err := Check(out); err != nil {
		return out, fmt.Errorf("the converted configuration does not pass floatip check (a bug in the import): %v", err)
	}
	return out, nil
}

// Check runs floatip's configuration check on a converted file.
func Check(out []byte) error {
	cfg, err := config.Parse("imported.yaml", out)
	if err != nil {
		return err
	}
	if cfg.NodeName == "" {
		cfg.NodeName = "node" // the host name is not part of the file
	}
	return cfg.Validate()
}
