package secrets

import (
	"reflect"
	"testing"
)

func TestIsSecretKey(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want bool
	}{
		// From the brief.
		{"DATABASE_URL", false},
		{"SESSION_SECRET", true},
		{"API_KEY", true},
		{"GITHUB_TOKEN", true},
		{"PGPASSWORD", true},
		{"AWS_SECRET_ACCESS_KEY", true},
		{"NPM_AUTH_TOKEN", true},
		{"PWD", false},
		{"OLDPWD", false},
		{"PATH", false},
		{"HOME", false},
		{"KEYBOARD", false},
		{"AUTHOR", false},
		{"NODE_OPTIONS", false},

		// Each term, and its separators.
		{"SECRET", true},
		{"SESSION_SECRETS", true},
		{"CLIENTSECRET", true},
		{"DB_PASSWORD", true},
		{"db-password", true},
		{"dbPassword", true},
		{"MYSQL_PASSWD", true},
		{"GPG_PASSPHRASE", true},
		{"DB_PWD", true},
		{"MYSQL_PWD", true},
		{"dbPwd", true},
		{"pwd", false},
		{"_PWD_", false},
		{"PASS", true},
		{"SMTP_PASS", true},
		{"pass2", true},
		{"BYPASS_CACHE", false},
		{"COMPASS_DIR", false},
		{"PASSENGER_APP_ENV", false},
		{"TOKEN", true},
		{"HF_TOKEN", true},
		{"accessToken", true},
		{"ACCESSTOKEN", true},
		{"CSRF_TOKENS", true},
		{"TOKENIZERS_PARALLELISM", false},
		{"KEY", true},
		{"APIKEY", true},
		{"apiKey", true},
		{"APIKey", true},
		{"SECRET_KEY_BASE", true},
		{"AWS_ACCESS_KEY_ID", true},
		{"STRIPE_KEYS", true},
		{"KEYBOARD_LAYOUT", false},
		{"GOOGLE_APPLICATION_CREDENTIALS", true},
		{"AZURE_CREDENTIAL", true},
		{"DOCKER_CREDS", true},
		{"PRIVATE_KEY", true},
		{"NPM_CONFIG_PRIVATE", true},
		{"AUTH", true},
		{"BASIC_AUTH", true},
		{"OAUTH2_CLIENT_ID", true},
		{"OAuthClientID", true},
		{"HTTP_AUTHORIZATION", true},
		{"SSH_AUTH_SOCK", true},
		{"GIT_AUTHOR_NAME", false},
		{"GIT_AUTHOR_EMAIL", false},
		{"AUTHORS", false},
		{"XAUTHORITY", false},
		{"NODE_TLS_REJECT_UNAUTHORIZED", false},
		{"UNAUTH_OAUTH", true},
		{"COOKIE_SECRET", true},
		{"SESSION_COOKIE", true},
		{"PASSWORD_SALT", true},
		{"SALT", true},
		{"WEBHOOK_SIGNATURE", true},
		{"SENTRY_DSN", true},
		{"DSN", true},

		// Ordinary variables.
		{"NODE_ENV", false},
		{"PORT", false},
		{"HOSTNAME", false},
		{"LANG", false},
		{"SHELL", false},
		{"USER", false},
		{"TERM", false},
		{"NODE_APP_INSTANCE", false},
		{"CORRAL_HOME", false},
		{"REDIS_URL", false},
		{"LOG_LEVEL", false},
		{"", false},
	} {
		if got := IsSecretKey(tc.key); got != tc.want {
			t.Errorf("IsSecretKey(%q) = %v, want %v (words %q)", tc.key, got, tc.want, words(tc.key))
		}
	}
}

func TestWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"SECRET_KEY_BASE", []string{"SECRET", "KEY", "BASE"}},
		{"apiKey", []string{"API", "KEY"}},
		{"APIKey", []string{"API", "KEY"}},
		{"PGPassword", []string{"PG", "PASSWORD"}},
		{"oauth2-token", []string{"OAUTH", "2", "TOKEN"}},
		{"__x..y__", []string{"X", "Y"}},
		{"", nil},
	} {
		if got := words(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("words(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMaskValue(t *testing.T) {
	for _, tc := range []struct {
		name, key, value, want string
	}{
		{"secret key", "SESSION_SECRET", "keyboard cat", Mask},
		{"fixed width", "API_KEY", "x", Mask},
		{"fixed width long", "API_KEY", "a-very-long-secret-value-that-would-show-its-length", Mask},
		{"empty secret stays empty", "API_KEY", "", ""},
		{"empty plain", "NODE_ENV", "", ""},
		{"plain", "NODE_ENV", "production", "production"},
		{"url password", "DATABASE_URL", "postgres://app:s3cret@db:5432/x", "postgres://app:********@db:5432/x"},
		{"url empty user", "REDIS_URL", "redis://:pw@h", "redis://:********@h"},
		{"url user only", "DATABASE_URL", "postgres://app@db/x", "postgres://app@db/x"},
		{"url empty password", "REDIS_URL", "redis://app:@h", "redis://app:@h"},
		{"url token as user", "REPO", "https://ghp_0123456789abcdefghij0123456789abcdef@github.com/o/r.git", "https://********@github.com/o/r.git"},
		{"url no credentials", "API_URL", "https://example.com/a/b?x=1", "https://example.com/a/b?x=1"},
		{"url at in path", "PROFILE", "https://medium.com/@someone/post", "https://medium.com/@someone/post"},
		{"url password with at", "DATABASE_URL", "postgres://app:p@ss@db/x", "postgres://app:********@db/x"},
		{"url password with colon", "DATABASE_URL", "postgres://app:a:b@db/x", "postgres://app:********@db/x"},
		{"url ipv6", "DATABASE_URL", "postgres://app:pw@[::1]:5432/x", "postgres://app:********@[::1]:5432/x"},
		{"urls comma separated", "REDIS_NODES", "redis://:a@h1:6379,redis://:b@h2:6379",
			"redis://:********@h1:6379,redis://:********@h2:6379"},
		{"urls with paths", "AMQP_URLS", "amqp://u:p1@h1/v,amqp://u:p2@h2/v", "amqp://u:********@h1/v,amqp://u:********@h2/v"},
		{"urls space separated", "URLS", "http://a:b@x http://c:d@y", "http://a:********@x http://c:********@y"},
		{"mongodb host list", "MONGO_URL", "mongodb://u:pw@h1:27017,h2:27017/db?replicaSet=rs0",
			"mongodb://u:********@h1:27017,h2:27017/db?replicaSet=rs0"},
		{"url in json", "CONFIG", `{"db":"postgres://u:pw@h"}`, `{"db":"postgres://u:********@h"}`},
		{"no overmask across words", "CONFIG", `http://host "mail":"me@x.com"`, `http://host "mail":"me@x.com"`},
		{"query password", "DATABASE_URL", "postgres://h/db?sslmode=require&password=s3cret", "postgres://h/db?sslmode=require&password=********"},
		{"query token then other", "WEBHOOK_URL", "https://h/hook?token=abc&x=1", "https://h/hook?token=********&x=1"},
		{"query presigned", "ASSET_URL", "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA/x&X-Amz-Signature=deadbeef",
			"https://b.s3.amazonaws.com/k?X-Amz-Credential=********&X-Amz-Signature=********"},
		{"fragment token", "CALLBACK", "https://h/cb#access_token=abc", "https://h/cb#access_token=********"},
		{"both userinfo and query", "DATABASE_URL", "postgres://u:p@h/db?password=q", "postgres://u:********@h/db?password=********"},
		{"connection string", "AZURE_STORAGE_CONNECTION_STRING",
			"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abc+/def==;EndpointSuffix=core.windows.net",
			"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=********;EndpointSuffix=core.windows.net"},
		{"ado quoted", "MSSQL", `Server=db;User Id=sa;Password="a;b";Encrypt=true`, `Server=db;User Id=sa;Password="********";Encrypt=true`},
		{"flag", "EXTRA_ARGS", "--db-password=hunter2 --port=3000", "--db-password=******** --port=3000"},
		{"pair at start", "EXTRA", "token=abc", "token=********"},
		{"pair not after separator", "EXTRA", "x/token=abc", "x/token=abc"},
		{"empty pair value", "EXTRA", "password=;x=1", "password=;x=1"},
		{"non-secret pairs", "NODE_OPTIONS", "--max-old-space-size=4096", "--max-old-space-size=4096"},
		{"sealed value shown as is", "DATABASE_URL", SealedPrefix + "AAAA+/==", SealedPrefix + "AAAA+/=="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MaskValue(tc.key, tc.value); got != tc.want {
				t.Errorf("MaskValue(%q, %q)\n got %q\nwant %q", tc.key, tc.value, got, tc.want)
			}
		})
	}
}

func TestMaskEnv(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL":   "postgres://app:s3cret@db/x",
		"SESSION_SECRET": "keyboard cat",
		"NODE_ENV":       "production",
	}
	got := MaskEnv(env)
	want := map[string]string{
		"DATABASE_URL":   "postgres://app:********@db/x",
		"SESSION_SECRET": Mask,
		"NODE_ENV":       "production",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("MaskEnv = %v, want %v", got, want)
	}
	if env["SESSION_SECRET"] != "keyboard cat" {
		t.Error("MaskEnv modified its argument")
	}
	if MaskEnv(nil) != nil {
		t.Error("MaskEnv(nil) != nil")
	}
}

func FuzzMaskValue(f *testing.F) {
	for _, s := range []string{"postgres://a:b@c/d", "redis://:a@h1,redis://:b@h2", "a=1;password=2", `Password="x`, "://@", "?=&;"} {
		f.Add("X", s)
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		got := MaskValue(key, value)
		// Masking is idempotent: a masked value shows nothing more when masked again.
		if again := MaskValue(key, got); again != got {
			t.Errorf("MaskValue not idempotent: %q → %q → %q", value, got, again)
		}
	})
}
