package templates

import (
	"testing"
	"text/template"
)

// What may print the receiver, whatever dot is where it is used, counts; what cannot, does not.
func TestATemplateReadsTheReceiverIfAnyPathToItOrToDotWholeMayPrintIt(t *testing.T) {
	for text, want := range map[string]bool{
		`{{.CallerName}} is calling`:                             false,
		`{{.Custom.topic}} at {{.CallDisplayName}}`:              false,
		`{{with .Custom}}{{.topic}}{{end}}`:                      false,
		`{{range $k, $v := .Custom}}{{$k}}={{$v}}{{end}}`:        true, // a one-name variable may hold dot
		`{{if .Video}}video{{else}}voice{{end}} call`:            false,
		`Hi {{.ReceiverID}}`:                                     true,
		`Hi {{$.ReceiverID}}`:                                    true,
		`{{with .Custom}}{{.ReceiverID}}{{end}}`:                 true,
		`{{if .Video}}{{else}}{{.ReceiverID}}{{end}}`:            true,
		`{{(.Custom).ReceiverID}}`:                               true,
		`{{.}}`:                                                  true,
		`{{printf "%v" .}}`:                                      true,
		`{{$x := .}}{{$x}}`:                                      true,
		`{{define "r"}}{{.ReceiverID}}{{end}}{{.CallerName}}`:    true,
		`{{define "n"}}{{.CallerName}}{{end}}{{template "n" .}}`: true,
	} {
		if got := mayReadReceiver(template.Must(template.New("t").Parse(text))); got != want {
			t.Errorf("mayReadReceiver(%s) = %v, want %v", text, got, want)
		}
	}
}
