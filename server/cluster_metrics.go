package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berthpaas/berth/reconciler"
)

// reconcilerLeaderGauge is berth_reconciler_leader: 1 on the server of a
// cluster that runs the reconciler now, 0 on the others.
func reconcilerLeaderGauge(rec *reconciler.Reconciler) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "berth_reconciler_leader",
		Help:        "1 while this server runs the reconciler (holds its lock or lease), else 0.",
		ConstLabels: prometheus.Labels{"server": rec.ID()},
	}, func() float64 {
		if rec.Leader() {
			return 1
		}
		return 0
	})
}

// readCounter is a Store that reports how its reads were answered (the
// Consul replica).
type readCounter interface {
	ReadCounts() (leased, indexed, direct uint64)
	Member() (id string, leased bool)
}

// storeReadMetrics are berth_store_reads_total{path} (memory under the read
// lease, memory after a read-index request, Consul directly) and
// berth_store_read_lease (1 while this server holds its read lease).
func storeReadMetrics(rc readCounter) []prometheus.Collector {
	counter := func(path string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "berth_store_reads_total", Help: "Store reads by how they were answered.",
			ConstLabels: prometheus.Labels{"path": path}}, func() float64 { return float64(f()) })
	}
	return []prometheus.Collector{
		counter("lease", func() uint64 { l, _, _ := rc.ReadCounts(); return l }),
		counter("read_index", func() uint64 { _, i, _ := rc.ReadCounts(); return i }),
		counter("consul", func() uint64 { _, _, d := rc.ReadCounts(); return d }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_store_read_lease", Help: "1 while this server answers Store reads from memory under its read lease, else 0."},
			func() float64 {
				if _, ok := rc.Member(); ok {
					return 1
				}
				return 0
			}),
	}
}
