package api

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestADeviceMayNameOnlyAProviderTheServiceKnowsForItsType(t *testing.T) {
	known := map[string]string{"android": "firebase", "ios-dev": "apn"}
	e := newEnv(t, func(c *Config) {
		c.ProviderName = func(typ, name string) error {
			if known[name] != typ {
				return errors.New("no " + typ + " provider is named " + name)
			}
			return nil
		}
	})
	alice := userToken(t, "alice")
	for _, body := range []string{
		`{"id":"token-t1","push_provider":"firebase","push_provider_name":"android-old"}`,
		`{"id":"token-t2","push_provider":"firebase","push_provider_name":"ios-dev"}`,
	} {
		w := e.do("POST", "/v1/devices", alice, body)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `push_provider_name: no firebase provider`) {
			t.Errorf("%s: %d %s, want 400 naming push_provider_name", body, w.Code, w.Body)
		}
	}
	if w := e.do("POST", "/v1/devices", alice, `{"id":"token-t3","push_provider":"firebase","push_provider_name":"android"}`); w.Code != http.StatusCreated {
		t.Errorf("a known name of the device's type: %d %s", w.Code, w.Body)
	}
	if w := e.do("POST", "/v1/devices", alice, `{"id":"abababababababababababababababababababababababababababababababab","push_provider":"apn"}`); w.Code != http.StatusCreated {
		t.Errorf("no name at all: %d %s", w.Code, w.Body)
	}
	if w := e.do("GET", "/v1/devices", alice, ""); strings.Contains(w.Body.String(), `"token-t1"`) || !strings.Contains(w.Body.String(), `"push_provider_name":"android"`) {
		t.Errorf("list after the refusals: %s", w.Body)
	}
}
