package module

import (
	"net/http"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI serves /realtime/ on Caddy's admin endpoint: hub stats, and a
// publish route that needs no secret because access to the admin endpoint
// is the credential.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.realtime",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes implements caddy.AdminRouter.
func (a AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/realtime/hubs", Handler: caddy.AdminHandlerFunc(a.listHubs)},
		{Pattern: "/realtime/hubs/", Handler: caddy.AdminHandlerFunc(a.hubRoute)},
	}
}

// hubInfo is one hub in GET /realtime/hubs; its presence fields count
// what this node holds.
type hubInfo struct {
	Name      string `json:"name"`
	Backplane string `json:"backplane"`
	Up        bool   `json:"backplane_up"`
	LastError string `json:"backplane_error,omitempty"`
	Head      string `json:"cursor"`
	Channels  int    `json:"channels"`
	// Transports counts the open connections by transport.
	Transports map[string]int64 `json:"transports"`
	hub.Snapshot
}

func (a AdminAPI) listHubs(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		// The module's own error form, as on every other realtime route.
		w.Header().Set("Allow", http.MethodGet)
		return writeJSONError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
	}
	out := []hubInfo{}
	for _, ph := range runningHubs() {
		up, lastErr := ph.health()
		out = append(out, hubInfo{
			Name:       ph.name,
			Backplane:  ph.backend,
			Up:         up,
			LastError:  lastErr,
			Head:       ph.Head().String(),
			Channels:   ph.Channels(),
			Transports: connectionsByTransport(ph.Stats()),
			Snapshot:   ph.Stats().Snapshot(),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return writeJSON(w, http.StatusOK, map[string]any{"hubs": out})
}

// hubRoute serves the routes of one hub: POST
// /realtime/hubs/<name>/publish and GET
// /realtime/hubs/<name>/presence/<channel>.
func (a AdminAPI) hubRoute(w http.ResponseWriter, r *http.Request) error {
	name, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/realtime/hubs/"), "/")
	channel, presence := strings.CutPrefix(rest, "presence/")
	if name == "" || (rest != "publish" && (!presence || channel == "")) {
		return writeJSONError(w, http.StatusNotFound, "not_found", "want POST /realtime/hubs/<name>/publish or GET /realtime/hubs/<name>/presence/<channel>")
	}
	var target *pooledHub
	for _, ph := range runningHubs() {
		if ph.name == name {
			target = ph
		}
	}
	if target == nil {
		// Before anything is counted: metrics are labelled by hub, and
		// the name comes from the URL.
		return writeJSONError(w, http.StatusNotFound, "unknown_hub", "no running hub named "+name)
	}
	if presence {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			return writeJSONError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		}
		return servePresence(r.Context(), w, target, channel)
	}
	return a.publish(w, r, target)
}

// publish serves POST /realtime/hubs/<name>/publish with the body and
// answers of realtime_broadcast.
func (a AdminAPI) publish(w http.ResponseWriter, r *http.Request, target *pooledHub) error {
	name := target.name
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return writeRejection(w, name, reject(http.StatusMethodNotAllowed, "method_not_allowed", "use POST"))
	}
	return publishBody(w, r, target, nil, publishLimits{maxBody: defaultMaxBody, maxBatch: defaultMaxBatch})
}

var _ caddy.AdminRouter = AdminAPI{}
