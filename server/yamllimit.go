package server

import (
	"bytes"
	"errors"
	"io"
	"net/http"

	"gopkg.in/yaml.v3"

	"github.com/berthpaas/berth/engine/release"
)

// Limits on a service definition (POST and PUT /services). It is a handful
// of fields with small maps; these are far above any real one and keep
// decoding cheap (see release.YAMLLimits for why the limits are checked on
// parsed nodes before decoding).
const maxServiceYAMLBytes = 64 << 10

var serviceYAMLLimits = release.YAMLLimits{MaxNodes: 4096, MaxMappingKeys: 512, MaxDepth: 16, NoControl: true}

// decodeServiceYAML decodes a service definition strictly (known fields
// only) into v, after checking its size (413) and its shape (400: node
// count, keys per mapping, depth, no aliases, no control characters in any
// key or value).
func decodeServiceYAML(body []byte, v any) error {
	if len(body) > maxServiceYAMLBytes {
		return errStatus(http.StatusRequestEntityTooLarge, "a service definition must be at most %d bytes (this one is %d)", maxServiceYAMLBytes, len(body))
	}
	if err := release.CheckYAML(body, serviceYAMLLimits); err != nil {
		return badRequest("invalid service YAML: %v", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(body))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return badRequest("the body must be a YAML service definition (id, broker, endpoint, settings)")
		}
		return badRequest("invalid service YAML: %v", err)
	}
	return nil
}

// mayManageServices is the check made before a service definition is read
// at all: only an admin, or a user in at least one team, can create or
// update a service (the full check, on the named team or the service's
// owner teams, follows the parse).
func (s *Server) mayManageServices(c *call) error {
	if c.id.Admin {
		return nil
	}
	if c.id.AppToken {
		return forbidden("an app token cannot create or change services")
	}
	mine, err := s.eng.UserTeams(c.ctx(), c.id)
	if err != nil {
		return err
	}
	if len(mine) == 0 {
		return forbidden("you must be a member of a team to create or change a service")
	}
	return nil
}
