package api

import "time"

// UserListItem is one user of GET /users (site admins): never a password
// hash or keys.
type UserListItem struct {
	Email   string    `json:"email"`    // the account's email
	IsAdmin bool      `json:"is_admin"` // a site admin
	Created time.Time `json:"created"`  // when the account was made
	// Teams are the teams the user is a member of, sorted; never null.
	Teams []string `json:"teams"`
	// Quota is the user's app quota and how many more apps it may own.
	Quota Quota `json:"quota"`
}

// List returns every user, sorted by email: GET /users (user.list; site
// admins only).
func (u *Users) List(q *QueryOptions) ([]UserListItem, *QueryMeta, error) {
	var out []UserListItem
	qm, err := u.c.query("/users", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}
