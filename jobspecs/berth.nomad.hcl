# Berth on Nomad: the Berth server (API and reconciler) and the HTTP router
# that sends <app>.<apps domain> to the apps' web procs, as one Nomad job.
#
#   nomad job run -var 'image=registry.example.com/berth:1.0.0' \
#                 -var 'apps_domain=apps.example.com' jobspecs/berth.nomad.hcl
#
# What it expects of the cluster:
#   - Consul (Berth's Store, and the service catalog the router reads),
#   - Vault with a KV v2 mount (Berth's Secrets; apps' private env),
#     and a Nomad workload-identity role for Berth (var.vault_role),
#   - the docker driver on the clients.
#
# Several Berth servers can run at once: they share the Store in Consul, one
# of them holds the reconciler's Consul lock, any of them answers the API.
#
# The apps Berth deploys are separate Nomad jobs (one per app, ID = app name)
# whose web services carry routing tags "urlprefix-<host>/"; the router group
# below (fabio) turns those tags into routes, so no router config is needed.

variable "image" {
  type        = string
  description = "The berth image (the berth binary as entrypoint)."
  default     = "berthpaas/berth:latest"
}

variable "router_image" {
  type        = string
  description = "The router image: fabio reads urlprefix- tags from Consul."
  default     = "fabiolb/fabio:1.6.3"
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "servers" {
  type        = number
  description = "How many Berth servers (API replicas; one reconciles at a time)."
  default     = 2
}

variable "routers" {
  type    = number
  default = 2
}

variable "apps_domain" {
  type        = string
  description = "Apps are served at <app>.<apps_domain>."
  default     = "apps.example.com"
}

variable "vault_role" {
  type        = string
  description = "Vault role (workload identity) whose policy may use Berth's KV paths."
  default     = "berth"
}

job "berth" {
  datacenters = var.datacenters
  type        = "service"

  meta {
    # Berth's own job is not an app: no berth_app meta, so Berth never lists
    # or stops itself.
    component = "berth"
  }

  # --- The Berth server -----------------------------------------------------
  group "server" {
    count = var.servers

    # Spread the servers over nodes: losing one node keeps the API up.
    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      port "http" {
        to = 8080
      }
    }

    # Rolling updates, one server at a time, reverted when unhealthy.
    update {
      max_parallel      = 1
      health_check      = "checks"
      min_healthy_time  = "10s"
      healthy_deadline  = "3m"
      progress_deadline = "10m"
      auto_revert       = true
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "15s"
      mode     = "delay"
    }

    service {
      name     = "berth-api"
      port     = "http"
      provider = "consul"
      # The router sends the API's host to the servers too.
      tags = ["berth", "urlprefix-berth.${var.apps_domain}/"]

      # GET /healthz answers 503 when a backend (Consul, Vault, Nomad) is down.
      check {
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "berth" {
      driver = "docker"

      config {
        image = var.image
        ports = ["http"]
        args  = ["server", "-config", "/secrets/config.hcl"]
      }

      # Berth's own Vault token comes from workload identity; it never sits
      # in the job or in the config file.
      vault {
        role        = var.vault_role
        change_mode = "restart"
      }

      # The operator's config.hcl, rendered at placement into the task's
      # private secrets/ dir (it holds the task's Vault token). Addresses come
      # from the node (Consul and Nomad agents run on every client).
      template {
        destination = "secrets/config.hcl"
        perms       = "0400"
        change_mode = "restart"
        data        = <<-EOT
          data_dir  = "/alloc/data"
          bind_addr = "0.0.0.0:8080"
          log_level = "info"
          log_json  = true

          apps {
            domain = "${var.apps_domain}"
          }

          consul {
            address = "{{ env "attr.unique.network.ip-address" }}:8500"
            prefix  = "berth/"
          }

          vault {
            address = "{{ env "VAULT_ADDR" }}"
            token   = "{{ env "VAULT_TOKEN" }}"
            mount   = "secret"
            prefix  = "berth/"
          }

          nomad {
            address            = "http://{{ env "attr.unique.network.ip-address" }}:4646"
            datacenters        = ["dc1"]
            vault_role         = "berth-apps"
            consul_tags_prefix = "urlprefix-"
          }
        EOT
      }

      # The Nomad token Berth uses to register apps' jobs, from Vault.
      template {
        destination = "secrets/nomad.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with secret "secret/data/berth/nomad" }}NOMAD_TOKEN={{ .Data.data.token }}{{ end }}
        EOT
      }

      resources {
        cpu    = 500
        memory = 256
      }

      kill_timeout = "30s"
    }
  }

  # --- The router -------------------------------------------------------------
  group "router" {
    count = var.routers

    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    # Static ports: a load balancer or DNS in front points at the nodes.
    network {
      port "http" {
        static = 9999
      }
      port "ui" {
        static = 9998
      }
    }

    update {
      max_parallel     = 1
      health_check     = "checks"
      min_healthy_time = "10s"
      auto_revert      = true
    }

    service {
      name     = "berth-router"
      port     = "ui"
      provider = "consul"
      tags     = ["berth"]

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "fabio" {
      driver = "docker"

      config {
        image        = var.router_image
        network_mode = "host"
        ports        = ["http", "ui"]
      }

      env {
        # fabio reads the routes from the tags Berth puts on apps' services.
        registry_consul_addr          = "${attr.unique.network.ip-address}:8500"
        registry_consul_tagprefix     = "urlprefix-"
        proxy_addr                    = ":9999"
        ui_addr                       = ":9998"
        proxy_noroutestatus           = "404"
        registry_consul_register_name = "berth-router-ui"
      }

      resources {
        cpu    = 250
        memory = 128
      }
    }
  }
}
