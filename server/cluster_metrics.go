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
