# Berth operator configuration.
#
# As committed, this file runs Berth on its embedded defaults: a bbolt Store,
# a sealed (AES-256-GCM) Secrets file and the local process Scheduler with its
# built-in router, all under data_dir. Every setting is shown with its default.
# Uncomment the consul, vault and nomad blocks to run on the HashiCorp stack.
# An unknown key is an error that names the key, the file and the line.

# Where the embedded backends keep their files (store, secrets key, logs, outbox).
data_dir = "./data"

# The API listens here. Keep it on loopback unless a proxy with TLS is in front.
bind_addr = "127.0.0.1:8080"

# trace, debug, info, warn or error; log_json = true for JSON log lines.
log_level = "info"
log_json  = false

# Request bodies larger than this are refused with 413.
max_body_bytes = 1048576

# Emails of site admins: they may do everything. Create the first one with
#   berth admin create-user -config config.hcl -email admin@berth.local
admins = ["admin@berth.local"]

# Platforms listed by GET /platforms.
platforms = ["go", "python", "nodejs", "static", "docker"]

users {
  # Anyone may create an account with POST /users (they own nothing until they create apps).
  open_registration = true
  # Lifetime of login tokens, app tokens and password-reset tokens.
  token_ttl       = "168h"
  app_token_ttl   = "720h"
  reset_token_ttl = "1h"
  # How many apps a user may own unless changed.
  default_quota = 10
}

apps {
  # The router sends <app>.<domain> to the app's web proc.
  domain = "apps.localhost"
  # What POST /apps answers as repository_url; {app} is replaced by the app name.
  git_url_template = "git@git.berth.local:{app}.git"
}

# The embedded scheduler: procs run as child processes; its router listens here.
# Each instance runs under a small supervisor (`berth proc-shim`) that takes its
# whole process tree down with it (stop, undeploy, or berth killed with -9).
local {
  router_addr  = "127.0.0.1:8081"
  stop_timeout = "10s"
  # How app code is kept from berth's data_dir (kept 0700) and from other apps:
  #   "auto"      uid when berth runs as root, else namespace, else berth refuses to start
  #   "uid"       each app runs as a uid/gid of its own from uid_range (berth must be root)
  #   "namespace" each instance gets user+mount+pid namespaces hiding data_dir, the
  #               config file and the other apps' directories (unprivileged berth)
  #   "none"      procs run as berth itself and can read data_dir: single trusted tenant only
  isolation = "auto"
  # uid mode: app uids (and gids) come from this range, LOW-HIGH; an app keeps its
  # uid (recorded in <data_dir>/local/uids.json) and a uid is never given twice.
  uid_range = "200000-265535"
  # The apps' working directories (also their HOME), one per app, owned by the
  # app's uid. Default: "<data_dir>-apps". Not inside data_dir; every directory
  # above it must be traversable (o+x) by app users.
  # apps_dir = "/var/lib/berth-apps"
}

# Outgoing mail (password resets). Without smtp_addr each message is written
# as a file under <data_dir>/outbox/.
mailer {
  from = "berth@localhost"
  # smtp_addr = "127.0.0.1:25"
  # username  = ""
  # password  = ""
}

# Webhook notifiers (imagepush): each delivery is signed with HMAC-SHA256 over
# the body in the X-Berth-Signature header. Without a secret one is generated
# and kept in Secrets.
notify {
  # secret     = "change-me"
  max_attempts = 5
  backoff      = "1s"
  timeout      = "10s"
}

# Service-broker plugins: built-ins (mysql, redis, mongodb) run from this binary;
# others are executables named berth-broker-<name> in dir.
# Plugin processes run in their own process group and die with berth; their pids
# are kept under <data_dir>/plugins and leftovers are killed at start.
plugins {
  # dir        = "/opt/berth/plugins"
  call_timeout = "30s"
  # Pin external plugins by the SHA-256 of their executable (sha256sum); a plugin
  # whose file does not match is refused (provision/bind answer the mismatch).
  # checksums = { mybroker = "<64 hex digits>" }
}

reconciler {
  interval = "30s"
  lock_ttl = "2m"
}

# --- The HashiCorp stack ---------------------------------------------------
#
# consul {                      # Store: Consul KV
#   address    = "127.0.0.1:8500"
#   token      = ""
#   prefix     = "berth/"
#   datacenter = ""
#   tls {
#     ca_file   = ""
#     cert_file = ""
#     key_file  = ""
#     server_name = ""
#     insecure_skip_verify = false
#   }
# }
#
# vault {                       # Secrets: Vault KV v2
#   address  = "https://127.0.0.1:8200"
#   token    = ""               # or AppRole:
#   role_id  = ""
#   secret_id = ""
#   approle_mount = "approle"
#   mount    = "secret"
#   prefix   = "berth/"
#   namespace = ""
# }
#
# nomad {                       # Scheduler: one Nomad job per app
#   address     = "http://127.0.0.1:4646"
#   token       = ""
#   region      = ""
#   namespace   = ""
#   datacenters = ["dc1"]
#   raw_exec    = false         # raw_exec instead of exec for cmd procs
#   vault_role  = ""            # Nomad >= 1.7 (workload identity): the Vault role of tasks with private env
#   vault_policies = []         # Nomad <= 1.6 (token-based Vault integration): policies granting read on
#                               # <vault mount>/data/<vault prefix>/apps/*; required there for private env
#   consul_tags_prefix = "urlprefix-"
# }
