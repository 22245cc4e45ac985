package server

import (
	"net/http"
	"reflect"

	"github.com/berthpaas/berth/server/openapi"
)

// openapiOps describes the route table for the OpenAPI document.
func openapiOps(table []route) []openapi.Operation {
	ops := make([]openapi.Operation, 0, len(table))
	for _, rt := range table {
		op := openapi.Operation{
			Method: rt.Method, Path: rt.Path, Summary: rt.Summary, Action: string(rt.Action),
			Public: rt.Public, Status: rt.Status, Text: rt.Text, Stream: rt.Stream,
			RequestContentType: rt.InType, AlsoContentTypes: rt.InTypes, RequestOptional: rt.InOptional,
			AlsoStatus: rt.AlsoStatus, StreamType: rt.StreamType,
		}
		if rt.Tag != "" {
			op.Tags = []string{rt.Tag}
		}
		if rt.In != nil {
			op.Request = reflect.TypeOf(rt.In)
		}
		if rt.Out != nil {
			op.Response = reflect.TypeOf(rt.Out)
		}
		for code, v := range rt.AlsoOut {
			if op.AlsoResponse == nil {
				op.AlsoResponse = map[int]reflect.Type{}
			}
			op.AlsoResponse[code] = reflect.TypeOf(v)
		}
		for _, q := range rt.Query {
			op.Query = append(op.Query, openapi.Param{Name: q.Name, Type: q.Type, Description: q.Doc})
		}
		ops = append(ops, op)
	}
	return ops
}

// openapiDocument generates the document of the server's routes.
func (s *Server) openapiDocument() ([]byte, error) {
	return openapi.Generate(openapi.Info{
		Title:   "Berth",
		Version: "1",
		Description: "Berth's API: the LAIN-style console API under /api/v1/ and the tsuru-style API at the root, " +
			"over one model. Authenticate with 'Authorization: bearer <token>' or the 'access-token' header.",
	}, openapiOps(s.routes()))
}

// GET /openapi.json
func (s *Server) openapiDoc(c *call) (any, error) {
	s.docOnce.Do(func() { s.doc, s.docErr = s.openapiDocument() })
	if s.docErr != nil {
		return nil, s.docErr
	}
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(s.doc)
	return streamed{}, nil
}

// GET /metrics: Prometheus metrics, in their text format.
func (s *Server) serveMetrics(c *call) (any, error) {
	s.metricsHandler().ServeHTTP(c.w, c.r)
	return streamed{}, nil
}
