package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Decode decodes one YAML document into v strictly: a field v does not
// have is an error. Errors name the field by its path and line,
//
//	sources[0].reports[1].intervall (line 12): unknown field "intervall"
//	sources[0].reports[0].interval (line 13): must be a duration such as 90s or 5m, not "10" (write a unit: 10s)
//
// rather than the Go types behind it. An empty document leaves v as it is.
func Decode(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return errors.New(Describe(data, err))
	}
	return nil
}

// Describe turns an error of the YAML decoder on data into a message that
// names the fields, as Decode's errors do.
func Describe(data []byte, err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		msgs = append(msgs, describe(&root, e))
	}
	return strings.Join(msgs, "; ")
}

var (
	yamlLineRE    = regexp.MustCompile(`^line (\d+): `)
	yamlUnknownRE = regexp.MustCompile(`field (\S+) not found in type \S+`)
	yamlTypeRE    = regexp.MustCompile(`cannot unmarshal !!(\w+) (?:` + "`" + `([^` + "`" + `]*)` + "`" + ` )?into (\S+)`)
)

func describe(root *yaml.Node, e string) string {
	line := 0
	if m := yamlLineRE.FindStringSubmatch(e); m != nil {
		line, _ = strconv.Atoi(m[1])
		e = e[len(m[0]):]
	}
	field := fieldAtLine(root, line)
	where := field
	if line > 0 {
		where = fmt.Sprintf("%s (line %d)", field, line)
	}
	if where == "" {
		where = "configuration"
	}
	if m := yamlUnknownRE.FindStringSubmatch(e); m != nil {
		return fmt.Sprintf("%s: unknown field %q", where, m[1])
	}
	if m := yamlTypeRE.FindStringSubmatch(e); m != nil {
		got := map[string]string{"seq": "a list", "map": "a mapping", "str": "text", "int": "a number", "float": "a number", "bool": "true or false"}[m[1]]
		if got == "" {
			got = m[1]
		}
		want := goTypeName(m[3])
		if m[2] != "" {
			got = fmt.Sprintf("%q", m[2])
		}
		msg := fmt.Sprintf("%s: must be %s, not %s", where, want, got)
		if strings.HasPrefix(want, "a duration") && m[1] == "int" {
			msg += fmt.Sprintf(" (write a unit: %ss)", m[2])
		}
		return msg
	}
	return fmt.Sprintf("%s: %s", where, e)
}

// goTypeName says in words what a Go type in a decoder error expects.
func goTypeName(t string) string {
	switch {
	case t == "time.Duration":
		return "a duration such as 90s or 5m"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "float"), t == "*float64":
		return "a number"
	case t == "bool":
		return "true or false"
	}
	return "a " + t[strings.LastIndex(t, ".")+1:] + " section"
}

// fieldAtLine returns the path (sources[0].reports[1].key) of the deepest
// mapping key on a line of the document, else of the first list item there,
// or "" when there is none.
func fieldAtLine(n *yaml.Node, line int) string {
	if line == 0 {
		return ""
	}
	var best, item string
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if k.Line == line {
					best = p // the deepest key on the line
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if c.Line == line && c.Kind == yaml.ScalarNode && item == "" {
					item = p
				}
				walk(c, p)
			}
		}
	}
	walk(n, "")
	if best == "" {
		return item
	}
	return best
}
