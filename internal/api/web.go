package api

import (
	"context"
	"net/http"
)

// WebInfo answers GET /v1/web on the control socket: where the dashboard is and its token, for
// `corral web`. Only the socket's owner can ask; the dashboard itself never serves the token.
type WebInfo struct {
	// Listen is the HTTP listener's bound address ("" when it is off).
	Listen string `json:"listen"`
	// Source says where the address came from (CORRAL_HTTP_LISTEN, the http.listen setting).
	Source string `json:"source,omitempty"`
	// Path is the page's path on the listener.
	Path string `json:"path,omitempty"`
	// Token guards the dashboard's API (docs/web.md); empty when the listener is off.
	Token string `json:"token,omitempty"`
	// Error says why the dashboard is not served although the listener is on (its token file
	// could not be read).
	Error string `json:"error,omitempty"`
}

// Web asks the daemon where its dashboard is.
func (c *Client) Web(ctx context.Context) (WebInfo, error) {
	var out WebInfo
	err := c.do(ctx, http.MethodGet, "/web", nil, &out)
	return out, err
}
