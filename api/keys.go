package api

import "net/http"

// SSHKey is one of a user's SSH public keys (GET /users/keys).
type SSHKey struct {
	// Name is the key's name (its comment when none was given).
	Name string `json:"name"`
	// Fingerprint is "SHA256:<base64>".
	Fingerprint string `json:"fingerprint"`
	// Key is the key in authorized_keys form.
	Key string `json:"key"`
}

// KeyRequest is the body of POST /users/keys ({"key"[, "name"]}) and of
// DELETE /users/keys ({"key"} or {"name"}).
type KeyRequest struct {
	Key  string `json:"key,omitempty"`  // the public key in authorized_keys form
	Name string `json:"name,omitempty"` // the key's name (default: its comment)
}

// KeyAdded is the answer of POST /users/keys.
type KeyAdded struct {
	Fingerprint string `json:"fingerprint"` // the key's fingerprint, "SHA256:<base64>"
	Name        string `json:"name"`        // the key's name
}

// Keys is the caller's SSH keys (/users/keys).
type Keys struct{ c *Client }

// Keys returns the SSH keys resource.
func (c *Client) Keys() *Keys { return &Keys{c} }

// List returns the caller's keys: GET /users/keys (user tokens only).
func (k *Keys) List(q *QueryOptions) ([]SSHKey, *QueryMeta, error) {
	var out []SSHKey
	qm, err := k.c.query("/users/keys", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// Add adds a key: POST /users/keys (user.key.add). A key or name already
// there is a 409.
func (k *Keys) Add(req *KeyRequest, w *WriteOptions) (*KeyAdded, *WriteMeta, error) {
	var out KeyAdded
	wm, err := k.c.write(http.MethodPost, "/users/keys", nil, req, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Remove removes a key, named by its text or its name: DELETE /users/keys
// (user.key.remove).
func (k *Keys) Remove(req *KeyRequest, w *WriteOptions) (*WriteMeta, error) {
	return k.c.write(http.MethodDelete, "/users/keys", nil, req, nil, w)
}
