package worker

import (
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/ringer-dev/ringer/devices"
	"github.com/ringer-dev/ringer/providers"
	"github.com/ringer-dev/ringer/queue"
	"github.com/ringer-dev/ringer/templates"
)

// target is one push to one device, as the delivery engine sends it.
type target struct {
	dev  devices.Device
	form form
	push providers.Push
}

// message is what every push of one task to one member shares: the payload's fields (pushData), its
// lifetime (zero for the provider's default) and its collapse id (empty for none).
type message struct {
	call       queue.CallInfo
	data       map[string]string
	expires    time.Time
	collapseID string
	// texts, when set, renders the alert text for a task that sends one event of one call to many members
	// (templates.Memo); nil renders each push's text on its own.
	texts textRenderer
}

// textRenderer renders the alert text of one push: the worker's Renderer, or a Memo of it.
type textRenderer interface {
	Render(event, platform string, d templates.Data) (templates.Rendered, error)
}

// newMessage is the message of event to member; ringID is empty for a notification.
func newMessage(c queue.CallInfo, event, member, ringID string) message {
	return message{call: c, data: pushData(c, event, member, ringID)}
}

// targets turns routes into pushes of m: each takes the wire shape of its route's form and, for an alert or an
// alert ring, the templates' text in its device's locale.
func (w *Worker) targets(routes []route, m message) ([]target, error) {
	out := make([]target, 0, len(routes))
	for _, r := range routes {
		p := providers.Push{Kind: r.form.kind(), Data: m.data, Expires: m.expires, CollapseID: m.collapseID, VoIP: r.form == ringVoIP}
		if r.form.texted() {
			text, err := w.render(m, r.dev)
			if err != nil {
				return nil, err
			}
			p.Title, p.Body = text.Title, text.Body
		}
		out = append(out, target{dev: r.dev, form: r.form, push: p})
	}
	return out, nil
}

// collapseID is the collapse id (apns-collapse-id, FCM collapse_key) of every push of one ring, its ring and
// its stops alike: a device that was offline gets only the latest of them, never a stale ring after its stop.
func collapseID(ringID string) string { return "ring-" + ringID }

// render is the text of m's push to device d, in d's locale.
func (w *Worker) render(m message, d devices.Device) (templates.Rendered, error) {
	var texts textRenderer = w.cfg.Templates
	if m.texts != nil {
		texts = m.texts
	}
	event, c := m.data["type"], m.call
	r, err := texts.Render(event, d.PushProvider, templates.Data{
		CallCID: c.CID, CallType: c.Type, CallID: c.ID, CallDisplayName: c.DisplayName,
		CallerID: c.CreatedByID, CallerName: c.CreatedByName, ReceiverID: d.UserID, Video: c.Video, Custom: c.Custom,
		Locale: d.Locale,
	})
	if err != nil {
		return r, fmt.Errorf("render %s for %s: %w: %w", event, d.PushProvider, err, asynq.SkipRetry)
	}
	return r, nil
}

// pushData is the string fields every push carries (API.md, "Push payloads").
func pushData(c queue.CallInfo, event, receiver, ringID string) map[string]string {
	video := "false"
	if c.Video {
		video = "true"
	}
	name := c.CreatedByName
	if name == "" {
		name = c.CreatedByID
	}
	// Names are cut as the templates' size budget assumes.
	name = templates.Truncate(name, templates.FieldLimit)
	return map[string]string{
		"sender": "ringer", "type": event,
		"call_cid": c.CID, "call_type": c.Type, "call_id": c.ID, "call_display_name": templates.Truncate(c.DisplayName, templates.FieldLimit),
		"created_by_id": c.CreatedByID, "created_by_display_name": name,
		"receiver_id": receiver, "ring_id": ringID, "video": video,
	}
}
