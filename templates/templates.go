// Package templates renders the alert text of pushes: a title and a body per event and platform
// (API.md, "Push payloads").
//
// # Templates
//
// Each of call.ring, call.notification, call.missed and call.reminder has, for each platform (firebase, apn), a title and a
// body template in Go's text/template syntax, executed with a Data value: {{.CallerName}}, {{.Video}},
// {{.Custom.topic}}. Built-in defaults are embedded (defaults/ beside this file). call.ring's text is used only
// for an APNs regular token of a user without a VoIP token; the other rings are data-only.
//
// # Locales
//
// A template may exist per locale, its BCP 47 tag before the part: call.missed.apn.de.title.tmpl. A push
// uses the templates of the device's locale (Data.Locale), else of that tag less its last subtag, down to its
// language (de-AT, then de), else the default, which is English. The built-in texts are English and German
// (de). A locale has a title and a body for each event and platform it has at all, so that one push never
// mixes two languages.
//
// # Overriding
//
// Load(dir) reads every file of dir (RINGER_TEMPLATES_DIR) as an override of one default, named
//
//	<event>.<platform>.<title|body>.tmpl           e.g. call.missed.apn.title.tmpl
//	<event>.<platform>.<locale>.<title|body>.tmpl  e.g. call.missed.apn.de-AT.title.tmpl
//
// Templates not overridden keep their default; a locale the built-in texts lack may be added. A file of any other name, or a folder, stops Load with an
// error naming it, so a typo cannot silently leave a default in place. Names starting with "." are skipped
// (editor files; the ..data links of a Kubernetes ConfigMap volume).
//
// # What templates see
//
// Render prepares the data so that text reads well whatever the call carries:
//   - CallerName falls back to CallerID, then to "Someone";
//   - every string (fields, and strings inside Custom) is cut to FieldLimit bytes, JSON-escaped, so one long
//     value cannot crowd out the rest;
//   - {{.Custom.a.b}} written in a template prints nothing, and is false in {{if}}, when Custom has no such key
//     or holds null there, instead of text/template's "<no value>" (templates are parsed with the default
//     missingkey option; the keys they name are filled in). Reaching Custom any other way ({{with .Custom}},
//     {{range}}) sees JSON nulls as empty strings but gets no filling of missing keys: use {{with}} there;
//   - the output has invalid UTF-8 replaced and surrounding white space trimmed.
//
// # Size
//
// A push must fit its provider's limit (PayloadLimit). DataReserve bytes of it are kept for the fixed data
// fields of API.md and the envelope; title and body together get the rest, Budget(platform), counted as
// JSON-escaped bytes (what they take on the wire: '<' takes 6). Load renders every template with worst-case
// data (every string at FieldLimit, a 5 KiB Custom object, Video true) and with empty data, and fails naming
// the file when either rendering alone is over the budget. At render time, a title and body that are
// together over it (each may be within it alone) are cut on a UTF-8 boundary and end with "…"; a push is
// never failed for its length.
package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/template"

	"golang.org/x/text/language"

	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/queue"
)

const (
	partTitle = "title"
	partBody  = "body"
	ext       = ".tmpl"
)

// Size limits, in bytes.
const (
	// APNsLimit, APNsVoIPLimit and FCMLimit are the providers' payload limits.
	APNsLimit     = 4096
	APNsVoIPLimit = 5120
	FCMLimit      = 4096
	// DataReserve is the part of a payload kept for everything but title and body: API.md's data fields
	// (ids of at most 129 bytes, display names cut to FieldLimit by their sender) with their keys and JSON
	// punctuation, and the aps or notification envelope. Their worst case is under 1,500 bytes.
	DataReserve = 2048
	// FieldLimit is the most, JSON-escaped, that one string of Data can take in a rendering.
	FieldLimit = 256
	// maxFileSize bounds a template file: a bigger one cannot render within any budget.
	maxFileSize = 64 << 10
)

// ErrUnknown is returned by Render for an event or platform that has no templates.
var ErrUnknown = errors.New("no template for this event and platform")

//go:embed defaults/*.tmpl
var defaultFiles embed.FS

// PayloadLimit is a provider's payload limit in bytes: APNs 4096 (VoIP 5120), FCM 4096; 0 for an unknown
// platform.
func PayloadLimit(platform string, voip bool) int {
	switch {
	case platform == providers.APN && voip:
		return APNsVoIPLimit
	case platform == providers.APN:
		return APNsLimit
	case platform == providers.Firebase:
		return FCMLimit
	}
	return 0
}

// Budget is the JSON-escaped bytes a title and body may take together on a platform: its alert payload's
// limit less DataReserve. 0 for an unknown platform.
func Budget(platform string) int {
	if l := PayloadLimit(platform, false); l > 0 {
		return l - DataReserve
	}
	return 0
}

// Data is what a template is executed with.
type Data struct {
	CallCID, CallType, CallID string
	// CallDisplayName is the call's custom display_name, name or title (API.md), or empty.
	CallDisplayName string
	CallerID        string
	CallerName      string
	ReceiverID      string
	Video           bool
	// Custom is the call's custom object as decoded from JSON: {{.Custom.topic}}.
	Custom map[string]any
	// Locale is the receiving device's locale (BCP 47): it picks the templates (see the package comment),
	// and templates may print it.
	Locale string
}

// Rendered is the alert text of one push.
type Rendered struct {
	Title, Body string
}

// Set holds a template for every event, platform and part. It is safe for concurrent use.
type Set struct {
	pairs map[key]pair
	log   *slog.Logger
}

// key names one title and body pair; locale "" is the default text (English).
type key struct{ event, platform, locale string }

type pair struct{ title, body *tmpl }

// tmpl is one parsed template with what Render needs besides it.
type tmpl struct {
	name   string // file it came from, for errors
	t      *template.Template
	custom *trie // keys of Custom it names, filled in when missing
	// fallback is the built-in template used when an override fails on some data: the built-in one of the
	// same locale, else the default. nil for a built-in one.
	fallback *tmpl
	// receiver: its output may depend on Data.ReceiverID (mayReadReceiver), so a Memo does not reuse it.
	receiver bool
}

// events are the push types that carry text; their names are queue's, the owner of the push "type" field.
func events() []string {
	return []string{queue.EventRing, queue.EventNotification, queue.EventMissed, queue.EventReminder}
}

// platforms are the providers a device names in push_provider; their names are providers'.
func platforms() []string { return []string{providers.Firebase, providers.APN} }

func fileName(k key, part string) string {
	if k.locale == "" {
		return k.event + "." + k.platform + "." + part + ext
	}
	return k.event + "." + k.platform + "." + k.locale + "." + part + ext
}

// Load returns the built-in templates with the files of dir overriding them (see the package comment for
// names); dir "" means the built-in ones only. It fails on an unknown file name, a template that does not
// parse or execute, one that renders over its platform's budget with worst-case data, or a locale given a
// title without a body or a body without a title.
func Load(dir string) (*Set, error) {
	s := &Set{pairs: make(map[key]pair), log: slog.Default()}
	entries, err := fs.ReadDir(defaultFiles, "defaults")
	if err != nil {
		return nil, fmt.Errorf("templates: built-in: %w", err)
	}
	for _, e := range entries {
		k, part, ok := parseName(e.Name())
		if !ok {
			return nil, fmt.Errorf("templates: built-in %s: not a template name", e.Name())
		}
		text, err := fs.ReadFile(defaultFiles, path.Join("defaults", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("templates: built-in %s: %w", e.Name(), err)
		}
		t, err := parseTemplate("built-in "+e.Name(), string(text))
		if err != nil {
			return nil, err
		}
		s.set(k, part, t)
	}
	for _, ev := range events() {
		for _, pl := range platforms() {
			if p := s.pairs[key{ev, pl, ""}]; p.title == nil || p.body == nil {
				return nil, fmt.Errorf("templates: built-in %s or %s missing", fileName(key{ev, pl, ""}, partTitle), fileName(key{ev, pl, ""}, partBody))
			}
		}
	}
	if dir != "" {
		if err := s.override(dir); err != nil {
			return nil, err
		}
	}
	for k, p := range s.pairs {
		if p.title == nil || p.body == nil {
			missing := fileName(k, partTitle)
			if p.body == nil {
				missing = fileName(k, partBody)
			}
			return nil, fmt.Errorf("templates: %s missing in %s: a locale needs both title and body", missing, dir)
		}
		for _, t := range []*tmpl{p.title, p.body} {
			if err := check(t, k.platform); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// set puts t in as k's part.
func (s *Set) set(k key, part string, t *tmpl) {
	p := s.pairs[k]
	if part == partTitle {
		p.title = t
	} else {
		p.body = t
	}
	s.pairs[k] = p
}

// override replaces defaults with the files of dir.
func (s *Set) override(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("templates: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		file := filepath.Join(dir, name)
		if e.IsDir() {
			return fmt.Errorf("templates: %s is a folder; want only files named <event>.<platform>[.<locale>].<title|body>%s", file, ext)
		}
		k, part, ok := parseName(name)
		if !ok {
			return fmt.Errorf("templates: unknown file %s; want <event>.<platform>[.<locale>].<title|body>%s with event %s, platform %s and locale a BCP 47 tag (de, de-AT)",
				file, ext, strings.Join(events(), ", "), strings.Join(platforms(), " or "))
		}
		info, err := os.Stat(file)
		if err != nil {
			return fmt.Errorf("templates: %w", err)
		}
		if info.Size() > maxFileSize {
			return fmt.Errorf("templates: %s is %d bytes, over %d", file, info.Size(), maxFileSize)
		}
		text, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("templates: %w", err)
		}
		t, err := parseTemplate(file, string(text))
		if err != nil {
			return err
		}
		t.fallback = s.builtIn(k, part)
		s.set(k, part, t)
	}
	return nil
}

// builtIn is the built-in template of k's part, else of the default locale. Called before overrides of k
// are set, it finds built-in ones only.
func (s *Set) builtIn(k key, part string) *tmpl {
	for _, kk := range []key{k, {k.event, k.platform, ""}} {
		p := s.pairs[kk]
		t := p.body
		if part == partTitle {
			t = p.title
		}
		for t != nil && t.fallback != nil { // an earlier override of the same file
			t = t.fallback
		}
		if t != nil {
			return t
		}
	}
	return nil
}

// parseName splits "call.missed.apn.title.tmpl" or "call.missed.apn.de-AT.title.tmpl"; the event has dots
// of its own, so it is read from the right. The locale comes back canonical (de-at: de-AT).
func parseName(name string) (k key, part string, ok bool) {
	base, found := strings.CutSuffix(name, ext)
	if !found {
		return key{}, "", false
	}
	base, part, found = cutLast(base)
	if !found || (part != partTitle && part != partBody) {
		return key{}, "", false
	}
	base, seg, found := cutLast(base)
	if !found {
		return key{}, "", false
	}
	if !contains(platforms(), seg) {
		tag, err := language.Parse(seg)
		if err != nil || strings.Contains(seg, "_") {
			return key{}, "", false
		}
		k.locale = tag.String()
		if base, seg, found = cutLast(base); !found {
			return key{}, "", false
		}
	}
	k.event, k.platform = base, seg
	if !contains(events(), k.event) || !contains(platforms(), k.platform) {
		return key{}, "", false
	}
	return k, part, true
}

// cutLast splits s at its last dot.
func cutLast(s string) (before, after string, found bool) {
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// lookup is the order in which a device's locale picks its templates (RFC 4647's lookup): the tag, then the
// tag less its last subtag, and so on down to the language, then the default. de-AT: de-AT, de, default.
func lookup(locale string) []string {
	if locale == "" {
		return []string{""}
	}
	if t, err := language.Parse(locale); err == nil {
		locale = t.String()
	}
	var out []string
	for l := locale; l != ""; {
		out = append(out, l)
		i := strings.LastIndexByte(l, '-')
		if i < 0 {
			break
		}
		l = l[:i]
	}
	return append(out, "")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func parseTemplate(name, text string) (*tmpl, error) {
	t, err := template.New(name).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	return &tmpl{name: name, t: t, custom: customKeys(t), receiver: mayReadReceiver(t)}, nil
}

// check renders t with worst-case and with empty data and fails if either does not execute or is over the
// platform's budget.
func check(t *tmpl, platform string) error {
	budget := Budget(platform)
	for _, sample := range []struct {
		what string
		d    Data
	}{
		{"worst-case data", worstCase(t.custom)},
		{"empty data", Data{}},
	} {
		out, err := t.execute(sample.d, budget)
		if err != nil {
			return fmt.Errorf("templates: %s with %s: %w", t.name, sample.what, err)
		}
		if n := jsonLen(out); n > budget {
			return fmt.Errorf("templates: %s renders %d bytes (JSON-escaped) with %s; title and body on %s get %d (payload limit %d less %d for the data fields)",
				t.name, n, sample.what, platform, budget, PayloadLimit(platform, false), DataReserve)
		}
	}
	return nil
}

// Render returns the title and body of a push of event to a device of platform, cut to the platform's
// Budget. Only an unknown event or platform is an error: an override that fails on this data falls back to
// the built-in template (and logs why).
func (s *Set) Render(event, platform string, d Data) (Rendered, error) {
	p, ok := s.pair(event, platform, d.Locale)
	if !ok {
		return Rendered{}, unknownPair(event, platform)
	}
	return s.render(p, event, platform, d)
}

func unknownPair(event, platform string) error {
	return fmt.Errorf("render %s for %s: %w", event, platform, ErrUnknown)
}

// render is Render once the pair is found.
func (s *Set) render(p pair, event, platform string, d Data) (Rendered, error) {
	budget := Budget(platform)
	title, err := s.run(p.title, d, budget)
	if err != nil {
		return Rendered{}, fmt.Errorf("render %s for %s: %w", event, platform, err)
	}
	body, err := s.run(p.body, d, budget)
	if err != nil {
		return Rendered{}, fmt.Errorf("render %s for %s: %w", event, platform, err)
	}
	title, body = fit(title, body, budget)
	return Rendered{Title: title, Body: body}, nil
}

// pair is the title and body of event on platform for locale: the locale's, else its language's, else the
// default.
func (s *Set) pair(event, platform, locale string) (pair, bool) {
	for _, l := range lookup(locale) {
		if p, ok := s.pairs[key{event, platform, l}]; ok {
			return p, true
		}
	}
	return pair{}, false
}

// run executes t, or its fallback when t fails on this data.
func (s *Set) run(t *tmpl, d Data, budget int) (string, error) {
	out, err := t.execute(d, budget)
	if err == nil || t.fallback == nil {
		return out, err
	}
	s.log.Warn("template failed, using the built-in one", "template", t.name, "err", err)
	return t.fallback.execute(d, budget)
}

// execute renders t with d prepared as the package comment says. Output past a few budgets is dropped as it
// is written (it would be cut anyway), so a runaway template cannot hold much memory.
func (t *tmpl) execute(d Data, budget int) (string, error) {
	w := &capWriter{max: 4 * budget}
	if err := t.t.Execute(w, prepare(d, t.custom)); err != nil {
		return "", err
	}
	return strings.TrimSpace(strings.ToValidUTF8(w.buf.String(), "\uFFFD")), nil
}

// prepare applies the package comment's "What templates see".
func prepare(d Data, custom *trie) Data {
	if d.CallerName == "" {
		d.CallerName = d.CallerID
	}
	if d.CallerName == "" {
		d.CallerName = "Someone"
	}
	for _, f := range []*string{&d.CallCID, &d.CallType, &d.CallID, &d.CallDisplayName, &d.CallerID, &d.CallerName, &d.ReceiverID, &d.Locale} {
		*f = Truncate(*f, FieldLimit)
	}
	d.Custom, _ = view(d.Custom, custom).(map[string]any)
	if d.Custom == nil {
		d.Custom = map[string]any{}
	}
	return d
}

// worstCase is the largest data a template can be given after prepare: every string at FieldLimit, the keys
// the template names set, and the rest of a 5 KiB custom object (API.md's limit) in other keys.
func worstCase(custom *trie) Data {
	long := strings.Repeat("W", FieldLimit)
	c := make(map[string]any)
	for i, size := 0, 2; ; i++ { // size: the object's JSON bytes, braces first
		k := fmt.Sprintf("filler_%02d", i)
		n := len(k) + len(long) + 6 // two pairs of quotes, a colon, a comma
		if size+n > 5<<10 {
			break
		}
		c[k] = long
		size += n
	}
	custom.populate(c, long)
	return Data{
		CallCID: long, CallType: long, CallID: long, CallDisplayName: long,
		CallerID: long, CallerName: long, ReceiverID: long, Video: true, Custom: c, Locale: long,
	}
}

// fit cuts title and body to budget together. The title keeps at least a quarter of it when both are long,
// and more when the body is short.
func fit(title, body string, budget int) (string, string) {
	if jsonLen(title)+jsonLen(body) <= budget {
		return title, body
	}
	title = Truncate(title, max(budget/4, budget-jsonLen(body)))
	return title, Truncate(body, budget-jsonLen(title))
}

// capWriter keeps the first max bytes written to it and drops the rest without failing the template.
type capWriter struct {
	buf bytes.Buffer
	max int
}

func (w *capWriter) Write(p []byte) (int, error) {
	if room := w.max - w.buf.Len(); room > 0 {
		w.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
