package api

import "net/http"

// Quota is the answer of GET /quota/:user: how many apps the user may own.
type Quota struct {
	// Items is the user's limit.
	Items int `json:"items"`
	// Available is how many more apps the user may create.
	Available int `json:"available"`
}

// QuotaSetRequest is the body of PUT /quota/:user.
type QuotaSetRequest struct {
	// Limit is a number of apps, 0 or more.
	Limit int `json:"limit"`
}

// Quotas is the quota resource (/quota).
type Quotas struct{ c *Client }

// Quotas returns the quota resource.
func (c *Client) Quotas() *Quotas { return &Quotas{c} }

// Get returns a user's quota: GET /quota/:user (the user itself, or a site
// admin; others need user.quota.others).
func (qu *Quotas) Get(email string, q *QueryOptions) (*Quota, *QueryMeta, error) {
	var out Quota
	qm, err := qu.c.query("/quota/"+esc(email), &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// Set changes a user's quota: PUT /quota/:user (quota.set; site admins).
func (qu *Quotas) Set(email string, limit int, w *WriteOptions) (*WriteMeta, error) {
	return qu.c.write(http.MethodPut, "/quota/"+esc(email), nil, &QuotaSetRequest{Limit: limit}, nil, w)
}
