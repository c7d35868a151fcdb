package main

import (
	"log/slog"
	"net/http"

	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/providers/logsink"
	"github.com/ringer-dev/ringer/web"
)

// demoHandler builds the demo page (package web). Its device panel shows the pushes of browser devices, which
// are FCM devices: it works when the FCM log provider is in use and the worker runs in this process.
func demoHandler(cfg config, log *slog.Logger, r roles, fcmS providers.Sender) (http.Handler, error) {
	var hub *web.Hub
	off := ""
	sink, logged := fcmS.(*logsink.Sink)
	switch {
	case !logged:
		off = "a firebase provider is configured (FCM_CREDENTIALS_FILE or RINGER_PROVIDERS_FILE), so pushes to browser devices go to FCM, not to this page."
	case !r.worker:
		off = "this process runs no worker, so it sends no pushes (run `ringer dev` or `ringer serve`)."
	default:
		hub = web.NewHub(providers.Firebase)
		sink.OnPush(hub.Deliver)
	}
	log.Warn("demo page on at / : it hands out tokens for the demo users to whoever asks; never expose it",
		"users", web.DefaultUsers, "device_panel", hub != nil)
	return web.Handler(web.Config{Secret: []byte(cfg.Secret), Pushes: hub, PushesOff: off, Logger: log})
}
