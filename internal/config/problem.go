package config

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a configuration. File and Line say where
// it came from; Line is 0 when the value did not come from a file (a flag,
// a default, or a Config built in code).
type Problem struct {
	File  string
	Line  int
	Field string // e.g. "groups[0].vips[1]", "timing.lifetime", "--vip"; "" for the whole file
	Msg   string
}

// String formats the problem as "file:line: field: msg", leaving out the
// parts that are empty.
func (p Problem) String() string {
	var b strings.Builder
	switch {
	case p.File != "" && p.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", p.File, p.Line)
	case p.File != "":
		b.WriteString(p.File + ": ")
	case p.Line > 0:
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in one configuration. It is the error type
// returned by Load, Parse, Apply and Validate.
type Problems []Problem

// Error joins the problems with newlines.
func (p *Problems) Error() string {
	lines := make([]string, len(*p))
	for i, q := range *p {
		lines[i] = q.String()
	}
	return strings.Join(lines, "\n")
}

// orNil returns p as an error, or a nil interface (not a typed nil pointer)
// when there are no problems.
func (p Problems) orNil() error {
	if len(p) == 0 {
		return nil
	}
	return &p
}
