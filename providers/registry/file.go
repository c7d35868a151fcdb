package registry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ringer-dev/ringer/providers"
)

// Spec is one named provider as the providers file (or the FCM_* and APNS_* variables) describes it.
type Spec struct {
	Name    string
	Type    string // providers.Firebase or providers.APN
	Default bool
	// Endpoint replaces the provider's public address (emulators, tests); empty is the real service.
	Endpoint string

	// CredentialsFile is a firebase provider's service account JSON; empty uses Application Default Credentials.
	CredentialsFile string

	// KeyFile, KeyID and TeamID are an apn provider's .p8 auth key; Topic its bundle id; Environment
	// production or development.
	KeyFile, KeyID, TeamID, Topic, Environment string
}

// namePattern is a provider name: it is stored with devices and shown in metrics and logs.
var namePattern = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// keys are the keys an entry of each type may have; required ones must be present.
var (
	commonKeys = []string{"name", "type", "default", "endpoint"}
	typeKeys   = map[string][]string{
		providers.Firebase: {"credentials_file"},
		providers.APN:      {"key_file", "key_id", "team_id", "topic", "environment"},
	}
	requiredKeys = map[string][]string{
		providers.Firebase: {},
		providers.APN:      {"key_file", "key_id", "team_id", "topic", "environment"},
	}
)

// ReadFile reads and checks a providers file. Every problem is its own error, joined, each one line naming the
// file, the entry and the key, so an operator fixes them all in one go.
func ReadFile(path string) ([]Spec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("RINGER_PROVIDERS_FILE: %w", err)
	}
	specs, errs := Parse(raw)
	for i, e := range errs {
		errs[i] = fmt.Errorf("RINGER_PROVIDERS_FILE %s: %w", path, e)
	}
	return specs, errors.Join(errs...)
}

// Parse checks a providers document and returns its providers, or every problem found.
//
// The document is decoded with KnownFields, so an unknown top-level key is refused by the library; each entry
// is walked key by key rather than decoded into a struct, because the library's errors name a line and a Go
// type where an operator needs the entry's name and the key, and because the keys allowed depend on the type.
func Parse(raw []byte) ([]Spec, []error) {
	var doc struct {
		Providers []yaml.Node `yaml:"providers"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, []error{errors.New("the file is empty: it needs a providers list")}
		}
		return nil, []error{fmt.Errorf("not a providers document: %s", oneLine(err))}
	}
	if len(doc.Providers) == 0 {
		return nil, []error{errors.New("providers: the list is empty or missing")}
	}
	var (
		specs []Spec
		errs  []error
		seen  = map[string]int{}
	)
	for i := range doc.Providers {
		s, es := parseEntry(i+1, &doc.Providers[i])
		errs = append(errs, es...)
		if s.Name != "" {
			if first, dup := seen[s.Name]; dup {
				errs = append(errs, fmt.Errorf("provider %d %q: name: provider %d has the same name", i+1, s.Name, first))
				continue
			}
			seen[s.Name] = i + 1
		}
		if len(es) == 0 {
			specs = append(specs, s)
		}
	}
	errs = append(errs, checkDefaults(specs)...)
	if len(errs) > 0 {
		return nil, errs
	}
	return Defaulted(specs), nil
}

// Defaulted makes the only provider of a type that type's default.
func Defaulted(specs []Spec) []Spec {
	count := map[string]int{}
	for _, s := range specs {
		count[s.Type]++
	}
	out := slices.Clone(specs)
	for i := range out {
		if count[out[i].Type] == 1 {
			out[i].Default = true
		}
	}
	return out
}

// checkDefaults refuses two defaults of one type, and several providers of a type with none: a device that
// names no provider must have exactly one place to go.
func checkDefaults(specs []Spec) []error {
	var errs []error
	for _, typ := range []string{providers.Firebase, providers.APN} {
		var all, defaults []string
		for _, s := range specs {
			if s.Type != typ {
				continue
			}
			all = append(all, s.Name)
			if s.Default {
				defaults = append(defaults, s.Name)
			}
		}
		switch {
		case len(defaults) > 1:
			errs = append(errs, fmt.Errorf("default: %s providers %s are each marked default: mark one", typ, strings.Join(defaults, ", ")))
		case len(all) > 1 && len(defaults) == 0:
			errs = append(errs, fmt.Errorf("default: none of the %s providers %s is marked default: mark the one for devices that name none", typ, strings.Join(all, ", ")))
		}
	}
	return errs
}

// parseEntry reads one entry; n is its place in the list, from 1.
func parseEntry(n int, node *yaml.Node) (Spec, []error) {
	var s Spec
	label := fmt.Sprintf("provider %d", n)
	if node.Kind != yaml.MappingNode {
		return s, []error{fmt.Errorf("%s (line %d): is not a mapping of keys to values", label, node.Line)}
	}
	vals := map[string]*yaml.Node{}
	var order []string
	for i := 0; i+1 < len(node.Content); i += 2 {
		k := node.Content[i].Value
		vals[k] = node.Content[i+1]
		order = append(order, k)
	}
	var errs []error
	str := func(key string) string {
		v, ok := vals[key]
		if !ok {
			return ""
		}
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			errs = append(errs, fmt.Errorf("%s: %s: want a string (line %d)", label, key, v.Line))
			return ""
		}
		return v.Value
	}
	s.Name = str("name")
	if s.Name != "" {
		label = fmt.Sprintf("provider %d %q", n, s.Name)
	}
	switch {
	case s.Name == "" && len(errs) == 0:
		errs = append(errs, fmt.Errorf("%s: name is missing", label))
	case s.Name != "" && !namePattern.MatchString(s.Name):
		errs = append(errs, fmt.Errorf("%s: name: must match %s", label, namePattern))
	}
	s.Type = str("type")
	switch s.Type {
	case providers.Firebase, providers.APN:
	case "":
		if _, ok := vals["type"]; !ok {
			errs = append(errs, fmt.Errorf("%s: type is missing: firebase or apn", label))
		}
		return s, errs
	default:
		return s, append(errs, fmt.Errorf("%s: type %q is neither firebase nor apn", label, s.Type))
	}
	allowed := append(slices.Clone(commonKeys), typeKeys[s.Type]...)
	for _, k := range order {
		if slices.Contains(allowed, k) {
			continue
		}
		hint := ""
		for typ, ks := range typeKeys {
			if typ != s.Type && slices.Contains(ks, k) {
				hint = fmt.Sprintf(" (it belongs to %s providers)", typ)
			}
		}
		errs = append(errs, fmt.Errorf("%s: unknown key %q for a %s provider%s", label, k, s.Type, hint))
	}
	for _, k := range requiredKeys[s.Type] {
		if _, ok := vals[k]; !ok {
			errs = append(errs, fmt.Errorf("%s: %s is missing", label, k))
		}
	}
	if v, ok := vals["default"]; ok {
		var b bool
		if v.Kind != yaml.ScalarNode || v.Decode(&b) != nil {
			errs = append(errs, fmt.Errorf("%s: default: want true or false (line %d)", label, v.Line))
		}
		s.Default = b
	}
	s.Endpoint = str("endpoint")
	if s.Endpoint != "" {
		u, err := url.Parse(s.Endpoint)
		switch {
		case err != nil || u.Host == "":
			errs = append(errs, fmt.Errorf("%s: endpoint %q is not a URL", label, s.Endpoint))
		case s.Type == providers.APN && u.Scheme != "https":
			errs = append(errs, fmt.Errorf("%s: endpoint %q is not an https URL (APNs is HTTP/2 over TLS)", label, s.Endpoint))
		case u.Scheme != "https" && u.Scheme != "http":
			errs = append(errs, fmt.Errorf("%s: endpoint %q is not an http(s) URL", label, s.Endpoint))
		}
	}
	readable := func(key, path string) {
		if path == "" {
			return
		}
		f, err := os.Open(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", label, key, err))
			return
		}
		f.Close()
	}
	switch s.Type {
	case providers.Firebase:
		s.CredentialsFile = str("credentials_file")
		readable("credentials_file", s.CredentialsFile)
	case providers.APN:
		s.KeyFile, s.KeyID, s.TeamID = str("key_file"), str("key_id"), str("team_id")
		s.Topic, s.Environment = str("topic"), str("environment")
		readable("key_file", s.KeyFile)
		if _, ok := vals["environment"]; ok && s.Environment != "production" && s.Environment != "development" {
			errs = append(errs, fmt.Errorf("%s: environment %q is neither production nor development", label, s.Environment))
		}
		for _, k := range []string{"key_file", "key_id", "team_id", "topic"} {
			if v, ok := vals[k]; ok && v.Kind == yaml.ScalarNode && strings.TrimSpace(v.Value) == "" {
				errs = append(errs, fmt.Errorf("%s: %s is empty", label, k))
			}
		}
	}
	return s, errs
}

// oneLine keeps a library error to one line, as every configuration problem is reported.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
