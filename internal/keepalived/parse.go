// Package keepalived reads a keepalived.conf and converts its VRRP part
// into an equivalent floatip configuration (see Convert).
//
// keepalived's syntax is written by hand here because no Go library reads
// it: a file is a sequence of lines, each split into words; "{" and "}"
// open and close blocks; double quotes group words; "#" and "!" start a
// comment outside quotes; "include PATTERN" (a glob, relative to the file
// that includes it) splices other files in at that point, at any level;
// and a line beginning "@ID" is kept only when ID is the configuration id
// (keepalived's -i option), "@^ID" only when it is not.
package keepalived

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxIncludeDepth bounds nested includes (and so include loops).
const maxIncludeDepth = 16

// Node is one statement: its keyword, the words after it, and the
// statements of its block if it has one.
type Node struct {
	Key      string
	Args     []string
	Block    bool    // the statement opened a block ("{")
	Children []*Node // statements inside the block
	File     string
	Line     int
}

// Words returns the keyword and the arguments.
func (n *Node) Words() []string { return append([]string{n.Key}, n.Args...) }

// At is "file:line" with the file as given, for errors.
func (n *Node) At() string { return fmt.Sprintf("%s:%d", n.File, n.Line) }

// Where is "file:line", the file without its directory, for comments.
func (n *Node) Where() string { return fmt.Sprintf("%s:%d", filepath.Base(n.File), n.Line) }

// token is a word or a brace, with where it starts. A newline ends a
// statement.
type token struct {
	kind    tokenKind
	text    string
	file    string
	line    int
	newline bool // the first token of its line
}

type tokenKind int

const (
	tokWord tokenKind = iota
	tokOpen
	tokClose
)

// ParseFile reads path, follows its includes and returns its top-level
// statements. configID selects the "@ID" lines (see the package doc).
func ParseFile(path, configID string) ([]*Node, error) {
	var toks []token
	if err := tokenizeFile(path, configID, 0, &toks); err != nil {
		return nil, err
	}
	return build(toks)
}

// Parse parses a file's contents; includes are resolved relative to
// path's directory.
func Parse(path string, data []byte, configID string) ([]*Node, error) {
	var toks []token
	if err := tokenize(path, data, configID, 0, &toks); err != nil {
		return nil, err
	}
	return build(toks)
}

func tokenizeFile(path, configID string, depth int, out *[]token) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return tokenize(path, data, configID, depth, out)
}

func tokenize(path string, data []byte, configID string, depth int, out *[]token) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if !utf8.ValidString(line) {
			return fmt.Errorf("%s:%d: not valid UTF-8", path, n)
		}
		if i := strings.IndexFunc(line, func(r rune) bool { return unicode.IsControl(r) && r != '\t' && r != '\r' }); i >= 0 {
			return fmt.Errorf("%s:%d: control character %q", path, n, line[i])
		}
		trimmed := strings.TrimLeft(line, " \t")
		if strings.HasPrefix(trimmed, "@") {
			id, rest, _ := strings.Cut(trimmed[1:], " ")
			if tab := strings.IndexByte(id, '\t'); tab >= 0 {
				id, rest = id[:tab], id[tab+1:]+" "+rest
			}
			keep := id == configID
			if neg, ok := strings.CutPrefix(id, "^"); ok {
				keep = neg != configID
			}
			if !keep {
				continue
			}
			line = rest
		}
		words, err := splitLine(line)
		if err != nil {
			return fmt.Errorf("%s:%d: %v", path, n, err)
		}
		if len(words) > 0 && words[0].kind == tokWord && words[0].text == "include" {
			if len(words) != 2 || words[1].kind != tokWord {
				return fmt.Errorf("%s:%d: include takes one file name or pattern", path, n)
			}
			if depth >= maxIncludeDepth {
				return fmt.Errorf("%s:%d: includes nested more than %d deep (a loop?)", path, n, maxIncludeDepth)
			}
			pattern := words[1].text
			if !filepath.IsAbs(pattern) {
				pattern = filepath.Join(filepath.Dir(path), pattern)
			}
			matches, err := filepath.Glob(pattern)
			if err != nil {
				return fmt.Errorf("%s:%d: include %q: %v", path, n, words[1].text, err)
			}
			if len(matches) == 0 && !strings.ContainsAny(words[1].text, "*?[") {
				return fmt.Errorf("%s:%d: include %q: no such file", path, n, words[1].text)
			}
			sort.Strings(matches)
			for _, m := range matches {
				if err := tokenizeFile(m, configID, depth+1, out); err != nil {
					return err
				}
			}
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), "$") && len(words) > 0 {
			return fmt.Errorf("%s:%d: keepalived parameter definitions ($NAME=...) are not supported: expand them first", path, n)
		}
		for i, w := range words {
			w.file, w.line, w.newline = path, n, i == 0
			*out = append(*out, w)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return nil
}

// splitLine splits one line into words and braces.
func splitLine(line string) ([]token, error) {
	var toks []token
	var cur strings.Builder
	inWord, quoted := false, false
	flush := func() {
		if inWord {
			toks = append(toks, token{kind: tokWord, text: cur.String()})
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted:
			if c == '"' {
				quoted = false
			} else {
				cur.WriteByte(c)
			}
		case c == '"':
			quoted, inWord = true, true
		case c == '#' || c == '!':
			flush()
			return toks, nil
		case c == ' ' || c == '\t' || c == '\r':
			flush()
		case c == '{' || c == '}':
			flush()
			k := tokOpen
			if c == '}' {
				k = tokClose
			}
			toks = append(toks, token{kind: k, text: string(c)})
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote")
	}
	flush()
	return toks, nil
}

// build turns the tokens into statements. A statement ends at the end of
// its line, at "{" (which opens its block, also when "{" begins the next
// line) or at "}".
func build(toks []token) ([]*Node, error) {
	root := &Node{}
	stack := []*Node{root}
	var last *Node // the statement just ended by a newline, which a "{" on the next line may open
	var cur *Node  // the statement being read
	for _, t := range toks {
		top := stack[len(stack)-1]
		if t.newline {
			if cur != nil {
				last = cur
			}
			cur = nil
		}
		switch t.kind {
		case tokWord:
			if cur == nil {
				cur = &Node{Key: t.text, File: t.file, Line: t.line}
				top.Children = append(top.Children, cur)
			} else {
				cur.Args = append(cur.Args, t.text)
			}
			last = nil
		case tokOpen:
			n := cur
			if n == nil {
				n = last
			}
			if n == nil || n.Block {
				return nil, fmt.Errorf("%s:%d: \"{\" without a keyword before it", t.file, t.line)
			}
			n.Block = true
			stack = append(stack, n)
			cur, last = nil, nil
		case tokClose:
			if len(stack) == 1 {
				return nil, fmt.Errorf("%s:%d: \"}\" without a block to close", t.file, t.line)
			}
			stack = stack[:len(stack)-1]
			cur, last = nil, nil
		}
	}
	if len(stack) > 1 {
		n := stack[len(stack)-1]
		return nil, fmt.Errorf("%s: block %q opened at line %d is never closed", n.File, n.Key, n.Line)
	}
	return root.Children, nil
}
