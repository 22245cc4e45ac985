// Package jobspecs holds the Nomad jobspecs operators run Berth with
// (berth.nomad.hcl: the Berth server and its router as one Nomad job). The
// package's test checks that they parse and have the expected shape.
package jobspecs
