package cli

import (
	"os"
	"strings"
	"testing"
)

// TestRewriteArgs: PM2's value-as-next-word forms of -l/--log and --watch.
func TestRewriteArgs(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("app.js", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir("src", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{"start app.js -l combined.log", "start app.js --log=combined.log"},
		{"start -l app.js", "start -l app.js"},
		{"start -l out.log app.js", "start --log=out.log app.js"},
		{"start app.js -l", "start app.js -l"},
		{"start app.js --log x.txt", "start app.js --log=x.txt"},
		{"start app.js -l --watch", "start app.js -l --watch"},
		{"start app.js --watch src", "start app.js --watch=src"},
		{"restart web --watch", "restart web --watch"},
		{"logs -l x", "logs -l x"},
		{"start app.js -- -l x", "start app.js -- -l x"},
	} {
		if got := strings.Join(rewriteArgs(strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("rewriteArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
