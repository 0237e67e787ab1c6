package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// Vehicle states as Tesla reports them.
const (
	StateOnline  = "online"
	StateAsleep  = "asleep"
	StateOffline = "offline"
)

// Vehicle is one car as the vehicle list and GET /vehicles/{vin} describe it.
type Vehicle struct {
	ID          int64
	VIN         string
	DisplayName string
	State       string // StateOnline, StateAsleep or StateOffline
}

type vehicleJSON struct {
	ID          jInt    `json:"id"`
	IDString    jString `json:"id_s"`
	VIN         jString `json:"vin"`
	DisplayName jString `json:"display_name"`
	State       jString `json:"state"`
}

func (v vehicleJSON) vehicle() Vehicle {
	out := Vehicle{ID: v.ID.v, VIN: v.VIN.v, DisplayName: v.DisplayName.v, State: v.State.v}
	if !v.ID.ok && v.IDString.ok {
		if n, err := strconv.ParseInt(v.IDString.v, 10, 64); err == nil {
			out.ID = n
		}
	}
	return out
}

// Vehicles lists the account's cars (GET /api/1/vehicles), following
// pagination 100 at a time. It does not wake anything.
func (c *Client) Vehicles(ctx context.Context) ([]Vehicle, error) {
	var all []Vehicle
	page := 1
	for range maxVehiclePages {
		r := request{method: http.MethodGet, base: c.baseURL, path: "/api/1/vehicles",
			rawQuery: "page=" + strconv.Itoa(page) + "&per_page=" + strconv.Itoa(vehiclesPerPage)}
		rep, err := c.do(ctx, r)
		if err != nil {
			return nil, err
		}
		var env struct {
			Response   json.RawMessage `json:"response"`
			Pagination jObject[struct {
				Next    jInt `json:"next"`
				Current jInt `json:"current"`
				Pages   jInt `json:"pages"`
			}] `json:"pagination"`
		}
		if err := json.Unmarshal(rep.body, &env); err != nil {
			return nil, malformed(rep.status, r.endpoint(), err.Error())
		}
		var list jList[vehicleJSON]
		if err := list.UnmarshalJSON(bytes.TrimSpace(env.Response)); err != nil || !list.ok {
			return nil, malformed(rep.status, r.endpoint(), `"response" is missing or not an array`)
		}
		for _, v := range list.v {
			all = append(all, v.vehicle())
		}

		next := 0
		switch p := env.Pagination.v; {
		case p != nil && p.Next.ok:
			next = int(p.Next.v)
		case p != nil && p.Pages.ok:
			if page < int(p.Pages.v) {
				next = page + 1
			}
		case p == nil && len(list.v) >= vehiclesPerPage:
			// No pagination block: a full page may have a successor.
			next = page + 1
		}
		if next <= page {
			return all, nil
		}
		page = next
	}
	return nil, malformed(http.StatusOK, "GET /api/1/vehicles",
		fmt.Sprintf("pagination did not end after %d pages", maxVehiclePages))
}

// Vehicle returns one car's state (GET /api/1/vehicles/{vin}). This is the
// call that never wakes the car: the scout's free look before deciding
// whether a billed VehicleData call can succeed.
func (c *Client) Vehicle(ctx context.Context, vin string) (Vehicle, error) {
	path, err := vehiclePath(vin)
	if err != nil {
		return Vehicle{}, err
	}
	return c.vehicleCall(ctx, request{method: http.MethodGet, base: c.baseURL, path: path})
}

// WakeUp asks the car to wake (POST /api/1/vehicles/{vin}/wake_up) and
// returns its state as reported at once, usually still "asleep": the car
// takes seconds to come online, and the caller polls with Vehicle. Billed as
// a wake, the most expensive call there is: only the charging cycle calls
// it, at most once per cycle. The client never calls it on its own.
func (c *Client) WakeUp(ctx context.Context, vin string) (Vehicle, error) {
	path, err := vehiclePath(vin)
	if err != nil {
		return Vehicle{}, err
	}
	return c.vehicleCall(ctx, request{method: http.MethodPost, base: c.baseURL, path: path + "/wake_up"})
}

func (c *Client) vehicleCall(ctx context.Context, r request) (Vehicle, error) {
	rep, err := c.do(ctx, r)
	if err != nil {
		return Vehicle{}, err
	}
	raw, problem := decodeResponse(rep.body, '{')
	if problem != "" {
		return Vehicle{}, malformed(rep.status, r.endpoint(), problem)
	}
	var v vehicleJSON
	if err := json.Unmarshal(raw, &v); err != nil {
		return Vehicle{}, malformed(rep.status, r.endpoint(), err.Error())
	}
	return v.vehicle(), nil
}

// Region is the account's home region as GET /api/1/users/region reports it.
type Region struct {
	Region          string // e.g. "eu", "na"
	FleetAPIBaseURL string // the base URL to configure as TESLA_FLEET_API_URL
}

// Region asks which regional Fleet API host serves the account. Any region's
// host answers it, so it is the way out of ErrWrongRegion.
func (c *Client) Region(ctx context.Context) (Region, error) {
	r := request{method: http.MethodGet, base: c.baseURL, path: "/api/1/users/region"}
	rep, err := c.do(ctx, r)
	if err != nil {
		return Region{}, err
	}
	raw, problem := decodeResponse(rep.body, '{')
	if problem != "" {
		return Region{}, malformed(rep.status, r.endpoint(), problem)
	}
	var reg struct {
		Region  jString `json:"region"`
		BaseURL jString `json:"fleet_api_base_url"`
	}
	if err := json.Unmarshal(raw, &reg); err != nil {
		return Region{}, malformed(rep.status, r.endpoint(), err.Error())
	}
	if reg.BaseURL.v == "" {
		return Region{}, malformed(rep.status, r.endpoint(), "no fleet_api_base_url in the answer")
	}
	return Region{Region: reg.Region.v, FleetAPIBaseURL: reg.BaseURL.v}, nil
}
