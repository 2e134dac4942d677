package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// ConnectionSchema is the JSON Schema (draft 2020-12) of a Connection as
// the agent and `layerscope observe -o json` write it.
//
//go:embed connection.schema.json
var ConnectionSchema []byte

// schema is the subset of JSON Schema that ConnectionSchema uses.
type schema struct {
	Ref                  string             `json:"$ref"`
	Type                 any                `json:"type"` // a name or a list of names
	Enum                 []any              `json:"enum"`
	Format               string             `json:"format"`
	Required             []string           `json:"required"`
	Properties           map[string]*schema `json:"properties"`
	AdditionalProperties *bool              `json:"additionalProperties"`
	Items                *schema            `json:"items"`
	Defs                 map[string]*schema `json:"$defs"`
}

// ValidateConnection checks one JSON-encoded connection event against
// ConnectionSchema and returns every violation found, each naming its
// JSON path.
func ValidateConnection(doc []byte) error {
	var root schema
	if err := json.Unmarshal(ConnectionSchema, &root); err != nil {
		return fmt.Errorf("connection schema: %w", err)
	}
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	var errs []string
	validate(&root, &root, v, "$", &errs)
	if len(errs) > 0 {
		return fmt.Errorf("schema violations: %s", strings.Join(errs, "; "))
	}
	return nil
}

func typeOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if x == math.Trunc(x) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}

func validate(root, s *schema, v any, path string, errs *[]string) {
	if s.Ref != "" {
		name, ok := strings.CutPrefix(s.Ref, "#/$defs/")
		d := root.Defs[name]
		if !ok || d == nil {
			*errs = append(*errs, path+": unresolvable $ref "+s.Ref)
			return
		}
		s = d
	}
	if s.Type != nil {
		var allowed []string
		switch t := s.Type.(type) {
		case string:
			allowed = []string{t}
		case []any:
			for _, x := range t {
				allowed = append(allowed, fmt.Sprint(x))
			}
		}
		got := typeOf(v)
		if !slices.Contains(allowed, got) && (got != "integer" || !slices.Contains(allowed, "number")) {
			*errs = append(*errs, fmt.Sprintf("%s: %s, want %s", path, got, strings.Join(allowed, " or ")))
			return
		}
	}
	if s.Enum != nil && !slices.Contains(s.Enum, v) {
		*errs = append(*errs, fmt.Sprintf("%s: %v is not one of %v", path, v, s.Enum))
	}
	if s.Format == "date-time" {
		if str, ok := v.(string); ok {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				*errs = append(*errs, fmt.Sprintf("%s: %q is not a date-time", path, str))
			}
		}
	}
	switch x := v.(type) {
	case map[string]any:
		for _, r := range s.Required {
			if _, ok := x[r]; !ok {
				*errs = append(*errs, path+": missing "+r)
			}
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ps, ok := s.Properties[k]
			if !ok {
				if s.AdditionalProperties != nil && !*s.AdditionalProperties {
					*errs = append(*errs, path+": unexpected property "+k)
				}
				continue
			}
			validate(root, ps, x[k], path+"."+k, errs)
		}
	case []any:
		if s.Items != nil {
			for i, e := range x {
				validate(root, s.Items, e, fmt.Sprintf("%s[%d]", path, i), errs)
			}
		}
	}
}
