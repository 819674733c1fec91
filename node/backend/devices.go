package backend

import (
	"context"

	"github.com/callsign/callsign/api"
)

// StartLink implements api.Backend.
func (s *Service) StartLink(ctx context.Context, req api.LinkRequest) (_ api.LinkOffer, err error) {
	defer mapError(&err)
	if d := req.HistoryDays; d != nil && (*d < -1 || *d > 36500) {
		return api.LinkOffer{}, api.Errorf(api.CodeBadRequest, "give a number of days, 0 for none or -1 for all", "history_days %d", *d)
	}
	return s.node.StartLink(ctx, req)
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

// JoinAccount implements api.Backend.
func (s *Service) JoinAccount(ctx context.Context, req api.JoinRequest) (_ api.LinkStatus, err error) {
	defer mapError(&err)
	if req.Code == "" {
		return api.LinkStatus{}, api.Errorf(api.CodeBadRequest, "type the code your other device shows", "no code")
	}
	return s.node.JoinAccount(ctx, req)
}

// JoinStatus implements api.Backend.
func (s *Service) JoinStatus(ctx context.Context) (_ api.LinkStatus, err error) {
	defer mapError(&err)
	return s.node.JoinStatus(ctx)
}

// ConfirmJoin implements api.Backend.
func (s *Service) ConfirmJoin(ctx context.Context, req api.JoinConfirm) (_ api.LinkStatus, err error) {
	defer mapError(&err)
	return s.node.ConfirmJoin(ctx, req.Match)
}

// CancelJoin implements api.Backend.
func (s *Service) CancelJoin(ctx context.Context) (_ api.LinkStatus, err error) {
	defer mapError(&err)
	return s.node.CancelJoin(ctx)
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
