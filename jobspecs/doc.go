// Package jobspecs holds the Nomad jobspecs operators run Berth with
// (berth.nomad.hcl: two Berth servers, and optionally a fabio router, as one
// Nomad 1.6 job). The package's test checks that they parse and have the
// expected shape; e2e's TestNomadBerthOnNomad runs the job on a real Nomad.
package jobspecs
