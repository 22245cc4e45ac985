# Prints the list-page and one-app-read benchmarks of package server
# (server/pages_bench_test.go) from `go test -bench` output as a table of
# ratios: a page of 100 at 100, 1,000 and 10,000 apps side by side (the
# cost should follow the page, not the fleet: 10k/100 near 1), and Berth's
# read of one app against the raw Store Get it wraps.
#
#	awk -f tools/bench/pages.awk bench-server.out
/^BenchmarkListPage\// {
	split($1, a, "/"); n = a[4]; sub(/-[0-9]+$/, "", n); sub(/^apps=/, "", n)
	k = a[2] " " a[3]; sub(/store=/, "", k); sub(/list=/, "", k)
	ns[k, n] = $3; p99[k, n] = $7
	if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
}
/^BenchmarkReadOne\// {
	split($1, a, "/"); s = a[2]; sub(/store=/, "", s); w = a[3]; sub(/-[0-9]+$/, "", w)
	rd[s, w] = $3; rp99[s, w] = $7
	if (!(s in rseen)) { rseen[s] = 1; rorder[++nr] = s }
}
function ms(v) { return v == "" ? "-" : sprintf("%.2f", v / 1e6) }
function ratio(x, y) { return (x == "" || y == "" || y == 0) ? "-" : sprintf("%.2f", x / y) }
END {
	if (nk > 0) {
		print ""
		print "== List pages of 100 (ms/op; p99 at 10k) =="
		printf "%-8s %-15s %9s %9s %9s %9s %10s\n", "store", "list", "@100", "@1k", "@10k", "10k/100", "p99@10k"
		for (i = 1; i <= nk; i++) {
			k = order[i]; split(k, b, " ")
			printf "%-8s %-15s %9s %9s %9s %9s %10s\n", b[1], b[2], ms(ns[k, "100"]), ms(ns[k, "1000"]), ms(ns[k, "10000"]), ratio(ns[k, "10000"], ns[k, "100"]), ms(p99[k, "10000"])
		}
	}
	if (nr > 0) {
		print ""
		print "== One app: GET /api/v1/repos/:app/ vs the raw Store Get (us/op) =="
		printf "%-8s %10s %10s %8s %12s %12s\n", "store", "berth", "raw", "ratio", "berth p99", "raw p99"
		for (i = 1; i <= nr; i++) {
			s = rorder[i]
			printf "%-8s %10.1f %10.1f %8s %12.1f %12.1f\n", s, rd[s, "berth"] / 1e3, rd[s, "raw"] / 1e3, ratio(rd[s, "berth"], rd[s, "raw"]), rp99[s, "berth"] / 1e3, rp99[s, "raw"] / 1e3
		}
	}
}
