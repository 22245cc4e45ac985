package engine

import (
	"context"
	"errors"

	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// Quota is how many apps a user may own (Limit) and how many more it may
// register now (Available).
type Quota struct {
	Limit     int
	Available int
}

// Quota is the quota of the user email: the caller's own, or anyone's
// for site admins.
func (s *Engine) Quota(ctx context.Context, id *Identity, email string) (*Quota, error) {
	email, err := names.Email(email)
	if err != nil {
		return nil, err
	}
	if id == nil || id.AppToken || (id.Email != email && !id.Admin) {
		if err := s.Allowed(ctx, id, ActUserQuotaOthers, nil); err != nil {
			return nil, err
		}
	}
	u, _, err := state.Get[state.User](ctx, s.store, state.UserKey(email))
	if errors.Is(err, state.ErrNotFound) {
		return nil, notFound("user %s not found", email)
	}
	if err != nil {
		return nil, err
	}
	q := &Quota{Limit: s.quotaOf(u)}
	q.Available = max(q.Limit-u.Owned, 0)
	return q, nil
}

// SetQuota sets how many apps the user email may own (site admins only).
func (s *Engine) SetQuota(ctx context.Context, id *Identity, email string, limit *int) error {
	if err := s.Allowed(ctx, id, ActUserQuotaOthers, nil); err != nil {
		return err
	}
	email, err := names.Email(email)
	if err != nil {
		return err
	}
	if limit == nil || *limit < 0 {
		return badRequest("limit must be a number of apps, 0 or more")
	}
	l := *limit
	_, _, err = state.Update(ctx, s.store, state.UserKey(email), func(u *state.User) error {
		u.Quota = &l
		return nil
	})
	if errors.Is(err, state.ErrNotFound) {
		return notFound("user %s not found", email)
	}
	return err
}
