package api

// Healer is one entry of GET /healers: a one-key object, the healer's name
// to what it does.
type Healer map[string]string

// PassResult is what a reconcile pass did (HealerResult.Result).
type PassResult struct {
	Checked   int      `json:"checked"`   // the apps looked at
	Submitted []string `json:"submitted"` // the apps (re)submitted to the scheduler
	Stopped   []string `json:"stopped"`   // the orphans stopped
	Failed    []string `json:"failed"`    // the apps that could not be reconciled
}

// HealerResult is the answer of GET /healers/:healer.
type HealerResult struct {
	Healer string `json:"healer"` // the healer that ran
	// Repaired lists what the "services" healer repaired (an empty list
	// when it repaired nothing; left out for the other healers).
	Repaired []string `json:"repaired,omitzero"`
	// Result is what the "reconcile" healer did.
	Result *PassResult `json:"result,omitempty"`
}

// Healers is the healers resource (/healers): named repairs.
type Healers struct{ c *Client }

// Healers returns the healers resource.
func (c *Client) Healers() *Healers { return &Healers{c} }

// List returns the healers, sorted by name: GET /healers (any token).
func (h *Healers) List(q *QueryOptions) ([]Healer, *QueryMeta, error) {
	var out []Healer
	qm, err := h.c.query("/healers", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// Run runs a healer now: GET /healers/:healer (healer.run; site admins).
func (h *Healers) Run(name string, q *QueryOptions) (*HealerResult, *QueryMeta, error) {
	var out HealerResult
	qm, err := h.c.query("/healers/"+esc(name), &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}
