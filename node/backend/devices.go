package backend

import (
	"context"

	"github.com/callsign/callsign/api"
)

// StartLink implements api.Backend.
func (s *Service) StartLink(ctx context.Context) (_ api.LinkOffer, err error) {
	defer mapError(&err)
	return s.node.StartLink(ctx)
}

// LinkStatus implements api.Backend.
func (s *Service) LinkStatus(ctx context.Context) (_ api.LinkStatus, err error) {
	defer mapError(&err)
	return s.node.LinkStatus(ctx)
}

// ConfirmLink implements api.Backend.
func (s *Service) ConfirmLink(ctx context.Context, req api.LinkConfirm) (_ api.LinkStatus, err error) {
	defer mapError(&err)
	if req.SAS == "" {
		return api.LinkStatus{}, api.Errorf(api.CodeBadRequest, "type the six digits the new device shows", "no digits")
	}
	return s.node.ConfirmLink(ctx, req.SAS)
}

// CancelLink implements api.Backend.
func (s *Service) CancelLink(ctx context.Context) (_ api.LinkStatus, err error) {
	defer mapError(&err)
	return s.node.CancelLink(ctx)
}

// Devices implements api.Backend.
func (s *Service) Devices(ctx context.Context) (_ []api.OwnDevice, err error) {
	defer mapError(&err)
	return s.node.Devices(ctx)
}

// RevokeDevice implements api.Backend.
func (s *Service) RevokeDevice(ctx context.Context, id string) (_ api.OwnDevice, err error) {
	defer mapError(&err)
	return s.node.RevokeDevice(ctx, id)
}
