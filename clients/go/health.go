package leanauth

import (
	"context"

	"github.com/leanauth/leanauth/clients/go/leanauthpb"
)

// Health asks leanauthd whether profile can be served ("" asks about the
// whole service). It returns true for SERVING and false for NOT_SERVING (or
// UNKNOWN); an error means the check itself failed, e.g. ErrNotFound for an
// unknown profile or ErrUnavailable when leanauthd cannot be reached.
func (c *Client) Health(ctx context.Context, profile string) (bool, error) {
	var resp leanauthpb.HealthCheckResponse
	err := c.call(ctx, MethodHealthCheck, &leanauthpb.HealthCheckRequest{Profile: profile}, &resp)
	if err != nil {
		return false, err
	}
	return resp.GetStatus() == leanauthpb.ServingStatus_SERVING, nil
}
