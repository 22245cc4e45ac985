package broker

import (
	"context"
	"errors"
	"fmt"

	brokerpb "github.com/berthpaas/berth/plugins/broker/proto"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// Version 1 carried the sentinels as google.rpc.ErrorInfo details with
// these reasons; version 2 carries a brokerpb.ErrorDetail.
const (
	errorDomain       = "berth.broker"
	reasonGone        = "GONE"
	reasonNotFound    = "NOT_FOUND"
	reasonConflict    = "CONFLICT"
	reasonBadRequest  = "BAD_REQUEST"
	reasonUnavailable = "UNAVAILABLE"
)

// sentinels maps each sentinel to its gRPC code and its kinds on the wire.
var sentinels = []struct {
	err    error
	code   codes.Code
	kind   brokerpb.ErrorKind
	reason string // version 1
}{
	{ErrGone, codes.NotFound, brokerpb.ErrorKind_ERROR_KIND_GONE, reasonGone},
	{ErrNotFound, codes.NotFound, brokerpb.ErrorKind_ERROR_KIND_NOT_FOUND, reasonNotFound},
	{ErrConflict, codes.AlreadyExists, brokerpb.ErrorKind_ERROR_KIND_CONFLICT, reasonConflict},
	{ErrBadRequest, codes.InvalidArgument, brokerpb.ErrorKind_ERROR_KIND_BAD_REQUEST, reasonBadRequest},
	{ErrUnavailable, codes.Unavailable, brokerpb.ErrorKind_ERROR_KIND_UNAVAILABLE, reasonUnavailable},
}

// toStatus converts a broker's error to a version 1 gRPC status error
// (ErrorInfo details).
func toStatus(err error) error {
	return statusFor(err, func(i int) protoadapt.MessageV1 {
		return &errdetails.ErrorInfo{Reason: sentinels[i].reason, Domain: errorDomain}
	})
}

// toStatusV2 converts a broker's error to a version 2 gRPC status error
// (an ErrorDetail naming its kind).
func toStatusV2(err error) error {
	return statusFor(err, func(i int) protoadapt.MessageV1 {
		return &brokerpb.ErrorDetail{Kind: sentinels[i].kind}
	})
}

func statusFor(err error, detail func(i int) protoadapt.MessageV1) error {
	if _, ok := status.FromError(err); ok && !isSentinel(err) {
		return err
	}
	for i, s := range sentinels {
		if errors.Is(err, s.err) {
			st := status.New(s.code, err.Error())
			if d, derr := st.WithDetails(detail(i)); derr == nil {
				st = d
			}
			return st.Err()
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return true
		}
	}
	return false
}

// recoverStatus turns a panic of a broker's method into an Internal status,
// so that a bug answers the call with an error instead of killing the plugin.
func recoverStatus(err *error) {
	if p := recover(); p != nil {
		*err = status.Errorf(codes.Internal, "broker panicked: %v", p)
	}
}

// RemoteError is an error returned by a broker across the plugin boundary.
// errors.Is matches the sentinel it was made from (ErrGone, ...), or
// context.DeadlineExceeded / context.Canceled.
type RemoteError struct {
	Msg  string
	Kind error // a sentinel, context.DeadlineExceeded, context.Canceled, or nil
	// Transport is set when the error did not come from the broker's code
	// but from the connection (e.g. the plugin process died mid-call).
	Transport bool
}

// IsTransport reports whether err is a failure of the connection to the
// plugin rather than an answer from the broker.
func IsTransport(err error) bool {
	var re *RemoteError
	return errors.As(err, &re) && re.Transport
}

func (e *RemoteError) Error() string { return e.Msg }
func (e *RemoteError) Unwrap() error { return e.Kind }

// fromStatus maps a gRPC error from the client side back to a sentinel,
// reading a version 2 ErrorDetail or a version 1 ErrorInfo.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *brokerpb.ErrorDetail:
			for _, s := range sentinels {
				if s.kind == d.GetKind() {
					return &RemoteError{Msg: msg, Kind: s.err}
				}
			}
		case *errdetails.ErrorInfo:
			if d.Domain != errorDomain {
				continue
			}
			for _, s := range sentinels {
				if s.reason == d.Reason {
					return &RemoteError{Msg: msg, Kind: s.err}
				}
			}
		}
	}
	switch st.Code() {
	case codes.Unavailable:
		return &RemoteError{Msg: fmt.Sprintf("%v: %s", ErrUnavailable, msg), Kind: ErrUnavailable, Transport: true}
	case codes.DeadlineExceeded:
		return &RemoteError{Msg: "broker call timed out: " + msg, Kind: context.DeadlineExceeded}
	case codes.Canceled:
		return &RemoteError{Msg: "broker call canceled: " + msg, Kind: context.Canceled}
	case codes.InvalidArgument:
		return &RemoteError{Msg: msg, Kind: ErrBadRequest}
	}
	return &RemoteError{Msg: "broker: " + msg}
}
