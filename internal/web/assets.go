package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"net/http"
	"sync"
)

// The page is three files, embedded so that the daemon serves them with no network and no
// files on disk: no CDN, no build step, no framework (docs/web.md).
//
//go:embed assets
var assets embed.FS

// Assets serves the page's files from the embedded copy, under whatever prefix the caller
// strips: "/" is index.html with its style sheet inline (indexPage), the rest are the files. Each request passes g.SameSite; the files hold no data,
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
		if r.URL.Path != "/" {
			files.ServeHTTP(w, r)
			return
		}
		body, styleHash := indexPage()
		w.Header().Set("Content-Security-Policy", csp("'"+styleHash+"'"))
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(body)
	})
}

// stylesheetLink is where index.html names its style sheet.
const stylesheetLink = `<link rel="stylesheet" href="app.css">`

// indexPage is index.html with app.css inline: the page can paint as soon as its HTML has
// arrived, without waiting for a second file (the script is deferred and does not hold the
// first paint). The Content-Security-Policy allows that one style element by its hash. Built
// on first use, so that no command pays for it at start.
var indexPage = sync.OnceValues(func() ([]byte, string) {
	html, err := assets.ReadFile("assets/index.html")
	if err != nil {
		panic(err) // embedded at build time
	}
	css, err := assets.ReadFile("assets/app.css")
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(css)
	page := bytes.Replace(html, []byte(stylesheetLink), []byte("<style>"+string(css)+"</style>"), 1)
	return page, "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
})
