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

# The Berth cluster's id: every Nomad job Berth creates carries it (job meta
# berth_cluster, Consul tag berth-cluster=<id>), and Berth never changes, scales
# or stops a job of another cluster id (or one without an id). Empty: derived
# once and kept in the Store (cluster/id), shared by all servers on it.
cluster_id = ""

# Every scheduler call has this deadline; GET /api/v1/apps/:app/ answers from
# the scheduler's last known state (with scheduler_stale) when it does not answer.
scheduler_timeout = "5s"
# How long Nomad's last known state (the in-memory view fed by its event
# stream) may go without news from Nomad before reads mark it stale
# (scheduler_stale, with its age). Default: scheduler_timeout.
# scheduler_stale_after = "5s"

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
  # The longest lifetime any token may have: POST /tokens with an "expires"
  # beyond it is refused (400); token_ttl and app_token_ttl must not exceed it.
  max_token_ttl   = "8760h"
  # How many apps a user may own unless changed.
  default_quota = 10
}

# Rate limits of the anonymous account endpoints. Each is a token bucket: a
# burst, then one more every interval; over it the answer is 429 with
# Retry-After, and no password is checked (no bcrypt work). Clients are keyed
# by the connection's remote IP (X-Forwarded-For is not trusted: behind a
# proxy every client shares the proxy's address, so raise the *_ip_ limits).
limits {
  # Failed logins (unknown email or wrong password) per client IP and per
  # account. Successful logins do not count. A client IP that logged in to an
  # account successfully in the last 30 days is exempt from that account's
  # limit, so an attack from elsewhere does not lock the owner out.
  login_ip_burst      = 20
  login_ip_every      = "3s"
  login_account_burst = 10
  login_account_every = "1m"
  # POST /users/:email/password per client IP, and reset mails per account
  # (over the mail limit the answer is unchanged, but no mail is sent).
  reset_ip_burst   = 10
  reset_ip_every   = "30s"
  reset_mail_burst = 3
  reset_mail_every = "20m"
  # Anonymous POST /users per client IP (admins are not limited).
  register_ip_burst = 20
  register_ip_every = "30s"
  # How many client IPs and accounts each limit tracks at most (memory bound;
  # the least recently seen is forgotten first).
  tracked = 10000
}

# Connection timeouts of the API server. A request's headers must arrive
# within read_header_timeout and its body within read_timeout of its start
# (else 408, and the connection is closed); an idle keep-alive connection is
# closed after idle_timeout. There is no write timeout, so the events stream
# (GET /api/v1/apps/:app/events/) stays open.
http {
  read_header_timeout = "10s"
  read_timeout        = "30s"
  idle_timeout        = "2m"
}

# GET /metrics: public by default, like /healthz (request counts by route and
# process figures; no app or user names). With token_required = true only a
# site admin's token may read it.
metrics {
  token_required = false
}

# The audit log (GET /api/v1/events/, site admins): one record per state
# change, written in the background through a queue of at most `queue`
# records (when it is full, records are dropped and counted in the metric
# berth_audit_dropped_total; a request never waits for the log). Records
# older than `retention` are deleted (at start and hourly). Requests refused
# as unauthenticated (401) are not recorded. The defaults:
# audit {
#   retention = "720h"
#   queue     = 4096
# }

apps {
  # The router sends <app>.<domain> to the app's web proc.
  domain = "apps.localhost"
  # What POST /apps answers as repository_url; {app} is replaced by the app name.
  git_url_template = "git@git.berth.local:{app}.git"
}

# The embedded scheduler: procs run as child processes; its router listens here.
# The router serves the apps on Nomad too (finding their healthy instances in
# the Consul catalog); with a nomad block it runs only when router_addr is set.
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
  # Each instance's stdout and stderr are kept under <data_dir>/local/logs/<app>/,
  # every line stamped with its time, rotated when a file would pass log_max_bytes
  # (K, M, G suffixes); log_files files of each stream are kept (`berth logs`).
  log_max_bytes = "10MB"
  log_files     = 3
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
  # A deploy (new version, scale, env change, restart...) that is not healthy
  # within progress_deadline is failed, with the unhealthy instances in its
  # message, and its lease is released. With auto_revert the app then goes
  # back to its last release that reached running (a recorded "auto-revert"
  # operation). Both are defaults: an app sets its own with
  # {"progress_deadline": "90s", "auto_revert": false} in the body of
  # POST /api/v1/apps/ or PUT /api/v1/apps/:app/. On Nomad they are rendered
  # into each group's update block (progress_deadline, auto_revert).
  progress_deadline = "5m"
  auto_revert       = true
  # Several servers on one Consul prefix (and one Vault: tokens and private
  # values live in Secrets) elect the one that reconciles through a Consul
  # session lock on <prefix>locks/reconciler-leader. A killed holder's session
  # is invalidated by Consul within 2 x leader_ttl (Consul takes TTLs from its
  # session_ttl_min, 10s by default); nobody takes the lock for
  # leader_lock_delay after that. A holder that stops gracefully releases it
  # at once. On bolt (one server) these are not used.
  leader_ttl        = "10s"
  leader_lock_delay = "1s"
}

# Broker targets: the backing servers service brokers provision on, with
# their admin connection settings. These are operator configuration: a
# tenant's service names a target (`target: local-mysql` in the service
# YAML); only site admins may give `settings:` themselves. The built-in
# brokers have no default server: a service with neither is refused
# ("no target configured"). Credentials never go in this file: secret_refs
# maps a setting to a path in Berth's Secrets (sealed or Vault; the key is
# the setting's name, or "<path>#<key>"), read each time the broker is
# configured, so a rotated secret needs no restart of Berth; put it there
# with `printf %s "$PW" | berth admin put-secret -config config.hcl <path>`
# (sealed secrets: with the server stopped). A missing secret answers 503
# naming the target and the setting. Or secret_env maps a setting to the
# environment variable holding it (read at start; an unset variable is an
# error), e.g.
#
# broker_target "shared-mysql" {
#   broker      = "mysql"
#   settings    = { host = "db.internal", port = "3306", user = "berth_admin" }
#   secret_refs = { password = "brokers/shared-mysql" }
#   # secret_env = { password = "BERTH_MYSQL_PASSWORD" }
# }
#
# Settings per broker — mysql: host, port, user, password, public_host,
# public_port, user_host, meta_database; redis: addr, username, password,
# public_host, public_port, meta_prefix; mongodb: uri, public_host,
# public_port, meta_database, allow_unscoped_users.
#
# The servers of this machine, for `make run` (MariaDB's root has no
# password here; a real deployment uses a dedicated admin user):
broker_target "local-mysql" {
  broker   = "mysql"
  settings = { host = "127.0.0.1", port = "3306", user = "root" }
}
broker_target "local-redis" {
  broker   = "redis"
  settings = { addr = "127.0.0.1:6379" }
}
broker_target "local-mongodb" {         # a MongoDB-wire server (FerretDB here)
  broker   = "mongodb"
  settings = { uri = "mongodb://127.0.0.1:27017" }
}

# An external Open Service Broker (v2.17) as a broker target: the built-in
# "osb" broker forwards provision/bind/... to it over HTTP. Settings: url,
# username, password (through secret_refs or secret_env), service (an
# offering's id or name; default the catalog's first), request_timeout
# (default "20s").
#
# broker_target "vendor-db" {
#   broker      = "osb"
#   settings    = { url = "https://broker.example.com", username = "berth" }
#   secret_refs = { password = "brokers/vendor-db" }   # berth admin put-secret brokers/vendor-db
# }

# Berth as an Open Service Broker: /osb/v2/ serves the services granted to
# team to a platform (Cloud Foundry, a Kubernetes service catalog) with basic
# auth. Off unless enabled. The password comes from exactly one of
# password_env, password_file or password_secret (a path in Secrets whose
# "password" key holds it). With async = true (the default) provision and
# deprovision answer 202 and the platform polls last_operation.
#
# osb {
#   enabled      = true
#   username     = "cf-platform"
#   password_env = "BERTH_OSB_PASSWORD"
#   team         = "platform-tenants"
#   async        = true
# }

# --- The HashiCorp stack ---------------------------------------------------
#
# consul {                      # Store: Consul KV
#   address    = "127.0.0.1:8500"
#   token      = ""
#   prefix     = "berth/"
#   datacenter = ""
#   # Reads from an in-memory replica of the prefix fed by blocking queries;
#   # without read leases each read still checks Consul's index with one
#   # shared request, so reads stay linearizable across servers.
#   read_replica = true
#   # Read leases: the servers on this prefix tell each other of every
#   # write before they send it (over their peer listeners), so each answers
#   # reads from memory with no request to Consul, still linearizable. A
#   # server that does not acknowledge within 2s is removed and its 3s lease
#   # waited out (a write then takes ~5s once); a write that bypasses berth
#   # (consul kv put) is seen within about a second. Needs read_replica and change_log.
#   read_leases = true
#   # Where this server listens for the other servers' announcements:
#   # default bind_addr's host, any free port. Set it when bind_addr's host
#   # is 0.0.0.0 or ::, to an address the other servers can dial (else read
#   # leases are off); keep it on a network tenants cannot reach.
#   peer_addr = ""
#   # Reads (and that index check) in Consul's consistent mode: the leader
#   # confirms with a quorum on every request. By default Consul's default
#   # mode: the leader answers from its state, stale only in the moment a
#   # deposed leader does not know it yet.
#   consistent_reads = false
#   # Each write also logs, in its own transaction, which keys it changed
#   # (one small entry per top-level directory, trimmed to the newest few
#   # hundred): the replica then reads those keys alone instead of
#   # re-listing the directory (10,000 app records) at every change. A
#   # write that bypasses berth (consul kv put) is still seen, by a re-list.
#   change_log = true
#   # Each call to Consul has this deadline (a blocking read: its wait time
#   # plus this); a Consul that does not answer in it makes the request
#   # answer 503 with Retry-After, naming consul.
#   call_timeout = "10s"
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
#   # Each call to Vault (its retries included) has this deadline; a Vault
#   # that does not answer in it makes the request answer 503 naming vault.
#   call_timeout = "10s"
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
