# Berth on Nomad: two `berth server` processes as one Nomad job, one Berth
# cluster on a shared Consul prefix (the servers elect the one that runs the
# reconciler through a Consul session lock; any of them serves the whole
# API). Apps are scheduled on the same Nomad (the `nomad {}` block).
#
#   nomad job run -var berth_binary=/usr/local/bin/berth \
#     -var consul_address=http://127.0.0.1:8500 -var vault_address=http://127.0.0.1:8200 \
#     jobspecs/berth.nomad.hcl
#
# Written for Nomad 1.6 (the last MPL-2.0 line, tools/nomad/README.md):
#
# - Vault: the token-based integration. The Nomad agents run with
#   `vault { enabled = true, address = ..., token = ... }` (or -vault-enabled
#   -vault-address -vault-token), a token that may create tokens for the
#   policies below; each task's `vault { policies = [...] }` gets a token of
#   its own, renewed by Nomad, in VAULT_TOKEN and in the template's context.
#   Nomad 1.7 and later replace this with workload identities: the agents'
#   `vault { default_identity { aud = ["vault.io"] } }`, a Vault JWT auth
#   method trusting Nomad's JWKS (`nomad setup vault`), and a task
#   `vault { role = "berth-server" }` (with `identity { name = "vault_default"
#   aud = ["vault.io"] ttl = "1h" }` if not the agent's default) instead of
#   `policies`; the role, not the job, names the policies. The token-based
#   integration is deprecated in 1.7 and removed in 1.9.
# - Consul: the servers' service registration and its HTTP check on /healthz
#   go through the agents' `consul {}` block (Nomad 1.7+ may use a Consul
#   workload identity instead; nothing in this file changes for it).
#
# The driver is raw_exec (enable it on the clients: `plugin "raw_exec" {
# config { enabled = true } }`; `nomad agent -dev` has it): Berth runs with
# the rights of the Nomad client, as `berth server` would under systemd, and
# the binary is a path on the client hosts (berth_binary). With exec, an
# `artifact { source = "https://.../berth" }` and command = "local/berth"
# would do instead.

variable "berth_binary" {
  type        = string
  description = "Absolute path of the berth binary on the Nomad clients."
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "servers" {
  type        = number
  default     = 2
  description = "How many Berth servers run (one cluster)."
}

variable "service_name" {
  type        = string
  default     = "berth"
  description = "The Consul service the servers register (with an HTTP check on /healthz)."
}

variable "consul_address" {
  type    = string
  default = "http://127.0.0.1:8500"
}

variable "consul_prefix" {
  type        = string
  default     = "berth/"
  description = "Berth's Store: the Consul KV prefix every server of the cluster shares."
}

variable "vault_address" {
  type    = string
  default = "http://127.0.0.1:8200"
}

variable "vault_policies" {
  type        = list(string)
  default     = ["berth-server"]
  description = "Vault policies of the servers' token (Nomad 1.6 token-based integration): read/write on the KV v2 paths under vault_mount/vault_prefix."
}

variable "vault_mount" {
  type    = string
  default = "secret"
}

variable "vault_prefix" {
  type    = string
  default = "berth"
}

variable "app_vault_policies" {
  type        = list(string)
  default     = []
  description = "Nomad 1.6: the Vault policies of the apps' tasks, which read their private env (KV v2 read on vault_mount/data/vault_prefix/apps/*); Berth's nomad block vault_policies. Leave empty on Nomad 1.7+ (the default workload-identity role)."
}

variable "nomad_address" {
  type        = string
  default     = "http://127.0.0.1:4646"
  description = "The Nomad API the servers schedule apps on."
}

variable "log_level" {
  type    = string
  default = "info"
}

job "berth" {
  type        = "service"
  datacenters = var.datacenters

  group "server" {
    count = var.servers

    # Two servers on one host must not share ports: each gets two dynamic
    # ports, bound on loopback (BIND 127.0.0.1; put a load balancer in front
    # to serve other hosts, e.g. through the Consul service below).
    network {
      port "http" {}
      port "router" {}
    }

    restart {
      attempts = 3
      delay    = "5s"
      interval = "1m"
      mode     = "delay"
    }

    update {
      max_parallel     = 1
      min_healthy_time = "5s"
      healthy_deadline = "2m"
    }

    service {
      name     = var.service_name
      provider = "consul"
      port     = "http"
      address  = "127.0.0.1"
      tags     = ["berth", "api"]

      check {
        name     = "berth healthz"
        type     = "http"
        path     = "/healthz"
        interval = "2s"
        timeout  = "1s"
      }
    }

    task "berth" {
      driver = "raw_exec"

      config {
        command = var.berth_binary
        args    = ["server", "-config", "${NOMAD_TASK_DIR}/config.hcl"]
      }

      # Nomad 1.6: a token of these policies, renewed by Nomad; when Vault
      # replaces it the template renders a new config and the server
      # restarts with it. (Nomad 1.7+: `role = "..."` with workload
      # identity, see the top of this file.)
      vault {
        policies    = var.vault_policies
        change_mode = "restart"
      }

      # The server's configuration: Consul and Vault from the job (the
      # Vault token is the task's own, from the vault block above), ports
      # from Nomad. The token is written only into the task's private
      # directory (0600), never into the job.
      template {
        destination = "${NOMAD_TASK_DIR}/config.hcl"
        perms       = "0600"
        change_mode = "restart"
        data        = <<-EOT
          data_dir  = "{{ env "NOMAD_TASK_DIR" }}/data"
          bind_addr = "127.0.0.1:{{ env "NOMAD_PORT_http" }}"
          log_level = "${var.log_level}"

          local {
            router_addr = "127.0.0.1:{{ env "NOMAD_PORT_router" }}"
          }

          consul {
            address = "${var.consul_address}"
            prefix  = "${var.consul_prefix}"
          }

          vault {
            address = "${var.vault_address}"
            token   = "{{ with secret "auth/token/lookup-self" }}{{ .Data.id }}{{ end }}"
            mount   = "${var.vault_mount}"
            prefix  = "${var.vault_prefix}"
          }

          nomad {
            address        = "${var.nomad_address}"
            raw_exec       = true
            vault_policies = ${jsonencode(var.app_vault_policies)}
          }
        EOT
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
