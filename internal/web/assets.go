package web

import (
	"embed"
	"io/fs"
	"net/http"
)

// The page is three files, embedded so that the daemon serves them with no network and no
// files on disk: no CDN, no build step, no framework (docs/web.md).
//
//go:embed assets
var assets embed.FS

// Assets serves the page's files (index.html, app.js, app.css) from the embedded copy, under
// whatever prefix the caller strips. Each request passes g.SameSite; the files hold no data,
// so they need no token (the page then asks for every figure with it).
func Assets(g *Guard) http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.SameSite(w, r) {
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
