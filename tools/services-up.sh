#!/usr/bin/env bash
# Starts the database servers the broker tests use (MariaDB, Redis, and
# PostgreSQL), if they are installed here and not answering. Safe to run
# repeatedly; prints one line per server. Tests skip, saying why, when a
# server still cannot be reached.
set -u
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_up() { for _ in $(seq 1 30); do up "$1" && return 0; sleep 1; done; return 1; }

if up 3306; then echo "mariadb: up (127.0.0.1:3306)"; elif [ -x /usr/sbin/mariadbd ]; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >/dev/null 2>&1
  wait_up 3306 && echo "mariadb: started (127.0.0.1:3306)" || echo "mariadb: could not start"
else echo "mariadb: not installed (apt-get install mariadb-server)"; fi

if up 5432; then echo "postgresql: up (127.0.0.1:5432)"; elif ls /etc/postgresql >/dev/null 2>&1; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start >/dev/null 2>&1
  wait_up 5432 && echo "postgresql: started (127.0.0.1:5432)" || echo "postgresql: could not start"
else echo "postgresql: not installed"; fi

if up 6379; then echo "redis: up (127.0.0.1:6379)"; elif command -v redis-server >/dev/null; then
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null 2>&1
  wait_up 6379 && echo "redis: started (127.0.0.1:6379)" || echo "redis: could not start"
else echo "redis: not installed (apt-get install redis-server)"; fi
exit 0
